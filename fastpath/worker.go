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
	// Batch is the most packets taken from a port per poll (1..MaxBatch,
	// 0: Batch). Larger batches mean fewer ring updates and TX kicks per
	// packet, and more frames held by the worker at once.
	Batch int
	// GateHold is how long (nanoseconds) a worker holds the frames of a
	// cluster group that is not ready here yet, for a new owner to process
	// once it is (gatehold.go); 0: such frames are dropped at once.
	GateHold int64
	// OwnMAC are this node's MACs on the WAN (0) and LAN (1) side: a
	// frame of a group not ready here that was not sent to them is
	// dropped, not held nor forwarded (zero: not checked).
	OwnMAC [2][6]byte
	// Reasm sizes the reassembly of outer fragments of ESP and
	// ESP-in-UDP (zero fields: reasm's defaults; MaxLen is always what a
	// frame holds).
	Reasm reasm.Config
}

// maxFrags bounds how many fragments one packet may become (a 9000-byte
// jumbo frame into a 1400-byte tunnel needs 7).
const maxFrags = 8

// A Worker runs the pipeline for one queue. It is used by one goroutine.
type Worker struct {
	ID  int
	cfg Config

	oneArm   bool
	crossWAN bool // LAN frames cannot be sent on WAN: encap crosses
	crossLAN bool
	natt     uint16

	s esp.Scratch

	batch           int // packets per Recv (Config.Batch)
	rx, free, spare [MaxBatch]Packet
	tx              [MaxBatch * maxFrags]Packet
	txLAN           [MaxBatch]Packet // ICMP errors back to senders
	frag            [maxFrags]Packet
	icmp            icmpBucket
	// spare holds frames of the other side for packets that cross
	// memories; spareN were allocated this batch, spareUsed taken.
	spareN, spareUsed int

	// outbound batch bookkeeping (outbound.go): per packet its verdict,
	// per distinct SA its run.
	outPlan [MaxBatch]outPlan
	runs    [MaxBatch]run

	lanCache, wanCache hopCache
	spdCache           spd.Cache
	spdCacheIn         spd.Cache // reverse lookups for inbound SYNs

	pending pendingQueue

	// ghold holds frames of cluster groups not ready here yet; fwd the
	// frames of this batch forwarded to a group's new owner (gatehold.go).
	ghold gateHold
	fwd   [MaxBatch]Packet
	fwdN  int

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
	w := &Worker{ID: id, cfg: cfg, natt: cfg.NATTPort, batch: cfg.Batch}
	if w.batch <= 0 || w.batch > MaxBatch {
		w.batch = Batch
	}
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
	// The one-entry hop caches last one poll: a neighbour whose address
	// moved (a cluster's gratuitous ARP, a router's failover) is seen from
	// the next batch on, at one table lookup per batch and side.
	w.lanCache.ok, w.wanCache.ok = false, false
	if w.pending.n > 0 {
		w.release()
	}
	if w.ghold.n > 0 {
		w.releaseHeld()
	}
	n := w.cfg.WAN.Recv(w.rx[:w.batch])
	if n > 0 {
		w.local.Counts[RxPackets] += uint64(n)
		w.process(w.rx[:w.untag(w.cfg.WAN, w.rx[:n], w.cfg.WANVLAN)], true)
	}
	if !w.oneArm {
		m := w.cfg.LAN.Recv(w.rx[:w.batch])
		if m > 0 {
			w.local.Counts[RxPackets] += uint64(m)
			w.process(w.rx[:w.untag(w.cfg.LAN, w.rx[:m], w.cfg.LANVLAN)], false)
		}
		n += m
	}
	w.local.Counts[Polls]++
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

// drop counts p as dropped for r and queues its frame to be freed.
func (w *Worker) drop(nfree *int, p *Packet, r sad.Reason) {
	w.local.Drops[r]++
	w.toFree(nfree, p)
}

// toFree queues p's frame in w.free, which the batch frees at its end.
func (w *Worker) toFree(nfree *int, p *Packet) {
	w.free[*nfree] = *p
	*nfree++
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

// send transmits w.tx[:n] on port, freeing what the ring refused.
func (w *Worker) send(port Port, n int) {
	if n == 0 {
		return
	}
	w.sendPkts(port, w.tx[:n])
}

// sendPkts transmits pkts on port, freeing what the ring refused.
func (w *Worker) sendPkts(port Port, pkts []Packet) {
	w.tagFor(port, pkts)
	sent := port.Send(pkts)
	w.local.Counts[TxPackets] += uint64(sent)
	if n := len(pkts); sent < n {
		w.local.Counts[TxFull] += uint64(n - sent)
		port.Free(pkts[sent:n])
	}
}
