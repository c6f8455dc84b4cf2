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
	nfree, ntx := 0, 0
	var o esp.Outer
	var cur, lastSA *sad.SA
	var lastSPI uint32 // 0 is reserved: never found, lastSA nil
	var pk, by, ndec uint64
	var now int64   // read once per batch, and only when a fragment comes
	var gnow int64  // sad.Now(), read once per batch, and only for a gated SA
	var fenced bool // lastSA's cluster group is not this node's to receive
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
			fenced = lastSA != nil && notReady(lastSA, &gnow)
		}
		sa := lastSA
		if sa == nil {
			w.drop(&nfree, p, sad.ErrUnknownSPI)
			continue
		}
		if fenced {
			if w.notOwner(p, sa, gnow, false, &nfree) {
				sa.Drop(sad.ErrNotOwner, 1)
			}
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
		off, n, r := esp.Decap(&w.s, ipb, &o, sa)
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
		} else if !w.hold(q, dst, v4, true) {
			if q != p {
				w.spareUsed--
			}
			w.drop(&nfree, p, sad.ErrNoRoute)
			continue
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
			ntx++
		}
		if q != p {
			w.toFree(&nfree, p)
		}
	}
	if cur != nil {
		cur.Account(pk, by)
	}
	w.local.Counts[Decaps] += ndec
	if w.crossLAN && w.spareUsed < w.spareN {
		w.cfg.LAN.Free(w.spare[w.spareUsed:w.spareN])
	}
	w.send(w.cfg.LAN, ntx)
	w.sendForwarded(w.cfg.WAN)
	if nfree > 0 {
		w.cfg.WAN.Free(w.free[:nfree])
	}
}

// notReady reports whether sa belongs to a cluster group this node may not
// receive for now (sad.Gate.Ready): a standby must never decrypt, let alone
// deliver, a group's packets (its replay windows are stale), nor a new
// owner before the published tops are in its windows. *now is read once
// per batch, and only for gated SAs.
func notReady(sa *sad.SA, now *int64) bool {
	g := sa.Gate()
	if g == nil {
		return false
	}
	if *now == 0 {
		*now = sad.Now()
	}
	return !g.Ready(*now)
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
