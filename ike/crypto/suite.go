package crypto

import (
	"fmt"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// Suite is a negotiated set of transforms. The same type describes the IKE
// SA's protection (all four fields) and an ESP Child SA's cipher (PRF is
// ignored there: Child SA keys come from the IKE SA's PRF).
type Suite struct {
	Encr iana.EncrID
	// KeyBits is the Key Length attribute of the ENCR transform: 128, 192 or
	// 256 for the AES ciphers; 0 or 256 for ChaCha20-Poly1305, which has a
	// fixed key and no attribute (RFC 7634 §2).
	KeyBits int
	// Integ must be iana.IntegNone with an AEAD cipher (RFC 5282 §8, RFC 7634 §4)
	// and one of the HMAC-SHA2 transforms with AES-CBC.
	Integ iana.IntegID
	PRF   iana.PRFID
}

func (s Suite) String() string {
	if s.AEAD() {
		return fmt.Sprintf("%v/%d/%v", s.Encr, s.keyBits(), s.PRF)
	}
	return fmt.Sprintf("%v/%d/%v/%v", s.Encr, s.keyBits(), s.Integ, s.PRF)
}

// AEAD reports whether the encryption transform is a combined mode cipher.
func (s Suite) AEAD() bool {
	switch s.Encr {
	case iana.EncrAESGCM8, iana.EncrAESGCM12, iana.EncrAESGCM16, iana.EncrChaCha20Poly1305:
		return true
	}
	return false
}

func (s Suite) keyBits() int {
	if s.Encr == iana.EncrChaCha20Poly1305 {
		return 256
	}
	return s.KeyBits
}

// saltLen is the implicit nonce part carried at the end of every AEAD key
// (RFC 5282 §7.1, RFC 4106 §8.1, RFC 7634 §2).
const saltLen = 4

// EncrKeyLen returns the octets taken from the key stream for one encryption
// key: the cipher key plus, for AEAD ciphers, the 4-octet salt.
func (s Suite) EncrKeyLen() int {
	n := s.keyBits() / 8
	if s.AEAD() {
		n += saltLen
	}
	return n
}

// IntegKeyLen returns the octets taken for one integrity key: 0 for AEAD
// ciphers, else the HMAC key length of RFC 4868 §2.1.1 (the hash output
// length).
func (s Suite) IntegKeyLen() int {
	switch s.Integ {
	case iana.IntegHMACSHA2_256_128:
		return 32
	case iana.IntegHMACSHA2_384_192:
		return 48
	case iana.IntegHMACSHA2_512_256:
		return 64
	}
	return 0
}

// ValidateCipher checks the Encr, KeyBits and Integ fields: the cipher and
// integrity transforms are implemented, the key length fits the cipher, and
// integrity is present exactly when the cipher is not an AEAD.
func (s Suite) ValidateCipher() error {
	switch s.Encr {
	case iana.EncrAESCBC, iana.EncrAESGCM8, iana.EncrAESGCM12, iana.EncrAESGCM16:
		switch s.KeyBits {
		case 128, 192, 256:
		default:
			return fmt.Errorf("ike/crypto: %v with key length %d bits", s.Encr, s.KeyBits)
		}
	case iana.EncrChaCha20Poly1305:
		if s.KeyBits != 0 && s.KeyBits != 256 {
			return fmt.Errorf("ike/crypto: %v with key length %d bits", s.Encr, s.KeyBits)
		}
	default:
		return fmt.Errorf("ike/crypto: unsupported encryption transform %v", s.Encr)
	}
	switch {
	case s.AEAD() && s.Integ != iana.IntegNone:
		return fmt.Errorf("ike/crypto: AEAD %v combined with integrity %v", s.Encr, s.Integ)
	case !s.AEAD() && s.IntegKeyLen() == 0:
		return fmt.Errorf("ike/crypto: %v needs an integrity transform, got %v", s.Encr, s.Integ)
	}
	return nil
}

// ValidateIKE checks the whole suite for use by an IKE SA, PRF included.
func (s Suite) ValidateIKE() error {
	if err := s.ValidateCipher(); err != nil {
		return err
	}
	_, err := NewPRF(s.PRF)
	return err
}
