package replay

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// commitEach is the reference CommitBatch must match: Commit on each in turn.
func commitEach(w *Window, seqs []uint64) []bool {
	ok := make([]bool, len(seqs))
	for i, s := range seqs {
		ok[i] = w.Commit(s)
	}
	return ok
}

// batchAgainst commits seqs as one batch into a and one by one into b and
// fails on any difference in the verdicts or the top.
func batchAgainst(t *testing.T, a, b *Window, seqs []uint64, what string) []bool {
	t.Helper()
	got := make([]bool, len(seqs))
	n := a.CommitBatch(seqs, got)
	want := commitEach(b, seqs)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: CommitBatch(%#x) = %v, Commit each %v", what, seqs, got, want)
	}
	c := 0
	for _, v := range got {
		if v {
			c++
		}
	}
	if n != c {
		t.Fatalf("%s: CommitBatch returned %d, %d verdicts true", what, n, c)
	}
	if a.Top() != b.Top() {
		t.Fatalf("%s: Top() = %#x after the batch, %#x after Commit each", what, a.Top(), b.Top())
	}
	return got
}

func TestCommitBatchTable(t *testing.T) {
	const y, n = true, false
	for _, tc := range []struct {
		name  string
		size  int
		esn   bool
		start uint64 // jumpTo before the batch when not 0
		seqs  []uint64
		want  []bool
	}{
		{"in order", 64, false, 0, []uint64{1, 2, 3, 31, 32, 33, 64}, []bool{y, y, y, y, y, y, y}},
		{"duplicates in one run", 64, false, 0, []uint64{5, 6, 5, 7, 6, 5}, []bool{y, y, n, y, n, n}},
		{"duplicate across runs", 64, false, 0, []uint64{5, 40, 5, 40}, []bool{y, y, n, n}},
		{"zero", 64, false, 0, []uint64{0, 1, 0}, []bool{n, y, n}},
		{"beyond 32 bits without ESN", 64, false, 0, []uint64{1, 1 << 32, 2}, []bool{y, n, y}},
		{"out of order inside the window", 64, false, 100, []uint64{90, 80, 90, 99, 101, 95}, []bool{y, y, n, y, y, y}},
		{"low then far jump", 64, false, 100, []uint64{50, 5000, 60}, []bool{y, y, n}},
		{"jump then falls out of the window", 64, false, 100, []uint64{200, 120, 137, 136}, []bool{y, n, y, n}},
		{"jump then its own block", 64, false, 100, []uint64{230, 225, 230, 224}, []bool{y, y, n, y}},
		{"too old", 64, false, 1000, []uint64{936, 937, 1000, 999}, []bool{n, y, n, y}},
		{"ESN across 2^32", 64, true, 1<<32 - 3, []uint64{1<<32 - 2, 1 << 32, 1<<32 + 1, 1<<32 - 1, 1 << 32}, []bool{y, y, y, y, n}},
		{"ESN jump of 2^32 refused", 64, true, 10, []uint64{10 + 1<<32, 9 + 1<<32, 11}, []bool{n, y, n}},
		{"whole run refused then later accepted", 64, false, 5000, []uint64{100, 101, 5001, 4999}, []bool{n, n, y, y}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mustNew(t, tc.size, tc.esn), mustNew(t, tc.size, tc.esn)
			if tc.start != 0 {
				jumpTo(a, tc.start)
				jumpTo(b, tc.start)
			}
			got := batchAgainst(t, a, b, tc.seqs, "batch")
			if !slices.Equal(got, tc.want) {
				t.Fatalf("CommitBatch(%v) = %v, want %v", tc.seqs, got, tc.want)
			}
			// Everything accepted is now refused, by a batch and by Check.
			again := make([]bool, len(tc.seqs))
			a.CommitBatch(tc.seqs, again)
			for i, s := range tc.seqs {
				if again[i] && got[i] {
					t.Errorf("%#x accepted again", s)
				}
				if _, ok := a.Check(uint32(s)); ok && got[i] {
					t.Errorf("Check(%#x) = ok after it was accepted", s)
				}
			}
		})
	}
}

func TestCommitBatchZeroWindow(t *testing.T) {
	var w Window
	ok := []bool{true, true}
	if got := w.CommitBatch([]uint64{1, 2}, ok); got != 0 || ok[0] || ok[1] {
		t.Fatalf("zero Window: CommitBatch = %d %v, want 0, all refused", got, ok)
	}
}

// Random batches against Commit on each: reordering, duplicates (inside a
// batch too), lost bursts, far jumps, numbers the window never produces (0,
// beyond 32 bits, 2^32 ahead), ESN streams crossing 2^32.
func TestCommitBatchMatchesCommit(t *testing.T) {
	batches := 3000
	if testing.Short() {
		batches = 500
	}
	for _, tc := range []struct {
		size    int
		esn     bool
		start   uint64
		spread  int
		jumpMax uint64
	}{
		{64, false, 1, 8, 0},
		{64, false, 1, 100, 1 << 10},
		{1024, false, 1, 300, 1 << 14},
		{64, true, 1<<32 - 20000, 40, 1 << 10},
		{96, true, 1<<32 - 20000, 120, 0},
		{1024, true, 3<<32 - 30000, 900, 1 << 14},
		{4096, true, 1<<32 - 30000, 5000, 1 << 16},
	} {
		t.Run(fmt.Sprintf("size=%d/esn=%v/spread=%d", tc.size, tc.esn, tc.spread), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.size), tc.start+7))
			a, b := mustNew(t, tc.size, tc.esn), mustNew(t, tc.size, tc.esn)
			if tc.start > 1 {
				jumpTo(a, tc.start-1)
				jumpTo(b, tc.start-1)
			}
			s := &sender{rng: rng, next: tc.start, spread: tc.spread, jumpMax: tc.jumpMax}
			var seqs []uint64
			accepted, dupsIn := 0, 0
			for i := range batches {
				seqs = seqs[:0]
				for range 1 + rng.IntN(80) {
					var x uint64
					switch r := rng.IntN(1000); {
					case r < 3:
						x = 0
					case r < 6:
						x = b.Top() + 1<<32 + 1<<24 + uint64(rng.IntN(2)) // too far ahead: refused
					case r < 9:
						x = b.Top() - uint64(b.Size()) + uint64(rng.IntN(3)) // the bottom edge
					case r < 60 && len(seqs) > 0:
						x = seqs[rng.IntN(len(seqs))] // a copy inside the batch
						dupsIn++
					default:
						x = s.packet()
					}
					seqs = append(seqs, x)
				}
				for _, v := range batchAgainst(t, a, b, seqs, fmt.Sprintf("batch %d", i)) {
					if v {
						accepted++
					}
				}
			}
			if accepted < batches*10 || dupsIn < batches/2 {
				t.Fatalf("%d accepted, %d copies inside batches: the stream does not exercise the window", accepted, dupsIn)
			}
			if tc.esn && b.Top()>>32 == tc.start>>32 {
				t.Fatalf("top %#x: the stream did not cross a 2^32 boundary", b.Top())
			}
		})
	}
}

// Several workers commit batches of one SA's numbers at once, with copies
// shared between workers and inside batches, jitter, and occasional jumps
// that recycle slots, mixed with single Commits: no number is accepted
// twice, and every number offered while certainly inside the window (here:
// the stream without jumps) is accepted once.
func TestCommitBatchConcurrent(t *testing.T) {
	const workers = 6
	moreThreads(t, workers)
	for _, tc := range []struct {
		size  int
		esn   bool
		base  uint64
		jumps bool
	}{
		{64, false, 0, false},
		{1024, true, 1<<32 - 20000, false},
		{64, true, 1<<32 - 5000, true},
		{1024, false, 0, true},
	} {
		t.Run(fmt.Sprintf("size=%d/esn=%v/jumps=%v", tc.size, tc.esn, tc.jumps), func(t *testing.T) {
			w := mustNew(t, tc.size, tc.esn)
			if tc.base != 0 {
				jumpTo(w, tc.base)
			}
			rounds := 400
			if testing.Short() {
				rounds = 100
			}
			B := w.Size() / 2 // per round: all of it stays inside the window
			rng := rand.New(rand.NewPCG(uint64(tc.size), tc.base+1))
			// feeds[g][k]: worker g's batches in round k.
			feeds := make([][][]uint64, workers)
			for g := range feeds {
				feeds[g] = make([][]uint64, rounds)
			}
			next := tc.base + 1
			var offered []uint64
			for k := range rounds {
				if tc.jumps && rng.IntN(8) == 0 {
					next += uint64(w.Size()) + uint64(rng.IntN(3*w.Size()))
				}
				for range B {
					owner := rng.IntN(workers)
					for g := range workers {
						if g == owner || rng.IntN(3) == 0 {
							feeds[g][k] = append(feeds[g][k], next)
							if rng.IntN(10) == 0 {
								feeds[g][k] = append(feeds[g][k], next) // a copy in the batch
							}
						}
					}
					offered = append(offered, next)
					next++
				}
				for g := range workers {
					jitter(rng, feeds[g][k], 6)
				}
			}
			got := make([][]uint64, workers)
			var wg sync.WaitGroup
			bar := newBarrier(workers)
			for g := range workers {
				wg.Go(func() {
					ok := make([]bool, 64)
					for k := range rounds {
						f := feeds[g][k]
						for len(f) > 0 {
							m := min(len(f), 1+(int(decrypt(uint64(len(f)+g)))&63))
							if m == 1 && g%2 == 0 {
								if w.Commit(f[0]) {
									got[g] = append(got[g], f[0])
								}
							} else {
								w.CommitBatch(f[:m], ok)
								for i, s := range f[:m] {
									if ok[i] {
										got[g] = append(got[g], s)
									}
								}
							}
							f = f[m:]
						}
						bar.wait()
					}
				})
			}
			wg.Wait()
			count := make(map[uint64]int)
			for _, l := range got {
				for _, s := range l {
					count[s]++
				}
			}
			bad := 0
			for s, c := range count {
				if c > 1 {
					if bad++; bad <= 10 {
						t.Errorf("seq %#x accepted %d times", s, c)
					}
				}
			}
			if !tc.jumps {
				for _, s := range offered {
					if count[s] != 1 {
						if bad++; bad <= 10 {
							t.Errorf("seq %#x accepted %d times, want once", s, count[s])
						}
					}
				}
			}
			if w.Top() != next-1 {
				t.Errorf("Top() = %#x, want %#x", w.Top(), next-1)
			}
		})
	}
}

func TestCommitBatchAllocs(t *testing.T) {
	w := mustNew(t, 1024, true)
	seqs := make([]uint64, 64)
	ok := make([]bool, 64)
	next := uint64(1)
	allocs := testing.AllocsPerRun(200, func() {
		for i := range seqs {
			seqs[i] = next + uint64(i^1) // pairs swapped
		}
		next += uint64(len(seqs))
		if w.CommitBatch(seqs, ok) != len(seqs) {
			panic("refused")
		}
	})
	if allocs != 0 {
		t.Fatalf("CommitBatch: %v allocations per batch, want 0", allocs)
	}
}

// 64 numbers in order, as one batch and as 64 Commits.
func BenchmarkCommitBatch64(b *testing.B) {
	seqs := make([]uint64, 64)
	ok := make([]bool, 64)
	for _, batch := range []bool{false, true} {
		b.Run(fmt.Sprintf("batch=%v", batch), func(b *testing.B) {
			w := mustNew(b, 1024, true)
			next := uint64(1)
			b.ReportAllocs()
			for range b.N {
				for i := range seqs {
					seqs[i] = next + uint64(i)
				}
				next += 64
				if batch {
					w.CommitBatch(seqs, ok)
				} else {
					for i, s := range seqs {
						ok[i] = w.Commit(s)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/pkt")
		})
	}
}
