//go:build amd64 && !purego

package gcm

import "golang.org/x/sys/cpu"

// useAsm: the assembly needs AVX-512 (F, BW for byte masks, VL for the
// 128-bit EVEX forms), VAES and VPCLMULQDQ on 512-bit registers, AES-NI and
// PCLMULQDQ for the single-block parts, and BMI2 for BZHI.
var useAsm = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ &&
	cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasAVX && cpu.X86.HasBMI2

// gcmCtrAVX512 XORs src with the AES-CTR keystream of k whose first
// counter block is nonce ‖ [ctr]32 (inc32 per block) and writes len(src)
// bytes to dst. dst and src may be the same slice.
//
//go:noescape
func gcmCtrAVX512(k *asmKeys, nonce *[12]byte, ctr uint32, dst, src []byte)

// gcmTagAVX512 writes GHASH(aad, ct) ⊕ E(K, nonce ‖ [1]32) to *tag.
//
//go:noescape
func gcmTagAVX512(k *asmKeys, nonce *[12]byte, tag *[16]byte, aad, ct []byte)

// The data keystream starts at inc32(J0), counter 2 (SP 800-38D §7.1 step 3).

func sealAsm(k *asmKeys, nonce, dst, plaintext, aad []byte, tag *[16]byte) {
	n := (*[12]byte)(nonce)
	gcmCtrAVX512(k, n, 2, dst, plaintext)
	gcmTagAVX512(k, n, tag, aad, dst)
}

func tagAsm(k *asmKeys, nonce, ct, aad []byte, tag *[16]byte) {
	gcmTagAVX512(k, (*[12]byte)(nonce), tag, aad, ct)
}

func ctrAsm(k *asmKeys, nonce, dst, ct []byte) {
	gcmCtrAVX512(k, (*[12]byte)(nonce), 2, dst, ct)
}

// gcmOpenShortAVX512 opens a short message in one pass (see the assembly):
// 1 ≤ len(aad) ≤ 16, 1 ≤ len(ct) ≤ 224, len(tag) ≤ 16, len(dst) ≥ len(ct)
// with dst and ct the same or not overlapping. It writes dst only when the
// tag matches.
//
//go:noescape
func gcmOpenShortAVX512(k *asmKeys, nonce *[12]byte, dst, ct, aad, tag []byte) bool

// maxShortOpen is the longest ciphertext gcmOpenShortAVX512 takes.
const maxShortOpen = 224

func openShortAsm(k *asmKeys, nonce, dst, ct, aad, tag []byte) bool {
	return gcmOpenShortAVX512(k, (*[12]byte)(nonce), dst, ct, aad, tag)
}

// gcmOpenAVX512 opens a message of any length in one pass (see the
// assembly): 0 ≤ len(aad) ≤ 16, len(tag) ≤ 16, len(dst) ≥ len(ct) with dst
// and ct the same or not overlapping. It writes the plaintext to dst as it
// goes and reports whether the tag matched; on false the caller must zero
// dst[:len(ct)].
//
//go:noescape
func gcmOpenAVX512(k *asmKeys, nonce *[12]byte, dst, ct, aad, tag []byte) bool

// maxOnePassAAD is the longest AAD gcmOpenAVX512 takes (ESP's is 8 or 12).
const maxOnePassAAD = 16

func openAsm(k *asmKeys, nonce, dst, ct, aad, tag []byte) bool {
	return gcmOpenAVX512(k, (*[12]byte)(nonce), dst, ct, aad, tag)
}

// gcmSealShortAVX512 seals a short message in one pass (see the assembly):
// 0 ≤ len(aad) ≤ 16, 0 ≤ len(pt) ≤ 224, len(dst) = len(pt) + tagLen with
// dst and pt the same or not overlapping; the tag's first tagLen bytes go
// behind the ciphertext.
//
//go:noescape
func gcmSealShortAVX512(k *asmKeys, nonce *[12]byte, dst, pt, aad []byte, tagLen int)

// maxShortSeal is the longest plaintext gcmSealShortAVX512 takes.
const maxShortSeal = 224

func sealShortAsm(k *asmKeys, nonce, dst, pt, aad []byte, tagLen int) {
	gcmSealShortAVX512(k, (*[12]byte)(nonce), dst, pt, aad, tagLen)
}
