package ike

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
)

// Cookies (RFC 7296 §2.6). Under load the responder answers an
// IKE_SA_INIT request that carries no valid COOKIE notification with a
// reply holding only a COOKIE, keeping no state and computing no key
// exchange; an initiator that really receives at its address repeats the
// request with the cookie first, and only then costs us a Diffie-Hellman.
//
// Our cookie is the §2.6 construction with an HMAC in place of the bare
// hash:
//
//	cookie = version (1 octet) | HMAC-SHA-256(secret[version], SPIi | IPi | Ni)[:16]
//
// The initiator's port is deliberately left out: the cookie proves that the
// initiator receives what is sent to its address, and anyone who receives
// at an address receives at all of its ports, so the port adds no proof;
// including it would only make a retry fail when a NAT gives the retry a
// new mapping. SPIi and the address are fixed-size and come first, so the
// variable-length nonce cannot blur the fields.
const (
	cookieMACLen = 16
	cookieLen    = 1 + cookieMACLen
	// maxCookieLen is the largest COOKIE an initiator echoes (RFC 7296
	// §3.10.1: 1 to 64 octets).
	maxCookieLen = 64
	// defaultCookieSecretLifetime is how long one secret makes cookies.
	// Cookies live for seconds (one round trip), so minutes are plenty;
	// short-lived secrets bound what an attacker learns from any one.
	defaultCookieSecretLifetime = 2 * time.Minute
)

// cookieSecret is one generation of the cookie key.
type cookieSecret struct {
	key     [32]byte
	version byte
	born    time.Time
	mac     hash.Hash // HMAC keyed with key, reused (Reset) for every cookie
	valid   bool
}

// cookieJar makes and checks cookies. The current secret makes them; the
// previous one, replaced less than one lifetime ago, still verifies them,
// so a cookie handed out just before a rotation stays good for its retry.
// Safe for concurrent use: admission asks for cookies, and so does the
// loop for sources over their limit.
type cookieJar struct {
	mu        sync.Mutex
	lifetime  time.Duration
	cur, prev cookieSecret
	sum       []byte // scratch for the MAC
}

func newCookieJar(lifetime time.Duration, now time.Time) *cookieJar {
	if lifetime <= 0 {
		lifetime = defaultCookieSecretLifetime
	}
	var v [1]byte
	rand.Read(v[:])
	j := &cookieJar{lifetime: lifetime, sum: make([]byte, 0, sha256.Size)}
	j.cur = newCookieSecret(v[0], now)
	return j
}

func newCookieSecret(version byte, now time.Time) cookieSecret {
	s := cookieSecret{version: version, born: now, valid: true}
	rand.Read(s.key[:])
	s.mac = hmac.New(sha256.New, s.key[:])
	return s
}

// wipe forgets a secret. The HMAC state holds the key's pads; dropping
// it is the best Go allows.
func (s *cookieSecret) wipe() {
	crypto.Zero(s.key[:])
	s.mac = nil
	s.valid = false
}

// rotate moves to a new secret once the current one has served its
// lifetime. A jar idle for two lifetimes drops the old secret too.
func (j *cookieJar) rotate(now time.Time) {
	age := now.Sub(j.cur.born)
	if age < j.lifetime {
		return
	}
	j.prev.wipe()
	if age < 2*j.lifetime {
		j.prev = j.cur
	} else {
		j.cur.wipe()
	}
	// The version tells which secret made a cookie; it only has to differ
	// between the two secrets alive at once.
	j.cur = newCookieSecret(j.cur.version+1, now)
}

func (j *cookieJar) compute(s *cookieSecret, spiI uint64, ip netip.Addr, ni []byte) []byte {
	var fixed [8 + 16]byte
	binary.BigEndian.PutUint64(fixed[:8], spiI)
	a16 := ip.Unmap().As16()
	copy(fixed[8:], a16[:])
	s.mac.Reset()
	s.mac.Write(fixed[:])
	s.mac.Write(ni)
	j.sum = s.mac.Sum(j.sum[:0])
	return j.sum[:cookieMACLen]
}

// make returns a fresh cookie for the request (a new slice).
func (j *cookieJar) make(now time.Time, spiI uint64, ip netip.Addr, ni []byte) []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate(now)
	out := make([]byte, cookieLen)
	out[0] = j.cur.version
	copy(out[1:], j.compute(&j.cur, spiI, ip, ni))
	return out
}

// check reports whether cookie was made by us, within the last two secret
// lifetimes, for this SPIi, address and nonce. The MAC comparison takes
// the same time wherever the first difference is.
func (j *cookieJar) check(now time.Time, cookie []byte, spiI uint64, ip netip.Addr, ni []byte) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate(now)
	if len(cookie) != cookieLen {
		return false
	}
	var s *cookieSecret
	switch {
	case j.cur.valid && cookie[0] == j.cur.version:
		s = &j.cur
	case j.prev.valid && cookie[0] == j.prev.version:
		s = &j.prev
	default:
		return false
	}
	return hmac.Equal(cookie[1:], j.compute(s, spiI, ip, ni))
}
