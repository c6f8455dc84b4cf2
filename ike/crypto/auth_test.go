package crypto

import (
	"bytes"
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// Keys are generated per test run; nothing private is committed.
var sigKeys = sync.OnceValue(func() map[string]gocrypto.Signer {
	m := map[string]gocrypto.Signer{}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	m["rsa"] = r
	for name, c := range map[string]elliptic.Curve{"p256": elliptic.P256(), "p384": elliptic.P384(), "p521": elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		m[name] = k
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	m["ed25519"] = ed
	return m
})

func TestSignedOctets(t *testing.T) {
	p, _ := NewPRF(iana.PRFHMACSHA2_256)
	msg, nonce, skp := []byte("IKE_SA_INIT request bytes"), []byte("responder nonce"), repeat(0x11, 32)
	idBody := []byte{byte(iana.IDFQDN), 0, 0, 0, 'g', 'w'}
	m := hmac.New(sha256.New, skp)
	m.Write(idBody)
	want := append(append(append([]byte{}, msg...), nonce...), m.Sum(nil)...)
	if got := SignedOctets(p, msg, nonce, skp, idBody); !bytes.Equal(got, want) {
		t.Errorf("SignedOctets = %x, want %x", got, want)
	}
	intAuth := []byte("IntAuth_i | IntAuth_r | MID")
	if got := SignedOctets(p, msg, nonce, skp, idBody, intAuth); !bytes.Equal(got, append(want, intAuth...)) {
		t.Errorf("SignedOctets with IntAuth = %x", got)
	}
}

func TestSharedKeyAuth(t *testing.T) {
	p, _ := NewPRF(iana.PRFHMACSHA2_384)
	secret, octets := []byte("a pre-shared key"), []byte("signed octets")
	inner := hmac.New(sha512New384, secret)
	inner.Write([]byte("Key Pad for IKEv2"))
	outer := hmac.New(sha512New384, inner.Sum(nil))
	outer.Write(octets)
	want := outer.Sum(nil)
	got := SharedKeyAuth(p, secret, octets)
	if !bytes.Equal(got, want) {
		t.Fatalf("AUTH = %x, want %x", got, want)
	}
	if err := VerifySharedKeyAuth(p, secret, octets, got); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]byte{got[:len(got)-1], append(append([]byte{}, got...), 0), nil} {
		if err := VerifySharedKeyAuth(p, secret, octets, bad); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("bad AUTH %x: %v", bad, err)
		}
	}
	if err := VerifySharedKeyAuth(p, []byte("another key"), octets, got); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("wrong key: %v", err)
	}
}

func TestSignatureRoundTrip(t *testing.T) {
	keys := sigKeys()
	octets := []byte("RealMessage | Nonce | prf(SK_p, IDx')")
	cases := []struct {
		method iana.AuthMethod
		scheme SignatureScheme
		key    string
		sigLen int // fixed length where the method defines one
	}{
		{iana.AuthRSASignature, SigNone, "rsa", 256},
		{iana.AuthECDSASHA256P256, SigNone, "p256", 64},
		{iana.AuthECDSASHA384P384, SigNone, "p384", 96},
		{iana.AuthECDSASHA512P521, SigNone, "p521", 132},
		{iana.AuthDigitalSignature, SigRSAPKCS1SHA256, "rsa", 0},
		{iana.AuthDigitalSignature, SigRSAPKCS1SHA384, "rsa", 0},
		{iana.AuthDigitalSignature, SigRSAPKCS1SHA512, "rsa", 0},
		{iana.AuthDigitalSignature, SigRSAPSSSHA256, "rsa", 0},
		{iana.AuthDigitalSignature, SigRSAPSSSHA384, "rsa", 0},
		{iana.AuthDigitalSignature, SigRSAPSSSHA512, "rsa", 0},
		{iana.AuthDigitalSignature, SigECDSASHA256, "p256", 0},
		{iana.AuthDigitalSignature, SigECDSASHA384, "p384", 0},
		{iana.AuthDigitalSignature, SigECDSASHA512, "p521", 0},
		{iana.AuthDigitalSignature, SigECDSASHA512, "p256", 0}, // RFC 7427 allows any hash with any curve
		{iana.AuthDigitalSignature, SigEd25519, "ed25519", 0},
	}
	for _, c := range cases {
		t.Run(c.method.String()+"/"+c.scheme.String()+"/"+c.key, func(t *testing.T) {
			key := keys[c.key]
			sig, err := SignAuth(c.method, c.scheme, key, octets)
			if err != nil {
				t.Fatal(err)
			}
			if c.sigLen != 0 && len(sig) != c.sigLen {
				t.Errorf("signature of %d octets, want %d", len(sig), c.sigLen)
			}
			got, err := VerifyAuth(c.method, key.Public(), octets, sig)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if c.scheme != SigNone && got != c.scheme {
				t.Errorf("verified as %v, signed as %v", got, c.scheme)
			}
			if c.method == iana.AuthDigitalSignature {
				s, v, err := ParseDigitalSignature(sig)
				if err != nil || s != c.scheme || len(v) == 0 {
					t.Errorf("ParseDigitalSignature = %v, %d octets, %v", s, len(v), err)
				}
			}
			tampered := append([]byte{}, octets...)
			tampered[0] ^= 1
			if _, err := VerifyAuth(c.method, key.Public(), tampered, sig); !errors.Is(err, ErrAuthFailed) {
				t.Errorf("other octets verified: %v", err)
			}
			for _, i := range []int{0, 1, len(sig) / 2, len(sig) - 1} {
				bad := append([]byte{}, sig...)
				bad[i] ^= 0x10
				if _, err := VerifyAuth(c.method, key.Public(), octets, bad); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("signature flipped at %d verified: %v", i, err)
				}
			}
			for n := range sig {
				if _, err := VerifyAuth(c.method, key.Public(), octets, sig[:n]); err == nil {
					t.Fatalf("signature truncated to %d verified", n)
				}
			}
			for name, other := range keys {
				if name == c.key {
					continue
				}
				if _, err := VerifyAuth(c.method, other.Public(), octets, sig); !errors.Is(err, ErrAuthFailed) {
					t.Errorf("verified with the %s key: %v", name, err)
				}
			}
		})
	}
}

func TestSignAuthRefusesMismatches(t *testing.T) {
	keys := sigKeys()
	cases := []struct {
		method iana.AuthMethod
		scheme SignatureScheme
		key    string
	}{
		{iana.AuthRSASignature, SigNone, "p256"},
		{iana.AuthRSASignature, SigRSAPSSSHA256, "rsa"},
		{iana.AuthECDSASHA256P256, SigNone, "p384"},
		{iana.AuthECDSASHA512P521, SigNone, "rsa"},
		{iana.AuthDigitalSignature, SigRSAPKCS1SHA1, "rsa"}, // SHA-1 only in method 1
		{iana.AuthDigitalSignature, SigNone, "rsa"},
		{iana.AuthDigitalSignature, SigEd25519, "rsa"},
		{iana.AuthDigitalSignature, SigECDSASHA256, "ed25519"},
		{iana.AuthSharedKeyMIC, SigNone, "rsa"},
	}
	for _, c := range cases {
		if _, err := SignAuth(c.method, c.scheme, keys[c.key], []byte("x")); err == nil {
			t.Errorf("SignAuth(%v, %v, %s) succeeded", c.method, c.scheme, c.key)
		}
	}
	if _, err := VerifyAuth(iana.AuthSharedKeyMIC, keys["rsa"].Public(), nil, nil); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("VerifyAuth(PSK) = %v", err)
	}
}

// The AlgorithmIdentifiers method 14 sends must be the DER that other
// implementations produce. Go's x509 writes the same identifiers into the
// certificates it signs, so sign certificates with each algorithm and compare;
// three short ones are also checked against their well-known DER (RFC 7427
// Appendix A, RFC 8420 §3).
func TestAlgorithmIdentifierEncoding(t *testing.T) {
	keys := sigKeys()
	cases := []struct {
		scheme SignatureScheme
		x509   x509.SignatureAlgorithm
		key    string
		der    string
	}{
		{SigRSAPKCS1SHA256, x509.SHA256WithRSA, "rsa", "300d06092a864886f70d01010b0500"},
		{SigRSAPKCS1SHA384, x509.SHA384WithRSA, "rsa", ""},
		{SigRSAPKCS1SHA512, x509.SHA512WithRSA, "rsa", ""},
		{SigRSAPSSSHA256, x509.SHA256WithRSAPSS, "rsa", ""},
		{SigRSAPSSSHA384, x509.SHA384WithRSAPSS, "rsa", ""},
		{SigRSAPSSSHA512, x509.SHA512WithRSAPSS, "rsa", ""},
		{SigECDSASHA256, x509.ECDSAWithSHA256, "p256", "300a06082a8648ce3d040302"},
		{SigECDSASHA384, x509.ECDSAWithSHA384, "p384", ""},
		{SigECDSASHA512, x509.ECDSAWithSHA512, "p521", ""},
		{SigEd25519, x509.PureEd25519, "ed25519", "300506032b6570"},
	}
	for _, c := range cases {
		ours, err := c.scheme.algorithmIdentifier()
		if err != nil {
			t.Fatal(err)
		}
		key := keys[c.key]
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), SignatureAlgorithm: c.x509,
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		var cert struct {
			TBS, Alg asn1.RawValue
			Sig      asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &cert); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, cert.Alg.FullBytes) {
			t.Errorf("%v: AlgorithmIdentifier %x, crypto/x509 writes %x", c.scheme, ours, cert.Alg.FullBytes)
		}
		if c.der != "" && !bytes.Equal(ours, unhex(t, c.der)) {
			t.Errorf("%v: AlgorithmIdentifier %x, want %s", c.scheme, ours, c.der)
		}
	}
}

// pssAuthData builds method 14 data with hand-made RSASSA-PSS parameters.
func pssAuthData(t *testing.T, key *rsa.PrivateKey, octets []byte, hashOIDParams, mgfHash asn1.ObjectIdentifier, salt int, nullHashParams bool) []byte {
	t.Helper()
	h := pkix.AlgorithmIdentifier{Algorithm: hashOIDParams}
	if nullHashParams {
		h.Parameters = asn1.NullRawValue
	}
	m := pkix.AlgorithmIdentifier{Algorithm: mgfHash}
	mder, _ := asn1.Marshal(m)
	params, err := asn1.Marshal(pssParameters{Hash: h, MGF: pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: mder}}, SaltLength: salt, TrailerField: 1})
	if err != nil {
		t.Fatal(err)
	}
	ai, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: oidRSAPSS, Parameters: asn1.RawValue{FullBytes: params}})
	d := sha256.Sum256(octets)
	sig, err := rsa.SignPSS(rand.Reader, key, gocrypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: salt})
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{byte(len(ai))}, ai...), sig...)
}

func TestDigitalSignatureParsing(t *testing.T) {
	key := sigKeys()["rsa"].(*rsa.PrivateKey)
	octets := []byte("octets")
	// Parameters written differently from ours, still valid: absent hash
	// parameters (RFC 4055 allows both), a 20-octet salt.
	ok := pssAuthData(t, key, octets, oidSHA256, oidSHA256, 20, false)
	if s, err := VerifyAuth(iana.AuthDigitalSignature, &key.PublicKey, octets, ok); err != nil || s != SigRSAPSSSHA256 {
		t.Errorf("PSS, salt 20, no hash parameters: %v, %v", s, err)
	}
	oidSHA1 := asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	bad := map[string][]byte{
		"MGF1 over another hash":                pssAuthData(t, key, octets, oidSHA256, oidSHA384, 32, true),
		"PSS with SHA-1":                        pssAuthData(t, key, octets, oidSHA1, oidSHA1, 20, true),
		"empty":                                 nil,
		"length only":                           {15},
		"length beyond data":                    {200, 0x30, 0x03},
		"no signature":                          append([]byte{15}, unhex(t, "300d06092a864886f70d01010b0500")...),
		"trailing octet in AlgorithmIdentifier": append(append([]byte{16}, unhex(t, "300d06092a864886f70d01010b0500")...), 0, 1, 2, 3),
		"sha1WithRSAEncryption":                 append(append([]byte{15}, unhex(t, "300d06092a864886f70d0101050500")...), 1, 2, 3),
		"Ed25519 with parameters":               append(append([]byte{9}, unhex(t, "300706032b65700500")...), 1, 2, 3),
	}
	for name, data := range bad {
		if _, err := VerifyAuth(iana.AuthDigitalSignature, &key.PublicKey, octets, data); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("%s: err = %v, want ErrAuthFailed", name, err)
		}
	}
}

func TestSignatureHashAlgorithms(t *testing.T) {
	data := EncodeSignatureHashAlgorithms(SupportedHashAlgorithms())
	if want := unhex(t, "0002 0003 0004 0005"); !bytes.Equal(data, want) {
		t.Errorf("encoded %x, want %x", data, want)
	}
	got, err := ParseSignatureHashAlgorithms(unhex(t, "0001 0002 0005 1234"))
	if err != nil {
		t.Fatal(err)
	}
	want := []iana.HashAlgorithm{iana.HashSHA1, iana.HashSHA2_256, iana.HashIdentity, 0x1234}
	if len(got) != len(want) {
		t.Fatalf("parsed %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("parsed %v, want %v", got, want)
		}
	}
	if _, err := ParseSignatureHashAlgorithms([]byte{0, 2, 0}); err == nil {
		t.Error("odd length accepted")
	}
	if got, err := ParseSignatureHashAlgorithms(nil); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
}

func TestSelectSignatureScheme(t *testing.T) {
	keys := sigKeys()
	cases := []struct {
		key  string
		peer []iana.HashAlgorithm
		want SignatureScheme
	}{
		{"rsa", nil, SigRSAPSSSHA256},
		{"rsa", []iana.HashAlgorithm{iana.HashSHA2_512}, SigRSAPSSSHA512},
		{"p256", []iana.HashAlgorithm{iana.HashSHA2_256, iana.HashSHA2_384}, SigECDSASHA256},
		{"p384", []iana.HashAlgorithm{iana.HashSHA2_256, iana.HashSHA2_384}, SigECDSASHA384},
		{"p521", nil, SigECDSASHA512},
		{"p521", []iana.HashAlgorithm{iana.HashSHA2_256}, SigECDSASHA256},
		{"ed25519", []iana.HashAlgorithm{iana.HashSHA2_256, iana.HashIdentity}, SigEd25519},
		{"ed25519", []iana.HashAlgorithm{iana.HashSHA2_256}, SigNone},
		{"rsa", []iana.HashAlgorithm{iana.HashSHA1}, SigNone},
	}
	for _, c := range cases {
		got, err := SelectSignatureScheme(keys[c.key].Public(), c.peer)
		if got != c.want || (c.want == SigNone) != (err != nil) {
			t.Errorf("%s with %v: %v, %v; want %v", c.key, c.peer, got, err, c.want)
		}
		if c.want != SigNone && c.peer != nil && !containsHash(c.peer, got.HashAlgorithm()) {
			t.Errorf("%v uses a hash the peer did not offer", got)
		}
	}
}

func containsHash(l []iana.HashAlgorithm, h iana.HashAlgorithm) bool {
	for _, x := range l {
		if x == h {
			return true
		}
	}
	return false
}
