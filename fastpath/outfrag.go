package fastpath

import (
	"encoding/binary"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// Fragmenting the outer packet after encryption (RFC 4459 §3,
// RFC 4301 §7.3 / §8.1). mtu.go answers an oversized packet with "too big"
// or splits it before encryption; neither works for an IPv6 packet that is
// already at or below 1280 bytes, the IPv6 minimum MTU (RFC 8200 §5): its
// sender may not go smaller, and a "packet too big" with less than 1280 is
// ignored (buildTooBig says 1280 at least). A WAN (or path) of 1280 to about
// 1360 bytes cannot carry such a packet with ESP around it, so the gateway
// seals it whole and fragments the ESP packet itself: outer IPv4
// fragments, or an IPv6 Fragment header, and the peer reassembles before
// decryption (fastpath/reasm here; any IPsec stack does, RFC 4301 §7.3).
//
// The rule, per family of the inner packet:
//   - IPv6, at most 1280 bytes, tunnel mode: sealed, then the outer packet
//     fragmented. Larger IPv6 packets get "packet too big" (never below
//     1280), so their sender comes down to 1280 and then takes this path.
//   - IPv4: not needed. With DF a sender can be told "fragmentation needed"
//     down to 68 bytes (RFC 791/1191; our path MTU floor for an IPv4 outer is
//     576, whose inner is about 520), and without DF the inner packet is
//     split before encryption (mtu.go). A sender that will not go below
//     some floor of its own (Linux: 552) behind a path under about 610
//     bytes is the one case left, and such paths are not IPv4 WANs.
//
// Bounded: at most maxFrags pieces, frames from the WAN port's pool (no
// allocation), counted with the inner fragmentation as fragmented /
// fragments. Outer IPv4 fragments carry the header's ID (the low 16 bits
// of the sequence number, see esp.writeOuter) and no DF; outer IPv6 ones a
// 32-bit identification from the worker's counter, the worker's ID in its
// top byte so that workers never share one.

// postFragMark in outPlan.frags marks a packet to seal whole and then
// fragment (pre-fragmented packets are marked with their count, >= 2).
const postFragMark = 1

// postFragment says whether an inner packet too big for mtu once sealed
// is one the outer fragmentation carries (the rule above).
func postFragment(ip *packet.IP, sa *sad.SA, mtu int) bool {
	if !ip.V6 || ip.TotalLen > minMTU6 || sa.Mode != sad.Tunnel {
		return false
	}
	_, n := outerFragPlan(esp.EncapLen(sa, ip.TotalLen, ip.HdrLen), sa.Local.Is4(), mtu)
	return n >= 2 && n <= maxFrags
}

// minMTU6 is the IPv6 minimum link MTU (RFC 8200 §5).
const minMTU6 = 1280

// fragHdrLen is the IPv6 Fragment header.
const fragHdrLen = 8

// outerFragPlan says how an outer packet of total bytes splits into
// fragments of at most mtu bytes: the data bytes per fragment (a multiple
// of 8, the last one less) and the count.
func outerFragPlan(total int, v4 bool, mtu int) (per, count int) {
	hl, fh := packet.IPv4MinLen, 0
	if !v4 {
		hl, fh = packet.IPv6Len, fragHdrLen
	}
	per = (mtu - hl - fh) &^ 7
	if per <= 0 || total <= hl {
		return 0, 0
	}
	return per, (total - hl + per - 1) / per
}

// splitOuter fragments the sealed packet w.tx[ntx-1] (Ethernet and outer
// IP header as esp.Encap builds them: no options or extension headers)
// that is larger than sa's MTU: fragments 2..n go into fresh WAN frames at
// w.tx[ntx:], and w.tx[ntx-1] becomes fragment 1. It returns the new
// number of queued packets; a packet that cannot be split (no frames, or
// an MTU lowered since it was planned) is dropped, counted, and its frame
// freed.
func (w *Worker) splitOuter(sa *sad.SA, ntx int) int {
	q := &w.tx[ntx-1]
	ipb := q.Frame[q.Off+packet.EthLen : q.Off+q.Len]
	v4 := sa.Local.Is4()
	mtu := w.mtuFor(sa)
	if mtu == 0 || len(ipb) <= mtu {
		return ntx
	}
	per, cnt := outerFragPlan(len(ipb), v4, mtu)
	// The first fragment of an IPv6 packet moves 8 bytes to the front for
	// its Fragment header, with room for two VLAN tags still ahead of it.
	if cnt < 2 || cnt > maxFrags || !v4 && q.Off < fragHdrLen+2*vlanLen {
		return w.dropSealed(sa, ntx, sad.ErrTooBig)
	}
	got := w.cfg.WAN.Alloc(w.frag[:cnt-1])
	if got < cnt-1 {
		w.cfg.WAN.Free(w.frag[:got])
		w.local.Counts[NoFrame] += uint64(cnt - 1 - got)
		return w.dropSealed(sa, ntx, sad.ErrNoFrame)
	}
	eth := q.Frame[q.Off : q.Off+packet.EthLen]
	var id uint32
	if !v4 {
		w.fragID++
		id = uint32(w.ID)<<24 | w.fragID&0xffffff
	}
	// Later fragments first: the first is rewritten in place.
	for k := 1; k < cnt; k++ {
		f := &w.frag[k-1]
		f.Off = Headroom
		d := f.Frame[Headroom:]
		copy(d, eth)
		var n int
		if v4 {
			n = writeFragment(d[packet.EthLen:], ipb, packet.IPv4MinLen, per, k)
		} else {
			n = writeFragment6(d[packet.EthLen:], ipb, per, k, id)
		}
		f.Len = packet.EthLen + n
		w.tx[ntx] = *f
		ntx++
	}
	if v4 {
		q.Len = packet.EthLen + writeFragment(ipb, ipb, packet.IPv4MinLen, per, 0)
	} else {
		// Ethernet and IPv6 header 8 bytes forward; the data stays.
		copy(q.Frame[q.Off-fragHdrLen:], q.Frame[q.Off:q.Off+packet.EthLen+packet.IPv6Len])
		q.Off -= fragHdrLen
		ip := q.Frame[q.Off+packet.EthLen:]
		nh := ip[6]
		ip[6] = packet.ProtoFragment
		binary.BigEndian.PutUint16(ip[4:], uint16(fragHdrLen+per))
		fh := ip[packet.IPv6Len : packet.IPv6Len+fragHdrLen]
		fh[0], fh[1] = nh, 0
		binary.BigEndian.PutUint16(fh[2:], 1) // offset 0, more fragments
		binary.BigEndian.PutUint32(fh[4:], id)
		q.Len = packet.EthLen + packet.IPv6Len + fragHdrLen + per
	}
	w.local.Counts[Fragmented]++
	w.local.Counts[Fragments] += uint64(cnt)
	return ntx
}

// writeFragment6 writes fragment k (k >= 1) of the IPv6 packet src (a
// 40-byte header, then the fragmentable part, per bytes a fragment) into
// dst with a Fragment header of identification id, and returns its length.
func writeFragment6(dst, src []byte, per, k int, id uint32) int {
	start := packet.IPv6Len + k*per
	end := start + per
	more := uint16(1)
	if end >= len(src) {
		end, more = len(src), 0
	}
	copy(dst[:packet.IPv6Len], src[:packet.IPv6Len])
	n := copy(dst[packet.IPv6Len+fragHdrLen:], src[start:end])
	dst[6] = packet.ProtoFragment
	binary.BigEndian.PutUint16(dst[4:], uint16(fragHdrLen+n))
	fh := dst[packet.IPv6Len : packet.IPv6Len+fragHdrLen]
	fh[0], fh[1] = src[6], 0
	binary.BigEndian.PutUint16(fh[2:], uint16(k*per)|more) // k*per is a multiple of 8
	binary.BigEndian.PutUint32(fh[4:], id)
	return packet.IPv6Len + fragHdrLen + n
}

// dropSealed drops the sealed packet w.tx[ntx-1] (too big and not
// splittable now, or no frames for its fragments) and returns ntx-1.
func (w *Worker) dropSealed(sa *sad.SA, ntx int, why sad.Reason) int {
	sa.Drop(why, 1)
	w.local.Drops[why]++
	w.cfg.WAN.Free(w.tx[ntx-1 : ntx])
	return ntx - 1
}
