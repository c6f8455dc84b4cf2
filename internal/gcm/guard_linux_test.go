//go:build linux

package gcm

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// guarded maps three pages with the first and last inaccessible, so a slice
// that ends at the start of the last page (or starts at the end of the
// first) faults on any read or write past its bounds. The assembly's masked
// tail loads and stores must never touch those pages.
type guarded struct {
	mem  []byte
	page int
}

func newGuarded(t *testing.T) *guarded {
	t.Helper()
	page := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 3*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	if err := unix.Mprotect(mem[:page], unix.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	if err := unix.Mprotect(mem[2*page:], unix.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	return &guarded{mem: mem, page: page}
}

// tail returns n bytes ending at the upper guard page; head returns n bytes
// starting right after the lower one. Capacity ends at the guard as well.
func (g *guarded) tail(n int) []byte { return g.mem[2*g.page-n : 2*g.page : 2*g.page] }
func (g *guarded) head(n int) []byte { return g.mem[g.page : g.page+n : g.page+n] }

func TestNoAccessOutsideBuffers(t *testing.T) {
	src, dst, aadMem := newGuarded(t), newGuarded(t), newGuarded(t)
	r := newRand(6)
	for _, ts := range []int{16, 8} {
		for _, impl := range implementations(ts) {
			key := randBytes(r, 32)
			a, err := newWith(key, ts, impl)
			if err != nil {
				t.Fatal(err)
			}
			ref := newReference(t, key)
			nonce := randBytes(r, 12)
			for n := 0; n <= 600 && n+ts <= src.page; n++ {
				pt := randBytes(r, n)
				for _, al := range []int{0, 8, 12, 300, 700} {
					aadBytes := randBytes(r, al)
					want := ref.seal(nonce, pt, aadBytes, ts)
					for _, atEnd := range []bool{true, false} {
						var in, out, aad []byte
						if atEnd {
							in, out, aad = src.tail(n), dst.tail(n+ts), aadMem.tail(al)
						} else {
							in, out, aad = src.head(n), dst.head(n+ts), aadMem.head(al)
						}
						copy(in, pt)
						copy(aad, aadBytes)
						sealed := a.Seal(out[:0], nonce, in, aad)
						if !bytes.Equal(sealed, want) {
							t.Fatalf("%s tag %d len %d aad %d: guarded Seal mismatch", implName(impl), ts, n, al)
						}
						// Open from a ciphertext that ends at the guard into a
						// plaintext buffer that ends at the guard.
						var ct, back []byte
						if atEnd {
							ct, back = src.tail(n+ts), dst.tail(n)
						} else {
							ct, back = src.head(n+ts), dst.head(n)
						}
						copy(ct, want)
						opened, err := a.Open(back[:0], nonce, ct, aad)
						if err != nil || !bytes.Equal(opened, pt) {
							t.Fatalf("%s tag %d len %d aad %d: guarded Open = %v", implName(impl), ts, n, al, err)
						}
					}
				}
			}
		}
	}
}
