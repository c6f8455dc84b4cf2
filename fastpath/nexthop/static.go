package nexthop

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/xdpsec/xdpsec/fastpath"
)

// StaticTable is a fixed longest-prefix match of destination prefixes to
// hops, for configurations that pin their next hops (a point-to-point
// uplink, a lab). It is immutable, so Lookup is safe from any number of
// goroutines without synchronisation.
type StaticTable struct {
	v4, v6 staticFamily
}

// staticFamily holds one address family: the prefix lengths in use,
// longest first, and the hop of each masked prefix. Lookup tries each
// length once, so its cost is the number of distinct lengths, not the
// number of prefixes.
type staticFamily struct {
	lengths []int
	hops    map[netip.Prefix]fastpath.Hop
}

// NewStatic builds a StaticTable. Prefixes must be valid and must not
// overlap exactly once masked (10.0.0.1/8 and 10.0.0.0/8 are the same
// prefix); IPv4-mapped IPv6 prefixes are refused because destinations are
// looked up in their own family.
func NewStatic(routes map[netip.Prefix]fastpath.Hop) (*StaticTable, error) {
	t := &StaticTable{
		v4: staticFamily{hops: make(map[netip.Prefix]fastpath.Hop)},
		v6: staticFamily{hops: make(map[netip.Prefix]fastpath.Hop)},
	}
	for p, hop := range routes {
		if !p.IsValid() {
			return nil, fmt.Errorf("nexthop: static route %v: invalid prefix", p)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("nexthop: static route %v: IPv4-mapped prefix; write it as IPv4", p)
		}
		m := p.Masked()
		f := &t.v6
		if m.Addr().Is4() {
			f = &t.v4
		}
		if _, dup := f.hops[m]; dup {
			return nil, fmt.Errorf("nexthop: static route %v: duplicates %v", p, m)
		}
		f.hops[m] = hop
		if !slices.Contains(f.lengths, m.Bits()) {
			f.lengths = append(f.lengths, m.Bits())
		}
	}
	for _, f := range []*staticFamily{&t.v4, &t.v6} {
		slices.Sort(f.lengths)
		slices.Reverse(f.lengths)
	}
	return t, nil
}

// Lookup implements fastpath.NextHop: the hop of the longest prefix that
// contains dst.
func (t *StaticTable) Lookup(dst netip.Addr) (fastpath.Hop, bool) {
	f := &t.v6
	if dst.Is4() {
		f = &t.v4
	} else if !dst.IsValid() {
		return fastpath.Hop{}, false
	}
	for _, bits := range f.lengths {
		p, err := dst.Prefix(bits)
		if err != nil {
			continue
		}
		if hop, ok := f.hops[p]; ok {
			return hop, true
		}
	}
	return fastpath.Hop{}, false
}
