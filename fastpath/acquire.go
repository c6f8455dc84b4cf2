package fastpath

import (
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/sad/spd"
)

// acquireSlots is the number of acquires that can wait for the control
// plane at once: far more than the trap policies that can fire inside one
// of its wake-ups in practice. A power of two, so a slot is an index masked.
const acquireSlots = 64

// acquireProbe is how many slots a worker tries before it counts the
// acquire as lost. A lost acquire is not retried before the policy's next
// interval: the packets that wanted it are dropped either way.
const acquireProbe = 4

// DefaultAcquireInterval is how often one trap policy may raise an acquire
// when no interval is configured.
const DefaultAcquireInterval = time.Second

// An Acquirer carries acquires from the workers to the control plane: a
// PROTECT packet whose policy is a trap (spd.Policy.Acquire) and has no SA
// raises one, at most once per policy per interval whatever the packet
// rate. The packet itself is dropped (sad.ErrNoSA) by the worker.
//
// Workers raise without locks, channels in the common case, maps or
// allocations: inside a policy's interval a raise is one atomic load; the
// raise that wins the interval puts the policy into a small fixed array of
// slots with a compare-and-swap and wakes the reader with a non-blocking
// send, which happens at most once per policy per interval. The control
// plane waits on C and takes the policies with Drain.
type Acquirer struct {
	interval int64 // nanoseconds
	next     atomic.Uint32
	slots    [acquireSlots]atomic.Pointer[spd.Policy]
	raised   atomic.Uint64
	lost     atomic.Uint64
	wake     chan struct{}
}

// NewAcquirer returns an Acquirer that lets each policy raise an acquire
// at most once per interval (DefaultAcquireInterval when ≤ 0).
func NewAcquirer(interval time.Duration) *Acquirer {
	if interval <= 0 {
		interval = DefaultAcquireInterval
	}
	return &Acquirer{interval: int64(interval), wake: make(chan struct{}, 1)}
}

// clockBase anchors monotime: time.Since reads the monotonic clock through
// the vDSO, with no system call and no allocation.
var clockBase = time.Now()

// monotime is nanoseconds on the monotonic clock, never 0 (0 is "never"
// to spd.Policy.TryAcquire).
func monotime() int64 { return int64(time.Since(clockBase)) + 1 }

// raise asks for an SA for p at now (monotime). It reports whether an
// acquire was queued; false is the common case of a policy already raised
// within its interval.
func (a *Acquirer) raise(p *spd.Policy, now int64) bool {
	if !p.TryAcquire(now, a.interval) {
		return false
	}
	i := a.next.Add(1)
	for k := range uint32(acquireProbe) {
		if a.slots[(i+k)&(acquireSlots-1)].CompareAndSwap(nil, p) {
			a.raised.Add(1)
			select {
			case a.wake <- struct{}{}:
			default: // a wake-up is pending already; Drain takes every slot
			}
			return true
		}
	}
	a.lost.Add(1)
	return false
}

// C is signalled after acquires were raised; a receive from it is
// followed by a Drain.
func (a *Acquirer) C() <-chan struct{} { return a.wake }

// Drain appends the waiting acquires' policies to dst and empties their
// slots. A policy may appear more than once if it raised again before an
// earlier acquire was drained; the reader coalesces. Drain is for one
// reader at a time.
func (a *Acquirer) Drain(dst []*spd.Policy) []*spd.Policy {
	for i := range a.slots {
		if a.slots[i].Load() == nil {
			continue
		}
		if p := a.slots[i].Swap(nil); p != nil {
			dst = append(dst, p)
		}
	}
	return dst
}

// AcquireStats counts acquires: Raised went to the slots, Lost found them
// full (and waited for the policy's next interval).
type AcquireStats struct {
	Raised, Lost uint64
}

// Stats returns the counters; safe from any goroutine.
func (a *Acquirer) Stats() AcquireStats {
	return AcquireStats{Raised: a.raised.Load(), Lost: a.lost.Load()}
}
