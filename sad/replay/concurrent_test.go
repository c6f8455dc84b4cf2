package replay

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// barrier holds n goroutines until all n have arrived, then lets them go;
// it can be used again for the next round.
type barrier struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
	left int
	gen  int
}

func newBarrier(n int) *barrier {
	b := &barrier{n: n, left: n}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *barrier) wait() {
	b.mu.Lock()
	defer b.mu.Unlock()
	gen := b.gen
	if b.left--; b.left == 0 {
		b.gen++
		b.left = b.n
		b.cond.Broadcast()
		return
	}
	for gen == b.gen {
		b.cond.Wait()
	}
}

// decrypt stands in for the AEAD between Check and Commit: a little work of
// varying length, and now and then a yield, so that goroutines interleave
// differently at every packet even on a machine with few cores.
func decrypt(x uint64) uint64 {
	for range x & 63 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	if x&15 == 0 {
		runtime.Gosched()
	}
	return x
}

// jitter puts f in near-ascending order: each element moves by at most a
// few places, so that workers fed from the same numbers walk over them
// almost in step and collide on the same numbers and the same ring slots.
func jitter(rng *rand.Rand, f []uint64, span int) {
	for i := range f {
		j := min(len(f)-1, i+rng.IntN(span))
		f[i], f[j] = f[j], f[i]
	}
}

// moreThreads runs the test with more OS threads than cores, so that the
// kernel also preempts workers at arbitrary instructions, inside Commit too.
func moreThreads(t *testing.T, n int) {
	old := runtime.GOMAXPROCS(n)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
}

// Several workers receive one SA's packets at once, with duplicates and
// reordering. The numbers advance in blocks of B <= W/2, all workers working
// on the same block and meeting at a barrier before the next, so that every
// number of the current block is fresh and inside the window whenever any
// copy of it is processed: each must be accepted by exactly one worker. The
// feed also replays numbers of the previous block (still inside the window,
// already accepted), which must all be refused.
func TestConcurrentCheckCommit(t *testing.T) {
	const workers = 8
	moreThreads(t, workers)
	for _, tc := range []struct {
		size   int
		esn    bool
		base   uint64 // top before the first block
		blocks int
	}{
		{64, false, 0, 2000},
		{1024, false, 0, 150},
		{64, true, 1<<32 - 1000*32, 2000}, // crosses 2^32 midway
		{1024, true, 5<<32 - 75*512, 150}, // crosses 5*2^32 midway
		{65536, true, 1<<32 - 32768, 3},   // large ring
	} {
		t.Run(fmt.Sprintf("size=%d/esn=%v", tc.size, tc.esn), func(t *testing.T) {
			w := mustNew(t, tc.size, tc.esn)
			if tc.base != 0 {
				jumpTo(w, tc.base)
			}
			B := w.Size() / 2
			n := tc.blocks * B
			accepted := make([]atomic.Int32, n) // by seq-base-1
			seqOf := func(i int) uint64 { return tc.base + 1 + uint64(i) }

			// feeds[g][k]: what worker g processes in block k. Every number
			// goes to one worker at least and to each other with odds 1/2.
			rng := rand.New(rand.NewPCG(uint64(tc.size), tc.base))
			feeds := make([][][]uint64, workers)
			for g := range feeds {
				feeds[g] = make([][]uint64, tc.blocks)
			}
			for k := range tc.blocks {
				for i := k * B; i < (k+1)*B; i++ {
					owner := rng.IntN(workers)
					for g := range workers {
						if g == owner || rng.IntN(2) == 0 {
							feeds[g][k] = append(feeds[g][k], seqOf(i))
						}
					}
				}
				for g := range workers {
					f := feeds[g][k]
					if k > 0 {
						// Replays from the previous block, spread through it.
						for range B / 8 {
							f = append(f, seqOf((k-1)*B+rng.IntN(B)))
							i := rng.IntN(len(f))
							f[i], f[len(f)-1] = f[len(f)-1], f[i]
						}
					}
					jitter(rng, f, 8)
					feeds[g][k] = f
				}
			}

			var (
				wg        sync.WaitGroup
				bar       = newBarrier(workers)
				badInfer  atomic.Int64
				lastInfer atomic.Uint64
			)
			for g := range workers {
				wg.Go(func() {
					for k := range tc.blocks {
						for _, want := range feeds[g][k] {
							seq, ok := w.Check(uint32(want))
							if seq != want {
								badInfer.Add(1)
								lastInfer.Store(want)
								continue
							}
							if !ok {
								continue
							}
							decrypt(seq)
							if w.Commit(seq) {
								accepted[seq-tc.base-1].Add(1)
							}
						}
						bar.wait()
					}
				})
			}
			wg.Wait()

			if c := badInfer.Load(); c != 0 {
				t.Errorf("%d packets got a wrong sequence number from Check, e.g. %#x", c, lastInfer.Load())
			}
			bad := 0
			for i := range accepted {
				if c := accepted[i].Load(); c != 1 {
					if bad++; bad <= 10 {
						t.Errorf("seq %#x accepted %d times, want exactly once", seqOf(i), c)
					}
				}
			}
			if bad > 10 {
				t.Errorf("... %d numbers in all", bad)
			}
			if got, want := w.Top(), seqOf(n-1); got != want {
				t.Errorf("Top() = %#x, want %#x", got, want)
			}
		})
	}
}

// Workers commit a stream that jumps, often by about one ring span so that
// the block jumped to shares a slot with a block still inside the window,
// and reorders numbers across the jumps; slots are thus recycled while other
// workers set bits in them. Numbers may fairly be refused here (they fall out
// of the window), but none may be accepted twice, and the window must end at
// the highest number offered.
func TestConcurrentJumpsNeverAcceptTwice(t *testing.T) {
	const workers = 8
	moreThreads(t, workers)
	for _, size := range []int{64, 1024} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			w := mustNew(t, size, true)
			W, span := uint64(w.Size()), uint64(len(w.ring)*slotBits)
			rng := rand.New(rand.NewPCG(uint64(size), 7))
			const chunk = 64
			var stream []uint64
			next := uint64(1<<32 - 5000)
			jumpTo(w, next-1)
			for len(stream) < 80000 {
				switch rng.IntN(chunk) {
				case 0:
					next += span - W + rng.Uint64N(2*W)
				case 1:
					next += rng.Uint64N(8 * span)
				}
				stream = append(stream, next)
				next++
			}
			high := stream[len(stream)-1]
			seen := make(map[uint64]*atomic.Int32, len(stream))
			for _, s := range stream {
				seen[s] = new(atomic.Int32)
			}
			// Chunks of the stream, taken by all workers together; each
			// number goes to about 2/3 of them, in near order.
			nchunks := len(stream) / chunk
			feeds := make([][][]uint64, workers)
			for g := range feeds {
				feeds[g] = make([][]uint64, nchunks)
				for k := range nchunks {
					var f []uint64
					for i, s := range stream[k*chunk : (k+1)*chunk] {
						if (i+g)%3 != 0 {
							f = append(f, s)
						}
					}
					jitter(rng, f, 16)
					feeds[g][k] = f
				}
			}
			var (
				wg    sync.WaitGroup
				bar   = newBarrier(workers)
				total atomic.Int64
			)
			for g := range workers {
				wg.Go(func() {
					for k := range nchunks {
						for _, want := range feeds[g][k] {
							seq, ok := w.Check(uint32(want))
							if !ok || seq != want { // a wrong guess would fail the ICV
								continue
							}
							decrypt(seq)
							if w.Commit(seq) {
								seen[seq].Add(1)
								total.Add(1)
							}
						}
						bar.wait()
					}
				})
			}
			wg.Wait()
			for s, c := range seen {
				if c.Load() > 1 {
					t.Errorf("seq %#x accepted %d times", s, c.Load())
				}
			}
			if got := w.Top(); got != high {
				t.Errorf("Top() = %#x, want %#x", got, high)
			}
			t.Logf("%d of %d numbers accepted", total.Load(), len(stream))
			if total.Load() < int64(len(stream)/2) {
				t.Errorf("only %d of %d numbers accepted: the test does not exercise the window", total.Load(), len(stream))
			}
		})
	}
}
