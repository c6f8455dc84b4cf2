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
	if vid == 0 {
		return len(pkts)
	}
	n, nfree := 0, 0
	for i := range pkts {
		p := &pkts[i]
		d := p.Data()
		if len(d) < packet.EthLen+vlanLen || binary.BigEndian.Uint16(d[12:]) != packet.EtherVLAN ||
			binary.BigEndian.Uint16(d[14:])&0x0fff != vid {
			w.local.Counts[NotIP]++
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

// vlanOf is the VLAN frames sent on port carry.
func (w *Worker) vlanOf(port Port) uint16 {
	if port == w.cfg.WAN {
		return w.cfg.WANVLAN
	}
	return w.cfg.LANVLAN
}
