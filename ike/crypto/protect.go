package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/ike/iana"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors from Protector.Open. Both mean "drop the message"; RFC 7296 §2.21.2
// says not to answer messages that fail integrity checks.
var (
	// ErrIntegrity: the ICV (or AEAD tag) did not match.
	ErrIntegrity = errors.New("ike/crypto: SK payload failed its integrity check")
	// ErrMalformed: the SK body is too short or not block aligned, or its
	// authenticated plaintext has an impossible Pad Length.
	ErrMalformed = errors.New("ike/crypto: malformed SK payload body")
	// ErrDestroyed: the Protector's keys were destroyed.
	ErrDestroyed = errors.New("ike/crypto: protector used after Destroy")
)

// Protector encrypts and authenticates the body of an Encrypted (SK) payload,
// or of an Encrypted Fragment (SKF) payload, in one direction of an IKE SA
// (RFC 7296 §3.14, RFC 7383 §2.5).
//
// The message layout is
//
//	prefix = IKE header | unencrypted payloads (normally none) | SK generic payload header [| SKF fragment fields]
//	body   = IV | encrypted(inner payloads | Padding | Pad Length) | ICV
//
// and the message on the wire is prefix | body. Both the AEAD's additional
// data (RFC 5282 §5.1, RFC 7634 §4) and the HMAC of the CBC suites (RFC 7296
// §3.14) cover the prefix, so the prefix must be final when Seal is called:
// its Length fields (the IKE header's message length and the SK payload's
// payload length) already count the whole body, ICV included. Compute them
// with SealedLen:
//
//	bodyLen := p.SealedLen(len(inner))
//	skPayloadLen := 4 + bodyLen            // generic header + body
//	msgLen := 28 + 4 + bodyLen             // IKE header + SK payload
//	msg, err := p.Seal(prefix, prefix, inner) // appends the body to prefix
//
// A Protector is safe for concurrent Seal and Open calls. Destroy must not
// race with them. dst must not overlap the plaintext or the body.
type Protector interface {
	// IVLen is the length of the IV at the start of the body.
	IVLen() int
	// ICVLen is the length of the integrity checksum (or AEAD tag) at the
	// end of the body.
	ICVLen() int
	// SealedLen returns the body length Seal produces for plaintextLen
	// octets of inner payloads: IV, padded ciphertext and ICV.
	SealedLen(plaintextLen int) int
	// MaxPlaintextLen returns the largest plaintext length whose sealed body
	// fits in bodyLen octets, or -1 if none does. Fragmentation (RFC 7383)
	// sizes fragments with it.
	MaxPlaintextLen(bodyLen int) int
	// Seal appends the body protecting plaintext to dst and returns the
	// extended slice. prefix is every octet of the message before the IV.
	Seal(dst, prefix, plaintext []byte) ([]byte, error)
	// Open checks and decrypts body (IV through ICV) with prefix as above,
	// appends the inner payloads (without Padding and Pad Length) to dst and
	// returns the extended slice. The integrity check runs in constant time
	// before anything is decrypted (CBC) or released (AEAD).
	Open(dst, prefix, body []byte) ([]byte, error)
	// Destroy wipes the keys this Protector holds.
	Destroy()
}

// NewProtector builds the Protector for suite s from one direction's keys:
// encKey is SK_ei or SK_er (with the 4-octet salt for AEAD suites), integKey
// is SK_ai or SK_ar (empty for AEAD suites). The keys are copied.
func NewProtector(s Suite, encKey, integKey []byte) (Protector, error) {
	if err := s.ValidateCipher(); err != nil {
		return nil, err
	}
	if len(encKey) != s.EncrKeyLen() {
		return nil, fmt.Errorf("ike/crypto: %v needs a %d-octet encryption key, got %d", s.Encr, s.EncrKeyLen(), len(encKey))
	}
	if len(integKey) != s.IntegKeyLen() {
		return nil, fmt.Errorf("ike/crypto: %v needs a %d-octet integrity key, got %d", s.Integ, s.IntegKeyLen(), len(integKey))
	}
	if s.AEAD() {
		return newAEADProtector(s, encKey)
	}
	return newCBCProtector(s, encKey, integKey)
}

// sliceForAppend extends in by n octets, reusing its capacity when it can,
// and returns the whole slice and the new tail.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}

// aeadIVLen is the explicit IV of both RFC 5282 and RFC 7634.
const aeadIVLen = 8

type aeadProtector struct {
	encr   iana.EncrID
	aead   cipher.AEAD  // 16-octet tag except for GCM-12
	block  cipher.Block // AES, kept for GCM-8 (see openTruncated)
	icvLen int
	salt   [saltLen]byte
	key    []byte // our copy of the cipher key, wiped by Destroy

	// IVs are a per-key counter XORed with a random mask: unique for this
	// Protector as RFC 5282 §3.1 and RFC 7634 §2 require, and two Protectors
	// wrongly built from the same key still collide only by chance.
	ivMask uint64
	ivSeq  atomic.Uint64
}

func newAEADProtector(s Suite, encKey []byte) (*aeadProtector, error) {
	key, salt, err := SplitSalt(encKey)
	if err != nil {
		return nil, err
	}
	p := &aeadProtector{encr: s.Encr, key: append([]byte(nil), key...)}
	copy(p.salt[:], salt)
	switch s.Encr {
	case iana.EncrChaCha20Poly1305:
		p.aead, err = chacha20poly1305.New(p.key)
		p.icvLen = chacha20poly1305.Overhead
	default:
		p.block, err = aes.NewCipher(p.key)
		if err != nil {
			break
		}
		switch s.Encr {
		case iana.EncrAESGCM8:
			// Go's GCM takes tags of 12 to 16 octets, so GCM-8 seals with a
			// full tag and sends its first 8 octets (a GCM tag truncates to
			// its leftmost bits, NIST SP 800-38D §5.2.1.2).
			p.aead, err = cipher.NewGCM(p.block)
			p.icvLen = 8
		case iana.EncrAESGCM12:
			p.aead, err = cipher.NewGCMWithTagSize(p.block, 12)
			p.icvLen = 12
		default:
			p.aead, err = cipher.NewGCM(p.block)
			p.icvLen = 16
		}
	}
	if err != nil {
		Zero(p.key)
		return nil, fmt.Errorf("ike/crypto: %v: %w", s.Encr, err)
	}
	var mask [8]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return nil, fmt.Errorf("ike/crypto: IV mask: %w", err)
	}
	p.ivMask = binary.BigEndian.Uint64(mask[:])
	return p, nil
}

func (p *aeadProtector) IVLen() int  { return aeadIVLen }
func (p *aeadProtector) ICVLen() int { return p.icvLen }

// SealedLen: AEAD suites need no block padding, so the sender adds none and
// only the Pad Length octet (RFC 5282 §3, RFC 7634 §4).
func (p *aeadProtector) SealedLen(n int) int { return aeadIVLen + n + 1 + p.icvLen }

func (p *aeadProtector) MaxPlaintextLen(bodyLen int) int {
	return max(bodyLen-aeadIVLen-1-p.icvLen, -1)
}

func (p *aeadProtector) nonce(iv []byte) []byte {
	n := make([]byte, 0, saltLen+aeadIVLen)
	return append(append(n, p.salt[:]...), iv...)
}

func (p *aeadProtector) Seal(dst, prefix, plaintext []byte) ([]byte, error) {
	if p.aead == nil {
		return nil, ErrDestroyed
	}
	seq := p.ivSeq.Add(1)
	if seq == 0 {
		// 2^64 messages under one key: never in practice, but a repeated
		// nonce would be fatal, so refuse rather than wrap.
		return nil, fmt.Errorf("ike/crypto: %v IV space exhausted", p.encr)
	}
	var iv [aeadIVLen]byte
	binary.BigEndian.PutUint64(iv[:], seq^p.ivMask)
	return p.sealWithIV(dst, prefix, iv[:], plaintext), nil
}

// sealWithIV seals with a given IV; known-answer tests use it directly.
func (p *aeadProtector) sealWithIV(dst, prefix, iv, plaintext []byte) []byte {
	n := len(plaintext) + 1
	ret, out := sliceForAppend(dst, aeadIVLen+n+p.aead.Overhead())
	copy(out, iv)
	inner := out[aeadIVLen : aeadIVLen+n]
	copy(inner, plaintext)
	inner[n-1] = 0 // Pad Length: no padding
	p.aead.Seal(inner[:0], p.nonce(iv), inner, prefix)
	// GCM-8 sealed a 16-octet tag; keep its leftmost 8 octets.
	return ret[:len(ret)-(p.aead.Overhead()-p.icvLen)]
}

func (p *aeadProtector) Open(dst, prefix, body []byte) ([]byte, error) {
	if p.aead == nil {
		return nil, ErrDestroyed
	}
	if len(body) < aeadIVLen+1+p.icvLen {
		return nil, fmt.Errorf("%w: %d octets, need at least %d for %v", ErrMalformed, len(body), aeadIVLen+1+p.icvLen, p.encr)
	}
	nonce := p.nonce(body[:aeadIVLen])
	ct := body[aeadIVLen:]
	var (
		ret []byte
		err error
	)
	if p.icvLen == p.aead.Overhead() {
		ret, err = p.aead.Open(dst, nonce, ct, prefix)
	} else {
		ret, err = p.openTruncated(dst, nonce, ct, prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrIntegrity, p.encr)
	}
	return stripPadding(dst, ret)
}

// openTruncated opens GCM with a tag shorter than Go's GCM accepts: decrypt
// with the GCM key stream (CTR from inc32(J0) = nonce | 2), seal the result
// again to get the full tag, and compare its leftmost octets in constant
// time. The plaintext is released only after a match.
func (p *aeadProtector) openTruncated(dst, nonce, ct, aad []byte) ([]byte, error) {
	ctLen := len(ct) - p.icvLen
	ret, out := sliceForAppend(dst, ctLen)
	var ctr [aes.BlockSize]byte
	copy(ctr[:], nonce)
	ctr[aes.BlockSize-1] = 2
	cipher.NewCTR(p.block, ctr[:]).XORKeyStream(out, ct[:ctLen])
	full := p.aead.Seal(nil, nonce, out, aad)
	if subtle.ConstantTimeCompare(full[ctLen:ctLen+p.icvLen], ct[ctLen:]) != 1 {
		Zero(out)
		return nil, ErrIntegrity
	}
	return ret, nil
}

func (p *aeadProtector) Destroy() {
	Zero(p.key)
	Zero(p.salt[:])
	p.aead, p.block = nil, nil
}

// stripPadding removes Padding and the Pad Length octet from the decrypted
// plaintext appended to dst (ret = dst | plaintext). RFC 7296 §3.14 lets
// the receiver ignore the padding's contents; only its length is checked.
func stripPadding(dst, ret []byte) ([]byte, error) {
	pt := ret[len(dst):]
	if len(pt) == 0 {
		return nil, fmt.Errorf("%w: no Pad Length octet", ErrMalformed)
	}
	padLen := int(pt[len(pt)-1])
	if padLen+1 > len(pt) {
		Zero(pt)
		return nil, fmt.Errorf("%w: Pad Length %d exceeds the %d decrypted octets", ErrMalformed, padLen, len(pt))
	}
	return ret[:len(ret)-padLen-1], nil
}

type cbcProtector struct {
	block    cipher.Block
	integ    iana.IntegID
	newHash  func() hash.Hash
	icvLen   int
	encKey   []byte
	integKey []byte
}

func newCBCProtector(s Suite, encKey, integKey []byte) (*cbcProtector, error) {
	p := &cbcProtector{
		integ:    s.Integ,
		encKey:   append([]byte(nil), encKey...),
		integKey: append([]byte(nil), integKey...),
	}
	// RFC 4868 §2.1: the ICV is the leftmost half of the HMAC output.
	switch s.Integ {
	case iana.IntegHMACSHA2_256_128:
		p.newHash, p.icvLen = sha256.New, 16
	case iana.IntegHMACSHA2_384_192:
		p.newHash, p.icvLen = sha512.New384, 24
	case iana.IntegHMACSHA2_512_256:
		p.newHash, p.icvLen = sha512.New, 32
	}
	var err error
	if p.block, err = aes.NewCipher(p.encKey); err != nil {
		p.Destroy()
		return nil, fmt.Errorf("ike/crypto: %v: %w", s.Encr, err)
	}
	return p, nil
}

func (p *cbcProtector) IVLen() int  { return aes.BlockSize }
func (p *cbcProtector) ICVLen() int { return p.icvLen }

func (p *cbcProtector) SealedLen(n int) int {
	return aes.BlockSize + paddedLen(n) + p.icvLen
}

// paddedLen rounds plaintext plus the Pad Length octet up to whole blocks.
func paddedLen(n int) int {
	return (n + 1 + aes.BlockSize - 1) / aes.BlockSize * aes.BlockSize
}

func (p *cbcProtector) MaxPlaintextLen(bodyLen int) int {
	blocks := (bodyLen - aes.BlockSize - p.icvLen) / aes.BlockSize
	if bodyLen-aes.BlockSize-p.icvLen < 0 || blocks < 1 {
		return -1
	}
	return blocks*aes.BlockSize - 1
}

func (p *cbcProtector) icv(prefix, ivAndCiphertext []byte) []byte {
	m := hmac.New(p.newHash, p.integKey)
	m.Write(prefix)
	m.Write(ivAndCiphertext)
	return m.Sum(nil)[:p.icvLen]
}

func (p *cbcProtector) Seal(dst, prefix, plaintext []byte) ([]byte, error) {
	if p.block == nil {
		return nil, ErrDestroyed
	}
	padded := paddedLen(len(plaintext))
	ret, out := sliceForAppend(dst, aes.BlockSize+padded+p.icvLen)
	iv := out[:aes.BlockSize]
	// RFC 7296 §3.14: the IV must be unpredictable, so it is random rather
	// than chained from the previous message.
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("ike/crypto: CBC IV: %w", err)
	}
	return p.sealWithIV(ret, out, prefix, plaintext, padded), nil
}

// sealWithIV finishes a body whose IV is already in out[:16].
func (p *cbcProtector) sealWithIV(ret, out, prefix, plaintext []byte, padded int) []byte {
	iv := out[:aes.BlockSize]
	inner := out[aes.BlockSize : aes.BlockSize+padded]
	copy(inner, plaintext)
	clear(inner[len(plaintext) : padded-1])
	inner[padded-1] = byte(padded - len(plaintext) - 1)
	cipher.NewCBCEncrypter(p.block, iv).CryptBlocks(inner, inner)
	copy(out[aes.BlockSize+padded:], p.icv(prefix, out[:aes.BlockSize+padded]))
	return ret
}

func (p *cbcProtector) Open(dst, prefix, body []byte) ([]byte, error) {
	if p.block == nil {
		return nil, ErrDestroyed
	}
	ctLen := len(body) - aes.BlockSize - p.icvLen
	if ctLen < aes.BlockSize || ctLen%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: %d octets is not IV | whole AES blocks | %d-octet ICV", ErrMalformed, len(body), p.icvLen)
	}
	signed, icv := body[:len(body)-p.icvLen], body[len(body)-p.icvLen:]
	if !hmac.Equal(p.icv(prefix, signed), icv) {
		return nil, fmt.Errorf("%w (%v)", ErrIntegrity, p.integ)
	}
	ret, out := sliceForAppend(dst, ctLen)
	cipher.NewCBCDecrypter(p.block, body[:aes.BlockSize]).CryptBlocks(out, signed[aes.BlockSize:])
	return stripPadding(dst, ret)
}

func (p *cbcProtector) Destroy() {
	Zero(p.encKey)
	Zero(p.integKey)
	p.block = nil
}
