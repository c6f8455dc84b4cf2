package gcm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

const (
	// NonceSize is the only nonce length supported: RFC 4106 §4 builds it
	// from the 4-byte salt and the 8-byte IV, and SP 800-38D §5.2.1.1
	// recommends 96 bits.
	NonceSize = 12
	blockSize = 16
	// maxPlaintext is SP 800-38D §5.2.1.1's bound len(P) ≤ 2^39 − 256 bits,
	// which also keeps the 32-bit block counter from wrapping into J0.
	maxPlaintext = (1<<32 - 2) * blockSize
)

// errOpen is the only error Open returns for input it cannot authenticate,
// so a caller (and an attacker) learns nothing about which check failed.
var errOpen = errors.New("gcm: message authentication failed")

// implementation says which code path an AEAD runs; both produce the same
// bytes (the tests compare them).
type implementation uint8

const (
	implAsm    implementation = iota // assembly (AVX-512 + VAES + VPCLMULQDQ)
	implStdlib                       // crypto/cipher GCM, constant time; 8-byte tags truncate its 16
)

// asmKeys is read by the assembly; its layout (nr at 0, htab at 64, rk at
// 576) is mirrored in gcm_amd64.s and checked by TestAsmKeysLayout.
//
// It is 832 bytes, in the allocator's 896-byte class, whose objects start
// on 64-byte boundaries (896 = 14·64), so htab's 64-byte loads never split
// a cache line; a gateway holds two per Child SA. (It used to put 16 zero
// entries after htab for the reads described below, which made it 1024.)
type asmKeys struct {
	nr uint64
	_  [56]byte // htab on its own cache lines
	// htab holds H^32, H^31, …, H^1 in clmulForm. A final window of n ≤ 16
	// blocks starts its reads at entry 32−n and reads whole 64-byte groups,
	// so up to 16 entries (256 bytes) past H^1: those reads land on rk and
	// the padding after it, which need only be readable. Their values never count, because
	// the data lanes they meet are masked to zero (VMOVDQU8.Z) and a
	// carry-less product with zero is zero.
	htab [32][16]byte
	// rk holds the Nr+1 round keys (FIPS-197 §5.2), unused ones zero.
	rk [maxRounds + 1][16]byte
	// Padding: rk and it together are the 256 bytes reads past htab touch.
	_ [16]byte
}

// AEAD is AES-GCM with a 12-byte nonce and an 8-, 12- or 16-byte tag. It
// satisfies crypto/cipher.AEAD and is safe for concurrent use.
type AEAD struct {
	tagSize int
	impl    implementation
	keys    *asmKeys // implAsm
	// std is crypto/cipher's GCM (implStdlib) with this AEAD's tag size,
	// or, for 8-byte tags, which crypto/cipher does not take, with 16: the
	// full tag is computed and its leftmost 8 bytes sent or compared
	// (SP 800-38D §5.2.1.2), as ike/crypto does for IKE's GCM-8.
	std cipher.AEAD
}

var _ cipher.AEAD = (*AEAD)(nil)

// New returns AES-GCM with a 12-byte nonce and a tagSize-byte tag (8, 12 or
// 16, the ICV sizes of RFC 4106 §6), for a 16-, 24- or 32-byte key.
func New(key []byte, tagSize int) (*AEAD, error) {
	return newWith(key, tagSize, defaultImpl(useAsm))
}

// defaultImpl picks the assembly where the CPU and build have it and
// crypto/cipher's GCM everywhere else, for every tag size. (An 8-byte tag
// used to run a portable GHASH whose 4-bit table lookups were indexed by
// secret-dependent values: a cache-timing side channel on the hash key.)
func defaultImpl(asm bool) implementation {
	if asm {
		return implAsm
	}
	return implStdlib
}

// newWith builds an AEAD on a chosen path; tests use it to run every path on
// the same machine.
func newWith(key []byte, tagSize int, impl implementation) (*AEAD, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("gcm: invalid AES key length %d (want 16, 24 or 32)", len(key))
	}
	switch tagSize {
	case 8, 12, 16:
	default:
		return nil, fmt.Errorf("gcm: invalid tag size %d (want 8, 12 or 16)", tagSize)
	}
	a := &AEAD{tagSize: tagSize, impl: impl}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	switch impl {
	case implAsm:
		if !useAsm {
			return nil, errors.New("gcm: assembly path not available on this CPU or build")
		}
		k := new(asmKeys)
		var nr int
		k.rk, nr = expandKey(key)
		k.nr = uint64(nr)
		// H = E(K, 0^128), SP 800-38D §7.1 step 1.
		var hb [16]byte
		block.Encrypt(hb[:], hb[:])
		h := loadElement(hb[:])
		clear(hb[:])
		p := h
		for i := 31; i >= 0; i-- {
			k.htab[i] = clmulForm(p)
			p = mulSlow(p, h)
		}
		a.keys = k
	case implStdlib:
		// crypto/cipher takes tags of 12 to 16 bytes; an 8-byte tag is the
		// truncated 16-byte one.
		stdTag := tagSize
		if tagSize < 12 {
			stdTag = 16
		}
		a.std, err = cipher.NewGCMWithTagSize(block, stdTag)
		if err != nil {
			return nil, fmt.Errorf("gcm: %w", err)
		}
	default:
		return nil, fmt.Errorf("gcm: unknown implementation %d", impl)
	}
	return a, nil
}

// NonceSize returns 12.
func (a *AEAD) NonceSize() int { return NonceSize }

// Overhead returns the tag size.
func (a *AEAD) Overhead() int { return a.tagSize }

// Seal encrypts and authenticates plaintext, authenticates additionalData
// and appends the result to dst, as crypto/cipher.AEAD.Seal. Like the
// standard library it panics on a nonce that is not 12 bytes and on a
// plaintext longer than GCM allows (about 64 GiB). Where crypto/cipher
// panics on an inexact overlap of dst's new bytes with plaintext, Seal
// copies the input aside and produces the right answer; it does the same
// when additionalData lies in the bytes it writes.
func (a *AEAD) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != NonceSize {
		panic("gcm: incorrect nonce length given to GCM")
	}
	if uint64(len(plaintext)) > maxPlaintext {
		panic("gcm: message too large for GCM")
	}
	ret, out := sliceForAppend(dst, len(plaintext)+a.tagSize)
	if inexactOverlap(out, plaintext) {
		sp := borrowScratch(len(plaintext))
		defer returnScratch(sp, len(plaintext))
		plaintext = append((*sp)[:0], plaintext...)
	}
	if anyOverlap(out, additionalData) {
		// The assembly hashes the AAD after writing the ciphertext.
		sp := borrowScratch(len(additionalData))
		defer returnScratch(sp, len(additionalData))
		additionalData = append((*sp)[:0], additionalData...)
	}
	if a.impl == implStdlib {
		if a.std.Overhead() != a.tagSize {
			a.sealTruncated(out, nonce, plaintext, additionalData)
			return ret
		}
		// ret has room for the output, so crypto/cipher writes it in place.
		return a.std.Seal(ret[:len(dst)], nonce, plaintext, additionalData)
	}
	if len(plaintext) <= maxShortSeal && len(additionalData) <= 16 {
		// ESP's packets up to ~200 bytes: keystream, tag mask and GHASH
		// in one call, the tag written in place.
		sealShortAsm(a.keys, nonce, out, plaintext, additionalData, a.tagSize)
		return ret
	}
	var tag [16]byte
	sealAsm(a.keys, nonce, out[:len(plaintext)], plaintext, additionalData, &tag)
	copy(out[len(plaintext):], tag[:a.tagSize])
	return ret
}

// Open authenticates ciphertext (which ends in the tag) and additionalData
// and, only if the tag matches, decrypts and appends the plaintext to dst,
// as crypto/cipher.AEAD.Open. The tag is checked in constant time. On the
// assembly path a ciphertext of more than 224 bytes is hashed and decrypted
// in one pass, so the plaintext is written before the tag is known; when
// the tag does not match, Open zeroes those bytes of dst before it returns
// the error (as crypto/cipher does), so no unauthenticated plaintext
// outlives the call. Shorter ciphertexts, and every other path, write dst
// only after the tag matched. It never panics: a wrong nonce length, a
// ciphertext shorter than the tag or an inexact overlap return an error.
func (a *AEAD) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("gcm: nonce is %d bytes, want %d", len(nonce), NonceSize)
	}
	if len(ciphertext) < a.tagSize {
		return nil, errOpen
	}
	if uint64(len(ciphertext)) > maxPlaintext+uint64(a.tagSize) {
		return nil, errOpen
	}
	ret, out := sliceForAppend(dst, len(ciphertext)-a.tagSize)
	if inexactOverlap(out, ciphertext) {
		return nil, errors.New("gcm: invalid buffer overlap")
	}
	if a.impl == implStdlib {
		if a.std.Overhead() != a.tagSize {
			return a.openTruncated(ret, out, nonce, ciphertext, additionalData)
		}
		return a.openStdlib(ret, out, nonce, ciphertext, additionalData)
	}
	ct := ciphertext[:len(ciphertext)-a.tagSize]
	tag := ciphertext[len(ciphertext)-a.tagSize:]
	if len(ct) >= 1 && len(ct) <= maxShortOpen && len(additionalData) >= 1 && len(additionalData) <= 16 {
		// ESP's packets up to ~200 bytes: tag and keystream in one pass.
		if !openShortAsm(a.keys, nonce, out, ct, additionalData, tag) {
			return nil, errOpen
		}
		return ret, nil
	}
	if len(additionalData) <= maxOnePassAAD {
		// Longer packets: one pass that hashes, decrypts and writes. The
		// plaintext of a message that fails is wiped before the error
		// returns, so no unauthenticated byte leaves Open.
		if !openAsm(a.keys, nonce, out, ct, additionalData, tag) {
			clear(out)
			return nil, errOpen
		}
		return ret, nil
	}
	// AAD over 16 bytes (not ESP's): tag first, then decrypt.
	var want [16]byte
	tagAsm(a.keys, nonce, ct, additionalData, &want)
	if !tagEqual(&want, tag) {
		return nil, errOpen
	}
	ctrAsm(a.keys, nonce, out, ct)
	return ret, nil
}

// scratchBuffers lends byte buffers: to the stdlib path to decrypt into
// (crypto/cipher writes plaintext before it has checked the tag and zeroes
// it after a failure, and Open promises not to touch dst unless the tag is
// good), and to Seal to move overlapping input aside.
var scratchBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch bounds what the pool keeps, so one huge message does not
// pin a huge buffer.
const maxPooledScratch = 64 << 10

func borrowScratch(n int) *[]byte {
	sp := scratchBuffers.Get().(*[]byte)
	if cap(*sp) < n {
		*sp = make([]byte, 0, max(n, 2048))
	}
	return sp
}

// returnScratch wipes the first n bytes (they held plaintext) and pools the
// buffer again.
func returnScratch(sp *[]byte, n int) {
	clear((*sp)[:n])
	if cap(*sp) <= maxPooledScratch {
		scratchBuffers.Put(sp)
	}
}

func (a *AEAD) openStdlib(ret, out, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	sp := borrowScratch(len(out))
	pt, err := a.std.Open((*sp)[:0], nonce, ciphertext, additionalData)
	if err == nil {
		copy(out, pt)
	}
	returnScratch(sp, len(out))
	if err != nil {
		return nil, errOpen
	}
	return ret, nil
}

// sealTruncated seals with crypto/cipher's 16-byte tag into scratch and
// writes the ciphertext and the tag's leftmost a.tagSize bytes to out
// (len(plaintext)+a.tagSize bytes): crypto/cipher would write all 16, past
// the end of out. Seal has already moved inexactly overlapping input aside.
func (a *AEAD) sealTruncated(out, nonce, plaintext, additionalData []byte) {
	n := len(plaintext) + a.std.Overhead()
	sp := borrowScratch(n)
	sealed := a.std.Seal((*sp)[:0], nonce, plaintext, additionalData)
	copy(out, sealed[:len(plaintext)+a.tagSize])
	returnScratch(sp, n)
}

// openTruncated opens a message whose tag is shorter than crypto/cipher
// checks (8 bytes), in constant time and without writing out unless it
// authenticates. GCM's keystream is its own inverse, so sealing the
// ciphertext yields the plaintext; sealing that plaintext again yields the
// ciphertext with its full tag, whose leftmost bytes are compared with the
// message's by tagEqual. Both passes run in scratch, which is wiped.
func (a *AEAD) openTruncated(ret, out, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	n := len(ciphertext) - a.tagSize
	full := n + a.std.Overhead()
	sp := borrowScratch(2 * full)
	buf := (*sp)[:2*full]
	pt := a.std.Seal(buf[:0], nonce, ciphertext[:n], additionalData)[:n]
	resealed := a.std.Seal(buf[full:full], nonce, pt, additionalData)
	ok := tagEqual((*[16]byte)(resealed[n:]), ciphertext[n:])
	if ok {
		copy(out, pt)
	}
	returnScratch(sp, 2*full)
	if !ok {
		return nil, errOpen
	}
	return ret, nil
}

// sliceForAppend extends in by n bytes, reallocating only when its capacity
// is short, and returns the whole slice and the new tail.
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}

// inexactOverlap reports whether x and y share memory at different
// offsets, which crypto/cipher.AEAD forbids: in-place use must start at the
// same address so that every byte is read before it is overwritten.
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 || &x[0] == &y[0] {
		return false
	}
	return anyOverlap(x, y)
}

// anyOverlap reports whether x and y share any byte.
func anyOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	xs := uintptr(unsafe.Pointer(&x[0]))
	ys := uintptr(unsafe.Pointer(&y[0]))
	return xs <= ys+uintptr(len(y)-1) && ys <= xs+uintptr(len(x)-1)
}

// tagEqual compares the tag of a message (8, 12 or 16 bytes, as the AEAD
// was made) with the first len(tag) bytes of want in constant time: the
// differences of the words are ORed together and only the result is
// tested, so the time does not depend on where they differ. It does in a
// few instructions what subtle.ConstantTimeCompare does byte by byte, which
// showed up at 64-byte packets.
func tagEqual(want *[16]byte, tag []byte) bool {
	var d uint64
	switch len(tag) {
	case 16:
		d = binary.LittleEndian.Uint64(want[0:]) ^ binary.LittleEndian.Uint64(tag[0:])
		d |= binary.LittleEndian.Uint64(want[8:]) ^ binary.LittleEndian.Uint64(tag[8:])
	case 12:
		d = binary.LittleEndian.Uint64(want[0:]) ^ binary.LittleEndian.Uint64(tag[0:])
		d |= uint64(binary.LittleEndian.Uint32(want[8:]) ^ binary.LittleEndian.Uint32(tag[8:]))
	case 8:
		d = binary.LittleEndian.Uint64(want[0:]) ^ binary.LittleEndian.Uint64(tag[0:])
	default:
		return subtle.ConstantTimeCompare(want[:len(tag)], tag) == 1
	}
	return d == 0
}
