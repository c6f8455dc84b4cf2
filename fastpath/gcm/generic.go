package gcm

import (
	"crypto/subtle"
	"encoding/binary"
	"sync"
)

// genericChunk is how much keystream the portable path makes per batch of
// block encryptions.
const genericChunk = 512

// scratchPool lends keystream buffers to the portable path: buffers handed
// to a cipher.Block through its interface escape, so a per-call stack array
// would be a heap allocation per packet.
var scratchPool = sync.Pool{New: func() any { return new([genericChunk]byte) }}

// ctrGeneric is GCTR (SP 800-38D §6.5) from inc32(J0), J0 = nonce ‖ 1: the
// data keystream starts at counter 2.
func (a *AEAD) ctrGeneric(nonce, dst, src []byte) {
	if len(src) == 0 {
		return
	}
	buf := scratchPool.Get().(*[genericChunk]byte)
	ctr := uint32(2)
	for len(src) > 0 {
		n := min(len(src), genericChunk)
		for i := 0; i < n; i += blockSize {
			b := buf[i : i+blockSize]
			copy(b, nonce)
			binary.BigEndian.PutUint32(b[12:], ctr)
			ctr++ // inc32 wraps mod 2^32, as §6.2 says; Seal's length bound keeps it off J0.
			a.block.Encrypt(b, b)
		}
		subtle.XORBytes(dst[:n], src[:n], buf[:n])
		dst, src = dst[n:], src[n:]
	}
	clear(buf[:])
	scratchPool.Put(buf)
}

// tagGeneric computes the full 16-byte tag GHASH(A, C) ⊕ E(K, J0)
// (SP 800-38D §7.1 steps 5 and 6).
func (a *AEAD) tagGeneric(nonce, ct, aad []byte, tag *[16]byte) {
	s := a.table.ghash(aad, ct)
	buf := scratchPool.Get().(*[genericChunk]byte)
	j0 := buf[:blockSize]
	copy(j0, nonce)
	binary.BigEndian.PutUint32(j0[12:], 1)
	a.block.Encrypt(j0, j0)
	s.store(tag[:])
	subtle.XORBytes(tag[:], tag[:], j0)
	clear(j0)
	scratchPool.Put(buf)
}

func (a *AEAD) sealGeneric(nonce, dst, plaintext, aad []byte, tag *[16]byte) {
	a.ctrGeneric(nonce, dst, plaintext)
	a.tagGeneric(nonce, dst, aad, tag)
}
