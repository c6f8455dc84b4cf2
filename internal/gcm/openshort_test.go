package gcm

import (
	"bytes"
	"testing"
)

// TestOpenShort drives Open through the one-pass short path (and just past
// it) for every ciphertext length up to 240 bytes, the AAD lengths ESP and
// others use, every tag size and AES-128/192/256, against crypto/cipher:
// in place and into a separate buffer with guard bytes on both sides (the
// path loads and stores at masked offsets before the slices), and with a
// flipped bit in the ciphertext, the tag or the AAD, after which dst must
// be untouched (the short path) or zeroed (the one-pass path, which takes
// no AAD and lengths past 224).
func TestOpenShort(t *testing.T) {
	r := newRand(7)
	for _, keyLen := range []int{16, 24, 32} {
		key := randBytes(r, keyLen)
		ref := newReference(t, key)
		for _, ts := range []int{8, 12, 16} {
			a, err := New(key, ts)
			if err != nil {
				t.Fatal(err)
			}
			for _, aadLen := range []int{0, 1, 8, 12, 16, 17} {
				for n := 1; n <= 240; n++ {
					nonce, pt, aad := randBytes(r, 12), randBytes(r, n), randBytes(r, aadLen)
					sealed := ref.seal(nonce, pt, aad, ts)

					// Separate dst between guard bytes.
					buf := bytes.Repeat([]byte{0xee}, 64+n+64)
					got, err := a.Open(buf[64:64], nonce, sealed, aad)
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("key %d tag %d aad %d len %d: Open = %x, %v; want %x", keyLen, ts, aadLen, n, got, err, pt)
					}
					for i, b := range append(append([]byte{}, buf[:64]...), buf[64+n:]...) {
						if b != 0xee {
							t.Fatalf("key %d tag %d aad %d len %d: guard byte %d written", keyLen, ts, aadLen, n, i)
						}
					}
					// In place, behind a header as ESP does.
					pkt := append([]byte("ESPhdr!!"), sealed...)
					got, err = a.Open(pkt[8:8], nonce, pkt[8:], aad)
					if err != nil || !bytes.Equal(got, pt) || string(pkt[:8]) != "ESPhdr!!" {
						t.Fatalf("key %d tag %d aad %d len %d: in-place Open = %x, %v", keyLen, ts, aadLen, n, got, err)
					}
					// Forgeries: one bit of the ciphertext, of the tag, of the AAD.
					for _, where := range []string{"ct", "tag", "aad"} {
						bad, badAAD := append([]byte{}, sealed...), append([]byte{}, aad...)
						switch where {
						case "ct":
							bad[r.IntN(n)] ^= 1 << r.IntN(8)
						case "tag":
							bad[n+r.IntN(ts)] ^= 1 << r.IntN(8)
						case "aad":
							if aadLen == 0 {
								continue
							}
							badAAD[r.IntN(aadLen)] ^= 1 << r.IntN(8)
						}
						dst := bytes.Repeat([]byte{0xee}, n)
						if _, err := a.Open(dst[:0], nonce, bad, badAAD); err == nil {
							t.Fatalf("key %d tag %d aad %d len %d: forged %s accepted", keyLen, ts, aadLen, n, where)
						}
						if !failedDstOK(bytes.Repeat([]byte{0xee}, n), dst, n) {
							t.Fatalf("key %d tag %d aad %d len %d: forged %s wrote dst", keyLen, ts, aadLen, n, where)
						}
					}
				}
			}
		}
	}
}
