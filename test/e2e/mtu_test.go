package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/internal/control"
)

// The MTU matrix: LANs at 1500 and WANs of 1500, 1400 and 1280 (what real sites
// have; the other tests run with 1600, room for ESP around a full LAN
// packet), raw ESP and ESP in UDP, a spread of suites, IPv4 and IPv6 outer.
// Through each: iperf3 TCP both ways moves data; `ping -M do` one byte
// under and over the largest packet the tunnel carries gets a reply and a
// "too big" carrying exactly that size; a 1500-byte IPv4 ping without DF
// arrives (fragmented before encryption, reassembled by the host); and
// the SYNs are seen clamped (mss_clamp: auto) by tshark. Then the path MTU
// an ICMP error reports for gwA's ESP lowers gwA's limit. The WAN-1600
// case runs the same checks, for its iperf3 figures beside the others.

// mtuCase is one tunnel of the matrix.
type mtuCase struct {
	name  string
	o     tunnelOpts
	inner bool // also IPv6 inner (ping -6, iperf3 over IPv6)
}

// suiteOverhead is what each suite adds, restated from the RFCs for the
// test (fastpath/esp computes it for the gateway): IV, ICV, pad block.
var suiteOverhead = map[string][3]int{
	"aes128gcm16":      {8, 16, 4},
	"aes256gcm16":      {8, 16, 4},
	"chacha20poly1305": {8, 16, 4},
	"aes256-sha512":    {16, 32, 16},
}

// tunnelLimit is the largest inner packet the tunnel carries in a WAN of
// mtu bytes: outer IP, UDP, ESP header, IV; the padded payload with its
// two trailer bytes; the ICV.
func tunnelLimit(o tunnelOpts, mtu int) int {
	suite := o.suite
	if suite == "" {
		suite = "aes128gcm16"
	}
	ov := suiteOverhead[suite]
	h := 20 + 8 + ov[0]
	if o.outer6 {
		h = 40 + 8 + ov[0]
	}
	if o.udp {
		h += 8
	}
	return (mtu-h-ov[1])&^(ov[2]-1) - 2
}

func TestMTUMatrix(t *testing.T) {
	needLab(t)
	matrix := []struct {
		wan   int
		cases []mtuCase
	}{
		// Within a lab the hosts keep the path MTUs they learn (10 min),
		// so each lab's cases go from the largest limit to the smallest:
		// a learned limit never hides the next case's.
		{1500, []mtuCase{
			{"aes128gcm16", tunnelOpts{}, true},                                               // 1446
			{"chacha20poly1305-udp", tunnelOpts{suite: "chacha20poly1305", udp: true}, false}, // 1438
			{"aes128gcm16-outer6", tunnelOpts{outer6: true}, true},                            // 1426
			{"aes256-sha512", tunnelOpts{suite: "aes256-sha512"}, false},                      // 1422
		}},
		{1400, []mtuCase{
			{"aes128gcm16", tunnelOpts{}, true}, // 1346
			{"aes256gcm16-udp-outer6", tunnelOpts{suite: "aes256gcm16", udp: true, outer6: true}, true}, // 1318
		}},
		// IPv6's minimum link MTU on the WAN: IPv4 inside (an IPv6 packet
		// of 1280 bytes cannot fit with ESP around it: the gateway
		// fragments the outer packet then, which TestOuterFragment tests).
		{1280, []mtuCase{
			{"aes128gcm16", tunnelOpts{}, false},                    // 1226
			{"aes128gcm16-outer6", tunnelOpts{outer6: true}, false}, // 1206
		}},
		{1600, []mtuCase{{"aes128gcm16", tunnelOpts{}, false}}},
	}
	for _, m := range matrix {
		t.Run(fmt.Sprintf("wan%d", m.wan), func(t *testing.T) {
			l := newLabMTU(t, "", 1, m.wan)
			for _, c := range m.cases {
				c.o.mssClamp = "auto"
				t.Run(c.name, func(t *testing.T) { testMTUCase(t, l, m.wan, c) })
			}
			if m.wan == 1500 {
				t.Run("pmtu-from-icmp", func(t *testing.T) { testPMTUFromICMP(t, l) })
			}
		})
	}
}

func testMTUCase(t *testing.T, l *lab, wan int, c mtuCase) {
	a, b, _ := l.configs(t, c.o)
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	limit := tunnelLimit(c.o, wan)
	fits := limit >= 1500 // the LAN's own MTU is the limit then
	if fits {
		limit = 1500
	}
	// The hosts forget the path MTUs an earlier case taught them, so that
	// they send full-size packets again.
	for _, h := range []string{"hA", "hB"} {
		l.run(h, 5*time.Second, "ip", "route", "flush", "cache")
		l.run(h, 5*time.Second, "ip", "-6", "route", "flush", "cache")
	}
	for _, p := range [][2]string{{"hA", hostB4}, {"hB", hostA4}} {
		l.warmUp(t, p[0], p[1])
	}
	// IPv4 without DF at the LAN's full 1500: fragmented before
	// encryption at gwA (and the reply at gwB), reassembled by the hosts.
	// First, while the hosts know no smaller path MTU (else they fragment
	// themselves).
	if out, _ := l.run("hA", 10*time.Second, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-M", "dont", "-s", "1472", hostB4); !strings.Contains(out, " 2 received") {
		t.Errorf("1500-byte ping without DF did not come back whole:\n%s\n%s", out, l.diagnose())
	}
	// tracepath finds the tunnel's limit from the gateway's "too big".
	if !fits {
		if _, err := exec.LookPath("tracepath"); err != nil {
			t.Log("no tracepath (Debian's iputils-tracepath): not checked")
		} else {
			out, _ := l.run("hA", 15*time.Second, "tracepath", "-n", "-m", "4", hostB4)
			if want := fmt.Sprintf("pmtu %d", limit); !strings.Contains(out, want) {
				t.Errorf("tracepath to %s does not say %q:\n%s", hostB4, want, out)
			}
		}
	}
	// SYNs as hostB receives them and SYN-ACKs as hostA does.
	syn := []string{"tcp[tcpflags] & tcp-syn != 0"}
	capB := l.captureFilter(t, "hB", "eth0", 128, syn...)
	capA := l.captureFilter(t, "hA", "eth0", 128, syn...)
	up := l.iperf(t, hostB4, "-t", "1")
	down := l.iperf(t, hostB4, "-t", "1", "-R")
	t.Logf("WAN %d %s: iperf3 TCP A->B %.0f Mbit/s, B->A %.0f Mbit/s", wan, c.name,
		up.End.SumReceived.BitsPerSecond/1e6, down.End.SumReceived.BitsPerSecond/1e6)
	if up.End.SumReceived.Bytes == 0 || down.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 TCP moved nothing: A->B %d bytes, B->A %d bytes\n%s", up.End.SumReceived.Bytes, down.End.SumReceived.Bytes, l.diagnose())
	}
	if c.inner {
		l.warmUp(t, "hA", hostB6)
		r := l.iperf(t, hostB6, "-t", "1")
		t.Logf("WAN %d %s: iperf3 TCP over IPv6 A->B %.0f Mbit/s", wan, c.name, r.End.SumReceived.BitsPerSecond/1e6)
		if r.End.SumReceived.Bytes == 0 {
			t.Errorf("iperf3 TCP over IPv6 moved nothing\n%s", l.diagnose())
		}
	}
	pB, pA := capB.stop(), capA.stop()
	if !fits {
		// Both gateways clamp: hostA's SYN leaving gwA and hostB's
		// SYN-ACK arriving at gwA carry the MSS that fits gwA's tunnel.
		mss := strconv.Itoa(limit - 40)
		for _, cp := range []struct{ file, filter, who string }{
			{pB, "tcp.flags.syn == 1 and tcp.flags.ack == 0 and ip", "SYN at hostB"},
			{pA, "tcp.flags.syn == 1 and tcp.flags.ack == 1 and ip", "SYN-ACK at hostA"},
		} {
			got := tshark(t, cp.file, nil, "-Y", cp.filter, "-T", "fields", "-e", "tcp.options.mss_val")
			if len(got) == 0 {
				t.Errorf("%s: none captured", cp.who)
			}
			for _, v := range got {
				if v != mss {
					t.Errorf("%s: MSS %q, want %s (clamped to the tunnel)", cp.who, v, mss)
				}
			}
		}
	}

	// ping -M do around the limit: under it a reply, over it a "too big"
	// naming the limit exactly.
	for _, fam := range []struct {
		v6      bool
		dst     string
		hdr     int
		include bool
	}{{false, hostB4, 28, true}, {true, hostB6, 48, c.inner}} {
		if !fam.include {
			continue
		}
		lim := limit
		if fam.v6 && lim < 1280 {
			lim = 1280
		}
		if ok, _ := l.pingDF(fam.v6, fam.dst, lim-fam.hdr); !ok {
			t.Errorf("ping -M do -s %d to %s (a %d-byte packet, the limit): no reply\n%s", lim-fam.hdr, fam.dst, lim, l.diagnose())
		}
		if fits {
			continue
		}
		ok, mtu := l.pingDF(fam.v6, fam.dst, lim-fam.hdr+1)
		if ok || mtu != lim {
			t.Errorf("ping -M do -s %d to %s (one byte over): reply %v, mtu %d; want no reply and mtu %d\n%s", lim-fam.hdr+1, fam.dst, ok, mtu, lim, l.diagnose())
		}
	}
	if !fits {
		st := gA.showStats(t)
		var frag, tooBig uint64
		for _, w := range st.Workers {
			frag += w.Counters["fragmented"]
			tooBig += w.Counters["icmp_too_big"]
		}
		if frag == 0 || tooBig == 0 {
			t.Errorf("gwA counted %d fragmented packets and %d ICMP too-big, want both > 0", frag, tooBig)
		}
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

var mtuRE = regexp.MustCompile(`mtu\s*[=:]?\s*(\d+)`)

// pingDF sends two pings of size payload bytes with DF (IPv4) from hostA
// and reports whether one was answered, and the MTU a "too big" or the
// host's own refusal named.
func (l *lab) pingDF(v6 bool, dst string, size int) (bool, int) {
	args := []string{"ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", strconv.Itoa(size), dst}
	if v6 {
		args = append([]string{"ping", "-6"}, args[1:]...)
	}
	out, _ := l.run("hA", 10*time.Second, args...)
	m := receivedRE.FindStringSubmatch(out)
	ok := m != nil && m[1] != "0"
	mtu := 0
	if mm := mtuRE.FindStringSubmatch(out); mm != nil {
		mtu, _ = strconv.Atoi(mm[1])
	}
	return ok, mtu
}

// testPMTUFromICMP: an ICMP "fragmentation needed" from the WAN that
// quotes gwA's ESP (as a router on a smaller path would send) lowers that
// SA's path MTU; the hosts then get "too big" with the smaller limit, and
// packets that fit it still cross. One quoting an unknown SPI changes
// nothing.
func testPMTUFromICMP(t *testing.T, l *lab) {
	o := tunnelOpts{mssClamp: "auto"}
	a, b, _ := l.configs(t, o)
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)
	// The WAN interface's MTU is followed while the daemon runs.
	setMTU := func(mtu int) {
		t.Helper()
		if out, err := l.run("gA", 5*time.Second, "ip", "link", "set", "wan0", "mtu", strconv.Itoa(mtu)); err != nil {
			t.Fatalf("ip link set mtu: %v\n%s", err, out)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			s, err := control.Query(l.sockPath("gA"))
			if err == nil && s.WANMTU == mtu {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("gwA did not take the WAN MTU %d: %v %+v", mtu, err, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	setMTU(1450)
	if ok, mtu := l.pingDF(false, hostB4, tunnelLimit(o, 1450)-28+1); ok || mtu != tunnelLimit(o, 1450) {
		t.Errorf("after the WAN MTU fell to 1450: reply %v, mtu %d, want mtu %d", ok, mtu, tunnelLimit(o, 1450))
	}
	setMTU(1500)
	send := func(spi uint32, mtu int) {
		t.Helper()
		err := l.inNetns("gB", func() error {
			c, err := net.Dial("ip4:icmp", gwA4)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(fragNeeded(mtu, wanA, wanB, spi))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	send(0xdead, 1300)
	time.Sleep(200 * time.Millisecond)
	if sa := gA.showSAs(t)["out"]; sa.PathMTU != 0 {
		t.Fatalf("an ICMP quoting an unknown SPI set the path MTU to %d", sa.PathMTU)
	}
	send(spiAB, 1300)
	deadline := time.Now().Add(3 * time.Second)
	for gA.showSAs(t)["out"].PathMTU != 1300 {
		if time.Now().After(deadline) {
			t.Fatalf("path MTU not learned from the ICMP: %+v", gA.showSAs(t)["out"])
		}
		time.Sleep(50 * time.Millisecond)
	}
	limit := tunnelLimit(o, 1300)
	if ok, _ := l.pingDF(false, hostB4, limit-28); !ok {
		t.Errorf("ping -M do at the learned limit %d: no reply\n%s", limit, l.diagnose())
	}
	if ok, mtu := l.pingDF(false, hostB4, limit-28+1); ok || mtu != limit {
		t.Errorf("ping -M do one byte over the learned limit: reply %v, mtu %d, want mtu %d", ok, mtu, limit)
	}
	r := l.iperf(t, hostB4, "-t", "1")
	t.Logf("path MTU 1300 learned: iperf3 TCP A->B %.0f Mbit/s", r.End.SumReceived.BitsPerSecond/1e6)
	if r.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 moved nothing after the path MTU dropped\n%s", l.diagnose())
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// fragNeeded is an ICMP "fragmentation needed" (RFC 1191) quoting the
// start of an ESP packet from src to dst with spi.
func fragNeeded(mtu int, src, dst [4]byte, spi uint32) []byte {
	b := make([]byte, 8+20+8)
	b[0], b[1] = 3, 4
	binary.BigEndian.PutUint16(b[6:], uint16(mtu))
	q := b[8:]
	q[0] = 0x45
	binary.BigEndian.PutUint16(q[2:], 1500)
	q[6] = 0x40
	q[8], q[9] = 64, packet.ProtoESP
	copy(q[12:], src[:])
	copy(q[16:], dst[:])
	binary.BigEndian.PutUint16(q[10:], packet.IPv4HeaderChecksum(q[:20]))
	binary.BigEndian.PutUint32(q[20:], spi)
	binary.BigEndian.PutUint32(q[24:], 1)
	binary.BigEndian.PutUint16(b[2:], packet.Checksum(b, 0))
	return b
}
