package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVLANWAN: both gateways carry the tunnel on 802.1Q VLAN 100 of their
// WAN interface (wan_vlan: 100) while the kernel's own traffic (ARP, ND)
// stays untagged, as on a trunk with a native VLAN. (This kernel has no
// 802.1Q devices, so the kernel side cannot be tagged here.) Ping and
// iperf3 cross; every ESP frame on the wire is tagged 100 and tshark
// decrypts it; untagged frames go to the kernel, counted; cleartext from
// site B's prefix tagged 100 meets the inbound SPD; a killed gateway fails
// closed.
func TestVLANWAN(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b, keys := l.configs(t, tunnelOpts{})
	for _, f := range []string{a, b} {
		cfg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tagged := strings.Replace(string(cfg), "wan: wan0,", "wan: wan0, wan_vlan: 100,", 1)
		if tagged == string(cfg) {
			t.Fatalf("%s: no wan: wan0 to tag", f)
		}
		if err := os.WriteFile(f, []byte(tagged), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The bridge takes a frame's tag out of band on receive; without
	// transmit VLAN offload on its ports it writes it back into the frame,
	// where XDP sees it, as a NIC without receive VLAN offload gives it.
	for _, port := range []string{"a0", "b0"} {
		if out, err := l.run("wan", 5*time.Second, "ethtool", "-K", port, "txvlan", "off"); err != nil {
			t.Fatalf("ethtool -K %s txvlan off: %v\n%s", port, err, out)
		}
	}
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	c := l.capture(t, "wan", "a0", 0)
	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}})
	l.iperfTCP(t, "on WAN VLAN 100", false)
	pcap := c.stop()
	if n := noLeak(t, pcap); n < 40 {
		t.Errorf("%d ESP frames on the WAN", n)
	}
	if untagged := tshark(t, pcap, nil, "-Y", "esp and not vlan"); len(untagged) > 0 {
		t.Errorf("%d untagged ESP frames on the WAN", len(untagged))
	}
	if other := tshark(t, pcap, nil, "-Y", "vlan and vlan.id != 100"); len(other) > 0 {
		t.Errorf("%d frames of another VLAN on the WAN", len(other))
	}
	if tagged := tshark(t, pcap, nil, "-Y", "esp and vlan.id == 100"); len(tagged) < 40 {
		t.Errorf("%d ESP frames tagged 100 on the WAN", len(tagged))
	}
	decryptAll(t, pcap, keys)
	xa := gA.showStats(t).XDP["wan"]
	if xa["esp_redirect"] < 20 || xa["vlan_other_pass"] == 0 {
		t.Errorf("gwA's WAN program: esp_redirect %d, vlan_other_pass %d (the kernel's untagged ARP/ND)", xa["esp_redirect"], xa["vlan_other_pass"])
	}

	if scapyMissing() == "" {
		script := needScapy(t)
		mac := l.mac(t, "gA", "wan0")
		before := gA.showStats(t).XDP["wan"]["in_protect_drop"]
		out, err := l.run("wan", 30*time.Second, "/usr/bin/python3", script, "br0", mac, "udp-vlan100", hostB4, hostA4)
		if err != nil {
			t.Fatalf("inject: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
		if after := gA.showStats(t).XDP["wan"]["in_protect_drop"]; after-before != 5 {
			t.Errorf("spoofed UDP tagged 100: in_protect_drop moved by %d, want 5", after-before)
		}
	} else {
		t.Log("no scapy: the tagged injection is skipped")
	}

	// Fail closed: gwA killed, its pinned program stays; nothing crosses
	// and nothing leaks.
	c = l.capture(t, "wan", "a0", 0)
	gA.stop(t, syscall.SIGKILL)
	if got := l.ping("hA", hostB4, 3); got != 0 {
		t.Errorf("with gwA killed, %d pings crossed", got)
	}
	noLeak(t, c.stop())
	l.stopClean(t, gB)
}
