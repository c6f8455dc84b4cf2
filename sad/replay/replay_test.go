package replay

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func mustNew(t testing.TB, size int, esn bool) *Window {
	t.Helper()
	w, err := New(size, esn)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// jumpTo puts w in the state a long in-order history ending at top would
// leave, without taking 2^32-sized steps: top set, every slot the window owns
// tagged for its block and empty, and top itself marked.
func jumpTo(w *Window, top uint64) {
	last := top >> slotShift
	w.topBlk.Store(last)
	for i := range w.mask + 1 {
		if blk := last - i; blk <= last {
			w.ring[blk&w.mask].Store(w.tagOf(blk))
		}
	}
	if !w.Commit(top) || w.Top() != top {
		panic("jumpTo: cannot mark top")
	}
}

func TestNewSize(t *testing.T) {
	for _, tc := range []struct {
		size, want int
	}{
		{32, 64}, {33, 64}, {64, 64}, {65, 128}, {1000, 1024}, {1024, 1024},
		{65536, 65536}, {MaxSize - 1, MaxSize}, {MaxSize, MaxSize},
	} {
		w, err := New(tc.size, false)
		if err != nil {
			t.Fatalf("New(%d): %v", tc.size, err)
		}
		if w.Size() != tc.want {
			t.Errorf("New(%d).Size() = %d, want %d", tc.size, w.Size(), tc.want)
		}
		// The spare slot: the ring must hold every block the window can touch
		// plus one.
		if got := uint64(len(w.ring)) * slotBits; got < w.size+slotBits {
			t.Errorf("New(%d): ring covers %d numbers, want >= %d", tc.size, got, w.size+slotBits)
		}
	}
	for _, size := range []int{-1, 0, 31, MaxSize + 1, math.MaxInt} {
		if _, err := New(size, true); !errors.Is(err, ErrSize) {
			t.Errorf("New(%d) error = %v, want ErrSize", size, err)
		}
	}
}

func TestZeroValueRefuses(t *testing.T) {
	var w Window
	if _, ok := w.Check(1); ok {
		t.Error("zero Window: Check(1) ok")
	}
	if w.Commit(1) {
		t.Error("zero Window: Commit(1) accepted")
	}
}

// step is one packet through the inbound pipeline: Check, then (when the
// test says the ICV verified) Commit.
type step struct {
	in         uint32 // low-order 32 bits from the wire
	wantSeq    uint64 // checked only when non-zero
	wantCheck  bool
	commit     bool // call Commit(seq) after Check
	wantCommit bool
}

func runSteps(t *testing.T, w *Window, steps []step) {
	t.Helper()
	for i, s := range steps {
		seq, ok := w.Check(s.in)
		if ok != s.wantCheck || (s.wantSeq != 0 && seq != s.wantSeq) {
			t.Fatalf("step %d: Check(%#x) = (%#x, %v), want (%#x, %v) [top %#x]",
				i, s.in, seq, ok, s.wantSeq, s.wantCheck, w.Top())
		}
		if s.commit {
			if got := w.Commit(seq); got != s.wantCommit {
				t.Fatalf("step %d: Commit(%#x) = %v, want %v [top %#x]", i, seq, got, s.wantCommit, w.Top())
			}
		}
	}
}

// accept, refuse and late build steps: a fresh packet that verifies, a packet
// Check refuses, and one Check passes but Commit refuses.
func accept(n uint32) step { return step{in: n, wantCheck: true, commit: true, wantCommit: true} }
func refuse(n uint32) step { return step{in: n} }

// RFC 4303 §3.4.3 semantics with 32-bit sequence numbers.
func TestWindowNoESN(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		steps []step
	}{
		{"in order", 64, []step{accept(1), accept(2), accept(3), accept(4)}},
		{"zero is never valid", 64, []step{refuse(0), accept(1), refuse(0)}},
		{"reordered inside window", 64, []step{
			accept(10), accept(3), accept(9), accept(1), accept(64), accept(5), accept(12), accept(11),
		}},
		{"duplicates", 64, []step{
			accept(5), refuse(5), accept(7), refuse(7), refuse(5), accept(6), refuse(6),
			// Check passes a number twice until one copy commits.
			{in: 8, wantCheck: true}, {in: 8, wantCheck: true, commit: true, wantCommit: true}, refuse(8),
		}},
		{"left edge", 64, []step{
			accept(100),
			accept(37),  // 100-64+1: oldest number still inside
			refuse(36),  // 100-64: just outside
			refuse(1),   // far outside
			accept(101), // window moves: 37 drops out, 38 is the oldest inside
			accept(38), refuse(37),
		}},
		{"too old after advance", 1024, []step{
			accept(1), accept(2000), refuse(976), accept(977), refuse(3), refuse(2000), accept(1999),
		}},
		{"big jump clears the window", 64, []step{
			accept(1), accept(2), accept(3), accept(10000),
			// Every number 9937..9999 maps onto recycled slots and is fresh.
			accept(9937), accept(9936 + 32), accept(9999), accept(9938), refuse(9936),
		}},
		{"jump by exactly the ring span", 64, []step{
			// A 64-window has 4 slots of 32 numbers: n and n+128 share a bit.
			accept(5), accept(6), accept(5 + 128), accept(6 + 128), accept(134 - 63), refuse(134 - 64),
		}},
		{"top of 32-bit space", 64, []step{
			accept(math.MaxUint32 - 1), accept(math.MaxUint32), refuse(math.MaxUint32),
			accept(math.MaxUint32 - 63), refuse(math.MaxUint32 - 64),
			// No wrap without ESN: small numbers are too old.
			refuse(1), refuse(0),
		}},
		{"size 32 is 64", 32, []step{accept(100), accept(37), refuse(36)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, mustNew(t, tc.size, false), tc.steps)
		})
	}
}

// Every number in the window is accepted exactly once, in any order, for each
// supported size; the numbers on either side of the edges behave.
func TestWindowSizes(t *testing.T) {
	for _, size := range []int{32, 64, 1024, 65536, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			w := mustNew(t, size, false)
			W := uint64(w.Size())
			// Three rounds, each jumping the top so the new window lies wholly
			// above the last and reuses every slot, then filling the window in
			// random order.
			top := uint64(0)
			rounds := 3
			if size > 65536 {
				rounds = 2 // keeps the -race run short
			}
			for round := range rounds {
				top += W + uint64(round)*31 + 7
				if !w.Commit(top) {
					t.Fatalf("round %d: Commit(top %d) refused", round, top)
				}
				for _, i := range rng.Perm(int(W - 1)) {
					seq := top - uint64(i) - 1
					got, ok := w.Check(uint32(seq))
					if got != seq || !ok {
						t.Fatalf("round %d: Check(%d) = (%d, %v), want fresh", round, seq, got, ok)
					}
					if !w.Commit(seq) {
						t.Fatalf("round %d: Commit(%d) refused", round, seq)
					}
				}
				for _, seq := range []uint64{top, top - 1, top - W + 1} {
					if _, ok := w.Check(uint32(seq)); ok {
						t.Fatalf("round %d: duplicate %d passes Check", round, seq)
					}
					if w.Commit(seq) {
						t.Fatalf("round %d: duplicate %d committed", round, seq)
					}
				}
				if _, ok := w.Check(uint32(top - W)); ok {
					t.Fatalf("round %d: %d (top-W) passes Check", round, top-W)
				}
				if w.Commit(top - W) {
					t.Fatalf("round %d: %d (top-W) committed", round, top-W)
				}
				if _, ok := w.Check(uint32(top + 1)); !ok {
					t.Fatalf("round %d: top+1 refused", round)
				}
			}
		})
	}
}

// ESN inference, RFC 4303 Appendix A2.2, around 2^32 boundaries. W is 64.
func TestESNInference(t *testing.T) {
	const W = 64
	tests := []struct {
		name   string
		top    uint64 // committed first (0: nothing committed)
		in     uint32
		want   uint64
		wantOK bool
	}{
		// Case A, Tl >= W-1: the window sits inside one subspace.
		{"A: in window", 1<<32 + 100, 50, 1<<32 + 50, true},
		{"A: bottom edge Tl-W+1 keeps Th", 1<<32 + 100, 37, 1<<32 + 37, true},
		{"A: below bottom edge is Th+1", 1<<32 + 100, 36, 2<<32 + 36, true},
		{"A: zero low bits is Th+1", 1<<32 + 100, 0, 2<<32 + 0, true},
		{"A: above top keeps Th", 1<<32 + 100, 0xfffffff0, 1<<32 + 0xfffffff0, true},
		{"A: top itself is a duplicate", 1<<32 + 100, 100, 1<<32 + 100, false},
		{"A: Tl = W-1 exactly, all Seql keep Th", 5<<32 + 63, 0, 5<<32 + 0, true},
		{"A: Tl = W-1, Seql max keeps Th", 5<<32 + 63, math.MaxUint32, 5<<32 + math.MaxUint32, true},
		{"A: top of 32-bit space", 0xffffffff, 0xffffffc0, 0xffffffc0, true},
		{"A: crossing 2^32", 0xffffffff, 5, 1<<32 + 5, true},
		{"A: crossing 2^32 at 0", 0xffffffff, 0, 1 << 32, true},
		{"A: Th+1 would pass 2^64", math.MaxUint64 - 5, 0, 0, false},
		{"A: Th max, in window", math.MaxUint64 - 5, math.MaxUint32 - 10, math.MaxUint64 - 10, true},
		// Case B, Tl < W-1: the window straddles a boundary.
		{"B: Seql in upper part is Th-1", 1<<32 + 10, math.MaxUint32, 1<<32 - 1, true},
		{"B: bottom edge Tl-W+1 mod 2^32 is Th-1", 1<<32 + 10, 0xffffffcb, 0xffffffcb, true},
		{"B: below bottom edge is Th (far ahead)", 1<<32 + 10, 0xffffffca, 1<<32 + 0xffffffca, true},
		{"B: low part is Th", 1<<32 + 10, 3, 1<<32 + 3, true},
		{"B: 2^32 itself", 1<<32 + 10, 0, 1 << 32, true},
		{"B: above top is Th", 1<<32 + 10, 11, 1<<32 + 11, true},
		{"B: Tl = W-2, Seql max is Th-1", 7<<32 + 62, math.MaxUint32, 7<<32 - 1, true},
		{"B: Tl = W-2, Seql 0 is Th", 7<<32 + 62, 0, 7 << 32, true},
		{"B: top is 2^32, Seql max is 2^32-1", 1 << 32, math.MaxUint32, 1<<32 - 1, true},
		// Case B with Th = 0: there is no subspace before the first.
		{"B: fresh window, Seql 1", 0, 1, 1, true},
		{"B: fresh window, Seql 0", 0, 0, 0, false},
		{"B: fresh window, Seql max", 0, math.MaxUint32, 0, false},
		{"B: Th=0, Seql far ahead", 10, 0xffffffca, 0xffffffca, true},
		{"B: Th=0, Seql would be negative", 10, 0xffffffcb, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := mustNew(t, W, true)
			if tc.top != 0 {
				jumpTo(w, tc.top)
			}
			seq, ok := w.Check(tc.in)
			if seq != tc.want || ok != tc.wantOK {
				t.Errorf("top %#x: Check(%#x) = (%#x, %v), want (%#x, %v)", tc.top, tc.in, seq, ok, tc.want, tc.wantOK)
			}
			m := newModel(W, true)
			m.top = tc.top
			m.seen[tc.top] = true
			if mseq, mok := m.check(tc.in); mseq != tc.want || mok != tc.wantOK {
				t.Errorf("model disagrees with the table: (%#x, %v)", mseq, mok)
			}
		})
	}
}

// A window crossing 2^32 with ESN: the packets just before and after the
// boundary arrive interleaved and are all accepted once.
func TestESNAcrossBoundary(t *testing.T) {
	w := mustNew(t, 128, true)
	runSteps(t, w, []step{
		{in: 0xffffff00, wantSeq: 0xffffff00, wantCheck: true, commit: true, wantCommit: true},
		{in: 0xfffffffe, wantSeq: 0xfffffffe, wantCheck: true, commit: true, wantCommit: true},
		{in: 2, wantSeq: 1<<32 + 2, wantCheck: true, commit: true, wantCommit: true},
		{in: 0xffffffff, wantSeq: 0xffffffff, wantCheck: true, commit: true, wantCommit: true},
		{in: 0, wantSeq: 1 << 32, wantCheck: true, commit: true, wantCommit: true},
		{in: 1, wantSeq: 1<<32 + 1, wantCheck: true, commit: true, wantCommit: true},
		{in: 0xffffffff, wantSeq: 0xffffffff},
		{in: 2, wantSeq: 1<<32 + 2},
		{in: 0xffffff83, wantSeq: 0xffffff83, wantCheck: true, commit: true, wantCommit: true}, // 2^32+2-127
		{in: 0xffffff82, wantSeq: 1<<32 + 0xffffff82, wantCheck: true},                         // below the edge: read as next subspace
	})
	if got := w.Top(); got != 1<<32+2 {
		t.Errorf("Top() = %#x, want %#x", got, uint64(1<<32+2))
	}
}

func TestCommitRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		esn  bool
		top  uint64
		seq  uint64
		want bool
	}{
		{"zero", true, 0, 0, false},
		{"64-bit number without ESN", false, 0, 1 << 32, false},
		{"largest 32-bit without ESN", false, 0, math.MaxUint32, true},
		{"jump of 2^32-1 with ESN", true, 5, 5 + 1<<32 - 1, true},
		{"jump of 2^32 with ESN (Check never yields it)", true, 5, 5 + 1<<32, false},
		{"largest 64-bit number", true, math.MaxUint64 - 1000, math.MaxUint64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := mustNew(t, 64, tc.esn)
			if tc.top != 0 {
				jumpTo(w, tc.top)
			}
			if got := w.Commit(tc.seq); got != tc.want {
				t.Errorf("Commit(%#x) = %v, want %v", tc.seq, got, tc.want)
			}
		})
	}
}

// sender produces the packet stream a peer and a network would: a counter
// with loss, reordering within a span, duplicates, and the occasional jump.
type sender struct {
	rng     *rand.Rand
	next    uint64
	pending []uint64
	spread  int    // how many packets may overtake each other
	jumpMax uint64 // largest burst lost at once; 0 for none
}

func (s *sender) packet() uint64 {
	for len(s.pending) < s.spread {
		switch r := s.rng.IntN(10000); {
		case r < 500: // lost
		case r < 503 && s.jumpMax > 0:
			s.next += s.rng.Uint64N(s.jumpMax) // a burst lost
		default:
			s.pending = append(s.pending, s.next)
		}
		s.next++
	}
	i := s.rng.IntN(len(s.pending))
	n := s.pending[i]
	if s.rng.IntN(10) != 0 { // else: duplicated, keep it queued
		s.pending[i] = s.pending[len(s.pending)-1]
		s.pending = s.pending[:len(s.pending)-1]
	}
	return n
}

// Window against the brute-force model over long random streams, for several
// sizes, both ESN modes, starting near 2^32 so that ESN streams cross it.
func TestWindowAgainstModel(t *testing.T) {
	packets := 40000
	if testing.Short() {
		packets = 5000
	}
	for _, tc := range []struct {
		size    int
		esn     bool
		start   uint64
		spread  int
		jumpMax uint64
	}{
		{64, false, 1, 8, 0},
		{64, false, 1, 100, 1 << 10}, // reordering beyond the window
		{1024, false, 1, 300, 1 << 14},
		{64, true, 1<<32 - 20000, 40, 1 << 10},
		{96, true, 1<<32 - 20000, 120, 0},
		{1024, true, 3<<32 - 30000, 900, 1 << 14},
		{4096, true, 1<<32 - 30000, 5000, 1 << 16},
		{65536, true, 1<<32 - 30000, 2000, 1 << 20},
	} {
		t.Run(fmt.Sprintf("size=%d/esn=%v/spread=%d", tc.size, tc.esn, tc.spread), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.size), tc.start))
			w := mustNew(t, tc.size, tc.esn)
			m := newModel(uint64(w.Size()), tc.esn)
			s := &sender{rng: rng, next: tc.start, spread: tc.spread, jumpMax: tc.jumpMax}
			if tc.start > 1 {
				// The SA has been up a while: the window sits just below start.
				jumpTo(w, tc.start-1)
				m.top = tc.start - 1
				m.seen[m.top] = true
			}
			accepted := 0
			for i := range packets {
				n := s.packet()
				if !tc.esn && n > math.MaxUint32 {
					break
				}
				seq, ok := w.Check(uint32(n))
				mseq, mok := m.check(uint32(n))
				if seq != mseq || ok != mok {
					t.Fatalf("packet %d (%#x): Check = (%#x, %v), model (%#x, %v), top %#x", i, n, seq, ok, mseq, mok, m.top)
				}
				// Inference recovers the sent number whenever it lies in the
				// span it can see, from top-W+1 up to 2^32 further.
				if ok && n != seq && n+m.size > m.top {
					t.Fatalf("packet %d: Check inferred %#x, sent %#x", i, seq, n)
				}
				// A wrongly inferred number (a packet too old, with ESN) fails
				// the ICV, which covers the high-order bits; so do a few others.
				if !ok || n != seq || rng.IntN(20) == 0 {
					continue
				}
				got, want := w.Commit(seq), m.commit(seq)
				if got != want {
					t.Fatalf("packet %d: Commit(%#x) = %v, model %v", i, seq, got, want)
				}
				if got {
					accepted++
				}
				if w.Top() != m.top {
					t.Fatalf("packet %d: Top() = %#x, model %#x", i, w.Top(), m.top)
				}
			}
			if accepted < packets/4 {
				t.Fatalf("only %d of %d packets accepted: the stream does not exercise the window", accepted, packets)
			}
			if tc.esn && m.top>>32 == tc.start>>32 {
				t.Fatalf("top %#x: the stream did not cross a 2^32 boundary", m.top)
			}
			t.Logf("%d packets, %d accepted, top %#x", packets, accepted, m.top)
		})
	}
}
