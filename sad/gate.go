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
//
// It is also the group's right to receive (Ready): an inbound SA of the
// group decrypts only while the gate is open and the node has marked the
// group ready (MarkReady) after applying the published replay tops to
// the group's windows, so a standby never delivers a packet (its windows
// are stale: a captured packet would pass them), and a new owner
// receives nothing before its windows refuse what the old owner accepted.
type Gate struct {
	deadline atomic.Int64
	// ready: bit 0 set while the group is ready here (MarkReady); the
	// bits above count the Closes, so that a MarkReady prepared before a
	// Close (a stale take) is refused.
	ready atomic.Uint64
	// fwd, if set, is where the group's frames go while it is not ready
	// here (handed to another node: Forward).
	fwd atomic.Pointer[Forward]
}

// gateEpoch anchors Now: time.Since reads the monotonic clock, so a step
// of the wall clock never moves a deadline.
var gateEpoch = time.Now()

// Now is the gates' clock: monotonic nanoseconds since the process began.
func Now() int64 { return int64(time.Since(gateEpoch)) }

// MaySend reports whether the gate is open at now.
func (g *Gate) MaySend(now int64) bool { return now < g.deadline.Load() }

// Ready reports whether the group's SAs may receive and send at now: the
// gate is open and the group was marked ready since it was last closed.
// Two atomic loads: workers call it once per batch and SA.
func (g *Gate) Ready(now int64) bool { return g.ready.Load()&1 != 0 && now < g.deadline.Load() }

// Deadline is when the gate closes (0: closed).
func (g *Gate) Deadline() int64 { return g.deadline.Load() }

// Open sets the deadline to until and returns the one before (0: it was
// closed). It does not make the group Ready.
func (g *Gate) Open(until int64) int64 { return g.deadline.Swap(until) }

// Close closes the gate now and returns the deadline it had (0: closed
// already). The group stops being Ready, and a ticket taken before (Ticket)
// can no longer make it ready.
func (g *Gate) Close() int64 {
	for {
		r := g.ready.Load()
		if g.ready.CompareAndSwap(r, (r|1)+1) {
			break
		}
	}
	return g.deadline.Swap(0)
}

// Ticket is taken before the slow path prepares the group's SAs for
// receiving (the replay tops read and applied); MarkReady with it then
// makes the group Ready, unless the gate was closed in between.
func (g *Gate) Ticket() uint64 { return g.ready.Load() &^ 1 }

// MarkReady makes the group Ready (while the gate is open) if it was not
// closed since ticket was taken; it reports whether it did (or the group
// was ready already).
func (g *Gate) MarkReady(ticket uint64) bool {
	return g.ready.CompareAndSwap(ticket, ticket|1) || g.ready.Load() == ticket|1
}

// Forward is where a node that handed a group over sends the group's
// frames that still reach it (peers and hosts whose neighbour entries
// still name it, until the new owner's announcements land): raw, only the
// Ethernet addresses rewritten, to the new owner, which holds them until
// its gate is ready and then processes them first. Index 0 is the WAN
// side, 1 the LAN side.
type Forward struct {
	To, Self [2][6]byte // the new owner's MACs, this node's
	Until    int64      // Now() after which nothing is forwarded
	// Nodes are every cluster node's MACs: a frame one of them sent was
	// forwarded already and is never forwarded again (no loops between
	// nodes whose forwards are both still running).
	Nodes [][6]byte
}

// From reports whether the Ethernet source mac is a cluster node's.
func (f *Forward) From(mac []byte) bool {
	for i := range f.Nodes {
		if string(f.Nodes[i][:]) == string(mac) {
			return true
		}
	}
	return false
}

// SetForward sets (nil: clears) where the group's frames go while it is
// not ready here.
func (g *Gate) SetForward(f *Forward) { g.fwd.Store(f) }

// Forwarding is where the group's frames go at now (nil: nowhere).
func (g *Gate) Forwarding(now int64) *Forward {
	if f := g.fwd.Load(); f != nil && now < f.Until {
		return f
	}
	return nil
}
