package gcm

import "encoding/binary"

// fieldElement is an element of GF(2^128) in GCM's bit order (SP 800-38D
// §6.3): the most significant bit of hi is the coefficient of x^0 and the
// least significant bit of lo is the coefficient of x^127. hi and lo are the
// big-endian halves of the 16-byte block.
type fieldElement struct {
	hi, lo uint64
}

func loadElement(b []byte) fieldElement {
	return fieldElement{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (e fieldElement) store(b []byte) {
	binary.BigEndian.PutUint64(b, e.hi)
	binary.BigEndian.PutUint64(b[8:], e.lo)
}

// mulX returns e·x mod P, P = x^128 + x^7 + x^2 + x + 1. In GCM's bit order
// that is a right shift, with x^128 folded back as the constant R of
// SP 800-38D §6.3 (0xe1 ‖ 0^120).
func (e fieldElement) mulX() fieldElement {
	carry := e.lo & 1
	e.lo = e.lo>>1 | e.hi<<63
	e.hi >>= 1
	e.hi ^= 0xe100000000000000 & -carry
	return e
}

// mulSlow is Algorithm 1 of SP 800-38D §6.3, bit by bit and in constant
// time. It is the reference the faster code is tested against and is used
// at New to compute the powers of H.
func mulSlow(x, y fieldElement) fieldElement {
	var z fieldElement
	v := y
	for i := 0; i < 128; i++ {
		var bit uint64
		if i < 64 {
			bit = x.hi >> (63 - i) & 1
		} else {
			bit = x.lo >> (127 - i) & 1
		}
		z.hi ^= v.hi & -bit
		z.lo ^= v.lo & -bit
		v = v.mulX()
	}
	return z
}

// ghashTable multiplies by a fixed H four bits at a time (Shoup's method):
// m[n] is n·H for the 4-bit polynomial n, whose most significant bit is the
// lowest-degree coefficient, matching the nibbles of a fieldElement.
type ghashTable struct {
	m [16]fieldElement
}

// reduce4 holds, for the four coefficients x^124..x^127 that a shift by x^4
// pushes past x^127, the reduced contribution to hi. The value depends only
// on P, so it is a package constant computed once.
var reduce4 = func() (r [16]uint64) {
	for d := range r {
		e := fieldElement{0, uint64(d)}
		e = e.mulX().mulX().mulX().mulX()
		r[d] = e.hi
	}
	return r
}()

func newGHASHTable(h fieldElement) ghashTable {
	var t ghashTable
	// Bit 3 of the index is the coefficient of x^0, bit 0 that of x^3.
	t.m[8] = h
	t.m[4] = h.mulX()
	t.m[2] = t.m[4].mulX()
	t.m[1] = t.m[2].mulX()
	for n := 1; n < 16; n++ {
		if n&(n-1) == 0 {
			continue
		}
		low := n & -n
		t.m[n] = fieldElement{t.m[low].hi ^ t.m[n^low].hi, t.m[low].lo ^ t.m[n^low].lo}
	}
	return t
}

// mul returns y·H by Horner's rule over the 32 nibbles of y, highest degree
// first: z = z·x^4 + nibble·H.
func (t *ghashTable) mul(y fieldElement) fieldElement {
	var z fieldElement
	for i := 0; i < 32; i++ {
		var n uint64
		if i < 16 {
			n = y.lo >> (4 * i) & 0xf
		} else {
			n = y.hi >> (4 * (i - 16)) & 0xf
		}
		d := z.lo & 0xf
		z.lo = z.lo>>4 | z.hi<<60
		z.hi = z.hi>>4 ^ reduce4[d]
		z.hi ^= t.m[n].hi
		z.lo ^= t.m[n].lo
	}
	return z
}

// update absorbs data into the GHASH state y (SP 800-38D §6.4), padding a
// final partial block with zeros as GCM does for the AAD and the ciphertext.
func (t *ghashTable) update(y fieldElement, data []byte) fieldElement {
	for len(data) >= 16 {
		x := loadElement(data)
		y = t.mul(fieldElement{y.hi ^ x.hi, y.lo ^ x.lo})
		data = data[16:]
	}
	if len(data) > 0 {
		var block [16]byte
		copy(block[:], data)
		x := loadElement(block[:])
		y = t.mul(fieldElement{y.hi ^ x.hi, y.lo ^ x.lo})
	}
	return y
}

// ghash computes GHASH_H(A ‖ 0^v ‖ C ‖ 0^u ‖ [len(A)]64 ‖ [len(C)]64), the S
// of SP 800-38D §7.1 step 5.
func (t *ghashTable) ghash(aad, ct []byte) fieldElement {
	y := t.update(fieldElement{}, aad)
	y = t.update(y, ct)
	l := fieldElement{uint64(len(aad)) * 8, uint64(len(ct)) * 8}
	return t.mul(fieldElement{y.hi ^ l.hi, y.lo ^ l.lo})
}

// clmulForm converts h into the operand form the PCLMULQDQ code multiplies
// by. The assembly byte-reverses each block, so a block becomes the 128-bit
// integer whose top bit is the x^0 coefficient; a carry-less product of two
// such integers comes out one bit short of the reflected product. Storing
// h·x^-1 instead (the reflected integer shifted left by one, with the bit
// that falls off folded back as x^-1 = x^127 + x^6 + x + 1, the constant
// 0xc2000000000000000000000000000001) makes each product exact after the
// reduction. The result is laid out little-endian, as the register holds it.
func clmulForm(h fieldElement) [16]byte {
	carry := h.hi >> 63
	hi := h.hi<<1 | h.lo>>63
	lo := h.lo << 1
	hi ^= 0xc200000000000000 & -carry
	lo ^= 1 & -carry
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], lo)
	binary.LittleEndian.PutUint64(b[8:], hi)
	return b
}
