package gcm

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"
)

var benchSizes = []int{64, 68, 128, 512, 1400, 1500, 9000}

// BenchmarkSeal and BenchmarkOpen run this package ("gcm") next to
// crypto/cipher ("stdlib") on the same key, with the 8-byte AAD of ESP
// without ESN and a 16-byte tag.
func BenchmarkSeal(b *testing.B) { benchAEAD(b, false) }
func BenchmarkOpen(b *testing.B) { benchAEAD(b, true) }

func benchAEAD(b *testing.B, open bool) {
	for _, kl := range []int{16, 32} {
		key := make([]byte, kl)
		mine, err := New(key, 16)
		if err != nil {
			b.Fatal(err)
		}
		block, _ := aes.NewCipher(key)
		std, _ := cipher.NewGCM(block)
		for _, n := range benchSizes {
			for _, c := range []struct {
				name string
				aead cipher.AEAD
			}{{"gcm", mine}, {"stdlib", std}} {
				b.Run(fmt.Sprintf("aes%d/%d/%s", kl*8, n, c.name), func(b *testing.B) {
					nonce, aad := make([]byte, 12), make([]byte, 8)
					pt := make([]byte, n)
					buf := make([]byte, 0, n+16)
					sealed := c.aead.Seal(nil, nonce, pt, aad)
					b.SetBytes(int64(n))
					b.ReportAllocs()
					if open {
						for b.Loop() {
							if _, err := c.aead.Open(buf[:0], nonce, sealed, aad); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					for b.Loop() {
						c.aead.Seal(buf[:0], nonce, pt, aad)
					}
				})
			}
		}
	}
}
