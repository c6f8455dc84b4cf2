package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestOuterFragment: WAN MTU 1280, the IPv6 minimum. A 1280-byte IPv6
// packet (ping -6 -s 1232), which its sender may not make smaller, does not
// fit with ESP around it: the gateway seals it and fragments the outer
// packet (IPv4 fragments, or an IPv6 Fragment header with an IPv6 outer),
// the peer reassembles and opens it. Pings come back both ways, iperf3
// over IPv6 (no MSS clamping: TCP learns 1280 from "packet too big") moves
// data, tshark sees the fragmented outer ESP on the WAN, reassembles it
// and verifies every ICV, and nothing leaks.
func TestOuterFragment(t *testing.T) {
	needLab(t)
	l := newLabMTU(t, "", 1, 1280)
	for _, c := range []struct {
		name  string
		o     tunnelOpts
		frag  string // tshark: an outer fragment
		whole string // tshark: a reassembled outer packet
	}{
		{"outer4", tunnelOpts{}, "ip.flags.mf == 1 or ip.frag_offset > 0", "ip.reassembled_in or ip.fragments"},
		{"outer6-udp", tunnelOpts{outer6: true, udp: true, suite: "aes256gcm16"}, "ipv6.fraghdr", "ipv6.fragments"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b, keys := l.configs(t, c.o)
			gA := l.start(t, "gA", a)
			gB := l.start(t, "gB", b)
			for _, h := range []string{"hA", "hB"} {
				l.run(h, 5*time.Second, "ip", "-6", "route", "flush", "cache")
			}
			cp := l.capture(t, "wan", "a0", 0)
			l.warmUp(t, "hA", hostB6)
			if ok, mtu := l.pingDF(true, hostB6, 1232); !ok {
				t.Errorf("ping -6 -s 1232 (a 1280-byte packet): no reply (mtu %d)\n%s", mtu, l.diagnose())
			}
			for _, p := range [][2]string{{"hA", hostB6}, {"hB", hostA6}} {
				out, _ := l.run(p[0], 15*time.Second, "ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1232", p[1])
				if !strings.Contains(out, " 5 received") {
					t.Errorf("%s: ping -6 -s 1232 %s:\n%s", p[0], p[1], out)
				}
			}
			if ok, mtu := l.pingDF(true, hostB6, 1233); ok || mtu != 1280 {
				t.Errorf("ping -6 -s 1233 (1281 bytes): reply %v, mtu %d; want a packet too big of 1280", ok, mtu)
			}
			r := l.iperf(t, hostB6, "-t", "1")
			t.Logf("WAN 1280 %s: iperf3 TCP over IPv6 A->B %.0f Mbit/s", c.name, r.End.SumReceived.BitsPerSecond/1e6)
			if r.End.SumReceived.Bytes == 0 {
				t.Errorf("iperf3 TCP over IPv6 moved nothing\n%s", l.diagnose())
			}
			pcap := cp.stop()
			frags := len(tshark(t, pcap, nil, "-Y", c.frag))
			whole := len(tshark(t, pcap, nil, "-Y", "esp and ("+c.whole+")"))
			if big := tshark(t, pcap, nil, "-Y", "frame.len > 1294"); len(big) > 0 {
				t.Errorf("%d frames over the WAN's 1280, e.g. %s", len(big), big[0])
			}
			t.Logf("outer fragments %d, reassembled ESP packets %d", frags, whole)
			if frags < 20 || whole < 10 {
				t.Errorf("tshark: %d outer fragments, %d reassembled ESP packets", frags, whole)
			}
			// noLeak's checks, with the first fragments (no ESP header for
			// tshark until reassembly) allowed.
			if leak := tshark(t, pcap, nil, "-Y", "ip.addr==198.18.0.0/15 or ipv6.addr==2001:db8:a::/64 or ipv6.addr==2001:db8:b::/64"); len(leak) > 0 {
				t.Errorf("plaintext on the WAN: %d frames, e.g. %s", len(leak), leak[0])
			}
			if other := tshark(t, pcap, nil, "-Y", "(ip or ipv6) and not esp and not icmpv6 and not igmp and not ("+c.frag+")"); len(other) > 0 {
				t.Errorf("non-ESP IP traffic on the WAN: %d frames, e.g. %s", len(other), other[0])
			}
			decryptAll(t, pcap, keys)
			sa, sb := gA.showStats(t), gB.showStats(t)
			for _, n := range []struct {
				g    string
				s    stats
				name string
			}{{"gwA", sa, "fragmented"}, {"gwB", sb, "fragmented"}, {"gwA", sa, "reasm_reassembled"}, {"gwB", sb, "reasm_reassembled"}} {
				v := workerCounter(n.s, n.name)
				t.Logf("%s %s %d", n.g, n.name, v)
				if v < 5 {
					t.Errorf("%s: %s %d", n.g, n.name, v)
				}
			}
			l.stopClean(t, gA)
			l.stopClean(t, gB)
		})
	}
}
