package nexthop

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"github.com/xdpsec/xdpsec/fastpath"
)

// Options tune a Table. The zero value is ready to use.
type Options struct {
	// NetNS is the network namespace the interface lives in. Nil means
	// the namespace of the thread that calls New (call it from a
	// goroutine locked into the namespace, or from the process's own).
	// The handle stays the caller's: Close does not close it.
	NetNS *netns.NsHandle
	// MaxEntries bounds the cached destinations (rounded up to a power of
	// two). Default 4096.
	MaxEntries int
	// QueueLen bounds the misses waiting for resolution; more are dropped
	// and counted. Default 256.
	QueueLen int
	// NegativeTTL is how long a miss is remembered before a Lookup asks
	// again (and the kernel is asked to solicit the neighbour again).
	// Default 1s.
	NegativeTTL time.Duration
	// ConfirmInterval is how often the neighbours behind answers in use
	// are checked: the kernel sees none of the fast path's traffic, so it
	// would leave them STALE; the table asks it to probe those (Neighbor
	// Unreachability Detection, RFC 4861 §7.3). Default 10s.
	ConfirmInterval time.Duration
	// Logger receives the table's few, non-per-packet log lines. Default
	// slog.Default().
	Logger *slog.Logger
}

const (
	defaultMaxEntries  = 4096
	defaultQueueLen    = 256
	defaultNegativeTTL = time.Second
	defaultConfirm     = 10 * time.Second
	// maxNeighbours bounds the table's copy of the kernel's neighbour
	// entries for the interface; the kernel bounds its own (gc_thresh3),
	// this guards against a kernel configured without bounds.
	maxNeighbours = 1 << 16
	// subscribeBuffer is the netlink receive buffer asked for, so that a
	// burst of events (a link flap) does not overflow it.
	subscribeBuffer = 1 << 20
	counterShards   = 16
)

// Stats are the table's counters.
type Stats struct {
	Hits       uint64 // Lookups answered
	Misses     uint64 // Lookups not answered (including remembered misses)
	Requests   uint64 // misses handed to the background goroutine
	QueueDrops uint64 // misses dropped because the queue was full
	Resolves   uint64 // neighbour solicitations asked of the kernel
	Events     uint64 // netlink route, neighbour and link events processed
	Entries    uint64 // destinations cached (answers and remembered misses)
	Evictions  uint64 // entries pushed out by newer ones
	Errors     uint64 // failed route look-ups, solicitations, subscriptions
}

// shard holds the counters Lookup writes, one cache line per shard so
// that workers looking up different destinations do not share a line.
type shard struct {
	hits, misses, requests, drops atomic.Uint64
	_                             [64 - 4*8]byte
}

// Table is the netlink-backed fastpath.NextHop for one outgoing interface.
// Lookup is safe for concurrent use and never blocks.
type Table struct {
	ifindex int
	opts    Options
	cache   *cache
	queue   chan netip.Addr
	shards  [counterShards]shard
	start   time.Time

	events, resolves, errs atomic.Uint64

	log      *slog.Logger
	ns       netns.NsHandle
	ownNS    bool
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// newTable makes a table without its background goroutine.
func newTable(ifindex int, opts Options) *Table {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = defaultMaxEntries
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = defaultQueueLen
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = defaultNegativeTTL
	}
	if opts.ConfirmInterval <= 0 {
		opts.ConfirmInterval = defaultConfirm
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Table{
		ifindex: ifindex,
		opts:    opts,
		cache:   newCache(opts.MaxEntries, rand.Uint64(), rand.Uint64()),
		queue:   make(chan netip.Addr, opts.QueueLen),
		start:   time.Now(),
		log:     opts.Logger.With("ifindex", ifindex),
		ns:      netns.None(),
		stop:    make(chan struct{}),
	}
}

// Lookup implements fastpath.NextHop. A miss queues dst for resolution
// unless the table already knows it cannot answer yet.
func (t *Table) Lookup(dst netip.Addr) (fastpath.Hop, bool) {
	h := t.cache.hash(dst)
	s := &t.shards[h>>60]
	if e := t.cache.find(dst, h); e != nil {
		if e.ok {
			s.hits.Add(1)
			// Read before writing, so the hot line is written once per
			// sweep, not once per Lookup.
			if e.ref.Load() == 0 {
				e.ref.Store(1)
			}
			return e.hop, true
		}
		s.misses.Add(1)
		return fastpath.Hop{}, false
	}
	s.misses.Add(1)
	if !dst.IsValid() {
		return fastpath.Hop{}, false
	}
	select {
	case t.queue <- dst:
		s.requests.Add(1)
	default:
		s.drops.Add(1)
	}
	return fastpath.Hop{}, false
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	var st Stats
	for i := range t.shards {
		s := &t.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Requests += s.requests.Load()
		st.QueueDrops += s.drops.Load()
	}
	st.Resolves = t.resolves.Load()
	st.Events = t.events.Load()
	st.Entries = uint64(t.cache.published.Load())
	st.Evictions = t.cache.evictCount.Load()
	st.Errors = t.errs.Load()
	return st
}

// now is the table's clock for entry ages.
func (t *Table) now() int64 { return int64(time.Since(t.start)) }

// Close stops the background goroutine and its netlink subscriptions and
// waits for them. Lookups after Close miss: nothing would refresh the
// answers any more. Close is idempotent.
func (t *Table) Close() error {
	t.stopOnce.Do(func() { close(t.stop) })
	t.wg.Wait()
	// The writer is gone, so this goroutine may act as the writer.
	t.cache.each(func(i int, _ *entry) { t.cache.remove(i) })
	if t.ownNS && t.ns.IsOpen() {
		t.ownNS = false
		return t.ns.Close()
	}
	return nil
}

// multicastMAC returns the group MAC of a multicast destination: RFC 1112
// §6.4 for IPv4 (01:00:5e and the low 23 bits), RFC 2464 §7 for IPv6
// (33:33 and the low 32 bits).
func multicastMAC(a netip.Addr) [6]byte {
	b := a.As16()
	if a.Is4() {
		return [6]byte{0x01, 0x00, 0x5e, b[13] & 0x7f, b[14], b[15]}
	}
	return [6]byte{0x33, 0x33, b[12], b[13], b[14], b[15]}
}
