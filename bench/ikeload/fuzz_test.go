package ikeload

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

const (
	fuzzSPIi = 0x0102030405060708
	fuzzSPIr = 0x1112131415161718
)

// fuzzFixed is the profile and the initiator's key exchange every fuzz
// setup shares, made once: making them (two X25519 key generations and the
// proposal parsing) cost five times what the parsers under test do. The
// setups never own their key exchange (a worker reuses one, RFC 7296
// §2.12), so sharing it changes nothing they do.
var fuzzFixed = sync.OnceValues(func() (*profile, crypto.KeyExchange) {
	cfg := Config{Target: netip.MustParseAddrPort("192.0.2.1:500"), N: 1, C: 1, PSK: []byte("fuzz key")}
	d := cfg.withDefaults()
	p, err := d.profile()
	if err != nil {
		panic(err)
	}
	kex, err := crypto.NewKeyExchange(p.group)
	if err != nil {
		panic(err)
	}
	return p, kex
})

// fuzzSetups returns a setup waiting for the IKE_SA_INIT response and one
// waiting for the IKE_AUTH response, whose keys come from a fixed SKEYSEED
// so the committed corpus stays decryptable, plus the responder's outbound
// protector for those keys.
func fuzzSetups(t testing.TB) (initS, authS *setup, respOut crypto.Protector) {
	p, kex := fuzzFixed()
	var err error
	local, remote := netip.MustParseAddrPort("192.0.2.2:500"), netip.MustParseAddrPort("192.0.2.1:500")
	initS = &setup{p: p, kex: kex, local: local, remote: remote, spiI: fuzzSPIi}
	if _, err := initS.buildInit(); err != nil {
		t.Fatal(err)
	}
	authS = &setup{p: p, kex: kex, local: local, remote: remote, spiI: fuzzSPIi, spiR: fuzzSPIr,
		ni: bytes.Repeat([]byte{1}, 32), nr: bytes.Repeat([]byte{2}, 32), initReq: []byte("init request"), initResp: []byte("init response")}
	authS.suite = crypto.Suite{Encr: iana.EncrAESGCM16, KeyBits: 128, PRF: iana.PRFHMACSHA2_256}
	if authS.prf, err = crypto.NewPRF(authS.suite.PRF); err != nil {
		t.Fatal(err)
	}
	if authS.keys, err = crypto.ExpandIKEKeys(authS.suite, bytes.Repeat([]byte{3}, 32), authS.ni, authS.nr, fuzzSPIi, fuzzSPIr); err != nil {
		t.Fatal(err)
	}
	if authS.out, authS.in, err = authS.keys.Protectors(true); err != nil {
		t.Fatal(err)
	}
	if respOut, _, err = authS.keys.Protectors(false); err != nil {
		t.Fatal(err)
	}
	return initS, authS, respOut
}

// fuzzSeeds are well-formed responses: an IKE_SA_INIT response, one asking
// for a cookie, and an IKE_AUTH response sealed with the fixed keys.
func fuzzSeeds(t testing.TB) [][]byte {
	initS, authS, respOut := fuzzSetups(t)
	hdr := message.Header{SPIi: fuzzSPIi, SPIr: fuzzSPIr, Exchange: message.ExchangeIKESAInit, Flags: message.FlagResponse}
	pub := make([]byte, 32)
	pub[0] = 9 // the X25519 base point, a valid public value
	initResp := message.Message{Header: hdr, Payloads: message.Payloads{
		&message.SA{Proposals: []message.Proposal{initS.p.ike.Wire(1, nil, true)}},
		&message.KeyExchange{Group: iana.GroupCurve25519, Data: pub},
		&message.Nonce{Data: bytes.Repeat([]byte{7}, 32)},
		notify(message.NotifyNATDetectionSourceIP, message.NATDetectionHash(fuzzSPIi, fuzzSPIr, initS.remote)),
		notify(message.NotifyNATDetectionDestinationIP, make([]byte, 20)),
	}}
	a, err := initResp.Encode()
	if err != nil {
		t.Fatal(err)
	}
	cookie := message.Message{Header: message.Header{SPIi: fuzzSPIi, Exchange: message.ExchangeIKESAInit, Flags: message.FlagResponse},
		Payloads: message.Payloads{notify(message.NotifyCookie, bytes.Repeat([]byte{5}, 16))}}
	b, err := cookie.Encode()
	if err != nil {
		t.Fatal(err)
	}
	idr := &message.ID{Responder: true, IDType: iana.IDFQDN, Data: []byte("responder.ikeload.test")}
	espSPI := []byte{0xc0, 0, 0, 1}
	inner, first, err := message.AppendPayloads(nil, message.Payloads{
		idr,
		&message.Auth{Method: iana.AuthSharedKeyMIC, Data: bytes.Repeat([]byte{4}, 32)},
		&message.SA{Proposals: []message.Proposal{authS.p.esp.Wire(1, espSPI, false)}},
		tsPayload(false, netip.MustParsePrefix("100.64.0.0/32")),
		tsPayload(true, netip.MustParsePrefix("0.0.0.0/0")),
	})
	if err != nil {
		t.Fatal(err)
	}
	bodyLen := respOut.SealedLen(len(inner))
	m := message.Message{Header: message.Header{SPIi: fuzzSPIi, SPIr: fuzzSPIr, Exchange: message.ExchangeIKEAuth, Flags: message.FlagResponse, MessageID: 1},
		Payloads: message.Payloads{&message.Encrypted{NextPayload: first, Body: make([]byte, bodyLen)}}}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	prefix := enc[:len(enc)-bodyLen]
	c, err := respOut.Seal(append([]byte(nil), prefix...), prefix, inner)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{a, b, c}
}

// FuzzProcessResponse feeds arbitrary datagrams to both response parsers
// of a setup: neither may panic, and anything they accept must have left
// the setup in a consistent state.
func FuzzProcessResponse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		initS, authS, _ := fuzzSetups(t)
		defer initS.destroy()
		defer authS.destroy()
		switch err := initS.processInit(data); err {
		case nil:
			if initS.keys == nil || initS.spiR == 0 || len(initS.nr) < message.MinNonceLen {
				t.Fatalf("accepted IKE_SA_INIT response left the setup incomplete")
			}
		case errCookie:
			if len(initS.cookie) == 0 {
				t.Fatal("cookie round without a cookie")
			}
		}
		if err := authS.processAuth(data); err == nil && len(data) < message.HeaderLen {
			t.Fatal("accepted a datagram shorter than the IKE header")
		}
	})
}

// TestFuzzSeedsParse checks the seeds do what they are for: the IKE_SA_INIT
// seed is accepted, the cookie seed asks for a cookie, and the IKE_AUTH
// seed gets as far as the AUTH check (its AUTH is junk).
func TestFuzzSeedsParse(t *testing.T) {
	seeds := fuzzSeeds(t)
	initS, authS, _ := fuzzSetups(t)
	if err := initS.processInit(seeds[0]); err != nil {
		t.Fatalf("init seed: %v", err)
	}
	if !initS.natt {
		t.Error("init seed fakes a NAT, not detected")
	}
	initS2, _, _ := fuzzSetups(t)
	if err := initS2.processInit(seeds[1]); err != errCookie {
		t.Fatalf("cookie seed: %v", err)
	}
	// The same cookie again answers a retransmission: ignored, not fatal.
	if err := initS2.processInit(seeds[1]); err != errIgnore {
		t.Fatalf("repeated cookie: %v, want errIgnore", err)
	}
	// RFC 7296 §2.6: the repeated request starts with the COOKIE notify.
	again, err := initS2.buildInit()
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Decode(again)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := m.Payloads[0].(*message.Notify); !ok || n.NotifyType != message.NotifyCookie || !bytes.Equal(n.Data, bytes.Repeat([]byte{5}, 16)) {
		t.Fatalf("first payload of the repeated request: %#v", m.Payloads[0])
	}
	if err := authS.processAuth(seeds[2]); err == nil || err.(*setupError).cause != CausePeerAuth {
		t.Fatalf("auth seed: %v, want %q", err, CausePeerAuth)
	}
	if os.Getenv("IKELOAD_WRITE_CORPUS") != "" {
		dir := filepath.Join("testdata", "fuzz", "FuzzProcessResponse")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range append(seeds, seeds[0][:message.HeaderLen], []byte{}) {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
