package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// RFC 7634 Appendix B: a whole IKEv2 INFORMATIONAL message protected with
// ChaCha20-Poly1305. The AAD is the IKE header (SPIs c0..c7 / d0..d7, message
// ID 9, length 0x45) plus the SK generic header (length 0x29); the inner
// payload is a 12-octet Notify followed by a zero Pad Length.
func TestRFC7634AppendixB(t *testing.T) {
	key := unhex(t, "808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f a0a1a2a3") // key | salt
	prefix := unhex(t, `c0c1c2c3c4c5c6c7 d0d1d2d3d4d5d6d7 2e202500 00000009 00000045
		29000029`)
	iv := unhex(t, "1011121314151617")
	inner := unhex(t, "0000000c 00004001 0000000a")
	body := append(append([]byte{}, iv...), unhex(t, `61 03 94 70 1f 8d 01 7f 7c 12 92 48 89
		6b 71 bf e2 52 36 ef d7 cd c6 70 66 90 63 15 b2`)...)

	p, err := NewProtector(Suite{Encr: iana.EncrChaCha20Poly1305}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Open(nil, prefix, body)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got, inner) {
		t.Errorf("Open = %x, want %x", got, inner)
	}
	if n := p.SealedLen(len(inner)); n != len(body) || 28+4+n != 0x45 {
		t.Errorf("SealedLen(%d) = %d, message body is %d", len(inner), n, len(body))
	}
	sealed := p.(*aeadProtector).sealWithIV(nil, prefix, iv, inner)
	if !bytes.Equal(sealed, body) {
		t.Errorf("seal = %x, want %x", sealed, body)
	}
}

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 4 (AES-128)
// and 16 (AES-256): 12-octet IV cafebabefacedbaddecaf888 split into the
// 4-octet salt at the end of the key material and the 8-octet explicit IV,
// AAD as the prefix. The 60-octet plaintext ends in 0x39, so Open reads it
// as payload, padding and Pad Length 57 and returns its first two octets;
// the GCM-8 and GCM-12 variants send the leftmost octets of the same tag.
func TestGCMMcGrewViega(t *testing.T) {
	pt := unhex(t, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
	aad := unhex(t, "feedfacedeadbeeffeedfacedeadbeefabaddad2")
	cases := []struct {
		name, key, ct, tag string
		bits               int
	}{
		{"case 4", "feffe9928665731c6d6a8f9467308308",
			"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
			"5bc94fbc3221a5db94fae95ae7121a47", 128},
		{"case 16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
			"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
			"76fc6ece0f4e1768cddf8853bb2d551b", 256},
	}
	for _, c := range cases {
		for _, e := range []struct {
			encr iana.EncrID
			icv  int
		}{{iana.EncrAESGCM16, 16}, {iana.EncrAESGCM12, 12}, {iana.EncrAESGCM8, 8}} {
			t.Run(fmt.Sprintf("%s/%v", c.name, e.encr), func(t *testing.T) {
				key := append(unhex(t, c.key), unhex(t, "cafebabe")...)
				p, err := NewProtector(Suite{Encr: e.encr, KeyBits: c.bits}, key, nil)
				if err != nil {
					t.Fatal(err)
				}
				tag := unhex(t, c.tag)[:e.icv]
				body := append(append(unhex(t, "facedbaddecaf888"), unhex(t, c.ct)...), tag...)
				got, err := p.Open(nil, aad, body)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if !bytes.Equal(got, pt[:2]) {
					t.Errorf("Open = %x, want %x", got, pt[:2])
				}
				// Sealing pt[:59] adds a zero Pad Length, which differs
				// from the vector's 0x39 in the last octet only.
				sealed := p.(*aeadProtector).sealWithIV(nil, aad, unhex(t, "facedbaddecaf888"), pt[:59])
				if ct := unhex(t, c.ct); !bytes.Equal(sealed[8:8+59], ct[:59]) {
					t.Errorf("sealed ciphertext = %x, want %x", sealed[8:8+59], ct[:59])
				}
				body[len(body)-1] ^= 1
				if _, err := p.Open(nil, aad, body); !errors.Is(err, ErrIntegrity) {
					t.Errorf("tampered tag: err = %v", err)
				}
			})
		}
	}
}

func testKeys(s Suite) (enc, integ []byte) {
	enc = make([]byte, s.EncrKeyLen())
	integ = make([]byte, s.IntegKeyLen())
	for i := range enc {
		enc[i] = byte(i + 1)
	}
	for i := range integ {
		integ[i] = byte(0x80 + i)
	}
	return enc, integ
}

func newTestProtector(t testing.TB, s Suite) Protector {
	t.Helper()
	enc, integ := testKeys(s)
	p, err := NewProtector(s, enc, integ)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testPrefix builds an IKE header and SK generic header whose Length fields
// count a body of bodyLen octets, as a real sender must.
func testPrefix(bodyLen int) []byte {
	total := 28 + 4 + bodyLen
	return []byte{
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // SPIs
		46, 0x20, 35, 0x08, 0, 0, 0, 1, // SK first, v2.0, IKE_AUTH, initiator, MID 1
		byte(total >> 24), byte(total >> 16), byte(total >> 8), byte(total),
		35, 0, byte((4 + bodyLen) >> 8), byte(4 + bodyLen), // SK: next IDi, length
	}
}

func TestProtectorRoundTrip(t *testing.T) {
	for _, c := range testSuites {
		t.Run(c.name, func(t *testing.T) {
			p := newTestProtector(t, c.s)
			if p.IVLen() != c.ivl || p.ICVLen() != c.icv {
				t.Fatalf("IV %d ICV %d, want %d %d", p.IVLen(), p.ICVLen(), c.ivl, c.icv)
			}
			for _, n := range []int{0, 1, 14, 15, 16, 17, 31, 100, 1000} {
				pt := make([]byte, n)
				rand.Read(pt)
				prefix := testPrefix(p.SealedLen(n))
				msg, err := p.Seal(append([]byte{}, prefix...), prefix, pt)
				if err != nil {
					t.Fatal(err)
				}
				if len(msg) != 28+4+p.SealedLen(n) {
					t.Fatalf("n=%d: message %d octets, header says %d", n, len(msg), 28+4+p.SealedLen(n))
				}
				if !bytes.Equal(msg[:len(prefix)], prefix) {
					t.Fatal("Seal changed the prefix")
				}
				if !c.s.AEAD() && (len(msg)-len(prefix)-c.ivl-c.icv)%16 != 0 {
					t.Fatalf("CBC body not block aligned")
				}
				got, err := p.Open([]byte("dst:"), msg[:len(prefix)], msg[len(prefix):])
				if err != nil {
					t.Fatalf("n=%d: Open: %v", n, err)
				}
				if !bytes.Equal(got, append([]byte("dst:"), pt...)) {
					t.Fatalf("n=%d: round trip mismatch", n)
				}
			}
		})
	}
}

func TestProtectorMaxPlaintextLen(t *testing.T) {
	for _, c := range testSuites {
		p := newTestProtector(t, c.s)
		for body := 0; body < 200; body++ {
			m := p.MaxPlaintextLen(body)
			if m >= 0 && p.SealedLen(m) > body {
				t.Errorf("%s: MaxPlaintextLen(%d) = %d, which seals to %d", c.name, body, m, p.SealedLen(m))
			}
			if p.SealedLen(m+1) <= body {
				t.Errorf("%s: MaxPlaintextLen(%d) = %d, but %d fits", c.name, body, m, m+1)
			}
		}
	}
}

// Every single bit flip in the authenticated part (prefix, IV, ciphertext,
// ICV) must make Open fail, and every truncation must fail without panic.
func TestProtectorTamperAndTruncate(t *testing.T) {
	for _, c := range testSuites {
		t.Run(c.name, func(t *testing.T) {
			p := newTestProtector(t, c.s)
			pt := []byte("a small inner payload chain")
			prefix := testPrefix(p.SealedLen(len(pt)))
			msg, err := p.Seal(append([]byte{}, prefix...), prefix, pt)
			if err != nil {
				t.Fatal(err)
			}
			for i := range msg {
				bad := append([]byte{}, msg...)
				bad[i] ^= 0x40
				if _, err := p.Open(nil, bad[:len(prefix)], bad[len(prefix):]); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("flip at %d: err = %v, want ErrIntegrity", i, err)
				}
			}
			body := msg[len(prefix):]
			for n := 0; n < len(body); n++ {
				if _, err := p.Open(nil, prefix, body[:n]); err == nil {
					t.Fatalf("body truncated to %d octets opened", n)
				}
			}
			// A body moved under another header fails too.
			if _, err := p.Open(nil, testPrefix(len(body)+1), body); err == nil {
				t.Fatal("body opened under a different prefix")
			}
		})
	}
}

// RFC 7296 §3.14: the receiver takes any padding contents; RFC 7634 §4 and RFC
// 5282 §3 say AEAD receivers accept any padding length. These bodies are built
// here, not by Seal, with non-zero padding.
func TestProtectorAcceptsForeignPadding(t *testing.T) {
	pt := []byte("payloads")
	pad := []byte{0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13}
	inner := append(append(append([]byte{}, pt...), pad...), byte(len(pad))) // 8+23+1 = 32: two AES blocks
	prefix := []byte("header and SK generic header")

	cbc := Suite{Encr: iana.EncrAESCBC, KeyBits: 128, Integ: iana.IntegHMACSHA2_256_128}
	enc, integ := testKeys(cbc)
	block, _ := aes.NewCipher(enc)
	iv := repeat(0x77, 16)
	ct := make([]byte, len(inner))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, inner)
	body := append(append([]byte{}, iv...), ct...)
	m := hmac.New(sha256New, integ)
	m.Write(prefix)
	m.Write(body)
	body = append(body, m.Sum(nil)[:16]...)
	p, _ := NewProtector(cbc, enc, integ)
	if got, err := p.Open(nil, prefix, body); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("CBC with foreign padding: %q, %v", got, err)
	}

	gcm := Suite{Encr: iana.EncrAESGCM16, KeyBits: 128}
	ap := newTestProtector(t, gcm).(*aeadProtector)
	nonceIV := repeat(0x66, 8)
	body = append(append([]byte{}, nonceIV...), ap.aead.Seal(nil, ap.nonce(nonceIV), inner, prefix)...)
	if got, err := ap.Open(nil, prefix, body); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("GCM with padding: %q, %v", got, err)
	}

	// An authentic plaintext whose Pad Length exceeds it is malformed.
	bad := append([]byte{}, pt...)
	bad = append(bad, 200)
	body = append(append([]byte{}, nonceIV...), ap.aead.Seal(nil, ap.nonce(nonceIV), bad, prefix)...)
	if _, err := ap.Open(nil, prefix, body); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized Pad Length: err = %v, want ErrMalformed", err)
	}
}

func TestProtectorConstruction(t *testing.T) {
	s := Suite{Encr: iana.EncrAESCBC, KeyBits: 256, Integ: iana.IntegHMACSHA2_256_128}
	if _, err := NewProtector(s, make([]byte, 16), make([]byte, 32)); err == nil {
		t.Error("short encryption key accepted")
	}
	if _, err := NewProtector(s, make([]byte, 32), make([]byte, 16)); err == nil {
		t.Error("short integrity key accepted")
	}
	if _, err := NewProtector(Suite{Encr: iana.EncrAESGCM16, KeyBits: 128}, make([]byte, 16), nil); err == nil {
		t.Error("GCM key without salt accepted")
	}
	if _, err := NewProtector(Suite{Encr: 3, KeyBits: 192}, make([]byte, 24), nil); err == nil {
		t.Error("3DES accepted")
	}
}

func TestProtectorDestroy(t *testing.T) {
	for _, c := range testSuites {
		p := newTestProtector(t, c.s)
		prefix := testPrefix(p.SealedLen(3))
		msg, _ := p.Seal(nil, prefix, []byte("abc"))
		var keys [][]byte
		switch q := p.(type) {
		case *aeadProtector:
			keys = [][]byte{q.key, q.salt[:]}
		case *cbcProtector:
			keys = [][]byte{q.encKey, q.integKey}
		}
		p.Destroy()
		for _, k := range keys {
			if !bytes.Equal(k, make([]byte, len(k))) {
				t.Errorf("%s: key not wiped", c.name)
			}
		}
		if _, err := p.Seal(nil, prefix, []byte("abc")); !errors.Is(err, ErrDestroyed) {
			t.Errorf("%s: Seal after Destroy: %v", c.name, err)
		}
		if _, err := p.Open(nil, prefix, msg); !errors.Is(err, ErrDestroyed) {
			t.Errorf("%s: Open after Destroy: %v", c.name, err)
		}
	}
}

// IVs must never repeat under one key, also when Seal runs concurrently.
func TestAEADIVsUnique(t *testing.T) {
	p := newTestProtector(t, Suite{Encr: iana.EncrAESGCM16, KeyBits: 128})
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				body, err := p.Seal(nil, []byte("hdr"), []byte("x"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[string(body[:8])] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 800 {
		t.Errorf("%d distinct IVs in 800 messages", len(seen))
	}
}

// The two ends of an IKE SA: what the initiator seals, the responder opens,
// and the other way round; each direction uses its own keys.
func TestIKEKeysProtectors(t *testing.T) {
	for _, c := range testSuites {
		k, err := DeriveIKEKeys(c.s, []byte("Ni"), []byte("Nr"), []byte("g^ir"), 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		iOut, iIn, err := k.Protectors(true)
		if err != nil {
			t.Fatal(err)
		}
		rOut, rIn, err := k.Protectors(false)
		if err != nil {
			t.Fatal(err)
		}
		pt := []byte("IDi | AUTH | SA | TSi | TSr")
		prefix := testPrefix(iOut.SealedLen(len(pt)))
		b1, _ := iOut.Seal(nil, prefix, pt)
		if got, err := rIn.Open(nil, prefix, b1); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s: initiator to responder: %v", c.name, err)
		}
		if _, err := iIn.Open(nil, prefix, b1); err == nil {
			t.Errorf("%s: initiator opened its own message with the responder's keys", c.name)
		}
		b2, _ := rOut.Seal(nil, prefix, pt)
		if got, err := iIn.Open(nil, prefix, b2); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s: responder to initiator: %v", c.name, err)
		}
	}
}
