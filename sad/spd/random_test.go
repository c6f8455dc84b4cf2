package spd

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// gen draws policy lists and flows that collide often: addresses are
// derived from a few base addresses with a random number of leading bits
// kept, so prefixes nest and overlap and flows land inside them.
type gen struct {
	r     *rand.Rand
	bases []netip.Addr
}

func newGen(seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	for range 6 {
		var b4 [4]byte
		var b16 [16]byte
		for i := range b4 {
			b4[i] = byte(g.r.Uint32())
		}
		for i := range b16 {
			b16[i] = byte(g.r.Uint32())
		}
		g.bases = append(g.bases, netip.AddrFrom4(b4), netip.AddrFrom16(b16))
	}
	return g
}

// near returns an address of the given family sharing a random number of
// leading bits with one of the bases.
func (g *gen) near(v6 bool) netip.Addr {
	var a netip.Addr
	for {
		a = g.bases[g.r.IntN(len(g.bases))]
		if a.Is6() == v6 {
			break
		}
	}
	keep := g.r.IntN(a.BitLen() + 1)
	if g.r.IntN(2) == 0 { // favour long shared prefixes: deep nesting
		keep = a.BitLen() - g.r.IntN(16)
		keep = max(keep, 0)
	}
	b := a.AsSlice()
	for i := keep; i < len(b)*8; i++ {
		if g.r.IntN(2) == 1 {
			b[i/8] ^= 0x80 >> (i % 8)
		}
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

var lens4 = []int{0, 8, 16, 24, 32}
var lens6 = []int{0, 32, 48, 64, 128}

func (g *gen) prefix(v6 bool) netip.Prefix {
	a := g.near(v6)
	var n int
	switch {
	case g.r.IntN(3) == 0:
		n = g.r.IntN(a.BitLen() + 1)
	case v6:
		n = lens6[g.r.IntN(len(lens6))]
	default:
		n = lens4[g.r.IntN(len(lens4))]
	}
	p := netip.PrefixFrom(a, n)
	if g.r.IntN(2) == 0 {
		p = p.Masked() // unmasked prefixes are legal too
	}
	return p
}

var protos = []uint8{1, 6, 17, 50}
var ports = []uint16{0, 22, 53, 80, 443, 500, 1024, 4500, 65535}

func (g *gen) portRange() sad.PortRange {
	switch g.r.IntN(10) {
	case 0, 1, 2, 3, 4, 5:
		return sad.PortRange{}
	case 6:
		p := ports[g.r.IntN(len(ports))]
		return sad.PortRange{Lo: p, Hi: p}
	case 7:
		return sad.PortRange{Lo: 65535, Hi: 0} // OPAQUE
	default:
		lo := ports[g.r.IntN(len(ports))]
		return sad.PortRange{Lo: lo, Hi: lo + uint16(min(g.r.IntN(2000), int(65535-lo)))}
	}
}

func (g *gen) policy(i int, v6 bool) *Policy {
	p := &Policy{Name: fmt.Sprint("p", i), Action: Action(1 + g.r.IntN(3))}
	s := &p.Selector
	if g.r.IntN(6) != 0 {
		s.Dst = g.prefix(v6)
	}
	if g.r.IntN(2) == 0 {
		if s.Dst.IsValid() {
			s.Src = g.prefix(v6)
		} else {
			s.Src = g.prefix(g.r.IntN(2) == 0) // dst any: either family
		}
	}
	if g.r.IntN(2) == 0 {
		s.Proto = protos[g.r.IntN(len(protos))]
	}
	s.SrcPorts, s.DstPorts = g.portRange(), g.portRange()
	return p
}

// setDst gives p the destination d, redrawing a source of the other
// family.
func (g *gen) setDst(p *Policy, d netip.Prefix) {
	p.Selector.Dst = d
	if s := p.Selector.Src; s.IsValid() && s.Addr().Is4() != d.Addr().Is4() {
		p.Selector.Src = g.prefix(d.Addr().Is6())
	}
}

// policies draws n policies of mixed families.
func (g *gen) policies(n int) []*Policy {
	ps := make([]*Policy, n)
	for i := range ps {
		ps[i] = g.policy(i, g.r.IntN(2) == 0)
	}
	return ps
}

func (g *gen) port() uint16 {
	if g.r.IntN(3) == 0 {
		return uint16(g.r.Uint32())
	}
	return ports[g.r.IntN(len(ports))]
}

// flow draws a flow; odd allows the shapes no parser produces (mixed
// families, invalid and zoned addresses) to check Lookup's exactness.
func (g *gen) flow(odd bool) packet.FlowKey {
	v6 := g.r.IntN(2) == 0
	k := packet.FlowKey{Src: g.near(v6), Dst: g.near(v6), SrcPort: g.port(), DstPort: g.port()}
	if g.r.IntN(5) != 0 {
		k.Proto = protos[g.r.IntN(len(protos))]
	} else {
		k.Proto = uint8(g.r.Uint32())
	}
	if !odd || g.r.IntN(4) != 0 {
		return k
	}
	switch g.r.IntN(6) {
	case 0:
		k.Src = g.near(!v6)
	case 1:
		k.Src = netip.Addr{}
	case 2:
		k.Dst = netip.Addr{}
	case 3:
		k.Dst = g.near(true).WithZone("eth0")
	case 4:
		k.Src = g.near(true).WithZone("eth1")
	case 5:
		if k.Dst.Is4() {
			k.Dst = netip.AddrFrom16(k.Dst.As16()) // 4in6: IPv6 to Contains
		}
	}
	return k
}

func TestDifferential(t *testing.T) {
	for _, tc := range []struct {
		policies, flows int
	}{
		{0, 200}, {1, 500}, {5, 2000}, {40, 4000}, {300, 4000}, {3000, 4000},
	} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("n=%d/seed=%d", tc.policies, seed), func(t *testing.T) {
				g := newGen(seed*1000 + uint64(tc.policies))
				ps := g.policies(tc.policies)
				d := New()
				if err := d.Replace(ps); err != nil {
					t.Fatal(err)
				}
				checkAgainstLinear(t, d, ps, g, tc.flows)
			})
		}
	}
}

func checkAgainstLinear(t *testing.T, d *SPD, ps []*Policy, g *gen, flows int) {
	t.Helper()
	var hits int
	for range flows {
		k := g.flow(true)
		// Half the flows are aimed inside a random policy's selector so
		// that matches deep in the list are common.
		if len(ps) > 0 && g.r.IntN(2) == 0 {
			aim(g, ps[g.r.IntN(len(ps))], &k)
		}
		want, got := linear(ps, &k), d.Lookup(&k)
		if want != got {
			t.Fatalf("flow %v %v->%v %d->%d: Lookup %s, linear %s", k.Proto, k.Src, k.Dst, k.SrcPort, k.DstPort, name(got), name(want))
		}
		if want != nil {
			hits++
		}
	}
	if len(ps) > 20 && hits == 0 {
		t.Fatal("no flow matched any policy: the generator is not exercising the index")
	}
}

// aim moves k inside p's selector where the selector pins a field.
func aim(g *gen, p *Policy, k *packet.FlowKey) {
	s := &p.Selector
	inside := func(pr netip.Prefix) netip.Addr {
		b := pr.Addr().AsSlice()
		for i := pr.Bits(); i < len(b)*8; i++ {
			if g.r.IntN(2) == 1 {
				b[i/8] ^= 0x80 >> (i % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		return a
	}
	if s.Dst.IsValid() {
		k.Dst = inside(s.Dst)
	}
	if s.Src.IsValid() {
		k.Src = inside(s.Src)
	}
	if s.Proto != 0 {
		k.Proto = s.Proto
	}
	if !s.SrcPorts.AnyPort() && s.SrcPorts.Lo <= s.SrcPorts.Hi {
		k.SrcPort = s.SrcPorts.Lo + uint16(g.r.IntN(int(s.SrcPorts.Hi-s.SrcPorts.Lo)+1))
	}
	if !s.DstPorts.AnyPort() && s.DstPorts.Lo <= s.DstPorts.Hi {
		k.DstPort = s.DstPorts.Lo + uint16(g.r.IntN(int(s.DstPorts.Hi-s.DstPorts.Lo)+1))
	}
}

// TestDifferentialShapes covers the structures the random lists rarely
// produce: a large realistic SPD, every prefix length at once (deepest
// binary search), long nested chains and a fat group sharing one prefix.
func TestDifferentialShapes(t *testing.T) {
	g := newGen(99)
	shapes := map[string][]*Policy{}

	var site []*Policy
	d4, _ := benchSPD(2000, false)
	site = append(site, d4.Policies()...)
	d6, _ := benchSPD(2000, true)
	site = append(site, d6.Policies()...)
	shapes["sites"] = site

	var all []*Policy
	for _, v6 := range []bool{false, true} {
		a := g.near(v6)
		for n := 0; n <= a.BitLen(); n++ {
			for range 3 {
				p := g.policy(len(all), v6)
				if g.r.IntN(2) == 0 {
					g.setDst(p, netip.PrefixFrom(a, n)) // a nested chain through every length
				} else {
					g.setDst(p, netip.PrefixFrom(g.near(v6), n))
				}
				all = append(all, p)
			}
		}
	}
	g.r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	shapes["every-length"] = all

	var fat []*Policy
	dst := netip.MustParsePrefix("10.0.0.0/8")
	for i := range 500 {
		p := g.policy(i, false)
		g.setDst(p, dst)
		fat = append(fat, p)
		if i%50 == 0 {
			q := g.policy(i, false)
			g.setDst(q, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16))
			fat = append(fat, q)
		}
	}
	shapes["fat-group"] = fat

	for name, ps := range shapes {
		t.Run(name, func(t *testing.T) {
			d := New()
			if err := d.Replace(ps); err != nil {
				t.Fatal(err)
			}
			checkAgainstLinear(t, d, ps, g, 5000)
		})
	}
}

// TestProbeLengths guards the hash: realistic prefix sets must not build
// long probe chains, which an attacker could aim packets at.
func TestProbeLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sets := map[string]func(i int) netip.Prefix{
		"consecutive /24": func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		},
		"strided /24": func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 6), byte(i << 2), 0, 0}), 24)
		},
		"random /24": func(int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), 0}), 24)
		},
		"consecutive /32": func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
		},
		"consecutive /64": func(i int) netip.Prefix {
			var b [16]byte
			b[0], b[1], b[2], b[3], b[6], b[7] = 0x20, 0x01, 0x0d, 0xb8, byte(i>>8), byte(i)
			return netip.PrefixFrom(netip.AddrFrom16(b), 64)
		},
		"random /64": func(int) netip.Prefix {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			binary.BigEndian.PutUint32(b[4:], r.Uint32())
			return netip.PrefixFrom(netip.AddrFrom16(b), 64)
		},
		"consecutive /128": func(i int) netip.Prefix {
			var b [16]byte
			b[0], b[1], b[14], b[15] = 0x20, 0x01, byte(i>>8), byte(i)
			return netip.PrefixFrom(netip.AddrFrom16(b), 128)
		},
	}
	for name, mk := range sets {
		t.Run(name, func(t *testing.T) {
			seen := map[netip.Prefix]bool{}
			var ps []*Policy
			for len(ps) < 10000 {
				if d := mk(len(ps)); !seen[d] {
					seen[d] = true
					ps = append(ps, &Policy{Action: Protect, Selector: sad.Selector{Dst: d}})
				}
			}
			ix := build(ps)
			var dists []int
			size := 0
			if ps[0].Selector.Dst.Addr().Is4() {
				if len(ix.v4.lv4) != 1 {
					t.Fatalf("%d levels", len(ix.v4.lv4))
				}
				lv := &ix.v4.lv4[0]
				size = len(lv.slots)
				for i, s := range lv.slots {
					if s.ref != 0 {
						dists = append(dists, (i-int(uint64(s.key)*hashK1>>lv.shift)+size)%size)
					}
				}
			} else {
				if len(ix.v6.lv6) != 1 {
					t.Fatalf("%d levels", len(ix.v6.lv6))
				}
				lv := &ix.v6.lv6[0]
				size = len(lv.narrow) + len(lv.wide)
				for i, s := range lv.narrow {
					if s.ref != 0 {
						dists = append(dists, (i-int(s.hi*hashK1>>lv.shift)+size)%size)
					}
				}
				for i, s := range lv.wide {
					if s.ref != 0 {
						dists = append(dists, (i-int((s.hi*hashK1+s.lo*hashK2)>>lv.shift)+size)%size)
					}
				}
			}
			worst, sum := 0, 0
			for _, d := range dists {
				worst, sum = max(worst, d+1), sum+d+1
			}
			mean := float64(sum) / float64(len(dists))
			t.Logf("%d keys in %d slots: mean probes %.2f, worst %d", len(dists), size, mean, worst)
			if len(dists) != 10000 || mean > 2 || worst > 24 {
				t.Errorf("%d keys; hash clusters: mean %.2f, worst %d probes", len(dists), mean, worst)
			}
		})
	}
}
