package gcm

import (
	"bytes"
	"testing"
)

// fuzzParams turns free-form fuzz input into a valid key, nonce and tag size.
func fuzzParams(key, nonce []byte, sel uint8) ([]byte, []byte, int) {
	kl := []int{16, 24, 32}[sel%3]
	ts := []int{16, 12, 8}[(sel/3)%3]
	k := make([]byte, kl)
	copy(k, key)
	n := make([]byte, 12)
	copy(n, nonce)
	return k, n, ts
}

// FuzzSealOpen compares every path with crypto/cipher on arbitrary
// plaintext and AAD, and opens what it sealed.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte("nonce-nonce!"), []byte("hello"), []byte("spi+seq!"), uint8(0))
	f.Add(make([]byte, 32), make([]byte, 12), make([]byte, 68), make([]byte, 12), uint8(8))
	f.Add(make([]byte, 24), make([]byte, 12), bytes.Repeat([]byte{0xff}, 241), []byte{}, uint8(4))
	f.Fuzz(func(t *testing.T, key, nonce, pt, aad []byte, sel uint8) {
		key, nonce, ts := fuzzParams(key, nonce, sel)
		ref := newReference(t, key)
		want := ref.seal(nonce, pt, aad, ts)
		for _, impl := range implementations(ts) {
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			got := a.Seal(nil, nonce, pt, aad)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s tag %d: Seal = %x, want %x", implName(impl), ts, got, want)
			}
			opened, err := a.Open(got[:0], nonce, got, aad)
			if err != nil || !bytes.Equal(opened, pt) {
				t.Fatalf("%s tag %d: Open = %x, %v; want %x", implName(impl), ts, opened, err, pt)
			}
		}
	})
}

// FuzzOpen feeds arbitrary bytes to Open under a key the fuzzer never sees:
// no input may panic or authenticate, and no path may write dst.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, []byte{}, []byte("nonce-nonce!"), uint8(0))
	f.Add(make([]byte, 8), []byte("aad"), make([]byte, 12), uint8(2))
	f.Add(make([]byte, 84), make([]byte, 8), make([]byte, 12), uint8(1))
	f.Add(bytes.Repeat([]byte{0x5a}, 300), make([]byte, 12), make([]byte, 11), uint8(5))
	key := []byte("fuzz key never given to the fuzzer!!")[:32]
	f.Fuzz(func(t *testing.T, ct, aad, nonce []byte, sel uint8) {
		ts := []int{16, 12, 8}[sel%3]
		for _, impl := range implementations(ts) {
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			dst := bytes.Repeat([]byte{0xa5}, len(ct))
			out, err := a.Open(dst[:0], nonce, ct, aad)
			if err == nil || out != nil {
				t.Fatalf("%s tag %d: Open authenticated fuzz input %x", implName(impl), ts, ct)
			}
			if !bytes.Equal(dst, bytes.Repeat([]byte{0xa5}, len(ct))) {
				t.Fatalf("%s tag %d: failed Open wrote dst", implName(impl), ts)
			}
		}
	})
}
