package bpf

import (
	"encoding/binary"
	"net/netip"
)

// Frame builders for the tests. Everything is written field by field with
// encoding/binary from the RFC layouts (RFC 791 section 3.1, RFC 8200
// section 3, RFC 768, RFC 4303 section 2, IEEE 802.1Q), not taken from the
// program under test.

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeQinQ = 0x88A8

	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoESP      = 50
	protoHopOpts  = 0
	protoFragment = 44
	protoICMPv6   = 58
)

var (
	macDst = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}
	macSrc = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0x02}
)

// ether wraps payload in an Ethernet II header, with one 802.1Q tag (VID 100)
// when vlan is set.
func ether(vlan bool, etherType uint16, payload []byte) []byte {
	b := make([]byte, 0, 18+len(payload))
	b = append(b, macDst[:]...)
	b = append(b, macSrc[:]...)
	if vlan {
		b = binary.BigEndian.AppendUint16(b, etherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, 100) // PCP 0, DEI 0, VID 100
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// frameVID is the VLAN a tagged frame's (first) tag names, 0 for an
// untagged or cut frame: the tests set the program to it, so the frame is
// classified as the tests of its kind expect.
func frameVID(f []byte) uint16 {
	if len(f) < 16 {
		return 0
	}
	if et := binary.BigEndian.Uint16(f[12:]); et != etherTypeVLAN && et != etherTypeQinQ {
		return 0
	}
	v := binary.BigEndian.Uint16(f[14:]) & 0x0fff
	if qinq(f) {
		v = binary.BigEndian.Uint16(f[18:]) & 0x0fff // the inner tag
	}
	return settable(v)
}

// settable: VID 4095 is reserved (802.1Q) and no program can be set to
// it; 0 instead, so a frame tagged 4095 is another VLAN's.
func settable(vid uint16) uint16 {
	if vid == 0xfff {
		return 0
	}
	return vid
}

// qinq: the frame starts with an 802.1ad tag with an 802.1Q tag inside,
// both whole.
func qinq(f []byte) bool {
	return len(f) >= 20 && binary.BigEndian.Uint16(f[12:]) == etherTypeQinQ && binary.BigEndian.Uint16(f[16:]) == etherTypeVLAN
}

// frameSVID is the service (outer) VLAN of a Q-in-Q frame, 0 for others.
func frameSVID(f []byte) uint16 {
	if !qinq(f) {
		return 0
	}
	return settable(binary.BigEndian.Uint16(f[14:]) & 0x0fff)
}

// padMin pads a frame to the 60-byte Ethernet minimum (without FCS), as a
// NIC delivers short frames.
func padMin(f []byte) []byte {
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

type v4opts struct {
	options []byte // IP options, a multiple of 4 bytes
	fragOff uint16 // raw flags+offset field (0x2000 = MF)
	version uint8  // 0 means 4
	ihl     uint8  // 0 means computed
}

func ipv4(proto uint8, src, dst netip.Addr, payload []byte, o v4opts) []byte {
	hlen := 20 + len(o.options)
	h := make([]byte, hlen)
	ver := o.version
	if ver == 0 {
		ver = 4
	}
	ihl := o.ihl
	if ihl == 0 {
		ihl = uint8(hlen / 4)
	}
	h[0] = ver<<4 | ihl
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], o.fragOff)
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	copy(h[20:], o.options)
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return append(h, payload...)
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func ipv6(nextHeader uint8, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 6 << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = nextHeader
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

// esp is an ESP header (SPI, sequence number) followed by n bytes standing in
// for IV, ciphertext and ICV.
func esp(spi, seq uint32, n int) []byte {
	b := binary.BigEndian.AppendUint32(nil, spi)
	b = binary.BigEndian.AppendUint32(b, seq)
	for i := 0; i < n; i++ {
		b = append(b, byte(i*7+1))
	}
	return b
}

// ikeHeader is the start of an IKE_SA_INIT request (RFC 7296 section 3.1):
// initiator SPI, zero responder SPI, next payload SA, version 2.0, exchange
// 34, flags Initiator, message ID 0, length 28.
func ikeHeader() []byte {
	b := []byte{0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81}
	b = append(b, make([]byte, 8)...)
	b = append(b, 33, 0x20, 34, 0x08)
	b = binary.BigEndian.AppendUint32(b, 0)
	return binary.BigEndian.AppendUint32(b, 28)
}

// nonESPMarked prefixes payload with the 4-byte non-ESP marker (RFC 3948
// section 2.2).
func nonESPMarked(payload []byte) []byte {
	return append([]byte{0, 0, 0, 0}, payload...)
}

func arpRequest() []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	b = append(b, macSrc[:]...)
	b = append(b, 192, 0, 2, 1)
	b = append(b, make([]byte, 6)...)
	return append(b, 192, 0, 2, 2)
}

// neighborSolicitation is an ICMPv6 NS body (RFC 4861 section 4.3); the
// checksum is left zero, XDP does not look at it.
func neighborSolicitation(target netip.Addr) []byte {
	b := []byte{135, 0, 0, 0, 0, 0, 0, 0}
	t := target.As16()
	return append(b, t[:]...)
}

// solicitedNode is the solicited-node multicast address of a (RFC 4291
// section 2.7.1).
func solicitedNode(a netip.Addr) netip.Addr {
	s := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: s[13], 14: s[14], 15: s[15]})
}

// extHeader is a generic 8-byte IPv6 extension header (hop-by-hop or
// destination options with PadN), RFC 8200 section 4.
func extHeader(next uint8, payload []byte) []byte {
	return append([]byte{next, 0, 1, 4, 0, 0, 0, 0}, payload...)
}

// fragHeader is an IPv6 Fragment header, RFC 8200 section 4.5.
func fragHeader(next uint8, offset uint16, more bool, payload []byte) []byte {
	b := []byte{next, 0}
	v := offset << 3
	if more {
		v |= 1
	}
	b = binary.BigEndian.AppendUint16(b, v)
	b = binary.BigEndian.AppendUint32(b, 0xdeadbeef)
	return append(b, payload...)
}
