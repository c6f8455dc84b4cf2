package ike

import (
	"hash/maphash"
	"net/netip"
	"time"
)

// Defaults of the per-source IKE_SA_INIT limit.
const (
	defaultInitRate    = 10   // IKE_SA_INIT requests a second per source address
	defaultInitBurst   = 20   // and as many at once
	defaultLimiterSize = 4096 // table slots: 24 octets each, 96 KiB
)

// sourceLimiter limits, per source address, how many IKE_SA_INIT requests
// a second may cost a key exchange. Its memory is fixed whatever arrives:
// a table of slots, each a token bucket in GCRA form (the time at which
// the bucket is full again) tagged with the address it serves, found by a
// hash with a random seed, so nobody outside can aim addresses at one
// slot.
//
// An address that lands on a slot held by another one takes it over only
// if that bucket is full (its owner has been quiet); otherwise the two
// share the bucket. So a flood from many addresses can neither evict a
// busy source's account to give it a fresh burst, nor grow the table.
// Sharing can limit an innocent source that collides with a busy one; the
// limiter sits behind the cookie check, so under attack the busy sources
// are ones that receive at their address, and 4096 slots make a collision
// with any one of them unlikely.
//
// Not safe for concurrent use: the engine's loop owns it.
type sourceLimiter struct {
	seed     maphash.Seed
	base     time.Time
	interval int64 // ns of credit one request costs
	window   int64 // ns of credit a full bucket holds: burst requests
	slots    []limiterSlot
	mask     uint64
}

type limiterSlot struct {
	addr [16]byte
	full int64 // ns since base at which the bucket is full again
}

// newSourceLimiter returns a limiter of rate requests a second with bursts
// of burst, over size slots (rounded up to a power of two); nil if rate is
// not positive (no limit).
func newSourceLimiter(rate float64, burst, size int, now time.Time) *sourceLimiter {
	if rate <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	n := 1
	for n < size {
		n <<= 1
	}
	iv := int64(float64(time.Second) / rate)
	if iv < 1 {
		iv = 1
	}
	return &sourceLimiter{
		seed: maphash.MakeSeed(), base: now, interval: iv, window: iv * int64(burst),
		slots: make([]limiterSlot, n), mask: uint64(n - 1),
	}
}

// allow spends one request of addr's budget and reports whether there was
// one left.
func (l *sourceLimiter) allow(addr netip.Addr, now time.Time) bool {
	if l == nil {
		return true
	}
	a := addr.Unmap().As16()
	t := int64(now.Sub(l.base))
	s := &l.slots[l.slot(a)]
	if s.addr != a && s.full <= t {
		s.addr = a // the old owner's bucket is full: nothing to keep
	}
	// GCRA: the bucket holds t-(full-window) of credit; a request needs
	// interval of it.
	full := max(s.full, t)
	if full+l.interval-t > l.window {
		return false
	}
	s.full = full + l.interval
	return true
}

func (l *sourceLimiter) slot(a [16]byte) uint64 { return maphash.Bytes(l.seed, a[:]) & l.mask }
