package gcm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// failedDstOK reports whether a failed Open left dst as it was or zeroed:
// a message that fails the tag check may have been decrypted into dst by
// the one-pass path, which wipes it before returning; nothing else (and
// never plaintext) may be left there. Bytes past the plaintext's length n
// must not change at all.
func failedDstOK(before, after []byte, n int) bool {
	if !bytes.Equal(before[n:], after[n:]) {
		return false
	}
	return bytes.Equal(before[:n], after[:n]) || bytes.Equal(after[:n], make([]byte, n))
}

// katPattern fills b with bytes that depend on the seed and the position,
// so the vectors below are reproducible without a random source.
func katPattern(b []byte, seed byte) []byte {
	for i := range b {
		b[i] = byte(i*131+int(seed)*7) ^ byte(i>>8)
	}
	return b
}

// TestOpenEveryLengthKnownAnswer seals, with crypto/cipher, one message of
// every length 0..2048 (every tail length 1..16 after every number of
// whole 256-byte chunks, and the lengths on both sides of each stride)
// under the patterned keys, nonces and AAD of ESP (8 and 12 bytes), hashes
// all of it and compares with the digest recorded below. The digest was
// computed once with crypto/cipher (an implementation independent of this
// package), so it pins the vectors; then every path must open every one of
// them, in place and into a guarded buffer.
func TestOpenEveryLengthKnownAnswer(t *testing.T) {
	const want = "4379de53a65f44ce4a5f03edd157994a94f8474135f46f0fd51b4eb10988a8ea"
	h := sha256.New()
	type vec struct{ key, nonce, aad, pt, sealed []byte }
	var vecs []vec
	for _, kl := range []int{16, 32} {
		key := katPattern(make([]byte, kl), byte(kl))
		block, _ := aes.NewCipher(key)
		std, _ := cipher.NewGCM(block)
		for n := 0; n <= 2048; n++ {
			aad := katPattern(make([]byte, 8+4*(n%2)), byte(n))
			nonce := katPattern(make([]byte, 12), byte(n>>3))
			binary.BigEndian.PutUint32(nonce[8:], uint32(n))
			pt := katPattern(make([]byte, n), byte(n*3))
			sealed := std.Seal(nil, nonce, pt, aad)
			h.Write(sealed)
			vecs = append(vecs, vec{key, nonce, aad, pt, sealed})
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("vectors hash to %s, want %s (the generator changed?)", got, want)
	}
	aeads := map[[2]int]*AEAD{}
	for _, v := range vecs {
		for _, ts := range []int{16, 12, 8} {
			for _, impl := range implementations(ts) {
				a := aeads[[2]int{len(v.key)<<8 | ts, int(impl)}]
				if a == nil {
					var err error
					if a, err = newWith(v.key, ts, impl); err != nil {
						t.Fatal(err)
					}
					aeads[[2]int{len(v.key)<<8 | ts, int(impl)}] = a
				}
				n := len(v.pt)
				sealed := v.sealed[:n+ts]
				buf := bytes.Repeat([]byte{0xee}, 64+n+64)
				got, err := a.Open(buf[64:64], v.nonce, sealed, v.aad)
				if err != nil || !bytes.Equal(got, v.pt) {
					t.Fatalf("%s aes%d tag %d len %d: Open = %v", implName(impl), 8*len(v.key), ts, n, err)
				}
				if !bytes.Equal(buf[:64], bytes.Repeat([]byte{0xee}, 64)) || !bytes.Equal(buf[64+n:], bytes.Repeat([]byte{0xee}, 64)) {
					t.Fatalf("%s aes%d tag %d len %d: Open wrote outside dst", implName(impl), 8*len(v.key), ts, n)
				}
				pkt := append([]byte("ESPhdr!!"), sealed...)
				got, err = a.Open(pkt[8:8], v.nonce, pkt[8:], v.aad)
				if err != nil || !bytes.Equal(got, v.pt) || string(pkt[:8]) != "ESPhdr!!" {
					t.Fatalf("%s aes%d tag %d len %d: in-place Open = %v", implName(impl), 8*len(v.key), ts, n, err)
				}
			}
		}
	}
}

// TestOpenFailureWipesPlaintext: a forged message long enough for the
// one-pass path fails, and Open leaves zeros, not plaintext, in dst and
// (in place) where the ciphertext was.
func TestOpenFailureWipesPlaintext(t *testing.T) {
	r := newRand(15)
	key := randBytes(r, 16)
	for _, n := range []int{225, 256, 300, 1400, 2048} {
		for _, impl := range implementations(16) {
			a, err := newWith(key, 16, impl)
			if err != nil {
				t.Fatal(err)
			}
			nonce, pt, aad := randBytes(r, 12), randBytes(r, n), randBytes(r, 8)
			sealed := a.Seal(nil, nonce, pt, aad)
			sealed[n] ^= 1 // the tag
			dst := bytes.Repeat([]byte{0xa5}, n)
			if _, err := a.Open(dst[:0], nonce, sealed, aad); err == nil {
				t.Fatalf("%s len %d: forged tag accepted", implName(impl), n)
			}
			if !failedDstOK(bytes.Repeat([]byte{0xa5}, n), dst, n) {
				t.Fatalf("%s len %d: failed Open left %x… in dst", implName(impl), n, dst[:16])
			}
			if _, err := a.Open(sealed[:0], nonce, sealed, aad); err == nil {
				t.Fatalf("%s len %d: forged tag accepted in place", implName(impl), n)
			}
			if bytes.Contains(sealed, pt[:32]) {
				t.Fatalf("%s len %d: failed in-place Open left plaintext", implName(impl), n)
			}
		}
	}
}

// FuzzOpenCrossCheck seals arbitrary plaintext and AAD under an arbitrary
// key with crypto/cipher and opens it with every path, in place and into
// a separate buffer; with flip set, one bit of the sealed message or the
// AAD is flipped first and every path must refuse it and leave dst
// untouched or zeroed.
func FuzzOpenCrossCheck(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte("nonce-nonce!"), make([]byte, 1400), []byte("spi+seq!"), uint8(0), uint16(0))
	f.Add(make([]byte, 32), make([]byte, 12), bytes.Repeat([]byte{1}, 257), make([]byte, 12), uint8(9), uint16(3000))
	f.Add(make([]byte, 24), make([]byte, 12), bytes.Repeat([]byte{0xff}, 511), []byte{}, uint8(4), uint16(7))
	f.Fuzz(func(t *testing.T, keyIn, nonceIn, pt, aad []byte, sel uint8, flip uint16) {
		kl := []int{16, 24, 32}[sel%3]
		ts := []int{16, 12, 8}[(sel/3)%3]
		key := make([]byte, kl)
		copy(key, keyIn)
		nonce := make([]byte, 12)
		copy(nonce, nonceIn)
		ref := newReference(t, key)
		sealed := ref.seal(nonce, pt, aad, ts)
		bad := sel&0x80 != 0
		if bad {
			if i := int(flip) % (8 * (len(sealed) + len(aad))); i < 8*len(sealed) {
				sealed[i/8] ^= 1 << (i % 8)
			} else {
				i -= 8 * len(sealed)
				aad = append([]byte{}, aad...)
				aad[i/8] ^= 1 << (i % 8)
			}
		}
		for _, impl := range implementations(ts) {
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			dst := bytes.Repeat([]byte{0x5a}, len(pt))
			got, err := a.Open(dst[:0], nonce, sealed, aad)
			inPlace := append([]byte{}, sealed...)
			got2, err2 := a.Open(inPlace[:0], nonce, inPlace, aad)
			if bad {
				if err == nil || err2 == nil {
					t.Fatalf("%s: a flipped bit was accepted", implName(impl))
				}
				if !failedDstOK(bytes.Repeat([]byte{0x5a}, len(pt)), dst, len(pt)) {
					t.Fatalf("%s: failed Open left bytes in dst", implName(impl))
				}
				continue
			}
			if err != nil || !bytes.Equal(got, pt) || err2 != nil || !bytes.Equal(got2, pt) {
				t.Fatalf("%s: Open = %v / %v", implName(impl), err, err2)
			}
		}
	})
}
