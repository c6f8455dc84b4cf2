package sad

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Table maps SPIs to SAs. Lookups never lock and never allocate: the
// table is an open-addressing hash of atomic pointers, and a resize builds
// a new array and publishes it with one atomic store, so a reader sees
// either the old array or the new one, both complete. Writers serialise on
// a mutex. A deleted slot holds a tombstone until the next rebuild so that
// probe chains stay intact for readers already walking them.
//
// A worker that looked an SA up just before it was deleted may finish its
// batch with it; the garbage collector keeps the SA alive until then, and
// Kill makes Usable report false for the next batch. That is the "deleted
// SAs stay valid until no worker can hold them" rule of the design.
type Table struct {
	cur  atomic.Pointer[slots]
	mu   sync.Mutex // writers
	n    int        // live entries, under mu
	dead int        // tombstones, under mu
}

type slots struct {
	mask uint32
	s    []slot
}

// slot keeps the SPI beside the pointer so probing compares SPIs without
// touching the SAs. Writers store the pointer before the SPI, so a reader
// that sees an SPI sees its SA; a reader that catches a slot between the
// two stores probes on, and verifies the SA's own SPI before returning it.
type slot struct {
	spi atomic.Uint32
	sa  atomic.Pointer[SA]
}

// tombstone marks a deleted slot; it is never returned to readers.
var tombstone = &SA{}

const minSlots = 16

// NewTable returns an empty table sized for about hint SAs.
func NewTable(hint int) *Table {
	t := &Table{}
	t.cur.Store(newSlots(hint))
	return t
}

func newSlots(hint int) *slots {
	n := minSlots
	// Load factor ≤ 1/4: the slots are 16 bytes against an SA's ~1 KiB,
	// and at 1/4 a hit needs ~1.17 probes on average (linear probing),
	// so a table of a million SAs costs about what a table of one does.
	for n < 4*hint {
		n <<= 1
	}
	return &slots{mask: uint32(n - 1), s: make([]slot, n)}
}

// hash spreads SPIs: peers pick SPIs any way they like (counters, random),
// so mix all bits before masking. Fibonacci hashing, one multiply.
func spiHash(spi uint32) uint32 { return (spi * 0x9E3779B1) ^ (spi >> 16) }

// Lookup returns the SA with this SPI, or nil. Safe from any goroutine,
// lock-free, allocation-free.
func (t *Table) Lookup(spi uint32) *SA {
	if spi == 0 {
		return nil // reserved (RFC 4303 §2.1), and 0 marks empty slots
	}
	sl := t.cur.Load()
	i := spiHash(spi) & sl.mask
	for {
		s := &sl.s[i]
		switch s.spi.Load() {
		case spi:
			if sa := s.sa.Load(); sa != nil && sa != tombstone && sa.SPI == spi {
				return sa
			}
		case 0:
			if s.sa.Load() == nil {
				return nil
			}
		}
		i = (i + 1) & sl.mask
	}
}

// Len is the number of SAs in the table.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Add inserts sa; it fails if its SPI is already present.
func (t *Table) Add(sa *SA) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.find(t.cur.Load(), sa.SPI) >= 0 {
		return fmt.Errorf("sa %08x: spi already in use", sa.SPI)
	}
	t.insert(sa)
	return nil
}

// Replace inserts sa, or swaps it in for the SA with the same SPI, which
// it returns (nil if there was none). The swap is one atomic store: readers
// see the old SA or the new one, never neither.
func (t *Table) Replace(sa *SA) (old *SA) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sl := t.cur.Load()
	if i := t.find(sl, sa.SPI); i >= 0 {
		old = sl.s[i].sa.Load()
		sl.s[i].sa.Store(sa)
		return old
	}
	t.insert(sa)
	return nil
}

// Delete removes and returns the SA with this SPI and marks it dead; nil
// if absent.
func (t *Table) Delete(spi uint32) *SA {
	t.mu.Lock()
	defer t.mu.Unlock()
	sl := t.cur.Load()
	i := t.find(sl, spi)
	if i < 0 {
		return nil
	}
	old := sl.s[i].sa.Load()
	sl.s[i].sa.Store(tombstone)
	t.n--
	t.dead++
	old.Kill()
	if t.dead > len(sl.s)/8 {
		t.rebuild(t.n)
	}
	return old
}

// Range calls f for each SA until f returns false. It walks one published
// array; SAs added meanwhile may or may not be seen.
func (t *Table) Range(f func(*SA) bool) {
	sl := t.cur.Load()
	for i := range sl.s {
		sa := sl.s[i].sa.Load()
		if sa != nil && sa != tombstone && !f(sa) {
			return
		}
	}
}

// find returns the slot index of spi, or -1. Caller holds mu.
func (t *Table) find(sl *slots, spi uint32) int {
	i := spiHash(spi) & sl.mask
	for {
		sa := sl.s[i].sa.Load()
		if sa == nil {
			return -1
		}
		if sa != tombstone && sa.SPI == spi {
			return int(i)
		}
		i = (i + 1) & sl.mask
	}
}

// insert places sa, growing first if needed. Caller holds mu and knows the
// SPI is absent.
func (t *Table) insert(sa *SA) {
	sl := t.cur.Load()
	if 4*(t.n+t.dead+1) > len(sl.s) {
		t.rebuild(t.n + 1)
		sl = t.cur.Load()
	}
	i := spiHash(sa.SPI) & sl.mask
	for {
		cur := sl.s[i].sa.Load()
		if cur == nil {
			break
		}
		if cur == tombstone {
			// Reusing a tombstone is safe: a reader probing past it for
			// another SPI sees a non-nil slot either way.
			t.dead--
			break
		}
		i = (i + 1) & sl.mask
	}
	sl.s[i].sa.Store(sa)
	sl.s[i].spi.Store(sa.SPI)
	t.n++
}

// rebuild copies the live SAs into a fresh array sized for n and publishes
// it. Readers on the old array finish their walk there undisturbed.
func (t *Table) rebuild(n int) {
	old := t.cur.Load()
	grow := n
	if grow < len(old.s)/4 { // shrink lazily
		grow = len(old.s) / 4
	}
	sl := newSlots(grow)
	for i := range old.s {
		sa := old.s[i].sa.Load()
		if sa == nil || sa == tombstone {
			continue
		}
		j := spiHash(sa.SPI) & sl.mask
		for sl.s[j].sa.Load() != nil {
			j = (j + 1) & sl.mask
		}
		sl.s[j].sa.Store(sa)
		sl.s[j].spi.Store(sa.SPI)
	}
	t.dead = 0
	t.cur.Store(sl)
}
