package message

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Selector lengths of RFC 7296 §3.13.1: 8 octets of header and ports plus
// two addresses.
const (
	tsHeaderLen = 4
	tsIPv4Len   = 16
	tsIPv6Len   = 40
)

// TrafficSelectors is a Traffic Selector payload, TSi or TSr
// (RFC 7296 §3.13).
type TrafficSelectors struct {
	Responder bool // TSr when set, TSi otherwise
	Selectors []TrafficSelector
}

// TrafficSelector is one traffic selector (RFC 7296 §3.13.1).
//
// For TS_IPV4_ADDR_RANGE and TS_IPV6_ADDR_RANGE the fields IPProtocol,
// ports and addresses hold the selector (IPProtocol 0 and ports 0-65535
// mean any). Other types (TS_FC_ADDR_RANGE, TS_SECLABEL, unassigned ones)
// are kept opaque: IPProtocol holds the selector's second octet and Data
// everything after the four-octet selector header.
type TrafficSelector struct {
	Type       TSType
	IPProtocol uint8
	StartPort  uint16
	EndPort    uint16
	StartAddr  netip.Addr
	EndAddr    netip.Addr
	Data       []byte // types other than the address ranges only
}

// PrefixSelector is the address-range selector that covers prefix p, any
// protocol and any port (RFC 7296 §3.13.1).
func PrefixSelector(p netip.Prefix) TrafficSelector {
	p = p.Masked()
	s := TrafficSelector{Type: TSIPv6AddrRange, StartAddr: p.Addr(), EndPort: 0xffff}
	if s.StartAddr.Is4() {
		s.Type = TSIPv4AddrRange
	}
	b := p.Addr().AsSlice()
	for i := range len(b) * 8 {
		if i >= p.Bits() {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	s.EndAddr, _ = netip.AddrFromSlice(b)
	return s
}

// Type returns PayloadTSr or PayloadTSi.
func (ts *TrafficSelectors) Type() PayloadType {
	if ts.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

// AppendBody appends the selector count, three reserved octets and the
// selectors.
func (ts *TrafficSelectors) AppendBody(dst []byte) ([]byte, error) {
	if len(ts.Selectors) > MaxTrafficSelectors {
		return dst, encodeError("%d traffic selectors, limit %d", len(ts.Selectors), MaxTrafficSelectors)
	}
	dst = append(dst, byte(len(ts.Selectors)), 0, 0, 0)
	for i := range ts.Selectors {
		var err error
		dst, err = ts.Selectors[i].appendTo(dst)
		if err != nil {
			return dst, fmt.Errorf("traffic selector %d: %w", i, err)
		}
	}
	return dst, nil
}

func (s *TrafficSelector) appendTo(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, byte(s.Type), s.IPProtocol, 0, 0)
	switch s.Type {
	case TSIPv4AddrRange, TSIPv6AddrRange:
		want4 := s.Type == TSIPv4AddrRange
		for _, a := range [2]netip.Addr{s.StartAddr, s.EndAddr} {
			if !a.IsValid() || a.Is4() != want4 || a.Zone() != "" {
				return dst, encodeError("%v with address %v", s.Type, a)
			}
		}
		if len(s.Data) != 0 {
			return dst, encodeError("%v cannot carry Data", s.Type)
		}
		dst = binary.BigEndian.AppendUint16(dst, s.StartPort)
		dst = binary.BigEndian.AppendUint16(dst, s.EndPort)
		for _, a := range [2]netip.Addr{s.StartAddr, s.EndAddr} {
			if want4 {
				b := a.As4()
				dst = append(dst, b[:]...)
			} else {
				b := a.As16()
				dst = append(dst, b[:]...)
			}
		}
	default:
		dst = append(dst, s.Data...)
	}
	return dst, putLength(dst, start, "traffic selector")
}

func decodeTrafficSelectors(b []byte, responder bool) (*TrafficSelectors, error) {
	if len(b) < 4 {
		return nil, truncated("TS", 4, len(b))
	}
	count := int(b[0])
	if count > MaxTrafficSelectors {
		return nil, tooMany("traffic selectors", MaxTrafficSelectors)
	}
	rest := b[4:]
	// Each selector takes at least its header: check before allocating.
	if count*tsHeaderLen > len(rest) {
		return nil, truncated(fmt.Sprintf("%d traffic selectors", count), count*tsHeaderLen, len(rest))
	}
	ts := &TrafficSelectors{Responder: responder}
	if count > 0 {
		ts.Selectors = make([]TrafficSelector, 0, count)
	}
	off := 0
	for i := range count {
		if len(rest)-off < tsHeaderLen {
			return nil, fmt.Errorf("traffic selector %d: %w", i,
				truncated("selector header", tsHeaderLen, len(rest)-off))
		}
		s := TrafficSelector{Type: TSType(rest[off]), IPProtocol: rest[off+1]}
		slen := int(binary.BigEndian.Uint16(rest[off+2:]))
		if slen < tsHeaderLen || slen > len(rest)-off {
			return nil, fmt.Errorf("traffic selector %d: %w", i,
				badLength("selector length", slen, len(rest)-off))
		}
		sel := rest[off : off+slen]
		switch s.Type {
		case TSIPv4AddrRange:
			if slen != tsIPv4Len {
				return nil, fmt.Errorf("traffic selector %d: %w", i, badLength("TS_IPV4_ADDR_RANGE", slen, tsIPv4Len))
			}
			s.StartPort = binary.BigEndian.Uint16(sel[4:])
			s.EndPort = binary.BigEndian.Uint16(sel[6:])
			s.StartAddr = netip.AddrFrom4([4]byte(sel[8:12]))
			s.EndAddr = netip.AddrFrom4([4]byte(sel[12:16]))
		case TSIPv6AddrRange:
			if slen != tsIPv6Len {
				return nil, fmt.Errorf("traffic selector %d: %w", i, badLength("TS_IPV6_ADDR_RANGE", slen, tsIPv6Len))
			}
			s.StartPort = binary.BigEndian.Uint16(sel[4:])
			s.EndPort = binary.BigEndian.Uint16(sel[6:])
			s.StartAddr = netip.AddrFrom16([16]byte(sel[8:24]))
			s.EndAddr = netip.AddrFrom16([16]byte(sel[24:40]))
		default:
			s.Data = opaque(sel[tsHeaderLen:])
		}
		ts.Selectors = append(ts.Selectors, s)
		off += slen
	}
	if off != len(rest) {
		return nil, fmt.Errorf("%d bytes after %d traffic selectors: %w", len(rest)-off, count, ErrLength)
	}
	return ts, nil
}
