package crypto

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"hash"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// handPRFPlus is an independent prf+: it builds T1 | T2 | ... by explicit
// concatenation instead of feeding a reused HMAC.
func handPRFPlus(h func() hash.Hash, key, seed []byte, n int) []byte {
	var out, prev []byte
	for i := byte(1); len(out) < n; i++ {
		msg := append(append(append([]byte{}, prev...), seed...), i)
		m := hmac.New(h, key)
		m.Write(msg)
		prev = m.Sum(nil)
		out = append(out, prev...)
	}
	return out[:n]
}

var testSuites = []struct {
	name     string
	s        Suite
	h        func() hash.Hash
	ek, ik   int // expected key lengths: RFC 5282 §7.1, RFC 7634 §2, RFC 4868 §2.1.1
	icv, ivl int
}{
	{"aes128gcm16-prfsha256", Suite{iana.EncrAESGCM16, 128, iana.IntegNone, iana.PRFHMACSHA2_256}, sha256.New, 20, 0, 16, 8},
	{"aes256gcm16-prfsha384", Suite{iana.EncrAESGCM16, 256, iana.IntegNone, iana.PRFHMACSHA2_384}, sha512.New384, 36, 0, 16, 8},
	{"aes192gcm12-prfsha256", Suite{iana.EncrAESGCM12, 192, iana.IntegNone, iana.PRFHMACSHA2_256}, sha256.New, 28, 0, 12, 8},
	{"aes128gcm8-prfsha512", Suite{iana.EncrAESGCM8, 128, iana.IntegNone, iana.PRFHMACSHA2_512}, sha512.New, 20, 0, 8, 8},
	{"chacha20poly1305-prfsha256", Suite{iana.EncrChaCha20Poly1305, 0, iana.IntegNone, iana.PRFHMACSHA2_256}, sha256.New, 36, 0, 16, 8},
	{"aes128-sha256", Suite{iana.EncrAESCBC, 128, iana.IntegHMACSHA2_256_128, iana.PRFHMACSHA2_256}, sha256.New, 16, 32, 16, 16},
	{"aes256-sha384", Suite{iana.EncrAESCBC, 256, iana.IntegHMACSHA2_384_192, iana.PRFHMACSHA2_384}, sha512.New384, 32, 48, 24, 16},
	{"aes256-sha512", Suite{iana.EncrAESCBC, 256, iana.IntegHMACSHA2_512_256, iana.PRFHMACSHA2_512}, sha512.New, 32, 64, 32, 16},
}

func TestDeriveIKEKeys(t *testing.T) {
	ni := []byte("initiator nonce, 32 octets long.")
	nr := []byte("responder nonce of another size")
	gir := repeat(0x5a, 256)
	const spiI, spiR = 0x0102030405060708, 0xa1a2a3a4a5a6a7a8
	for _, c := range testSuites {
		t.Run(c.name, func(t *testing.T) {
			if c.s.EncrKeyLen() != c.ek || c.s.IntegKeyLen() != c.ik {
				t.Fatalf("key lengths %d/%d, want %d/%d", c.s.EncrKeyLen(), c.s.IntegKeyLen(), c.ek, c.ik)
			}
			k, err := DeriveIKEKeys(c.s, ni, nr, gir, spiI, spiR)
			if err != nil {
				t.Fatal(err)
			}
			// Independent computation: SKEYSEED = prf(Ni | Nr, g^ir),
			// stream = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
			m := hmac.New(c.h, append(append([]byte{}, ni...), nr...))
			m.Write(gir)
			skeyseed := m.Sum(nil)
			seed := append(append(append([]byte{}, ni...), nr...),
				0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8)
			pk := c.h().Size()
			stream := handPRFPlus(c.h, skeyseed, seed, 3*pk+2*c.ik+2*c.ek)
			want := map[string][]byte{}
			off := 0
			for _, f := range []struct {
				n string
				l int
			}{{"SK_d", pk}, {"SK_ai", c.ik}, {"SK_ar", c.ik}, {"SK_ei", c.ek}, {"SK_er", c.ek}, {"SK_pi", pk}, {"SK_pr", pk}} {
				want[f.n] = stream[off : off+f.l]
				off += f.l
			}
			got := map[string][]byte{"SK_d": k.SKd, "SK_ai": k.SKai, "SK_ar": k.SKar, "SK_ei": k.SKei, "SK_er": k.SKer, "SK_pi": k.SKpi, "SK_pr": k.SKpr}
			for n, w := range want {
				if !bytes.Equal(got[n], w) {
					t.Errorf("%s = %x, want %x", n, got[n], w)
				}
			}
			if c.s.AEAD() && (len(k.SKai) != 0 || len(k.SKar) != 0) {
				t.Error("AEAD suite has integrity keys")
			}
			// Also via the two-step API.
			p, _ := NewPRF(c.s.PRF)
			if !bytes.Equal(SKEYSEED(p, ni, nr, gir), skeyseed) {
				t.Error("SKEYSEED differs from prf(Ni | Nr, g^ir)")
			}
			k.Destroy()
			if k.SKd != nil || k.SKei != nil {
				t.Error("Destroy left key slices")
			}
		})
	}
}

func TestDestroyWipes(t *testing.T) {
	s := testSuites[0].s
	k, err := DeriveIKEKeys(s, []byte("ni"), []byte("nr"), []byte("gir"), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	skd, ei := k.SKd, k.SKei
	k.Destroy()
	if !bytes.Equal(skd, make([]byte, len(skd))) || !bytes.Equal(ei, make([]byte, len(ei))) {
		t.Errorf("keys not wiped: SK_d %x SK_ei %x", skd, ei)
	}
	b := []byte("secret")
	Zero(b)
	if !bytes.Equal(b, make([]byte, 6)) {
		t.Errorf("Zero left %x", b)
	}
}

// A rekeyed IKE SA computes SKEYSEED with the old SA's PRF and SK_d, then
// expands with the new suite (RFC 7296 §2.18).
func TestDeriveRekeyedIKEKeys(t *testing.T) {
	oldSKd := repeat(0x11, 64) // an SK_d from a PRF_HMAC_SHA2_512 SA
	gir := repeat(0x22, 32)
	ni, nr := []byte("new Ni"), []byte("new Nr")
	s := Suite{iana.EncrAESGCM16, 256, iana.IntegNone, iana.PRFHMACSHA2_256} // new SA: SHA-256

	m := hmac.New(sha512.New, oldSKd)
	m.Write(gir)
	m.Write(ni)
	m.Write(nr)
	wantSeed := m.Sum(nil)
	oldPRF, _ := NewPRF(iana.PRFHMACSHA2_512)
	if got := RekeySKEYSEED(oldPRF, oldSKd, gir, ni, nr); !bytes.Equal(got, wantSeed) {
		t.Fatalf("rekey SKEYSEED = %x, want %x", got, wantSeed)
	}
	k, err := DeriveRekeyedIKEKeys(iana.PRFHMACSHA2_512, oldSKd, s, gir, ni, nr, 7, 8)
	if err != nil {
		t.Fatal(err)
	}
	seed := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(append(append([]byte{}, ni...), nr...), 7), 8)
	stream := handPRFPlus(sha256.New, wantSeed, seed, 32)
	if !bytes.Equal(k.SKd, stream) {
		t.Errorf("rekeyed SK_d = %x, want %x", k.SKd, stream)
	}
	// RFC 9370 §2.2.4: follow-up secrets come after the nonces.
	sk1 := repeat(0x99, 32)
	m = hmac.New(sha512.New, oldSKd)
	m.Write(gir)
	m.Write(ni)
	m.Write(nr)
	m.Write(sk1)
	if got := RekeySKEYSEED(oldPRF, oldSKd, gir, ni, nr, sk1); !bytes.Equal(got, m.Sum(nil)) {
		t.Errorf("rekey SKEYSEED with SK(1) = %x", got)
	}
	k2, err := DeriveRekeyedIKEKeys(iana.PRFHMACSHA2_512, oldSKd, s, gir, ni, nr, 7, 8, sk1)
	if err != nil || bytes.Equal(k2.SKd, k.SKd) {
		t.Errorf("SK(1) did not change the keys: %v", err)
	}
	if _, err := DeriveRekeyedIKEKeys(99, oldSKd, s, gir, ni, nr, 7, 8); err == nil {
		t.Error("unknown old PRF accepted")
	}
}

func TestDeriveChildKeys(t *testing.T) {
	skd := repeat(0x33, 32)
	ni, nr := []byte("child Ni"), []byte("child Nr")
	p, _ := NewPRF(iana.PRFHMACSHA2_256)
	cases := []struct {
		name    string
		esp     Suite
		secrets [][]byte
	}{
		{"aes128gcm16 no PFS", Suite{Encr: iana.EncrAESGCM16, KeyBits: 128}, nil},
		{"aes256gcm16 PFS", Suite{Encr: iana.EncrAESGCM16, KeyBits: 256}, [][]byte{repeat(0x44, 32)}},
		{"chacha20poly1305 two KEs (RFC 9370)", Suite{Encr: iana.EncrChaCha20Poly1305}, [][]byte{repeat(0x44, 32), repeat(0x55, 32)}},
		{"aes256-sha256 PFS", Suite{Encr: iana.EncrAESCBC, KeyBits: 256, Integ: iana.IntegHMACSHA2_256_128}, [][]byte{repeat(0x44, 256)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := DeriveChildKeys(p, skd, c.esp, ni, nr, c.secrets...)
			if err != nil {
				t.Fatal(err)
			}
			// RFC 9370 §2.2.4: SK(0) | Ni | Nr | SK(1) | ... | SK(n).
			var seed []byte
			switch len(c.secrets) {
			case 0:
				seed = bytes.Join([][]byte{ni, nr}, nil)
			case 1:
				seed = bytes.Join([][]byte{c.secrets[0], ni, nr}, nil)
			case 2:
				seed = bytes.Join([][]byte{c.secrets[0], ni, nr, c.secrets[1]}, nil)
			}
			ek, ik := c.esp.EncrKeyLen(), c.esp.IntegKeyLen()
			stream := handPRFPlus(sha256.New, skd, seed, 2*(ek+ik))
			// RFC 7296 §2.17: initiator-to-responder first; in each
			// direction the encryption key, then the integrity key.
			want := []struct {
				n      string
				got, w []byte
			}{
				{"i2r encr", k.InitiatorToResponder.Encr, stream[:ek]},
				{"i2r integ", k.InitiatorToResponder.Integ, stream[ek : ek+ik]},
				{"r2i encr", k.ResponderToInitiator.Encr, stream[ek+ik : 2*ek+ik]},
				{"r2i integ", k.ResponderToInitiator.Integ, stream[2*ek+ik:]},
			}
			for _, w := range want {
				if !bytes.Equal(w.got, w.w) {
					t.Errorf("%s = %x, want %x", w.n, w.got, w.w)
				}
			}
			if c.esp.AEAD() {
				key, salt, err := SplitSalt(k.InitiatorToResponder.Encr)
				if err != nil || len(salt) != 4 || len(key) != ek-4 || !bytes.Equal(salt, stream[ek-4:ek]) {
					t.Errorf("SplitSalt = %x, %x, %v", key, salt, err)
				}
			}
			buf := k.InitiatorToResponder.Encr
			k.Destroy()
			if !bytes.Equal(buf, make([]byte, len(buf))) {
				t.Error("Destroy did not wipe")
			}
		})
	}
	if _, err := DeriveChildKeys(p, skd, Suite{Encr: iana.EncrAESGCM16, KeyBits: 128, Integ: iana.IntegHMACSHA2_256_128}, ni, nr); err == nil {
		t.Error("AEAD with integrity accepted")
	}
}

func TestSuiteValidation(t *testing.T) {
	bad := []Suite{
		{Encr: iana.EncrAESGCM16, KeyBits: 100, PRF: iana.PRFHMACSHA2_256},
		{Encr: iana.EncrAESCBC, KeyBits: 128, PRF: iana.PRFHMACSHA2_256},                                      // no integrity
		{Encr: iana.EncrAESGCM16, KeyBits: 128, Integ: iana.IntegHMACSHA2_256_128, PRF: iana.PRFHMACSHA2_256}, // AEAD + integrity
		{Encr: iana.EncrChaCha20Poly1305, KeyBits: 128, PRF: iana.PRFHMACSHA2_256},                            // ChaCha is 256 only
		{Encr: 3, KeyBits: 128, Integ: iana.IntegHMACSHA2_256_128, PRF: iana.PRFHMACSHA2_256},                 // 3DES
		{Encr: iana.EncrAESCBC, KeyBits: 128, Integ: 2, PRF: iana.PRFHMACSHA2_256},                            // HMAC-SHA1-96
		{Encr: iana.EncrAESGCM16, KeyBits: 128, PRF: 4},                                                       // AES-XCBC PRF
	}
	for _, s := range bad {
		if err := s.ValidateIKE(); err == nil {
			t.Errorf("%v accepted", s)
		}
		if _, err := DeriveIKEKeys(s, nil, nil, nil, 0, 0); err == nil {
			t.Errorf("DeriveIKEKeys(%v) accepted", s)
		}
	}
	for _, c := range testSuites {
		if err := c.s.ValidateIKE(); err != nil {
			t.Errorf("%v: %v", c.s, err)
		}
	}
	if _, _, err := SplitSalt([]byte{1, 2, 3, 4}); err == nil {
		t.Error("SplitSalt of 4 octets succeeded")
	}
}
