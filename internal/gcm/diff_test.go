package gcm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// reference is crypto/cipher's GCM with a 16-byte tag; shorter tags are its
// prefix (RFC 4106 §6, SP 800-38D §5.2.1.2).
type reference struct{ std cipher.AEAD }

func newReference(t testing.TB, key []byte) reference {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	std, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return reference{std}
}

func (r reference) seal(nonce, pt, aad []byte, tagSize int) []byte {
	out := r.std.Seal(nil, nonce, pt, aad)
	return out[:len(pt)+tagSize]
}

// checkOne seals pt four ways (fresh dst, appended after a prefix, in place,
// unaligned), compares each with the reference and opens each back.
func checkOne(t *testing.T, a *AEAD, ref reference, r *rand.Rand, nonce, pt, aad []byte) {
	t.Helper()
	ts := a.Overhead()
	want := ref.seal(nonce, pt, aad, ts)

	// Fresh dst.
	if got := a.Seal(nil, nonce, pt, aad); !bytes.Equal(got, want) {
		t.Fatalf("%s tag %d len %d aad %d: Seal(nil) = %x, want %x", implName(a.impl), ts, len(pt), len(aad), got, want)
	}
	// Appending after existing bytes, from an unaligned source.
	off := 1 + r.IntN(15)
	src := make([]byte, off+len(pt))[off:]
	copy(src, pt)
	prefix := []byte("prefix!")
	got := a.Seal(append([]byte{}, prefix...), nonce, src, aad)
	if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("%s tag %d len %d aad %d: Seal(prefix) = %x, want prefix‖%x", implName(a.impl), ts, len(pt), len(aad), got, want)
	}
	// In place, at an odd offset, with room for the tag.
	buf := make([]byte, off+len(pt)+ts)[off:]
	copy(buf, pt)
	sealed := a.Seal(buf[:0], nonce, buf[:len(pt)], aad)
	if !bytes.Equal(sealed, want) || &sealed[0] != &buf[0] {
		t.Fatalf("%s tag %d len %d aad %d: in-place Seal = %x, want %x", implName(a.impl), ts, len(pt), len(aad), sealed, want)
	}
	// In place behind a header, as ESP does: dst is the header, plaintext
	// starts right after it.
	pkt := make([]byte, 8+len(pt)+ts)
	copy(pkt, "ESPhdr!!")
	copy(pkt[8:], pt)
	inPkt := a.Seal(pkt[:8], nonce, pkt[8:8+len(pt)], aad)
	if !bytes.Equal(inPkt[8:], want) || string(inPkt[:8]) != "ESPhdr!!" || &inPkt[0] != &pkt[0] {
		t.Fatalf("%s tag %d len %d aad %d: Seal behind a header = %x, want hdr‖%x", implName(a.impl), ts, len(pt), len(aad), inPkt, want)
	}
	if back, err := a.Open(inPkt[:8], nonce, inPkt[8:], aad); err != nil || !bytes.Equal(back[8:], pt) || &back[0] != &pkt[0] {
		t.Fatalf("%s tag %d len %d aad %d: Open behind a header = %x, %v", implName(a.impl), ts, len(pt), len(aad), back, err)
	}
	// Open in place and into a separate buffer.
	opened, err := a.Open(sealed[:0], nonce, sealed, aad)
	if err != nil || !bytes.Equal(opened, pt) {
		t.Fatalf("%s tag %d len %d aad %d: in-place Open = %x, %v; want %x", implName(a.impl), ts, len(pt), len(aad), opened, err, pt)
	}
	opened, err = a.Open(prefix, nonce, want, aad)
	if err != nil || !bytes.Equal(opened[len(prefix):], pt) || !bytes.Equal(opened[:len(prefix)], prefix) {
		t.Fatalf("%s tag %d len %d aad %d: Open(prefix) = %x, %v", implName(a.impl), ts, len(pt), len(aad), opened, err)
	}
}

var aadLengths = []int{0, 1, 8, 12, 15, 16, 17, 20}

// TestDifferentialEveryLength: every plaintext length 0..600, the AAD
// lengths ESP uses and their neighbours, all key sizes, tag sizes and paths.
func TestDifferentialEveryLength(t *testing.T) {
	r := newRand(2)
	maxLen := 600
	if testing.Short() || raceEnabled {
		maxLen = 300
	}
	for _, kl := range []int{16, 24, 32} {
		key := randBytes(r, kl)
		ref := newReference(t, key)
		for _, ts := range []int{16, 12, 8} {
			for _, impl := range implementations(ts) {
				a, err := newWith(key, ts, impl)
				if err != nil {
					t.Fatal(err)
				}
				t.Run(fmt.Sprintf("aes%d/tag%d/%s", kl*8, ts, implName(impl)), func(t *testing.T) {
					for n := 0; n <= maxLen; n++ {
						pt := randBytes(r, n)
						for _, al := range aadLengths {
							checkOne(t, a, ref, r, randBytes(r, 12), pt, randBytes(r, al))
						}
					}
				})
			}
		}
	}
}

// TestDifferentialRandomLengths: random lengths up to 9000 and random AAD
// lengths up to 600 (which crosses the 256-byte GHASH windows in the AAD).
func TestDifferentialRandomLengths(t *testing.T) {
	r := newRand(3)
	for i := 0; i < 300; i++ {
		key := randBytes(r, []int{16, 24, 32}[r.IntN(3)])
		ts := []int{16, 12, 8}[r.IntN(3)]
		ref := newReference(t, key)
		n := r.IntN(9001)
		al := aadLengths[r.IntN(len(aadLengths))]
		if r.IntN(4) == 0 {
			al = r.IntN(1200)
		}
		pt, aad, nonce := randBytes(r, n), randBytes(r, al), randBytes(r, 12)
		for _, impl := range implementations(ts) {
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			checkOne(t, a, ref, r, nonce, pt, aad)
		}
	}
}

// TestOpenRejectsEveryBitFlip flips each bit of the ciphertext, the tag, the
// AAD and the nonce in turn; Open must fail and leave dst untouched or
// zeroed (the one-pass path wipes what it decrypted).
func TestOpenRejectsEveryBitFlip(t *testing.T) {
	r := newRand(4)
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 68, 129, 255, 256, 257, 300} {
		for _, ts := range []int{16, 12, 8} {
			key := randBytes(r, []int{16, 24, 32}[n%3])
			for _, impl := range implementations(ts) {
				a, err := newWith(key, ts, impl)
				if err != nil {
					t.Fatal(err)
				}
				nonce, pt, aad := randBytes(r, 12), randBytes(r, n), randBytes(r, 12)
				sealed := a.Seal(nil, nonce, pt, aad)
				dst := bytes.Repeat([]byte{0xa5}, n+32)
				mustFail := func(what string, i int, nonce, sealed, aad []byte) {
					t.Helper()
					out, err := a.Open(dst[:0], nonce, sealed, aad)
					if err == nil || out != nil {
						t.Fatalf("%s tag %d len %d: Open accepted a flip of %s bit %d", implName(impl), ts, n, what, i)
					}
					if !failedDstOK(bytes.Repeat([]byte{0xa5}, len(dst)), dst, n) {
						t.Fatalf("%s tag %d len %d: failed Open left other bytes than its own or zeros in dst (flip of %s bit %d)", implName(impl), ts, n, what, i)
					}
					copy(dst, bytes.Repeat([]byte{0xa5}, len(dst)))
				}
				for i := 0; i < 8*len(sealed); i++ {
					sealed[i/8] ^= 1 << (i % 8)
					mustFail("ciphertext‖tag", i, nonce, sealed, aad)
					sealed[i/8] ^= 1 << (i % 8)
				}
				for i := 0; i < 8*len(aad); i++ {
					aad[i/8] ^= 1 << (i % 8)
					mustFail("aad", i, nonce, sealed, aad)
					aad[i/8] ^= 1 << (i % 8)
				}
				for i := 0; i < 8*len(nonce); i++ {
					nonce[i/8] ^= 1 << (i % 8)
					mustFail("nonce", i, nonce, sealed, aad)
					nonce[i/8] ^= 1 << (i % 8)
				}
				// Dropping or adding AAD bytes changes the length block.
				mustFail("aad length", 0, nonce, sealed, aad[:len(aad)-1])
				mustFail("aad length", 1, nonce, sealed, append(aad[:len(aad):len(aad)], 0))
				if _, err := a.Open(nil, nonce, sealed, aad); err != nil {
					t.Fatalf("%s tag %d len %d: restored input no longer opens: %v", implName(impl), ts, n, err)
				}
			}
		}
	}
}

// TestOpenBadLengths: truncated inputs, wrong nonce lengths and inexact
// overlaps return errors; none panics.
func TestOpenBadLengths(t *testing.T) {
	r := newRand(5)
	for _, ts := range []int{16, 12, 8} {
		for _, impl := range implementations(ts) {
			a, err := newWith(randBytes(r, 16), ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			nonce := randBytes(r, 12)
			sealed := a.Seal(nil, nonce, randBytes(r, 40), nil)
			for k := 0; k < len(sealed); k++ {
				if out, err := a.Open(nil, nonce, sealed[:k], nil); err == nil || out != nil {
					t.Errorf("%s tag %d: Open of %d of %d bytes succeeded", implName(impl), ts, k, len(sealed))
				}
			}
			for _, nl := range []int{0, 8, 11, 13, 16} {
				if _, err := a.Open(nil, make([]byte, nl), sealed, nil); err == nil {
					t.Errorf("%s tag %d: Open accepted a %d-byte nonce", implName(impl), ts, nl)
				}
			}
			buf := make([]byte, len(sealed)+8)
			copy(buf[1:], sealed)
			if _, err := a.Open(buf[:0], nonce, buf[1:1+len(sealed)], nil); err == nil {
				t.Errorf("%s tag %d: Open accepted an inexact overlap", implName(impl), ts)
			}
		}
	}
}

func TestSealPanicsLikeCryptoCipher(t *testing.T) {
	a, err := New(make([]byte, 16), 16)
	if err != nil {
		t.Fatal(err)
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	mustPanic("short nonce", func() { a.Seal(nil, make([]byte, 8), nil, nil) })
	mustPanic("long nonce", func() { a.Seal(nil, make([]byte, 16), nil, nil) })
}

// TestSealOverlappingInputs: where crypto/cipher would panic (plaintext
// overlapping the output at another offset) or where the assembly would
// otherwise hash bytes it has just overwritten (AAD inside the output),
// Seal still returns the right ciphertext.
func TestSealOverlappingInputs(t *testing.T) {
	r := newRand(7)
	for _, ts := range []int{16, 12, 8} {
		for _, impl := range implementations(ts) {
			key := randBytes(r, 16)
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			ref := newReference(t, key)
			nonce := randBytes(r, 12)
			for _, n := range []int{1, 50, 64, 300} {
				pt, aad := randBytes(r, n), randBytes(r, 8)
				want := ref.seal(nonce, pt, aad, ts)
				for _, shift := range []int{-5, -1, 1, 16} {
					buf := make([]byte, n+64)
					ptAt, dstAt := 20, 20+shift
					copy(buf[ptAt:], pt)
					got := a.Seal(buf[dstAt:dstAt], nonce, buf[ptAt:ptAt+n], aad)
					if !bytes.Equal(got, want) {
						t.Fatalf("%s tag %d len %d shift %d: Seal = %x, want %x", implName(impl), ts, n, shift, got, want)
					}
				}
				// AAD inside the bytes Seal writes.
				buf := make([]byte, n+64)
				copy(buf[n/2:], aad)
				got := a.Seal(buf[:0], nonce, pt, buf[n/2:n/2+8])
				if !bytes.Equal(got, ref.seal(nonce, pt, aad, ts)) {
					t.Fatalf("%s tag %d len %d: Seal with AAD inside dst = %x", implName(impl), ts, n, got)
				}
			}
		}
	}
}

func TestImplementsCipherAEAD(t *testing.T) {
	a, err := New(make([]byte, 16), 8)
	if err != nil {
		t.Fatal(err)
	}
	var aead cipher.AEAD = a
	if _, ok := aead.(*AEAD); !ok || aead.Overhead() != 8 {
		t.Fatal("*AEAD does not behave as a cipher.AEAD with an 8-byte tag")
	}
}

// TestZeroAllocations: Seal and Open on caller-provided heap buffers must
// not allocate, on every path.
func TestZeroAllocations(t *testing.T) {
	for _, ts := range []int{16, 12, 8} {
		for _, impl := range implementations(ts) {
			a, err := newWith(make([]byte, 32), ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			nonce, aad := make([]byte, 12), make([]byte, 8)
			pt := make([]byte, 1400)
			buf := make([]byte, 0, len(pt)+ts)
			sealed := a.Seal(nil, nonce, pt, aad)
			if n := testing.AllocsPerRun(100, func() { a.Seal(buf[:0], nonce, pt, aad) }); n != 0 {
				t.Errorf("%s tag %d: Seal allocates %v times", implName(impl), ts, n)
			}
			if n := testing.AllocsPerRun(100, func() {
				if _, err := a.Open(buf[:0], nonce, sealed, aad); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("%s tag %d: Open allocates %v times", implName(impl), ts, n)
			}
		}
	}
}

// TestConcurrentUse: one AEAD shared by 8 goroutines, as the workers share
// an SA; run under -race in CI.
func TestConcurrentUse(t *testing.T) {
	for _, ts := range []int{16, 8} {
		for _, impl := range implementations(ts) {
			key := make([]byte, 16)
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			ref := newReference(t, key)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					r := newRand(uint64(100 + g))
					buf := make([]byte, 0, 2048)
					for i := 0; i < 200; i++ {
						nonce, pt, aad := randBytes(r, 12), randBytes(r, r.IntN(1500)), randBytes(r, 8)
						sealed := a.Seal(buf[:0], nonce, pt, aad)
						if !bytes.Equal(sealed, ref.seal(nonce, pt, aad, ts)) {
							errs <- fmt.Errorf("goroutine %d: Seal mismatch at len %d", g, len(pt))
							return
						}
						opened, err := a.Open(sealed[:0], nonce, sealed, aad)
						if err != nil || !bytes.Equal(opened, pt) {
							errs <- fmt.Errorf("goroutine %d: Open failed at len %d: %v", g, len(pt), err)
							return
						}
					}
				}(g)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("%s tag %d: %v", implName(impl), ts, err)
			}
		}
	}
}
