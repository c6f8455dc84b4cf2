package ike

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Log lines an outsider can trigger. Whoever can send a datagram can make
// the responder refuse an IKE_SA_INIT, and whoever can do one key exchange
// at an address of its own can make an IKE_AUTH fail; from a spoofed or a
// /64 of addresses that is as many lines as datagrams. Every such line goes
// through one limiter, the engine's quietLog: at most quietPerSecond lines
// a second of all of them together (quietPerKind of one kind, so one flood
// cannot hide another), and once a second at most a summary of what was
// held back ("N similar messages suppressed", counted by kind). Lines that
// only an authenticated peer or the operator can cause are logged as they
// come.

// noisyKind is a kind of line an outsider can trigger; its name is what
// the summary counts it under.
type noisyKind uint8

const (
	noisyUnknownPeer noisyKind = iota
	noisyBadCookie
	noisyRateLimited
	noisyHalfOpenFull
	noisyNoProposal
	noisyWrongKE
	noisyHalfOpenExpired
	noisyBadInit // malformed IKE_SA_INIT content: bad KE data, ADDKE without INTERMEDIATE
	noisyInitAnswered
	noisyAuthFailed // IKE_AUTH of an unauthenticated peer refused
	noisyIntermediate
	noisyCritical // unsupported critical payload in a request
	noisyFloat
	noisyDropped // (Debug) a message or fragment dropped, a send that failed
	noisyResent  // (Debug) a retransmitted request answered again
	noisyKinds
)

var noisyNames = [noisyKinds]string{
	noisyUnknownPeer:     "unknown_peer",
	noisyBadCookie:       "bad_cookie",
	noisyRateLimited:     "rate_limited",
	noisyHalfOpenFull:    "half_open_full",
	noisyNoProposal:      "no_proposal",
	noisyWrongKE:         "wrong_ke_group",
	noisyHalfOpenExpired: "half_open_expired",
	noisyBadInit:         "bad_ike_sa_init",
	noisyInitAnswered:    "ike_sa_init_answered",
	noisyAuthFailed:      "ike_auth_failed",
	noisyIntermediate:    "ike_intermediate",
	noisyCritical:        "unsupported_critical",
	noisyFloat:           "peer_address",
	noisyDropped:         "dropped_message",
	noisyResent:          "resent_response",
}

const (
	quietPerSecond = 5 // lines a second, all kinds together
	quietPerKind   = 2 // of them, of one kind
	// maxLoggedLen bounds what a line quotes of a peer's input (its
	// proposals, its identity): a line must not grow with the datagram.
	maxLoggedLen = 256
)

// quietLog is the limiter. Callers ask allow first and build the line's
// arguments only when it says yes: a flood must not cost an allocation
// per datagram for lines nobody sees. Safe for concurrent use (admission
// and the loop both log).
type quietLog struct {
	mu      sync.Mutex
	log     *slog.Logger // for the summary
	window  time.Time
	n       int
	perKind [noisyKinds]int
	held    [noisyKinds]int // since the last summary
	summary *time.Timer     // armed while lines are held back
}

// allow reports whether a line of this kind may be logged now.
func (q *quietLog) allow(kind noisyKind) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if now := time.Now(); now.Sub(q.window) >= time.Second {
		q.window, q.n, q.perKind = now, 0, [noisyKinds]int{}
	}
	if q.n < quietPerSecond && q.perKind[kind] < quietPerKind {
		q.n++
		q.perKind[kind]++
		return true
	}
	q.held[kind]++
	if q.summary == nil && q.log != nil {
		q.summary = time.AfterFunc(time.Second, q.summarize)
	}
	return false
}

// summarize logs one line for everything held back since the last one.
func (q *quietLog) summarize() {
	q.mu.Lock()
	total := 0
	var attrs []any
	for k, n := range q.held {
		if n > 0 {
			total += n
			attrs = append(attrs, slog.Int(noisyNames[k], n))
		}
	}
	q.held = [noisyKinds]int{}
	q.summary = nil
	q.mu.Unlock()
	if total > 0 {
		q.log.Warn(fmt.Sprintf("%d similar messages suppressed", total), attrs...)
	}
}

// debugQuiet reports whether a Debug line an outsider can cause may be
// logged: only if Debug is on (else it would spend the limiter's budget
// for nothing), and then through the limiter.
func (e *Engine) debugQuiet(kind noisyKind) bool {
	return e.log.Enabled(context.Background(), slog.LevelDebug) && e.quiet.allow(kind)
}

// stop cancels a pending summary (the engine is closing).
func (q *quietLog) stop() {
	q.mu.Lock()
	if q.summary != nil {
		q.summary.Stop()
		q.summary = nil
	}
	q.mu.Unlock()
}

// clip bounds a string taken from a peer's message for a log line.
func clip(s string) string {
	if len(s) <= maxLoggedLen {
		return s
	}
	return fmt.Sprintf("%s… (%d octets)", s[:maxLoggedLen], len(s))
}
