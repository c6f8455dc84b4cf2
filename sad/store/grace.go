package store

import (
	"sync"
	"sync/atomic"
)

// Grace tracks when no data-plane worker can still hold something that
// was unpublished: quiescent-state based reclamation (as RCU's). The
// writer bumps a global epoch each time it unpublishes an SA and notes the
// new value; each worker publishes the epoch it has seen once per poll, at
// a point where it holds no SA from an earlier poll (Reader.Quiesce). An
// SA unpublished at epoch e may be reclaimed (its keys wiped) once every
// worker has published e or later, or is offline: a worker about to block
// in poll(2) holds nothing and says so (Reader.Offline), so an idle queue
// never stalls reclamation.
//
// The workers' side is one atomic load of the epoch and, when it moved,
// one atomic store to the worker's own cache line per poll: no lock, no
// per-packet cost. Go's atomics are sequentially consistent, which the
// argument below needs: a worker stores its epoch before it looks anything
// up in that poll, and a writer unpublishes before it bumps the epoch, so
// a worker whose published epoch (or offline mark) a reclaimer reads
// either published it before the reclaimer looked (and then loaded the
// epoch before; the comparison decides) or its lookups come after the
// unpublish and cannot find the SA.
type Grace struct {
	epoch atomic.Uint64 // starts at 1; 0 is a reader's offline mark

	mu      sync.Mutex
	readers atomic.Pointer[[]*Reader] // copy on write, under mu
}

// offline is a reader's published epoch while it holds nothing.
const offline = 0

// Reader is one worker's published epoch, alone on its cache line.
type Reader struct {
	_    [64]byte
	seen atomic.Uint64
	last uint64 // the worker's own copy of seen, to skip redundant stores
	g    *Grace
	_    [64 - 8 - 8 - 8]byte
}

// NewGrace returns a tracker with no readers.
func NewGrace() *Grace {
	g := &Grace{}
	g.epoch.Store(1)
	rs := []*Reader{}
	g.readers.Store(&rs)
	return g
}

// Register adds a worker; it starts offline (holding nothing).
func (g *Grace) Register() *Reader {
	r := &Reader{g: g}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.readers.Load()
	rs := append(append(make([]*Reader, 0, len(old)+1), old...), r)
	g.readers.Store(&rs)
	return r
}

// Unregister removes a worker that has stopped.
func (g *Grace) Unregister(r *Reader) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := *g.readers.Load()
	rs := make([]*Reader, 0, len(old))
	for _, x := range old {
		if x != r {
			rs = append(rs, x)
		}
	}
	g.readers.Store(&rs)
}

// Epoch is the current epoch.
func (g *Grace) Epoch() uint64 { return g.epoch.Load() }

// Advance starts a new epoch and returns it: whatever was unpublished
// before the call may be reclaimed once Passed(returned epoch).
func (g *Grace) Advance() uint64 { return g.epoch.Add(1) }

// Passed reports whether every registered worker has been quiescent at
// epoch e or later, or is offline.
func (g *Grace) Passed(e uint64) bool {
	for _, r := range *g.readers.Load() {
		if s := r.seen.Load(); s != offline && s < e {
			return false
		}
	}
	return true
}

// Quiesce says the worker holds nothing from its earlier polls: it calls
// it once per poll, before it looks anything up. Not safe for concurrent
// use on one Reader (each worker has its own).
func (r *Reader) Quiesce() {
	if e := r.g.epoch.Load(); e != r.last {
		r.last = e
		r.seen.Store(e)
	}
}

// Offline says the worker holds nothing until its next Quiesce: it calls
// it before it blocks (in poll(2)) and when it stops.
func (r *Reader) Offline() {
	r.last = offline
	r.seen.Store(offline)
}
