package ike

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// cookieRequest builds an IKE_SA_INIT request with the given SPIi and
// nonce, with cookie (if any) as the first payload as RFC 7296 §2.6 asks.
func cookieRequest(t testing.TB, spi uint64, ni, cookie []byte) []byte {
	t.Helper()
	kex, err := crypto.NewKeyExchange(iana.GroupCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	defer kex.Destroy()
	var ps message.Payloads
	if cookie != nil {
		ps = append(ps, notify(message.NotifyCookie, cookie))
	}
	ps = append(ps,
		wireSA(mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-x25519"), nil, true),
		&message.KeyExchange{Group: iana.GroupCurve25519, Data: kex.PublicKey()},
		&message.Nonce{Data: ni},
	)
	m := message.Message{Header: message.Header{SPIi: spi, Exchange: message.ExchangeIKESAInit, Flags: message.FlagInitiator}, Payloads: ps}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func srcN(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 500)
}

// cookieOf decodes a stateless COOKIE reply and returns the cookie; it
// fails the test for anything else.
func cookieOf(t testing.TB, got []transport.Packet, spi uint64) []byte {
	t.Helper()
	if len(got) != 1 {
		t.Fatalf("%d answers, want one COOKIE reply", len(got))
	}
	m, err := message.Decode(got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if !m.IsResponse() || m.SPIi != spi || m.SPIr != 0 || m.MessageID != 0 || len(m.Payloads) != 1 {
		t.Fatalf("COOKIE reply %+v: want a response to SPIi %016x with no SPIr and one payload", m.Header, spi)
	}
	n := m.Notify(message.NotifyCookie)
	if n == nil || len(n.Data) == 0 || len(n.Data) > maxCookieLen {
		t.Fatalf("reply carries no usable COOKIE: %+v", m.Payloads)
	}
	return n.Data
}

func TestCookieJar(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	j := newCookieJar(time.Minute, now)
	ip := netip.MustParseAddr("198.51.100.7")
	ni := bytes.Repeat([]byte{7}, 32)
	c := j.make(now, 42, ip, ni)
	if len(c) != cookieLen {
		t.Fatalf("cookie of %d octets", len(c))
	}
	if !j.check(now, c, 42, ip, ni) {
		t.Fatal("own cookie refused")
	}
	if !j.check(now, c, 42, netip.MustParseAddr("::ffff:198.51.100.7"), ni) {
		t.Fatal("the same address as IPv4-mapped IPv6 refused")
	}
	for name, ok := range map[string]bool{
		"other SPIi":    j.check(now, c, 43, ip, ni),
		"other address": j.check(now, c, 42, netip.MustParseAddr("198.51.100.8"), ni),
		"other nonce":   j.check(now, c, 42, ip, append(bytes.Clone(ni), 0)),
		"truncated":     j.check(now, c[:len(c)-1], 42, ip, ni),
		"empty":         j.check(now, nil, 42, ip, ni),
		"other version": j.check(now, append([]byte{c[0] + 7}, c[1:]...), 42, ip, ni),
	} {
		if ok {
			t.Errorf("cookie accepted for %s", name)
		}
	}
	for i := range c {
		f := bytes.Clone(c)
		f[i] ^= 0x10
		if j.check(now, f, 42, ip, ni) {
			t.Fatalf("cookie with octet %d flipped accepted", i)
		}
	}

	// Rotation: a cookie of the previous secret stays good one lifetime.
	later := now.Add(61 * time.Second)
	c2 := j.make(later, 42, ip, ni)
	if c2[0] == c[0] {
		t.Fatal("the secret's version did not change at rotation")
	}
	if !j.check(later, c, 42, ip, ni) || !j.check(later, c2, 42, ip, ni) {
		t.Fatal("cookies of the current and the previous secret must both verify")
	}
	if j.check(now.Add(125*time.Second), c, 42, ip, ni) {
		t.Fatal("a cookie two secrets old verified")
	}
	if !j.check(now.Add(125*time.Second), c2, 42, ip, ni) {
		t.Fatal("the previous secret's cookie refused right after the second rotation")
	}
	// A jar idle for long keeps no old secret at all.
	j2 := newCookieJar(time.Minute, now)
	c3 := j2.make(now, 1, ip, ni)
	if j2.check(now.Add(10*time.Minute), c3, 1, ip, ni) {
		t.Fatal("cookie verified after ten lifetimes")
	}
}

func TestSourceLimiter(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := newSourceLimiter(10, 3, 64, now)
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1")
	for l.slot(a.As16()) == l.slot(b.As16()) { // the seed is random: pick a b that does not share a's slot
		b = b.Next()
	}
	for i := range 3 {
		if !l.allow(a, now) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.allow(a, now) {
		t.Fatal("request beyond the burst allowed")
	}
	if !l.allow(b, now) {
		t.Fatal("another source refused")
	}
	if l.allow(a, now.Add(50*time.Millisecond)) {
		t.Fatal("allowed before a token came back (rate 10/s)")
	}
	if !l.allow(a, now.Add(100*time.Millisecond)) || l.allow(a, now.Add(100*time.Millisecond)) {
		t.Fatal("want exactly one request after 100 ms")
	}
	if newSourceLimiter(-1, 3, 64, now) != nil || !(*sourceLimiter)(nil).allow(a, now) {
		t.Fatal("a negative rate must mean no limit")
	}

	// Fixed memory: a flood from 100,000 addresses leaves the table as
	// it was, and cannot give a busy source a fresh burst by colliding
	// with it. One slot makes every address collide.
	one := newSourceLimiter(10, 3, 1, now)
	for range 3 {
		one.allow(a, now)
	}
	slots := len(one.slots)
	for i := range 100_000 {
		one.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if len(one.slots) != slots || slots != 1 {
		t.Fatalf("table grew to %d slots", len(one.slots))
	}
	if one.allow(a, now) {
		t.Fatal("a busy source got a fresh burst from colliding addresses")
	}
	// Once the bucket is full again, another address takes the slot over.
	if !one.allow(b, now.Add(time.Hour)) || one.slots[0].addr != b.As16() {
		t.Fatal("an idle slot was not taken over")
	}
	big := newSourceLimiter(10, 3, 5000, now)
	if len(big.slots) != 8192 {
		t.Fatalf("%d slots for 5000, want the next power of two", len(big.slots))
	}
}

// TestCookieThreshold drives a responder past its cookie threshold: below
// it requests create half-open SAs as before; at it a request without a
// cookie gets a reply with only a COOKIE and leaves no state; the retry
// with the cookie first is answered for real.
func TestCookieThreshold(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{CookieThreshold: 3, HalfOpenLimit: 100}})
	for i := range 3 {
		e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: srcN(i)})
	}
	if len(mc.take()) != 3 || len(e.halfOpen) != 3 {
		t.Fatalf("%d half-open below the threshold, want 3", len(e.halfOpen))
	}
	ni := newNonce()
	const spi = 0x1122334455667788
	from := srcN(10)
	e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, nil), Local: fuzzLocal, Remote: from})
	cookie := cookieOf(t, mc.take(), spi)
	if len(e.halfOpen) != 3 || len(e.sas) != 3 || len(e.byInit) != 3 {
		t.Fatalf("the COOKIE reply kept state: %d half-open, %d SAs", len(e.halfOpen), len(e.sas))
	}
	req := cookieRequest(t, spi, ni, cookie)
	e.receive(transport.Packet{Data: req, Local: fuzzLocal, Remote: from})
	got := mc.take()
	if len(got) != 1 || len(e.halfOpen) != 4 {
		t.Fatalf("retry with the cookie: %d answers, %d half-open", len(got), len(e.halfOpen))
	}
	m, err := message.Decode(got[0].Data)
	if err != nil || m.SPIr == 0 || m.Get(message.PayloadKE) == nil {
		t.Fatalf("retry with the cookie not answered with SAr1, KEr, Nr: %v %+v", err, m)
	}
	// The same cookie from another port of the same address verifies too
	// (the port is not bound), but a retransmission is not a new SA.
	e.receive(transport.Packet{Data: req, Local: fuzzLocal, Remote: from})
	if got := mc.take(); len(got) != 1 || len(e.halfOpen) != 4 {
		t.Fatal("retransmitted request with cookie not answered from the cache")
	}
	st := e.Stats()
	if st.CookiesSent != 1 || st.CookiesValid != 2 || st.CookiesInvalid != 0 || st.HalfOpen != 4 || st.HalfOpenPeak != 4 || st.InitRequests != 6 {
		t.Fatalf("stats %+v", st)
	}
	// Once the half-open SAs are gone, no cookie is asked for.
	for _, sa := range e.sas {
		sa.destroy()
	}
	if e.Stats().HalfOpen != 0 {
		t.Fatal("half-open gauge not back to zero")
	}
	e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: from})
	if got := mc.take(); len(got) != 1 || len(e.halfOpen) != 1 {
		t.Fatal("request below the threshold not answered for real")
	}
}

func TestCookieForgedAndStale(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{CookiesAlways: true, CookieSecretLifetime: time.Minute}})
	const spi = 0xabcdef
	ni := newNonce()
	from := srcN(1)
	e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, nil), Local: fuzzLocal, Remote: from})
	good := cookieOf(t, mc.take(), spi)

	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1
	for name, c := range map[string][]byte{
		"forged":      forged,
		"made up":     bytes.Repeat([]byte{0x55}, cookieLen),
		"too long":    bytes.Repeat([]byte{1}, maxCookieLen),
		"one octet":   {good[0]},
		"other nonce": nil, // good cookie, other Ni below
	} {
		n := ni
		if c == nil {
			c, n = good, newNonce()
		}
		e.receive(transport.Packet{Data: cookieRequest(t, spi, n, c), Local: fuzzLocal, Remote: from})
		if fresh := cookieOf(t, mc.take(), spi); !bytes.Equal(fresh, good) && name != "other nonce" {
			t.Errorf("%s: fresh cookie differs from the one for the same request", name)
		}
		if len(e.sas) != 0 {
			t.Fatalf("%s cookie created state", name)
		}
	}
	// A cookie for one address is worthless from another.
	e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, good), Local: fuzzLocal, Remote: srcN(2)})
	cookieOf(t, mc.take(), spi)
	if st := e.Stats(); st.CookiesInvalid != 6 || st.CookiesValid != 0 || st.CookiesSent != 7 {
		t.Fatalf("stats %+v", st)
	}
	// Two rotations later the cookie is stale: a fresh one comes back.
	e.cookies.rotate(time.Now().Add(61 * time.Second))
	e.cookies.rotate(time.Now().Add(122 * time.Second))
	e.cookies.cur.born = time.Now() // keep the clock of now() from rotating again
	e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, good), Local: fuzzLocal, Remote: from})
	fresh := cookieOf(t, mc.take(), spi)
	if bytes.Equal(fresh, good) || len(e.sas) != 0 {
		t.Fatal("stale cookie accepted")
	}
	e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, fresh), Local: fuzzLocal, Remote: from})
	if got := mc.take(); len(got) != 1 || len(e.halfOpen) != 1 {
		t.Fatal("the fresh cookie was not accepted")
	}
}

// TestInitRateLimit: a source over its limit gets a COOKIE, not silence;
// its retry with the cookie is counted in the account of sources that
// proved their address, which has a limit of its own; another source and
// retransmissions are not limited.
func TestInitRateLimit(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{InitRate: 0.001, InitBurst: 2, CookieThreshold: 1000}})
	type req struct {
		spi        uint64
		ni, cookie []byte
	}
	var limited []req
	for i := range 5 {
		r := req{spi: uint64(0x100 + i), ni: newNonce()}
		e.receive(transport.Packet{Data: cookieRequest(t, r.spi, r.ni, nil), Local: fuzzLocal, Remote: srcN(1)})
		got := mc.take()
		if i < 2 {
			if len(got) != 1 || len(e.halfOpen) != i+1 {
				t.Fatalf("request %d within the burst: %d answers, %d half-open", i, len(got), len(e.halfOpen))
			}
			continue
		}
		r.cookie = cookieOf(t, got, r.spi)
		limited = append(limited, r)
	}
	if len(e.halfOpen) != 2 {
		t.Fatalf("%d half-open from one source at burst 2", len(e.halfOpen))
	}
	// Each retry with its cookie is counted apart: two fit the proven
	// account's burst, the third is dropped.
	for i, r := range limited {
		e.receive(transport.Packet{Data: cookieRequest(t, r.spi, r.ni, r.cookie), Local: fuzzLocal, Remote: srcN(1)})
		got := mc.take()
		if want := min(i+1, 2) + 2; len(e.halfOpen) != want || (i < 2) != (len(got) == 1) {
			t.Fatalf("retry %d with the cookie: %d answers, %d half-open (want %d)", i, len(got), len(e.halfOpen), want)
		}
	}
	other := srcN(2)
	for e.limiter.slot(e.prefix.key(other.Addr())) == e.limiter.slot(e.prefix.key(srcN(1).Addr())) {
		other = netip.AddrPortFrom(other.Addr().Next(), 500) // one that does not share srcN(1)'s slot
	}
	e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: other})
	if n := len(mc.take()); n != 1 || len(e.halfOpen) != 5 {
		t.Fatal("another source was limited")
	}
	// Retransmissions are answered from the cache whatever the limit:
	// the first request's (no cookie in it, so the cookie counts below
	// do not depend on which SA the map gives first).
	for _, sa := range e.sas {
		if sa.remote == srcN(1) && binary.BigEndian.Uint64(sa.initReq) == 0x100 {
			e.receive(transport.Packet{Data: sa.initReq, Local: fuzzLocal, Remote: srcN(1)})
			if len(mc.take()) != 1 {
				t.Fatal("retransmission rate limited")
			}
			break
		}
	}
	if st := e.Stats(); st.LimitCookies != 3 || st.CookiesSent != 3 || st.CookiesValid != 3 || st.RateLimited != 1 || st.HalfOpen != 5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHalfOpenCapCounted(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{HalfOpenLimit: 4, CookieThreshold: 1000}})
	for i := range 10 {
		e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: srcN(i)})
	}
	mc.take()
	if st := e.Stats(); st.HalfOpen != 4 || st.HalfOpenDropped != 6 || st.HalfOpenPeak != 4 {
		t.Fatalf("stats %+v", st)
	}
}

// TestInitRestartReplacesHalfOpen: an initiator that starts over with the
// same SPIi (say, its retransmission got a COOKIE reply and it retried with
// the cookie) replaces its half-open SA instead of being ignored until the
// old one times out.
func TestInitRestartReplacesHalfOpen(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{CookieThreshold: 1000}})
	const spi = 0x77
	e.receive(transport.Packet{Data: cookieRequest(t, spi, newNonce(), nil), Local: fuzzLocal, Remote: srcN(1)})
	first := mc.take()
	e.receive(transport.Packet{Data: cookieRequest(t, spi, newNonce(), nil), Local: fuzzLocal, Remote: srcN(1)})
	second := mc.take()
	if len(first) != 1 || len(second) != 1 || bytes.Equal(first[0].Data, second[0].Data) || len(e.sas) != 1 || len(e.halfOpen) != 1 {
		t.Fatalf("restart: %d SAs, %d half-open", len(e.sas), len(e.halfOpen))
	}
}

// TestCookieExchange runs both roles: our initiator against our responder
// demanding cookies, directly and combined with INVALID_KE_PAYLOAD (the
// short exchange of RFC 7296 §2.6.1: the cookie stays valid across the
// retry with the other group because it binds SPIi, Ni and the address).
func TestCookieExchange(t *testing.T) {
	for _, tc := range []struct {
		name       string
		iProp      string
		rProp      string
		wantInits  int
		wantValid  uint64
		wantGroupS string
	}{
		{"cookie", "aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-x25519", 2, 1, "x25519"},
		{"cookie+invalid-ke", "aes128gcm16-prfsha256-x25519-ecp256", "aes128gcm16-prfsha256-ecp256", 3, 2, "ecp256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := pskPair(t, tc.iProp, "aes128gcm16")
			cr.IKEProposals = mustProposals(t, message.ProtocolIKE, tc.rProp)
			i, r := startPairConfig(t, ci, cr, addrI, addrR, nil, func(side int, c *Config) {
				if side == 1 {
					c.CookiesAlways = true
				}
			})
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			if n := i.conn.sent("IKE_SA_INIT/req"); n != tc.wantInits {
				t.Fatalf("sent %d IKE_SA_INIT requests, want %d", n, tc.wantInits)
			}
			is, rs := i.e.Stats(), r.e.Stats()
			if is.CookieRetries != 1 || rs.CookiesSent != 1 || rs.CookiesValid != tc.wantValid || rs.CookiesInvalid != 0 {
				t.Fatalf("initiator %+v\nresponder %+v", is, rs)
			}
			if l := i.e.List(); len(l) != 1 || l[0].State != StateEstablished || !bytes.Contains([]byte(l[0].Proposal), []byte(tc.wantGroupS)) {
				t.Fatalf("List %+v", l)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			checkPairs(t, i.inst, r.inst, 1)
			if rs := r.e.Stats(); rs.HalfOpen != 0 {
				t.Fatalf("half-open after IKE_AUTH: %+v", rs)
			}
		})
	}
}

// TestCookieRoundsBounded: a responder (or an attacker forging replies)
// that answers every IKE_SA_INIT with a new COOKIE makes the initiator
// give up after maxCookieRounds retries, not loop.
func TestCookieRoundsBounded(t *testing.T) {
	ci, _ := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	mc := newMemConn()
	e, err := newEngine(Config{Connections: []Connection{ci}}, mc, NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(e.quit) })
	w := make(chan error, 1)
	sa, err := e.initiate("test", w)
	if err != nil {
		t.Fatal(err)
	}
	var ni []byte
	for round := 0; ; round++ {
		sent := mc.take()
		if len(sent) != 1 {
			if round == maxCookieRounds+1 && len(sent) == 0 {
				break
			}
			t.Fatalf("round %d: %d requests sent", round, len(sent))
		}
		m, err := message.Decode(sent[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.SPIi != sa.spiI {
			t.Fatal("SPIi changed across cookie retries")
		}
		n := m.Get(message.PayloadNonce).(*message.Nonce).Data
		if ni != nil && !bytes.Equal(n, ni) {
			t.Fatal("nonce changed across cookie retries")
		}
		ni = n
		want := fmt.Sprintf("cookie-%d", round)
		if round > 0 {
			if f, ok := m.Payloads[0].(*message.Notify); !ok || f.NotifyType != message.NotifyCookie || string(f.Data) != fmt.Sprintf("cookie-%d", round-1) {
				t.Fatalf("round %d: COOKIE not the first payload or not echoed: %+v", round, m.Payloads[0])
			}
		}
		reply := message.Message{Header: message.Header{SPIi: sa.spiI, Exchange: message.ExchangeIKESAInit, Flags: message.FlagResponse},
			Payloads: message.Payloads{notify(message.NotifyCookie, []byte(want))}}
		b, _ := reply.Encode()
		e.receive(transport.Packet{Data: b, Local: sent[0].Local, Remote: sent[0].Remote})
	}
	select {
	case err := <-w:
		if err == nil {
			t.Fatal("initiation succeeded")
		}
	default:
		t.Fatal("initiation did not fail")
	}
	if st := e.Stats(); st.CookieRetries != maxCookieRounds {
		t.Fatalf("stats %+v", st)
	}
}

// FuzzResponderCookies feeds datagrams to a responder that demands cookies
// from every IKE_SA_INIT: whatever arrives, it must never panic, never
// create an IKE SA (nobody outside knows the cookie secret), and answer
// a request only with a lone COOKIE or an error notification.
func FuzzResponderCookies(f *testing.F) {
	f.Add(initRequest(f))
	f.Add(cookieRequest(f, 1, newNonce(), bytes.Repeat([]byte{0xc0}, cookieLen)))
	f.Add(cookieRequest(f, 2, newNonce(), []byte{1}))
	e, mc := responderEngineConfig(f, Config{Defence: Defence{CookiesAlways: true, HalfOpenLimit: 4}})
	f.Fuzz(func(t *testing.T, data []byte) {
		e.receive(transport.Packet{Data: data, Local: fuzzLocal, Remote: fuzzRemote})
		for _, p := range mc.take() {
			m, err := message.Decode(p.Data)
			if err != nil || !m.IsResponse() || m.SPIr != 0 || len(m.Payloads) != 1 {
				t.Fatalf("answer %x is not a stateless notification (%v)", p.Data, err)
			}
			if n, ok := m.Payloads[0].(*message.Notify); !ok || (n.NotifyType != message.NotifyCookie && !n.NotifyType.IsError()) {
				t.Fatalf("answer carries %+v", m.Payloads[0])
			}
		}
		if len(e.sas) != 0 || len(e.halfOpen) != 0 {
			t.Fatalf("%d SAs created without a valid cookie", len(e.sas))
		}
	})
}

// BenchmarkAdmitSpoofed is what one spoofed IKE_SA_INIT costs the
// responder under load: decode, cookie MAC, COOKIE reply (to a transport
// that only records it). BenchmarkCookieMAC is the bare MAC beside it.
func BenchmarkAdmitSpoofed(b *testing.B) {
	e, mc := responderEngineConfig(b, Config{Defence: Defence{CookiesAlways: true}})
	req := initRequest(b)
	p := transport.Packet{Data: req, Local: fuzzLocal, Remote: fuzzRemote}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := e.admit(p); ok {
			b.Fatal("admitted without a cookie")
		}
		if i%1024 == 0 {
			mc.take()
		}
	}
}

func BenchmarkCookieMAC(b *testing.B) {
	j := newCookieJar(time.Minute, time.Now())
	ni := newNonce()
	ip := fuzzRemote.Addr()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		j.make(now, 42, ip, ni)
	}
}

// TestCookieThresholdCountsQueued: requests admitted but not yet handled
// by the loop count towards the threshold, so a burst cannot slip past
// it through the queue.
func TestCookieThresholdCountsQueued(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{CookieThreshold: 3}})
	e.initsQueued.Store(3)
	e.receive(transport.Packet{Data: cookieRequest(t, 9, newNonce(), nil), Local: fuzzLocal, Remote: srcN(1)})
	cookieOf(t, mc.take(), 9)
	e.initsQueued.Store(2)
	e.receive(transport.Packet{Data: cookieRequest(t, 10, newNonce(), nil), Local: fuzzLocal, Remote: srcN(1)})
	if got := mc.take(); len(got) != 1 || len(e.halfOpen) != 1 {
		t.Fatal("below the threshold with the queue counted, the request was not answered for real")
	}
}
