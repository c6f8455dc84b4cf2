package gcm

import (
	"bytes"
	"testing"
)

// fuzzKey is the key of every fuzz input, cut to the AES key size: the
// paths differ in how they handle lengths, overlaps and tags, not key
// bytes (the known-answer and differential tests vary those). Fixed keys
// let the targets build their AEADs once, not per input: New expands the
// key and computes 32 powers of H, which made FuzzSealOpen run at a tenth
// of the speed of the code it tests.
var fuzzKey = []byte("fuzz key never given to the fuzzer!!")[:32]

// fuzzAEADs holds, per key size and tag size, one AEAD per path, and the
// reference.
type fuzzAEAD struct {
	impls []*AEAD
	ref   reference
}

var fuzzAEADs = map[[2]int]*fuzzAEAD{}

func fuzzAEADFor(t *testing.T, kl, ts int) *fuzzAEAD {
	if f := fuzzAEADs[[2]int{kl, ts}]; f != nil {
		return f
	}
	f := &fuzzAEAD{ref: newReference(t, fuzzKey[:kl])}
	for _, impl := range implementations(ts) {
		a, err := newWith(fuzzKey[:kl], ts, impl)
		if err != nil {
			t.Fatal(err)
		}
		f.impls = append(f.impls, a)
	}
	fuzzAEADs[[2]int{kl, ts}] = f
	return f
}

// fuzzParams turns free-form fuzz input into a valid nonce, key size and
// tag size. (The key bytes of the corpus are no longer used: see fuzzKey.)
func fuzzParams(nonce []byte, sel uint8) ([]byte, int, int) {
	kl := []int{16, 24, 32}[sel%3]
	ts := []int{16, 12, 8}[(sel/3)%3]
	n := make([]byte, 12)
	copy(n, nonce)
	return n, kl, ts
}

// FuzzSealOpen compares every path with crypto/cipher on arbitrary
// plaintext and AAD, and opens what it sealed.
func FuzzSealOpen(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte("nonce-nonce!"), []byte("hello"), []byte("spi+seq!"), uint8(0))
	f.Add(make([]byte, 32), make([]byte, 12), make([]byte, 68), make([]byte, 12), uint8(8))
	f.Add(make([]byte, 24), make([]byte, 12), bytes.Repeat([]byte{0xff}, 241), []byte{}, uint8(4))
	f.Fuzz(func(t *testing.T, _, nonce, pt, aad []byte, sel uint8) {
		nonce, kl, ts := fuzzParams(nonce, sel)
		fa := fuzzAEADFor(t, kl, ts)
		want := fa.ref.seal(nonce, pt, aad, ts)
		for _, a := range fa.impls {
			got := a.Seal(nil, nonce, pt, aad)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s tag %d: Seal = %x, want %x", implName(a.impl), ts, got, want)
			}
			opened, err := a.Open(got[:0], nonce, got, aad)
			if err != nil || !bytes.Equal(opened, pt) {
				t.Fatalf("%s tag %d: Open = %x, %v; want %x", implName(a.impl), ts, opened, err, pt)
			}
		}
	})
}

// FuzzOpen feeds arbitrary bytes to Open under a key the fuzzer never sees:
// no input may panic or authenticate, and no path may leave anything in
// dst but its old bytes or zeros.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, []byte{}, []byte("nonce-nonce!"), uint8(0))
	f.Add(make([]byte, 8), []byte("aad"), make([]byte, 12), uint8(2))
	f.Add(make([]byte, 84), make([]byte, 8), make([]byte, 12), uint8(1))
	f.Add(bytes.Repeat([]byte{0x5a}, 300), make([]byte, 12), make([]byte, 11), uint8(5))
	f.Fuzz(func(t *testing.T, ct, aad, nonce []byte, sel uint8) {
		ts := []int{16, 12, 8}[sel%3]
		for _, a := range fuzzAEADFor(t, 32, ts).impls {
			impl := a.impl
			dst := bytes.Repeat([]byte{0xa5}, len(ct))
			out, err := a.Open(dst[:0], nonce, ct, aad)
			if err == nil || out != nil {
				t.Fatalf("%s tag %d: Open authenticated fuzz input %x", implName(impl), ts, ct)
			}
			if !failedDstOK(bytes.Repeat([]byte{0xa5}, len(ct)), dst, max(len(ct)-ts, 0)) {
				t.Fatalf("%s tag %d: failed Open left bytes in dst", implName(impl), ts)
			}
		}
	})
}
