package e2e

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
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
	gA, gB, keys, pcap := tunnelOnWANVLAN(t, l, "100", "a0", "txvlan")
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

	injectTagged(t, l, gA, "wan", l.mac(t, "gA", "wan0"))

	// Fail closed: gwA killed, its pinned program stays; nothing crosses
	// and nothing leaks.
	noLeak(t, killA(t, l, gA).stop())
	l.stopClean(t, gB)
}

// vlanHost makes hostA's eth0 speak 802.1Q VLAN vid with a TCX program on
// each direction (this kernel has no 802.1Q devices, but bpf_skb_vlan_push
// and _pop are core helpers): every frame it sends is tagged vid, and the
// tag of every frame it receives is removed before the stack looks at it
// (TCX ingress runs before the kernel's own VLAN handling, which would take
// a frame with an unknown VLAN for another host's). The links go with the
// test.
func vlanHost(t *testing.T, l *lab, node, dev string, vid int32) {
	t.Helper()
	// The tag goes into the frame on transmit, not out of band.
	if out, err := l.run(node, 5*time.Second, "ethtool", "-K", dev, "txvlan", "off"); err != nil {
		t.Fatalf("ethtool -K %s txvlan off: %v\n%s", dev, err, out)
	}
	push := asm.Instructions{
		// bpf_skb_vlan_push(skb, htons(ETH_P_8021Q), vid)
		asm.Mov.Imm(asm.R2, 0x0081), // 0x8100 in network order
		asm.Mov.Imm(asm.R3, vid),
		asm.FnSkbVlanPush.Call(),
		asm.Mov.Imm(asm.R0, 0), // TCX_PASS
		asm.Return(),
	}
	pop := asm.Instructions{
		asm.FnSkbVlanPop.Call(), // untagged frames (the peer's kernel's): a no-op
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
	err := l.inNetns(node, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		for _, p := range []struct {
			ins    asm.Instructions
			attach ebpf.AttachType
		}{{push, ebpf.AttachTCXEgress}, {pop, ebpf.AttachTCXIngress}} {
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, Instructions: p.ins, License: "GPL"})
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			lk, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: prog, Attach: p.attach})
			prog.Close() // the link holds it
			if err != nil {
				return fmt.Errorf("attach tcx: %w", err)
			}
			t.Cleanup(func() { lk.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatalf("vlan %d on %s/%s: %v", vid, node, dev, err)
	}
}

// TestVLANTrunk: gwA on one port that carries its LAN as VLAN 10 and the
// WAN as VLAN 100 (lab variant trunk: hostA on the WAN bridge, tagging
// its frames 10 with a TCX program; gwB on wan_vlan: 100). The kernels'
// neighbours are static on the LAN tag (no kernel here speaks it) and
// untagged on the WAN (native VLAN). Ping and iperf3 cross both ways; on
// gwA's port every ESP frame is tagged 100 and decrypts, nothing of site
// A's leaves untagged, on the WAN's tag or with ESP on the LAN's; spoofed
// site-B cleartext tagged 100 meets the inbound SPD; a killed gwA fails
// closed.
func TestVLANTrunk(t *testing.T) {
	needLab(t)
	l := newLab(t, "trunk")
	a, b, keys := l.configs(t, tunnelOpts{})
	for _, e := range []struct{ f, from, to string }{
		{a, "lan: lan0, wan: wan0,", "lan: wan0, wan: wan0, lan_vlan: 10, wan_vlan: 100,"},
		{b, "wan: wan0,", "wan: wan0, wan_vlan: 100,"},
	} {
		cfg, err := os.ReadFile(e.f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(cfg), e.from, e.to, 1)
		if s == string(cfg) {
			t.Fatalf("%s: no %q", e.f, e.from)
		}
		if err := os.WriteFile(e.f, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, port := range []string{"a0", "b0", "ha0"} {
		if out, err := l.run("wan", 5*time.Second, "ethtool", "-K", port, "txvlan", "off"); err != nil {
			t.Fatalf("ethtool -K %s txvlan off: %v\n%s", port, err, out)
		}
	}
	macA, macH := l.mac(t, "gA", "wan0"), l.mac(t, "hA", "eth0")
	for _, n := range [][]string{
		{"hA", "198.18.1.1", macA, "eth0"}, {"hA", "2001:db8:a::1", macA, "eth0"},
		{"gA", hostA4, macH, "wan0"}, {"gA", hostA6, macH, "wan0"},
	} {
		if out, err := l.run(n[0], 5*time.Second, "ip", "neigh", "replace", n[1], "lladdr", n[2], "dev", n[3], "nud", "permanent"); err != nil {
			t.Fatalf("ip neigh: %v\n%s", err, out)
		}
	}
	vlanHost(t, l, "hA", "eth0", 10)
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	c := l.capture(t, "wan", "a0", 0)
	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}})
	l.iperfTCP(t, "trunk: LAN VLAN 10, WAN VLAN 100", true)
	pcap := c.stop()
	count := func(filter string) int { return len(tshark(t, pcap, nil, "-Y", filter)) }
	if n := count("esp and vlan.id == 100"); n < 40 {
		t.Errorf("%d ESP frames tagged 100 on gwA's port", n)
	}
	if n := count("vlan.id == 10 and (ip.dst == " + hostB4 + " or ipv6.dst == " + hostB6 + ")"); n < 20 {
		t.Errorf("%d frames from hostA towards site B on the LAN's tag", n)
	}
	siteA := "(ip.addr == 198.18.1.0/24 or ipv6.addr == 2001:db8:a::/64)"
	for what, filter := range map[string]string{
		"ESP not tagged 100":                   "esp and not vlan.id == 100",
		"non-ESP IP on the WAN's tag":          "vlan.id == 100 and (ip or ipv6) and not esp",
		"site A's traffic untagged":            "not vlan and " + siteA,
		"site B's off the LAN's tag":           "not vlan.id == 10 and (ip.addr == 198.18.2.0/24 or ipv6.addr == 2001:db8:b::/64)",
		"a tag other than 10 and 100":          "vlan and not vlan.id == 10 and not vlan.id == 100",
		"the WAN's addresses on the LAN's tag": "vlan.id == 10 and (ip.addr == 192.0.2.0/24 or ipv6.addr == 2001:db8:f::/64)",
	} {
		if lines := tshark(t, pcap, nil, "-Y", filter); len(lines) > 0 {
			t.Errorf("%s: %d frames (%s), e.g.\n%s", what, len(lines), filter, strings.Join(lines[:min(5, len(lines))], "\n"))
		}
	}
	decryptAll(t, pcap, keys)
	x := gA.showStats(t).XDP["onearm"]
	t.Logf("gwA's trunk program: esp_redirect %d, lan_protect_redirect %d, lan_divert_redirect %d, vlan_other_pass %d",
		x["esp_redirect"], x["lan_protect_redirect"], x["lan_divert_redirect"], x["vlan_other_pass"])
	if lan := x["lan_protect_redirect"] + x["lan_divert_redirect"]; x["esp_redirect"] < 20 || lan < 20 {
		t.Errorf("gwA's trunk program: esp_redirect %d, LAN redirects %d: %v", x["esp_redirect"], lan, x)
	}

	injectTagged(t, l, gA, "onearm", macA)

	// Fail closed: gwA killed, its pinned program stays; nothing crosses
	// and nothing of site A's leaves but on the LAN's tag.
	c = killA(t, l, gA)
	pcap = c.stop()
	if lines := tshark(t, pcap, nil, "-Y", "not vlan.id == 10 and "+siteA); len(lines) > 0 {
		t.Errorf("with gwA killed, site A's traffic off the LAN's tag: %d frames", len(lines))
	}
	l.stopClean(t, gB)
}

// TestVLANQinQ: both gateways carry the tunnel on VLAN 100 inside the
// 802.1ad service VLAN 300 (wan_vlan: 300.100), the kernels' ARP/ND
// untagged. Ping and iperf3 cross; every ESP frame on the wire carries
// both tags (0x88a8 300 outside, 0x8100 100 inside) and tshark decrypts it.
func TestVLANQinQ(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	gA, gB, keys, pcap := tunnelOnWANVLAN(t, l, "300.100", "b0", "txvlan", "tx-vlan-stag-hw-insert")
	// tshark decodes the 802.1ad tag as ieee8021ad (not vlan), the 802.1Q
	// tag inside it as vlan or as ieee8021ad.cvid. Each XDP program,
	// set to 300.100, is a second witness: it takes a frame only when both
	// tags are in it (another stack, or the inner tag alone, is
	// vlan_other_pass).
	both := "(ieee8021ad.id == 300 or ieee8021ad.svid == 300) and (vlan.id == 100 or ieee8021ad.cvid == 100)"
	if n := len(tshark(t, pcap, nil, "-Y", "esp and ip.src == 192.0.2.1 and eth.type == 0x88a8 and "+both)); n < 40 {
		t.Errorf("%d ESP frames from gwA with 802.1ad 300 outside 802.1Q 100", n)
	}
	if bad := tshark(t, pcap, nil, "-Y", "esp and not ("+both+")"); len(bad) > 0 {
		t.Errorf("%d ESP frames without both tags, e.g. %s", len(bad), bad[0])
	}
	decryptAll(t, pcap, keys)
	for _, g := range []struct {
		name string
		g    *gateway
	}{{"gwA", gA}, {"gwB", gB}} {
		x := g.g.showStats(t).XDP["wan"]
		t.Logf("%s's WAN program: esp_redirect %d, vlan_other_pass %d", g.name, x["esp_redirect"], x["vlan_other_pass"])
		if x["esp_redirect"] < 100 || x["vlan_other_pass"] > 100 {
			t.Errorf("%s's WAN program: esp_redirect %d, vlan_other_pass %d", g.name, x["esp_redirect"], x["vlan_other_pass"])
		}
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// injectTagged sends spoofed UDP from site B to hostA, tagged 100, at mac
// (scapy, from the WAN bridge) and expects program's in_protect_drop to
// count all 5.
func injectTagged(t *testing.T, l *lab, gA *gateway, program, mac string) {
	t.Helper()
	if scapyMissing() != "" {
		t.Log("no scapy: the tagged injection is skipped")
		return
	}
	script := needScapy(t)
	before := gA.showStats(t).XDP[program]["in_protect_drop"]
	out, err := l.run("wan", 30*time.Second, "/usr/bin/python3", script, "br0", mac, "udp-vlan100", hostB4, hostA4)
	if err != nil {
		t.Fatalf("inject: %v\n%s", err, out)
	}
	time.Sleep(200 * time.Millisecond)
	if after := gA.showStats(t).XDP[program]["in_protect_drop"]; after-before != 5 {
		t.Errorf("spoofed UDP tagged 100: in_protect_drop moved by %d, want 5", after-before)
	}
}

// killA starts a capture on gwA's bridge port, SIGKILLs gwA (its pinned
// program stays) and expects no ping from hostA to cross; the capture is
// the caller's to judge.
func killA(t *testing.T, l *lab, gA *gateway) *capture {
	t.Helper()
	c := l.capture(t, "wan", "a0", 0)
	gA.stop(t, syscall.SIGKILL)
	if got := l.ping("hA", hostB4, 3); got != 0 {
		t.Errorf("with gwA killed, %d pings crossed", got)
	}
	return c
}

// tunnelOnWANVLAN starts both gateways of l with wan_vlan: tag, turns the
// named transmit VLAN offloads off on the bridge's ports (the bridge takes
// a frame's tag out of band on receive; without the offload it writes it
// back into the frame, where XDP sees it, as a NIC without receive VLAN
// offload gives it), pings both ways, runs iperf3 and returns the
// capture of the bridge's port, checked for leaks and for ESP.
func tunnelOnWANVLAN(t *testing.T, l *lab, tag, port string, offloads ...string) (gA, gB *gateway, keys tunnelKeys, pcap string) {
	t.Helper()
	a, b, keys := l.configs(t, tunnelOpts{})
	for _, f := range []string{a, b} {
		cfg, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tagged := strings.Replace(string(cfg), "wan: wan0,", "wan: wan0, wan_vlan: "+tag+",", 1)
		if tagged == string(cfg) {
			t.Fatalf("%s: no wan: wan0 to tag", f)
		}
		if err := os.WriteFile(f, []byte(tagged), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, port := range []string{"a0", "b0"} {
		args := []string{"ethtool", "-K", port}
		for _, o := range offloads {
			args = append(args, o, "off")
		}
		if out, err := l.run("wan", 5*time.Second, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	gA = l.start(t, "gA", a)
	gB = l.start(t, "gB", b)
	c := l.capture(t, "wan", port, 0)
	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}})
	l.iperfTCP(t, "on WAN VLAN "+tag, false)
	pcap = c.stop()
	if n := noLeak(t, pcap); n < 40 {
		t.Errorf("%d ESP frames on the WAN", n)
	}
	return gA, gB, keys, pcap
}
