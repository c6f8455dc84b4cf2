package fastpath

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/fastpath/reasm"
	"github.com/xdpsec/xdpsec/sad"
)

// inbound opens a batch of ESP from the WAN.
func (w *Worker) inbound(pkts []Packet) {
	nfree, ntx, nback := 0, 0, 0
	var o esp.Outer
	var cur, lastSA *sad.SA
	var lastSPI uint32 // 0 is reserved: never found, lastSA nil
	var pk, by, ndec uint64
	var now int64 // read once per batch, and only when a fragment comes
	if w.crossLAN {
		got := w.cfg.LAN.Alloc(w.spare[:len(pkts)])
		w.local.Counts[NoFrame] += uint64(len(pkts) - got)
		w.spareN, w.spareUsed = got, 0
	}
	for i := range pkts {
		p := &pkts[i]
		d := p.Data()
		if len(d) <= packet.EthLen || !isIP(d) {
			w.local.Counts[NotIP]++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		r := esp.ParseOuter(d[packet.EthLen:], w.natt, &o)
		if r == sad.ErrFragment && (o.IP.Proto == packet.ProtoESP || o.IP.Proto == packet.ProtoUDP) {
			var whole bool
			if r, whole = w.defragment(p, &o, &now, &nfree); !whole {
				continue
			}
			d = p.Data()
		}
		if r != sad.OK {
			w.drop(&nfree, p, r)
			continue
		}
		// A batch is mostly one SA's packets: look an SPI up once per
		// run of it. Like any reader, the batch may finish with an SA
		// replaced meanwhile; a deleted one fails Usable below.
		if o.SPI != lastSPI {
			lastSPI, lastSA = o.SPI, w.cfg.Inbound.Lookup(o.SPI)
		}
		sa := lastSA
		if sa == nil {
			w.drop(&nfree, p, sad.ErrUnknownSPI)
			continue
		}
		if !sa.Usable() {
			sa.Drop(sad.ErrExpired, 1)
			w.drop(&nfree, p, sad.ErrExpired)
			continue
		}
		q := p
		if w.crossLAN {
			// Open works in place; copy into the LAN frame first.
			if w.spareUsed == w.spareN {
				w.drop(&nfree, p, sad.ErrNoFrame)
				continue
			}
			q = &w.spare[w.spareUsed]
			w.spareUsed++
			q.Off, q.Len = p.Off, p.Len
			copy(q.Frame[q.Off:], d)
		}
		ipb := q.Frame[q.Off+packet.EthLen : q.Off+q.Len : len(q.Frame)]
		// Decap in two halves around the commit of the sequence number,
		// which joins the worker's Run (one CAS per run of a block; see
		// flushRun): on the WAN side before a packet of another SA.
		if w.run.Pending() && sa != w.runSA {
			w.flushRun(&ntx, &nfree, &nback, &ndec, &pk, &by)
		}
		var off, n int
		seq, r := esp.DecapOpen(&w.s, ipb, &o, sa)
		bit := -1
		if r == sad.OK && sa.Replay != nil {
			if !w.run.Fits(sa.Replay, seq) {
				w.flushRun(&ntx, &nfree, &nback, &ndec, &pk, &by)
			}
			if !w.run.Pending() {
				w.runSA, w.runTx = sa, ntx
			}
			if w.run.Add(sa.Replay, seq) {
				bit = int(seq & 31)
				w.runAt[bit] = -1 // not queued (yet)
			} else {
				r = sad.ErrReplay
			}
		}
		if r == sad.OK {
			off, n, r = esp.DecapFinish(&w.s, ipb, &o, sa)
		}
		if r != sad.OK {
			sa.Drop(r, 1)
			if q != p {
				w.spareUsed--
			}
			w.drop(&nfree, p, r)
			continue
		}
		start := q.Off + packet.EthLen + off - packet.EthLen
		inner := ipb[off : off+n]
		v4 := inner[0]>>4 == 4
		var dst netip.Addr
		if v4 {
			dst = netip.AddrFrom4([4]byte(inner[16:20]))
		} else {
			dst = netip.AddrFrom16([16]byte(inner[24:40]))
		}
		hop, ok := w.lanCache.lookup(w.cfg.LANHop, dst)
		if ok && w.pending.n > 0 && w.behind(dst, true) {
			ok = false // after the held ones, in order
		}
		q.Off, q.Len = start, packet.EthLen+n
		if ok {
			writeEth(q.Frame[q.Off:], hop, v4)
		} else {
			// A held packet cannot be taken back: publish its number
			// first.
			if bit >= 0 && w.flushRun(&ntx, &nfree, &nback, &ndec, &pk, &by)&(1<<bit) != 0 {
				sa.Drop(sad.ErrReplay, 1)
				if q != p {
					w.spareUsed--
				}
				w.drop(&nfree, p, sad.ErrReplay)
				continue
			}
			if !w.hold(q, dst, v4, true) {
				if q != p {
					w.spareUsed--
				}
				w.drop(&nfree, p, sad.ErrNoRoute)
				continue
			}
		}
		if w.cfg.MSSClamp != 0 || w.cfg.PolicyMSS {
			w.clampInbound(inner, sa)
		}
		if sa != cur {
			if cur != nil {
				cur.Account(pk, by)
			}
			cur, pk, by = sa, 0, 0
		}
		pk++
		by += uint64(n)
		ndec++
		if ok {
			// Field by field, from registers: a struct copy would load
			// Off and Len 16 bytes at a time right after the 8-byte
			// stores above, which the CPU cannot forward (a stall).
			t := &w.tx[ntx]
			t.Frame, t.Off, t.Len, t.Addr = q.Frame, start, packet.EthLen+n, q.Addr
			if bit >= 0 && w.run.Pending() {
				w.runAt[bit] = int16(ntx)
			}
			ntx++
		}
		if q != p {
			w.toFree(&nfree, p)
		}
	}
	w.flushRun(&ntx, &nfree, &nback, &ndec, &pk, &by)
	if cur != nil {
		cur.Account(pk, by)
	}
	w.local.Counts[Decaps] += ndec
	if w.crossLAN && w.spareUsed < w.spareN {
		w.cfg.LAN.Free(w.spare[w.spareUsed:w.spareN])
	}
	if nback > 0 {
		w.cfg.LAN.Free(w.lanBack[:nback])
	}
	w.send(w.cfg.LAN, ntx)
	if nfree > 0 {
		w.cfg.WAN.Free(w.free[:nfree])
	}
}

// flushRun publishes the worker's anti-replay Run (the sequence numbers
// of a run of one SA's packets in one 32-number block, decided when each
// packet was opened, replay.Run) with one CAS, and takes back the packets
// whose numbers lost meanwhile to another worker (or left the window): out
// of w.tx, out of the counters of the run's SA (the batch's current SA,
// since the run is flushed before a packet of another SA), their frames
// freed, each counted as a replay. Sequentially nothing is lost. It returns
// the lost bits (sequence number mod 32).
func (w *Worker) flushRun(ntx, nfree, nback *int, ndec, pk, by *uint64) uint32 {
	if !w.run.Pending() {
		return 0
	}
	if w.testHookFlush != nil {
		w.testHookFlush()
	}
	lost := w.run.Flush()
	if lost == 0 {
		return 0
	}
	sa := w.runSA
	gone := 0
	for b := range 32 {
		if lost&(1<<b) == 0 || w.runAt[b] < 0 {
			continue
		}
		t := &w.tx[w.runAt[b]]
		sa.Drop(sad.ErrReplay, 1)
		w.local.Drops[sad.ErrReplay]++
		*ndec--
		*pk--
		*by -= uint64(t.Len - packet.EthLen)
		if w.crossLAN {
			w.lanBack[*nback] = *t
			*nback++
		} else {
			w.free[*nfree] = *t
			*nfree++
		}
		t.Frame = nil
		gone++
	}
	if gone > 0 {
		j := w.runTx
		for i := w.runTx; i < *ntx; i++ {
			if w.tx[i].Frame != nil {
				w.tx[j] = w.tx[i]
				j++
			}
		}
		*ntx = j
	}
	return lost
}

// defragment hands the outer fragment in p to reassembly (now is read
// once per batch, when the first fragment comes). When that completes a
// packet, p holds it, parsed again into o, and it reports true with the
// parse's verdict; otherwise p is queued to be freed (held in reassembly,
// or dropped and counted).
func (w *Worker) defragment(p *Packet, o *esp.Outer, now *int64, nfree *int) (sad.Reason, bool) {
	if *now == 0 {
		*now = monotime()
	}
	switch w.reassemble(p, *now) {
	case reasm.Held:
		w.toFree(nfree, p)
		return sad.ErrFragment, false
	case reasm.Dropped:
		w.drop(nfree, p, sad.ErrFragment)
		return sad.ErrFragment, false
	}
	// The whole packet now takes the normal path.
	return esp.ParseOuter(p.Data()[packet.EthLen:], w.natt, o), true
}

// reassemble gives the outer fragment in p to the reassembly stage. On
// Done, p holds the whole packet, written from the start of its frame
// (decapsulation needs no headroom); otherwise p's frame is to be freed.
func (w *Worker) reassemble(p *Packet, now int64) reasm.Verdict {
	var eth [packet.EthLen]byte
	copy(eth[:], p.Frame[p.Off:])
	ipb := p.Frame[p.Off+packet.EthLen : p.Off+p.Len]
	// out may overlap ipb: Add reads the fragment before writing out.
	n, v := w.reasm.Add(ipb, now, p.Frame[packet.EthLen:])
	if v == reasm.Done {
		copy(p.Frame, eth[:])
		p.Off, p.Len = 0, packet.EthLen+n
	}
	return v
}
