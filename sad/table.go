package sad

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Table maps SPIs to SAs. Lookups never lock and never allocate: the
// table is a hash of cache-line buckets of four SPIs and four atomic
// pointers, and a resize builds a new array and publishes it with one
// atomic store, so a reader sees either the old array or the new one, both
// complete. Writers serialise on a mutex.
//
// A lookup reads the bucket's four SPIs as two 64-bit words and finds the
// matching lane with word arithmetic, without a branch per lane, so its
// cost does not depend on where in the bucket (or how full the table) the
// SA sits: a table of a million SAs costs what a table of one does while
// the traffic of a moment touches few of them. A bucket that was full when
// an insert passed it is marked overflowed, and only then does a lookup
// go on to the next bucket; the mark stays until the next rebuild, so an
// SA that overflowed stays reachable after deletes in front of it.
//
// A worker that looked an SA up just before it was deleted may finish its
// batch with it; the garbage collector keeps the SA alive until then, and
// Kill makes Usable report false for the next batch. That is the "deleted
// SAs stay valid until no worker can hold them" rule of the design.
type Table struct {
	cur  atomic.Pointer[buckets]
	mu   sync.Mutex // writers
	n    int        // live entries, under mu
	dels int        // deletes since the last rebuild, under mu
}

type buckets struct {
	mask uint32
	b    []bucket
}

// bucket is one cache line. spi holds lanes 0,1 (low, high half of
// spi[0]) and 2,3 (spi[1]); 0 marks a free lane (SPI 0 is reserved). A
// writer stores the pointer before the SPI when it fills a lane and clears
// the SPI before the pointer when it empties one. A lane that held an SA
// is not filled again until the next rebuild (dead), so a reader that saw
// SPI x in a lane finds there x's SA, a replacement for it, or nil, never
// another SPI's SA, without reading the SA to check.
type bucket struct {
	spi  [2]atomic.Uint64
	sa   [4]atomic.Pointer[SA]
	over atomic.Uint32 // an insert found this bucket full and went on
	dead uint8         // lanes emptied since this array was built; under mu
	_    [64 - 16 - 32 - 4 - 1]byte
}

const (
	minBuckets = 4
	laneOnes   = 0x0000000100000001
	laneHigh   = 0x8000000080000000
)

// NewTable returns an empty table sized for about hint SAs.
func NewTable(hint int) *Table {
	t := &Table{}
	t.cur.Store(newBuckets(hint))
	return t
}

func newBuckets(hint int) *buckets {
	n := minBuckets
	// One SA per bucket of four on average (load 1/4): a bucket then
	// overflows with probability ~0.4% (Poisson, mean 1), so nearly every
	// lookup reads one cache line of table. 64 bytes per SA; an SA itself
	// is ~1 KiB.
	for n < hint {
		n <<= 1
	}
	return &buckets{mask: uint32(n - 1), b: make([]bucket, n)}
}

// spiHash spreads SPIs: peers pick SPIs any way they like (counters,
// random), so mix all bits before masking. Fibonacci hashing, one multiply.
func spiHash(spi uint32) uint32 { return (spi * 0x9E3779B1) ^ (spi >> 16) }

// match returns a bit set for each lane of b whose SPI is spi, or 0: for
// lane l, bit 0 (l=0), 32 (l=1), 2 (l=2), 34 (l=3). The lowest set bit is
// always a true match (the zero-lane test can only misfire in a lane
// above a true zero of the same word).
func (b *bucket) match(pat uint64) uint64 {
	v0 := b.spi[0].Load() ^ pat
	v1 := b.spi[1].Load() ^ pat
	return ((v0-laneOnes)&^v0&laneHigh)>>31 | ((v1-laneOnes)&^v1&laneHigh)>>29
}

// laneOf maps the lowest bit of a match to its lane.
func laneOf(m uint64) int {
	tz := bits.TrailingZeros64(m)
	return tz>>5 | tz&2
}

// Lookup returns the SA with this SPI, or nil. Safe from any goroutine,
// lock-free, allocation-free.
func (t *Table) Lookup(spi uint32) *SA {
	if spi == 0 {
		return nil // reserved (RFC 4303 §2.1), and 0 marks free lanes
	}
	bs := t.cur.Load()
	pat := uint64(spi) * laneOnes
	i := spiHash(spi) & bs.mask
	for range len(bs.b) {
		b := &bs.b[i]
		if m := b.match(pat); m != 0 {
			// Lanes are never reused within one array (see bucket), so
			// the pointer is this SPI's SA, or nil if it is being deleted;
			// the SA itself is not touched here.
			return b.sa[laneOf(m)].Load()
		}
		if b.over.Load() == 0 {
			return nil
		}
		i = (i + 1) & bs.mask
	}
	return nil
}

// Len is the number of SAs in the table.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Add inserts sa; it fails if its SPI is already present.
func (t *Table) Add(sa *SA) error {
	if sa.SPI == 0 {
		return fmt.Errorf("sa: spi 0 is reserved")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, _ := t.find(t.cur.Load(), sa.SPI); b != nil {
		return fmt.Errorf("sa %08x: spi already in use", sa.SPI)
	}
	t.insert(sa)
	return nil
}

// Replace inserts sa, or swaps it in for the SA with the same SPI, which
// it returns (nil if there was none). The swap is one atomic store: readers
// see the old SA or the new one, never neither.
func (t *Table) Replace(sa *SA) (old *SA) {
	if sa.SPI == 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, l := t.find(t.cur.Load(), sa.SPI); b != nil {
		old = b.sa[l].Load()
		b.sa[l].Store(sa)
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
	bs := t.cur.Load()
	b, l := t.find(bs, spi)
	if b == nil {
		return nil
	}
	old := b.sa[l].Load()
	setLane(b, l, 0)
	b.sa[l].Store(nil)
	b.dead |= 1 << l
	t.n--
	t.dels++
	old.Kill()
	// Dead lanes and overflow marks outlive the SAs behind them; rebuild
	// now and then so lanes come back, misses stay one bucket long and a
	// table that emptied shrinks.
	if t.dels > len(bs.b)/2 {
		t.rebuild(t.n)
	}
	return old
}

// Range calls f for each SA until f returns false. It walks one published
// array; SAs added meanwhile may or may not be seen.
func (t *Table) Range(f func(*SA) bool) {
	bs := t.cur.Load()
	for i := range bs.b {
		for l := range bs.b[i].sa {
			if sa := bs.b[i].sa[l].Load(); sa != nil && !f(sa) {
				return
			}
		}
	}
}

// setLane writes lane l's SPI. Caller holds mu: no other writer changes
// the word between the load and the store, and readers only read.
func setLane(b *bucket, l int, spi uint32) {
	w := &b.spi[l>>1]
	shift := uint(l&1) * 32
	v := w.Load()&^(uint64(0xffffffff)<<shift) | uint64(spi)<<shift
	w.Store(v)
}

func laneSPI(b *bucket, l int) uint32 {
	return uint32(b.spi[l>>1].Load() >> (uint(l&1) * 32))
}

// find returns the bucket and lane holding spi, or nil. Caller holds mu.
func (t *Table) find(bs *buckets, spi uint32) (*bucket, int) {
	i := spiHash(spi) & bs.mask
	for range len(bs.b) {
		b := &bs.b[i]
		for l := 0; l < 4; l++ {
			if laneSPI(b, l) == spi && b.sa[l].Load() != nil {
				return b, l
			}
		}
		if b.over.Load() == 0 {
			return nil, 0
		}
		i = (i + 1) & bs.mask
	}
	return nil, 0
}

// insert places sa, growing first if needed. Caller holds mu and knows the
// SPI is absent.
func (t *Table) insert(sa *SA) {
	bs := t.cur.Load()
	if t.n+1 > len(bs.b) {
		t.rebuild(2 * (t.n + 1))
		bs = t.cur.Load()
	}
	place(bs, sa)
	t.n++
}

// place puts sa in the first free lane from its home bucket on, marking
// the full buckets it passes.
func place(bs *buckets, sa *SA) {
	i := spiHash(sa.SPI) & bs.mask
	for {
		b := &bs.b[i]
		for l := 0; l < 4; l++ {
			if laneSPI(b, l) == 0 && b.sa[l].Load() == nil && b.dead&(1<<l) == 0 {
				b.sa[l].Store(sa)
				setLane(b, l, sa.SPI)
				return
			}
		}
		b.over.Store(1)
		i = (i + 1) & bs.mask
	}
}

// rebuild copies the live SAs into a fresh array sized for n and publishes
// it. Readers on the old array finish their walk there undisturbed.
func (t *Table) rebuild(n int) {
	old := t.cur.Load()
	grow := n
	if grow < len(old.b)/4 { // shrink lazily
		grow = len(old.b) / 4
	}
	bs := newBuckets(grow)
	for i := range old.b {
		for l := range old.b[i].sa {
			if sa := old.b[i].sa[l].Load(); sa != nil {
				place(bs, sa)
			}
		}
	}
	t.dels = 0
	t.cur.Store(bs)
}
