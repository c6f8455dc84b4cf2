package replay

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkBaselineCAS is the floor the others are measured against: one
// uncontended compare-and-swap. An in-order Commit does two (top and slot),
// a reordered one one.
func BenchmarkBaselineCAS(b *testing.B) {
	var x atomic.Uint64
	b.ReportAllocs()
	for i := range uint64(b.N) {
		x.CompareAndSwap(i, i+1)
	}
}

// In-order packets: every Commit moves the window by one.
func BenchmarkCheckCommitInOrder(b *testing.B) {
	for _, tc := range []struct {
		size int
		esn  bool
	}{{1024, false}, {1024, true}, {1 << 20, true}} {
		b.Run(fmt.Sprintf("size=%d/esn=%v", tc.size, tc.esn), func(b *testing.B) {
			w := mustNew(b, tc.size, tc.esn)
			b.ReportAllocs()
			for i := range uint64(b.N) {
				seq, ok := w.Check(uint32(i + 1))
				if !ok || !w.Commit(seq) {
					b.Fatalf("packet %d refused", i+1)
				}
			}
		})
	}
}

// Reordered packets: each moves up to 64 places, as when several NIC queues
// or workers interleave one SA's traffic; about half move the window.
func BenchmarkCheckCommitReordered(b *testing.B) {
	const period = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	perm := make([]uint64, period)
	for i := range perm {
		perm[i] = uint64(i)
	}
	jitter(rng, perm, 64)
	w := mustNew(b, 1024, true)
	b.ReportAllocs()
	for i := range uint64(b.N) {
		n := i/period*period + perm[i%period] + 1
		seq, ok := w.Check(uint32(n))
		if !ok || !w.Commit(seq) {
			b.Fatalf("packet %d refused", n)
		}
	}
}

// A replayed packet, refused by Check before any decryption.
func BenchmarkCheckDuplicate(b *testing.B) {
	w := mustNew(b, 1024, true)
	for i := uint64(1); i <= 1000; i++ {
		w.Commit(i)
	}
	b.ReportAllocs()
	for i := range uint64(b.N) {
		if _, ok := w.Check(uint32(1000 - i%512)); ok {
			b.Fatal("duplicate passed Check")
		}
	}
}

// A duplicate that passed Check (its twin was in flight on another worker)
// and is refused by Commit after decryption.
func BenchmarkCommitDuplicate(b *testing.B) {
	w := mustNew(b, 1024, true)
	for i := uint64(1); i <= 1000; i++ {
		w.Commit(i)
	}
	b.ReportAllocs()
	for i := range uint64(b.N) {
		if w.Commit(1000 - i%512) {
			b.Fatal("duplicate committed")
		}
	}
}

// Eight workers share one SA: each takes the next batch of 16 sequence
// numbers (one RX batch) and runs Check and Commit on them, so the window's
// top and the current slot bounce between cores. The accepted metric is the
// share of packets accepted; the rest arrived too late for the window.
func BenchmarkCheckCommitContended(b *testing.B) {
	const batch = 16
	w := mustNew(b, 1024, true)
	var next, accepted atomic.Uint64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var n, end uint64
		var mine uint64
		for pb.Next() {
			if n == end {
				end = next.Add(batch) + 1
				n = end - batch
			}
			if seq, ok := w.Check(uint32(n)); ok && w.Commit(seq) {
				mine++
			}
			n++
		}
		accepted.Add(mine)
	})
	b.ReportMetric(float64(accepted.Load())/float64(b.N), "accepted/op")
}
