package fastpath

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/fastpath/reasm"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// Config wires a worker to its ports and tables.
type Config struct {
	// LAN is the protected side, WAN the unprotected side. The same port
	// for both is one-arm mode: ESP arriving is decapsulated, anything
	// else goes through the SPD.
	LAN, WAN Port
	// Inbound holds the inbound SAs by SPI; SPD the outbound policies.
	Inbound *sad.Table
	SPD     *spd.SPD
	// LANHop and WANHop give the Ethernet header of packets leaving on
	// each side.
	LANHop, WANHop NextHop
	// NATTPort is the UDP port of ESP-in-UDP; 0 means 4500.
	NATTPort uint16
	// DefaultBypass forwards packets no policy matches in clear; by
	// default they are dropped (fail closed).
	DefaultBypass bool
	// LANVLAN and WANVLAN are the 802.1Q VLANs (1..4094) each side's
	// frames carry, 0 for untagged: received frames must carry the tag,
	// which is stripped (vlan.go), and sent frames get it. In one-arm
	// mode they are the same.
	LANVLAN, WANVLAN uint16
	// LANSVLAN and WANSVLAN are 802.1ad service VLANs (Q-in-Q, TPID
	// 0x88a8) outside each side's VLAN, 0 for none (vlan.go).
	LANSVLAN, WANSVLAN uint16
	// WANMTU is the largest IP packet the WAN carries; 0 means only the
	// frame size limits. See mtu.go for what happens past it. An SA's
	// learned path MTU (sad.SA.PathMTU) lowers it for that SA, and
	// SetWANMTU changes it while the worker runs.
	WANMTU int
	// MSSClamp clamps the MSS of TCP SYNs crossing the tunnel, both ways,
	// for policies that do not say otherwise (spd.Policy.MSSClamp):
	// 0 off, spd.MSSAuto, or a value in bytes. See mss.go.
	MSSClamp int
	// PolicyMSS says some policy sets its own MSSClamp, so inbound SYNs
	// look their policy up even when MSSClamp is off.
	PolicyMSS bool
	// ICMPSrc4 and ICMPSrc6 are the addresses ICMP errors are sent from
	// (the gateway's LAN addresses); without one, oversized packets of
	// that family are dropped without an ICMP error.
	ICMPSrc4, ICMPSrc6 netip.Addr
	// ICMPRate caps ICMP errors per second per worker; 0 means 100.
	ICMPRate int
	// Acquire, when set, receives the acquires of trap policies
	// (spd.Policy.Acquire) whose packets found no SA. It is shared by all
	// workers.
	Acquire *Acquirer
	// Reasm sizes the reassembly of outer fragments of ESP and
	// ESP-in-UDP (zero fields: reasm's defaults; MaxLen is always what a
	// frame holds).
	Reasm reasm.Config
}

// maxFrags bounds how many fragments one packet may become (a 9000-byte
// jumbo frame into a 1400-byte tunnel needs 7).
const maxFrags = 8

// Stats are a worker's counters.
type Stats struct {
	Polls, RxPackets, TxPackets, Encaps, Decaps, Bypassed uint64
	// TxFull counts packets the TX ring refused; NoFrame packets that
	// found no frame to cross into; NotIP frames that were not IPv4/IPv6.
	TxFull, NoFrame, NotIP uint64
	// ICMPTooBig counts ICMP errors sent for oversized packets;
	// Fragmented the packets split before encryption, Fragments the
	// pieces they became.
	ICMPTooBig, Fragmented, Fragments uint64
	// MSSClamped counts TCP SYNs whose MSS option was lowered.
	MSSClamped uint64
	// Held counts packets held for a neighbour being resolved, Released
	// those sent once it was, HeldDrops those refused because the hold
	// was full (see pending.go; the ones that wait too long are no_route
	// drops).
	Held, Released, HeldDrops uint64
	Drops                     [sad.NumReasons]uint64
	// Reasm are the counters of the reassembly of outer fragments.
	Reasm reasm.Stats
}

// atomicStats is the published copy, added to once per poll.
type atomicStats struct {
	Polls, RxPackets, TxPackets, Encaps, Decaps, Bypassed atomic.Uint64
	TxFull, NoFrame, NotIP                                atomic.Uint64
	ICMPTooBig, Fragmented, Fragments                     atomic.Uint64
	MSSClamped                                            atomic.Uint64
	Held, Released, HeldDrops                             atomic.Uint64
	Drops                                                 [sad.NumReasons]atomic.Uint64
}

// A Worker runs the pipeline for one queue. It is used by one goroutine.
type Worker struct {
	ID  int
	cfg Config

	oneArm   bool
	crossWAN bool // LAN frames cannot be sent on WAN: encap crosses
	crossLAN bool
	natt     uint16

	s esp.Scratch

	rx, free, spare [Batch]Packet
	tx              [Batch * maxFrags]Packet
	txLAN           [Batch]Packet // ICMP errors back to senders
	frag            [maxFrags]Packet
	pktFrag         [Batch]uint8 // fragments a packet becomes (0: not fragmented)
	icmp            icmpBucket
	// spare holds frames of the other side for packets that cross
	// memories; spareN were allocated this batch, spareUsed taken.
	spareN, spareUsed int

	// outbound batch bookkeeping: per packet its run (distinct SA) index,
	// or -1 for bypass; per run the SA, count and reserved sequence
	// numbers.
	pktRun  [Batch]int8
	pktSA   [Batch]*sad.SA // for packets answered with ICMP
	runs    [Batch]*sad.SA
	runCnt  [Batch]int
	runSeq  [Batch]uint64
	runLeft [Batch]int
	runPk   [Batch]uint64
	runBy   [Batch]uint64

	lanCache, wanCache hopCache
	spdCache           spd.Cache
	spdCacheIn         spd.Cache // reverse lookups for inbound SYNs

	pending pendingQueue

	vl     vlanState // trunk mode (vlan.go)
	fragID uint32    // outer IPv6 fragments' identification (outfrag.go)

	// mtuSet is a WAN MTU set by SetWANMTU (0: none yet), taken into
	// cfg.WANMTU at the start of each poll.
	mtuSet atomic.Int32

	// reasm reassembles outer fragments of ESP. Per worker, so no
	// locks: all fragments of one datagram must reach the same queue.
	// The XDP program redirects a fragment to the queue it arrived on,
	// and NICs hash fragments (first and later alike) on the addresses
	// only, having no ports or SPI in the later ones, so they do. Where
	// RSS is configured otherwise (e.g. hashing ESP on its SPI), split
	// sets expire and are counted as reasm timeouts: configure RSS
	// for esp4/esp6/udp fragments by addresses ("sd").
	reasm *reasm.Reassembler

	local Stats
	pub   atomicStats
}

type hopCache struct {
	dst netip.Addr
	hop Hop
	ok  bool
}

func (c *hopCache) lookup(nh NextHop, dst netip.Addr) (*Hop, bool) {
	if !c.ok || c.dst != dst {
		h, ok := nh.Lookup(dst)
		if !ok {
			return nil, false
		}
		c.dst, c.hop, c.ok = dst, h, true
	}
	return &c.hop, true
}

// NewWorker makes a worker.
func NewWorker(id int, cfg Config) *Worker {
	w := &Worker{ID: id, cfg: cfg, natt: cfg.NATTPort}
	if w.natt == 0 {
		w.natt = packet.NATTPort
	}
	w.oneArm = cfg.LAN == cfg.WAN
	rc := cfg.Reasm
	rc.MaxLen = FrameSize - packet.EthLen
	w.reasm = reasm.New(rc)
	w.crossWAN = !cfg.WAN.Shares(cfg.LAN)
	w.crossLAN = !cfg.LAN.Shares(cfg.WAN)
	if w.oneArm {
		w.crossWAN, w.crossLAN = false, false
	}
	w.setupTrunk()
	return w
}

// Poll runs one round: a batch from the WAN side, then one from the LAN
// side (one batch in one-arm mode). It returns the packets received.
func (w *Worker) Poll() int {
	if m := int(w.mtuSet.Load()); m != 0 {
		w.cfg.WANMTU = m
	}
	if w.pending.n > 0 {
		w.release()
	}
	n := w.cfg.WAN.Recv(w.rx[:])
	if n > 0 {
		w.local.RxPackets += uint64(n)
		w.process(w.rx[:w.untag(w.cfg.WAN, w.rx[:n], w.cfg.WANVLAN)], true)
	}
	if !w.oneArm {
		m := w.cfg.LAN.Recv(w.rx[:])
		if m > 0 {
			w.local.RxPackets += uint64(m)
			w.process(w.rx[:w.untag(w.cfg.LAN, w.rx[:m], w.cfg.LANVLAN)], false)
		}
		n += m
	}
	w.local.Polls++
	if w.reasm.Pending() > 0 {
		w.reasm.Expire(monotime())
	}
	w.flush()
	return n
}

// SetWANMTU changes the WAN MTU the worker encapsulates for (the
// interface's MTU changed, or the operator said so); the worker takes it
// at its next poll. Safe from any goroutine.
func (w *Worker) SetWANMTU(mtu int) {
	if mtu > 0 && mtu <= 0xffff {
		w.mtuSet.Store(int32(mtu))
	}
}

// mtuFor is the largest ESP packet sa may send: the WAN MTU, or the path
// MTU learned for sa when smaller.
func (w *Worker) mtuFor(sa *sad.SA) int {
	m := w.cfg.WANMTU
	if p := sa.PathMTU(); p != 0 && (m == 0 || p < m) {
		m = p
	}
	return m
}

// process splits a received batch into inbound ESP and outbound traffic.
func (w *Worker) process(pkts []Packet, fromWAN bool) {
	if !fromWAN {
		w.outbound(pkts)
		return
	}
	if !w.oneArm {
		w.inbound(pkts)
		return
	}
	if w.vl.trunk {
		w.processTrunk(pkts)
		return
	}
	// One-arm: stable partition, ESP to the front.
	k := 0
	var o esp.Outer
	for i := range pkts {
		d := pkts[i].Data()
		if len(d) > packet.EthLen && isIP(d) && esp.ParseOuter(d[packet.EthLen:], w.natt, &o) != sad.ErrNotESP {
			pkts[i], pkts[k] = pkts[k], pkts[i]
			k++
		}
	}
	if k > 0 {
		w.inbound(pkts[:k])
	}
	if k < len(pkts) {
		w.outbound(pkts[k:])
	}
}

func isIP(d []byte) bool {
	t := binary.BigEndian.Uint16(d[12:])
	return t == packet.EtherIPv4 || t == packet.EtherIPv6
}

func (w *Worker) drop(nfree *int, p *Packet, r sad.Reason) {
	w.local.Drops[r]++
	w.free[*nfree] = *p
	*nfree++
}

// outbound protects (or bypasses, or discards) a batch from the LAN.
func (w *Worker) outbound(pkts []Packet) {
	nfree, nruns := 0, 0
	var k packet.FlowKey
	var now int64 // read once per batch, and only when a trap fires
	// Pass 1: policy and SA for each packet; count packets per SA.
	for i := range pkts {
		w.pktRun[i] = -2 // dropped
		p := &pkts[i]
		d := p.Data()
		if len(d) <= packet.EthLen || !isIP(d) {
			w.local.NotIP++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		ipb := d[packet.EthLen:]
		var ip packet.IP
		if !ip.Parse(ipb) {
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		packet.Flow(ipb, &ip, &k)
		pol := w.cfg.SPD.LookupCached(&w.spdCache, &k)
		var sa *sad.SA
		switch {
		case pol == nil && w.cfg.DefaultBypass, pol != nil && pol.Action == spd.Bypass:
			w.pktRun[i] = -1
			continue
		case pol == nil || pol.Action == spd.Discard:
			w.drop(&nfree, p, sad.ErrDiscard)
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
			w.drop(&nfree, p, sad.ErrNoSA)
			continue
		}
		if !sa.Usable() {
			w.drop(&nfree, p, sad.ErrExpired)
			continue
		}
		if (w.cfg.MSSClamp != 0 || pol.MSSClamp != spd.MSSInherit) && isSYN(ipb, &ip) {
			if m := w.mssFor(pol, sa, ip.HdrLen); m > 0 && clampMSS(ipb[ip.HdrLen:ip.TotalLen], m) {
				w.local.MSSClamped++
			}
		}
		need := 1
		w.pktFrag[i] = 0
		if mtu := w.mtuFor(sa); mtu > 0 && esp.EncapLen(sa, ip.TotalLen, ip.HdrLen) > mtu {
			// Only plain IPv4 (no options, DF clear) in tunnel mode is
			// fragmented; everything else gets "too big" (see mtu.go).
			if !ip.V6 && sa.Mode == sad.Tunnel && ipb[6]&0x40 == 0 && ip.HdrLen == packet.IPv4MinLen {
				_, cnt := fragPlan(ip.TotalLen, ip.HdrLen, esp.MaxInner(sa, mtu, ip.HdrLen))
				if cnt < 2 || cnt > maxFrags {
					sa.Drop(sad.ErrTooBig, 1)
					w.drop(&nfree, p, sad.ErrTooBig)
					continue
				}
				need = cnt
				w.pktFrag[i] = uint8(cnt)
			} else if postFragment(&ip, sa, mtu) {
				w.pktFrag[i] = postFragMark // sealed whole, then fragmented (outfrag.go)
			} else {
				w.pktRun[i] = -3
				w.pktSA[i] = sa
				continue
			}
		}
		j := 0
		for j < nruns && w.runs[j] != sa {
			j++
		}
		if j == nruns {
			w.runs[j], w.runCnt[j], w.runPk[j], w.runBy[j] = sa, 0, 0, 0
			nruns++
		}
		w.runCnt[j] += need
		w.pktRun[i] = int8(j)
	}
	// One atomic per SA per batch for the sequence numbers.
	for j := 0; j < nruns; j++ {
		w.runSeq[j], w.runLeft[j] = w.runs[j].ReserveSeq(w.runCnt[j])
	}
	// Pass 2: encapsulate and address.
	ntx := 0
	if w.crossWAN {
		// Frames on the WAN side for everything that leaves.
		need := len(pkts) - nfree
		got := w.cfg.WAN.Alloc(w.spare[:need])
		w.local.NoFrame += uint64(need - got)
		w.spareN, w.spareUsed = got, 0
	}
	nlan := 0
	for i := range pkts {
		j := w.pktRun[i]
		if j == -2 {
			continue
		}
		p := &pkts[i]
		if j == -3 {
			if w.tooBig(p, w.pktSA[i]) {
				w.txLAN[nlan] = *p
				nlan++
			} else {
				w.free[nfree] = *p
				nfree++
			}
			w.pktSA[i] = nil
			continue
		}
		var outP *Packet
		if j == -1 {
			var held bool
			outP, held = w.bypass(p, w.cfg.WAN, w.crossWAN, &w.wanCache, w.cfg.WANHop)
			if outP == nil && !held {
				w.drop(&nfree, p, sad.ErrNoRoute)
				continue
			}
			w.local.Bypassed++
			if held {
				if w.crossWAN {
					w.free[nfree] = *p // copied into the held WAN frame
					nfree++
				}
				continue
			}
		} else {
			sa := w.runs[j]
			if w.runLeft[j] == 0 {
				r := sa.SeqDrop() // exhausted, or not reserved yet
				sa.Drop(r, 1)
				w.drop(&nfree, p, r)
				continue
			}
			if w.pktFrag[i] > 1 {
				// Fragments 2..n go into fresh WAN frames first: encrypting
				// fragment 1 in place overwrites the data that follows it.
				k, ok := w.fragment(p, sa, j, int(w.pktFrag[i]), ntx)
				ntx += k
				if !ok {
					w.drop(&nfree, p, sad.ErrTooBig)
					continue
				}
				if w.runLeft[j] == 0 {
					r := sa.SeqDrop()
					sa.Drop(r, 1)
					w.drop(&nfree, p, r)
					continue
				}
			}
			seq := w.runSeq[j]
			w.runSeq[j]++
			w.runLeft[j]--
			var r sad.Reason
			outP, r = w.encap(p, sa, seq)
			if r != sad.OK {
				sa.Drop(r, 1)
				w.drop(&nfree, p, r)
				continue
			}
			w.runPk[j]++
			w.runBy[j] += uint64(p.Len - packet.EthLen)
			w.local.Encaps++
			if outP == nil {
				// Held for the peer's neighbour (pending.go); the LAN
				// frame is free if the ESP went into a WAN frame.
				if w.crossWAN {
					w.free[nfree] = *p
					nfree++
				}
				continue
			}
		}
		w.tx[ntx] = *outP
		ntx++
		if outP != p {
			w.free[nfree] = *p // the LAN frame, now copied out
			nfree++
		}
		if j >= 0 && w.pktFrag[i] == postFragMark {
			ntx = w.splitOuter(w.runs[j], ntx)
		}
	}
	for j := 0; j < nruns; j++ {
		if w.runPk[j] > 0 {
			w.runs[j].Account(w.runPk[j], w.runBy[j])
		}
		w.runs[j] = nil
	}
	if w.crossWAN && w.spareUsed < w.spareN {
		w.cfg.WAN.Free(w.spare[w.spareUsed:w.spareN])
	}
	w.send(w.cfg.WAN, ntx)
	if nlan > 0 {
		copy(w.tx[:nlan], w.txLAN[:nlan])
		w.send(w.cfg.LAN, nlan)
	}
	if nfree > 0 {
		w.cfg.LAN.Free(w.free[:nfree])
	}
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
	w.local.ICMPTooBig++
	return true
}

// fragment splits the IPv4 packet in p before encryption: fragments
// 2..count are written into fresh WAN frames, encapsulated and queued at
// w.tx[ntx:], and p is cut down to fragment 1, which the caller then
// encapsulates as usual. It returns how many packets it queued and false
// if the packet had to be dropped.
func (w *Worker) fragment(p *Packet, sa *sad.SA, j int8, count, ntx int) (int, bool) {
	ipOff := p.Off + packet.EthLen
	ipb := p.Frame[ipOff : p.Off+p.Len]
	hl := packet.IPv4MinLen
	per, _ := fragPlan(int(binary.BigEndian.Uint16(ipb[2:])), hl, esp.MaxInner(sa, w.mtuFor(sa), hl))
	got := w.cfg.WAN.Alloc(w.frag[:count-1])
	if got < count-1 {
		w.cfg.WAN.Free(w.frag[:got])
		w.local.NoFrame++
		return 0, false
	}
	hop, ok := w.wanCache.lookup(w.cfg.WANHop, sa.Remote)
	if !ok || w.pending.n > 0 && w.behind(sa.Remote, false) {
		// Unresolved, or packets wait for it that these must not
		// overtake: only whole packets are held.
		w.cfg.WAN.Free(w.frag[:got])
		return 0, false
	}
	hr := esp.HeadRoom(sa)
	queued := 0
	for k := 1; k < count; k++ {
		f := &w.frag[k-1]
		in := Headroom + packet.EthLen + hr
		n := writeFragment(f.Frame[in:], ipb, hl, per, k)
		if w.runLeft[j] == 0 {
			sa.Drop(sa.SeqDrop(), 1)
			w.cfg.WAN.Free(w.frag[k-1 : count-1])
			return queued, false
		}
		seq := w.runSeq[j]
		w.runSeq[j]++
		w.runLeft[j]--
		m, r := esp.Encap(&w.s, f.Frame[Headroom+packet.EthLen:], f.Frame[in:in+n], sa, seq)
		if r != sad.OK {
			sa.Drop(r, 1)
			w.cfg.WAN.Free(w.frag[k-1 : count-1])
			return queued, false
		}
		f.Off, f.Len = Headroom, packet.EthLen+m
		writeEth(f.Frame[f.Off:], hop, sa.Local.Is4())
		w.runPk[j]++
		w.runBy[j] += uint64(n)
		w.tx[ntx+queued] = *f
		queued++
	}
	n0 := writeFragment(ipb, ipb, hl, per, 0)
	p.Len = packet.EthLen + n0
	w.local.Fragmented++
	w.local.Fragments += uint64(count)
	return queued, true
}

// encap protects one packet: in place, or into a WAN frame when the
// sides do not share memory. It returns the packet to send.
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
			w.local.NoFrame++
			return nil, sad.ErrTooBig
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

// bypass forwards a packet unchanged but for its Ethernet header. When
// the next hop is not resolved yet the packet is held for it (held true,
// nil returned; pending.go); nil and false mean it is to be dropped.
func (w *Worker) bypass(p *Packet, to Port, cross bool, c *hopCache, nh NextHop) (*Packet, bool) {
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
			w.local.NoFrame++
			return nil, false
		}
		q = &w.spare[w.spareUsed]
		w.spareUsed++
		q.Off, q.Len = Headroom, p.Len
		copy(q.Frame[Headroom:], d)
	}
	if !ok {
		if w.hold(q, dst, v4, c == &w.lanCache) { // released through the same cache and table
			return nil, true
		}
		if cross {
			w.spareUsed--
		}
		return nil, false
	}
	writeEth(q.Frame[q.Off:], hop, v4)
	return q, false
}

func writeEth(b []byte, h *Hop, v4 bool) {
	copy(b[0:6], h.Dst[:])
	copy(b[6:12], h.Src[:])
	t := uint16(packet.EtherIPv6)
	if v4 {
		t = packet.EtherIPv4
	}
	binary.BigEndian.PutUint16(b[12:], t)
}

// inbound opens a batch of ESP from the WAN.
func (w *Worker) inbound(pkts []Packet) {
	nfree, ntx := 0, 0
	var o esp.Outer
	var cur, lastSA *sad.SA
	var lastSPI uint32 // 0 is reserved: never found, lastSA nil
	var pk, by uint64
	var now int64 // read once per batch, and only when a fragment comes
	if w.crossLAN {
		got := w.cfg.LAN.Alloc(w.spare[:len(pkts)])
		w.local.NoFrame += uint64(len(pkts) - got)
		w.spareN, w.spareUsed = got, 0
	}
	for i := range pkts {
		p := &pkts[i]
		d := p.Data()
		if len(d) <= packet.EthLen || !isIP(d) {
			w.local.NotIP++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		r := esp.ParseOuter(d[packet.EthLen:], w.natt, &o)
		if r == sad.ErrFragment && (o.IP.Proto == packet.ProtoESP || o.IP.Proto == packet.ProtoUDP) {
			if now == 0 {
				now = monotime()
			}
			switch w.reassemble(p, now) {
			case reasm.Held:
				w.free[nfree] = *p
				nfree++
				continue
			case reasm.Dropped:
				w.drop(&nfree, p, sad.ErrFragment)
				continue
			}
			// The whole packet now takes the normal path.
			d = p.Data()
			r = esp.ParseOuter(d[packet.EthLen:], w.natt, &o)
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
				w.drop(&nfree, p, sad.ErrTooBig)
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
		w.local.Decaps++
		if ok {
			w.tx[ntx] = *q
			ntx++
		}
		if q != p {
			w.free[nfree] = *p
			nfree++
		}
	}
	if cur != nil {
		cur.Account(pk, by)
	}
	if w.crossLAN && w.spareUsed < w.spareN {
		w.cfg.LAN.Free(w.spare[w.spareUsed:w.spareN])
	}
	out := w.cfg.LAN
	w.send(out, ntx)
	if nfree > 0 {
		w.cfg.WAN.Free(w.free[:nfree])
	}
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

// send transmits w.tx[:n] on port, freeing what the ring refused.
func (w *Worker) send(port Port, n int) {
	if n == 0 {
		return
	}
	w.tagFor(port, w.tx[:n])
	sent := port.Send(w.tx[:n])
	w.local.TxPackets += uint64(sent)
	if sent < n {
		w.local.TxFull += uint64(n - sent)
		port.Free(w.tx[sent:n])
	}
}

// flush publishes the poll's counters and zeroes the local copy.
func (w *Worker) flush() {
	l := &w.local
	pub := &w.pub
	add := func(a *atomic.Uint64, v *uint64) {
		if *v != 0 {
			a.Add(*v)
			*v = 0
		}
	}
	add(&pub.Polls, &l.Polls)
	add(&pub.RxPackets, &l.RxPackets)
	add(&pub.TxPackets, &l.TxPackets)
	add(&pub.Encaps, &l.Encaps)
	add(&pub.Decaps, &l.Decaps)
	add(&pub.Bypassed, &l.Bypassed)
	add(&pub.TxFull, &l.TxFull)
	add(&pub.NoFrame, &l.NoFrame)
	add(&pub.NotIP, &l.NotIP)
	add(&pub.ICMPTooBig, &l.ICMPTooBig)
	add(&pub.Fragmented, &l.Fragmented)
	add(&pub.Fragments, &l.Fragments)
	add(&pub.MSSClamped, &l.MSSClamped)
	add(&pub.Held, &l.Held)
	add(&pub.Released, &l.Released)
	add(&pub.HeldDrops, &l.HeldDrops)
	for i := range l.Drops {
		add(&pub.Drops[i], &l.Drops[i])
	}
}

// Stats returns the worker's published counters; safe from any goroutine.
func (w *Worker) Stats() Stats {
	var s Stats
	p := &w.pub
	s.Polls, s.RxPackets, s.TxPackets = p.Polls.Load(), p.RxPackets.Load(), p.TxPackets.Load()
	s.Encaps, s.Decaps, s.Bypassed = p.Encaps.Load(), p.Decaps.Load(), p.Bypassed.Load()
	s.TxFull, s.NoFrame, s.NotIP = p.TxFull.Load(), p.NoFrame.Load(), p.NotIP.Load()
	s.ICMPTooBig, s.Fragmented, s.Fragments = p.ICMPTooBig.Load(), p.Fragmented.Load(), p.Fragments.Load()
	s.MSSClamped = p.MSSClamped.Load()
	s.Held, s.Released, s.HeldDrops = p.Held.Load(), p.Released.Load(), p.HeldDrops.Load()
	for i := range s.Drops {
		s.Drops[i] = p.Drops[i].Load()
	}
	s.Reasm = w.reasm.Stats()
	return s
}
