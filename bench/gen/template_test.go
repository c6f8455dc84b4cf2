package gen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

var (
	testSrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	testDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
)

func testConfig(src, dst string, flows int, vary Vary, sizes []int) Config {
	return Config{SrcMAC: testSrcMAC, DstMAC: testDstMAC, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		SrcPort: 10000, DstPort: 9, Flows: flows, Vary: vary, Sizes: sizes}
}

// checkFrame verifies a generated frame with package packet, independently
// of the incremental sums, and returns its source, ports, flow and seq.
func checkFrame(t *testing.T, b []byte) (src netip.Addr, sport uint16, flow uint32, seq uint64, tagged bool) {
	t.Helper()
	if !slices.Equal(b[0:6], testDstMAC) || !slices.Equal(b[6:12], testSrcMAC) {
		t.Fatalf("MACs %x", b[:12])
	}
	ipb := b[packet.EthLen:]
	ip, ok := packet.ParseIP(ipb)
	if !ok || ip.Proto != packet.ProtoUDP || ip.Fragment || ip.TotalLen != len(ipb) {
		t.Fatalf("bad IP header: %+v ok=%v len=%d", ip, ok, len(ipb))
	}
	var sa, da []byte
	if ip.V6 {
		if binary.BigEndian.Uint16(b[12:]) != packet.EtherIPv6 {
			t.Fatal("EtherType")
		}
		sa, da = ipb[8:24], ipb[24:40]
	} else {
		if binary.BigEndian.Uint16(b[12:]) != packet.EtherIPv4 {
			t.Fatal("EtherType")
		}
		if packet.Checksum(ipb[:20], 0) != 0 {
			t.Fatalf("IPv4 header checksum wrong")
		}
		sa, da = ipb[12:16], ipb[16:20]
	}
	u := ipb[ip.HdrLen:]
	if int(binary.BigEndian.Uint16(u[4:])) != len(u) {
		t.Fatalf("UDP length %d, want %d", binary.BigEndian.Uint16(u[4:]), len(u))
	}
	if binary.BigEndian.Uint16(u[6:]) == 0 {
		t.Fatal("UDP checksum zero")
	}
	if c := packet.Checksum(u, packet.PseudoSum(sa, da, packet.ProtoUDP, len(u))); c != 0 {
		t.Fatalf("UDP checksum does not verify (residue %#04x)", c)
	}
	src, _ = netip.AddrFromSlice(sa)
	p := u[packet.UDPLen:]
	if len(p) < TagLen {
		return src, binary.BigEndian.Uint16(u), 0, 0, false
	}
	if binary.BigEndian.Uint32(p) != TagMagic {
		t.Fatalf("tag magic %x", p[:4])
	}
	return src, binary.BigEndian.Uint16(u), binary.BigEndian.Uint32(p[4:]), binary.BigEndian.Uint64(p[8:]), true
}

func TestGeneratorFrames(t *testing.T) {
	tests := []struct {
		name     string
		src, dst string
		flows    int
		vary     Vary
		sizes    []int
	}{
		{"v4-64", "198.18.0.1", "198.18.1.1", 1, VarySrcPort, []int{64}},
		{"v4-60-ports", "198.18.0.1", "198.18.1.1", 7, VarySrcPort, []int{60}},
		{"v4-1400-addrs", "198.18.0.254", "198.18.1.1", 5, VarySrcAddr, []int{1400}},
		{"v4-imix", "198.18.0.1", "198.18.1.1", 3, VarySrcPort, IMIX},
		{"v6-512", "2001:db8::1", "2001:db8:1::1", 4, VarySrcAddr, []int{512}},
		{"v6-imix", "2001:db8::ff", "2001:db8:1::1", 2, VarySrcPort, IMIX},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGenerator(testConfig(tc.src, tc.dst, tc.flows, tc.vary, tc.sizes))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, MaxFrame)
			// Enough packets that sequence numbers carry across bytes.
			const rounds = 300
			for k := range tc.flows * len(tc.sizes) * rounds {
				clear(buf)
				n := g.Fill(buf)
				if want := tc.sizes[k%len(tc.sizes)]; n != want {
					t.Fatalf("packet %d: length %d, want %d", k, n, want)
				}
				src, sport, flow, seq, tagged := checkFrame(t, buf[:n])
				f := k % tc.flows
				wantSrc, wantPort := netip.MustParseAddr(tc.src), uint16(10000)
				if tc.vary == VarySrcAddr {
					wantSrc, _ = addAddr(wantSrc, f)
				} else {
					wantPort += uint16(f)
				}
				if src != wantSrc || sport != wantPort {
					t.Fatalf("packet %d: source %v:%d, want %v:%d", k, src, sport, wantSrc, wantPort)
				}
				// IPv6 at 64 bytes has no room for a tag.
				if want := !(netip.MustParseAddr(tc.src).Is6() && n < 78); tagged != want {
					t.Fatalf("packet %d (%d bytes): tagged %v, want %v", k, n, tagged, want)
				}
				if tagged && (flow != uint32(f) || seq != uint64(k/tc.flows)) {
					t.Fatalf("packet %d: flow %d seq %d, want %d %d", k, flow, seq, f, k/tc.flows)
				}
			}
		})
	}
}

func TestGeneratorHugeSeq(t *testing.T) {
	// A sequence number with every byte set makes the incremental sum
	// carry; check against a full recomputation.
	g, err := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 1, VarySrcPort, []int{64}))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxFrame)
	for _, seq := range []uint64{0xffffffffffffffff, 0xfffe000000000001, 0x8000800080008000, 1 << 63} {
		g.seq[0] = seq
		n := g.Fill(buf)
		if _, _, _, got, _ := checkFrame(t, buf[:n]); got != seq {
			t.Fatalf("seq %x, want %x", got, seq)
		}
	}
}

func TestGeneratorUnfill(t *testing.T) {
	g, err := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 3, VarySrcPort, IMIX))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 3, VarySrcPort, IMIX))
	a, b := make([]byte, MaxFrame), make([]byte, MaxFrame)
	for range 10 {
		g.Fill(a)
	}
	g.Unfill(4)
	for range 6 {
		ref.Fill(b)
	}
	for k := range 40 {
		na, nb := g.Fill(a), ref.Fill(b)
		if !slices.Equal(a[:na], b[:nb]) {
			t.Fatalf("packet %d after Unfill differs", k)
		}
	}
	if g.Packets() != ref.Packets() {
		t.Fatalf("packets %d, want %d", g.Packets(), ref.Packets())
	}
}

func TestGeneratorErrors(t *testing.T) {
	bad := []Config{
		testConfig("198.18.0.1", "2001:db8::1", 1, VarySrcPort, []int{128}),
		testConfig("2001:db8::1", "2001:db8::2", 1, VarySrcPort, []int{60}), // below IPv6 headers
		testConfig("198.18.0.1", "198.18.0.2", 0, VarySrcPort, []int{64}),
		testConfig("198.18.0.1", "198.18.0.2", MaxFlows+1, VarySrcPort, []int{64}),
		testConfig("255.255.255.250", "198.18.0.2", 10, VarySrcAddr, []int{64}),
		testConfig("198.18.0.1", "198.18.0.2", 1, VarySrcPort, nil),
		testConfig("198.18.0.1", "198.18.0.2", 1, VarySrcPort, []int{MaxFrame + 1}),
		{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"), Flows: 1, Sizes: []int{64}},
	}
	c := testConfig("198.18.0.1", "198.18.0.2", 100, VarySrcPort, []int{64})
	c.SrcPort = 65500
	bad = append(bad, c)
	for i, c := range bad {
		if _, err := NewGenerator(c); err == nil {
			t.Errorf("config %d: no error", i)
		}
	}
}

func TestIMIXCycle(t *testing.T) {
	if len(IMIX) != 12 {
		t.Fatalf("cycle of %d", len(IMIX))
	}
	// Any 12 consecutive packets hold the exact mix, and the big frames
	// are spread out.
	g, err := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 5, VarySrcPort, IMIX))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxFrame)
	var sizes []int
	for range 12 * 10 {
		sizes = append(sizes, g.Fill(buf))
	}
	for start := 0; start+12 <= len(sizes); start++ {
		count := map[int]int{}
		for _, s := range sizes[start : start+12] {
			count[s]++
		}
		if count[64] != 7 || count[570] != 4 || count[1518] != 1 || len(count) != 3 {
			t.Fatalf("window at %d: %v", start, count)
		}
	}
	// Average frame size: (7×64 + 4×570 + 1×1518)/12.
	total := 0
	for _, s := range IMIX {
		total += s
	}
	if total != 7*64+4*570+1518 {
		t.Fatalf("total %d", total)
	}
	for i := 1; i < len(IMIX); i++ {
		if IMIX[i] == 570 && IMIX[i-1] == 570 && i > 1 && IMIX[i-2] == 570 {
			t.Fatalf("570-byte frames clumped: %v", IMIX)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"64", []int{64}, true}, {"512", []int{512}, true}, {"1400", []int{1400}, true},
		{"IMIX", IMIX, true}, {"imix", IMIX, true},
		{"59", nil, false}, {"1793", nil, false}, {"x", nil, false}, {"", nil, false}, {"-64", nil, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("ParseSize(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestFillAllocs(t *testing.T) {
	g, err := NewGenerator(testConfig("2001:db8::1", "2001:db8:1::1", 16, VarySrcAddr, IMIX))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxFrame)
	if a := testing.AllocsPerRun(1000, func() { g.Fill(buf) }); a != 0 {
		t.Fatalf("Fill allocates %v per packet", a)
	}
	s := NewSink(16, 9, true)
	n := g.Fill(buf)
	if a := testing.AllocsPerRun(1000, func() { s.Observe(buf[:n]) }); a != 0 {
		t.Fatalf("Observe allocates %v per packet", a)
	}
}

func BenchmarkFill64(b *testing.B) {
	g, err := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 64, VarySrcPort, []int{64}))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, MaxFrame)
	b.ReportAllocs()
	for b.Loop() {
		g.Fill(buf)
	}
}
