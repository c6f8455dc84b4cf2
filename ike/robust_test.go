package ike

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// memConn is a transport that records what the engine sends.
type memConn struct {
	mu   sync.Mutex
	rx   chan transport.Packet
	sent []transport.Packet
}

func newMemConn() *memConn { return &memConn{rx: make(chan transport.Packet, 16)} }

func (m *memConn) Receive() <-chan transport.Packet { return m.rx }
func (m *memConn) Ports() (uint16, uint16)          { return 500, 4500 }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) Send(p transport.Packet) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, p)
	return nil
}

func (m *memConn) take() []transport.Packet {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sent
	m.sent = nil
	return s
}

var (
	fuzzLocal  = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 500)
	fuzzRemote = netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), 500)
)

// responderEngine builds an engine whose loop does not run: the test calls
// receive itself, so everything is deterministic.
func responderEngine(t testing.TB, limit int) (*Engine, *memConn) {
	return responderEngineConfig(t, Config{Defence: Defence{HalfOpenLimit: limit}})
}

// responderEngineConfig is responderEngine with more of the Config given.
func responderEngineConfig(t testing.TB, cfg Config) (*Engine, *memConn) {
	_, cr := pskPair(t, "aes128gcm16-prfsha256-x25519, aes256-sha256-modp2048", "aes128gcm16")
	cr.LocalAddr, cr.RemoteAddr = fuzzLocal.Addr(), netip.Addr{}
	mc := newMemConn()
	cfg.Connections = []Connection{cr}
	e, err := newEngine(cfg, mc, NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(e.quit) })
	return e, mc
}

// initRequest builds a valid IKE_SA_INIT request, with extra payloads.
func initRequest(t testing.TB, extra ...message.Payload) []byte {
	kex, err := crypto.NewKeyExchange(iana.GroupCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	defer kex.Destroy()
	var spi [8]byte
	rand.Read(spi[:])
	m := message.Message{
		Header: message.Header{SPIi: binary.BigEndian.Uint64(spi[:]), Exchange: message.ExchangeIKESAInit, Flags: message.FlagInitiator},
		Payloads: append(message.Payloads{
			wireSA(mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-x25519"), nil, true),
			&message.KeyExchange{Group: iana.GroupCurve25519, Data: kex.PublicKey()},
			&message.Nonce{Data: newNonce()},
		}, extra...),
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHalfOpenBounded(t *testing.T) {
	e, mc := responderEngine(t, 5)
	for range 20 {
		e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: fuzzRemote})
	}
	if n := len(e.halfOpen); n != 5 {
		t.Fatalf("%d half-open SAs, want the cap of 5", n)
	}
	if n := len(e.sas); n != 5 {
		t.Fatalf("%d SAs, want 5", n)
	}
	if n := len(mc.take()); n != 5 {
		t.Fatalf("%d responses, want 5 (the rest dropped)", n)
	}
	// A retransmitted request is answered from the cache and adds nothing.
	req := initRequest(t)
	e.receive(transport.Packet{Data: req, Local: fuzzLocal, Remote: fuzzRemote})
	if len(mc.take()) != 0 {
		t.Fatal("answered beyond the cap")
	}
	for _, sa := range e.sas {
		e.receive(transport.Packet{Data: sa.initReq, Local: fuzzLocal, Remote: fuzzRemote})
		if got := mc.take(); len(got) != 1 || string(got[0].Data) != string(sa.initResp) {
			t.Fatal("retransmitted IKE_SA_INIT not answered from the cache")
		}
		// Also once the SA has left the half-open table (IKE_AUTH done):
		// a late duplicate must not create a second SA.
		e.removeHalfOpen(sa)
		n := len(e.sas)
		e.receive(transport.Packet{Data: sa.initReq, Local: fuzzLocal, Remote: fuzzRemote})
		if got := mc.take(); len(got) != 1 || string(got[0].Data) != string(sa.initResp) || len(e.sas) != n {
			t.Fatal("late IKE_SA_INIT duplicate not answered from the cache")
		}
		break
	}
}

func TestHalfOpenExpires(t *testing.T) {
	_, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	cr.LocalAddr, cr.RemoteAddr = fuzzLocal.Addr(), netip.Addr{}
	mc := newMemConn()
	e, err := New(Config{Connections: []Connection{cr}, Defence: Defence{HalfOpenTimeout: 50 * time.Millisecond}}, mc, NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mc.rx <- transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: fuzzRemote}
	waitFor(t, "a half-open SA", func() bool { return e.HalfOpen() == 1 })
	waitFor(t, "the half-open SA to expire", func() bool { return e.HalfOpen() == 0 && len(e.List()) == 0 })
	if st := e.Stats(); st.HalfOpenExpired != 1 || st.HalfOpen != 0 || st.HalfOpenPeak != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnsupportedCriticalPayload(t *testing.T) {
	e, mc := responderEngine(t, 5)
	req := initRequest(t, &message.Unknown{PayloadType: 200, Critical: true, Data: []byte{1, 2, 3}})
	e.receive(transport.Packet{Data: req, Local: fuzzLocal, Remote: fuzzRemote})
	got := mc.take()
	if len(got) != 1 {
		t.Fatalf("%d answers", len(got))
	}
	m, err := message.Decode(got[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	n := m.Notify(message.NotifyUnsupportedCriticalPayload)
	if n == nil || len(n.Data) != 1 || n.Data[0] != 200 || len(e.sas) != 0 {
		t.Fatalf("answer %+v, %d SAs", m, len(e.sas))
	}
	// A non-critical unknown payload is skipped (RFC 7296 §2.5).
	e.receive(transport.Packet{Data: initRequest(t, &message.Unknown{PayloadType: 200, Data: []byte{1}}), Local: fuzzLocal, Remote: fuzzRemote})
	if len(e.sas) != 1 {
		t.Fatal("request with a non-critical unknown payload refused")
	}
}

// probeTask sends arbitrary payloads in an INFORMATIONAL request.
type probeTask struct {
	ps  []message.Payload
	got chan message.Payloads
}

func (*probeTask) exchange() message.ExchangeType               { return message.ExchangeInformational }
func (p *probeTask) build(*ikeSA) ([]message.Payload, error)    { return p.ps, nil }
func (p *probeTask) process(_ *ikeSA, r message.Payloads) error { p.got <- r; return nil }

func TestUnsupportedCriticalPayloadEncrypted(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, _ := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	p := &probeTask{ps: []message.Payload{&message.Unknown{PayloadType: 201, Critical: true}}, got: make(chan message.Payloads, 1)}
	i.e.do(ctx(t), func() {
		for _, sa := range i.e.sas {
			sa.enqueue(p)
		}
	})
	select {
	case r := <-p.got:
		if n := r.Notify(message.NotifyUnsupportedCriticalPayload); n == nil || len(n.Data) != 1 || n.Data[0] != 201 {
			t.Fatalf("answer %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	// The IKE SA is still usable: message IDs stayed in step.
	if err := i.e.ping(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
}

// FuzzResponder feeds datagrams to a responder engine: it must never
// panic, and its state must stay within the half-open cap whatever
// arrives. Each input also goes in a second time addressed to an existing
// SA, to reach the encrypted-message paths.
func FuzzResponder(f *testing.F) {
	f.Add(initRequest(f))
	f.Add(initRequest(f, &message.Unknown{PayloadType: 99, Critical: true}))
	f.Add([]byte{})
	f.Add(make([]byte, 28))
	const limit = 4
	e, mc := responderEngine(f, limit)
	f.Fuzz(func(t *testing.T, data []byte) {
		e.receive(transport.Packet{Data: data, Local: fuzzLocal, Remote: fuzzRemote})
		if len(data) >= message.HeaderLen {
			for _, sa := range e.sas {
				d := append([]byte(nil), data...)
				binary.BigEndian.PutUint64(d[0:], sa.spiI)
				binary.BigEndian.PutUint64(d[8:], sa.spiR)
				e.receive(transport.Packet{Data: d, Local: fuzzLocal, Remote: fuzzRemote})
				break
			}
		}
		mc.take()
		if len(e.halfOpen) > limit || len(e.sas) > limit {
			t.Fatalf("%d half-open, %d SAs: above the cap of %d", len(e.halfOpen), len(e.sas), limit)
		}
	})
}
