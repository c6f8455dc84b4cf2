package ike

import (
	"math/big"
	"net/netip"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// wireTS turns a configured selector into the address-range form of the
// TSi/TSr payloads (RFC 7296 §3.13.1).
func (ts TrafficSelector) wire() message.TrafficSelector {
	w := message.PrefixSelector(ts.Prefix)
	w.IPProtocol = ts.Proto
	if !ts.Ports.AnyPort() {
		w.StartPort, w.EndPort = ts.Ports.Lo, ts.Ports.Hi
	}
	return w
}

func wireTSList(l []TrafficSelector, responder bool) *message.TrafficSelectors {
	out := &message.TrafficSelectors{Responder: responder}
	for _, ts := range l {
		out.Selectors = append(out.Selectors, ts.wire())
	}
	return out
}

// intersectTS narrows one selector by another: the overlap of their address
// ranges, ports and protocols (RFC 7296 §2.9). ok is false when empty.
func intersectTS(a, b message.TrafficSelector) (message.TrafficSelector, bool) {
	if a.Type != b.Type || (a.Type != message.TSIPv4AddrRange && a.Type != message.TSIPv6AddrRange) {
		return a, false
	}
	r := a
	switch {
	case a.IPProtocol == 0:
		r.IPProtocol = b.IPProtocol
	case b.IPProtocol != 0 && a.IPProtocol != b.IPProtocol:
		return a, false
	}
	r.StartPort, r.EndPort = max(a.StartPort, b.StartPort), min(a.EndPort, b.EndPort)
	if r.StartPort > r.EndPort {
		return a, false
	}
	if b.StartAddr.Compare(r.StartAddr) > 0 {
		r.StartAddr = b.StartAddr
	}
	if b.EndAddr.Compare(r.EndAddr) < 0 {
		r.EndAddr = b.EndAddr
	}
	if r.StartAddr.Compare(r.EndAddr) > 0 {
		return a, false
	}
	return r, true
}

// narrow returns every non-empty intersection of theirs with ours, in the
// order of theirs.
func narrow(theirs []message.TrafficSelector, ours []TrafficSelector) []message.TrafficSelector {
	var out []message.TrafficSelector
	for _, t := range theirs {
		for _, o := range ours {
			if r, ok := intersectTS(t, o.wire()); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

// maxPrefixesPerRange bounds the prefixes one address range turns into: an
// IPv6 range can need up to 254, and a peer could send 64 of them.
const maxPrefixesPerRange = 256

// rangePrefixes covers the address range [start, end] with the fewest CIDR
// prefixes, the form the SPD and the SA selectors use.
func rangePrefixes(start, end netip.Addr) []netip.Prefix {
	bits := start.BitLen()
	s := new(big.Int).SetBytes(start.AsSlice())
	e := new(big.Int).SetBytes(end.AsSlice())
	one := big.NewInt(1)
	var out []netip.Prefix
	for s.Cmp(e) <= 0 && len(out) < maxPrefixesPerRange {
		// The largest block aligned at s that stays within e.
		size := 0
		for size < bits {
			blk := new(big.Int).Lsh(one, uint(size+1))
			if new(big.Int).Mod(s, blk).Sign() != 0 {
				break
			}
			last := new(big.Int).Add(s, new(big.Int).Sub(blk, one))
			if last.Cmp(e) > 0 {
				break
			}
			size++
		}
		buf := make([]byte, bits/8)
		s.FillBytes(buf)
		a, _ := netip.AddrFromSlice(buf)
		out = append(out, netip.PrefixFrom(a, bits-size))
		s.Add(s, new(big.Int).Lsh(one, uint(size)))
	}
	return out
}

// maxSelectors bounds the selectors of one SA, whatever the peer sends.
const maxSelectors = 1024

// selectors builds the SA selectors from the negotiated selectors of both
// ends, seen in the outbound direction: source local, destination remote.
func selectors(local, remote []message.TrafficSelector) []sad.Selector {
	var out []sad.Selector
	for _, l := range local {
		for _, r := range remote {
			if l.Type != r.Type {
				continue
			}
			proto := l.IPProtocol
			if proto == 0 {
				proto = r.IPProtocol
			} else if r.IPProtocol != 0 && r.IPProtocol != proto {
				continue
			}
			sp := sad.PortRange{Lo: l.StartPort, Hi: l.EndPort}
			dp := sad.PortRange{Lo: r.StartPort, Hi: r.EndPort}
			for _, lp := range rangePrefixes(l.StartAddr, l.EndAddr) {
				for _, rp := range rangePrefixes(r.StartAddr, r.EndAddr) {
					if len(out) == maxSelectors {
						return out
					}
					out = append(out, sad.Selector{Src: lp, Dst: rp, Proto: proto, SrcPorts: sp, DstPorts: dp})
				}
			}
		}
	}
	return out
}

func reverseSelectors(s []sad.Selector) []sad.Selector {
	out := make([]sad.Selector, len(s))
	for i, x := range s {
		out[i] = x.Reverse()
	}
	return out
}

// narrowWire is narrow against selectors already negotiated (a rekey keeps
// the old SA's selectors, RFC 7296 §2.8).
func narrowWire(theirs, ours []message.TrafficSelector) []message.TrafficSelector {
	var out []message.TrafficSelector
	for _, t := range theirs {
		for _, o := range ours {
			if r, ok := intersectTS(t, o); ok {
				out = append(out, r)
			}
		}
	}
	return out
}
