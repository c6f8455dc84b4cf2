package spd

import (
	"cmp"
	"net/netip"
	"slices"
	"sort"

	"github.com/xdpsec/xdpsec/internal/enum"
)

// MirrorAction is what the XDP program does with a packet from the
// protected side, chosen by a longest-prefix match on its destination
// alone. The values are shared with the BPF program and must not change.
type MirrorAction uint8

const (
	MirrorBypass  MirrorAction = 0 // every packet to here is bypassed: pass to the kernel
	MirrorProtect MirrorAction = 1 // every packet to here is protected: to user space
	MirrorDiscard MirrorAction = 2 // every packet to here is discarded: drop in XDP
	MirrorDivert  MirrorAction = 3 // it depends on more than the destination: to user space
)

var mirrorActionNames = [...]string{
	MirrorBypass:  "bypass",
	MirrorProtect: "protect",
	MirrorDiscard: "discard",
	MirrorDivert:  "divert",
}

func (a MirrorAction) String() string { return enum.Name(a, mirrorActionNames[:], "mirror") }

// MirrorEntry is one prefix of the XDP program's LPM map.
type MirrorEntry struct {
	Prefix netip.Prefix
	Action MirrorAction
}

// Mirror projects the current SPD onto destination prefixes for the XDP
// program, with "no policy matched" counted as a bypass. See
// MirrorWithDefault.
func (d *SPD) Mirror() []MirrorEntry { return d.MirrorWithDefault(Bypass) }

// MirrorWithDefault projects the current SPD onto destination prefixes:
// for every destination address, the longest matching entry is
//
//   - MirrorProtect (or MirrorDiscard, MirrorBypass) only when every packet
//     to that destination, whatever its source, protocol and ports, gets
//     that action from Lookup — counting "no policy matched" as def;
//   - MirrorDivert otherwise, so that user space decides exactly.
//
// It errs towards Divert (a policy shadowed by earlier ones still counts)
// and is never wrong the other way: it never says Bypass where some packet
// would be protected or discarded. def is the caller's action for packets
// no policy matches, Bypass or Discard; any other value is treated as
// unknown, which makes every destination that can miss all policies
// Divert. The result holds 0.0.0.0/0 and ::/0, so every destination has an
// entry; a more specific prefix is listed only where its action differs
// from the enclosing entry's. Prefixes are masked and sorted, IPv4 first.
//
// The mirror reasons about real packets, whose source and destination are
// of the same family; a policy whose source is of the other family (its
// destination being any) matches none of those and is ignored.
func (d *SPD) MirrorWithDefault(def Action) []MirrorEntry {
	ix := d.cur.Load()
	if ix == nil {
		ix = emptyIndex
	}
	defBits := actionBit(def)
	if def != Bypass && def != Discard {
		defBits = 0xff
	}
	var out []MirrorEntry
	emit := func(p netip.Prefix, a MirrorAction) { out = append(out, MirrorEntry{Prefix: p, Action: a}) }
	project(&ix.v4, defBits, mirrorAction, emit)
	project(&ix.v6, defBits, mirrorAction, emit)
	slices.SortFunc(out, func(a, b MirrorEntry) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return out
}

// OutcomeSet is the set of results packets to a destination region can get
// from Lookup: a bit per Action, and OutcomeNone for "no policy matched".
type OutcomeSet uint8

// OutcomeNone stands for "no policy matched" in an OutcomeSet.
const OutcomeNone OutcomeSet = 1

// Has reports whether a (an Action) is among the outcomes.
func (s OutcomeSet) Has(a Action) bool { return s&OutcomeSet(actionBit(a)) != 0 }

// Single returns the only outcome of s: an Action, or 0 for OutcomeNone;
// ok is false when s holds more than one (or none).
func (s OutcomeSet) Single() (a Action, ok bool) {
	switch s {
	case OutcomeNone:
		return 0, true
	case OutcomeSet(actionBit(Protect)):
		return Protect, true
	case OutcomeSet(actionBit(Bypass)):
		return Bypass, true
	case OutcomeSet(actionBit(Discard)):
		return Discard, true
	}
	return 0, false
}

// OutcomeEntry is one destination prefix and the outcomes of the packets
// addressed to it (its own part of the space, less more specific entries).
type OutcomeEntry struct {
	Prefix netip.Prefix
	Set    OutcomeSet
}

// Outcomes projects the current SPD onto destination prefixes as
// MirrorWithDefault does, but keeps the set of possible outcomes (with
// "no policy" as its own outcome) instead of folding it into one action:
// a caller that must tell a PROTECT from a DISCARD from a miss (the
// inbound side, which counts them apart) decides from the set. The result
// holds 0.0.0.0/0 and ::/0; a prefix is listed only where its set differs
// from the enclosing entry's.
func (d *SPD) Outcomes() []OutcomeEntry {
	ix := d.cur.Load()
	if ix == nil {
		ix = emptyIndex
	}
	var out []OutcomeEntry
	emit := func(p netip.Prefix, s OutcomeSet) { out = append(out, OutcomeEntry{Prefix: p, Set: s}) }
	same := func(b uint8) OutcomeSet { return OutcomeSet(b) }
	project(&ix.v4, uint8(OutcomeNone), same, emit)
	project(&ix.v6, uint8(OutcomeNone), same, emit)
	slices.SortFunc(out, func(a, b OutcomeEntry) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return out
}

// project maps each destination-prefix node's action bits (see
// famIndex.bits) through f and emits the nodes whose value differs from
// their parent's, parents first.
func project[V comparable](fi *famIndex, defBits uint8, f func(uint8) V, emit func(netip.Prefix, V)) {
	bits, order := fi.bits(defBits)
	eff := make([]V, len(bits))
	for _, v := range order {
		eff[v] = f(bits[v])
		if p := fi.meta[v].parent; p < 0 || eff[v] != eff[p] {
			emit(fi.meta[v].prefix, eff[v])
		}
	}
}

func actionBit(a Action) uint8 { return 1 << a }

func mirrorAction(bits uint8) MirrorAction {
	switch bits {
	case actionBit(Protect):
		return MirrorProtect
	case actionBit(Bypass):
		return MirrorBypass
	case actionBit(Discard):
		return MirrorDiscard
	}
	return MirrorDivert
}

// catchesAll reports whether r matches every real packet under its
// destination prefix: a source of any or /0 of the family, any protocol,
// any ports. Wider than rule.exhaustive, which must also hold for flows
// whose source is of the other family.
func (fi *famIndex) catchesAll(r *rule) bool {
	return (r.srcFam == famAny || r.srcFam == fi.fam && r.maskHi == 0 && r.maskLo == 0) && r.proto == 0 &&
		r.spLo == 0 && r.spHi == 0xffff && r.dpLo == 0 && r.dpHi == 0xffff
}

// bits computes, for each destination-prefix node, the set of actions a
// packet addressed to the node's own part of the space (the prefix less
// its more specific nodes) can get: the candidates are the rules of the
// node and of every enclosing node; those ordered after the first one that
// catches all packets can never win, and if there is no such rule a
// packet may match nothing and get def.
// It returns the bits per node and the nodes in an order that puts every
// parent before its children.
func (fi *famIndex) bits(defBits uint8) ([]uint8, []int32) {
	n := len(fi.meta)
	// cum[i] is the union of the actions of the relevant rules of a node
	// from its first rule to rule i; catch[n] the first rule of node n that
	// catches everything, or -1.
	cum := make([]uint8, len(fi.rules))
	catch := make([]int32, n)
	for i := range n {
		sp := fi.meta[i]
		catch[i] = -1
		var acc uint8
		for j := sp.first; j < sp.end; j++ {
			r := &fi.rules[j]
			if r.srcFam == famAny || r.srcFam == fi.fam {
				acc |= actionBit(r.p.Action)
			}
			cum[j] = acc
			if catch[i] < 0 && fi.catchesAll(r) {
				catch[i] = j
			}
		}
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(fi.meta[a].prefix.Bits(), fi.meta[b].prefix.Bits()), cmp.Compare(a, b))
	})
	eff := make([]uint8, n)
	for _, v := range order {
		cut, cutRule := int32(noOrder), int32(-1)
		for a := v; a >= 0; a = fi.meta[a].parent {
			if c := catch[a]; c >= 0 && fi.rules[c].order < cut {
				cut, cutRule = fi.rules[c].order, c
			}
		}
		var acts uint8
		for a := v; a >= 0; a = fi.meta[a].parent {
			sp := fi.meta[a]
			rs := fi.rules[sp.first:sp.end]
			if k := sort.Search(len(rs), func(i int) bool { return rs[i].order >= cut }); k > 0 {
				acts |= cum[int(sp.first)+k-1]
			}
		}
		if cutRule >= 0 {
			acts |= actionBit(fi.rules[cutRule].p.Action)
		} else {
			acts |= defBits
		}
		eff[v] = acts
	}
	return eff, order
}
