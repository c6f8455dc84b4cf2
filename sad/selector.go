package sad

import "net/netip"

// PortRange is an inclusive range of transport ports. The zero value
// matches every port, so a selector that says nothing about ports is any.
type PortRange struct {
	Lo, Hi uint16
}

// AnyPort reports whether r places no restriction on the port.
func (r PortRange) AnyPort() bool { return r.Lo == 0 && (r.Hi == 0 || r.Hi == 0xffff) }

// Contains reports whether port p lies in r.
func (r PortRange) Contains(p uint16) bool {
	if r.AnyPort() {
		return true
	}
	return p >= r.Lo && p <= r.Hi
}

// Selector is an RFC 4301 §4.4.1 traffic selector: source and destination
// prefixes, an IP protocol and port ranges. A zero Prefix (!IsValid) or a
// zero Proto or a zero PortRange means "any" for that field. Ports apply
// only to protocols that carry them (TCP, UDP, SCTP, UDP-Lite); ICMP type
// and code are not matched.
type Selector struct {
	Src, Dst           netip.Prefix
	Proto              uint8
	SrcPorts, DstPorts PortRange
}

// FlowKey is what a packet offers to a selector: the fields are filled in
// by the packet parser without allocating. Ports are zero for protocols
// without ports.
type FlowKey struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

// Matches reports whether the flow lies inside the selector.
func (s *Selector) Matches(k *FlowKey) bool {
	if s.Src.IsValid() && !s.Src.Contains(k.Src) {
		return false
	}
	if s.Dst.IsValid() && !s.Dst.Contains(k.Dst) {
		return false
	}
	if s.Proto != 0 && s.Proto != k.Proto {
		return false
	}
	return s.SrcPorts.Contains(k.SrcPort) && s.DstPorts.Contains(k.DstPort)
}

// Reverse returns the selector seen from the other direction (source and
// destination swapped): the inbound SA of a pair checks decapsulated
// packets against the reverse of the outbound selector.
func (s Selector) Reverse() Selector {
	s.Src, s.Dst = s.Dst, s.Src
	s.SrcPorts, s.DstPorts = s.DstPorts, s.SrcPorts
	return s
}
