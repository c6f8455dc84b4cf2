package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// IKE protection is slow-path work; these benchmarks keep an eye on the
// overhead of the SK framing against the bare AEAD it wraps.

func BenchmarkSealAESGCM256(b *testing.B) {
	p := newTestProtector(b, Suite{Encr: iana.EncrAESGCM16, KeyBits: 256})
	pt, prefix := make([]byte, 1024), testPrefix(p.SealedLen(1024))
	dst := make([]byte, 0, 2048)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Seal(dst, prefix, pt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareAESGCM256 is the baseline for BenchmarkSealAESGCM256.
func BenchmarkBareAESGCM256(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	pt, prefix, nonce := make([]byte, 1025), testPrefix(0), make([]byte, 12)
	dst := make([]byte, 0, 2048)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		aead.Seal(dst, nonce, pt, prefix)
	}
}

func BenchmarkOpenAESCBCSHA256(b *testing.B) {
	p := newTestProtector(b, Suite{Encr: iana.EncrAESCBC, KeyBits: 256, Integ: iana.IntegHMACSHA2_256_128})
	pt, prefix := make([]byte, 1024), testPrefix(p.SealedLen(1024))
	body, _ := p.Seal(nil, prefix, pt)
	dst := make([]byte, 0, 2048)
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Open(dst, prefix, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKeyExchange(b *testing.B) {
	for _, g := range []iana.GroupID{iana.GroupCurve25519, iana.GroupECP256, iana.GroupMODP2048, iana.GroupMLKEM768} {
		b.Run(g.String(), func(b *testing.B) {
			peer, _ := NewKeyExchange(g)
			for b.Loop() {
				if _, _, err := RespondKeyExchange(g, peer.PublicKey()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
