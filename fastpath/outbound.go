package fastpath

import (
	"encoding/binary"
	"net/netip"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// Outbound: a batch from the LAN goes through two passes. The first
// decides each packet's verdict (policy, SA, MTU) and groups the protected
// ones into runs, one per SA; then each run's sequence numbers are
// reserved with one atomic; the second pass encapsulates, addresses and
// queues.

// verdict is what the first pass decided for a packet.
type verdict uint8

const (
	verdictDropped verdict = iota // freed and counted in the first pass
	verdictBypass                 // forwarded in clear
	verdictTooBig                 // over the MTU, not to be fragmented: ICMP error to the sender
	verdictProtect                // encapsulated with its run's SA
)

// outPlan is the first pass's decision for one packet.
type outPlan struct {
	verdict verdict
	run     uint8   // index into Worker.runs (verdictProtect)
	frags   uint8   // fragments the packet becomes (0: not fragmented; postFragMark: the sealed packet is)
	sa      *sad.SA // the SA whose MTU the packet exceeds (verdictTooBig)
}

// run is one SA's share of an outbound batch: its sequence numbers are
// reserved once for all its packets and its counters added once.
type run struct {
	sa   *sad.SA
	need int    // sequence numbers asked for (a fragment takes one)
	seq  uint64 // next reserved sequence number
	left int    // reserved numbers not used yet
	pk   uint64 // packets encapsulated
	by   uint64 // their inner bytes
}

// next takes the run's next reserved sequence number; false when none is
// left (sad.SA.SeqDrop says why).
func (r *run) next() (uint64, bool) {
	if r.left == 0 {
		return 0, false
	}
	seq := r.seq
	r.seq++
	r.left--
	return seq, true
}

// outbound protects (or bypasses, or discards) a batch from the LAN.
func (w *Worker) outbound(pkts []Packet) {
	nfree := 0
	nruns := w.plan(pkts, &nfree)
	// One atomic per SA per batch for the sequence numbers.
	for j := range w.runs[:nruns] {
		r := &w.runs[j]
		r.seq, r.left = r.sa.ReserveSeq(r.need)
	}
	if w.crossWAN {
		// Frames on the WAN side for everything that leaves.
		need := len(pkts) - nfree
		got := w.cfg.WAN.Alloc(w.spare[:need])
		w.local.Counts[NoFrame] += uint64(need - got)
		w.spareN, w.spareUsed = got, 0
	}
	ntx, nlan := w.emit(pkts, &nfree)
	for j := range w.runs[:nruns] {
		r := &w.runs[j]
		if r.pk > 0 {
			r.sa.Account(r.pk, r.by)
		}
		r.sa = nil
	}
	if w.crossWAN && w.spareUsed < w.spareN {
		w.cfg.WAN.Free(w.spare[w.spareUsed:w.spareN])
	}
	w.send(w.cfg.WAN, ntx)
	w.sendForwarded(w.cfg.LAN)
	if nlan > 0 {
		copy(w.tx[:nlan], w.txLAN[:nlan])
		w.send(w.cfg.LAN, nlan)
	}
	if nfree > 0 {
		w.cfg.LAN.Free(w.free[:nfree])
	}
}

// plan is the first pass: policy and SA for each packet, the packets of
// each SA counted into a run. Dropped packets are queued in w.free. It
// returns the number of runs.
func (w *Worker) plan(pkts []Packet, nfree *int) int {
	nruns := 0
	var k packet.FlowKey
	var now int64  // read once per batch, and only when a trap fires
	var gnow int64 // sad.Now(), read once per batch, and only for a gated SA
	for i := range pkts {
		pl := &w.outPlan[i]
		pl.verdict, pl.frags = verdictDropped, 0
		p := &pkts[i]
		d := p.Data()
		if len(d) <= packet.EthLen || !isIP(d) {
			w.local.Counts[NotIP]++
			w.drop(nfree, p, sad.ErrBadHeader)
			continue
		}
		ipb := d[packet.EthLen:]
		var ip packet.IP
		if !ip.Parse(ipb) {
			w.drop(nfree, p, sad.ErrBadHeader)
			continue
		}
		packet.Flow(ipb, &ip, &k)
		pol := w.cfg.SPD.LookupCached(&w.spdCache, &k)
		var sa *sad.SA
		switch {
		case pol == nil && w.cfg.DefaultBypass, pol != nil && pol.Action == spd.Bypass:
			pl.verdict = verdictBypass
			continue
		case pol == nil || pol.Action == spd.Discard:
			w.drop(nfree, p, sad.ErrDiscard)
			continue
		default:
			sa = pol.SA.Load()
		}
		if sa == nil {
			// PROTECT with no SA yet: never in clear. A trap asks the
			// control plane for one, rate-limited per policy.
			if w.cfg.Acquire != nil && pol.Acquire.Load() {
				if now == 0 {
					now = monotime()
				}
				w.cfg.Acquire.raise(pol, now)
			}
			w.drop(nfree, p, sad.ErrNoSA)
			continue
		}
		if !sa.Usable() {
			w.drop(nfree, p, sad.ErrExpired)
			continue
		}
		if g := sa.Gate(); g != nil {
			// A cluster group's SA: sealed only where the group is ready
			// (gatehold.go); one clock read per batch.
			if gnow == 0 {
				gnow = sad.Now()
			}
			if !g.Ready(gnow) {
				if w.notOwner(p, sa, gnow, true, nfree) {
					sa.Drop(sad.ErrNotOwner, 1)
				}
				continue
			}
		}
		if (w.cfg.MSSClamp != 0 || pol.MSSClamp != spd.MSSInherit) && isSYN(ipb, &ip) {
			if m := w.mssFor(pol, sa, ip.HdrLen); m > 0 && clampMSS(ipb[ip.HdrLen:ip.TotalLen], m) {
				w.local.Counts[MSSClamped]++
			}
		}
		need := 1
		if mtu := w.mtuFor(sa); mtu > 0 && esp.EncapLen(sa, ip.TotalLen, ip.HdrLen) > mtu {
			// Only plain IPv4 (no options, DF clear) in tunnel mode is
			// fragmented, small IPv6 sealed whole and then fragmented;
			// everything else gets "too big" (see mtu.go, outfrag.go).
			switch {
			case !ip.V6 && sa.Mode == sad.Tunnel && ipb[6]&0x40 == 0 && ip.HdrLen == packet.IPv4MinLen:
				_, cnt := fragPlan(ip.TotalLen, ip.HdrLen, esp.MaxInner(sa, mtu, ip.HdrLen))
				if cnt < 2 || cnt > maxFrags {
					sa.Drop(sad.ErrTooBig, 1)
					w.drop(nfree, p, sad.ErrTooBig)
					continue
				}
				need = cnt
				pl.frags = uint8(cnt)
			case postFragment(&ip, sa, mtu):
				pl.frags = postFragMark // sealed whole, then fragmented (outfrag.go)
			default:
				pl.verdict, pl.sa = verdictTooBig, sa
				continue
			}
		}
		j := 0
		for j < nruns && w.runs[j].sa != sa {
			j++
		}
		if j == nruns {
			w.runs[j] = run{sa: sa}
			nruns++
		}
		w.runs[j].need += need
		pl.verdict, pl.run = verdictProtect, uint8(j)
	}
	return nruns
}

// emit is the second pass: each packet that survived plan is encapsulated
// (or bypassed, or answered with an ICMP error) and queued, WAN-bound in
// w.tx, LAN-bound in w.txLAN. It returns how many of each.
func (w *Worker) emit(pkts []Packet, nfree *int) (ntx, nlan int) {
	var nenc uint64 // counted once per batch
	for i := range pkts {
		pl := &w.outPlan[i]
		p := &pkts[i]
		var out *Packet
		switch pl.verdict {
		case verdictDropped:
			continue
		case verdictTooBig:
			if w.tooBig(p, pl.sa) {
				w.txLAN[nlan] = *p
				nlan++
			} else {
				w.toFree(nfree, p)
			}
			pl.sa = nil
			continue
		case verdictBypass:
			var r sad.Reason
			out, r = w.bypass(p, w.cfg.WAN, w.crossWAN, &w.wanCache, w.cfg.WANHop)
			if r != sad.OK {
				w.drop(nfree, p, r)
				continue
			}
			w.local.Counts[Bypassed]++
		case verdictProtect:
			// Inline rather than a call: this is the per-packet path.
			r := &w.runs[pl.run]
			sa := r.sa
			if pl.frags > 1 {
				// Fragments 2..n go into fresh WAN frames first:
				// encrypting fragment 1 in place overwrites the data
				// that follows it.
				k, why := w.fragment(p, r, int(pl.frags), ntx)
				ntx += k
				if why != sad.OK {
					w.drop(nfree, p, why)
					continue
				}
			}
			seq, ok := r.next()
			if !ok {
				if g := sa.Gate(); g != nil && pl.frags == 0 {
					// The group was handed over after plan checked it:
					// forwarded or held, as if plan had seen it.
					if now := sad.Now(); !g.Ready(now) {
						if w.notOwner(p, sa, now, true, nfree) {
							sa.Drop(sad.ErrNotOwner, 1)
						}
						continue
					}
				}
				why := sa.SeqDrop() // exhausted, or not reserved yet
				sa.Drop(why, 1)
				w.drop(nfree, p, why)
				continue
			}
			var why sad.Reason
			if out, why = w.encap(p, sa, seq); why != sad.OK {
				sa.Drop(why, 1)
				w.drop(nfree, p, why)
				continue
			}
			r.pk++
			r.by += uint64(p.Len - packet.EthLen)
			nenc++
		}
		if out == nil {
			// Held for the next hop (pending.go); the LAN frame is free
			// if the packet went into a WAN frame.
			if w.crossWAN {
				w.toFree(nfree, p)
			}
			continue
		}
		copyPacket(&w.tx[ntx], out)
		ntx++
		if out != p {
			w.toFree(nfree, p) // the LAN frame, now copied out
		}
		if pl.verdict == verdictProtect && pl.frags == postFragMark {
			ntx = w.splitOuter(w.runs[pl.run].sa, ntx)
		}
	}
	w.local.Counts[Encaps] += nenc
	return ntx, nlan
}

// tooBig answers an oversized packet with an ICMP error built in its own
// frame, rate-limited. It reports whether p now holds the error to send
// back on the LAN; otherwise p is to be freed. Either way the original
// packet is dropped and counted.
func (w *Worker) tooBig(p *Packet, sa *sad.SA) bool {
	sa.Drop(sad.ErrTooBig, 1)
	w.local.Drops[sad.ErrTooBig]++
	ipOff := p.Off + packet.EthLen
	ipb := p.Frame[ipOff : p.Off+p.Len]
	ip, _ := packet.ParseIP(ipb)
	if isICMPError(ipb, &ip) || !ip.FirstFrag {
		return false
	}
	rate := w.cfg.ICMPRate
	if rate == 0 {
		rate = 100
	}
	src := w.cfg.ICMPSrc4
	if ip.V6 {
		src = w.cfg.ICMPSrc6
	}
	if !src.IsValid() || p.Off < 48 || !w.icmp.take(rate) {
		return false
	}
	var dst netip.Addr
	if ip.V6 {
		dst = netip.AddrFrom16([16]byte(ipb[8:24]))
	} else {
		dst = netip.AddrFrom4([4]byte(ipb[12:16]))
	}
	hop, ok := w.lanCache.lookup(w.cfg.LANHop, dst)
	if !ok {
		return false
	}
	mtu := esp.MaxInner(sa, w.mtuFor(sa), ip.HdrLen)
	off, n, ok := buildTooBig(p.Frame, ipOff, ip.TotalLen, ip.V6, mtu, src)
	if !ok {
		return false
	}
	p.Off, p.Len = off-packet.EthLen, packet.EthLen+n
	writeEth(p.Frame[p.Off:], hop, !ip.V6)
	w.local.Counts[ICMPTooBig]++
	return true
}

// fragment splits the IPv4 packet in p before encryption: fragments
// 2..count are written into fresh WAN frames, encapsulated and queued at
// w.tx[ntx:], and p is cut down to fragment 1, which the caller then
// encapsulates as usual. It returns how many packets it queued and, when
// the packet is to be dropped, why.
func (w *Worker) fragment(p *Packet, r *run, count, ntx int) (int, sad.Reason) {
	sa := r.sa
	ipOff := p.Off + packet.EthLen
	ipb := p.Frame[ipOff : p.Off+p.Len]
	hl := packet.IPv4MinLen
	per, _ := fragPlan(int(binary.BigEndian.Uint16(ipb[2:])), hl, esp.MaxInner(sa, w.mtuFor(sa), hl))
	got := w.cfg.WAN.Alloc(w.frag[:count-1])
	if got < count-1 {
		w.cfg.WAN.Free(w.frag[:got])
		w.local.Counts[NoFrame] += uint64(count - 1 - got)
		return 0, sad.ErrNoFrame
	}
	hop, ok := w.wanCache.lookup(w.cfg.WANHop, sa.Remote)
	if !ok || w.pending.n > 0 && w.behind(sa.Remote, false) {
		// Unresolved, or packets wait for it that these must not
		// overtake: only whole packets are held.
		w.cfg.WAN.Free(w.frag[:got])
		return 0, sad.ErrTooBig
	}
	hr := esp.HeadRoom(sa)
	queued := 0
	for k := 1; k < count; k++ {
		f := &w.frag[k-1]
		in := Headroom + packet.EthLen + hr
		n := writeFragment(f.Frame[in:], ipb, hl, per, k)
		seq, ok := r.next()
		if !ok {
			sa.Drop(sa.SeqDrop(), 1)
			w.cfg.WAN.Free(w.frag[k-1 : count-1])
			return queued, sad.ErrTooBig
		}
		m, why := esp.Encap(&w.s, f.Frame[Headroom+packet.EthLen:], f.Frame[in:in+n], sa, seq)
		if why != sad.OK {
			sa.Drop(why, 1)
			w.cfg.WAN.Free(w.frag[k-1 : count-1])
			return queued, sad.ErrTooBig
		}
		f.Off, f.Len = Headroom, packet.EthLen+m
		writeEth(f.Frame[f.Off:], hop, sa.Local.Is4())
		r.pk++
		r.by += uint64(n)
		w.tx[ntx+queued] = *f
		queued++
	}
	n0 := writeFragment(ipb, ipb, hl, per, 0)
	p.Len = packet.EthLen + n0
	w.local.Counts[Fragmented]++
	w.local.Counts[Fragments] += uint64(count)
	return queued, sad.OK
}

// encap protects one packet: in place, or into a WAN frame when the
// sides do not share memory. It returns the packet to send, nil with
// sad.OK when it is held for the next hop.
func (w *Worker) encap(p *Packet, sa *sad.SA, seq uint64) (*Packet, sad.Reason) {
	innerOff := p.Off + packet.EthLen
	inner := p.Frame[innerOff : p.Off+p.Len]
	hr := esp.HeadRoom(sa)
	if sa.Mode == sad.Transport {
		var ip packet.IP
		if !ip.Parse(inner) {
			return nil, sad.ErrBadHeader
		}
		hr += ip.HdrLen
		innerOff += ip.HdrLen // the payload, which stays put
	}
	// A hop that misses is asked for again once the packet is sealed, to
	// hold the packet for it (pending.go): the lookup is what starts the
	// neighbour's resolution.
	hop, ok := w.wanCache.lookup(w.cfg.WANHop, sa.Remote)
	if ok && w.pending.n > 0 && w.behind(sa.Remote, false) {
		ok = false // after the held ones, in sequence-number order
	}
	var out []byte
	var q *Packet
	if w.crossWAN {
		if w.spareUsed == w.spareN {
			return nil, sad.ErrNoFrame
		}
		q = &w.spare[w.spareUsed]
		w.spareUsed++
		out = q.Frame[Headroom+packet.EthLen:]
		q.Off = Headroom
	} else {
		start := innerOff - hr - packet.EthLen
		if start < 0 {
			return nil, sad.ErrTooBig
		}
		q = p
		q.Off = start
		out = p.Frame[start+packet.EthLen:]
	}
	n, r := esp.Encap(&w.s, out, inner, sa, seq)
	if r != sad.OK {
		if w.crossWAN {
			w.spareUsed-- // give the frame back to the spare list
		}
		return nil, r
	}
	q.Len = packet.EthLen + n
	v4 := sa.Local.Is4() || sa.Mode == sad.Transport && inner[0]>>4 == 4
	if !ok {
		if !w.hold(q, sa.Remote, v4, false) {
			if w.crossWAN {
				w.spareUsed--
			}
			return nil, sad.ErrNoRoute
		}
		// A spare taken stays below spareUsed, which is never freed
		// here: the hold owns that frame now.
		return nil, sad.OK
	}
	writeEth(q.Frame[q.Off:], hop, v4)
	return q, sad.OK
}

// bypass forwards a packet unchanged but for its Ethernet header. It
// returns the packet to send; nil with sad.OK when it is held for a next
// hop not resolved yet (pending.go); otherwise why it is to be dropped.
func (w *Worker) bypass(p *Packet, to Port, cross bool, c *hopCache, nh NextHop) (*Packet, sad.Reason) {
	d := p.Data()
	ipb := d[packet.EthLen:]
	var dst netip.Addr
	v4 := ipb[0]>>4 == 4
	if v4 {
		dst = netip.AddrFrom4([4]byte(ipb[16:20]))
	} else {
		dst = netip.AddrFrom16([16]byte(ipb[24:40]))
	}
	hop, ok := c.lookup(nh, dst)
	if ok && w.pending.n > 0 && w.behind(dst, c == &w.lanCache) {
		ok = false // after the held ones, in order
	}
	q := p
	if cross {
		if w.spareUsed == w.spareN {
			return nil, sad.ErrNoFrame
		}
		q = &w.spare[w.spareUsed]
		w.spareUsed++
		q.Off, q.Len = Headroom, p.Len
		copy(q.Frame[Headroom:], d)
	}
	if !ok {
		if w.hold(q, dst, v4, c == &w.lanCache) { // released through the same cache and table
			return nil, sad.OK
		}
		if cross {
			w.spareUsed--
		}
		return nil, sad.ErrNoRoute
	}
	writeEth(q.Frame[q.Off:], hop, v4)
	return q, sad.OK
}

// copyPacket copies *q to *t a word at a time. A struct copy moves 16
// bytes at a time, and right after encap stored Off and Len (8 bytes
// each) such a load cannot be forwarded from those stores: a stall of
// ~12 cycles per packet.
func copyPacket(t, q *Packet) {
	t.Frame, t.Off, t.Len, t.Addr = q.Frame, q.Off, q.Len, q.Addr
}
