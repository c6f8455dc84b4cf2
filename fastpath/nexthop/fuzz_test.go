package nexthop

import (
	"net/netip"
	"testing"
)

// FuzzCache drives the cache with a sequence of puts and removes (three
// bytes an operation) and checks it against a model: it never holds more
// than its slots, its count is right, and whatever it finds is the last
// entry put for that destination.
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 2, 2, 1, 0, 0})
	f.Add([]byte{0, 1, 1, 0, 1, 2, 0, 1, 3, 2, 1, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		c := newCache(8, 11, 12)
		last := make(map[netip.Addr]*entry)
		for i := 0; i+2 < len(ops); i += 3 {
			a := netip.AddrFrom4([4]byte{198, 18, 0, ops[i+1] & 0x3f})
			switch ops[i] % 3 {
			case 0, 1:
				e := &entry{dst: a, ok: ops[i+2]&1 == 0, born: int64(i)}
				if ops[i+2]&2 != 0 {
					e.ref.Store(1)
				}
				c.put(e)
				last[a] = e
			case 2:
				c.remove(int(ops[i+2]) % len(c.slots))
			}
		}
		live := 0
		c.each(func(_ int, e *entry) {
			live++
			if last[e.dst] != e {
				t.Fatalf("cache holds a superseded entry for %v", e.dst)
			}
		})
		if live != c.n || live > len(c.slots) || int64(live) != c.published.Load() {
			t.Fatalf("%d live entries, count %d, %d slots", live, c.n, len(c.slots))
		}
		for a, e := range last {
			if got := c.find(a, c.hash(a)); got != nil && got != e {
				t.Fatalf("find(%v) returned a superseded entry", a)
			}
		}
	})
}
