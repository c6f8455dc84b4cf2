package spd

import (
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func pol(name string, a Action, src, dst string, proto uint8, sp, dp sad.PortRange) *Policy {
	p := &Policy{Name: name, Action: a}
	if src != "" {
		p.Selector.Src = pfx(src)
	}
	if dst != "" {
		p.Selector.Dst = pfx(dst)
	}
	p.Selector.Proto = proto
	p.Selector.SrcPorts, p.Selector.DstPorts = sp, dp
	return p
}

func fk(src, dst string, proto uint8, sport, dport uint16) packet.FlowKey {
	k := packet.FlowKey{Proto: proto, SrcPort: sport, DstPort: dport}
	if src != "" {
		k.Src = addr(src)
	}
	if dst != "" {
		k.Dst = addr(dst)
	}
	return k
}

// linear is the reference: RFC 4301's ordered, first-match search done
// the obvious way.
func linear(ps []*Policy, k *packet.FlowKey) *Policy {
	for _, p := range ps {
		if p.Selector.Matches(k) {
			return p
		}
	}
	return nil
}

func name(p *Policy) string {
	if p == nil {
		return "<nil>"
	}
	return p.Name
}

var anyPorts sad.PortRange

func TestLookupFirstMatch(t *testing.T) {
	const tcp, udp, icmp = 6, 17, 1
	ps := []*Policy{
		pol("ike", Bypass, "", "", udp, anyPorts, sad.PortRange{Lo: 500, Hi: 500}),
		pol("dns-discard", Discard, "192.168.1.0/24", "10.1.0.0/16", udp, anyPorts, sad.PortRange{Lo: 53, Hi: 53}),
		pol("site-a", Protect, "192.168.0.0/16", "10.1.0.0/16", 0, anyPorts, anyPorts),
		pol("site-a-host", Protect, "192.168.0.0/16", "10.1.2.3/32", 0, anyPorts, anyPorts), // shadowed by site-a for 192.168/16
		pol("host-any-src", Discard, "", "10.1.2.3/32", 0, anyPorts, anyPorts),
		pol("web", Protect, "", "10.2.0.0/24", tcp, sad.PortRange{Lo: 1024, Hi: 65535}, sad.PortRange{Lo: 80, Hi: 443}),
		pol("net10", Discard, "", "10.0.0.0/8", 0, anyPorts, anyPorts),
		pol("v6-site", Protect, "2001:db8:1::/48", "2001:db8:2::/48", 0, anyPorts, anyPorts),
		pol("v6-narrow", Bypass, "", "2001:db8:2:1::/64", icmp, anyPorts, anyPorts),
		pol("v6-src-only", Discard, "2001:db8:ffff::/48", "", 0, anyPorts, anyPorts),
		pol("v4-src-only", Bypass, "172.16.0.0/12", "", 0, anyPorts, anyPorts),
		pol("default6", Bypass, "::/0", "::/0", 0, anyPorts, anyPorts),
	}
	d := New()
	if err := d.Replace(ps); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		k    packet.FlowKey
		want string
	}{
		{"ike to anywhere wins by order", fk("192.168.1.1", "10.1.0.1", udp, 500, 500), "ike"},
		{"ike v6", fk("2001:db8:1::1", "2001:db8:2::1", udp, 4500, 500), "ike"},
		{"dns from the discard subnet", fk("192.168.1.9", "10.1.5.5", udp, 3333, 53), "dns-discard"},
		{"dns from elsewhere in the LAN", fk("192.168.2.9", "10.1.5.5", udp, 3333, 53), "site-a"},
		{"tcp to 53 is not udp", fk("192.168.1.9", "10.1.5.5", tcp, 3333, 53), "site-a"},
		{"first match beats longer prefix", fk("192.168.7.7", "10.1.2.3", tcp, 1, 2), "site-a"},
		{"longer prefix when the earlier one misses by source", fk("172.31.0.1", "10.1.2.3", tcp, 1, 2), "host-any-src"},
		{"web in port range", fk("1.2.3.4", "10.2.0.9", tcp, 40000, 443), "web"},
		{"web low edge", fk("1.2.3.4", "10.2.0.9", tcp, 1024, 80), "web"},
		{"web source port below range", fk("1.2.3.4", "10.2.0.9", tcp, 1023, 443), "net10"},
		{"web dst port above range", fk("1.2.3.4", "10.2.0.9", tcp, 2000, 444), "net10"},
		{"web wrong proto", fk("1.2.3.4", "10.2.0.9", udp, 2000, 443), "net10"},
		{"outside 10/8 from v4-src-only", fk("172.16.5.5", "8.8.8.8", tcp, 1, 2), "v4-src-only"},
		{"outside everything v4", fk("1.1.1.1", "8.8.8.8", tcp, 1, 2), "<nil>"},
		{"v6 site", fk("2001:db8:1::5", "2001:db8:2:1::5", icmp, 0, 0), "v6-site"},
		{"v6 narrow after site misses by source", fk("2001:db8:9::5", "2001:db8:2:1::5", icmp, 0, 0), "v6-narrow"},
		{"v6 narrow wrong proto falls to src-only", fk("2001:db8:ffff::5", "2001:db8:2:1::5", tcp, 1, 2), "v6-src-only"},
		{"v6 default", fk("2001:db8:9::5", "2001:db8:2:1::5", tcp, 1, 2), "default6"},
		{"v4 source policy does not match v6 source", fk("2001:db8:9::5", "8.8.8.8", tcp, 1, 2), "<nil>"},
		{"v4 source with v6 destination still matches dst-any", fk("172.16.0.1", "2001:db8:2::1", tcp, 1, 2), "v4-src-only"},
		{"4in6 destination is IPv6, not IPv4", fk("192.168.1.1", "::ffff:10.1.0.1", tcp, 1, 2), "<nil>"},
		{"4in6 both sides matches ::/0", fk("::ffff:192.168.1.1", "::ffff:10.1.0.1", tcp, 1, 2), "default6"},
		{"invalid destination only dst-any", packet.FlowKey{Src: addr("172.16.0.1"), Proto: tcp}, "v4-src-only"},
		{"invalid destination and source", packet.FlowKey{Proto: udp, DstPort: 500}, "ike"},
		{"zoned destination only dst-any", packet.FlowKey{Src: addr("2001:db8:ffff::1"), Dst: addr("fe80::1%eth0"), Proto: tcp}, "v6-src-only"},
		{"zoned source is in no prefix", packet.FlowKey{Src: addr("2001:db8:1::1%eth0"), Dst: addr("2001:db8:2::1"), Proto: tcp}, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := d.Lookup(&tt.k)
			if name(got) != tt.want {
				t.Errorf("Lookup = %s, want %s", name(got), tt.want)
			}
			if ref := linear(ps, &tt.k); ref != got {
				t.Errorf("reference says %s, Lookup %s", name(ref), name(got))
			}
		})
	}
}

func TestPortRangeEdges(t *testing.T) {
	const udp = 17
	ps := []*Policy{
		pol("empty", Discard, "", "", udp, sad.PortRange{Lo: 10, Hi: 9}, anyPorts),           // matches nothing
		pol("opaque", Discard, "", "", udp, anyPorts, sad.PortRange{Lo: 65535, Hi: 0}),       // RFC 7296 OPAQUE: nothing here
		pol("top", Bypass, "", "", udp, sad.PortRange{Lo: 65535, Hi: 65535}, anyPorts),       // highest port only
		pol("zero-to-max", Protect, "", "", udp, anyPorts, sad.PortRange{Lo: 0, Hi: 0xffff}), // any
	}
	d := New()
	if err := d.Replace(ps); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		k    packet.FlowKey
		want string
	}{
		{fk("1.1.1.1", "2.2.2.2", udp, 10, 1), "zero-to-max"},
		{fk("1.1.1.1", "2.2.2.2", udp, 65535, 1), "top"},
		{fk("1.1.1.1", "2.2.2.2", udp, 65534, 0), "zero-to-max"},
		{fk("1.1.1.1", "2.2.2.2", 6, 65535, 0), "<nil>"},
	} {
		if got := d.Lookup(&tt.k); name(got) != tt.want {
			t.Errorf("%+v: got %s, want %s", tt.k, name(got), tt.want)
		}
	}
}

func TestReplaceValidation(t *testing.T) {
	ok := pol("ok", Bypass, "", "", 0, anyPorts, anyPorts)
	tests := []struct {
		name string
		ps   []*Policy
		want error
	}{
		{"nil", []*Policy{ok, nil}, ErrNilPolicy},
		{"duplicate", []*Policy{ok, ok}, ErrDuplicate},
		{"zero action", []*Policy{{Name: "x"}}, ErrBadAction},
		{"unknown action", []*Policy{{Name: "x", Action: 9}}, ErrBadAction},
		{"family mismatch", []*Policy{pol("x", Protect, "10.0.0.0/8", "2001:db8::/32", 0, anyPorts, anyPorts)}, ErrFamilyMismatch},
		{"4in6 vs v4 mismatch", []*Policy{pol("x", Protect, "::ffff:10.0.0.0/104", "10.0.0.0/8", 0, anyPorts, anyPorts)}, ErrFamilyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New()
			before := d.Policies()
			err := d.Replace(tt.ps)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Replace = %v, want %v", err, tt.want)
			}
			if got := d.Policies(); len(got) != len(before) {
				t.Errorf("a failed Replace changed the SPD: %d policies", len(got))
			}
		})
	}
	if err := New().Replace(make([]*Policy, MaxPolicies+1)); !errors.Is(err, ErrTooMany) {
		t.Errorf("oversized list: %v", err)
	}
}

func TestWriters(t *testing.T) {
	k := fk("192.168.0.1", "10.0.0.1", 6, 1000, 22)
	a := pol("a", Protect, "", "10.0.0.0/8", 0, anyPorts, anyPorts)
	b := pol("b", Discard, "", "10.0.0.0/24", 0, anyPorts, anyPorts)
	c := pol("c", Bypass, "", "", 0, anyPorts, anyPorts)
	d := New()
	steps := []struct {
		do    func() error
		order string
		want  string
	}{
		{func() error { return d.Insert(c, 0) }, "c", "c"},
		{func() error { return d.Insert(a, 0) }, "ac", "a"},
		{func() error { return d.Insert(b, -1) }, "acb", "a"},
		{func() error { return d.Remove(a) }, "cb", "c"},
		{func() error { return d.Insert(a, 1) }, "cab", "c"},
		{func() error { return d.Remove(c) }, "ab", "a"},
		{func() error { return d.Insert(b, 99) }, "ab", "a"}, // duplicate: refused
		{func() error { return d.Replace([]*Policy{b, a}) }, "ba", "b"},
		{func() error { return d.Remove(c) }, "ba", "b"}, // not present
	}
	for i, s := range steps {
		err := s.do()
		var order string
		for _, p := range d.Policies() {
			order += p.Name
		}
		if order != s.order {
			t.Fatalf("step %d: order %q, want %q (err %v)", i, order, s.order, err)
		}
		if got := d.Lookup(&k); name(got) != s.want {
			t.Fatalf("step %d: Lookup %s, want %s", i, name(got), s.want)
		}
		if d.Len() != len(s.order) {
			t.Fatalf("step %d: Len %d", i, d.Len())
		}
	}
	if err := d.Insert(a, 0); !errors.Is(err, ErrDuplicate) {
		t.Errorf("re-insert: %v", err)
	}
	if err := d.Remove(c); !errors.Is(err, ErrNotFound) {
		t.Errorf("remove absent: %v", err)
	}
	if err := d.Remove(nil); !errors.Is(err, ErrNilPolicy) {
		t.Errorf("remove nil: %v", err)
	}
}

func TestReplaceCopiesSlice(t *testing.T) {
	a := pol("a", Protect, "", "", 0, anyPorts, anyPorts)
	ps := []*Policy{a}
	d := New()
	if err := d.Replace(ps); err != nil {
		t.Fatal(err)
	}
	ps[0] = pol("evil", Discard, "", "", 0, anyPorts, anyPorts)
	k := fk("1.1.1.1", "2.2.2.2", 6, 1, 2)
	if got := d.Lookup(&k); got != a {
		t.Fatalf("caller's slice changed the published list: %s", name(got))
	}
	got := d.Policies()
	got[0] = nil
	if d.Lookup(&k) != a {
		t.Fatal("Policies returned the internal slice")
	}
}

func TestSABindingNeedsNoRebuild(t *testing.T) {
	p := pol("p", Protect, "", "10.0.0.0/8", 0, anyPorts, anyPorts)
	d := New()
	if err := d.Replace([]*Policy{p}); err != nil {
		t.Fatal(err)
	}
	before := d.cur.Load()
	k := fk("192.168.0.1", "10.1.1.1", 6, 1, 2)
	if got := d.Lookup(&k); got != p || got.SA.Load() != nil {
		t.Fatal("want p with no SA")
	}
	sa := &sad.SA{SPI: 0x1234}
	p.SA.Store(sa)
	if got := d.Lookup(&k); got.SA.Load() != sa {
		t.Fatal("rebinding the SA is not visible through Lookup")
	}
	if d.cur.Load() != before {
		t.Fatal("binding an SA republished the index")
	}
}

func TestZeroSPD(t *testing.T) {
	var d SPD
	k := fk("1.1.1.1", "2.2.2.2", 6, 1, 2)
	if d.Lookup(&k) != nil || d.Len() != 0 {
		t.Fatal("zero SPD is not empty")
	}
	m := d.Mirror()
	if len(m) != 2 || m[0].Action != MirrorBypass || m[1].Action != MirrorBypass {
		t.Fatalf("zero SPD mirror: %v", m)
	}
	p := pol("p", Discard, "", "", 0, anyPorts, anyPorts)
	if err := d.Insert(p, 0); err != nil {
		t.Fatal(err)
	}
	if d.Lookup(&k) != p {
		t.Fatal("zero SPD did not take an insert")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	d, flows := benchSPD(1000, false)
	v6, flows6 := benchSPD(1000, true)
	odd := packet.FlowKey{Src: addr("10.0.0.1"), Proto: 6}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		d.Lookup(&flows[i%len(flows)])
		v6.Lookup(&flows6[i%len(flows6)])
		d.Lookup(&odd)
		i++
	})
	if n != 0 {
		t.Fatalf("Lookup allocates %.1f times per call", n)
	}
}

func TestAddrRepr(t *testing.T) {
	if !reprOK {
		t.Fatal("netip.Addr no longer has the expected layout: Lookup runs on the slower As16 path; update addrRepr")
	}
	g := newGen(5)
	for range 1000 {
		for _, a := range []netip.Addr{g.near(false), g.near(true), g.near(true).WithZone("x")} {
			h1, l1 := words(&a)
			h2, l2 := wordsSlow(&a)
			if h1 != h2 || l1 != l2 {
				t.Fatalf("%v: %x %x != %x %x", a, h1, l1, h2, l2)
			}
		}
	}
	if s := unsafe.Sizeof(rule{}); s != 64 {
		t.Errorf("rule is %d bytes, want one 64-byte cache line", s)
	}
}

func TestLookupCached(t *testing.T) {
	d := New()
	a := &Policy{Name: "a", Selector: sad.Selector{Dst: netip.MustParsePrefix("198.18.0.0/16")}, Action: Protect}
	if err := d.Replace([]*Policy{a}); err != nil {
		t.Fatal(err)
	}
	var c Cache
	k := packet.FlowKey{Src: netip.MustParseAddr("198.19.0.1"), Dst: netip.MustParseAddr("198.18.0.1"), Proto: 17}
	// The first lookup fills the cache, the second is answered from it.
	if d.LookupCached(&c, &k) != a {
		t.Fatal("first lookup missed")
	}
	if d.LookupCached(&c, &k) != a {
		t.Fatal("cached lookup missed")
	}
	k2 := k
	k2.Dst = netip.MustParseAddr("198.20.0.1")
	if d.LookupCached(&c, &k2) != nil {
		t.Fatal("cache answered for another flow")
	}
	// A new publication invalidates the cache.
	b := &Policy{Name: "b", Selector: sad.Selector{Dst: netip.MustParsePrefix("198.18.0.0/24")}, Action: Discard}
	if err := d.Replace([]*Policy{b, a}); err != nil {
		t.Fatal(err)
	}
	if d.LookupCached(&c, &k) != b {
		t.Fatal("stale cached answer after Replace")
	}
	if n := testing.AllocsPerRun(100, func() { d.LookupCached(&c, &k) }); n != 0 {
		t.Fatalf("allocs %v", n)
	}
}
