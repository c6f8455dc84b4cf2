//go:build amd64 && !purego

package gcm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// asmCase is an AEAD on the assembly path, for AES-128, -192 and -256 in
// turn, with its crypto/cipher reference; the tests that call the
// assembly directly pass it the tag size themselves.
type asmCase struct {
	kl  int
	a   *AEAD
	ref reference
}

func asmCases(t *testing.T, r *rand.Rand) []asmCase {
	var cs []asmCase
	for _, kl := range []int{16, 24, 32} {
		key := randBytes(r, kl)
		a, err := newWith(key, 16, implAsm)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, asmCase{kl, a, newReference(t, key)})
	}
	return cs
}

// TestOpenOnePassEveryLength runs the one-pass assembly directly (Open
// sends it only what the short path does not take) on every length
// 0..2048 with every AAD length 0..16 against crypto/cipher, into a
// separate buffer between guard bytes and in place, and checks that a
// flipped bit of the ciphertext, tag or AAD fails it.
func TestOpenOnePassEveryLength(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly path on this CPU or build")
	}
	r := newRand(14)
	maxLen := 2048
	if testing.Short() || raceEnabled {
		maxLen = 600
	}
	for _, c := range asmCases(t, r) {
		kl, a, ref := c.kl, c.a, c.ref
		for n := 0; n <= maxLen; n++ {
			al := n % (maxOnePassAAD + 1)
			if kl == 16 && n <= 300 {
				al = -1 // every AAD length below
			}
			for aadLen := 0; aadLen <= maxOnePassAAD; aadLen++ {
				if al >= 0 && aadLen != al {
					continue
				}
				nonce, pt, aad := randBytes(r, 12), randBytes(r, n), randBytes(r, aadLen)
				ts := []int{16, 12, 8}[(n+aadLen)%3]
				sealed := ref.seal(nonce, pt, aad, ts)
				ct, tag := sealed[:n], sealed[n:]
				name := fmt.Sprintf("aes%d len %d aad %d tag %d", 8*kl, n, aadLen, ts)

				buf := bytes.Repeat([]byte{0xee}, 64+n+64)
				if !openAsm(a.keys, nonce, buf[64:64+n], ct, aad, tag) || !bytes.Equal(buf[64:64+n], pt) {
					t.Fatalf("%s: one-pass Open into a buffer failed", name)
				}
				if !bytes.Equal(buf[:64], bytes.Repeat([]byte{0xee}, 64)) || !bytes.Equal(buf[64+n:], bytes.Repeat([]byte{0xee}, 64)) {
					t.Fatalf("%s: one-pass Open wrote outside dst", name)
				}
				inPlace := append([]byte{}, ct...)
				if !openAsm(a.keys, nonce, inPlace, inPlace, aad, tag) || !bytes.Equal(inPlace, pt) {
					t.Fatalf("%s: in-place one-pass Open failed", name)
				}
				for _, where := range []string{"ct", "tag", "aad"} {
					bad, badTag, badAAD := append([]byte{}, ct...), append([]byte{}, tag...), append([]byte{}, aad...)
					switch where {
					case "ct":
						if n == 0 {
							continue
						}
						bad[r.IntN(n)] ^= 1 << r.IntN(8)
					case "tag":
						badTag[r.IntN(ts)] ^= 1 << r.IntN(8)
					case "aad":
						if aadLen == 0 {
							continue
						}
						badAAD[r.IntN(aadLen)] ^= 1 << r.IntN(8)
					}
					if openAsm(a.keys, nonce, make([]byte, n), bad, badAAD, badTag) {
						t.Fatalf("%s: forged %s accepted", name, where)
					}
				}
			}
		}
	}
}

// TestSealShortEveryLength runs the one-call short Seal directly on every
// plaintext length 0..224 with every AAD length 0..16 and every tag size
// against crypto/cipher, into a buffer between guard bytes and in place.
func TestSealShortEveryLength(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly path on this CPU or build")
	}
	r := newRand(16)
	for _, c := range asmCases(t, r) {
		kl, a, ref := c.kl, c.a, c.ref
		for n := 0; n <= maxShortSeal; n++ {
			for aadLen := 0; aadLen <= 16; aadLen++ {
				ts := []int{16, 12, 8}[(n+aadLen)%3]
				nonce, pt, aad := randBytes(r, 12), randBytes(r, n), randBytes(r, aadLen)
				want := ref.seal(nonce, pt, aad, ts)
				buf := bytes.Repeat([]byte{0xee}, 64+n+ts+64)
				sealShortAsm(a.keys, nonce, buf[64:64+n+ts], pt, aad, ts)
				if !bytes.Equal(buf[64:64+n+ts], want) {
					t.Fatalf("aes%d len %d aad %d tag %d: Seal = %x, want %x", 8*kl, n, aadLen, ts, buf[64:64+n+ts], want)
				}
				if !bytes.Equal(buf[:64], bytes.Repeat([]byte{0xee}, 64)) || !bytes.Equal(buf[64+n+ts:], bytes.Repeat([]byte{0xee}, 64)) {
					t.Fatalf("aes%d len %d aad %d tag %d: Seal wrote outside dst", 8*kl, n, aadLen, ts)
				}
				inPlace := append(append([]byte{}, pt...), make([]byte, ts)...)
				sealShortAsm(a.keys, nonce, inPlace, inPlace[:n], aad, ts)
				if !bytes.Equal(inPlace, want) {
					t.Fatalf("aes%d len %d aad %d tag %d: in-place Seal = %x, want %x", 8*kl, n, aadLen, ts, inPlace, want)
				}
			}
		}
	}
}
