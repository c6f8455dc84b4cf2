package replay

import (
	"fmt"
	"sync"
	"testing"
)

// runCommit feeds seqs through r on a, flushing whenever a number does not
// fit, and returns the verdicts; in one goroutine Flush must lose nothing.
func runCommit(t *testing.T, r *Run, a *Window, seqs []uint64) []bool {
	t.Helper()
	got := make([]bool, len(seqs))
	for i, s := range seqs {
		if !r.Fits(a, s) {
			if lost := r.Flush(); lost != 0 {
				t.Fatalf("Flush lost %#x in one goroutine", lost)
			}
		}
		got[i] = r.Add(a, s)
	}
	if lost := r.Flush(); lost != 0 {
		t.Fatalf("Flush lost %#x in one goroutine", lost)
	}
	return got
}

func TestRunTable(t *testing.T) {
	const y, n = true, false
	for _, tc := range []struct {
		name  string
		esn   bool
		start uint64
		seqs  []uint64
		want  []bool
	}{
		{"in order", false, 0, []uint64{1, 2, 3, 31, 32, 33, 64}, []bool{y, y, y, y, y, y, y}},
		{"copies in a run", false, 0, []uint64{5, 6, 5, 7, 6, 5}, []bool{y, y, n, y, n, n}},
		{"copy across runs", false, 0, []uint64{5, 40, 5, 40}, []bool{y, y, n, n}},
		{"zero and beyond 32 bits", false, 0, []uint64{0, 1, 1 << 32, 2}, []bool{n, y, n, y}},
		{"jump then out of the window", false, 100, []uint64{200, 120, 137, 136}, []bool{y, n, y, n}},
		{"too old", false, 1000, []uint64{936, 937, 1000, 999}, []bool{n, y, n, y}},
		{"ESN across 2^32", true, 1<<32 - 3, []uint64{1<<32 - 2, 1 << 32, 1<<32 + 1, 1<<32 - 1, 1 << 32}, []bool{y, y, y, y, n}},
		{"ESN jump of 2^32 refused", true, 10, []uint64{10 + 1<<32, 9 + 1<<32, 11}, []bool{n, y, n}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := mustNew(t, 64, tc.esn), mustNew(t, 64, tc.esn)
			if tc.start != 0 {
				jumpTo(a, tc.start)
				jumpTo(b, tc.start)
			}
			var r Run
			got := runCommit(t, &r, a, tc.seqs)
			if want := commitEach(b, tc.seqs); fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Run = %v, Commit each %v, want %v", got, want, tc.want)
			}
			if a.Top() != b.Top() {
				t.Fatalf("Top %#x, Commit each %#x", a.Top(), b.Top())
			}
		})
	}
}

// Random streams through a Run against Commit on each, as in
// TestCommitBatchMatchesCommit.
func TestRunMatchesCommit(t *testing.T) {
	for _, tc := range streamCases {
		t.Run(fmt.Sprintf("size=%d/esn=%v/spread=%d", tc.size, tc.esn, tc.spread), func(t *testing.T) {
			a, b, s := streamPair(t, tc, 9)
			rng := s.rng
			var r Run
			accepted := 0
			for i := range 100000 {
				var x uint64
				switch k := rng.IntN(1000); {
				case k < 3:
					x = 0
				case k < 6:
					x = b.Top() - uint64(b.Size()) + uint64(rng.IntN(3))
				default:
					x = s.packet()
				}
				if !r.Fits(a, x) {
					if lost := r.Flush(); lost != 0 {
						t.Fatalf("step %d: Flush lost %#x", i, lost)
					}
				}
				got, want := r.Add(a, x), b.Commit(x)
				if got != want {
					t.Fatalf("step %d: Add(%#x) = %v, Commit %v", i, x, got, want)
				}
				if got {
					accepted++
				}
				if rng.IntN(40) == 0 { // a batch ends
					if lost := r.Flush(); lost != 0 {
						t.Fatalf("step %d: Flush lost %#x", i, lost)
					}
					if a.Top() != b.Top() {
						t.Fatalf("step %d: Top %#x, Commit each %#x", i, a.Top(), b.Top())
					}
				}
			}
			if accepted < 25000 {
				t.Fatalf("only %d accepted", accepted)
			}
		})
	}
}

// Workers run speculative Runs on one SA at once, with shared copies and
// jumps: what Flush reports lost is taken back, and in the end no number is
// held accepted twice; without jumps every number is accepted once.
func TestRunConcurrent(t *testing.T) {
	const workers, rounds = 6, 300
	moreThreads(t, workers)
	for _, tc := range concurrentCases {
		t.Run(fmt.Sprintf("size=%d/esn=%v/jumps=%v", tc.size, tc.esn, tc.jumps), func(t *testing.T) {
			w := mustNew(t, tc.size, tc.esn)
			feeds, offered, last := concurrentFeeds(w, tc.esn, tc.jumps, false, workers, rounds)
			held := make([]map[uint64]bool, workers)
			var wg sync.WaitGroup
			bar := newBarrier(workers)
			for g := range workers {
				held[g] = make(map[uint64]bool)
				wg.Go(func() {
					var r Run
					var inRun [32]uint64
					flush := func() {
						lost := r.Flush()
						for b := range 32 {
							if lost&(1<<b) != 0 {
								delete(held[g], inRun[b])
							}
						}
					}
					for k := range rounds {
						for i, s := range feeds[g][k] {
							if !r.Fits(w, s) || i%13 == 12 {
								flush()
							}
							decrypt(s)
							if r.Add(w, s) {
								held[g][s] = true
								inRun[s&31] = s
							}
						}
						flush()
						bar.wait()
					}
				})
			}
			wg.Wait()
			got := make([][]uint64, workers)
			for g, m := range held {
				for s := range m {
					got[g] = append(got[g], s)
				}
			}
			checkAcceptedOnce(t, w, got, offered, !tc.jumps, last)
		})
	}
}

// run64 puts the 64 numbers from next through r in order, flushing per
// block and at the end, as a worker's batch would, and returns the next.
func run64(r *Run, w *Window, next uint64) uint64 {
	for range 64 {
		if !r.Fits(w, next) {
			r.Flush()
		}
		r.Add(w, next)
		next++
	}
	r.Flush()
	return next
}

func TestRunAllocs(t *testing.T) {
	w := mustNew(t, 1024, true)
	var r Run
	next := uint64(1)
	allocs := testing.AllocsPerRun(200, func() {
		next = run64(&r, w, next)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 64 numbers, want 0", allocs)
	}
}

// 64 numbers in order through a Run, flushed per block and at the end (as
// a worker's batch), against Commit on each: see BenchmarkCommitBatch64.
func BenchmarkRun64(b *testing.B) {
	w := mustNew(b, 1024, true)
	var r Run
	next := uint64(1)
	b.ReportAllocs()
	for range b.N {
		next = run64(&r, w, next)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/64, "ns/pkt")
}
