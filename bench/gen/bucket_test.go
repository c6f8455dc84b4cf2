package gen

import (
	"math"
	"testing"
	"time"
)

func TestBucketRate(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		batch int
		step  time.Duration // fake clock tick between Take calls
		jit   time.Duration // extra every 7th tick: an oversleeping sender
	}{
		{1000, 64, 100 * time.Microsecond, 0},
		{1e6, 64, 10 * time.Microsecond, 0},
		{1e6, 64, 50 * time.Microsecond, 900 * time.Microsecond},
		{14.88e6, 256, 7 * time.Microsecond, 0},
		{10, 64, time.Millisecond, 0},
		{250e3, 1, 3 * time.Microsecond, 0},
	} {
		start := time.Unix(1000, 0)
		b := NewBucket(tc.rate, tc.batch, start)
		now := start
		total := 0
		const span = 2 * time.Second
		for i := 0; now.Sub(start) < span; i++ {
			now = now.Add(tc.step)
			if i%7 == 6 {
				now = now.Add(tc.jit)
			}
			// Like the sender: whole batches while the bucket has them.
			for {
				n := b.Take(now, tc.batch)
				if n < 0 || n > tc.batch {
					t.Fatalf("rate %v: Take gave %d of %d", tc.rate, n, tc.batch)
				}
				total += n
				if n < tc.batch {
					break
				}
			}
		}
		want := tc.rate * now.Sub(start).Seconds()
		// Exact within one bucket depth (what may sit unspent at the end).
		if math.Abs(float64(total)-want) > b.burst+1 {
			t.Errorf("rate %v step %v: %d packets in %v, want %.0f ±%.0f", tc.rate, tc.step, total, now.Sub(start), want, b.burst)
		}
		if want > 1e4 && math.Abs(float64(total)-want)/want > 0.01 {
			t.Errorf("rate %v: off by more than 1%%: %d vs %.0f", tc.rate, total, want)
		}
	}
}

func TestBucketWaitAndReturn(t *testing.T) {
	start := time.Unix(0, 0)
	b := NewBucket(1000, 64, start) // depth 64
	if w := b.Wait(start, 10); w != 10*time.Millisecond {
		t.Fatalf("Wait = %v, want 10ms", w)
	}
	now := start.Add(10 * time.Millisecond)
	if w := b.Wait(now, 10); w != 0 {
		t.Fatalf("Wait after 10ms = %v", w)
	}
	if n := b.Take(now, 64); n != 10 {
		t.Fatalf("Take = %d, want 10", n)
	}
	b.Return(4)
	if n := b.Take(now, 64); n != 4 {
		t.Fatalf("Take after Return = %d, want 4", n)
	}
	// The depth caps what an idle second can save up.
	now = now.Add(time.Second)
	if n := b.Take(now, 1000); n != 64 {
		t.Fatalf("Take after idle = %d, want the depth 64", n)
	}
	u := NewBucket(0, 64, start)
	if n := u.Take(start, 64); n != 64 || u.Wait(start, 64) != 0 {
		t.Fatal("unlimited bucket held packets back")
	}
}
