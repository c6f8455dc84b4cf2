package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// PRF is one of the negotiated pseudorandom functions. The zero value is not
// usable; get one from NewPRF.
type PRF struct {
	id      iana.PRFID
	newHash func() hash.Hash
	size    int
}

// NewPRF returns the PRF for id, or an error for an ID this package does not
// implement.
func NewPRF(id iana.PRFID) (PRF, error) {
	switch id {
	case iana.PRFHMACSHA2_256:
		return PRF{id: id, newHash: sha256.New, size: sha256.Size}, nil
	case iana.PRFHMACSHA2_384:
		return PRF{id: id, newHash: sha512.New384, size: sha512.Size384}, nil
	case iana.PRFHMACSHA2_512:
		return PRF{id: id, newHash: sha512.New, size: sha512.Size}, nil
	}
	return PRF{}, fmt.Errorf("ike/crypto: unsupported PRF %v", id)
}

// ID returns the transform ID.
func (p PRF) ID() iana.PRFID { return p.id }

// Size returns the output length in octets.
func (p PRF) Size() int { return p.size }

// KeyLen returns the preferred key length, which RFC 7296 §2.14 uses for
// SK_d, SK_pi and SK_pr. For the HMAC-SHA2 PRFs it equals the output length
// (RFC 4868 §2.1.2).
func (p PRF) KeyLen() int { return p.size }

// Compute returns prf(key, data[0] | data[1] | ...). The data parts are fed
// in order, so callers need not concatenate them first.
func (p PRF) Compute(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.newHash, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(make([]byte, 0, p.size))
}

// ErrPRFPlusTooLong is returned when prf+ is asked for more output than 255
// PRF iterations can give (RFC 7296 §2.13: the counter is one octet and must
// not wrap).
var ErrPRFPlusTooLong = errors.New("ike/crypto: prf+ output longer than 255 PRF blocks")

// PRFPlus returns the first n octets of prf+(key, seed) (RFC 7296 §2.13):
//
//	T1 = prf(K, S | 0x01), T2 = prf(K, T1 | S | 0x02), ..., Tk = prf(K, Tk-1 | S | k)
//
// and prf+ = T1 | T2 | ... It refuses n larger than 255 blocks.
func PRFPlus(p PRF, key, seed []byte, n int) ([]byte, error) {
	if p.newHash == nil {
		return nil, errors.New("ike/crypto: prf+ with an uninitialised PRF")
	}
	if n < 0 {
		return nil, fmt.Errorf("ike/crypto: prf+ length %d is negative", n)
	}
	blocks := (n + p.size - 1) / p.size
	if blocks > 255 {
		return nil, fmt.Errorf("%w: %d octets of %v need %d blocks", ErrPRFPlusTooLong, n, p.id, blocks)
	}
	out := make([]byte, 0, blocks*p.size)
	m := hmac.New(p.newHash, key)
	var prev []byte
	for i := 1; i <= blocks; i++ {
		m.Reset()
		m.Write(prev)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		out = m.Sum(out)
		prev = out[len(out)-p.size:]
	}
	// Wipe the tail beyond n before dropping it: it is key stream too.
	Zero(out[n:])
	return out[:n:n], nil
}
