package ike

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// Flood defence. Every datagram passes the admission step (admit) before
// the engine's loop sees it. Admission runs on its own goroutine, beside
// the loop, as charon's receiver thread does: it decodes, drops IKE_SA_INIT
// requests no connection accepts, and, once the half-open IKE SAs reach
// the cookie threshold, answers requests without a valid COOKIE with a
// stateless COOKIE reply (RFC 7296 §2.6). So a flood of spoofed requests
// costs a decode, an HMAC and a send each, off the loop, and never a key
// exchange or a byte of state; the loop, which does the key exchanges,
// only sees requests from initiators that receive at their address. There
// the per-source limits (chargeInit: a rate and a share of the half-open
// table per source prefix, charged only for requests that would cost a key
// exchange) and the half-open cap bound what such initiators can make the
// responder spend. Below the threshold spoofed requests reach the loop
// too; a source over its limit then gets a COOKIE instead of silence, so
// spoofing a peer's address cannot lock the peer out.

// Defaults of the flood defence (Defence's zero values); the exported
// ones are what the configuration checks its ike: section against.
const (
	DefaultCookieThreshold = 32
	DefaultHalfOpenLimit   = 10000
	defaultHalfOpenTimeout = 30 * time.Second
	// admittedQueue is how many admitted messages may wait for the loop.
	admittedQueue = 256
	// maxCookieRounds bounds how often an initiator repeats IKE_SA_INIT
	// for a responder that keeps asking for cookies: a responder that
	// does not accept its own cookie (or an attacker who forges COOKIE
	// replies) must not keep an IKE SA retrying forever.
	maxCookieRounds = 3
	// maxInitRequestLen bounds an IKE_SA_INIT request we answer (charon's
	// max_packet is 10000 for any message): the half-open SA keeps it.
	maxInitRequestLen = 8 << 10
)

// FloodStats counts what the engine did about IKE_SA_INIT requests and
// half-open IKE SAs. Counters only grow; HalfOpen is the number now.
type FloodStats struct {
	InitRequests   uint64 // IKE_SA_INIT requests received (retransmissions included)
	InitMalformed  uint64 // IKE_SA_INIT requests dropped as malformed before any state
	UnknownPeer    uint64 // dropped: no connection accepts the source address
	CookiesSent    uint64 // stateless replies asking for a COOKIE (§2.6)
	CookiesValid   uint64 // requests whose COOKIE verified
	CookiesInvalid uint64 // requests whose COOKIE did not (forged, stale, replayed from elsewhere); each got a fresh one
	RateLimited    uint64 // dropped by the per-source limit (requests with a valid COOKIE: the source is real)
	// LimitCookies counts, of CookiesSent, the replies to requests without a
	// valid COOKIE from a source over its limit (rate or half-open share):
	// such a source may be spoofed, so it is asked to prove its address
	// rather than dropped, which would let a spoofer lock a peer out.
	LimitCookies uint64
	// PrefixFull counts requests refused because their source prefix held
	// its share of half-open IKE SAs (answered with a COOKIE, or dropped
	// when they carried one).
	PrefixFull uint64
	// AddressIgnored counts authenticated messages from another address
	// that did not move their IKE SA there: no NAT was detected, so the
	// peer's address has no reason to change (RFC 7296 §2.23).
	AddressIgnored  uint64
	HalfOpenDropped uint64 // dropped because the half-open table was full
	HalfOpenExpired uint64 // half-open IKE SAs that timed out before IKE_AUTH
	QueueDropped    uint64 // admitted messages dropped while the engine's loop was behind
	// TransportDropped counts datagrams the transport dropped while
	// admission was behind (if the transport counts them: Dropped()).
	TransportDropped uint64
	HalfOpen         uint64 // half-open responder IKE SAs now
	HalfOpenPeak     uint64 // the most there have been at once
	CookieRetries    uint64 // as initiator: IKE_SA_INIT repeated with the responder's COOKIE
	// TransportShed counts, of TransportDropped, the SA-starting requests
	// shed to keep half the transport's queue for established SAs.
	TransportShed uint64
	// UnknownSA counts messages for no IKE SA of ours (or with the wrong
	// other SPI); ForgedRetransmits apparent retransmissions of a
	// request that failed their integrity check, so got no resent response.
	UnknownSA, ForgedRetransmits uint64
}

// floodCounters are FloodStats as atomics: admission, the loop and Stats
// run on different goroutines.
type floodCounters struct {
	initRequests, initMalformed, unknownPeer            atomic.Uint64
	cookiesSent, cookiesValid, cookiesInvalid           atomic.Uint64
	rateLimited, halfOpenDropped, halfOpenExpired       atomic.Uint64
	queueDropped, halfOpen, halfOpenPeak, cookieRetries atomic.Uint64
	unknownSA, forgedRetransmits                        atomic.Uint64
	limitCookies, prefixFull, addressIgnored            atomic.Uint64
}

// Stats returns the flood-defence counters; safe from any goroutine and
// cheap, so a scrape under attack does not queue behind the flood.
func (e *Engine) Stats() FloodStats {
	c := &e.flood
	return FloodStats{
		InitRequests: c.initRequests.Load(), InitMalformed: c.initMalformed.Load(), UnknownPeer: c.unknownPeer.Load(),
		CookiesSent: c.cookiesSent.Load(), CookiesValid: c.cookiesValid.Load(), CookiesInvalid: c.cookiesInvalid.Load(),
		RateLimited: c.rateLimited.Load(), HalfOpenDropped: c.halfOpenDropped.Load(), HalfOpenExpired: c.halfOpenExpired.Load(),
		QueueDropped: c.queueDropped.Load(), HalfOpen: c.halfOpen.Load(), HalfOpenPeak: c.halfOpenPeak.Load(),
		CookieRetries: c.cookieRetries.Load(), TransportDropped: e.transportDropped(), TransportShed: e.transportShed(),
		UnknownSA: c.unknownSA.Load(), ForgedRetransmits: c.forgedRetransmits.Load(),
		LimitCookies: c.limitCookies.Load(), PrefixFull: c.prefixFull.Load(), AddressIgnored: c.addressIgnored.Load(),
	}
}

func (e *Engine) transportDropped() uint64 {
	if d, ok := e.conn.(interface{ Dropped() uint64 }); ok {
		return d.Dropped()
	}
	return 0
}

func (e *Engine) transportShed() uint64 {
	if d, ok := e.conn.(interface{ InitShed() uint64 }); ok {
		return d.InitShed()
	}
	return 0
}

// setHalfOpen publishes the half-open count (the loop calls it on every
// change) for admission's cookie decision and for Stats.
func (e *Engine) setHalfOpen(n int) {
	c := &e.flood
	c.halfOpen.Store(uint64(n))
	if uint64(n) > c.halfOpenPeak.Load() {
		c.halfOpenPeak.Store(uint64(n)) // only the loop writes: no race between load and store
	}
}

// inbound is an admitted datagram and its decoded message; startsSA
// marks an IKE_SA_INIT request counted in initsQueued, proven one whose
// COOKIE verified: its sender receives at its address.
type inbound struct {
	p        transport.Packet
	m        *message.Message
	startsSA bool
	proven   bool
}

// gate runs admission for every datagram from the transport and hands the
// admitted ones to the loop. When the loop is behind, an admitted message
// is dropped (and counted) rather than stalling admission: a stalled
// admission would stop the cookie replies, and the socket would then drop
// spoofed and genuine requests alike.
func (e *Engine) gate() {
	defer close(e.admitted)
	rx := e.conn.Receive()
	for {
		var p transport.Packet
		var ok bool
		select {
		case p, ok = <-rx:
			if !ok {
				return
			}
		case <-e.quit:
			return
		}
		in, ok := e.admit(p)
		if !ok {
			continue
		}
		if in.startsSA {
			// Counted before it is queued, so the next request's cookie
			// decision already sees it (see cookiesRequired).
			e.initsQueued.Add(1)
		}
		select {
		case e.admitted <- in:
		default:
			if in.startsSA {
				e.initsQueued.Add(-1)
			}
			e.flood.queueDropped.Add(1)
		}
	}
}

// admit decodes a datagram and decides whether the loop should see it.
// Requests that start an IKE SA are checked here; everything else passes
// (the loop matches it to an IKE SA or drops it).
func (e *Engine) admit(p transport.Packet) (inbound, bool) {
	h, err := message.DecodeHeader(p.Data)
	if err != nil {
		return inbound{}, false
	}
	startsSA := h.Exchange == message.ExchangeIKESAInit && !h.IsResponse() && h.SPIr == 0
	if startsSA {
		e.flood.initRequests.Add(1)
		if len(p.Data) > maxInitRequestLen {
			// A half-open SA keeps the request until IKE_AUTH signs it
			// (RFC 7296 §2.15); a real one is a few hundred octets.
			e.flood.initMalformed.Add(1)
			return inbound{}, false
		}
	}
	m, err := message.Decode(p.Data)
	if err != nil {
		var crit *message.UnsupportedCriticalPayloadError
		if startsSA && errors.As(err, &crit) {
			// RFC 7296 §2.5: refuse the request, naming the payload.
			// Stateless, like the cookie reply.
			e.replyInit(h.SPIi, p, notify(message.NotifyUnsupportedCriticalPayload, []byte{byte(crit.Type)}))
		} else if startsSA {
			e.flood.initMalformed.Add(1)
		}
		return inbound{}, false
	}
	if !startsSA {
		return inbound{p: p, m: m}, true
	}
	if m.MessageID != 0 || !m.IsInitiator() {
		e.flood.initMalformed.Add(1)
		return inbound{}, false
	}
	if !e.acceptsPeer(p.Local.Addr(), p.Remote.Addr()) {
		e.flood.unknownPeer.Add(1)
		if e.quiet.allow(noisyUnknownPeer) {
			e.log.Info("IKE_SA_INIT from unknown peer ignored", "peer", p.Remote)
		}
		return inbound{}, false
	}
	proven, ok := e.checkCookie(m, p)
	return inbound{p: p, m: m, startsSA: true, proven: proven}, ok
}

// acceptsPeer reports whether any connection takes IKE_SA_INIT from remote
// to local (candidates without the slice).
func (e *Engine) acceptsPeer(local, remote netip.Addr) bool {
	for _, c := range e.peerConns() {
		if c.acceptsLocal(local) && c.acceptsRemote(remote) {
			return true
		}
	}
	return false
}

// cookiesRequired says whether IKE_SA_INIT requests must carry a COOKIE
// now: always if so configured, else once the half-open SAs reach the
// threshold. Requests admitted but not yet handled by the loop count as
// half-open: each may become one, and without them a burst would be
// admitted whole (up to the queue's length) before the first of it shows
// in the half-open count.
func (e *Engine) cookiesRequired() bool {
	return e.cookiesAlways.Load() || e.flood.halfOpen.Load()+uint64(max(e.initsQueued.Load(), 0)) >= uint64(e.cookieThreshold.Load())
}

// checkCookie admits the request if no cookie is required or it carries a
// valid one; otherwise it sends the stateless COOKIE reply (RFC 7296 §2.6)
// and drops the request. A COOKIE is verified whenever a request carries
// one, required or not: a request whose cookie verified (proven) comes
// from a sender that receives at its address, which the loop's per-source
// limits count apart from the rest, so that requests spoofed from an
// address cannot use up what the address's real owner may spend. A stale
// cookie sent while none is required is ignored.
func (e *Engine) checkCookie(m *message.Message, p transport.Packet) (proven, ok bool) {
	required := e.cookiesRequired()
	n := m.Notify(message.NotifyCookie)
	if !required && n == nil {
		return false, true
	}
	nP, _ := m.Get(message.PayloadNonce).(*message.Nonce)
	if nP == nil {
		// The cookie binds Ni; without one the request is malformed
		// anyway, and under load it gets no answer.
		if required {
			e.flood.initMalformed.Add(1)
		}
		return false, !required
	}
	now := e.now()
	if n != nil {
		if e.cookies.check(now, n.Data, m.SPIi, p.Remote.Addr(), nP.Data) {
			e.flood.cookiesValid.Add(1)
			return true, true
		}
		if !required {
			return false, true
		}
		e.flood.cookiesInvalid.Add(1)
		if e.quiet.allow(noisyBadCookie) {
			e.log.Info("IKE_SA_INIT with an invalid or stale COOKIE, sending a fresh one", "peer", p.Remote)
		}
	}
	e.sendCookie(m.SPIi, p, nP.Data, now)
	return false, false
}

// sendCookie answers an IKE_SA_INIT request with a fresh COOKIE and
// nothing else.
func (e *Engine) sendCookie(spiI uint64, p transport.Packet, ni []byte, now time.Time) {
	e.replyInit(spiI, p, notify(message.NotifyCookie, e.cookies.make(now, spiI, p.Remote.Addr(), ni)))
	e.flood.cookiesSent.Add(1)
}

// replyInit sends a stateless IKE_SA_INIT response: no responder SPI, the
// payloads given (RFC 7296 §2.6, §2.21.1).
func (e *Engine) replyInit(spiI uint64, p transport.Packet, ps ...message.Payload) {
	out := message.Message{
		Header:   message.Header{SPIi: spiI, Exchange: message.ExchangeIKESAInit, Flags: message.FlagResponse},
		Payloads: ps,
	}
	if b, err := out.Encode(); err == nil {
		e.conn.Send(transport.Packet{Data: b, Local: p.Local, Remote: p.Remote})
	}
}
