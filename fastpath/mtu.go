package fastpath

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// Path MTU. When a packet will not fit the WAN MTU once encapsulated:
//   - IPv4 with DF set, and IPv6, get an ICMP "fragmentation needed" /
//     ICMPv6 "packet too big" (RFC 792/1191, RFC 4443 §3.2, RFC 8201)
//     back to the sender, carrying the largest inner size that fits, at
//     most icmpRate a second per worker;
//   - IPv4 without DF is fragmented BEFORE encryption (the inner packet,
//     RFC 4459 §5.1 "pre-fragmentation"): each fragment travels in its own
//     ESP packet, so the far gateway never reassembles ESP (which would
//     cost it memory and open it to fragment floods) and the receiving
//     host reassembles as it would for any fragmented packet.
//     Fragmenting the ESP packet after encryption instead would make every
//     such packet depend on the peer's reassembly (and on middleboxes
//     that often drop fragments), and a lost fragment would cost the whole
//     packet its ICV check; the sender allowed fragmentation (DF clear),
//     so the inner packet is the one to split.

// icmpBucket is a per-worker token bucket for ICMP errors.
type icmpBucket struct {
	tokens float64
	last   time.Time
}

func (b *icmpBucket) take(rate int) bool {
	now := time.Now()
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * float64(rate)
	} else {
		b.tokens = float64(rate)
	}
	if max := float64(rate); b.tokens > max {
		b.tokens = max
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// isICMPError reports whether the IP packet is itself an ICMP error, to
// which no ICMP error may be sent (RFC 1122 §3.2.2, RFC 4443 §2.4(e)).
func isICMPError(ipb []byte, ip *packet.IP) bool {
	if ip.HdrLen >= ip.TotalLen {
		return false
	}
	t := ipb[ip.HdrLen]
	if ip.V6 {
		return ip.Proto == packet.ProtoICMPv6 && t < 128
	}
	return ip.Proto == packet.ProtoICMP && (t == 3 || t == 4 || t == 5 || t == 11 || t == 12)
}

// buildTooBig turns the frame holding the IP packet at ipOff (ipLen bytes)
// into the ICMP error for it, in place: the new IP and ICMP headers go in
// front of the original packet, which is quoted as far as the RFCs allow
// (576 bytes in all for IPv4, 1280 for IPv6). mtu is the largest inner
// packet the tunnel carries. It returns the new IP packet's offset and
// length, or ok=false when there is no source address to send from.
func buildTooBig(frame []byte, ipOff, ipLen int, v6 bool, mtu int, src netip.Addr) (off, n int, ok bool) {
	ipb := frame[ipOff : ipOff+ipLen]
	if v6 {
		if !src.Is6() {
			return 0, 0, false
		}
		q := ipLen
		if q > 1280-48 {
			q = 1280 - 48
		}
		if mtu < 1280 {
			mtu = 1280 // the IPv6 minimum; smaller paths fragment the outer packet
		}
		off = ipOff - 48
		h := frame[off : off+48+q]
		var dst [16]byte
		copy(dst[:], ipb[8:24])
		binary.BigEndian.PutUint32(h[0:], 6<<28)
		binary.BigEndian.PutUint16(h[4:], uint16(8+q))
		h[6], h[7] = packet.ProtoICMPv6, 64
		s := src.As16()
		copy(h[8:24], s[:])
		copy(h[24:40], dst[:])
		ic := h[40:]
		ic[0], ic[1], ic[2], ic[3] = 2, 0, 0, 0
		binary.BigEndian.PutUint32(ic[4:], uint32(mtu))
		cs := packet.Checksum(ic[:8+q], packet.PseudoSum(h[8:24], h[24:40], packet.ProtoICMPv6, 8+q))
		binary.BigEndian.PutUint16(ic[2:], cs)
		return off, 48 + q, true
	}
	if !src.Is4() {
		return 0, 0, false
	}
	q := ipLen
	if q > 576-28 {
		q = 576 - 28
	}
	off = ipOff - 28
	h := frame[off : off+28+q]
	var dst [4]byte
	copy(dst[:], ipb[12:16])
	h[0], h[1] = 0x45, 0xc0 // internetwork control
	binary.BigEndian.PutUint16(h[2:], uint16(28+q))
	binary.BigEndian.PutUint32(h[4:], 0)
	h[8], h[9], h[10], h[11] = 64, packet.ProtoICMP, 0, 0
	s := src.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], dst[:])
	binary.BigEndian.PutUint16(h[10:], packet.IPv4HeaderChecksum(h[:20]))
	ic := h[20:]
	ic[0], ic[1], ic[2], ic[3], ic[4], ic[5] = 3, 4, 0, 0, 0, 0
	binary.BigEndian.PutUint16(ic[6:], uint16(mtu))
	binary.BigEndian.PutUint16(ic[2:], packet.Checksum(ic[:8+q], 0))
	return off, 28 + q, true
}

// fragPlan says how an IPv4 packet of total length tot with header hl
// splits so each fragment is at most max bytes: the data bytes per
// fragment (a multiple of 8) and the count.
func fragPlan(tot, hl, max int) (per, count int) {
	per = (max - hl) &^ 7
	if per <= 0 {
		return 0, 0
	}
	data := tot - hl
	return per, (data + per - 1) / per
}

// writeFragment writes fragment i of the IPv4 packet src (header hl bytes,
// data per bytes a fragment) into dst and returns its length. The header
// is copied (options included — a simplification: RFC 791 copies only
// options with the copy flag into later fragments; we refuse to fragment
// packets with options instead, see the caller).
func writeFragment(dst, src []byte, hl, per, i int) int {
	tot := int(binary.BigEndian.Uint16(src[2:]))
	start := hl + i*per
	end := start + per
	last := false
	if end >= tot {
		end, last = tot, true
	}
	copy(dst[:hl], src[:hl])
	n := copy(dst[hl:], src[start:end])
	frag := binary.BigEndian.Uint16(src[6:])
	origOff := frag & 0x1fff
	mf := frag & 0x2000
	off := origOff + uint16(i*per/8)
	if !last {
		mf = 0x2000
	}
	binary.BigEndian.PutUint16(dst[2:], uint16(hl+n))
	binary.BigEndian.PutUint16(dst[6:], mf|off)
	dst[10], dst[11] = 0, 0
	binary.BigEndian.PutUint16(dst[10:], packet.IPv4HeaderChecksum(dst[:hl]))
	return hl + n
}
