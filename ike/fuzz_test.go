package ike

import (
	"encoding/binary"
	"testing"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// FuzzParseProposal checks that the strongSwan proposal parser never panics
// and that whatever it accepts prints back to text it parses to the same
// proposal.
func FuzzParseProposal(f *testing.F) {
	for _, s := range []string{"aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "aes256-sha256-modp2048", "chacha20poly1305-esn-noesn", "aes128-sha1", "-", "",
		"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none-ke2_ecp256", "ke7_none"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, ike bool) {
		proto := message.ProtocolESP
		if ike {
			proto = message.ProtocolIKE
		}
		p, err := ParseProposal(proto, s)
		if err != nil {
			return
		}
		q, err := ParseProposal(proto, p.String())
		if err != nil || q.String() != p.String() {
			t.Fatalf("%q -> %q -> %q (%v)", s, p.String(), q.String(), err)
		}
		_ = p.Wire(1, nil, true)
	})
}

// FuzzParseTrafficSelector checks the local_ts/remote_ts parser.
func FuzzParseTrafficSelector(f *testing.F) {
	for _, s := range []string{"198.18.1.0/24", "10.0.0.0/8[tcp/443]", "2001:db8::/32[udp/1-2]", "1.2.3.4[47]", "[", "]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTrafficSelector(s)
		if err != nil {
			return
		}
		w := ts.wire()
		if w.StartAddr.Compare(w.EndAddr) > 0 || w.StartPort > w.EndPort {
			t.Fatalf("%q: inverted range %+v", s, w)
		}
		if n := len(rangePrefixes(w.StartAddr, w.EndAddr)); n != 1 {
			t.Fatalf("%q: a prefix became %d prefixes", s, n)
		}
	})
}

// establishedResponder builds an engine (loop not running) with one
// established IKE SA on which the tests call the responder functions
// directly.
func establishedResponder(t testing.TB) (*Engine, *ikeSA, *MemInstaller) {
	t.Helper()
	_, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519, aes128gcm16")
	cr.MaxChildren = 4
	inst := NewMemInstaller()
	e, err := newEngine(Config{Connections: []Connection{cr}}, newMemConn(), inst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(e.quit) })
	sa := e.newSA(e.conns[0], false, fuzzLocal, fuzzRemote)
	sa.spiI = 0x0102030405060708
	sel, err := selectProposal(cr.IKEProposals, []message.Proposal{cr.IKEProposals[0].Wire(1, nil, true)}, true)
	if err != nil {
		t.Fatal(err)
	}
	sa.sel, sa.ni, sa.nr = sel, newNonce(), newNonce()
	if err := sa.deriveKeys(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	sa.remoteID = cr.Remote.ID
	sa.state = StateEstablished
	return e, sa, inst
}

// createChildSeeds are the payloads of valid CREATE_CHILD_SA requests: a
// new Child SA with PFS, the rekey of spi, and an IKE SA rekey.
func createChildSeeds(t testing.TB, spi uint32) [][]byte {
	esp := mustProposals(t, message.ProtocolESP, "aes128gcm16-x25519")
	ike := mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-x25519")
	kex, err := crypto.NewKeyExchange(iana.GroupCurve25519)
	if err != nil {
		t.Fatal(err)
	}
	ke := &message.KeyExchange{Group: iana.GroupCurve25519, Data: kex.PublicKey()}
	ts := []message.Payload{wireTSList(mustTS(t, "198.18.1.0/24"), false), wireTSList(mustTS(t, "198.18.2.0/24"), true)}
	reqs := [][]message.Payload{
		append([]message.Payload{wireSA(esp, []byte{0xc0, 0, 0, 1}, true), &message.Nonce{Data: newNonce()}, ke}, ts...),
		append([]message.Payload{&message.Notify{Protocol: message.ProtocolESP, SPI: binary.BigEndian.AppendUint32(nil, spi), NotifyType: message.NotifyRekeySA},
			wireSA(esp, []byte{0xc0, 0, 0, 2}, true), &message.Nonce{Data: newNonce()}, ke}, ts...),
		{wireSA(ike, []byte{1, 2, 3, 4, 5, 6, 7, 8}, true), &message.Nonce{Data: newNonce()}, ke},
	}
	var out [][]byte
	for _, ps := range reqs {
		b, first, err := message.AppendPayloads(nil, ps)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte{byte(first)}, b...))
	}
	return out
}

// FuzzCreateChild feeds CREATE_CHILD_SA request payloads (as they come out
// of an authenticated SK payload) to the responder: it must never panic,
// must answer every request, and must keep its Child SAs and IKE SAs
// within the configured bounds whatever an authenticated peer sends.
func FuzzCreateChild(f *testing.F) {
	e, sa, inst := establishedResponder(f)
	for _, s := range createChildSeeds(f, 0xc0000001) {
		f.Add(s)
	}
	f.Add([]byte{byte(message.PayloadNotify)})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ps, err := message.DecodePayloads(message.PayloadType(data[0]), data[1:])
		if err != nil {
			return
		}
		resp, after := respondCreateChild(sa, ps)
		if len(resp) == 0 {
			t.Fatal("request left unanswered")
		}
		if after != nil {
			after()
		}
		if next := sa.ikeSuccessor; next != nil {
			// Undo an IKE rekey so later inputs reach the Child SA paths.
			next.destroy()
			sa.ikeSuccessor = nil
		}
		installed := 0
		for _, c := range sa.children {
			if c.installed {
				installed++
			}
		}
		if len(sa.children) > 2*sa.conn.maxChildren() || len(e.sas) > 1 || len(inst.Inbound()) != installed {
			t.Fatalf("%d Child SAs (%d installed, %d inbound SAs), %d IKE SAs", len(sa.children), installed, len(inst.Inbound()), len(e.sas))
		}
	})
}

// TestCreateChildResponderSeeds checks that the fuzz seeds are what they
// claim: a new Child SA with PFS, its rekey, and an IKE SA rekey, each
// accepted with a single-proposal SA payload (so the fuzzer starts from the
// success paths).
func TestCreateChildResponderSeeds(t *testing.T) {
	_, sa, inst := establishedResponder(t)
	for i, s := range createChildSeeds(t, 0xc0000001) {
		ps, err := message.DecodePayloads(message.PayloadType(s[0]), s[1:])
		if err != nil {
			t.Fatal(err)
		}
		resp, after := respondCreateChild(sa, ps)
		if after != nil {
			after()
		}
		var got *message.SA
		for _, p := range resp {
			if p, ok := p.(*message.SA); ok {
				got = p
			}
			if n, ok := p.(*message.Notify); ok && n.NotifyType.IsError() {
				t.Fatalf("seed %d refused: %v", i, n.NotifyType)
			}
		}
		if got == nil || len(got.Proposals) != 1 {
			t.Fatalf("seed %d: response %v", i, resp)
		}
	}
	// The new Child SA (both halves, PFS), then its successor's inbound
	// half only: the responder waits for the peer's Delete of the old SA.
	if n, m := len(inst.Inbound()), len(inst.Outbound()); n != 2 || m != 1 {
		t.Fatalf("%d inbound and %d outbound SAs, want 2 and 1", n, m)
	}
	if sa.ikeSuccessor == nil || sa.ikeSuccessor.state != StateEstablished {
		t.Fatal("IKE rekey did not create the new IKE SA")
	}
}
