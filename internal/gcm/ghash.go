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
// time. New uses it to compute the powers of H for the assembly.
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
