package replay

import (
	"math"
	"math/big"
)

// model is the brute-force reference the Window is compared against: the set
// of every accepted number plus the top, written for obviousness rather than
// speed. Its ESN inference is stated differently from the Window's (the RFC's
// Th/Tl case split there; "the number congruent to seqLow in the 2^32-wide
// span starting at the window's bottom edge" here, in big integers), so the
// two are not the same code twice.
type model struct {
	size uint64
	esn  bool
	top  uint64
	seen map[uint64]bool
}

func newModel(size uint64, esn bool) *model {
	return &model{size: size, esn: esn, seen: make(map[uint64]bool)}
}

var (
	two32 = new(big.Int).Lsh(big.NewInt(1), 32)
	max64 = new(big.Int).SetUint64(math.MaxUint64)
)

func (m *model) infer(seqLow uint32) (uint64, bool) {
	if !m.esn {
		return uint64(seqLow), true
	}
	// bottom = top - W + 1, possibly negative.
	bottom := new(big.Int).SetUint64(m.top)
	bottom.Sub(bottom, new(big.Int).SetUint64(m.size-1))
	// n = bottom + ((seqLow - bottom) mod 2^32)
	d := new(big.Int).Sub(big.NewInt(int64(seqLow)), bottom)
	d.Mod(d, two32) // Euclidean: 0 <= d < 2^32
	n := d.Add(d, bottom)
	if n.Sign() < 0 || n.Cmp(max64) > 0 {
		return 0, false
	}
	return n.Uint64(), true
}

func (m *model) inWindow(seq uint64) bool {
	// top-W < seq <= top, computed without wrap-around.
	return seq <= m.top && m.top-seq < m.size
}

func (m *model) check(seqLow uint32) (uint64, bool) {
	seq, ok := m.infer(seqLow)
	if !ok || seq == 0 {
		return 0, false
	}
	if seq > m.top {
		return seq, true
	}
	return seq, m.inWindow(seq) && !m.seen[seq]
}

func (m *model) commit(seq uint64) bool {
	switch {
	case seq == 0, !m.esn && seq > math.MaxUint32:
		return false
	case seq > m.top:
		if seq-m.top >= 1<<32 {
			return false
		}
		m.top = seq
	case !m.inWindow(seq) || m.seen[seq]:
		return false
	}
	m.seen[seq] = true
	return true
}
