package ike

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocrypto "crypto"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/sad"
)

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lossyConn wraps a Conn and drops the packets drop selects; it counts
// what it sends by exchange and direction.
type lossyConn struct {
	transport.Conn
	mu    sync.Mutex
	drop  func(h message.Header, n int) bool // n: how many such messages were sent before
	count map[string]int                     // datagrams by kind
	msgs  map[string]int                     // messages by kind (fragments of one count once)
	// mangle, if set, may replace a datagram before it goes out; it runs
	// on the sending engine's loop goroutine.
	mangle func(h message.Header, data []byte) []byte
	// pathMTU, when set, drops datagrams over it (see Send); tooBig counts them.
	pathMTU atomic.Int32
	tooBig  atomic.Int32
	// keepalives counts the NAT-T keepalives sent through it.
	keepalives atomic.Int32
}

// SendKeepalive implements transport.KeepaliveSender: it counts, then
// sends through the wrapped Conn.
func (l *lossyConn) SendKeepalive(local, remote netip.AddrPort) error {
	l.keepalives.Add(1)
	if ks, ok := l.Conn.(transport.KeepaliveSender); ok {
		return ks.SendKeepalive(local, remote)
	}
	return nil
}

func msgKey(h message.Header) string {
	dir := "req"
	if h.IsResponse() {
		dir = "resp"
	}
	return h.Exchange.String() + "/" + dir
}

func (l *lossyConn) Send(p transport.Packet) error {
	if mtu := l.pathMTU.Load(); mtu > 0 {
		// A path of this MTU that drops IP fragments: a datagram whose IP
		// packet (IPv4 and UDP headers, the non-ESP marker on the NAT-T
		// port) would not fit never arrives.
		n := len(p.Data) + 28
		if _, natt := l.Conn.Ports(); p.Local.Port() == natt {
			n += 4
		}
		if n > int(mtu) {
			l.tooBig.Add(1)
			return nil
		}
	}
	h, err := message.DecodeHeader(p.Data)
	if err == nil {
		l.mu.Lock()
		k := msgKey(h)
		n := l.count[k]
		if h.NextPayload != message.PayloadSKF || len(p.Data) < message.HeaderLen+6 || p.Data[message.HeaderLen+5] == 1 && p.Data[message.HeaderLen+4] == 0 {
			// Messages, not datagrams: a fragmented message counts once,
			// at its fragment 1.
			l.msgs[k]++
		}
		l.count[k]++
		drop := l.drop != nil && l.drop(h, n)
		mangle := l.mangle
		l.mu.Unlock()
		if drop {
			return nil
		}
		if mangle != nil {
			p.Data = mangle(h, p.Data)
		}
	}
	return l.Conn.Send(p)
}

func (l *lossyConn) setDrop(f func(h message.Header, n int) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.drop = f
}

func (l *lossyConn) setMangle(f func(h message.Header, data []byte) []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mangle = f
}

// sent is the number of messages of kind k sent (a fragmented message
// counts once).
func (l *lossyConn) sent(k string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs[k]
}

// peer is one engine of a test pair.
type peer struct {
	e    *Engine
	inst *MemInstaller
	conn *lossyConn
	log  *logBuffer
	addr netip.Addr
}

var (
	addrI = netip.MustParseAddr("127.0.0.1")
	addrR = netip.MustParseAddr("127.0.0.2")
)

func mustProposals(t testing.TB, proto message.ProtocolID, s string) []Proposal {
	t.Helper()
	p, err := ParseProposals(proto, s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustTS(t testing.TB, ss ...string) []TrafficSelector {
	t.Helper()
	var out []TrafficSelector
	for _, s := range ss {
		ts, err := ParseTrafficSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ts)
	}
	return out
}

func mustID(t testing.TB, s string) Identity {
	id, err := ParseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pskPair returns initiator and responder connections with a PSK.
func pskPair(t testing.TB, ike, esp string) (Connection, Connection) {
	psk := []byte("test pre-shared key, long enough")
	ci := Connection{
		Name: "test", LocalAddr: addrI, RemoteAddr: addrR,
		Local:        AuthConfig{ID: mustID(t, "initiator.test"), PSK: append([]byte(nil), psk...)},
		Remote:       AuthConfig{ID: mustID(t, "responder.test"), PSK: append([]byte(nil), psk...)},
		IKEProposals: mustProposals(t, message.ProtocolIKE, ike),
		Children: []ChildConfig{{Name: "net", LocalTS: mustTS(t, "198.18.1.0/24"), RemoteTS: mustTS(t, "198.18.2.0/24"),
			ESPProposals: mustProposals(t, message.ProtocolESP, esp)}},
	}
	cr := Connection{
		Name: "test", LocalAddr: addrR, RemoteAddr: addrI,
		Local:        AuthConfig{ID: mustID(t, "responder.test"), PSK: append([]byte(nil), psk...)},
		Remote:       AuthConfig{ID: mustID(t, "initiator.test"), PSK: append([]byte(nil), psk...)},
		IKEProposals: mustProposals(t, message.ProtocolIKE, ike),
		Children: []ChildConfig{{Name: "net", LocalTS: mustTS(t, "198.18.2.0/24"), RemoteTS: mustTS(t, "198.18.1.0/24"),
			ESPProposals: mustProposals(t, message.ProtocolESP, esp)}},
	}
	return ci, cr
}

// upPair starts a pair, has the initiator bring the connection up and
// waits until each end holds one Child SA pair and nothing else.
func upPair(t *testing.T, ci, cr Connection) (*peer, *peer) {
	t.Helper()
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	return i, r
}

// startPair runs two engines over loopback UDP on free high ports.
func startPair(t testing.TB, ci, cr Connection) (*peer, *peer) {
	t.Helper()
	return startPairAt(t, ci, cr, addrI, addrR)
}

func startPairAt(t testing.TB, ci, cr Connection, addrI, addrR netip.Addr) (*peer, *peer) {
	t.Helper()
	return startPairWith(t, ci, cr, addrI, addrR, nil)
}

// startPairWith is startPairAt with the engines' installers wrapped by
// wrap (side 0 is the initiator); nil wraps nothing.
func startPairWith(t testing.TB, ci, cr Connection, addrI, addrR netip.Addr, wrap func(side int, m *MemInstaller) Installer) (*peer, *peer) {
	t.Helper()
	return startPairConfig(t, ci, cr, addrI, addrR, wrap, nil)
}

// startPairConfig is startPairWith with each engine's Config passed
// through tune (side 0 is the initiator) before the engine starts.
func startPairConfig(t testing.TB, ci, cr Connection, addrI, addrR netip.Addr, wrap func(side int, m *MemInstaller) Installer, tune func(side int, c *Config)) (*peer, *peer) {
	t.Helper()
	return startPairConns(t, ci, cr, addrI, addrR, wrap, tune, nil)
}

// startPairConns is startPairConfig with each engine's transport passed
// through wrapConn (side 0 is the initiator), if set.
func startPairConns(t testing.TB, ci, cr Connection, addrI, addrR netip.Addr, wrap func(side int, m *MemInstaller) Installer, tune func(side int, c *Config), wrapConn func(side int, c transport.Conn) transport.Conn) (*peer, *peer) {
	t.Helper()
	ui, err := transport.Listen(addrI, 0, 0)
	if err != nil {
		t.Skipf("cannot listen on %v: %v", addrI, err)
	}
	ur, err := transport.Listen(addrR, 0, 0)
	if err != nil {
		ui.Close()
		t.Skipf("cannot listen on %v (loopback alias): %v", addrR, err)
	}
	iIKE, iNATT := ui.Ports()
	rIKE, rNATT := ur.Ports()
	side := 0
	mk := func(u *transport.UDP, c Connection, rike, rnatt uint16, addr netip.Addr) *peer {
		var tc transport.Conn = u
		if wrapConn != nil {
			tc = wrapConn(side, u)
		}
		p := &peer{inst: NewMemInstaller(), conn: &lossyConn{Conn: tc, count: map[string]int{}, msgs: map[string]int{}}, log: &logBuffer{}, addr: addr}
		var conns []Connection
		if c.Name != "" {
			conns = append(conns, c)
		}
		var inst Installer = p.inst
		if wrap != nil {
			inst = wrap(side, p.inst)
		}
		cfg := Config{
			Connections: conns, RemoteIKEPort: rike, RemoteNATTPort: rnatt,
			Retransmit:          Retransmit{Timeout: 100 * time.Millisecond, Tries: 3},
			RekeyedInboundDelay: testRekeyedDelay,
			RekeyDeleteDelay:    testRekeyDeleteDelay,
			Logger:              slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		if tune != nil {
			tune(side, &cfg)
		}
		side++
		e, err := New(cfg, p.conn, inst)
		if err != nil {
			t.Fatal(err)
		}
		p.e = e
		t.Cleanup(func() {
			e.Close()
			u.Close()
			if t.Failed() {
				t.Logf("log of %v:\n%s", addr, p.log.String())
			}
		})
		return p
	}
	return mk(ui, ci, rIKE, rNATT, addrI), mk(ur, cr, iIKE, iNATT, addrR)
}

// testRekeyedDelay is the engines' RekeyedInboundDelay in tests: short,
// so a rekeyed SA's inbound half is gone soon after its Delete exchange.
var testRekeyedDelay = 20 * time.Millisecond

// testRekeyDeleteDelay is the engines' RekeyDeleteDelay in tests.
var testRekeyDeleteDelay = 5 * time.Millisecond

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// checkPairs asserts that each side's outbound SA is the other's inbound
// one: same SPI, same keys, crossed.
func checkPairs(t testing.TB, a, b *MemInstaller, want int) {
	t.Helper()
	for _, dir := range []struct {
		out, in *MemInstaller
	}{{a, b}, {b, a}} {
		outs, ins := dir.out.Outbound(), dir.in.Inbound()
		if len(outs) != want || len(ins) != want {
			t.Fatalf("got %d outbound and %d inbound SAs, want %d each", len(outs), len(ins), want)
		}
		for i := range outs {
			o, in := outs[i], ins[i]
			if o.SPI != in.SPI {
				t.Fatalf("outbound SPI %08x has no inbound twin (%08x)", o.SPI, in.SPI)
			}
			if !bytes.Equal(o.Key, in.Key) || !bytes.Equal(o.IntegKey, in.IntegKey) || len(o.Key) == 0 {
				t.Fatalf("SA %08x: keys differ between the ends", o.SPI)
			}
			if o.Suite != in.Suite || o.ESN != in.ESN || o.Mode != in.Mode {
				t.Fatalf("SA %08x: suite/esn/mode differ: %v/%v/%v vs %v/%v/%v", o.SPI, o.Suite, o.ESN, o.Mode, in.Suite, in.ESN, in.Mode)
			}
			if o.Local != in.Remote || o.Remote != in.Local {
				t.Fatalf("SA %08x: addresses not crossed: %v->%v vs %v->%v", o.SPI, o.Local, o.Remote, in.Local, in.Remote)
			}
			if o.Encap.SrcPort != in.Encap.DstPort || o.Encap.DstPort != in.Encap.SrcPort {
				t.Fatalf("SA %08x: UDP encapsulation ports not crossed: %+v vs %+v", o.SPI, o.Encap, in.Encap)
			}
		}
	}
}

// waitFor polls cond until it holds or the test times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testPKI is a CA and end-entity certificates for signature tests.
type testPKI struct {
	ca    *x509.Certificate
	caKey gocrypto.Signer
	store []*x509.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xdpsec test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &testPKI{ca: ca, caKey: key, store: []*x509.Certificate{ca}}
}

func (p *testPKI) issue(t testing.TB, name string, key gocrypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{name}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func genKey(t testing.TB, kind string) gocrypto.Signer {
	t.Helper()
	var k gocrypto.Signer
	var err error
	switch kind {
	case "ecdsa":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hasLine(log, substr string) bool { return strings.Contains(log, substr) }

var _ = sad.Inbound
