package sad

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

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

// Matches reports whether the flow lies inside the selector.
func (s *Selector) Matches(k *packet.FlowKey) bool {
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

// compiledSel is a Selector reduced to integer compares, built once by New
// so the per-packet check on the inbound path touches no netip values.
// Addresses are 128-bit big-endian numbers split in two halves; an IPv4
// address sits in lo's low 32 bits with hi zero.
type compiledSel struct {
	fam                  uint8 // 0: any family, 4 or 6; never: a selector that can match nothing
	proto                uint8
	srcHi, srcLo         uint64
	srcMaskHi, srcMaskLo uint64
	dstHi, dstLo         uint64
	dstMaskHi, dstMaskLo uint64
	sp, dp               PortRange
}

const famNever = 0xff

func prefixBits(p netip.Prefix) (hi, lo, mhi, mlo uint64, fam uint8) {
	if !p.IsValid() {
		return 0, 0, 0, 0, 0
	}
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		lo = uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
		if bits > 0 {
			mlo = uint64(^uint32(0) << (32 - bits))
		}
		return 0, lo, 0, mlo, 4
	}
	a := p.Addr().As16()
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(a[i])
		lo = lo<<8 | uint64(a[8+i])
	}
	switch {
	case bits == 0:
	case bits <= 64:
		mhi = ^uint64(0) << (64 - bits)
	default:
		mhi = ^uint64(0)
		mlo = ^uint64(0) << (128 - bits)
	}
	return hi, lo, mhi, mlo, 6
}

func compileSelector(s *Selector) compiledSel {
	var c compiledSel
	var fs, fd uint8
	c.srcHi, c.srcLo, c.srcMaskHi, c.srcMaskLo, fs = prefixBits(s.Src)
	c.dstHi, c.dstLo, c.dstMaskHi, c.dstMaskLo, fd = prefixBits(s.Dst)
	switch {
	case fs != 0 && fd != 0 && fs != fd:
		c.fam = famNever // an IPv4 source with an IPv6 destination
	case fs != 0:
		c.fam = fs
	default:
		c.fam = fd
	}
	c.proto = s.Proto
	c.sp, c.dp = s.SrcPorts, s.DstPorts
	return c
}

// MatchInner reports whether a decapsulated packet lies inside one of the
// SA's selectors (RFC 4301 §5.2 step 4); no selectors means any. It gives
// the same answer as Selector.Matches on the packet's packet.FlowKey, from the
// selectors New compiled (an SA built otherwise with selectors matches
// nothing: fail closed).
func (sa *SA) MatchInner(f *packet.InnerFlow) bool {
	if len(sa.Selectors) == 0 {
		return true
	}
	fam := uint8(4)
	if f.V6 {
		fam = 6
	}
	for i := range sa.sel {
		c := &sa.sel[i]
		if c.fam != 0 && c.fam != fam {
			continue
		}
		if (f.SrcHi&c.srcMaskHi) != c.srcHi || (f.SrcLo&c.srcMaskLo) != c.srcLo ||
			(f.DstHi&c.dstMaskHi) != c.dstHi || (f.DstLo&c.dstMaskLo) != c.dstLo {
			continue
		}
		if c.proto != 0 && c.proto != f.Proto {
			continue
		}
		if c.sp.Contains(f.SrcPort) && c.dp.Contains(f.DstPort) {
			return true
		}
	}
	return false
}
