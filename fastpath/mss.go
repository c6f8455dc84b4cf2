package fastpath

import (
	"encoding/binary"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// TCP MSS clamping: a SYN's MSS option tells the other end the largest
// segment to send. Lowered to what fits the tunnel, the connection never
// sends a packet the tunnel must refuse, which saves a round trip of ICMP
// and rescues hosts behind filters that drop ICMP (PMTU black holes, RFC
// 2923 §2.1). Both directions' SYNs are clamped: the SYN leaving bounds
// what comes back, the SYN (or SYN-ACK) arriving bounds what we send.

const tcpMinLen = 20

// mssFor is the clamp for a packet of the policy pol (nil: none found)
// through sa: 0 when none applies.
func (w *Worker) mssFor(pol *spd.Policy, sa *sad.SA, hdrLen int) int {
	c := w.cfg.MSSClamp
	if pol != nil && pol.MSSClamp != spd.MSSInherit {
		c = pol.MSSClamp
	}
	switch {
	case c == spd.MSSAuto:
		m := esp.MaxInner(sa, w.mtuFor(sa), hdrLen) - hdrLen - tcpMinLen
		if m <= 0 {
			return 0
		}
		return m
	case c > 0:
		return c
	}
	return 0
}

// isSYN reports whether the IP packet ipb (parsed as ip) starts a TCP
// segment with SYN set and a header that lies wholly inside the packet.
func isSYN(ipb []byte, ip *packet.IP) bool {
	if ip.Proto != packet.ProtoTCP || !ip.FirstFrag || ip.HdrLen+tcpMinLen > ip.TotalLen {
		return false
	}
	return ipb[ip.HdrLen+13]&0x02 != 0
}

// clampMSS lowers the MSS option of the TCP segment tcp (its header at
// the start) to mss when it is larger, and fixes the TCP checksum
// incrementally (RFC 1624), so the payload is never summed again. A SYN
// without an MSS option is left alone: adding one would change the
// segment's length. It reports whether the segment changed.
func clampMSS(tcp []byte, mss int) bool {
	if len(tcp) < tcpMinLen || mss <= 0 || mss > 0xffff {
		return false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < tcpMinLen || doff > len(tcp) {
		return false
	}
	opts := tcp[tcpMinLen:doff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		case 2:
			if i+4 > len(opts) || opts[i+1] != 4 {
				return false
			}
			at := tcpMinLen + i + 2 // the value's offset in tcp
			if int(binary.BigEndian.Uint16(tcp[at:])) <= mss {
				return false
			}
			// The checksum sums 16-bit words at even offsets; a value after
			// a single no-op straddles two of them.
			lo := at &^ 1
			hi := (at + 2 + 1) &^ 1
			var old [4]byte
			copy(old[:], tcp[lo:hi])
			binary.BigEndian.PutUint16(tcp[at:], uint16(mss))
			cs := binary.BigEndian.Uint16(tcp[16:])
			for k := lo; k < hi; k += 2 {
				cs = packet.UpdateChecksum16(cs, binary.BigEndian.Uint16(old[k-lo:]), binary.BigEndian.Uint16(tcp[k:]))
			}
			binary.BigEndian.PutUint16(tcp[16:], cs)
			return true
		default:
			if i+1 >= len(opts) || opts[i+1] < 2 {
				return false
			}
			i += int(opts[i+1])
		}
	}
	return false
}

// clampInbound clamps a decapsulated SYN (or SYN-ACK) arriving through
// sa: its MSS bounds the segments we will seal, so the clamp is the one
// of the outbound policy of the reverse flow, sized with sa's overhead
// (the peer's SAs use the same suite and encapsulation as ours).
func (w *Worker) clampInbound(inner []byte, sa *sad.SA) {
	var ip packet.IP
	if !ip.Parse(inner) || !isSYN(inner, &ip) {
		return
	}
	var k packet.FlowKey
	packet.Flow(inner, &ip, &k)
	k.Src, k.Dst = k.Dst, k.Src
	k.SrcPort, k.DstPort = k.DstPort, k.SrcPort
	pol := w.cfg.SPD.LookupCached(&w.spdCacheIn, &k)
	if m := w.mssFor(pol, sa, ip.HdrLen); m > 0 && clampMSS(inner[ip.HdrLen:ip.TotalLen], m) {
		w.local.Counts[MSSClamped]++
	}
}
