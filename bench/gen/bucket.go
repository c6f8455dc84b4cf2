package gen

import "time"

// Bucket is a token bucket that grants packets a batch at a time. Time is
// passed in, so tests drive it with a fake clock and the sender reads the
// clock once per batch. A zero rate grants everything.
type Bucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// NewBucket returns a bucket for rate packets per second that starts
// empty at now. Its depth is at least one batch and at least 2 ms of
// traffic, so a sender that oversleeps by a timer tick keeps the tokens
// it earned meanwhile and the long-run rate stays exact.
func NewBucket(rate float64, batch int, now time.Time) *Bucket {
	return &Bucket{rate: rate, burst: max(float64(batch), rate*0.002), last: now}
}

// Rate is the bucket's rate in packets per second (0: unlimited).
func (b *Bucket) Rate() float64 { return b.rate }

func (b *Bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// Take grants up to want packets at now and returns how many.
func (b *Bucket) Take(now time.Time, want int) int {
	if b.rate <= 0 {
		return want
	}
	b.refill(now)
	n := min(want, int(b.tokens))
	b.tokens -= float64(n)
	return n
}

// Wait is how long from now until want packets (capped at the depth) can
// be granted; zero when they can now.
func (b *Bucket) Wait(now time.Time, want int) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	b.refill(now)
	need := min(float64(want), b.burst) - b.tokens
	if need <= 0 {
		return 0
	}
	return time.Duration(need / b.rate * float64(time.Second))
}

// Return gives back n granted packets that were not sent.
func (b *Bucket) Return(n int) {
	if b.rate > 0 {
		b.tokens = min(b.burst, b.tokens+float64(n))
	}
}
