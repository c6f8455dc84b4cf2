package fastpath

import (
	"encoding/binary"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// vlanLen is an 802.1Q tag: TPID 0x8100 and the TCI.
const vlanLen = 4

// untag strips the 802.1Q tag of vid from each received frame, moving the
// MAC addresses over it, so the pipeline sees plain Ethernet II. A frame
// without exactly that tag (the XDP program steers only vid's frames
// here, so it is a stray) is freed and counted. vid 0: untagged frames
// are expected and nothing is done. It returns the frames kept, in order
// at the front of pkts.
func (w *Worker) untag(port Port, pkts []Packet, vid uint16) int {
	if w.vl.trunk {
		return w.untagTrunk(port, pkts)
	}
	svid := w.svlanOf(port)
	if vid == 0 && svid == 0 {
		return len(pkts)
	}
	n, nfree := 0, 0
	for i := range pkts {
		p := &pkts[i]
		d := p.Data()
		s, v, k := frameTags(d)
		if k <= 0 || v != vid || s != svid {
			w.local.Counts[NotIP]++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		copy(d[k:k+12], d[:12]) // overlapping: copy moves
		p.Off += k
		p.Len -= k
		pkts[n] = *p
		n++
	}
	if nfree > 0 {
		port.Free(w.free[:nfree])
	}
	return n
}

// tag inserts an 802.1Q tag of vid (priority 0) in front of the EtherType
// of each frame to send. Frames are built with fastpath.Headroom in front
// of them, so the 4 bytes are there; vid 0 leaves them untagged.
func tag(pkts []Packet, vid uint16) { tagStack(pkts, 0, vid) }

// tagStack tags each frame with vid, inside an 802.1ad service tag svid
// when that is not 0 (Q-in-Q); both 0 leave the frames untagged.
func tagStack(pkts []Packet, svid, vid uint16) {
	if vid == 0 && svid == 0 {
		return
	}
	k := vlanLen
	if svid != 0 {
		k = 2 * vlanLen
	}
	for i := range pkts {
		p := &pkts[i]
		p.Off -= k
		p.Len += k
		d := p.Data()
		copy(d[:12], d[k:k+12])
		t := d[12:]
		if svid != 0 {
			binary.BigEndian.PutUint16(t[0:], etherQinQ)
			binary.BigEndian.PutUint16(t[2:], svid)
			t = t[vlanLen:]
		}
		binary.BigEndian.PutUint16(t[0:], packet.EtherVLAN)
		binary.BigEndian.PutUint16(t[2:], vid)
	}
}

// etherQinQ is the 802.1ad service tag's TPID.
const etherQinQ = 0x88a8

// frameTags reads a frame's VLAN tags as the XDP program does: none (k 0),
// one 802.1Q or 802.1ad tag (k 4, svid 0), or Q-in-Q, an 802.1ad tag with
// an 802.1Q tag inside (k 8). k is -1 for a frame cut inside its tags or
// its Ethernet header. Priority bits are not part of a VID.
func frameTags(d []byte) (svid, vid uint16, k int) {
	if len(d) < packet.EthLen {
		return 0, 0, -1
	}
	t := binary.BigEndian.Uint16(d[12:])
	if t != packet.EtherVLAN && t != etherQinQ {
		return 0, 0, 0
	}
	if len(d) < packet.EthLen+vlanLen {
		return 0, 0, -1
	}
	vid = binary.BigEndian.Uint16(d[14:]) & 0x0fff
	if t != etherQinQ || binary.BigEndian.Uint16(d[16:]) != packet.EtherVLAN {
		return 0, vid, vlanLen
	}
	if len(d) < packet.EthLen+2*vlanLen {
		return 0, 0, -1
	}
	return vid, binary.BigEndian.Uint16(d[18:]) & 0x0fff, 2 * vlanLen
}

// tagFor tags frames to send on port with that side's tags.
func (w *Worker) tagFor(port Port, pkts []Packet) {
	tagStack(pkts, w.svlanOf(port), w.vlanOf(port))
}

// svlanOf is the service VLAN (Q-in-Q) of port's side, 0 for none.
func (w *Worker) svlanOf(port Port) uint16 {
	if port == w.cfg.WAN {
		return w.cfg.WANSVLAN
	}
	return w.cfg.LANSVLAN
}

// vlanOf is the VLAN frames sent on port carry. On a trunk w.cfg.LAN is
// the lanSide view of the one port, so the two sides still differ here.
func (w *Worker) vlanOf(port Port) uint16 {
	if port == w.cfg.WAN {
		return w.cfg.WANVLAN
	}
	return w.cfg.LANVLAN
}

// Trunk: the LAN and the WAN are two VLANs of one port (one-arm mode with
// LANVLAN != WANVLAN, or different service VLANs; either may be 0,
// untagged). The XDP program gives
// each tag its role (bpf.Objects.SetTrunk) and so does the worker: a frame
// on the WAN's tag is only ever inbound (ESP; anything else is dropped by
// the inbound path, never sealed as if from the LAN), a frame on the LAN's
// tag only ever outbound (the SPD), and what leaves gets its side's tag:
// sealed packets and BYPASS the WAN's, decapsulated packets and ICMP errors
// the LAN's. Nothing from the LAN's tag leaves on the WAN's in clear unless
// a BYPASS policy says so, as with two ports.
type vlanState struct {
	trunk bool
	// nWAN is how many frames of the last untagTrunk batch are the WAN's
	// (at the front); lan holds the LAN's while the batch is sorted.
	nWAN int
	lan  [MaxBatch]Packet
}

// lanSide is the LAN's view of a trunk port: the same port, but a
// different value, so that the worker's "which side" comparisons
// (vlanOf, the pending queue's ports) tell the two apart.
type lanSide struct{ Port }

// Shares compares the ports underneath.
func (l lanSide) Shares(other Port) bool {
	if o, ok := other.(lanSide); ok {
		other = o.Port
	}
	return l.Port.Shares(other)
}

// setupTrunk is called by NewWorker once it knows the mode.
func (w *Worker) setupTrunk() {
	if !w.oneArm || w.cfg.LANVLAN == w.cfg.WANVLAN && w.cfg.LANSVLAN == w.cfg.WANSVLAN {
		return
	}
	w.vl.trunk = true
	w.cfg.LAN = lanSide{w.cfg.WAN}
}

// untagTrunk strips each frame's tag and sorts the batch by role: the
// WAN's frames first (w.vl.nWAN of them), then the LAN's, each in arrival
// order. A frame of neither VLAN (the XDP program passes those to the
// kernel, so it is a stray) is freed and counted as untag counts them.
func (w *Worker) untagTrunk(port Port, pkts []Packet) int {
	nw, nl, nfree := 0, 0, 0
	for i := range pkts {
		p := &pkts[i]
		d := p.Data()
		svid, vid, k := frameTags(d)
		wan := vid == w.cfg.WANVLAN && svid == w.cfg.WANSVLAN
		if !wan && (vid != w.cfg.LANVLAN || svid != w.cfg.LANSVLAN) || k < 0 || vid == 0 && k > 0 {
			w.local.Counts[NotIP]++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		if k > 0 {
			copy(d[k:k+12], d[:12]) // overlapping: copy moves
			p.Off += k
			p.Len -= k
		}
		if wan {
			pkts[nw] = *p
			nw++
		} else {
			w.vl.lan[nl] = *p
			nl++
		}
	}
	copy(pkts[nw:], w.vl.lan[:nl])
	clear(w.vl.lan[:nl]) // no stale frame references
	w.vl.nWAN = nw
	if nfree > 0 {
		port.Free(w.free[:nfree])
	}
	return nw + nl
}

// processTrunk hands a sorted trunk batch to each side's pipeline.
func (w *Worker) processTrunk(pkts []Packet) {
	if w.vl.nWAN > 0 {
		w.inbound(pkts[:w.vl.nWAN])
	}
	if w.vl.nWAN < len(pkts) {
		w.outbound(pkts[w.vl.nWAN:])
	}
}
