package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/xdpsec/xdpsec/internal/enum"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// InAction is what the inbound mirror says about WAN cleartext to a
// destination (C enum in_action).
type InAction uint32

const (
	// InDefault: no policy covers the destination; default_action decides.
	InDefault = InAction(xdpsecInActionIN_DEFAULT)
	// InBypass: a BYPASS policy; the packet goes to the kernel.
	InBypass = InAction(xdpsecInActionIN_BYPASS)
	// InProtect: a PROTECT policy; in clear the packet is dropped (RFC 4301 §5.2).
	InProtect = InAction(xdpsecInActionIN_PROTECT)
	// InDiscard: a DISCARD policy; dropped.
	InDiscard = InAction(xdpsecInActionIN_DISCARD)
	// InScan: the answer depends on the source, protocol or ports; the
	// program scans the ordered rules.
	InScan = InAction(xdpsecInActionIN_SCAN)
	// InHost: one of the gateway's own addresses; the WAN classification
	// (IKE, ESP, management) applies, not the SPD.
	InHost = InAction(xdpsecInActionIN_HOST)
	// inUnsure is a scan result only: the rule that could match needs ports
	// or a protocol the packet does not show.
	inUnsure = InAction(xdpsecInActionIN_UNSURE)
)

var inActionNames = [...]string{
	InDefault: "default",
	InBypass:  "bypass",
	InProtect: "protect",
	InDiscard: "discard",
	InScan:    "scan",
	InHost:    "host",
	inUnsure:  "unsure",
}

func (a InAction) String() string { return enum.Name(a, inActionNames[:], "in_action") }

// MaxInboundRules is how many inbound rules the program scans (IN_RULES_MAX).
const MaxInboundRules = 64

// InboundEntry is one destination prefix of the inbound mirror.
type InboundEntry struct {
	Prefix netip.Prefix
	Action InAction
}

type inRule = xdpsecInRule

// InboundSPD is the inbound side of the SPD as the WAN program applies it:
// a longest-prefix map on the destination and, for destinations where that
// is not enough, the ordered rules.
type InboundSPD struct {
	Entries []InboundEntry
	rules   []inRule
	// Truncated: the SPD has more than MaxInboundRules policies; a scanned
	// packet that matches none of the first ones is dropped, since a later
	// policy might have let it through or not.
	Truncated bool
	// DefaultPass: packets no policy covers go to the kernel (counted)
	// instead of being dropped.
	DefaultPass bool
}

// Rules is the number of rules the program scans.
func (t *InboundSPD) Rules() int { return len(t.rules) }

// CompileInbound turns in, an SPD of inbound policies (selectors as an
// inbound packet sees them: source on the far side), into the program's
// tables. host are the gateway's own addresses (and broadcast addresses):
// traffic to them keeps the WAN classification. defaultPass is the action
// for packets no policy covers.
func CompileInbound(in *spd.SPD, host []netip.Addr, defaultPass bool) InboundSPD {
	t := InboundSPD{DefaultPass: defaultPass}
	for _, e := range in.Outcomes() {
		a := InScan
		if one, ok := e.Set.Single(); ok {
			a = inAction(one)
		}
		t.Entries = append(t.Entries, InboundEntry{Prefix: e.Prefix, Action: a})
	}
	for _, h := range host {
		h = h.Unmap()
		t.Entries = append(t.Entries, InboundEntry{Prefix: netip.PrefixFrom(h, h.BitLen()), Action: InHost})
	}
	ps := in.Policies()
	if len(ps) > MaxInboundRules {
		ps, t.Truncated = ps[:MaxInboundRules], true
	}
	for _, p := range ps {
		t.rules = append(t.rules, compileRule(&p.Selector, inAction(p.Action)))
	}
	return t
}

// inAction maps an SPD action (0: no policy) to the inbound verdict.
func inAction(a spd.Action) InAction {
	switch a {
	case spd.Protect:
		return InProtect
	case spd.Bypass:
		return InBypass
	case spd.Discard:
		return InDiscard
	}
	return InDefault
}

// prefixWords is p as the program compares it: address and mask as four
// 32-bit words read from the wire bytes in the program's (little-endian)
// order, IPv4 in word 0. An invalid (any) prefix is all zero.
func prefixWords(p netip.Prefix) (addr, mask [4]uint32, fam uint8) {
	if !p.IsValid() {
		return
	}
	p = p.Masked()
	a := p.Addr().AsSlice()
	var m [16]byte
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	for i := 0; i < len(a)/4; i++ {
		addr[i] = binary.LittleEndian.Uint32(a[4*i:])
		mask[i] = binary.LittleEndian.Uint32(m[4*i:])
	}
	fam = 6
	if p.Addr().Is4() {
		fam = 4
	}
	return
}

func compileRule(s *sad.Selector, a InAction) inRule {
	r := inRule{Proto: s.Proto, Action: uint8(a)}
	var sf, df uint8
	r.Src, r.Smask, sf = prefixWords(s.Src)
	r.Dst, r.Dmask, df = prefixWords(s.Dst)
	r.Family = max(sf, df) // the same when both are set (spd validates)
	r.SpLo, r.SpHi, r.DpLo, r.DpHi = 0, 0xffff, 0, 0xffff
	if !s.SrcPorts.AnyPort() || !s.DstPorts.AnyPort() {
		r.Ports = 1
		if !s.SrcPorts.AnyPort() {
			r.SpLo, r.SpHi = s.SrcPorts.Lo, s.SrcPorts.Hi
		}
		if !s.DstPorts.AnyPort() {
			r.DpLo, r.DpHi = s.DstPorts.Lo, s.DstPorts.Hi
		}
	}
	return r
}

// SyncInbound makes the program decide WAN cleartext by t. While the
// tables change, the program reads no rules and treats every scanned
// packet as undecidable (dropped), so an update never lets through what
// either the old or the new SPD would drop.
func (o *Objects) SyncInbound(t InboundSPD) error {
	if len(t.rules) > MaxInboundRules {
		return fmt.Errorf("bpf: sync inbound: %d rules exceed %d", len(t.rules), MaxInboundRules)
	}
	v4 := make(map[lpmKeyV4]InAction)
	v6 := make(map[lpmKeyV6]InAction)
	for i, e := range t.Entries {
		if !e.Prefix.IsValid() || e.Prefix.Addr().Is4In6() || e.Action > InHost {
			return fmt.Errorf("bpf: sync inbound: entry %d: %s %s", i, e.Prefix, e.Action)
		}
		p := e.Prefix.Masked()
		if p.Addr().Is4() {
			v4[lpmKeyV4{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As4()}] = e.Action
		} else {
			v6[lpmKeyV6{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}] = e.Action
		}
	}
	c, err := o.config()
	if err != nil {
		return err
	}
	c.InEnabled, c.InNrules, c.InTruncated = 1, 0, 1
	if err := o.setConfig(c); err != nil {
		return err
	}
	for i := range t.rules {
		if err := o.objs.InRules.Put(uint32(i), t.rules[i]); err != nil {
			return fmt.Errorf("bpf: sync inbound rule %d: %w", i, err)
		}
	}
	if err := syncTrie(o.objs.InV4, v4); err != nil {
		return fmt.Errorf("bpf: sync inbound v4: %w", err)
	}
	if err := syncTrie(o.objs.InV6, v6); err != nil {
		return fmt.Errorf("bpf: sync inbound v6: %w", err)
	}
	c.InNrules = uint32(len(t.rules))
	c.InTruncated = b2u8(t.Truncated)
	c.InDefaultPass = b2u8(t.DefaultPass)
	return o.setConfig(c)
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
