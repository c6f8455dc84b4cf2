package replay

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
)

// Window sizes accepted by New. The effective size is the requested size
// rounded up to a multiple of SizeMultiple.
const (
	MinSize      = 32
	MaxSize      = 1 << 20
	SizeMultiple = 64
)

// Geometry of the ring.
//
// Each ring slot is one 64-bit word: the low slotBits bits are a bitmap of
// slotBits consecutive sequence numbers (a "block": block b holds numbers
// b*32 .. b*32+31), the high 32 bits are a tag naming which block the bitmap
// belongs to. Block b lives in slot b mod R (R, the slot count, is a power of
// two so this is a mask) and its tag is the low 32 bits of its lap, b / R.
// Because the tag and the bits share a word, one compare-and-swap both checks
// "this slot still describes my block" and sets my bit; that is what lets
// Commit run without a lock (see the argument on Commit). RFC 6479 uses whole
// 64-bit words of bits and clears them when the window moves; clearing a word
// while another goroutine sets a bit in it is exactly the race the tag
// removes, at the price of half the bits per word.
//
// R is at least W/32 + 1, one slot more than the W/32 blocks the window's
// numbers fill: a window not aligned on a block straddles W/32 + 1 of them,
// and with R*32 >= W+32 a slot is recycled only once the block it held lies
// wholly below the window, so no number still inside the window loses its
// bit. It is the same reason RFC 6479 keeps one spare word.
const (
	slotBits  = 32
	slotShift = 5 // log2(slotBits)
	bitMask   = slotBits - 1
	tagShift  = 32
	tagMask   = math.MaxUint32 << tagShift

	// maxJump bounds how far one Commit may move the window forward. Check
	// never produces a number this far ahead of the top it saw (with ESN the
	// inferred number lies below Top()-W+1+2^32; without ESN all numbers are
	// below 2^32), and the top only grows between Check and Commit, so the
	// bound refuses nothing Check let through. It keeps every lap distance
	// between a slot's old and new block far below 2^32, so 32-bit tags never
	// alias.
	maxJump = 1 << 32

	// padBytes keeps the hot words off neighbouring objects' cache lines.
	// 128 rather than 64 because x86 prefetches lines in adjacent pairs.
	padBytes = 128
	padWords = padBytes / 8
)

// ErrSize is returned (wrapped) by New for a window size out of range.
var ErrSize = errors.New("replay window size out of range")

// Window is the receive-side anti-replay state of one SA. It must be made
// with New: the zero value has no ring and refuses every packet.
//
// Its methods are safe for concurrent use. Correctness rule: no sequence
// number is ever accepted twice by Commit, and a number that is fresh and
// inside the window is not refused.
type Window struct {
	_ [padBytes]byte

	// topBlk is the block holding the highest number admitted to the window.
	// The top itself is not stored: it is the highest bit set in topBlk's
	// slot, so that a Commit inside the top block, the common case, moves the
	// window with the same CAS that marks the number. topBlk is raised, by
	// CAS, only when a number opens a new block: once in 32 packets in order.
	topBlk atomic.Uint64

	// Read-only after New. They share topBlk's cache line on purpose: every
	// call reads all of them together with topBlk.
	ring     []atomic.Uint64
	size     uint64 // effective window size W
	mask     uint64 // len(ring) - 1
	lapShift uint   // log2(len(ring))
	esn      bool

	_ [padBytes]byte
}

// New returns a window that accepts packets up to size-1 sequence numbers
// behind the highest one received. size must lie in [MinSize, MaxSize]; it is
// rounded up to a multiple of SizeMultiple, and Size reports the result (a
// window of 32 is effectively 64). esn selects 64-bit extended sequence
// numbers (RFC 4304), of which only the low 32 bits travel in the packet.
//
// Memory: the ring has the next power of two above Size()/32 slots of 8
// bytes, so a window of 1024 takes 512 bytes and one of 2^20 takes 512 KiB.
func New(size int, esn bool) (*Window, error) {
	if size < MinSize || size > MaxSize {
		return nil, fmt.Errorf("new replay window: %d not in [%d, %d]: %w", size, MinSize, MaxSize, ErrSize)
	}
	w := uint64(size+SizeMultiple-1) / SizeMultiple * SizeMultiple
	slots := uint64(1) << bits.Len64(w/slotBits) // > w/32, so at least w/32 + 1
	buf := make([]atomic.Uint64, slots+2*padWords)
	// All slots start as lap 0 with no bits: an exact picture of blocks
	// 0..R-1 before any packet, so no set-up pass is needed.
	return &Window{
		ring:     buf[padWords : padWords+slots : padWords+slots],
		size:     w,
		mask:     slots - 1,
		lapShift: uint(bits.TrailingZeros64(slots)),
		esn:      esn,
	}, nil
}

// Size returns the effective window size: how many sequence numbers, ending
// at Top, the window remembers.
func (w *Window) Size() int { return int(w.size) }

// ESN reports whether the window uses extended sequence numbers.
func (w *Window) ESN() bool { return w.esn }

// Top returns the highest sequence number committed so far (0 before the
// first). While a Commit that opens a new block is in flight it may already
// show the start of that block.
func (w *Window) Top() uint64 {
	if w.size == 0 {
		return 0
	}
	t := w.topBlk.Load()
	return w.topIn(t, w.ring[t&w.mask].Load())
}

// tagOf returns the tag bits naming block blk.
func (w *Window) tagOf(blk uint64) uint64 {
	return uint64(uint32(blk>>w.lapShift)) << tagShift
}

// topIn derives the window's top from the top block t and the value v of
// its slot: the highest number marked there, or the block's first number
// when the Commit that opened it has not marked yet.
func (w *Window) topIn(t, v uint64) uint64 {
	if v&tagMask != w.tagOf(t) || uint32(v) == 0 {
		return t << slotShift
	}
	return t<<slotShift | uint64(bits.Len32(uint32(v))-1)
}

// Check is the pre-check done before decryption. It turns the 32 low-order
// bits from the ESP header into the full sequence number — with ESN, by
// inferring the high-order 32 bits from the window as in RFC 4303 Appendix
// A2.2 — and reports whether that number may be fresh: not zero, not below
// the window, not already committed. Without ESN the number is seqLow itself.
//
// ok=true is not a promise: another goroutine may commit the number before
// this one does, and Commit decides. Check never modifies the window.
func (w *Window) Check(seqLow uint32) (seq uint64, ok bool) {
	if w.size == 0 {
		return 0, false
	}
	t := w.topBlk.Load()
	vt := w.ring[t&w.mask].Load()
	top := w.topIn(t, vt)
	seq = uint64(seqLow)
	if w.esn {
		if seq, ok = inferESN(top, seqLow, w.size); !ok {
			return 0, false
		}
	}
	if seq == 0 {
		return 0, false
	}
	if seq > top {
		return seq, true
	}
	if top-seq >= w.size {
		return seq, false // at or below top-W: too old
	}
	blk := seq >> slotShift
	v := vt
	if blk != t {
		v = w.ring[blk&w.mask].Load()
	}
	// A slot naming another block holds no bits of ours: either stale (so
	// seq is unseen) or newer (so seq just left the window; Commit will say).
	if v&tagMask == w.tagOf(blk) && v&(1<<(seq&bitMask)) != 0 {
		return seq, false
	}
	return seq, true
}

// inferESN reconstructs the high-order 32 bits of a sequence number from its
// low-order 32 bits and the window's top, following RFC 4303 Appendix A2.2:
// of the numbers ending in seqLow, the one in the 2^32-wide span that starts
// at the window's bottom edge top-W+1. ok is false when that number would lie
// below 0 (no subspace before the first) or above 2^64-1.
func inferESN(top uint64, seqLow uint32, w uint64) (seq uint64, ok bool) {
	th, tl := uint32(top>>32), uint32(top)
	w1 := uint32(w - 1)
	bottom := tl - w1 // Tl - W + 1, modulo 2^32
	seqh := th
	if tl >= w1 {
		// Case A: the window lies within one 2^32 subspace. A seqLow below
		// its bottom edge can only come from the next subspace.
		if seqLow < bottom {
			if th == math.MaxUint32 {
				return 0, false
			}
			seqh = th + 1
		}
	} else if seqLow >= bottom {
		// Case B: the window straddles a 2^32 boundary, and seqLow lies in
		// its lower part, which belongs to the previous subspace.
		if th == 0 {
			return 0, false
		}
		seqh = th - 1
	}
	return uint64(seqh)<<32 | uint64(seqLow), true
}

// Commit is called after the packet's ICV verified: it marks seq (as returned
// by Check) as received, moving the window forward when seq is above Top.
// It returns false, and the packet must be dropped and counted as a replay,
// when seq is 0, is already marked (perhaps by another goroutine since
// Check), is at or below Top()-Size() by now, is beyond 2^32-1 without ESN,
// or lies 2^32 or more above Top (Check never yields such a number).
//
// Why this is safe without a lock. A slot changes only by CAS, and every CAS
// that installs a block b (a new tag) or sets a bit in it obeys two rules:
//
//  1. topBlk is raised to b before b is installed anywhere, so no slot ever
//     names a block above topBlk.
//  2. The committer reads the slot first and topBlk second, and refuses if b
//     is R or more blocks below topBlk (its slot belongs to a newer block).
//
// Say the slot for block b holds block c. If c > b then c >= b+R, and by
// rule 1 topBlk had reached c before c was installed, so the topBlk read
// afterwards (rule 2) makes the committer refuse. Hence a slot's block only
// ever grows, and a block once recycled is never installed again: its
// numbers can never be accepted a second time. If c < b, c is stale
// (c <= b-R, at least R blocks below topBlk) and, by the same rule, dead for
// good, so dropping its bits loses nothing; all of c lies below the window
// too, since R*32 >= W+32. This is also why moving the window cannot race
// with a bit being set in a slot being recycled: recycling is itself a CAS on
// the same word, so one of the two sees the other's write, fails, and decides
// again from the new value and a fresh topBlk.
//
// Whoever raises topBlk also recycles the slots of the blocks skipped over,
// as RFC 6479 clears words; committers recycle a slot themselves when they
// get there first. Without that eager pass a slot left untouched for 2^32
// laps could carry a tag that matches again. Jumps are below 2^32 numbers,
// so in any sequential history the tags are exact; with concurrency a tag
// could only alias if one goroutine stalled mid-Commit while the window
// moved 2^37 (times R) numbers, and even then the effect is refusals, never a
// number accepted twice.
func (w *Window) Commit(seq uint64) bool {
	if seq == 0 || w.size == 0 || (!w.esn && seq > math.MaxUint32) {
		return false
	}
	blk := seq >> slotShift
	if blk > w.topBlk.Load() && !w.advance(seq, blk) {
		return false
	}
	slot := &w.ring[blk&w.mask]
	tag := w.tagOf(blk)
	bit := uint64(1) << (seq & bitMask)
	for {
		v := slot.Load()
		// topBlk read after the slot (rule 2). In the top block, the common
		// case, seq is inside the window whatever the top.
		if t := w.topBlk.Load(); t != blk && w.below(seq, blk, t) {
			return false
		}
		if v&tagMask == tag {
			if v&bit != 0 {
				return false
			}
			if slot.CompareAndSwap(v, v|bit) {
				return true
			}
		} else if slot.CompareAndSwap(v, tag|bit) { // stale slot: recycle it
			return true
		}
	}
}

// advance raises topBlk to blk, seq's block, unless seq lies too far ahead.
func (w *Window) advance(seq, blk uint64) bool {
	t := w.topBlk.Load()
	if blk > t && seq-w.topIn(t, w.ring[t&w.mask].Load()) >= maxJump {
		return false
	}
	for blk > t {
		if w.topBlk.CompareAndSwap(t, blk) {
			w.recycle(t+1, blk)
			break
		}
		t = w.topBlk.Load()
	}
	return true
}

// below reports whether seq, in block blk, is out of the window whose top
// block is t > blk: its slot belongs to a newer block, or it is at or below
// top-W.
func (w *Window) below(seq, blk, t uint64) bool {
	return t-blk > w.mask || w.topIn(t, w.ring[t&w.mask].Load())-seq >= w.size
}

// recycle gives the slots of blocks [lo, hi) empty bitmaps tagged for those
// blocks, after topBlk moved from lo-1 to hi. Only the last R-1 of them can
// still own a slot.
func (w *Window) recycle(lo, hi uint64) {
	if hi > lo && hi-lo > w.mask {
		lo = hi - w.mask
	}
	for blk := lo; blk < hi; blk++ {
		slot := &w.ring[blk&w.mask]
		tag := w.tagOf(blk)
		for {
			v := slot.Load()
			if v&tagMask == tag {
				break // a committer got there first
			}
			if w.topBlk.Load()-blk > w.mask {
				break // the window has moved past blk meanwhile
			}
			if slot.CompareAndSwap(v, tag) {
				break
			}
		}
	}
}

// CommitBatch commits seqs in order, as if Commit were called on each in
// turn, writes each verdict to ok (len(ok) must be at least len(seqs)) and
// returns how many were accepted. Call it, like Commit, only with numbers
// whose packets' ICV verified.
//
// Consecutive numbers of one 32-number block (a batch in order holds a few
// such runs) are marked with one compare-and-swap: the bits of the run that
// are fresh are set together, so a number repeated inside the run, or
// already marked, is refused exactly as Commit would refuse it. A run is
// decided from one reading of its slot and of topBlk, taken in Commit's
// order (rule 2 there), and published by one CAS on the slot: to any other
// goroutine the run's numbers appear all at once, as if committed one after
// another at that instant, so the argument on Commit carries over whole.
//
// Equivalence with a Commit loop, in any sequential history: within a run
// the window's top can only move inside the run's own block, and numbers of
// the top block are never below the window (W >= 64 > 32), so no decision in
// the run depends on another's bit except through duplicates, which the
// run's own mask catches.
func (w *Window) CommitBatch(seqs []uint64, ok []bool) int {
	ok = ok[:len(seqs)]
	n := 0
	for i := 0; i < len(seqs); {
		blk := seqs[i] >> slotShift
		j := i + 1
		for j < len(seqs) && seqs[j]>>slotShift == blk {
			j++
		}
		n += w.commitRun(seqs[i:j], ok[i:j], blk)
		i = j
	}
	return n
}

// commitRun commits the numbers of run, all in block blk, in order.
func (w *Window) commitRun(run []uint64, ok []bool, blk uint64) int {
	// Numbers Commit refuses outright, and the move of topBlk: as in
	// Commit, per number, until one number has raised topBlk to blk (after
	// that, topBlk >= blk and the test costs a load).
	if w.size == 0 {
		clear(ok)
		return 0
	}
	cand := 0
	moved := blk <= w.topBlk.Load() // topBlk only grows
	for k, seq := range run {
		c := seq != 0 && (w.esn || seq <= math.MaxUint32)
		if c && !moved {
			c = w.advance(seq, blk)
			moved = c
		}
		ok[k] = c
		if c {
			cand++
		}
	}
	if cand == 0 {
		return 0
	}
	if cand == 1 && len(run) == 1 {
		ok[0] = w.Commit(run[0])
		if ok[0] {
			return 1
		}
		return 0
	}
	// ok holds the candidates now. Each try decides the run from one
	// reading of the slot and topBlk; the verdicts are written only once
	// its CAS has succeeded, by the same rules over the same reading.
	slot := &w.ring[blk&w.mask]
	tag := w.tagOf(blk)
	var base uint64
	var gone bool
	var cut uint64
	for {
		v := slot.Load()
		t := w.topBlk.Load() // after the slot (rule 2)
		gone, cut = false, 0
		if t != blk {
			// t > blk. Commit's test below, once for the run: the
			// slot belongs to a newer block, or the numbers at or
			// below top-W are out.
			if t-blk > w.mask {
				gone = true
			} else if top := w.topIn(t, w.ring[t&w.mask].Load()); top >= w.size {
				cut = top - w.size + 1 // the lowest number still inside
			}
		}
		base = tag // a stale slot is recycled: an empty bitmap
		if v&tagMask == tag {
			base = v
		}
		bm := base
		if !gone {
			for k, seq := range run {
				if ok[k] && seq >= cut {
					bm |= 1 << (seq & bitMask)
				}
			}
		}
		if bm == base {
			break // nothing fresh: all refused, nothing to write
		}
		if slot.CompareAndSwap(v, bm) {
			break
		}
	}
	acc := 0
	for k, seq := range run {
		bit := uint64(1) << (seq & bitMask)
		if !ok[k] || gone || seq < cut || base&bit != 0 {
			ok[k] = false
			continue
		}
		base |= bit // a later copy in the run finds it marked
		acc++
	}
	return acc
}

// A Run commits numbers of one block of one window speculatively, for a
// caller that processes packets in one pass and can still take a packet
// back before it leaves (a worker's TX queue): each number is decided at
// once (Add) from one reading of the block's slot and the numbers of the
// run already decided, and Flush publishes them all with one CAS. Flush
// reports the numbers that lost meanwhile — marked by another goroutine, or
// fallen out of the window — and the caller must then drop those packets as
// replays; in a sequential history it reports none and every verdict is
// Commit's. The zero Run is empty; a Run is used by one goroutine.
type Run struct {
	w          *Window
	blk        uint64
	tag        uint64
	base, mask uint64 // the slot's bitmap at the reading; the run's bits
	cut        uint64 // numbers below are out of the window (blk < top block)
	gone       bool   // the slot belongs to a newer block
}

// Pending reports whether the run holds numbers not yet published.
func (r *Run) Pending() bool { return r.mask != 0 }

// Fits reports whether seq, of window w, may join the run without a Flush.
func (r *Run) Fits(w *Window, seq uint64) bool {
	return r.mask == 0 || (r.w == w && seq>>slotShift == r.blk)
}

// Add decides seq, whose packet's ICV verified, as Commit would, and adds
// it to the run when fresh. The run must be empty or seq must fit it.
func (r *Run) Add(w *Window, seq uint64) bool {
	if seq == 0 || w.size == 0 || (!w.esn && seq > math.MaxUint32) {
		return false
	}
	blk := seq >> slotShift
	if r.mask == 0 {
		if blk > w.topBlk.Load() && !w.advance(seq, blk) {
			return false
		}
		r.w, r.blk, r.tag = w, blk, w.tagOf(blk)
		r.read()
	}
	bit := uint64(1) << (seq & bitMask)
	if r.gone || seq < r.cut || (r.base|r.mask)&bit != 0 {
		return false
	}
	r.mask |= bit
	return true
}

// read takes the slot and topBlk (in Commit's order, rule 2) for the run.
func (r *Run) read() {
	w := r.w
	v := w.ring[r.blk&w.mask].Load()
	t := w.topBlk.Load()
	r.gone, r.cut = false, 0
	if t != r.blk {
		if t-r.blk > w.mask {
			r.gone = true
		} else if top := w.topIn(t, w.ring[t&w.mask].Load()); top >= w.size {
			r.cut = top - w.size + 1
		}
	}
	r.base = r.tag // a stale slot is recycled: an empty bitmap
	if v&tagMask == r.tag {
		r.base = v
	}
}

// Flush publishes the run and empties it. It returns the bits (seq mod 32)
// of the numbers Add accepted that are refused after all; they are not
// marked, and their packets must be dropped.
func (r *Run) Flush() (lost uint32) {
	if r.mask == 0 {
		return 0
	}
	w := r.w
	slot := &w.ring[r.blk&w.mask]
	want := r.mask
	for {
		v := slot.Load()
		t := w.topBlk.Load() // after the slot (rule 2)
		if t != r.blk {
			if t-r.blk > w.mask {
				lost |= uint32(want)
				break
			}
			if top := w.topIn(t, w.ring[t&w.mask].Load()); top >= w.size {
				if cut := top - w.size + 1; cut > r.blk<<slotShift {
					// Numbers of the block below cut left the window.
					out := uint64(1)<<min(cut-r.blk<<slotShift, slotBits) - 1
					lost |= uint32(want & out)
					want &^= out
				}
			}
		}
		base := r.tag
		if v&tagMask == r.tag {
			base = v
		}
		lost |= uint32(want & base) // marked by someone else meanwhile
		want &^= base
		if want == 0 || slot.CompareAndSwap(v, base|want) {
			break
		}
	}
	r.mask = 0
	return lost
}
