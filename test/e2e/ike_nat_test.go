package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// natPublic is the address the lab's NAT (lab.sh nat) gives gwA on gwB's side.
const natPublic = "192.0.2.253"

// TestIKEBehindNAT: gwA sits behind a NAT (nftables masquerade, a random
// port per mapping, UDP mappings forgotten after 3 s idle). An idle tunnel
// survives idle periods longer than that because gwA sends NAT-T
// keepalives (RFC 3948 §2.3, seen on the wire); and after the NAT forgets
// every mapping (conntrack -F) and gwA's traffic comes from a new port,
// gwB's IKE SA follows it and so do its Child SAs: traffic flows both
// ways again.
func TestIKEBehindNAT(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("conntrack"); err != nil {
		t.Skip("conntrack not installed (scripts/install-deps.sh)")
	}
	l := newLab(t, "nat")
	a, b := l.ikeConfigs(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "start")
	editConfig(t, a, "    dpd_delay: 10s\n", "    dpd_delay: 10s\n    keepalive: 1s\n")
	editConfig(t, b, "    remote_addr: 192.0.2.1\n", "    remote_addr: "+natPublic+"\n")
	gB := l.start(t, "gB", b)
	gA := l.start(t, "gA", a)
	sockA, sockB := l.sockPath("gA"), l.sockPath("gB")
	waitIKE(t, sockA, 1, 10*time.Second)
	sasB := waitIKE(t, sockB, 1, 5*time.Second)
	if !sasB[0].NATT || !sasB[0].Children[0].UDPEncap {
		t.Fatalf("gwB did not move to NAT-T with a NAT in the way: %+v", sasB[0])
	}
	before := netip.MustParseAddrPort(sasB[0].Remote)
	if before.Addr().String() != natPublic {
		t.Fatalf("gwB sees its peer at %v, want the NAT's %s", before, natPublic)
	}
	l.warmUp(t, "hA", hostB4)
	// both pings from hostB first: gwB's ESP reaches gwA only through
	// the NAT's existing mapping (gwA's own traffic would make a new one).
	both := func(what string) {
		t.Helper()
		for _, p := range [][2]string{{"hB", hostA4}, {"hA", hostB4}} {
			if got := l.pingAll(p[0], p[1], 5); got != 5 {
				t.Fatalf("%s: %s -> %s: %d/5 answered\ngwB IKE: %+v\n%s", what, p[0], p[1], got, showIKE(t, sockB), l.diagnose())
			}
		}
	}
	both("before idling")

	// Idle for more than twice the NAT's UDP timeout: only keepalives
	// keep gwA's mapping (and so its port) alive; DPD (10 s after the
	// last inbound packet) stays quiet that long. With keepalive: 0s
	// gwB's pings below die in the NAT.
	c := l.capture(t, "wan", "a0", 64)
	time.Sleep(7 * time.Second)
	pcap := c.stop()
	out, err := exec.Command("tcpdump", "-n", "-r", pcap,
		"src host 192.0.2.1 and udp src port 4500 and udp[4:2] = 9 and udp[8] = 0xff").Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	n := strings.Count(string(out), "\n")
	t.Logf("%d NAT-T keepalives from gwA in 7 s idle", n)
	if n < 4 {
		t.Fatalf("%d NAT-T keepalives from gwA in 7 s idle, want one a second", n)
	}
	if sent := gA.showStats(t).IKE["natt_keepalives"]; sent < uint64(n) {
		t.Fatalf("gwA counts %d NAT-T keepalives sent, %d seen on the wire", sent, n)
	}
	both("after idling past the NAT's timeout")
	if now := netip.MustParseAddrPort(showIKE(t, sockB)[0].Remote); now != before {
		t.Fatalf("gwA's mapping changed while idle: %v -> %v", before, now)
	}
	if sasA := showIKE(t, sockA); len(sasA) != 1 || sasA[0].Remote != "192.0.2.2:4500" || !sasA[0].NATT {
		t.Fatalf("gwA's IKE SA: %+v, want NAT-T to 192.0.2.2:4500", sasA)
	}

	// The NAT forgets everything: gwA's next packets leave from a new
	// port. gwB's replies to the old one are lost until an authenticated
	// IKE message from the new one (gwA's DPD, 10 s) moves gwB's IKE SA
	// and, with it, the Child SA's ESP; ESP from the new port moves
	// nothing (anyone could send it).
	inBefore := gB.showSAs(t)["in"].Packets
	if out, err := l.run("wan", 5*time.Second, "conntrack", "-F"); err != nil {
		t.Fatalf("conntrack -F: %v\n%s", err, out)
	}
	flushed := time.Now()
	p := l.startPinger(t, "hA", hostB4, 200*time.Millisecond)
	time.Sleep(time.Second)
	if in := gB.showSAs(t)["in"].Packets; in <= inBefore {
		t.Fatalf("gwB received no ESP from gwA's new mapping (%d packets before, %d now)", inBefore, in)
	}
	if now := netip.MustParseAddrPort(showIKE(t, sockB)[0].Remote); now != before {
		t.Fatalf("gwB moved to %v on ESP alone, %.1f s after the flush (DPD is 10 s)", now, time.Since(flushed).Seconds())
	}
	deadline := time.Now().Add(30 * time.Second)
	var after netip.AddrPort
	for {
		after = netip.MustParseAddrPort(showIKE(t, sockB)[0].Remote)
		if after != before {
			break
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("gwB's IKE SA still at %v 30 s after the NAT flush\n%s", before, gB.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.stop()
	t.Logf("gwA's NAT mapping moved from %v to %v; gwB followed it %.1f s after the flush", before, after, time.Since(flushed).Seconds())
	if out := gB.showSAs(t)["out"]; out.Remote != after.Addr().String() || out.UDPDst != after.Port() {
		t.Fatalf("gwB's outbound Child SA sends to %s:%d, want %v", out.Remote, out.UDPDst, after)
	}
	both("after the NAT's mapping changed")
}

// editConfig replaces old with new in a generated configuration file.
func editConfig(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", file, old)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}
