// Package packet holds the one header parser and the one checksum routine
// of the data plane: zero-allocation reads of Ethernet, IPv4 (RFC 791),
// IPv6 (RFC 8200), UDP and TCP headers over byte slices, the Internet
// checksum (RFC 1071) and its incremental update (RFC 1624).
package packet

import (
	"encoding/binary"
	"net/netip"
)

// IP protocol numbers used by the data plane.
const (
	ProtoICMP    = 1
	ProtoIPv4    = 4 // IP-in-IP: the ESP next header of a tunnelled IPv4 packet
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoIPv6    = 41
	ProtoESP     = 50
	ProtoICMPv6  = 58
	ProtoNoNext  = 59 // RFC 4303 §2.6 dummy packet
	ProtoSCTP    = 132
	ProtoUDPLite = 136

	ProtoHopByHop = 0
	ProtoRouting  = 43
	ProtoFragment = 44
	ProtoDstOpts  = 60
)

// Ethernet.
const (
	EthLen     = 14
	EtherIPv4  = 0x0800
	EtherIPv6  = 0x86DD
	EtherARP   = 0x0806
	EtherVLAN  = 0x8100
	IPv4MinLen = 20
	IPv6Len    = 40
	UDPLen     = 8
	NATTPort   = 4500
)

// Checksum returns the Internet checksum of b folded into initial, which
// is a partial (unfolded, uncomplemented) sum such as a pseudo-header's.
func Checksum(b []byte, initial uint32) uint16 {
	return ^Fold(Sum(b, initial))
}

// Sum adds b into a 32-bit one's-complement accumulator without folding.
// It reads 8 bytes at a time: the carries are caught by summing 32-bit
// halves into a 64-bit register.
func Sum(b []byte, initial uint32) uint32 {
	s := uint64(initial)
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v >> 32
		s += v & 0xffffffff
		b = b[8:]
	}
	if len(b) >= 4 {
		s += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	return uint32(s>>16) + uint32(s&0xffff)
}

// Fold folds a 32-bit accumulator into 16 bits.
func Fold(s uint32) uint16 {
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// UpdateChecksum16 returns checksum cs updated for a 16-bit field that
// changed from old to new (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
func UpdateChecksum16(cs, old, new uint16) uint16 {
	s := uint32(^cs) + uint32(^old) + uint32(new)
	return ^Fold(s)
}

// IPv4HeaderChecksum computes the header checksum of a 20+ byte IPv4
// header whose checksum field may hold anything.
func IPv4HeaderChecksum(h []byte) uint16 {
	s := Sum(h[:10], 0)
	s = Sum(h[12:], s)
	return ^Fold(s)
}

// PseudoSum returns the partial sum of the TCP/UDP pseudo-header
// (RFC 768, RFC 8200 §8.1) for src, dst (4 or 16 bytes), proto and length.
func PseudoSum(src, dst []byte, proto uint8, length int) uint32 {
	s := Sum(src, 0)
	s = Sum(dst, s)
	return s + uint32(proto) + uint32(length)
}

// IP is a parsed IP header: where the payload starts and what it is. It
// is a value, filled without allocating.
type IP struct {
	V6        bool
	HdrLen    int // bytes up to the upper-layer payload (IPv6 extension headers included)
	TotalLen  int // from the header; never more than the slice
	Proto     uint8
	Fragment  bool // IPv4 MF or offset, or an IPv6 fragment header
	FirstFrag bool // the fragment (or unfragmented packet) carrying the upper header
}

// ParseIP reads the IP header at the start of b. It checks the version,
// header length, and that the total length fits b (trailing bytes, like
// Ethernet padding, are allowed and ignored). ok is false for anything
// malformed.
func ParseIP(b []byte) (ip IP, ok bool) {
	ok = ip.Parse(b)
	return ip, ok
}

// Parse is ParseIP writing into ip, for the per-packet paths: IP has more
// fields than the compiler keeps in registers, so a returned IP goes
// through the stack field by field and is then copied with wide loads
// that cannot be forwarded from those narrow stores (a store-forwarding
// stall per copy, some 5 ns a packet on the decap path). On false ip
// holds nothing of use.
func (ip *IP) Parse(b []byte) bool {
	if len(b) >= IPv4MinLen && b[0] == 0x45 {
		// The common case first: IPv4 without options.
		tot := int(binary.BigEndian.Uint16(b[2:]))
		frag := binary.BigEndian.Uint16(b[6:])
		if tot < IPv4MinLen || tot > len(b) {
			return false
		}
		ip.V6, ip.HdrLen, ip.TotalLen, ip.Proto = false, IPv4MinLen, tot, b[9]
		ip.Fragment, ip.FirstFrag = frag&0x3fff != 0, frag&0x1fff == 0
		return true
	}
	*ip = IP{}
	if len(b) < 1 {
		return false
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < IPv4MinLen {
			return false
		}
		ihl := int(b[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < IPv4MinLen || tot < ihl || tot > len(b) {
			return false
		}
		frag := binary.BigEndian.Uint16(b[6:])
		ip.HdrLen, ip.TotalLen, ip.Proto = ihl, tot, b[9]
		ip.Fragment = frag&0x3fff != 0
		ip.FirstFrag = frag&0x1fff == 0
		return true
	case 6:
		if len(b) < IPv6Len {
			return false
		}
		tot := IPv6Len + int(binary.BigEndian.Uint16(b[4:]))
		if tot > len(b) {
			return false
		}
		ip.V6, ip.TotalLen, ip.FirstFrag = true, tot, true
		nh, off := b[6], IPv6Len
		// Walk the extension headers that may precede the upper layer;
		// a bounded walk, each header at least 8 bytes.
		for i := 0; i < 8; i++ {
			switch nh {
			case ProtoHopByHop, ProtoRouting, ProtoDstOpts:
				if off+8 > tot {
					return false
				}
				l := (int(b[off+1]) + 1) * 8
				if off+l > tot {
					return false
				}
				nh, off = b[off], off+l
				continue
			case ProtoFragment:
				if off+8 > tot {
					return false
				}
				fo := binary.BigEndian.Uint16(b[off+2:])
				ip.Fragment = true
				ip.FirstFrag = fo&0xfff8 == 0
				nh, off = b[off], off+8
				continue
			}
			ip.HdrLen, ip.Proto = off, nh
			return true
		}
		return false
	}
	return false
}

// hasPorts reports whether an IP protocol carries 16-bit ports first.
func hasPorts(p uint8) bool {
	return p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP || p == ProtoUDPLite
}

// FlowKey is what a packet offers to a selector (sad.Selector.Matches):
// Flow fills it without allocating. Ports are zero for protocols without
// ports. It lives here, not in sad, so that this parser imports nothing of
// ours.
type FlowKey struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

// Equal reports whether k and o are the same key. It compares field by
// field: k == o compiles to a memequal call whose 16-byte loads, right
// after Flow stored the key 8 bytes at a time, cannot be forwarded from
// those stores and wait for them to reach the cache (once per packet in
// the SPD cache's hit check).
func (k *FlowKey) Equal(o *FlowKey) bool {
	return k.Src == o.Src && k.Dst == o.Dst && k.Proto == o.Proto && k.SrcPort == o.SrcPort && k.DstPort == o.DstPort
}

// InnerFlow is what sad.SA.MatchInner needs of a packet: its addresses as
// 128-bit numbers (an IPv4 address in Lo's low 32 bits), protocol and
// ports, as FlowKey holds them.
type InnerFlow struct {
	V6                         bool
	SrcHi, SrcLo, DstHi, DstLo uint64
	Proto                      uint8
	SrcPort, DstPort           uint16
}

// Flow fills k with the selector fields of the IP packet b (addresses,
// protocol, ports); ip must come from ParseIP(b). Ports stay zero for
// protocols without them and for non-first fragments, which RFC 4301
// §4.4.1.3 says match only selectors with ANY ports (we treat them so).
func Flow(b []byte, ip *IP, k *FlowKey) {
	if ip.V6 {
		k.Src = netip.AddrFrom16([16]byte(b[8:24]))
		k.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	} else {
		k.Src = netip.AddrFrom4([4]byte(b[12:16]))
		k.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	}
	k.Proto = ip.Proto
	k.SrcPort, k.DstPort = 0, 0
	if hasPorts(ip.Proto) && ip.FirstFrag && ip.HdrLen+4 <= ip.TotalLen {
		k.SrcPort = binary.BigEndian.Uint16(b[ip.HdrLen:])
		k.DstPort = binary.BigEndian.Uint16(b[ip.HdrLen+2:])
	}
}

// FlowInner fills f with the selector fields of the IP packet b as
// integers, for sad.SA.MatchInner; ip must come from ParseIP(b). The
// fields are those of Flow.
func FlowInner(b []byte, ip *IP, f *InnerFlow) {
	f.V6 = ip.V6
	if ip.V6 {
		f.SrcHi, f.SrcLo = binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
		f.DstHi, f.DstLo = binary.BigEndian.Uint64(b[24:]), binary.BigEndian.Uint64(b[32:])
	} else {
		f.SrcHi, f.SrcLo = 0, uint64(binary.BigEndian.Uint32(b[12:]))
		f.DstHi, f.DstLo = 0, uint64(binary.BigEndian.Uint32(b[16:]))
	}
	f.Proto = ip.Proto
	f.SrcPort, f.DstPort = 0, 0
	if hasPorts(ip.Proto) && ip.FirstFrag && ip.HdrLen+4 <= ip.TotalLen {
		f.SrcPort = binary.BigEndian.Uint16(b[ip.HdrLen:])
		f.DstPort = binary.BigEndian.Uint16(b[ip.HdrLen+2:])
	}
}
