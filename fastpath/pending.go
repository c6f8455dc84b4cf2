package fastpath

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/sad"
)

// Packets waiting for a neighbour. The first packets towards a next hop
// the kernel has not resolved yet (no ARP / Neighbor Discovery answer)
// would otherwise be dropped, and with them a connection's first SYN or a
// first ping. As the kernel's per-neighbour queue (unres_qlen), a worker
// holds a few such packets, ready to go but for their Ethernet header,
// and sends them once the next-hop table has the neighbour's address; a
// packet still waiting after pendingWait is dropped (the kernel gives up
// on a neighbour after about 3 s of solicitations too). The hold is small
// and bounded per destination and in all, so a scan of unresolvable
// addresses costs a few frames, never the pool.
const (
	pendingMax    = 32  // frames held per worker
	pendingPerDst = 4   // frames held per destination
	pendingWait   = 3e9 // nanoseconds
	// pendingRetry spaces the lookups of held packets: a poll loop that
	// spins on traffic must not look each one up every few microseconds.
	pendingRetry = 1e6
)

// pendingPkt is one held packet: its frame (the packet in it complete
// but for the Ethernet addresses), where it goes and by when.
type pendingPkt struct {
	p     Packet
	dst   netip.Addr
	v4    bool // the Ethernet type to write
	lan   bool // leaves on the LAN side (else the WAN)
	until int64
}

type pendingQueue struct {
	pk      [pendingMax]pendingPkt
	n       int
	lastTry int64
}

// hold takes p, whose packet waits for dst's neighbour, into the queue. It
// reports false, leaving p to the caller, when the queue or dst's share of
// it is full. A packet held only to stay behind others (behind) is not
// held to dst's share: the neighbour is known, and the next poll sends
// them all.
func (w *Worker) hold(p *Packet, dst netip.Addr, v4, lan bool) bool {
	q := &w.pending
	if q.n == pendingMax {
		w.local.Counts[HeldDrops]++
		return false
	}
	same, after := 0, false
	for i := 0; i < q.n; i++ {
		if q.pk[i].dst == dst {
			same++
			after = after || q.pk[i].lan == lan && q.lastTry == 0
		}
	}
	if same >= pendingPerDst && !after {
		w.local.Counts[HeldDrops]++
		return false
	}
	now := monotime()
	if q.n == 0 {
		q.lastTry = now
	}
	q.pk[q.n] = pendingPkt{p: *p, dst: dst, v4: v4, lan: lan, until: now + pendingWait}
	q.n++
	w.local.Counts[Held]++
	return true
}

// behind reports whether packets towards dst on the given side are held:
// a packet whose next hop is now known must then be held after them
// rather than overtake them (ESP sent after newer sequence numbers can
// fall below the peer's replay window, which then drops it). It makes the
// next release immediate, since the neighbour has been resolved. Callers
// test w.pending.n first: nothing held, nothing to ask.
func (w *Worker) behind(dst netip.Addr, lan bool) bool {
	q := &w.pending
	for i := 0; i < q.n; i++ {
		if q.pk[i].dst == dst && q.pk[i].lan == lan {
			q.lastTry = 0
			return true
		}
	}
	return false
}

// release sends the held packets whose neighbours are now known and drops
// those that waited too long. The worker calls it at the start of a poll
// while it holds any; it looks them up at most every pendingRetry.
func (w *Worker) release() {
	q := &w.pending
	now := monotime()
	if now-q.lastTry < pendingRetry {
		return
	}
	q.lastTry = now
	// The WAN's packets first, then the LAN's: w.tx carries one side's
	// batch at a time.
	for _, lan := range [2]bool{false, true} {
		port, c, nh := w.cfg.WAN, &w.wanCache, w.cfg.WANHop
		if lan {
			port, c, nh = w.cfg.LAN, &w.lanCache, w.cfg.LANHop
		}
		ntx, nfree, k := 0, 0, 0
		for i := 0; i < q.n; i++ {
			e := &q.pk[i]
			if e.lan != lan {
				q.pk[k] = *e
				k++
				continue
			}
			if hop, ok := c.lookup(nh, e.dst); ok {
				writeEth(e.p.Frame[e.p.Off:], hop, e.v4)
				w.tx[ntx] = e.p
				ntx++
				w.local.Counts[Released]++
				continue
			}
			if now > e.until {
				w.free[nfree] = e.p
				nfree++
				w.local.Drops[sad.ErrNoRoute]++
				continue
			}
			q.pk[k] = *e
			k++
		}
		for i := k; i < q.n; i++ {
			q.pk[i] = pendingPkt{} // no stale frame references
		}
		q.n = k
		w.send(port, ntx)
		if nfree > 0 {
			port.Free(w.free[:nfree])
		}
	}
}
