package crypto

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// ErrInvalidPublicKey is returned (wrapped) when a peer's key exchange data
// has the wrong length or is not a valid group element. RFC 7296 §3.4 and RFC
// 6989 ask for the IKE SA to fail rather than go on with such a value.
var ErrInvalidPublicKey = errors.New("ike/crypto: invalid peer key exchange data")

// KeyExchange is this end's half of one key exchange: a Diffie-Hellman key
// pair, or the decapsulation key of a KEM initiator. The KE payload carries
// PublicKey; the peer's KE payload data goes to SharedSecret.
type KeyExchange interface {
	Group() iana.GroupID
	// PublicKey returns the Key Exchange Data to send, in the group's IKE
	// encoding (see NewKeyExchange).
	PublicKey() []byte
	// SharedSecret validates the peer's Key Exchange Data and returns the
	// shared secret (g^ir, or the KEM shared key). The caller owns and
	// zeroes the result.
	SharedSecret(peerPublic []byte) ([]byte, error)
	// Destroy forgets the private key. Afterwards SharedSecret fails.
	Destroy()
}

// NewKeyExchange generates a fresh private key for group g. Encodings of
// PublicKey and of the shared secret:
//
//   - MODP 14, 15, 16: g^x as a big-endian integer left-padded to the prime
//     length (RFC 7296 §3.4); the secret likewise (RFC 7296 §2.14).
//   - ECP 19, 20, 21: x | y, each coordinate at the field size, without the
//     SEC 1 0x04 prefix (RFC 5903 §7); the secret is the x coordinate alone.
//   - Curve25519: the 32-octet u coordinate, secret likewise (RFC 8031 §2).
//   - ML-KEM-768/1024: this end is the KEM initiator: PublicKey is the
//     encapsulation key and SharedSecret takes the responder's ciphertext
//     (draft-ietf-ipsecme-ikev2-mlkem §2.2). The responder uses Encapsulate.
func NewKeyExchange(g iana.GroupID) (KeyExchange, error) {
	switch g {
	case iana.GroupMODP2048, iana.GroupMODP3072, iana.GroupMODP4096:
		return newMODP(g)
	case iana.GroupECP256, iana.GroupECP384, iana.GroupECP521, iana.GroupCurve25519:
		return newECDH(g, nil)
	case iana.GroupMLKEM768, iana.GroupMLKEM1024:
		return newMLKEMInitiator(g)
	}
	return nil, fmt.Errorf("ike/crypto: unsupported key exchange method %v", g)
}

// RespondKeyExchange is the responder's side of one exchange, the same for
// Diffie-Hellman and KEMs: it takes the initiator's Key Exchange Data and
// returns the data to send back and the shared secret. For Diffie-Hellman it
// generates a key pair and forgets the private half; for ML-KEM it
// encapsulates to the initiator's key.
func RespondKeyExchange(g iana.GroupID, peerPublic []byte) (public, secret []byte, err error) {
	if g == iana.GroupMLKEM768 || g == iana.GroupMLKEM1024 {
		return Encapsulate(g, peerPublic)
	}
	kx, err := NewKeyExchange(g)
	if err != nil {
		return nil, nil, err
	}
	defer kx.Destroy()
	secret, err = kx.SharedSecret(peerPublic)
	if err != nil {
		return nil, nil, err
	}
	return kx.PublicKey(), secret, nil
}

var errKXDestroyed = errors.New("ike/crypto: key exchange used after Destroy")

// modpGroup is one RFC 3526 group.
type modpGroup struct {
	id   iana.GroupID
	p    *big.Int
	size int // octets of p
}

var modpGroups = sync.OnceValue(func() map[iana.GroupID]*modpGroup {
	m := make(map[iana.GroupID]*modpGroup)
	for _, g := range []struct {
		id  iana.GroupID
		hex string
	}{{iana.GroupMODP2048, modp2048Hex}, {iana.GroupMODP3072, modp3072Hex}, {iana.GroupMODP4096, modp4096Hex}} {
		p, ok := new(big.Int).SetString(g.hex, 16)
		if !ok {
			panic("ike/crypto: bad built-in MODP prime") // a constant in this package; cannot happen
		}
		m[g.id] = &modpGroup{id: g.id, p: p, size: (p.BitLen() + 7) / 8}
	}
	return m
})

var bigTwo = big.NewInt(2)

type modpKeyExchange struct {
	g   *modpGroup
	x   *big.Int
	pub []byte
}

func newMODP(id iana.GroupID) (*modpKeyExchange, error) {
	g := modpGroups()[id]
	// A full-length exponent, uniform in [2, p-2], as strongSwan does by
	// default (ANSI X9.42); RFC 3526 §8's shorter exponents would be faster
	// but rest on an estimate of the group's strength.
	limit := new(big.Int).Sub(g.p, big.NewInt(3))
	x, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("ike/crypto: %v private key: %w", id, err)
	}
	x.Add(x, bigTwo)
	y := new(big.Int).Exp(bigTwo, x, g.p)
	return &modpKeyExchange{g: g, x: x, pub: y.FillBytes(make([]byte, g.size))}, nil
}

func (k *modpKeyExchange) Group() iana.GroupID { return k.g.id }
func (k *modpKeyExchange) PublicKey() []byte   { return append([]byte(nil), k.pub...) }

// SharedSecret checks 1 < y < p-1: with the safe primes of RFC 3526 that rules
// out the only small subgroups, of order 1 and 2 (RFC 6989 §2.2). Note that
// math/big's Exp does not run in constant time; the exponent is ephemeral
// and used twice.
func (k *modpKeyExchange) SharedSecret(peer []byte) ([]byte, error) {
	if k.x == nil {
		return nil, errKXDestroyed
	}
	if len(peer) != k.g.size {
		return nil, fmt.Errorf("%w: %v public value of %d octets, want %d", ErrInvalidPublicKey, k.g.id, len(peer), k.g.size)
	}
	y := new(big.Int).SetBytes(peer)
	pMinus1 := new(big.Int).Sub(k.g.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pMinus1) >= 0 {
		return nil, fmt.Errorf("%w: %v public value outside 1 < y < p-1", ErrInvalidPublicKey, k.g.id)
	}
	z := new(big.Int).Exp(y, k.x, k.g.p)
	out := z.FillBytes(make([]byte, k.g.size))
	clear(z.Bits())
	return out, nil
}

func (k *modpKeyExchange) Destroy() {
	if k.x != nil {
		clear(k.x.Bits())
		k.x = nil
	}
}

type ecdhKeyExchange struct {
	id       iana.GroupID
	curve    ecdh.Curve
	priv     *ecdh.PrivateKey
	pub      []byte
	coordLen int
	sec1     bool // NIST curve: IKE drops the SEC 1 0x04 prefix
}

// newECDH makes a key pair for g; a non-nil privateKey fixes the private key
// (tests use the RFC vectors' keys).
func newECDH(g iana.GroupID, privateKey []byte) (*ecdhKeyExchange, error) {
	k := &ecdhKeyExchange{id: g, sec1: true}
	switch g {
	case iana.GroupECP256:
		k.curve, k.coordLen = ecdh.P256(), 32
	case iana.GroupECP384:
		k.curve, k.coordLen = ecdh.P384(), 48
	case iana.GroupECP521:
		k.curve, k.coordLen = ecdh.P521(), 66
	case iana.GroupCurve25519:
		k.curve, k.coordLen, k.sec1 = ecdh.X25519(), 32, false
	default:
		return nil, fmt.Errorf("ike/crypto: %v is not an elliptic curve group", g)
	}
	var err error
	if privateKey != nil {
		k.priv, err = k.curve.NewPrivateKey(privateKey)
	} else {
		k.priv, err = k.curve.GenerateKey(rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("ike/crypto: %v private key: %w", g, err)
	}
	k.pub = k.priv.PublicKey().Bytes()
	if k.sec1 {
		k.pub = k.pub[1:]
	}
	return k, nil
}

func (k *ecdhKeyExchange) Group() iana.GroupID { return k.id }
func (k *ecdhKeyExchange) PublicKey() []byte   { return append([]byte(nil), k.pub...) }

func (k *ecdhKeyExchange) SharedSecret(peer []byte) ([]byte, error) {
	if k.priv == nil {
		return nil, errKXDestroyed
	}
	want := k.coordLen
	if k.sec1 {
		want *= 2
	}
	if len(peer) != want {
		return nil, fmt.Errorf("%w: %v public value of %d octets, want %d", ErrInvalidPublicKey, k.id, len(peer), want)
	}
	enc := peer
	if k.sec1 {
		enc = append([]byte{4}, peer...)
	}
	// NewPublicKey checks that the point is on the curve and not the
	// identity (RFC 5903 §9, RFC 6989 §2.3).
	pk, err := k.curve.NewPublicKey(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, k.id, err)
	}
	s, err := k.priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, k.id, err)
	}
	// RFC 8031 §2.3: an all-zero X25519 result means a low-order peer
	// point. crypto/ecdh already refuses it; check anyway, in constant time.
	if subtle.ConstantTimeCompare(s, make([]byte, len(s))) == 1 {
		return nil, fmt.Errorf("%w: %v shared secret is zero", ErrInvalidPublicKey, k.id)
	}
	return s, nil
}

// Destroy drops the private key; crypto/ecdh keeps no wipeable copy we can
// reach, so the memory goes to the garbage collector.
func (k *ecdhKeyExchange) Destroy() { k.priv = nil }

// MLKEMInitiator is the initiator's side of an ML-KEM key exchange: it holds
// the decapsulation key and sends the encapsulation key.
type MLKEMInitiator struct {
	id     iana.GroupID
	dk768  *mlkem.DecapsulationKey768
	dk1024 *mlkem.DecapsulationKey1024
	pub    []byte
}

// NewMLKEM768Initiator generates an ML-KEM-768 decapsulation key.
func NewMLKEM768Initiator() (*MLKEMInitiator, error) { return newMLKEMInitiator(iana.GroupMLKEM768) }

// NewMLKEM1024Initiator generates an ML-KEM-1024 decapsulation key.
func NewMLKEM1024Initiator() (*MLKEMInitiator, error) { return newMLKEMInitiator(iana.GroupMLKEM1024) }

func newMLKEMInitiator(g iana.GroupID) (*MLKEMInitiator, error) {
	k := &MLKEMInitiator{id: g}
	var err error
	switch g {
	case iana.GroupMLKEM768:
		if k.dk768, err = mlkem.GenerateKey768(); err == nil {
			k.pub = k.dk768.EncapsulationKey().Bytes()
		}
	case iana.GroupMLKEM1024:
		if k.dk1024, err = mlkem.GenerateKey1024(); err == nil {
			k.pub = k.dk1024.EncapsulationKey().Bytes()
		}
	default:
		return nil, fmt.Errorf("ike/crypto: %v is not an ML-KEM method", g)
	}
	if err != nil {
		return nil, fmt.Errorf("ike/crypto: %v key generation: %w", g, err)
	}
	return k, nil
}

// Group returns iana.GroupMLKEM768 or iana.GroupMLKEM1024.
func (k *MLKEMInitiator) Group() iana.GroupID { return k.id }

// PublicKey returns the encapsulation key (1184 octets for ML-KEM-768, 1568
// for ML-KEM-1024).
func (k *MLKEMInitiator) PublicKey() []byte { return append([]byte(nil), k.pub...) }

// SharedSecret decapsulates the responder's ciphertext (1088 or 1568
// octets) into the 32-octet shared key. ML-KEM rejects a tampered ciphertext
// implicitly: it yields an unrelated key rather than an error, so the damage
// shows up as an AUTH failure later.
func (k *MLKEMInitiator) SharedSecret(ciphertext []byte) ([]byte, error) {
	var (
		s   []byte
		err error
	)
	switch {
	case k.dk768 != nil:
		s, err = k.dk768.Decapsulate(ciphertext)
	case k.dk1024 != nil:
		s, err = k.dk1024.Decapsulate(ciphertext)
	default:
		return nil, errKXDestroyed
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, k.id, err)
	}
	return s, nil
}

// Destroy drops the decapsulation key.
func (k *MLKEMInitiator) Destroy() { k.dk768, k.dk1024 = nil, nil }

// Encapsulate is the responder's side of an ML-KEM exchange: it checks the
// initiator's encapsulation key and returns the ciphertext for the
// responder's KE payload and the 32-octet shared key.
func Encapsulate(g iana.GroupID, encapsulationKey []byte) (ciphertext, sharedSecret []byte, err error) {
	switch g {
	case iana.GroupMLKEM768:
		ek, err := mlkem.NewEncapsulationKey768(encapsulationKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, g, err)
		}
		sharedSecret, ciphertext = ek.Encapsulate()
	case iana.GroupMLKEM1024:
		ek, err := mlkem.NewEncapsulationKey1024(encapsulationKey)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v: %v", ErrInvalidPublicKey, g, err)
		}
		sharedSecret, ciphertext = ek.Encapsulate()
	default:
		return nil, nil, fmt.Errorf("ike/crypto: %v is not an ML-KEM method", g)
	}
	return ciphertext, sharedSecret, nil
}

// MLKEM768Encapsulate is Encapsulate for ML-KEM-768.
func MLKEM768Encapsulate(encapsulationKey []byte) (ciphertext, sharedSecret []byte, err error) {
	return Encapsulate(iana.GroupMLKEM768, encapsulationKey)
}
