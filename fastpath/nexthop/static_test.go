package nexthop

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath"
)

func TestStaticTable(t *testing.T) {
	h := func(b byte) fastpath.Hop {
		return fastpath.Hop{Src: [6]byte{2, 0, 0, 0, 0, 1}, Dst: [6]byte{2, 0, 0, 0, 0, b}}
	}
	st, err := NewStatic(map[netip.Prefix]fastpath.Hop{
		netip.MustParsePrefix("0.0.0.0/0"):          h(1),
		netip.MustParsePrefix("198.18.0.0/15"):      h(2),
		netip.MustParsePrefix("198.18.7.0/24"):      h(3),
		netip.MustParsePrefix("198.18.7.9/32"):      h(4),
		netip.MustParsePrefix("2001:db8::/32"):      h(6),
		netip.MustParsePrefix("2001:db8:1:2::5/64"): h(7), // host bits are ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dst  string
		want byte // 0: no answer
	}{
		{"203.0.113.1", 1},
		{"198.19.255.255", 2},
		{"198.18.7.1", 3},
		{"198.18.7.9", 4},
		{"198.18.8.9", 2},
		{"2001:db8::1", 6},
		{"2001:db8:1:2::99", 7},
		{"2001:db8:1:3::99", 6},
		{"2001:db9::1", 0}, // no IPv6 default
		{"::ffff:198.18.7.9", 0},
		{"fe80::1%eth0", 0},
	}
	for _, tt := range tests {
		got, ok := st.Lookup(netip.MustParseAddr(tt.dst))
		if ok != (tt.want != 0) || (ok && got != h(tt.want)) {
			t.Errorf("Lookup(%s) = %v, %v; want hop %d", tt.dst, got, ok, tt.want)
		}
	}
	if _, ok := st.Lookup(netip.Addr{}); ok {
		t.Error("Lookup(zero Addr) answered")
	}
	a := netip.MustParseAddr("2001:db8:1:2::1")
	if n := testing.AllocsPerRun(1000, func() { st.Lookup(a) }); n != 0 {
		t.Errorf("Lookup: %v allocations", n)
	}
}

func TestNewStaticErrors(t *testing.T) {
	tests := []struct {
		name   string
		routes map[netip.Prefix]fastpath.Hop
	}{
		{"invalid", map[netip.Prefix]fastpath.Hop{{}: {}}},
		{"duplicate once masked", map[netip.Prefix]fastpath.Hop{
			netip.MustParsePrefix("198.18.0.0/16"): {}, netip.MustParsePrefix("198.18.1.1/16"): {}}},
		{"mapped", map[netip.Prefix]fastpath.Hop{netip.MustParsePrefix("::ffff:198.18.0.0/112"): {}}},
	}
	for _, tt := range tests {
		if _, err := NewStatic(tt.routes); err == nil {
			t.Errorf("%s: NewStatic succeeded", tt.name)
		}
	}
}

func BenchmarkStaticLookup(b *testing.B) {
	st, err := NewStatic(map[netip.Prefix]fastpath.Hop{
		netip.MustParsePrefix("0.0.0.0/0"):     {},
		netip.MustParsePrefix("198.18.0.0/15"): {},
		netip.MustParsePrefix("198.18.7.0/24"): {},
	})
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("203.0.113.9") // misses /24 and /15: the longest walk
	b.ReportAllocs()
	for b.Loop() {
		st.Lookup(a)
	}
}
