package nexthop

import (
	"math/bits"
	"net/netip"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/fastpath"
)

// entry is one cached answer. It is immutable once published, except for
// ref, so readers need nothing but the atomic load of its slot.
type entry struct {
	dst netip.Addr
	hop fastpath.Hop
	// ok is false for a remembered miss (the next hop is being resolved,
	// or the destination is not routed out of this interface): Lookup
	// answers false without queueing the destination again.
	ok bool
	// nh is the neighbour whose address the hop carries (the gateway or
	// dst itself); invalid when no neighbour is involved.
	nh netip.Addr
	// born is when the entry was made (nanoseconds since the table began).
	born int64
	// ref is set by readers and cleared by each sweep: a CLOCK bit that
	// tells eviction which entries are in use.
	ref atomic.Uint32
}

// cache is a 2-way set-associative hash of destination to entry. Readers
// are lock-free; there is a single writer (the table's goroutine). The
// hash is keyed with a random seed so that chosen destinations cannot
// target one set.
type cache struct {
	slots      []atomic.Pointer[entry]
	mask       uint64
	seed0      uint64
	seed1      uint64
	n          int          // live entries; writer only
	published  atomic.Int64 // n, for Stats
	evictCount atomic.Uint64
}

func newCache(maxEntries int, seed0, seed1 uint64) *cache {
	size := 2
	for size < maxEntries {
		size <<= 1
	}
	return &cache{
		slots: make([]atomic.Pointer[entry], size),
		mask:  uint64(size - 1),
		seed0: seed0 | 1,
		seed1: seed1,
	}
}

// hash mixes the 128 address bits with the seed (a multiply-fold in the
// manner of wyhash), so set indexes are unpredictable without the seed.
func (c *cache) hash(a netip.Addr) uint64 {
	b := a.As16()
	hi := uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
	lo := uint64(b[8])<<56 | uint64(b[9])<<48 | uint64(b[10])<<40 | uint64(b[11])<<32 |
		uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])
	if a.Is4() {
		// Keep 192.0.2.1 and ::ffff:192.0.2.1 apart.
		hi ^= 0x9e3779b97f4a7c15
	}
	m1, m0 := bits.Mul64(hi^c.seed0, lo^c.seed1)
	m1, m0 = bits.Mul64(m1^m0, 0xa0761d6478bd642f^c.seed1)
	return m1 ^ m0
}

// find returns the entry for dst, or nil.
func (c *cache) find(dst netip.Addr, h uint64) *entry {
	i := h & c.mask &^ 1
	if e := c.slots[i].Load(); e != nil && e.dst == dst {
		return e
	}
	if e := c.slots[i+1].Load(); e != nil && e.dst == dst {
		return e
	}
	return nil
}

// put publishes e, replacing the entry for the same destination or, when
// the set is full, evicting the less useful way: a remembered miss before
// an answer, an unreferenced entry before a referenced one, then the
// older. Writer only.
func (c *cache) put(e *entry) {
	i := c.hash(e.dst) & c.mask &^ 1
	a, b := c.slots[i].Load(), c.slots[i+1].Load()
	switch {
	case a != nil && a.dst == e.dst:
		c.slots[i].Store(e)
		return
	case b != nil && b.dst == e.dst:
		c.slots[i+1].Store(e)
		return
	case a == nil:
		c.slots[i].Store(e)
	case b == nil:
		c.slots[i+1].Store(e)
	default:
		victim := i
		if worse(b, a) {
			victim = i + 1
		}
		c.slots[victim].Store(e)
		c.evictCount.Add(1)
		return // one in, one out: n unchanged
	}
	c.n++
	c.published.Store(int64(c.n))
}

// worse reports whether x is the better eviction victim than y.
func worse(x, y *entry) bool {
	if x.ok != y.ok {
		return !x.ok
	}
	xr, yr := x.ref.Load() != 0, y.ref.Load() != 0
	if xr != yr {
		return !xr
	}
	return x.born < y.born
}

// replace swaps the entry in slot i for e (same destination). Writer only.
func (c *cache) replace(i int, e *entry) { c.slots[i].Store(e) }

// remove clears slot i. Writer only.
func (c *cache) remove(i int) {
	if c.slots[i].Swap(nil) != nil {
		c.n--
		c.published.Store(int64(c.n))
	}
}

// each calls f with every live entry and its slot. Writer only.
func (c *cache) each(f func(i int, e *entry)) {
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil {
			f(i, e)
		}
	}
}
