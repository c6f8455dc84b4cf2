package sad

import (
	"sync/atomic"
	"time"
)

// Gate is the right to send of outbound SAs that move between nodes
// together (a cluster's tunnel group, package cluster): a deadline on
// Now's clock past which their ReserveSeq hands out nothing. The node that
// holds the group moves the deadline ahead while it may send; a worker
// reads it with one atomic load per batch and SA, and no goroutine has to
// wake to close it in time: a deadline passes by itself, even for a
// process that was stopped as a whole. The zero Gate is closed.
type Gate struct {
	deadline atomic.Int64
}

// gateEpoch anchors Now: time.Since reads the monotonic clock, so a step
// of the wall clock never moves a deadline.
var gateEpoch = time.Now()

// Now is the gates' clock: monotonic nanoseconds since the process began.
func Now() int64 { return int64(time.Since(gateEpoch)) }

// MaySend reports whether the gate is open at now.
func (g *Gate) MaySend(now int64) bool { return now < g.deadline.Load() }

// Deadline is when the gate closes (0: closed).
func (g *Gate) Deadline() int64 { return g.deadline.Load() }

// Open sets the deadline to until and returns the one before (0: it was
// closed).
func (g *Gate) Open(until int64) int64 { return g.deadline.Swap(until) }

// Close closes the gate now and returns the deadline it had (0: closed
// already).
func (g *Gate) Close() int64 { return g.deadline.Swap(0) }
