package ike

import (
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/xdpsec/xdpsec/ike/transport"
)

// Defaults of the per-source IKE_SA_INIT limit.
const (
	defaultInitRate    = 10   // IKE_SA_INIT requests a second per source prefix
	defaultInitBurst   = 20   // and as many at once
	defaultLimiterSize = 4096 // table slots: 24 octets each, 96 KiB
)

// Defaults of what the per-source limits count as one source: an IPv4
// address, an IPv6 /64 (what one subscriber or one host is given: whoever
// holds a /64 can send from 2^64 addresses of it). DefaultHalfOpenPerPrefix
// is how many half-open IKE SAs one such source may hold, those it proved
// its address for (COOKIE) and the others each.
const (
	DefaultSourcePrefixV4    = 32
	DefaultSourcePrefixV6    = 64
	DefaultHalfOpenPerPrefix = 16
)

// sourcePrefix maps an address to the source the per-source limits count
// it under: its prefix of v4 or v6 bits (0: the whole address).
type sourcePrefix struct{ v4, v6 int }

func (s sourcePrefix) key(a netip.Addr) [16]byte {
	a = a.Unmap()
	bits := s.v6
	if a.Is4() {
		bits = s.v4
	}
	if bits > 0 {
		if p, err := a.Prefix(bits); err == nil {
			a = p.Addr()
		}
	}
	return a.As16()
}

// sourceLimiter limits, per source (an address, or the prefix it is in),
// how many IKE_SA_INIT requests
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
// Sharing can limit an innocent source that collides with a busy one;
// such a source is then asked for a cookie (see chargeInit), and requests
// that return one are counted in a second limiter that spoofed requests
// cannot reach, so a collision costs a round trip, not the connection.
//
// Not safe for concurrent use: the engine's loop owns it.
type sourceLimiter struct {
	seed     maphash.Seed
	base     time.Time
	interval int64 // ns of credit one request costs
	window   int64 // ns of credit a full bucket holds: burst requests
	slots    []limiterSlot
	mask     uint64
	prefix   sourcePrefix // what one source is; zero: an address
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
	a := l.prefix.key(addr)
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

// chargeInit decides whether an IKE_SA_INIT request that passed every
// check may now cost a key exchange and a half-open SA, and charges its
// source if so. Requests are counted in two accounts per source: those
// with a valid COOKIE (proven: the sender receives at the address) and
// the rest. A source over its limit in the second account may well be a
// spoofer using a peer's address; dropping its requests silently would
// lock the peer out, so each gets a COOKIE reply instead (RFC 7296 §2.6):
// the real peer returns it and is counted in the first account, which a
// blind spoofer cannot touch. Over the limit in the first account the
// source has proved itself and is only dropped.
func (e *Engine) chargeInit(spiI uint64, p transport.Packet, proven bool, ni []byte) bool {
	now := e.now()
	addr := p.Remote.Addr()
	held := e.hoPrefix[e.prefix.key(addr)][b2i(proven)]
	full := int(held) >= e.halfOpenPer
	limiter := e.limiter
	if proven {
		limiter = e.provenLimiter
	}
	if !full && limiter.allow(addr, now) {
		return true
	}
	if full {
		e.flood.prefixFull.Add(1)
	}
	if proven {
		e.flood.rateLimited.Add(1)
		if e.quiet.allow(noisyRateLimited) {
			e.log.Warn("IKE_SA_INIT limit of the source reached, dropping", "peer", p.Remote, "half_open", held)
		}
		return false
	}
	e.flood.limitCookies.Add(1)
	if e.quiet.allow(noisyRateLimited) {
		e.log.Info("IKE_SA_INIT limit of the source reached, asking for a COOKIE", "peer", p.Remote, "half_open", held)
	}
	e.sendCookie(spiI, p, ni, now)
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
