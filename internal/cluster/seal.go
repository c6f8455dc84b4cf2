package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Sealer seals the SA records the cluster keeps in etcd, so that etcd's
// disk, its snapshots and its backups never hold an SA key in clear.
//
// AES-256-GCM under a key derived from the cluster key (HKDF-SHA-256,
// its own label: the cluster key itself seals nothing, and is never an
// ESP key). Each write draws a random 96-bit nonce: with at most 2^32
// writes under one cluster key (NIST SP 800-38D §8.3) the chance of a
// repeated nonce stays below 2^-32; a cluster that writes 100 records a
// second reaches that in 1.3 years, so change the key yearly. The name of
// the etcd key is the additional data: a record copied to another SA's or
// another group's key does not open.
type Sealer struct {
	aead cipher.AEAD
}

const (
	sealVersion = 1
	sealLabel   = "xdpsec cluster sa records v1"
	nonceLen    = 12
)

var errSealed = errors.New("sealed record does not open (wrong cluster key, tampered, or moved)")

// NewSealer makes a sealer from the 32-byte cluster key.
func NewSealer(clusterKey []byte) (*Sealer, error) {
	if len(clusterKey) != 32 {
		return nil, fmt.Errorf("cluster key: %d bytes, want 32", len(clusterKey))
	}
	k, err := hkdf.Key(sha256.New, clusterKey, nil, sealLabel, 32)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal returns version ‖ nonce ‖ ciphertext of plain, bound to name.
func (s *Sealer) Seal(name string, plain []byte) []byte {
	out := make([]byte, 1+nonceLen, 1+nonceLen+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1 : 1+nonceLen])
	return s.aead.Seal(out, out[1:1+nonceLen], plain, []byte(name))
}

// Open checks and opens a value Seal made for name.
func (s *Sealer) Open(name string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+nonceLen+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errSealed
	}
	p, err := s.aead.Open(nil, sealed[1:1+nonceLen], sealed[1+nonceLen:], []byte(name))
	if err != nil {
		return nil, errSealed
	}
	return p, nil
}
