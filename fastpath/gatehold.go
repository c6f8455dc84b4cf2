package fastpath

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// Frames of a cluster group that is not ready on this node (sad.Gate.Ready
// false: a standby, a node that just handed the group over, or a new owner
// whose windows and marks are not caught up yet) are never decrypted nor
// sealed here. During a graceful move (xdpsec cluster move) they are not
// lost either:
//   - the old owner forwards them, raw, to the new owner (the gate's
//     sad.Forward: only the Ethernet addresses rewritten, out of the port
//     they came in on) until the announcements of the move have landed;
//   - the new owner holds them (a bounded queue per worker, counted, no
//     allocation) until its gate is ready, and then processes them first,
//     in their order, before its next batch. A frame held longer than
//     Config.GateHold, or refused because the hold is full, is dropped as
//     not_owner.
//
// A frame a cluster node sent (Forward.Nodes) is never forwarded again, so
// two nodes whose forwards still run cannot bounce a frame between them.
// Holding is safe for the replay window: a held packet is opened only once
// the published tops are in the windows (the gate's MarkReady).

// gateHoldMax bounds the frames a worker holds for groups not ready yet:
// about 128 ms of a 1,000 packets/s flow each way, a small share of a
// socket's frames.
const gateHoldMax = 256

type gateHeld struct {
	p     Packet
	gate  *sad.Gate
	lan   bool  // came from the LAN (outbound), else the WAN
	until int64 // sad.Now() past which it is dropped
}

type gateHold struct {
	pk [gateHoldMax]gateHeld
	n  int
}

// notOwner takes p, a packet of a group that is not ready here (gate g,
// at now on sad.Now's clock), which came from the LAN if lan: forwarded
// to the group's new owner, held for the group, or dropped (queued in
// w.free). sa is the SA p was to be opened or sealed with. It reports
// whether it dropped p.
func (w *Worker) notOwner(p *Packet, sa *sad.SA, now int64, lan bool, nfree *int) bool {
	g := sa.Gate()
	d := p.Data()
	side := 0
	if lan {
		side = 1
	}
	if own := &w.cfg.OwnMAC[side]; *own != ([6]byte{}) && string(d[0:6]) != string(own[:]) {
		// Not sent to this node (a bridge flooding a frame for a MAC it
		// has not learnt yet): its addressee has it; holding a copy here
		// could deliver it twice.
		w.drop(nfree, p, sad.ErrNotOwner)
		return true
	}
	if f := g.Forwarding(now); f != nil && !f.From(d[6:12]) {
		copy(d[0:6], f.To[side][:])
		copy(d[6:12], f.Self[side][:])
		w.fwd[w.fwdN] = *p
		w.fwdN++
		w.local.Counts[GateForwarded]++
		return false
	}
	q := &w.ghold
	if w.cfg.GateHold > 0 && q.n < gateHoldMax {
		q.pk[q.n] = gateHeld{p: *p, gate: g, lan: lan, until: now + w.cfg.GateHold}
		q.n++
		w.local.Counts[GateHeld]++
		w.warm(d, lan)
		if lan && sa.Remote.IsValid() {
			w.cfg.WANHop.Lookup(sa.Remote) // where the sealed packet goes
		}
		return false
	}
	w.drop(nfree, p, sad.ErrNotOwner)
	return true
}

// warm asks the next-hop tables for the hops the held frame d will need
// once the group is ready (a node that never carried the group has not
// resolved its neighbours: the first packets would wait in the pending
// queue, whose share per destination is small, and be dropped): the
// sender's address on its side (a LAN host gets the replies; from the WAN,
// the peer gets the sealed traffic). A miss queues the resolution; no
// lock, allocation or syscall here.
func (w *Worker) warm(d []byte, lan bool) {
	if len(d) < packet.EthLen+packet.IPv4MinLen {
		return
	}
	var src netip.Addr
	ip := d[packet.EthLen:]
	switch {
	case ip[0]>>4 == 4:
		src = netip.AddrFrom4([4]byte(ip[12:16]))
	case ip[0]>>4 == 6 && len(ip) >= 40:
		src = netip.AddrFrom16([16]byte(ip[8:24]))
	default:
		return
	}
	if lan {
		w.cfg.LANHop.Lookup(src)
	} else {
		w.cfg.WANHop.Lookup(src)
	}
}

// sendForwarded sends the frames notOwner forwarded this batch on port
// (the one they came in on).
func (w *Worker) sendForwarded(port Port) {
	if w.fwdN == 0 {
		return
	}
	n := w.fwdN
	w.fwdN = 0
	w.sendPkts(port, w.fwd[:n])
}

// releaseHeld processes the held frames whose groups are ready now, oldest
// first, WAN side then LAN side, and drops those held too long. The worker
// calls it at the start of a poll while it holds any.
func (w *Worker) releaseHeld() {
	q := &w.ghold
	now := sad.Now()
	for _, lan := range [2]bool{false, true} {
		port := w.cfg.WAN
		if lan {
			port = w.cfg.LAN
		}
		for {
			// Take the side's ready frames out (up to a batch), keep the
			// rest in order; then process them: a frame whose group is
			// not ready again is held anew behind the kept ones.
			m, nfree, k := 0, 0, 0
			for i := 0; i < q.n; i++ {
				e := &q.pk[i]
				switch {
				case e.lan != lan || m == w.batch:
					q.pk[k] = *e
					k++
				case e.gate.Ready(now):
					w.rx[m] = e.p
					m++
					w.local.Counts[GateReleased]++
				case now > e.until:
					w.free[nfree] = e.p
					nfree++
					w.local.Drops[sad.ErrNotOwner]++
				default:
					q.pk[k] = *e
					k++
				}
			}
			for i := k; i < q.n; i++ {
				q.pk[i] = gateHeld{} // no stale frame references
			}
			q.n = k
			if nfree > 0 {
				port.Free(w.free[:nfree])
			}
			if m == 0 {
				break
			}
			w.process(w.rx[:m], !lan)
		}
	}
}
