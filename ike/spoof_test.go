package ike

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// injectConn is a transport that delivers what the one it wraps receives
// and, beside it, datagrams a test injects: requests whose source address
// is spoofed.
type injectConn struct {
	transport.Conn
	rx chan transport.Packet
}

func newInjectConn(c transport.Conn) *injectConn {
	ic := &injectConn{Conn: c, rx: make(chan transport.Packet, 256)}
	go func() {
		for p := range c.Receive() {
			ic.rx <- p
		}
	}()
	return ic
}

func (c *injectConn) Receive() <-chan transport.Packet { return c.rx }

// inject delivers p unless the queue is full (as a socket buffer drops).
func (c *injectConn) inject(p transport.Packet) {
	select {
	case c.rx <- p:
	default:
	}
}

// spoofedInit builds one of the IKE_SA_INIT requests an off-path attacker
// sends from a peer's address, by kind: a KE of a group we did not choose,
// a proposal we do not take, a key share no group has, no nonce, and a
// well-formed request (a key exchange's worth, which only a cookie stops).
func spoofedInit(t testing.TB, kind int) []byte {
	t.Helper()
	var spi [8]byte
	rand.Read(spi[:])
	good := mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-x25519")
	ke := make([]byte, 32)
	rand.Read(ke)
	ps := message.Payloads{wireSA(good, nil, true), &message.KeyExchange{Group: iana.GroupCurve25519, Data: ke}, &message.Nonce{Data: newNonce()}}
	switch kind % 5 {
	case 0: // wrong group
		ps[1] = &message.KeyExchange{Group: iana.GroupECP256, Data: make([]byte, 64)}
	case 1: // no proposal chosen
		ps[0] = wireSA(mustProposals(t, message.ProtocolIKE, "aes256-sha384-modp3072"), nil, true)
	case 2: // bad key share: the all-zero X25519 point
		ps[1] = &message.KeyExchange{Group: iana.GroupCurve25519, Data: make([]byte, 32)}
	case 3: // no nonce
		ps = ps[:2]
	}
	m := message.Message{Header: message.Header{SPIi: binary.BigEndian.Uint64(spi[:]) | 1, Exchange: message.ExchangeIKESAInit, Flags: message.FlagInitiator}, Payloads: ps}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countLines counts the log lines at Info and above (a daemon's level).
func countLines(log string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if l != "" && !strings.Contains(l, "level=DEBUG") {
			n++
		}
	}
	return n
}

// TestSpoofedPeerFlood is issue 13's flood: an off-path attacker floods the
// responder with IKE_SA_INIT requests spoofed from the configured peer's
// address and port, most of them malformed (wrong group, no proposal, bad
// key share, no nonce) and some well-formed, while the real peer
// connects. The peer must connect within its first retransmission (the
// attacker must not spend its allowance: malformed requests cost nothing
// and are not charged, and over the limit the peer gets a COOKIE, which
// the attacker cannot return but the peer can), and the responder's log
// must stay at a few lines a second however many requests it refuses.
func TestSpoofedPeerFlood(t *testing.T) {
	const (
		rate     = 400 // spoofed requests a second
		floodFor = 1500 * time.Millisecond
		peerAt   = 500 * time.Millisecond // into the flood
	)
	var inj *injectConn
	logs := [2]*logBuffer{{}, {}}
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := startPairConns(t, ci, cr, addrI, addrR, nil, func(side int, c *Config) {
		// A retransmission after a second, as a real initiator waits.
		c.Retransmit = Retransmit{Timeout: time.Second, Tries: 3}
		c.Logger = slog.New(slog.NewTextHandler(logs[side], nil)) // Info, as a daemon logs
	}, func(side int, c transport.Conn) transport.Conn {
		if side == 1 {
			inj = newInjectConn(c)
			return inj
		}
		return c
	})
	_ = i
	iIKE, _ := i.conn.Ports()
	rIKE, _ := r.conn.Ports()
	from := netip.AddrPortFrom(addrI, iIKE) // the peer's own address and port
	to := netip.AddrPortFrom(addrR, rIKE)

	var reqs [][]byte
	for k := range 200 {
		reqs = append(reqs, spoofedInit(t, k))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	t0 := time.Now()
	var sent int
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			if d := time.Duration(n)*time.Second/rate - time.Since(t0); d > 0 {
				time.Sleep(d)
			}
			select {
			case <-stop:
				sent = n
				return
			default:
			}
			inj.inject(transport.Packet{Data: reqs[n%len(reqs)], Local: to, Remote: from})
		}
	}()
	time.Sleep(peerAt)
	start := time.Now()
	err := i.e.Initiate(ctx(t), "test")
	took := time.Since(start)
	if rest := floodFor - time.Since(t0); rest > 0 {
		time.Sleep(rest)
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(t0)
	st := r.e.Stats()
	t.Logf("%d spoofed requests in %v; the peer connected in %v after %d IKE_SA_INIT and %d IKE_AUTH requests; responder %+v",
		sent, elapsed.Round(time.Millisecond), took.Round(time.Millisecond), i.conn.sent("IKE_SA_INIT/req"), i.conn.sent("IKE_AUTH/req"), st)
	if err != nil {
		t.Fatalf("the peer did not connect during the flood: %v", err)
	}
	// Within its first retransmission: at most one resend of IKE_SA_INIT
	// (and a retry with a COOKIE), IKE_AUTH at most once resent.
	if took > 1500*time.Millisecond || i.conn.sent("IKE_SA_INIT/req") > 3 || i.conn.sent("IKE_AUTH/req") > 2 {
		t.Errorf("the peer needed %v, %d IKE_SA_INIT and %d IKE_AUTH requests", took, i.conn.sent("IKE_SA_INIT/req"), i.conn.sent("IKE_AUTH/req"))
	}
	if st.HalfOpen > uint64(DefaultHalfOpenPerPrefix) {
		t.Errorf("%d half-open SAs from one spoofed address (share %d)", st.HalfOpen, DefaultHalfOpenPerPrefix)
	}
	// The log: at most a few lines a second, whatever was refused.
	time.Sleep(1100 * time.Millisecond) // the last summary
	rl := logs[1].String()
	lines := countLines(rl)
	secs := int(elapsed/time.Second) + 2
	if bound := secs*(quietPerSecond+1) + 8; lines > bound {
		t.Errorf("the responder logged %d lines in about %d s (bound %d):\n%s", lines, secs, bound, head(rl, 40))
	}
	if !strings.Contains(rl, "similar messages suppressed") {
		t.Errorf("no summary of the suppressed lines:\n%s", head(rl, 40))
	}
}

func head(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	return strings.Join(l[:min(n, len(l))], "\n")
}

// TestPrefixSharesHalfOpen: an attacker who holds an IPv6 /64 receives at
// every address of it, so it can return cookies, and it can send from
// 2^64 addresses. Its half-open SAs are capped as one source's share, and
// a peer elsewhere still gets an answer; counting per /128 would let the
// /64 fill the whole table.
func TestPrefixSharesHalfOpen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix int
		want   int // half-open SAs the /64 may make at most
	}{
		{"default /64", 0, 2 * DefaultHalfOpenPerPrefix},
		{"configured /56", 56, 2 * DefaultHalfOpenPerPrefix},
		{"configured /128", 128, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local := netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), 500)
			_, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			cr.LocalAddr, cr.RemoteAddr = local.Addr(), netip.Addr{}
			mc := newMemConn()
			e, err := newEngine(Config{Connections: []Connection{cr}, Defence: Defence{SourcePrefixV6: tc.prefix, HalfOpenLimit: 1000}}, mc, NewMemInstaller())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { close(e.quit) })
			base := netip.MustParseAddr("2001:db8:1:2::").As16()
			for n := range 500 {
				a := base
				binary.BigEndian.PutUint64(a[8:], uint64(n)*0x9e3779b97f4a7c15|1)
				from := netip.AddrPortFrom(netip.AddrFrom16(a), 500)
				ni := newNonce()
				spi := uint64(n + 1)
				e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, nil), Local: local, Remote: from})
				for _, p := range mc.take() {
					m, err := message.Decode(p.Data)
					if err != nil {
						t.Fatal(err)
					}
					if c := m.Notify(message.NotifyCookie); c != nil {
						// The attacker receives at the address: it returns the cookie.
						e.receive(transport.Packet{Data: cookieRequest(t, spi, ni, c.Data), Local: local, Remote: from})
						mc.take()
					}
				}
			}
			if n := len(e.halfOpen); n > tc.want || (tc.prefix == 128 && n != tc.want) {
				t.Fatalf("%d half-open SAs from one /64 (want at most %d)", n, tc.want)
			}
			// A peer elsewhere is answered (after a cookie round: the
			// table is above the cookie threshold).
			peer := netip.AddrPortFrom(netip.MustParseAddr("2001:db8:9::9"), 500)
			ni := newNonce()
			e.receive(transport.Packet{Data: cookieRequest(t, 0x77, ni, nil), Local: local, Remote: peer})
			got := mc.take()
			if m, _ := message.Decode(got[0].Data); m != nil && m.SPIr == 0 {
				e.receive(transport.Packet{Data: cookieRequest(t, 0x77, ni, cookieOf(t, got, 0x77)), Local: local, Remote: peer})
				got = mc.take()
			}
			if m, err := message.Decode(got[0].Data); err != nil || m.SPIr == 0 {
				t.Fatalf("the peer elsewhere was not answered: %v %+v", err, m)
			}
			t.Logf("%d half-open; %+v", len(e.halfOpen), e.Stats())
		})
	}
}

// unauthSAs adds n responder IKE SAs in the state before IKE_AUTH, with
// keys and fragmentation, to e; each comes with its mirror image (the
// initiator's side, sharing the keys) to seal fragments with.
func unauthSAs(t testing.TB, e *Engine, n int) (resp, init []*ikeSA) {
	t.Helper()
	c := e.conns[0]
	sel, err := selectProposal(c.IKEProposals, []message.Proposal{c.IKEProposals[0].Wire(1, nil, true)}, true)
	if err != nil {
		t.Fatal(err)
	}
	for k := range n {
		sa := e.newSA(c, false, fuzzLocal, srcN(k))
		sa.spiI = uint64(k + 1)
		sa.sel, sa.ni, sa.nr = sel, newNonce(), newNonce()
		if err := sa.deriveKeys(make([]byte, 32)); err != nil {
			t.Fatal(err)
		}
		sa.fragment = true
		sa.peerMID = 1
		m := *sa
		m.initiator = true
		m.local, m.remote = sa.remote, sa.local
		resp, init = append(resp, sa), append(init, &m)
	}
	return resp, init
}

// heldReassembly sums what the engine's partial messages hold (the
// fragment buffers' capacities).
func heldReassembly(e *Engine) (total int) {
	for _, sa := range e.sas {
		if sa.frags == nil {
			continue
		}
		for _, r := range sa.frags.r {
			if r == nil {
				continue
			}
			for _, p := range r.parts {
				total += cap(p)
			}
		}
	}
	return total
}

// TestReassemblyBudget: IKE SAs that have not authenticated (their peer
// only did a key exchange) each send fragments of an IKE_AUTH that never
// completes. What they hold stays within the unauthenticated share of the
// global budget, 32 KiB each at most, and an established SA can still
// reassemble a large message.
func TestReassemblyBudget(t *testing.T) {
	const budget = 1 << 20
	_, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	e, err := newEngine(Config{Connections: []Connection{cr}, Defence: Defence{ReassemblyBudget: budget}}, newMemConn(), NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(e.quit) })
	resp, init := unauthSAs(t, e, 101)
	est, mirror := resp[100], init[100]
	resp, init = resp[:100], init[:100]
	est.state, mirror.state = StateEstablished, StateEstablished
	piece := make([]byte, 1000)
	for k := range resp {
		for f := uint16(1); f < 64; f++ {
			raw := sealFragment(t, init[k], 1, f, 64, message.PayloadVendor, piece)
			resp[k].openMessage(raw, mustDecode(t, raw), fragRequest)
		}
	}
	held := heldReassembly(e)
	st := e.FragmentStats()
	t.Logf("100 unauthenticated SAs hold %d octets of fragments (budget %d, %d fragments refused)", held, budget, st.Budget)
	if held > budget/2 {
		t.Fatalf("unauthenticated SAs hold %d octets, over half the budget of %d", held, budget)
	}
	for k, sa := range resp {
		if n := sa.reassemblyHeld(); n > DefaultUnauthReassemblyLimit {
			t.Fatalf("SA %d holds %d octets", k, n)
		}
	}
	if st.Budget == 0 {
		t.Fatal("no fragment was refused for the budget")
	}
	// The established SA has its half.
	msgs, err := mirror.encode(message.ExchangeInformational, false, 5, bigPayloads(60000))
	if err != nil {
		t.Fatal(err)
	}
	est.peerMID = 5
	ps, done := feed(t, est, fragRequest, msgs)
	if !done || len(ps) == 0 {
		t.Fatalf("the established SA's 60000-octet message did not reassemble under the budget (stats %+v)", e.FragmentStats())
	}
	for _, sa := range resp {
		sa.destroy()
	}
	if total, unauth := e.reasm.total, e.reasm.unauth; total != 0 || unauth != 0 {
		t.Fatalf("budget not given back: %d octets, %d unauthenticated", total, unauth)
	}
}

// TestPeerAddressFollowsOnlyBehindNAT: an authenticated request from
// another address moves the IKE SA there only when a NAT was detected in
// front of the peer and not in front of us (RFC 7296 §2.23); without one
// the SA stays where it is (a copy raced from elsewhere must not move it)
// and the response goes where the request came from (§2.11).
func TestPeerAddressFollowsOnlyBehindNAT(t *testing.T) {
	elsewhere := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.9"), 1234)
	for _, tc := range []struct {
		name               string
		natRemote, natHere bool
		follow             bool
	}{
		{"no NAT", false, false, false},
		{"peer behind NAT", true, false, true},
		{"both behind NAT", true, true, false},
		{"we behind NAT", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, sa, _ := establishedResponder(t)
			mc := e.conn.(*memConn)
			sa.natRemote, sa.natHere, sa.natLocal = tc.natRemote, tc.natHere, tc.natHere
			sa.peerMID = 2
			mirror := *sa
			mirror.initiator = true
			msgs, err := mirror.encode(message.ExchangeInformational, false, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			was := sa.remote
			e.receive(transport.Packet{Data: msgs[0], Local: fuzzLocal, Remote: elsewhere})
			got := mc.take()
			if len(got) != 1 || got[0].Remote != elsewhere {
				t.Fatalf("response: %+v, want one to %v", got, elsewhere)
			}
			if moved := sa.remote == elsewhere; moved != tc.follow {
				t.Fatalf("SA at %v (was %v): moved %v, want %v", sa.remote, was, moved, tc.follow)
			}
			if ign := e.Stats().AddressIgnored; (ign == 1) == tc.follow {
				t.Fatalf("AddressIgnored = %d", ign)
			}
		})
	}
}

// TestInitRequestSizeCapped: a half-open SA keeps its IKE_SA_INIT request
// until IKE_AUTH, so a request over maxInitRequestLen (padded with a large
// Vendor ID) is dropped as malformed before any state; one just under is
// answered.
func TestInitRequestSizeCapped(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{CookieThreshold: 1000}})
	small := initRequest(t)
	for _, tc := range []struct {
		pad    int
		answer bool
	}{{maxInitRequestLen - len(small) - 4, true}, {maxInitRequestLen - len(small) - 3, false}, {60000, false}} {
		req := initRequest(t, &message.VendorID{Data: make([]byte, tc.pad)})
		before := len(e.halfOpen)
		e.receive(transport.Packet{Data: req, Local: fuzzLocal, Remote: srcN(tc.pad % 250)})
		got := len(mc.take())
		if (got == 1) != tc.answer || (len(e.halfOpen) > before) != tc.answer {
			t.Fatalf("%d-octet request: %d answers, %d half-open; want answered %v", len(req), got, len(e.halfOpen), tc.answer)
		}
	}
	if st := e.Stats(); st.InitMalformed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLimitsOffForLoadGenerators: a negative InitRate (a load generator
// behind one address) turns the per-source half-open share off too.
func TestLimitsOffForLoadGenerators(t *testing.T) {
	e, mc := responderEngineConfig(t, Config{Defence: Defence{InitRate: -1, CookieThreshold: 1000}})
	for range 2 * DefaultHalfOpenPerPrefix {
		e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: srcN(1)})
	}
	if n, got := len(e.halfOpen), len(mc.take()); n != 2*DefaultHalfOpenPerPrefix || got != n {
		t.Fatalf("%d half-open, %d answers from one source with the limits off", n, got)
	}
}
