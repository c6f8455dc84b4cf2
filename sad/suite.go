package sad

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/internal/gcm"
)

// Cipher is the ESP encryption transform.
type Cipher uint8

const (
	CipherNull             Cipher = iota + 1 // RFC 2410, for debugging only
	CipherAESGCM                             // RFC 4106
	CipherChaCha20Poly1305                   // RFC 7634
	CipherAESCBC                             // RFC 3602
)

// Integ is the ESP integrity transform of the non-AEAD suites.
type Integ uint8

const (
	IntegNone       Integ = iota
	IntegHMACSHA256       // HMAC-SHA-256-128, RFC 4868
	IntegHMACSHA384       // HMAC-SHA-384-192
	IntegHMACSHA512       // HMAC-SHA-512-256
)

// Suite is a complete ESP transform: cipher, key size, integrity and ICV
// length. Write it the way strongSwan does with ParseSuite.
type Suite struct {
	Cipher  Cipher
	KeyBits int // AES key size: 128 or 256 (192 too for CBC/GCM); 256 for ChaCha20
	Integ   Integ
	ICVLen  int // AES-GCM: 8, 12 or 16; the others follow from Integ
}

// Common suites.
var (
	AESGCM128 = Suite{Cipher: CipherAESGCM, KeyBits: 128, ICVLen: 16}
	AESGCM256 = Suite{Cipher: CipherAESGCM, KeyBits: 256, ICVLen: 16}
	ChaCha20  = Suite{Cipher: CipherChaCha20Poly1305, KeyBits: 256, ICVLen: 16}
)

// IsAEAD reports whether the suite is a combined-mode cipher.
func (s Suite) IsAEAD() bool {
	return s.Cipher == CipherAESGCM || s.Cipher == CipherChaCha20Poly1305
}

// KeyLen is the length of Config.Key for the suite (AEAD salt included).
func (s Suite) KeyLen() int {
	switch s.Cipher {
	case CipherAESGCM, CipherChaCha20Poly1305:
		return s.KeyBits/8 + 4
	case CipherAESCBC:
		return s.KeyBits / 8
	}
	return 0
}

// IntegKeyLen is the HMAC key length (RFC 4868 §2.1.1: the hash output size).
func (s Suite) IntegKeyLen() int {
	switch s.Integ {
	case IntegHMACSHA256:
		return 32
	case IntegHMACSHA384:
		return 48
	case IntegHMACSHA512:
		return 64
	}
	return 0
}

// IVLen is the explicit IV carried in each packet.
func (s Suite) IVLen() int {
	switch s.Cipher {
	case CipherAESGCM, CipherChaCha20Poly1305:
		return 8
	case CipherAESCBC:
		return aes.BlockSize
	}
	return 0
}

// ICV returns the length of the integrity check value.
func (s Suite) ICV() int {
	if s.IsAEAD() {
		if s.ICVLen == 0 {
			return 16
		}
		return s.ICVLen
	}
	return s.IntegKeyLen() / 2
}

// Align is the alignment the padded payload must reach (RFC 4303 §2.4):
// the cipher block size, at least 4.
func (s Suite) Align() int {
	if s.Cipher == CipherAESCBC {
		return aes.BlockSize
	}
	return 4
}

func (s Suite) String() string {
	var integ string
	for i, di := range integOf {
		if di == s.Integ {
			integ = iana.IntegKeyword(i)
		}
	}
	switch s.Cipher {
	case CipherAESGCM:
		return fmt.Sprintf("aes%dgcm%d", s.KeyBits, s.ICV())
	case CipherChaCha20Poly1305:
		return "chacha20poly1305"
	case CipherAESCBC:
		return iana.EncrKeyword(iana.EncrAESCBC, s.KeyBits) + "-" + integ
	case CipherNull:
		return "null-" + integ
	}
	return "none"
}

// ParseSuite reads an ESP suite written as strongSwan writes it:
// aes128gcm16, aes256gcm8, chacha20poly1305, aes128-sha256, aes256-sha512,
// null-sha256 (a trailing DH group, as in aes128gcm16-x25519, is not part of
// the ESP transform and is refused here; the IKE layer strips it). The
// keywords are those of IKE proposals (ike/iana's table); an AEAD suite
// must be spelled out in full (aes128gcm16, not aes128gcm).
func ParseSuite(s string) (Suite, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if id, bits, ok := iana.ParseEncrKeyword(s); ok && id != iana.EncrAESCBC && iana.EncrKeyword(id, bits) == s {
		return SuiteOf(id, bits, iana.IntegNone)
	}
	var bits, icv int
	if n, _ := fmt.Sscanf(s, "aes%dgcm%d", &bits, &icv); n == 2 && s == fmt.Sprintf("aes%dgcm%d", bits, icv) {
		return Suite{}, fmt.Errorf("suite %q: unsupported key size or ICV length", s)
	}
	enc, integ, ok := strings.Cut(s, "-")
	if !ok {
		return Suite{}, fmt.Errorf("suite %q: unknown", s)
	}
	i, ok := iana.ParseIntegKeyword(integ)
	if !ok || integOf[i] == IntegNone {
		return Suite{}, fmt.Errorf("suite %q: unknown integrity %q", s, integ)
	}
	if id, bits, ok := iana.ParseEncrKeyword(enc); ok && id == iana.EncrAESCBC {
		return SuiteOf(id, bits, i)
	}
	if enc == "null" {
		return Suite{Cipher: CipherNull, Integ: integOf[i]}, nil
	}
	return Suite{}, fmt.Errorf("suite %q: unknown cipher %q", s, enc)
}

// SuiteOf is the data plane's suite for the IANA transforms an IKE
// negotiation (or a suite keyword) chose: encryption with its key size and,
// for AES-CBC, integrity (an AEAD cipher ignores integ).
func SuiteOf(encr iana.EncrID, keyBits int, integ iana.IntegID) (Suite, error) {
	switch encr {
	case iana.EncrAESGCM8:
		return Suite{Cipher: CipherAESGCM, KeyBits: keyBits, ICVLen: 8}, nil
	case iana.EncrAESGCM12:
		return Suite{Cipher: CipherAESGCM, KeyBits: keyBits, ICVLen: 12}, nil
	case iana.EncrAESGCM16:
		return Suite{Cipher: CipherAESGCM, KeyBits: keyBits, ICVLen: 16}, nil
	case iana.EncrChaCha20Poly1305:
		return ChaCha20, nil
	case iana.EncrAESCBC:
		su := Suite{Cipher: CipherAESCBC, KeyBits: keyBits, Integ: integOf[integ]}
		if su.Integ == IntegNone {
			return su, fmt.Errorf("integrity %v not supported by the data plane", integ)
		}
		return su, nil
	}
	return Suite{}, fmt.Errorf("cipher %v not supported by the data plane", encr)
}

// integOf maps the IANA integrity transforms to the data plane's.
var integOf = map[iana.IntegID]Integ{
	iana.IntegHMACSHA2_256_128: IntegHMACSHA256,
	iana.IntegHMACSHA2_384_192: IntegHMACSHA384,
	iana.IntegHMACSHA2_512_256: IntegHMACSHA512,
}

func (s Suite) validateKeys(key, integKey []byte) error {
	switch s.Cipher {
	case CipherAESGCM:
		if s.KeyBits != 128 && s.KeyBits != 192 && s.KeyBits != 256 {
			return fmt.Errorf("aes-gcm: key size %d", s.KeyBits)
		}
		if ic := s.ICV(); ic != 8 && ic != 12 && ic != 16 {
			return fmt.Errorf("aes-gcm: icv length %d (8, 12 or 16)", ic)
		}
		if s.Integ != IntegNone {
			return fmt.Errorf("aes-gcm is combined mode: no separate integrity")
		}
	case CipherChaCha20Poly1305:
		if s.KeyBits != 256 || s.ICV() != 16 || s.Integ != IntegNone {
			return fmt.Errorf("chacha20-poly1305: 256-bit key, 16-byte ICV, no separate integrity")
		}
	case CipherAESCBC:
		if s.KeyBits != 128 && s.KeyBits != 192 && s.KeyBits != 256 {
			return fmt.Errorf("aes-cbc: key size %d", s.KeyBits)
		}
		if s.Integ == IntegNone {
			// RFC 4303 §3.2: confidentiality without integrity invites
			// cut-and-paste and padding-oracle attacks; we do not offer it.
			return fmt.Errorf("aes-cbc needs an integrity algorithm")
		}
	case CipherNull:
		if s.Integ == IntegNone {
			return fmt.Errorf("null encryption needs an integrity algorithm")
		}
	default:
		return errNoSuite
	}
	if len(key) != s.KeyLen() {
		return fmt.Errorf("%v: key is %d bytes, want %d", s, len(key), s.KeyLen())
	}
	if len(integKey) != s.IntegKeyLen() {
		return fmt.Errorf("%v: integrity key is %d bytes, want %d", s, len(integKey), s.IntegKeyLen())
	}
	return nil
}

// Crypto is an SA's keyed transform, built once when the SA is made and
// shared by every worker: cipher.AEAD and cipher.Block are safe for
// concurrent use; the stateful HMAC and CBC objects come from a pool.
type Crypto struct {
	Suite Suite
	// AEAD is AES-GCM (internal/gcm, ICV 8, 12 or 16) or ChaCha20-Poly1305
	// for those suites.
	AEAD cipher.AEAD
	// Block is the AES block cipher for AES-CBC.
	Block cipher.Block
	// Salt is the 4-byte nonce salt of the AEAD suites.
	Salt [4]byte
	IV   int // explicit IV length
	ICV  int // ICV length on the wire
	// Align is the padding alignment.
	Align int
	// IVSeed makes AES-CBC IVs unpredictable: the IV of a packet is the
	// seed with the sequence number folded in, encrypted under the SA key
	// (NIST SP 800-38A Appendix C, first method). Random per SA.
	IVSeed [16]byte

	macs sync.Pool // *MAC, for the HMAC suites
	hkey []byte    // HMAC key, needed to build pooled MACs; wiped by Destroy
}

// MAC is a per-goroutine HMAC state with the scratch the non-AEAD suites
// need, taken from and returned to the SA's pool.
type MAC struct {
	H   hash.Hash
	Sum [64]byte
	CBC CBCModes
}

// CBCModes holds reusable CBC encrypter/decrypter whose IV can be reset
// without allocating (crypto/cipher's CBC implements SetIV).
type CBCModes struct {
	Enc, Dec cipher.BlockMode
}

type ivSetter interface{ SetIV([]byte) }

// SetEncIV resets the encrypter's IV.
func (m *CBCModes) SetEncIV(iv []byte) { m.Enc.(ivSetter).SetIV(iv) }

// SetDecIV resets the decrypter's IV.
func (m *CBCModes) SetDecIV(iv []byte) { m.Dec.(ivSetter).SetIV(iv) }

func newCrypto(s Suite, key, integKey []byte) (*Crypto, error) {
	c := &Crypto{Suite: s, IV: s.IVLen(), ICV: s.ICV(), Align: s.Align()}
	switch s.Cipher {
	case CipherAESGCM:
		// internal/gcm: AES-GCM with VAES/VPCLMULQDQ assembly where the
		// CPU has it (2-3x the standard library on ESP-sized packets), and
		// native 8- and 12-byte tags (RFC 4106 §6), which crypto/cipher
		// cannot verify at 8.
		k := key[:len(key)-4]
		copy(c.Salt[:], key[len(key)-4:])
		a, err := gcm.New(k, c.ICV)
		if err != nil {
			return nil, err
		}
		c.AEAD = a
	case CipherChaCha20Poly1305:
		copy(c.Salt[:], key[32:])
		a, err := chacha20poly1305.New(key[:32])
		if err != nil {
			return nil, err
		}
		c.AEAD = a
	case CipherAESCBC:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		c.Block = b
		if _, err := rand.Read(c.IVSeed[:]); err != nil {
			return nil, err
		}
	}
	if s.Integ != IntegNone {
		c.hkey = append([]byte(nil), integKey...)
		var zero [aes.BlockSize]byte
		c.macs.New = func() any {
			m := &MAC{H: hmac.New(c.hashFunc(), c.hkey)}
			if c.Block != nil {
				m.CBC.Enc = cipher.NewCBCEncrypter(c.Block, zero[:])
				m.CBC.Dec = cipher.NewCBCDecrypter(c.Block, zero[:])
				if _, ok := m.CBC.Enc.(ivSetter); !ok {
					// Every Go release since 1.5 has it; fail loudly if not.
					panic("sad: crypto/cipher CBC lost SetIV")
				}
			}
			return m
		}
		// Build one now so a broken key shows up here, not per packet.
		c.PutMAC(c.GetMAC())
	}
	return c, nil
}

func (c *Crypto) hashFunc() func() hash.Hash {
	switch c.Suite.Integ {
	case IntegHMACSHA384:
		return sha512.New384
	case IntegHMACSHA512:
		return sha512.New
	}
	return sha256.New
}

// GetMAC takes a reset HMAC state (and CBC modes) for this SA.
func (c *Crypto) GetMAC() *MAC {
	m := c.macs.Get().(*MAC)
	m.H.Reset()
	return m
}

// PutMAC returns a state taken with GetMAC.
func (c *Crypto) PutMAC(m *MAC) { c.macs.Put(m) }

// Destroy wipes the key material the SA keeps in byte form. The expanded
// AES key schedules inside crypto/aes are not reachable from here; they go
// with the garbage collector once no worker holds the SA.
func (c *Crypto) Destroy() {
	for i := range c.hkey {
		c.hkey[i] = 0
	}
	c.Salt = [4]byte{}
	c.IVSeed = [16]byte{}
}
