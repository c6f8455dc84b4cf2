package spd

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// fuzzInput decodes fuzzer bytes into a policy list and flows. Addresses
// come from two bytes spread over the address so that prefixes of every
// length nest and overlap; running out of input reads zeros.
type fuzzInput struct {
	b []byte
}

func (in *fuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *fuzzInput) addr(v6 bool) netip.Addr {
	x, y := in.byte(), in.byte()
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, x, 0x0d, 0, 0, 0, y, x ^ y, 0, 0, 0, 0, 0, y, x})
	}
	return netip.AddrFrom4([4]byte{10, x, y, x ^ y})
}

func (in *fuzzInput) prefix(v6 bool) netip.Prefix {
	a := in.addr(v6)
	return netip.PrefixFrom(a, int(in.byte())%(a.BitLen()+1))
}

func (in *fuzzInput) ports() sad.PortRange {
	lo, w := in.byte(), in.byte()
	switch {
	case w == 0xff:
		return sad.PortRange{Lo: 65535, Hi: 0} // OPAQUE
	case w == 0xfe:
		return sad.PortRange{Lo: uint16(lo) + 1, Hi: uint16(lo)} // empty
	}
	return sad.PortRange{Lo: uint16(lo) * 4, Hi: uint16(lo)*4 + uint16(w)}
}

var fuzzProtos = [4]uint8{0, 1, 6, 17}

func (in *fuzzInput) policy(i int) *Policy {
	f := in.byte()
	p := &Policy{Action: Action(1 + int(f&3)%3)}
	v6 := f&4 != 0
	s := &p.Selector
	if f&8 == 0 {
		s.Dst = in.prefix(v6)
	}
	if f&16 == 0 {
		if !s.Dst.IsValid() && f&128 != 0 {
			v6 = !v6 // dst any: a source of either family
		}
		s.Src = in.prefix(v6)
	}
	s.Proto = fuzzProtos[(f>>5)&3]
	if s.Proto != 0 && s.Proto != 1 {
		s.SrcPorts, s.DstPorts = in.ports(), in.ports()
	}
	p.Name = string(rune('a' + i%26))
	return p
}

func (in *fuzzInput) flow() packet.FlowKey {
	f := in.byte()
	v6 := f&1 != 0
	k := packet.FlowKey{Src: in.addr(v6), Dst: in.addr(v6), Proto: fuzzProtos[(f>>1)&3]}
	k.SrcPort, k.DstPort = uint16(in.byte())*4, uint16(in.byte())*4
	switch f >> 5 {
	case 1:
		k.Src = in.addr(!v6) // mixed families
	case 2:
		k.Dst = netip.Addr{}
	case 3:
		k.Dst = k.Dst.WithZone("z") // a no-op for IPv4
	case 4:
		k.Src = netip.Addr{}
	case 5:
		if k.Dst.Is4() {
			k.Dst = netip.AddrFrom16(k.Dst.As16())
		}
	}
	return k
}

// FuzzLookup checks Lookup against the linear first-match reference, and
// the mirror's fail-closed property, on fuzzer-built lists and flows.
func FuzzLookup(f *testing.F) {
	f.Add([]byte{3, 0, 1, 2, 24, 3, 4, 16, 4, 5, 6, 64, 7, 8, 32, 9, 1, 2, 3, 4, 5, 6, 1, 1, 2, 3, 4, 5})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{6, 8, 16, 0x30, 20, 2, 24, 9, 20, 2, 16, 9, 20, 3, 32, 1, 24, 0, 0, 0x47, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		ps := make([]*Policy, int(in.byte())%40)
		for i := range ps {
			ps[i] = in.policy(i)
		}
		d := New()
		if err := d.Replace(ps); err != nil {
			t.Fatal(err) // the decoder never makes an invalid list
		}
		m := d.Mirror()
		checkMirrorShape(t, m)
		for range 64 {
			if len(in.b) == 0 {
				break
			}
			k := in.flow()
			if want, got := linear(ps, &k), d.Lookup(&k); want != got {
				t.Fatalf("flow %d %v:%d -> %v:%d: Lookup %s, linear %s", k.Proto, k.Src, k.SrcPort, k.Dst, k.DstPort, name(got), name(want))
			}
			if k.Src.IsValid() && k.Dst.IsValid() && k.Src.Is4() == k.Dst.Is4() && k.Src.Zone() == "" && k.Dst.Zone() == "" {
				checkMirrorFlow(t, m, Bypass, ps, &k)
			}
		}
	})
}
