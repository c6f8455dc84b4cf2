package sad

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// TestMatchInnerAgreesWithMatches: the compiled selectors give the same
// answer as Selector.Matches for random selectors and flows of both
// families, including mixed-family selectors and port ranges.
func TestMatchInnerAgreesWithMatches(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			b[0], b[1], b[15] = 0x20, 0x01, byte(r.IntN(4))
			b[7] = byte(r.IntN(4))
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(3)), byte(r.IntN(4))})
	}
	prefix := func() netip.Prefix {
		switch r.IntN(4) {
		case 0:
			return netip.Prefix{}
		case 1:
			return netip.PrefixFrom(addr(true), []int{0, 48, 64, 100, 127, 128}[r.IntN(6)]).Masked()
		}
		return netip.PrefixFrom(addr(false), []int{0, 8, 16, 24, 31, 32}[r.IntN(6)]).Masked()
	}
	ports := func() PortRange {
		switch r.IntN(3) {
		case 0:
			return PortRange{}
		case 1:
			p := uint16(r.IntN(4))
			return PortRange{p, p}
		}
		return PortRange{uint16(r.IntN(3)), uint16(1 + r.IntN(4))}
	}
	matched := 0
	for i := 0; i < 3000; i++ {
		var sels []Selector
		for j := r.IntN(3) + 1; j > 0; j-- {
			sels = append(sels, Selector{Src: prefix(), Dst: prefix(), Proto: []uint8{0, 6, 17}[r.IntN(3)], SrcPorts: ports(), DstPorts: ports()})
		}
		sa, err := New(Config{SPI: 0x1000, Dir: Inbound, Mode: Tunnel, Local: netip.MustParseAddr("192.0.2.1"),
			Remote: netip.MustParseAddr("192.0.2.2"), Suite: AESGCM128, Key: make([]byte, 20), Selectors: sels})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 20; j++ {
			v6 := r.IntN(2) == 0
			k := packet.FlowKey{Src: addr(v6), Dst: addr(v6), Proto: []uint8{1, 6, 17}[r.IntN(3)]}
			if k.Proto != 1 {
				k.SrcPort, k.DstPort = uint16(r.IntN(5)), uint16(r.IntN(5))
			}
			f := packet.InnerFlow{V6: v6, Proto: k.Proto, SrcPort: k.SrcPort, DstPort: k.DstPort}
			if v6 {
				s, d := k.Src.As16(), k.Dst.As16()
				f.SrcHi, f.SrcLo = be64(s[:8]), be64(s[8:])
				f.DstHi, f.DstLo = be64(d[:8]), be64(d[8:])
			} else {
				s, d := k.Src.As4(), k.Dst.As4()
				f.SrcLo, f.DstLo = be64(s[:]), be64(d[:])
			}
			want := false
			for x := range sels {
				want = want || sels[x].Matches(&k)
			}
			if got := sa.MatchInner(&f); got != want {
				t.Fatalf("selectors %+v flow %+v: compiled %v, Matches %v", sels, k, got, want)
			}
			if want {
				matched++
			}
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d of 60000 flows matched: the test does not exercise matching", matched)
	}
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
