package spd

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// Addresses in rules are 128-bit numbers in two words, IPv4 left-aligned
// in hi (keyWords), so one set of masks serves both families.

// Family tags. A rule's source family is famAny when the selector's source
// is any; a flow's is famOdd when its source is invalid or zoned, which no
// prefix contains (netip.Prefix.Contains semantics).
const (
	famAny uint8 = 0
	fam4   uint8 = 4
	fam6   uint8 = 6
	famOdd uint8 = 0xff
)

// rule is a policy compiled for the candidate scan: the destination is
// already known to be covered, so source, protocol and ports remain. The
// rules of one destination-prefix node sit together in list order, the
// last one flagged, and each carries the node's way on (next, restMin) so
// that a lookup never reads a separate node record. 64 bytes: one line.
type rule struct {
	srcHi, srcLo   uint64 // source prefix, masked
	maskHi, maskLo uint64 // source prefix mask
	p              *Policy
	order          int32 // position in the list; the lowest matching one wins
	next           int32 // first rule of the next enclosing node worth visiting
	restMin        int32 // lowest order reachable through next; noOrder if none
	spLo, spHi     uint16
	dpLo, dpHi     uint16
	proto          uint8
	srcFam         uint8
	last           bool // last rule of its node
}

// flow is a FlowKey in the form the rules compare against.
type flow struct {
	srcHi, srcLo uint64
	srcFam       uint8
	proto        uint8
	sport, dport uint16
}

func (r *rule) matches(f *flow) bool {
	if r.proto != 0 && r.proto != f.proto {
		return false
	}
	if f.sport < r.spLo || f.sport > r.spHi || f.dport < r.dpLo || f.dport > r.dpHi {
		return false
	}
	return r.srcFam == famAny ||
		r.srcFam == f.srcFam && f.srcHi&r.maskHi == r.srcHi && f.srcLo&r.maskLo == r.srcLo
}

// exhaustive reports whether the rule matches every flow that reaches it,
// whatever the flow's source, protocol and ports: nothing ordered after it
// at the same or a longer destination prefix can ever win.
func (r *rule) exhaustive() bool {
	return r.srcFam == famAny && r.proto == 0 && r.spLo == 0 && r.spHi == 0xffff &&
		r.dpLo == 0 && r.dpHi == 0xffff
}

func compileRule(p *Policy, order int) rule {
	s := &p.Selector
	r := rule{p: p, order: int32(order), proto: s.Proto, next: -1, restMin: noOrder}
	r.spLo, r.spHi = portBounds(s.SrcPorts)
	r.dpLo, r.dpHi = portBounds(s.DstPorts)
	if s.Src.IsValid() {
		r.srcFam = familyOf(s.Src)
		r.maskHi, r.maskLo = mask128(s.Src.Bits())
		r.srcHi, r.srcLo = keyWords(s.Src.Addr())
		r.srcHi &= r.maskHi
		r.srcLo &= r.maskLo
	}
	return r
}

// portBounds turns a PortRange into inclusive bounds with the same meaning
// as PortRange.Contains: any is 0..65535, an empty or OPAQUE range
// (Lo > Hi) keeps bounds that no port satisfies.
func portBounds(pr sad.PortRange) (lo, hi uint16) {
	if pr.AnyPort() {
		return 0, 0xffff
	}
	return pr.Lo, pr.Hi
}

func familyOf(p netip.Prefix) uint8 {
	if p.Addr().Is4() {
		return fam4
	}
	return fam6
}

func mask128(n int) (hi, lo uint64) {
	switch {
	case n <= 0:
		return 0, 0
	case n <= 64:
		return ^uint64(0) << (64 - n), 0
	default:
		return ^uint64(0), ^uint64(0) << (128 - n)
	}
}

// Hash tables: open addressing, linear probing, load ≤ 1/2; ref == 0
// marks an empty slot (rules[0] is never referenced). The slot is taken
// from a multiplicative hash's top bits, which depend on every key bit.
const hashK1, hashK2 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F

type slot4 struct {
	key uint32
	ref int32 // first rule of the best real prefix containing key
}

type level4 struct {
	mask  uint32
	shift uint8
	slots []slot4
}

// IPv6 levels up to /64 have keys with lo == 0: their slots leave lo out
// (16 bytes instead of 24), which keeps a table of 10,000 /64s at half the
// size.
type slot6 struct {
	hi, lo uint64
	ref    int32
}

type slot6n struct {
	hi  uint64
	ref int32
}

type level6 struct {
	maskHi, maskLo uint64
	shift          uint8
	narrow         []slot6n // prefix length ≤ 64
	wide           []slot6  // prefix length > 64
}

// Two fixed rules head every family's rule array: rules[0] is never
// referenced (ref 0 is an empty slot), rules[1] matches nothing and ends
// the search — the answer for a destination no policy covers.
const refNone = 1

// famIndex indexes the policies of one address family by destination: a
// longest-prefix match over the distinct destination prefixes, by binary
// search on prefix lengths (Waldvogel et al.): a hit at a length (a prefix
// or a marker) means the answer is at least that long, a miss that it is
// shorter, and every hit carries the best real prefix so far.
type famIndex struct {
	fam     uint8
	rootRef int32    // where a destination matching no level starts
	lv4     []level4 // IPv4: ascending prefix length
	lv6     []level6 // IPv6: ascending prefix length
	rules   []rule
	meta    []nodeMeta // for Mirror
}

type nodeMeta struct {
	prefix     netip.Prefix
	parent     int32
	first, end int32 // the node's own rules
}

// index is one published, immutable compilation of the policy list.
type index struct {
	v4, v6   famIndex
	odd      []rule // destination-any rules, for destinations outside both families
	policies []*Policy
}

func (fi *famIndex) lpm4(a uint32) int32 {
	ref := fi.rootRef
	l, h := 0, len(fi.lv4)
	for l < h {
		m := int(uint(l+h) >> 1)
		lv := &fi.lv4[m]
		k := a & lv.mask
		mask := uint64(len(lv.slots) - 1)
		i := uint64(k) * hashK1 >> lv.shift
		for {
			s := &lv.slots[i&mask]
			if s.ref == 0 {
				h = m
				break
			}
			if s.key == k {
				ref, l = s.ref, m+1
				break
			}
			i++
		}
	}
	return ref
}

func (fi *famIndex) lpm6(hi, lo uint64) int32 {
	ref := fi.rootRef
	l, h := 0, len(fi.lv6)
	for l < h {
		m := int(uint(l+h) >> 1)
		lv := &fi.lv6[m]
		if r := lv.find(hi&lv.maskHi, lo&lv.maskLo); r != 0 {
			ref, l = r, m+1
		} else {
			h = m
		}
	}
	return ref
}

func (lv *level6) find(kh, kl uint64) int32 {
	if lv.wide == nil {
		mask := uint64(len(lv.narrow) - 1)
		for i := kh * hashK1 >> lv.shift; ; i++ {
			s := &lv.narrow[i&mask]
			if s.ref == 0 || s.hi == kh {
				return s.ref
			}
		}
	}
	mask := uint64(len(lv.wide) - 1)
	for i := (kh*hashK1 + kl*hashK2) >> lv.shift; ; i++ {
		s := &lv.wide[i&mask]
		if s.ref == 0 || s.hi == kh && s.lo == kl {
			return s.ref
		}
	}
}

// scan checks the candidates from rule i on: the node's rules in order,
// then the enclosing nodes' through next, until nothing left can come
// before the best match found.
func (fi *famIndex) scan(i int32, f *flow) *Policy {
	best := int32(noOrder)
	var bp *Policy
	for {
		r := &fi.rules[i]
		if r.order < best { // a node's later rules come after r: past best, skip them
			if r.matches(f) {
				best, bp = r.order, r.p
			} else if !r.last {
				i++
				continue
			}
		}
		if r.restMin >= best {
			return bp
		}
		i = r.next
	}
}

func (ix *index) lookup(k *packet.FlowKey) *Policy {
	f := flow{proto: k.Proto, sport: k.SrcPort, dport: k.DstPort}
	switch {
	case k.Src.Is4():
		_, lo := words(&k.Src)
		f.srcFam, f.srcHi = fam4, uint64(uint32(lo))<<32
	case k.Src.Is6() && k.Src.Zone() == "":
		f.srcFam = fam6
		f.srcHi, f.srcLo = words(&k.Src)
	default:
		f.srcFam = famOdd
	}
	if k.Dst.Is4() {
		_, lo := words(&k.Dst)
		return ix.v4.scan(ix.v4.lpm4(uint32(lo)), &f)
	}
	if k.Dst.Is6() && k.Dst.Zone() == "" {
		return ix.v6.scan(ix.v6.lpm6(words(&k.Dst)), &f)
	}
	// An invalid or zoned destination is inside no prefix: only the
	// destination-any policies can match.
	for i := range ix.odd {
		if r := &ix.odd[i]; r.matches(&f) {
			return r.p
		}
	}
	return nil
}

// build compiles a validated list.
func build(ps []*Policy) *index {
	ix := &index{policies: ps}
	ix.v4 = buildFamily(fam4, ps)
	ix.v6 = buildFamily(fam6, ps)
	for i, p := range ps {
		if !p.Selector.Dst.IsValid() {
			ix.odd = append(ix.odd, compileRule(p, i))
		}
	}
	return ix
}

type pkey struct {
	hi, lo uint64
	bits   int
}

func (k pkey) truncate(n int) pkey {
	mh, ml := mask128(n)
	return pkey{k.hi & mh, k.lo & ml, n}
}

func rootPrefix(fam uint8) netip.Prefix {
	if fam == fam4 {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
}

func buildFamily(fam uint8, ps []*Policy) famIndex {
	// Group the rules by destination prefix; a destination of any (or /0)
	// goes to the root, node 0. Appending in list order keeps every group
	// sorted.
	byKey := map[pkey]int32{{}: 0}
	keys := []pkey{{}}
	own := [][]rule{nil}
	meta := []nodeMeta{{prefix: rootPrefix(fam), parent: -1}}
	for i, p := range ps {
		n := int32(0)
		if d := p.Selector.Dst; d.IsValid() {
			if familyOf(d) != fam {
				continue
			}
			d = d.Masked()
			hi, lo := keyWords(d.Addr())
			k := pkey{hi, lo, d.Bits()}
			var ok bool
			if n, ok = byKey[k]; !ok {
				n = int32(len(keys))
				byKey[k] = n
				keys = append(keys, k)
				own = append(own, nil)
				meta = append(meta, nodeMeta{prefix: d, parent: -1})
			}
		}
		own[n] = append(own[n], compileRule(p, i))
	}

	// Shorter prefixes first, so that a node's ancestors are done before it.
	order := make([]int32, len(keys))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(keys[a].bits, keys[b].bits), cmp.Compare(a, b))
	})
	var lens []int // distinct lengths > 0, ascending
	var lenIdx [129]int
	for _, n := range order[1:] {
		if b := keys[n].bits; len(lens) == 0 || lens[len(lens)-1] != b {
			lenIdx[b] = len(lens)
			lens = append(lens, b)
		}
	}
	// longest returns the longest node prefix of length ≤ lens[j] containing k.
	longest := func(k pkey, j int) int32 {
		for ; j >= 0; j-- {
			if n, ok := byKey[k.truncate(lens[j])]; ok {
				return n
			}
		}
		return 0
	}

	// cut is the order of the first exhaustive rule at the node or an
	// enclosing one: every packet under the node matches it, so rules
	// ordered after it there are dead and are dropped, and enclosing nodes
	// holding only such rules are skipped (next). restMin lets a lookup
	// stop as soon as nothing further out can come before its match.
	next := make([]int32, len(keys))
	restMin := make([]int32, len(keys))
	cut := make([]int32, len(keys))
	minOrd := make([]int32, len(keys))
	for _, n := range order {
		c := int32(noOrder)
		if n != 0 {
			meta[n].parent = longest(keys[n], lenIdx[keys[n].bits]-1)
			c = cut[meta[n].parent]
		}
		rs := own[n]
		for j := range rs {
			if rs[j].order > c {
				rs = rs[:j]
				break
			}
			if rs[j].exhaustive() {
				c = rs[j].order
				rs = rs[:j+1]
				break
			}
		}
		own[n], cut[n], minOrd[n] = rs, c, noOrder
		if len(rs) > 0 {
			minOrd[n] = rs[0].order
		}
		next[n], restMin[n] = -1, noOrder
		for a := meta[n].parent; a >= 0; a = meta[a].parent {
			if minOrd[a] != noOrder && minOrd[a] <= c {
				next[n], restMin[n] = a, min(minOrd[a], restMin[a])
				break
			}
		}
	}

	// Lay the rule groups out; a node without rules of its own starts
	// where its next does.
	total := 2
	for _, rs := range own {
		total += len(rs)
	}
	rules := make([]rule, 2, total)
	rules[refNone] = rule{order: noOrder, next: -1, restMin: noOrder, spLo: 1, last: true}
	for n, rs := range own {
		meta[n].first = int32(len(rules))
		rules = append(rules, rs...)
		meta[n].end = int32(len(rules))
	}
	ref := make([]int32, len(keys))
	for _, n := range order {
		switch {
		case len(own[n]) > 0:
			ref[n] = meta[n].first
		case next[n] >= 0:
			ref[n] = ref[next[n]]
		default:
			ref[n] = refNone
		}
		for i := meta[n].first; i < meta[n].end; i++ {
			r := &rules[i]
			r.restMin, r.last = restMin[n], i == meta[n].end-1
			if next[n] >= 0 {
				r.next = ref[next[n]]
			}
		}
	}

	// Place every prefix at its level, and a marker at each level where the
	// binary search must turn longer to reach it. Shorter prefixes come
	// first, so a real prefix is always in place before a marker could
	// claim its key.
	entries := make([]map[[2]uint64]int32, len(lens))
	for j := range entries {
		entries[j] = make(map[[2]uint64]int32)
	}
	for _, n := range order[1:] {
		k, j := keys[n], lenIdx[keys[n].bits]
		l, h := 0, len(lens)
		for l < h {
			m := int(uint(l+h) >> 1)
			if m == j {
				entries[m][[2]uint64{k.hi, k.lo}] = ref[n]
				break
			}
			if j < m {
				h = m
				continue
			}
			mk := k.truncate(lens[m])
			if _, ok := entries[m][[2]uint64{mk.hi, mk.lo}]; !ok {
				entries[m][[2]uint64{mk.hi, mk.lo}] = ref[longest(mk, m)]
			}
			l = m + 1
		}
	}
	fi := famIndex{fam: fam, rootRef: ref[0], rules: rules, meta: meta}
	for j, es := range entries {
		// Insert in a fixed order so that a given list always builds the same tables.
		ks := make([][2]uint64, 0, len(es))
		for k := range es {
			ks = append(ks, k)
		}
		slices.SortFunc(ks, func(a, b [2]uint64) int {
			return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
		})
		size := 2
		for size < 2*len(es) {
			size <<= 1
		}
		shift := uint8(64 - bits.TrailingZeros(uint(size)))
		mask := uint64(size - 1)
		mh, ml := mask128(lens[j])
		if fam == fam4 {
			lv := level4{mask: uint32(mh >> 32), shift: shift, slots: make([]slot4, size)}
			for _, k := range ks {
				key := uint32(k[0] >> 32)
				i := uint64(key) * hashK1 >> shift
				for lv.slots[i&mask].ref != 0 {
					i++
				}
				lv.slots[i&mask] = slot4{key: key, ref: es[k]}
			}
			fi.lv4 = append(fi.lv4, lv)
			continue
		}
		lv := level6{maskHi: mh, maskLo: ml, shift: shift}
		if lens[j] <= 64 {
			lv.narrow = make([]slot6n, size)
			for _, k := range ks {
				i := k[0] * hashK1 >> shift
				for lv.narrow[i&mask].ref != 0 {
					i++
				}
				lv.narrow[i&mask] = slot6n{hi: k[0], ref: es[k]}
			}
		} else {
			lv.wide = make([]slot6, size)
			for _, k := range ks {
				i := (k[0]*hashK1 + k[1]*hashK2) >> shift
				for lv.wide[i&mask].ref != 0 {
					i++
				}
				lv.wide[i&mask] = slot6{hi: k[0], lo: k[1], ref: es[k]}
			}
		}
		fi.lv6 = append(fi.lv6, lv)
	}
	return fi
}
