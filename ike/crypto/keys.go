package crypto

import (
	"encoding/binary"
	"fmt"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// SKEYSEED returns prf(Ni | Nr, g^ir) (RFC 7296 §2.14). The nonces are the
// Nonce payload bodies; sharedSecret is the key exchange output (for MODP
// left-padded to the prime length, for ECP the x coordinate). The caller
// zeroes the result once the keys are expanded.
func SKEYSEED(p PRF, ni, nr, sharedSecret []byte) []byte {
	// HMAC takes any key length, so the whole Ni | Nr is the key; the
	// half-and-half rule of §2.14 applies only to fixed-key PRFs.
	key := make([]byte, 0, len(ni)+len(nr))
	key = append(append(key, ni...), nr...)
	out := p.Compute(key, sharedSecret)
	Zero(key)
	return out
}

// RekeySKEYSEED returns prf(SK_d(old), g^ir(new) | Ni | Nr), the SKEYSEED of
// an IKE SA created by rekeying (RFC 7296 §2.18). p must be the old IKE SA's
// PRF: the rekey exchange belongs to the old SA, even when the new SA
// negotiated another PRF. The nonces are those of the CREATE_CHILD_SA
// exchange. additional are the shared secrets of IKE_FOLLOWUP_KE exchanges,
// which RFC 9370 §2.2.4 appends after the nonces:
//
//	SKEYSEED = prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))
//
// With no additional secrets and the current SA's PRF and SK_d, the same
// formula is the IKE_INTERMEDIATE chaining step of RFC 9370 §2.2.2,
// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), with the IKE_SA_INIT nonces.
func RekeySKEYSEED(p PRF, oldSKd, sharedSecret, ni, nr []byte, additional ...[]byte) []byte {
	parts := append([][]byte{sharedSecret, ni, nr}, additional...)
	return p.Compute(oldSKd, parts...)
}

// IKEKeys holds the seven keys of an IKE SA (RFC 7296 §2.14). SKei and SKer
// carry the 4-octet salt at their end for AEAD suites; SKai and SKar are empty
// for AEAD suites. All slices share one backing array that Destroy wipes.
type IKEKeys struct {
	Suite                                   Suite
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte

	buf []byte
}

// ExpandIKEKeys computes
//
//	{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
//
// with lengths from the suite (RFC 7296 §2.14). SPIs are the 8-octet IKE SPIs
// read as big-endian integers, as they appear in the IKE header.
func ExpandIKEKeys(s Suite, skeyseed, ni, nr []byte, spiI, spiR uint64) (*IKEKeys, error) {
	if err := s.ValidateIKE(); err != nil {
		return nil, err
	}
	p, _ := NewPRF(s.PRF)
	seed := make([]byte, 0, len(ni)+len(nr)+16)
	seed = append(append(seed, ni...), nr...)
	seed = binary.BigEndian.AppendUint64(seed, spiI)
	seed = binary.BigEndian.AppendUint64(seed, spiR)

	pk, ik, ek := p.KeyLen(), s.IntegKeyLen(), s.EncrKeyLen()
	buf, err := PRFPlus(p, skeyseed, seed, 3*pk+2*ik+2*ek)
	if err != nil {
		return nil, fmt.Errorf("ike/crypto: IKE SA keys for %v: %w", s, err)
	}
	k := &IKEKeys{Suite: s, buf: buf}
	take := func(n int) []byte {
		b := buf[:n:n]
		buf = buf[n:]
		return b
	}
	k.SKd = take(pk)
	k.SKai = take(ik)
	k.SKar = take(ik)
	k.SKei = take(ek)
	k.SKer = take(ek)
	k.SKpi = take(pk)
	k.SKpr = take(pk)
	return k, nil
}

// DeriveIKEKeys computes SKEYSEED from the IKE_SA_INIT exchange and expands
// it; SKEYSEED itself is wiped before returning.
func DeriveIKEKeys(s Suite, ni, nr, sharedSecret []byte, spiI, spiR uint64) (*IKEKeys, error) {
	p, err := NewPRF(s.PRF)
	if err != nil {
		return nil, err
	}
	skeyseed := SKEYSEED(p, ni, nr, sharedSecret)
	defer Zero(skeyseed)
	return ExpandIKEKeys(s, skeyseed, ni, nr, spiI, spiR)
}

// DeriveRekeyedIKEKeys computes the keys of the IKE SA that replaces one whose
// PRF is oldPRF and whose SK_d is oldSKd (RFC 7296 §2.18). s is the new SA's
// suite; nonces and SPIs are those of the new SA, exchanged in
// CREATE_CHILD_SA; additional are RFC 9370 follow-up secrets (see
// RekeySKEYSEED).
func DeriveRekeyedIKEKeys(oldPRF iana.PRFID, oldSKd []byte, s Suite, sharedSecret, ni, nr []byte, spiI, spiR uint64, additional ...[]byte) (*IKEKeys, error) {
	p, err := NewPRF(oldPRF)
	if err != nil {
		return nil, err
	}
	skeyseed := RekeySKEYSEED(p, oldSKd, sharedSecret, ni, nr, additional...)
	defer Zero(skeyseed)
	return ExpandIKEKeys(s, skeyseed, ni, nr, spiI, spiR)
}

// Protectors returns the SK payload protectors of this IKE SA: out seals
// messages this end sends, in opens the ones it receives. The initiator sends
// with SK_ei/SK_ai, the responder with SK_er/SK_ar (RFC 7296 §2.14).
func (k *IKEKeys) Protectors(initiator bool) (out, in Protector, err error) {
	ei, ai, er, ar := k.SKei, k.SKai, k.SKer, k.SKar
	if !initiator {
		ei, ai, er, ar = er, ar, ei, ai
	}
	if out, err = NewProtector(k.Suite, ei, ai); err != nil {
		return nil, nil, err
	}
	if in, err = NewProtector(k.Suite, er, ar); err != nil {
		out.Destroy()
		return nil, nil, err
	}
	return out, in, nil
}

// Destroy wipes all seven keys.
func (k *IKEKeys) Destroy() {
	Zero(k.buf)
	k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr, k.buf = nil, nil, nil, nil, nil, nil, nil, nil
}

// ESPKeys are the keys of one direction of an ESP SA. For AEAD ciphers Encr
// is the cipher key followed by the 4-octet salt (see SplitSalt) and Integ
// is empty.
type ESPKeys struct {
	Encr, Integ []byte
}

// ChildKeys holds the keys of an ESP Child SA pair.
type ChildKeys struct {
	Suite Suite
	// InitiatorToResponder protects traffic sent by the initiator of the
	// exchange that created this Child SA (IKE_AUTH or CREATE_CHILD_SA: the
	// end whose nonce is Ni), which is not always the IKE SA's initiator.
	InitiatorToResponder ESPKeys
	ResponderToInitiator ESPKeys

	buf []byte
}

// DeriveChildKeys computes the KEYMAT of an ESP Child SA (RFC 7296 §2.17,
// RFC 9370 §2.2.4):
//
//	KEYMAT = prf+(SK_d, Ni | Nr)                                without PFS
//	KEYMAT = prf+(SK_d, g^ir (new) | Ni | Nr)                   with a KE payload
//	KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n))  with IKE_FOLLOWUP_KE
//
// with the PRF of the IKE SA. secrets are the key exchange outputs of the
// exchange in order (none, SK(0), or SK(0) to SK(n)); Ni and Nr are the
// nonces of the exchange that creates the Child SA (those of IKE_SA_INIT for
// the Child SA of IKE_AUTH). Keys are taken in the order of §2.17: all keys
// for initiator-to-responder first, each direction's encryption key (with
// salt) before its integrity key.
func DeriveChildKeys(p PRF, skd []byte, esp Suite, ni, nr []byte, secrets ...[]byte) (*ChildKeys, error) {
	if err := esp.ValidateCipher(); err != nil {
		return nil, err
	}
	n := len(ni) + len(nr)
	for _, s := range secrets {
		n += len(s)
	}
	seed := make([]byte, 0, n)
	if len(secrets) > 0 {
		seed = append(seed, secrets[0]...)
	}
	seed = append(append(seed, ni...), nr...)
	for _, s := range secrets[min(1, len(secrets)):] {
		seed = append(seed, s...)
	}
	defer Zero(seed)

	ek, ik := esp.EncrKeyLen(), esp.IntegKeyLen()
	buf, err := PRFPlus(p, skd, seed, 2*(ek+ik))
	if err != nil {
		return nil, fmt.Errorf("ike/crypto: Child SA keys for %v: %w", esp, err)
	}
	k := &ChildKeys{Suite: esp, buf: buf}
	take := func(n int) []byte {
		b := buf[:n:n]
		buf = buf[n:]
		return b
	}
	k.InitiatorToResponder.Encr = take(ek)
	k.InitiatorToResponder.Integ = take(ik)
	k.ResponderToInitiator.Encr = take(ek)
	k.ResponderToInitiator.Integ = take(ik)
	return k, nil
}

// Destroy wipes both directions' keys.
func (k *ChildKeys) Destroy() {
	Zero(k.buf)
	k.InitiatorToResponder, k.ResponderToInitiator, k.buf = ESPKeys{}, ESPKeys{}, nil
}

// SplitSalt splits an AEAD key from the key stream into the cipher key and the
// trailing 4-octet salt (RFC 5282 §7.1, RFC 4106 §8.1, RFC 7634 §2). The
// results alias k.
func SplitSalt(k []byte) (key, salt []byte, err error) {
	if len(k) <= saltLen {
		return nil, nil, fmt.Errorf("ike/crypto: AEAD key material of %d octets is too short for a salt", len(k))
	}
	return k[: len(k)-saltLen : len(k)-saltLen], k[len(k)-saltLen:], nil
}
