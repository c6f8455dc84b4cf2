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

type streamCase struct {
	size    int
	esn     bool
	start   uint64
	spread  int
	jumpMax uint64
}

// streamCases are random streams for the batch and run tests against
// Commit on each: window size, ESN, first number (ESN ones cross 2^32), how
// many packets may overtake each other, the largest burst lost at once.
var streamCases = []streamCase{
	{64, false, 1, 8, 0},
	{64, false, 1, 100, 1 << 10},
	{1024, false, 1, 300, 1 << 14},
	{64, true, 1<<32 - 20000, 40, 1 << 10},
	{96, true, 1<<32 - 20000, 120, 0},
	{1024, true, 3<<32 - 30000, 900, 1 << 14},
	{4096, true, 1<<32 - 30000, 5000, 1 << 16},
}

// streamPair returns two windows in the state tc starts from, and the
// sender of tc's stream (its rng seeded with seed).
func streamPair(t *testing.T, tc streamCase, seed uint64) (a, b *Window, s *sender) {
	a, b = mustNew(t, tc.size, tc.esn), mustNew(t, tc.size, tc.esn)
	if tc.start > 1 {
		jumpTo(a, tc.start-1)
		jumpTo(b, tc.start-1)
	}
	rng := rand.New(rand.NewPCG(uint64(tc.size), tc.start+seed))
	return a, b, &sender{rng: rng, next: tc.start, spread: tc.spread, jumpMax: tc.jumpMax}
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
	for _, tc := range streamCases {
		t.Run(fmt.Sprintf("size=%d/esn=%v/spread=%d", tc.size, tc.esn, tc.spread), func(t *testing.T) {
			a, b, s := streamPair(t, tc, 7)
			rng := s.rng
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

// concurrentCases are the streams the concurrent tests share among
// workers; with jumps the stream skips ahead now and then, recycling slots
// while others set bits in them.
var concurrentCases = []struct {
	size  int
	esn   bool
	jumps bool
}{{64, false, false}, {1024, true, false}, {64, true, true}, {1024, false, true}}

// concurrentFeeds starts w near 2^32 with ESN and builds feeds[g][k], what
// worker g handles in round k: rounds of W/2 numbers (all inside the window
// whatever the order when there are no jumps), each to one worker at least
// and to each other with odds 1/3, with copies also twice into one share
// now and then, jittered. It returns every number offered and the last.
func concurrentFeeds(w *Window, esn, jumps, copies bool, workers, rounds int) (feeds [][][]uint64, offered []uint64, last uint64) {
	base := uint64(0)
	if esn {
		base = 1<<32 - 5000
		jumpTo(w, base)
	}
	rng := rand.New(rand.NewPCG(uint64(w.Size()), base+1))
	feeds = make([][][]uint64, workers)
	for g := range feeds {
		feeds[g] = make([][]uint64, rounds)
	}
	next := base + 1
	for k := range rounds {
		if jumps && rng.IntN(8) == 0 {
			next += uint64(w.Size()) + uint64(rng.IntN(3*w.Size()))
		}
		for range w.Size() / 2 {
			owner := rng.IntN(workers)
			for g := range workers {
				if g == owner || rng.IntN(3) == 0 {
					feeds[g][k] = append(feeds[g][k], next)
					if copies && rng.IntN(10) == 0 {
						feeds[g][k] = append(feeds[g][k], next)
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
	return feeds, offered, next - 1
}

// checkAcceptedOnce fails when a number is held accepted by two workers
// (got[g]: what worker g holds accepted), or, with exact, when an offered
// number is not accepted exactly once; and when the window does not end at
// last.
func checkAcceptedOnce(t *testing.T, w *Window, got [][]uint64, offered []uint64, exact bool, last uint64) {
	t.Helper()
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
	if exact {
		for _, s := range offered {
			if count[s] != 1 {
				if bad++; bad <= 10 {
					t.Errorf("seq %#x accepted %d times, want once", s, count[s])
				}
			}
		}
	}
	if w.Top() != last {
		t.Errorf("Top() = %#x, want %#x", w.Top(), last)
	}
}

// Several workers commit batches of one SA's numbers at once, with copies
// shared between workers and inside batches, jitter, jumps, mixed with
// single Commits: no number is accepted twice, and without jumps every
// number offered is accepted once.
func TestCommitBatchConcurrent(t *testing.T) {
	const workers, rounds = 6, 300
	moreThreads(t, workers)
	for _, tc := range concurrentCases {
		t.Run(fmt.Sprintf("size=%d/esn=%v/jumps=%v", tc.size, tc.esn, tc.jumps), func(t *testing.T) {
			w := mustNew(t, tc.size, tc.esn)
			feeds, offered, last := concurrentFeeds(w, tc.esn, tc.jumps, true, workers, rounds)
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
			checkAcceptedOnce(t, w, got, offered, !tc.jumps, last)
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
