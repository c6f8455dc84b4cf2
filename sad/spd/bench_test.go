package spd

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// benchSPD builds the SPD of a hub with n sites: n PROTECT policies from
// the local LAN (192.168.0.0/16 or 2001:db8:ffff::/48) to distinct,
// randomly placed site prefixes (/24s in 10.0.0.0/8, or /64s in
// 2001:db8::/32), then a default BYPASS for everything. The flows are
// generated the same way for every n: flow j goes to a random host of site
// j mod n from a random LAN host, TCP with random ports, so every lookup
// resolves at a site prefix and the sizes are comparable.
func benchSPD(n int, v6 bool) (*SPD, []packet.FlowKey) {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	lan := netip.MustParsePrefix("192.168.0.0/16")
	def := &Policy{Name: "default", Action: Bypass, Selector: sad.Selector{
		Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")}}
	if v6 {
		lan = netip.MustParsePrefix("2001:db8:ffff::/48")
		def.Selector = sad.Selector{Src: netip.MustParsePrefix("::/0"), Dst: netip.MustParsePrefix("::/0")}
	}
	seen := map[netip.Prefix]bool{}
	ps := make([]*Policy, 0, n+1)
	for len(ps) < n {
		var dst netip.Prefix
		if v6 {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			for i := 4; i < 8; i++ {
				b[i] = byte(r.Uint32())
			}
			dst = netip.PrefixFrom(netip.AddrFrom16(b), 64)
		} else {
			dst = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), 0}), 24)
		}
		if seen[dst] || (v6 && lan.Overlaps(dst)) {
			continue
		}
		seen[dst] = true
		ps = append(ps, &Policy{Name: fmt.Sprint("site", len(ps)), Action: Protect, ReqID: uint32(len(ps) + 1),
			Selector: sad.Selector{Src: lan, Dst: dst}})
	}
	ps = append(ps, def)
	d := New()
	if err := d.Replace(ps); err != nil {
		panic(err)
	}
	host := func(p netip.Prefix) netip.Addr {
		b := p.Addr().AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			if r.IntN(2) == 1 {
				b[i/8] ^= 0x80 >> (i % 8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		return a
	}
	flows := make([]packet.FlowKey, 4096)
	for j := range flows {
		flows[j] = packet.FlowKey{Src: host(lan), Dst: host(ps[j%n].Selector.Dst), Proto: 6,
			SrcPort: uint16(1024 + r.IntN(60000)), DstPort: uint16(1 + r.IntN(1023))}
	}
	return d, flows
}

var sinkPolicy *Policy

func benchLookup(b *testing.B, v6 bool) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			d, flows := benchSPD(n, v6)
			ps := d.Policies()
			for j := range flows { // the flows must reach the site policies
				if got := d.Lookup(&flows[j]); got != ps[j%n] {
					b.Fatalf("flow %d: got %s", j, name(got))
				}
			}
			b.ReportAllocs()
			var p *Policy
			i := 0
			for b.Loop() {
				p = d.Lookup(&flows[i&(len(flows)-1)])
				i++
			}
			sinkPolicy = p
		})
	}
}

// BenchmarkLookup is the IPv4 hub: n site /24s plus a default. The ratio
// policies=10000 / policies=1 is the index's scaling.
func BenchmarkLookup(b *testing.B) { benchLookup(b, false) }

// BenchmarkLookupIPv6 is the same hub with /64 sites.
func BenchmarkLookupIPv6(b *testing.B) { benchLookup(b, true) }

// BenchmarkLinearScan is the baseline the index replaces: the naive
// ordered scan of RFC 4301 over the same SPD and flows.
func BenchmarkLinearScan(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			d, flows := benchSPD(n, false)
			ps := d.Policies()
			b.ReportAllocs()
			var p *Policy
			i := 0
			for b.Loop() {
				p = linear(ps, &flows[i&(len(flows)-1)])
				i++
			}
			sinkPolicy = p
		})
	}
}

// BenchmarkReplace is the writer's cost of publishing a list of n sites.
func BenchmarkReplace(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			d, _ := benchSPD(n, false)
			ps := d.Policies()
			b.ReportAllocs()
			for b.Loop() {
				if err := d.Replace(ps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
