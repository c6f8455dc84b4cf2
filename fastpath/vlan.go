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
	if vid == 0 {
		return len(pkts)
	}
	n, nfree := 0, 0
	for i := range pkts {
		p := &pkts[i]
		d := p.Data()
		if len(d) < packet.EthLen+vlanLen || binary.BigEndian.Uint16(d[12:]) != packet.EtherVLAN ||
			binary.BigEndian.Uint16(d[14:])&0x0fff != vid {
			w.local.NotIP++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		copy(d[vlanLen:vlanLen+12], d[:12]) // overlapping: copy moves
		p.Off += vlanLen
		p.Len -= vlanLen
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
func tag(pkts []Packet, vid uint16) {
	if vid == 0 {
		return
	}
	for i := range pkts {
		p := &pkts[i]
		p.Off -= vlanLen
		p.Len += vlanLen
		d := p.Data()
		copy(d[:12], d[vlanLen:vlanLen+12])
		binary.BigEndian.PutUint16(d[12:], packet.EtherVLAN)
		binary.BigEndian.PutUint16(d[14:], vid)
	}
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
// LANVLAN != WANVLAN; either may be 0, untagged). The XDP program gives
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
	lan  [Batch]Packet
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
	if !w.oneArm || w.cfg.LANVLAN == w.cfg.WANVLAN {
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
		var vid uint16
		tagged := len(d) >= packet.EthLen+vlanLen && binary.BigEndian.Uint16(d[12:]) == packet.EtherVLAN
		if tagged {
			vid = binary.BigEndian.Uint16(d[14:]) & 0x0fff
		}
		wan := vid == w.cfg.WANVLAN
		if !wan && vid != w.cfg.LANVLAN || len(d) < packet.EthLen || vid == 0 && tagged {
			w.local.NotIP++
			w.drop(&nfree, p, sad.ErrBadHeader)
			continue
		}
		if tagged {
			copy(d[vlanLen:vlanLen+12], d[:12]) // overlapping: copy moves
			p.Off += vlanLen
			p.Len -= vlanLen
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
