package crypto

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
)

var fuzzProtectors = sync.OnceValue(func() []Protector {
	var ps []Protector
	for _, c := range testSuites {
		enc, integ := testKeys(c.s)
		p, err := NewProtector(c.s, enc, integ)
		if err != nil {
			panic(err)
		}
		ps = append(ps, p)
	}
	return ps
})

// FuzzOpen feeds arbitrary prefixes and bodies to every suite's Open: it
// must never panic and never accept a body it did not seal (the keys are
// fixed, but a forged tag is out of reach). The same input, sealed as
// plaintext, must open to itself.
func FuzzOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, suite uint8, prefix, body []byte) {
		ps := fuzzProtectors()
		p := ps[int(suite)%len(ps)]
		if pt, err := p.Open(nil, prefix, body); err == nil {
			if p.SealedLen(len(pt)) > len(body) {
				t.Fatalf("opened %d octets of plaintext from a %d-octet body", len(pt), len(body))
			}
		} else if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
		sealed, err := p.Seal(nil, prefix, body)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != p.SealedLen(len(body)) {
			t.Fatalf("sealed %d octets, SealedLen says %d", len(sealed), p.SealedLen(len(body)))
		}
		got, err := p.Open(nil, prefix, sealed)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzVerifyAuth throws arbitrary Authentication Data at every method with
// every key type. Keys are fresh per process, so nothing may verify.
func FuzzVerifyAuth(f *testing.F) {
	f.Fuzz(func(t *testing.T, method uint8, authData []byte) {
		for name, k := range sigKeys() {
			if s, err := VerifyAuth(iana.AuthMethod(method), k.Public(), []byte("octets"), authData); err == nil {
				t.Fatalf("%s key: forged %v signature accepted", name, s)
			} else if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("%s key: error %v does not wrap ErrAuthFailed", name, err)
			}
		}
		ParseDigitalSignature(authData)
	})
}

func FuzzParseSignatureHashAlgorithms(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		algs, err := ParseSignatureHashAlgorithms(data)
		if err != nil {
			if len(data)%2 == 0 {
				t.Fatalf("even-length data refused: %v", err)
			}
			return
		}
		if !bytes.Equal(EncodeSignatureHashAlgorithms(algs), data) {
			t.Fatal("re-encoding differs")
		}
	})
}

var fuzzKeyExchanges = sync.OnceValue(func() []KeyExchange {
	var ks []KeyExchange
	for _, g := range allGroups {
		k, err := NewKeyExchange(g)
		if err != nil {
			panic(err)
		}
		ks = append(ks, k)
	}
	return ks
})

// FuzzSharedSecret gives every method arbitrary peer data: validation must
// refuse or produce a secret of the method's length, never panic.
func FuzzSharedSecret(f *testing.F) {
	f.Fuzz(func(t *testing.T, group uint8, peer []byte) {
		ks := fuzzKeyExchanges()
		k := ks[int(group)%len(ks)]
		s, err := k.SharedSecret(peer)
		if err != nil {
			if !errors.Is(err, ErrInvalidPublicKey) {
				t.Fatalf("%v: error %v does not wrap ErrInvalidPublicKey", k.Group(), err)
			}
			return
		}
		if len(s) == 0 || bytes.Equal(s, make([]byte, len(s))) {
			t.Fatalf("%v: empty or zero secret", k.Group())
		}
	})
}

var fuzzCert = sync.OnceValue(func() *x509.Certificate {
	return &x509.Certificate{
		RawSubject:     []byte{0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, 'g', 'w'},
		Subject:        pkix.Name{CommonName: "gw"},
		DNSNames:       []string{"gw.example"},
		EmailAddresses: []string{"a@gw.example"},
		IPAddresses:    []net.IP{net.IPv4(192, 0, 2, 1), net.ParseIP("2001:db8::1")},
	}
})

// FuzzMatchID parses peer-chosen ID data, DNs included.
func FuzzMatchID(f *testing.F) {
	f.Fuzz(func(t *testing.T, idType uint8, data []byte) {
		MatchID(fuzzCert(), iana.IDType(idType), data)
	})
}
