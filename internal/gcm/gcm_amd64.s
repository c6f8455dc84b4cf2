//go:build amd64 && !purego

#include "textflag.h"

// Layout of asmKeys (gcm.go).
#define KEYS_NR 0
#define KEYS_HTAB 64
#define KEYS_RK 576

// Byte-reversal shuffle: turns a GCM block into the 128-bit integer whose
// top bit is the x^0 coefficient (and back).
DATA bswapMask<>+0(SB)/8, $0x08090a0b0c0d0e0f
DATA bswapMask<>+8(SB)/8, $0x0001020304050607
GLOBL bswapMask<>(SB), RODATA|NOPTR, $16

// x^-1 mod P in the reflected integer form, the reduction constant.
DATA gcmPoly<>+0(SB)/8, $0x0000000000000001
DATA gcmPoly<>+8(SB)/8, $0xc200000000000000
GLOBL gcmPoly<>(SB), RODATA|NOPTR, $16

// Per-lane counter offsets 0..3 in the low dword of each byte-reversed
// counter block (the big-endian inc32 field).
DATA ctrOffsets<>+0(SB)/8, $0
DATA ctrOffsets<>+8(SB)/8, $0
DATA ctrOffsets<>+16(SB)/8, $1
DATA ctrOffsets<>+24(SB)/8, $0
DATA ctrOffsets<>+32(SB)/8, $2
DATA ctrOffsets<>+40(SB)/8, $0
DATA ctrOffsets<>+48(SB)/8, $3
DATA ctrOffsets<>+56(SB)/8, $0
GLOBL ctrOffsets<>(SB), RODATA|NOPTR, $64

DATA ctrFour<>+0(SB)/8, $4
DATA ctrFour<>+8(SB)/8, $0
GLOBL ctrFour<>(SB), RODATA|NOPTR, $16

// ---------------------------------------------------------------------------
// Counter mode.
//
// Round keys are broadcast to every lane: Z16 = rk0, Z17..Z29 = rk1..rk13,
// Z30 = rk[nr]. Z31 holds the byte-reversal mask, Z15 the next four counter
// blocks (byte-reversed, so inc32 is a VPADDD on dword 0 of each lane and
// wraps mod 2^32 exactly as GCM's inc32 does), Z14 the per-step increment.

#define NEXT_CTR(Z) VPSHUFB Z31, Z15, Z; VPADDD Z14, Z15, Z15

#define ROUND4(K) VAESENC K, Z0, Z0; VAESENC K, Z1, Z1; VAESENC K, Z2, Z2; VAESENC K, Z3, Z3
#define LAST4(K) VAESENCLAST K, Z0, Z0; VAESENCLAST K, Z1, Z1; VAESENCLAST K, Z2, Z2; VAESENCLAST K, Z3, Z3
#define ROUND2(K) VAESENC K, Z0, Z0; VAESENC K, Z1, Z1

// ROUND_KEYS broadcasts the round keys of the schedule at R8 (KEYS_NR in
// CX) into Z16..Z29 and the last one into Z30; clobbers AX.
#define ROUND_KEYS \
	VBROADCASTI32X4 (KEYS_RK+0*16)(R8), Z16; \
	VBROADCASTI32X4 (KEYS_RK+1*16)(R8), Z17; \
	VBROADCASTI32X4 (KEYS_RK+2*16)(R8), Z18; \
	VBROADCASTI32X4 (KEYS_RK+3*16)(R8), Z19; \
	VBROADCASTI32X4 (KEYS_RK+4*16)(R8), Z20; \
	VBROADCASTI32X4 (KEYS_RK+5*16)(R8), Z21; \
	VBROADCASTI32X4 (KEYS_RK+6*16)(R8), Z22; \
	VBROADCASTI32X4 (KEYS_RK+7*16)(R8), Z23; \
	VBROADCASTI32X4 (KEYS_RK+8*16)(R8), Z24; \
	VBROADCASTI32X4 (KEYS_RK+9*16)(R8), Z25; \
	VBROADCASTI32X4 (KEYS_RK+10*16)(R8), Z26; \
	VBROADCASTI32X4 (KEYS_RK+11*16)(R8), Z27; \
	VBROADCASTI32X4 (KEYS_RK+12*16)(R8), Z28; \
	VBROADCASTI32X4 (KEYS_RK+13*16)(R8), Z29; \
	MOVQ CX, AX; \
	SHLQ $4, AX; \
	VBROADCASTI32X4 KEYS_RK(R8)(AX*1), Z30

// COUNTER_LANES: Z15 = four byte-reversed counter blocks nonce (at R9) ‖
// ctr, ctr+1, ctr+2, ctr+3, with the big-endian ctr in AX (built in a
// register: built in memory by the caller, its 16-byte load would wait
// on a failed store-to-load forward); Z31 = the byte-reversal mask.
#define COUNTER_LANES \
	VMOVQ   (R9), X15; \
	VPINSRD $2, 8(R9), X15, X15; \
	VPINSRD $3, AX, X15, X15; \
	VBROADCASTI32X4 bswapMask<>(SB), Z31; \
	VSHUFI32X4 $0, Z15, Z15, Z15; \
	VPSHUFB Z31, Z15, Z15; \
	VPADDD ctrOffsets<>(SB), Z15, Z15

// AES4(last) / AES2(last): all rounds but the last on Z0..Z3 / Z0, Z1 for
// 10, 12 or 14 rounds (CX); the caller's label last does the final round.
#define AES4(last) \
	VPXORD Z16, Z0, Z0; \
	VPXORD Z16, Z1, Z1; \
	VPXORD Z16, Z2, Z2; \
	VPXORD Z16, Z3, Z3; \
	ROUND4(Z17); ROUND4(Z18); ROUND4(Z19); ROUND4(Z20); ROUND4(Z21); \
	ROUND4(Z22); ROUND4(Z23); ROUND4(Z24); ROUND4(Z25); \
	CMPQ CX, $10; JE last; \
	ROUND4(Z26); ROUND4(Z27); \
	CMPQ CX, $12; JE last; \
	ROUND4(Z28); ROUND4(Z29)

#define AES2(last) \
	VPXORD Z16, Z0, Z0; \
	VPXORD Z16, Z1, Z1; \
	ROUND2(Z17); ROUND2(Z18); ROUND2(Z19); ROUND2(Z20); ROUND2(Z21); \
	ROUND2(Z22); ROUND2(Z23); ROUND2(Z24); ROUND2(Z25); \
	CMPQ CX, $10; JE last; \
	ROUND2(Z26); ROUND2(Z27); \
	CMPQ CX, $12; JE last; \
	ROUND2(Z28); ROUND2(Z29)

// func gcmCtrAVX512(k *asmKeys, nonce *[12]byte, ctr uint32, dst, src []byte)
TEXT ·gcmCtrAVX512(SB), NOSPLIT, $0-72
	MOVQ k+0(FP), R8
	MOVQ nonce+8(FP), R9
	MOVQ dst_base+24(FP), DI
	MOVQ src_base+48(FP), SI
	MOVQ src_len+56(FP), DX
	TESTQ DX, DX
	JZ   ctrReturn
	MOVQ KEYS_NR(R8), CX

	ROUND_KEYS

	MOVL    ctr+16(FP), AX
	BSWAPL  AX
	COUNTER_LANES
	VBROADCASTI32X4 ctrFour<>(SB), Z14

ctrLoop16:
	CMPQ DX, $256
	JB   ctrTail
	NEXT_CTR(Z0)
	NEXT_CTR(Z1)
	NEXT_CTR(Z2)
	NEXT_CTR(Z3)
	AES4(ctrLast16)

ctrLast16:
	LAST4(Z30)
	VPXORD (SI), Z0, Z0
	VPXORD 64(SI), Z1, Z1
	VPXORD 128(SI), Z2, Z2
	VPXORD 192(SI), Z3, Z3
	VMOVDQU64 Z0, (DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $256, DX
	JMP  ctrLoop16

ctrTail:
	// 0 < DX < 256 bytes left. Byte masks: K1..K4 cover bytes
	// [0,64), [64,128), [128,192), [192,256) of what is left, clipped to DX;
	// masked-off bytes are neither read (no fault) nor written.
	TESTQ DX, DX
	JZ   ctrDone
	MOVQ $-1, AX
	XORQ R10, R10
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	MOVQ DX, BX
	SUBQ $64, BX
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K2
	CMPQ DX, $128
	JA   ctrTail4

	// Up to 128 bytes: two registers of four blocks.
	NEXT_CTR(Z0)
	NEXT_CTR(Z1)
	AES2(ctrLast2)

ctrLast2:
	VAESENCLAST Z30, Z0, Z0
	VAESENCLAST Z30, Z1, Z1
	VMOVDQU8.Z (SI), K1, Z4
	VMOVDQU8.Z 64(SI), K2, Z5
	VPXORD Z4, Z0, Z0
	VPXORD Z5, Z1, Z1
	VMOVDQU8 Z0, K1, (DI)
	VMOVDQU8 Z1, K2, 64(DI)
	JMP  ctrDone

ctrTail4:
	// 129..255 bytes: four registers.
	MOVQ DX, BX
	SUBQ $128, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K3
	MOVQ DX, BX
	SUBQ $192, BX
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K4
	NEXT_CTR(Z0)
	NEXT_CTR(Z1)
	NEXT_CTR(Z2)
	NEXT_CTR(Z3)
	AES4(ctrLast4)

ctrLast4:
	LAST4(Z30)
	VMOVDQU8.Z (SI), K1, Z4
	VMOVDQU8.Z 64(SI), K2, Z5
	VMOVDQU8.Z 128(SI), K3, Z6
	VMOVDQU8.Z 192(SI), K4, Z7
	VPXORD Z4, Z0, Z0
	VPXORD Z5, Z1, Z1
	VPXORD Z6, Z2, Z2
	VPXORD Z7, Z3, Z3
	VMOVDQU8 Z0, K1, (DI)
	VMOVDQU8 Z1, K2, 64(DI)
	VMOVDQU8 Z2, K3, 128(DI)
	VMOVDQU8 Z3, K4, 192(DI)

ctrDone:
	// Clear the last keystream blocks and leave the upper halves clean for
	// SSE code. (Round keys stay in Z16..Z30 until reused, as with crypto/aes.)
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VZEROUPPER

ctrReturn:
	RET

// ---------------------------------------------------------------------------
// GHASH and the tag.
//
// A window of n ≤ 32 blocks X_0..X_{n-1} with incoming state Y is absorbed
// as (Y ⊕ X_0)·H^n ⊕ X_1·H^(n-1) ⊕ … ⊕ X_{n-1}·H: four blocks per ZMM
// register, products summed unreduced (Z8 = low, Z9 = middle, Z10 = high
// 128 bits of each lane), lanes folded, then a single reduction. R13 points
// at H^16 in htab, so a final window of n ≤ 16 blocks takes its powers from
// R13 + 16·(16-n) and one code path serves every n; masked-off blocks are
// zero, so what they meet past H^1 (the rest of asmKeys) does not count.
//
// Registers: Z31 byte-reversal mask, X14 reduction constant, X13 state Y,
// X15 the tag mask E(K, J0), Z11/Z12 scratch.

// MULACC(D, P): accumulate the lane-wise carry-less products of D and P.
#define MULACC(D, P) \
	VPCLMULQDQ $0x00, P, D, Z11; \
	VPXORQ     Z11, Z8, Z8; \
	VPCLMULQDQ $0x11, P, D, Z12; \
	VPXORQ     Z12, Z10, Z10; \
	VPCLMULQDQ $0x01, P, D, Z11; \
	VPCLMULQDQ $0x10, P, D, Z12; \
	VPTERNLOGD $0x96, Z11, Z12, Z9

#define ZERO_ACC VPXORQ Z8, Z8, Z8; VPXORQ Z9, Z9, Z9; VPXORQ Z10, Z10, Z10

// FOLD_LANES(Z, Y, X): X = xor of the four 128-bit lanes of Z.
#define FOLD_LANES(Z, Y, X) \
	VEXTRACTI64X4 $1, Z, Y11; \
	VPXOR         Y11, Y, Y; \
	VEXTRACTI128  $1, Y, X11; \
	VPXOR         X11, X, X

// REDUCE: fold the lanes and reduce the 256-bit sum into X13 = Y.
#define REDUCE \
	FOLD_LANES(Z8, Y8, X8); \
	FOLD_LANES(Z9, Y9, X9); \
	FOLD_LANES(Z10, Y10, X10); \
	VPSLLDQ    $8, X9, X11; \
	VPXOR      X11, X8, X8; \
	VPSRLDQ    $8, X9, X11; \
	VPXOR      X11, X10, X10; \
	VPCLMULQDQ $0x01, X8, X14, X11; \
	VPSHUFD    $78, X8, X8; \
	VPXOR      X11, X8, X8; \
	VPCLMULQDQ $0x01, X8, X14, X11; \
	VPSHUFD    $78, X8, X8; \
	VPXOR      X11, X8, X8; \
	VPXOR      X10, X8, X13

// WINDOW32: absorb the 32 blocks at SI with powers H^32..H^1. Long inputs
// go through here: a reduction per 32 blocks halves the serial chain
// through Y compared with WINDOW16.
#define WINDOW32 \
	VMOVDQU64  (SI), Z0; \
	VMOVDQU64  64(SI), Z1; \
	VMOVDQU64  128(SI), Z2; \
	VMOVDQU64  192(SI), Z3; \
	VMOVDQU64  256(SI), Z4; \
	VMOVDQU64  320(SI), Z5; \
	VMOVDQU64  384(SI), Z6; \
	VMOVDQU64  448(SI), Z7; \
	VPSHUFB    Z31, Z0, Z0; \
	VPSHUFB    Z31, Z1, Z1; \
	VPSHUFB    Z31, Z2, Z2; \
	VPSHUFB    Z31, Z3, Z3; \
	VPSHUFB    Z31, Z4, Z4; \
	VPSHUFB    Z31, Z5, Z5; \
	VPSHUFB    Z31, Z6, Z6; \
	VPSHUFB    Z31, Z7, Z7; \
	VPXORQ     Z13, Z0, Z0; \
	ZERO_ACC; \
	MULACC(Z0, (-256+0*64)(R13)); \
	MULACC(Z1, (-256+1*64)(R13)); \
	MULACC(Z2, (-256+2*64)(R13)); \
	MULACC(Z3, (-256+3*64)(R13)); \
	MULACC(Z4, (0*64)(R13)); \
	MULACC(Z5, (1*64)(R13)); \
	MULACC(Z6, (2*64)(R13)); \
	MULACC(Z7, (3*64)(R13)); \
	REDUCE

// WINDOW16: absorb the 16 blocks at SI with powers H^16..H^1.
#define WINDOW16 \
	VMOVDQU64  (SI), Z0; \
	VMOVDQU64  64(SI), Z1; \
	VMOVDQU64  128(SI), Z2; \
	VMOVDQU64  192(SI), Z3; \
	VPSHUFB    Z31, Z0, Z0; \
	VPSHUFB    Z31, Z1, Z1; \
	VPSHUFB    Z31, Z2, Z2; \
	VPSHUFB    Z31, Z3, Z3; \
	VPXORQ     Z13, Z0, Z0; \
	ZERO_ACC; \
	MULACC(Z0, (0*64)(R13)); \
	MULACC(Z1, (1*64)(R13)); \
	MULACC(Z2, (2*64)(R13)); \
	MULACC(Z3, (3*64)(R13)); \
	REDUCE

// TAG_MASK(X, last) / TAG_MASK_LAST(X): X = E(K, J0), J0 = nonce (at R9)
// ‖ [1]32, one block with the round keys read from the schedule at R8
// (KEYS_NR in CX); the caller's label last runs TAG_MASK_LAST. Clobbers AX.
#define TAG_MASK(X, last) \
	VMOVQ   (R9), X; \
	VPINSRD $2, 8(R9), X, X; \
	MOVL    $0x01000000, AX; \
	VPINSRD $3, AX, X, X; \
	VPXOR   (KEYS_RK+0*16)(R8), X, X; \
	VAESENC (KEYS_RK+1*16)(R8), X, X; \
	VAESENC (KEYS_RK+2*16)(R8), X, X; \
	VAESENC (KEYS_RK+3*16)(R8), X, X; \
	VAESENC (KEYS_RK+4*16)(R8), X, X; \
	VAESENC (KEYS_RK+5*16)(R8), X, X; \
	VAESENC (KEYS_RK+6*16)(R8), X, X; \
	VAESENC (KEYS_RK+7*16)(R8), X, X; \
	VAESENC (KEYS_RK+8*16)(R8), X, X; \
	VAESENC (KEYS_RK+9*16)(R8), X, X; \
	CMPQ CX, $10; \
	JE   last; \
	VAESENC (KEYS_RK+10*16)(R8), X, X; \
	VAESENC (KEYS_RK+11*16)(R8), X, X; \
	CMPQ CX, $12; \
	JE   last; \
	VAESENC (KEYS_RK+12*16)(R8), X, X; \
	VAESENC (KEYS_RK+13*16)(R8), X, X

#define TAG_MASK_LAST(X) \
	MOVQ CX, AX; \
	SHLQ $4, AX; \
	VAESENCLAST KEYS_RK(R8)(AX*1), X, X

// func gcmTagAVX512(k *asmKeys, nonce *[12]byte, tag *[16]byte, aad, ct []byte)
TEXT ·gcmTagAVX512(SB), NOSPLIT, $0-72
	MOVQ k+0(FP), R8
	MOVQ nonce+8(FP), R9
	MOVQ aad_base+24(FP), SI
	MOVQ aad_len+32(FP), DX
	MOVQ ct_base+48(FP), R11
	MOVQ ct_len+56(FP), R12
	MOVQ KEYS_NR(R8), CX
	// R13 points at H^16 (htab entry 16): H^32..H^17 lie below it, H^16..H^1
	// above, and past H^1 the rest of asmKeys (read only against zero lanes).
	LEAQ (KEYS_HTAB+16*16)(R8), R13

	// The tag mask E(K, J0), J0 = nonce ‖ [1]32. It depends on nothing
	// below, so the CPU runs it alongside the GHASH multiplications.
	TAG_MASK(X15, maskLast)

maskLast:
	TAG_MASK_LAST(X15)

	VBROADCASTI32X4 bswapMask<>(SB), Z31
	VMOVDQU gcmPoly<>(SB), X14
	VPXOR   X13, X13, X13
	MOVQ    $-1, AX
	XORQ    DI, DI // 0 while hashing the AAD, 1 for the ciphertext
	XORQ    R10, R10

	// ESP's case: at most one block of AAD and at most 14 of ciphertext.
	// Then AAD, ciphertext and length block fit one window, and the AAD
	// block (Z5, R10 = 1) is multiplied by H^n there instead of taking a
	// reduction of its own.
	TESTQ DX, DX
	JZ    aadLoop
	CMPQ  DX, $16
	JA    aadLoop
	CMPQ  R12, $224
	JA    aadLoop
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (SI), K1, Z5
	VPSHUFB Z31, Z5, Z5
	MOVQ    $1, R10
	JMP     ctStart

	// AAD: whole windows of 16 blocks, then one window for the rest.
aadLoop:
	CMPQ DX, $512
	JB   aad16
	WINDOW32
	ADDQ $512, SI
	SUBQ $512, DX
	JMP  aadLoop

aad16:
	CMPQ DX, $256
	JB   aadRest
	WINDOW16
	ADDQ $256, SI
	SUBQ $256, DX

aadRest:
	TESTQ DX, DX
	JZ    ctStart

restWindow:
	// A window of the 1..255 bytes at SI (DX), without the length block.
	// n = ceil(DX/16) blocks, powers from R13 + 16·(16-n).
	LEAQ 15(DX), BX
	SHRQ $4, BX
	NEGQ BX
	SHLQ $4, BX
	LEAQ 256(R13)(BX*1), R14
	ZERO_ACC
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (SI), K1, Z0
	VPSHUFB Z31, Z0, Z0
	VPXORQ  Z13, Z0, Z0
	MULACC(Z0, (R14))
	CMPQ DX, $64
	JBE  aadReduce
	LEAQ -64(DX), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 64(SI), K1, Z1
	VPSHUFB Z31, Z1, Z1
	MULACC(Z1, 64(R14))
	CMPQ DX, $128
	JBE  aadReduce
	LEAQ -128(DX), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 128(SI), K1, Z2
	VPSHUFB Z31, Z2, Z2
	MULACC(Z2, 128(R14))
	CMPQ DX, $192
	JBE  aadReduce
	LEAQ -192(DX), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 192(SI), K1, Z3
	VPSHUFB Z31, Z3, Z3
	MULACC(Z3, 192(R14))

aadReduce:
	REDUCE
	TESTQ DI, DI
	JZ    ctStart
	// The ciphertext's last 241..255 bytes filled a window; only the length
	// block is left.
	XORQ DX, DX
	JMP  ctRest

ctStart:
	// Ciphertext: whole windows while more than 15 blocks remain, so the
	// last window always has room for the length block.
	MOVQ R11, SI
	MOVQ R12, DX
	MOVQ $1, DI

ctLoop:
	CMPQ DX, $240
	JBE  ctRest
	CMPQ DX, $512
	JB   ct16
	WINDOW32
	ADDQ $512, SI
	SUBQ $512, DX
	JMP  ctLoop

ct16:
	CMPQ DX, $256
	JB   restWindow
	WINDOW16
	ADDQ $256, SI
	SUBQ $256, DX
	JMP  ctLoop

ctRest:
	// Length block [len(A)]64 ‖ [len(C)]64 in bits, already in integer form.
	MOVQ     aad_len+32(FP), BX
	SHLQ     $3, BX
	MOVQ     R12, CX
	SHLQ     $3, CX
	VMOVQ    CX, X4
	VPINSRQ  $1, BX, X4, X4
	// n = ceil(DX/16) + 1 blocks (the last is L), powers from R13 + 16·(16-n).
	LEAQ 31(DX), BX
	SHRQ $4, BX
	NEGQ BX
	SHLQ $4, BX
	LEAQ 256(R13)(BX*1), R14
	ZERO_ACC
	TESTQ R10, R10
	JZ    ctNoAAD
	// The pending AAD block precedes the window: H^(n+1), the entry
	// before R14 (n ≤ 15 here, so it is inside htab).
	MULACC(Z5, -16(R14))

ctNoAAD:
	TESTQ DX, DX
	JNZ   ctWindow
	// No ciphertext left: Y = (Y ⊕ L)·H, with H^1 at R13 + 15·16.
	VPXOR  X13, X4, X4
	MULACC(Z4, (15*16)(R13))
	JMP    tagReduce

ctWindow:
	// L·H^1 (lanes 1..3 of Z4 are zero: the VEX ops above cleared them).
	MULACC(Z4, (15*16)(R13))
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (SI), K1, Z0
	VPSHUFB Z31, Z0, Z0
	VPXORQ  Z13, Z0, Z0
	MULACC(Z0, (R14))
	CMPQ DX, $64
	JBE  tagReduce
	LEAQ -64(DX), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 64(SI), K1, Z1
	VPSHUFB Z31, Z1, Z1
	MULACC(Z1, 64(R14))
	CMPQ DX, $128
	JBE  tagReduce
	LEAQ -128(DX), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 128(SI), K1, Z2
	VPSHUFB Z31, Z2, Z2
	MULACC(Z2, 128(R14))
	CMPQ DX, $192
	JBE  tagReduce
	LEAQ -192(DX), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 192(SI), K1, Z3
	VPSHUFB Z31, Z3, Z3
	MULACC(Z3, 192(R14))

tagReduce:
	REDUCE
	VPSHUFB X31, X13, X13
	VPXOR   X15, X13, X13
	MOVQ    tag+16(FP), R9
	VMOVDQU X13, (R9)
	VPXOR   X15, X15, X15
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Open of a short message in one call: 1..16 bytes of AAD (ESP's 8 or 12)
// and 1..224 bytes of ciphertext (ESP packets up to ~200 bytes). The AES of
// J0 and of the data's counter blocks and the GHASH over AAD, ciphertext
// and length block do not depend on each other, so the CPU runs them side
// by side; the separate tag and counter-mode calls ran them one after the
// other. The tag is checked before a byte of dst is written.
//
// The counter blocks J0, 2, 3, … fill lanes 0, 1, 2, … of Z0..Z3, so the
// data's keystream starts 16 bytes into Z0: the ciphertext is loaded and
// the plaintext stored at -16 from their starts, with those 16 bytes masked
// off (masked-off bytes are neither read nor written, so nothing outside
// the slices is touched).
//
// Registers: Z0..Z3 AES state, Z4 ctrFour then the length block, Z5 the
// AAD block, Z6/Z7 ciphertext for GHASH then for the XOR, Z8..Z12 GHASH
// accumulators and scratch, X13 Y, X14 reduction constant, Z15 counters
// then the tag mask, Z16..Z30 round keys, Z31 byte-reversal mask.

// SHORT_KEYSTREAM(aes4, last2, last4, done), for the short one-call paths
// (schedule at R8, nr in CX, nonce at R9, length in R12): the round keys,
// and the keystream of J0 = nonce ‖ [1]32 and the data's blocks 2, 3, …
// in the lanes of Z0, Z1 (up to 112 bytes: J0 and 7 blocks) or Z0..Z3;
// Z4 = ctrFour. The labels are the expansion's own; it falls through to
// the caller's label done.
#define SHORT_KEYSTREAM(aes4, last2, last4, done) \
	ROUND_KEYS; \
	MOVL    $0x01000000, AX; \
	COUNTER_LANES; \
	VBROADCASTI32X4 ctrFour<>(SB), Z4; \
	CMPQ R12, $112; \
	JA   aes4; \
	VPSHUFB Z31, Z15, Z0; \
	VPADDD  Z4, Z15, Z15; \
	VPSHUFB Z31, Z15, Z1; \
	AES2(last2); \
last2: \
	VAESENCLAST Z30, Z0, Z0; \
	VAESENCLAST Z30, Z1, Z1; \
	JMP done; \
aes4: \
	VPSHUFB Z31, Z15, Z0; \
	VPADDD  Z4, Z15, Z15; \
	VPSHUFB Z31, Z15, Z1; \
	VPADDD  Z4, Z15, Z15; \
	VPSHUFB Z31, Z15, Z2; \
	VPADDD  Z4, Z15, Z15; \
	VPSHUFB Z31, Z15, Z3; \
	AES4(last4); \
last4: \
	LAST4(Z30)

// func gcmOpenShortAVX512(k *asmKeys, nonce *[12]byte, dst, ct, aad, tag []byte) bool
TEXT ·gcmOpenShortAVX512(SB), NOSPLIT, $0-113
	MOVQ k+0(FP), R8
	MOVQ nonce+8(FP), R9
	MOVQ dst_base+16(FP), DI
	MOVQ ct_base+40(FP), R11
	MOVQ ct_len+48(FP), R12
	MOVQ aad_base+64(FP), SI
	MOVQ aad_len+72(FP), DX
	MOVQ KEYS_NR(R8), CX
	LEAQ (KEYS_HTAB+16*16)(R8), R13

	SHORT_KEYSTREAM(openAES4, openLast2, openLast4, openGHASH)

openGHASH:
	// The tag mask E(K, J0) is lane 0 of Z0.
	VMOVDQA X0, X15
	VMOVDQU gcmPoly<>(SB), X14
	MOVQ    $-1, AX

	// The AAD block, multiplied by H^(n+1) with n = ceil(len(ct)/16) + 1
	// (the ciphertext blocks and the length block): powers from
	// R14 = R13 + 16·(16-n).
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (SI), K1, Z5
	VPSHUFB Z31, Z5, Z5
	LEAQ 31(R12), BX
	SHRQ $4, BX
	NEGQ BX
	SHLQ $4, BX
	LEAQ 256(R13)(BX*1), R14
	ZERO_ACC
	MULACC(Z5, -16(R14))

	// Length block [len(A)]64 ‖ [len(C)]64 in bits, times H^1 (VEX ops
	// clear lanes 1..3 of Z4).
	MOVQ    DX, BX
	SHLQ    $3, BX
	MOVQ    R12, R10
	SHLQ    $3, R10
	VMOVQ   R10, X4
	VPINSRQ $1, BX, X4, X4
	MULACC(Z4, (15*16)(R13))

	// Ciphertext, 64 bytes at a time, masked to its length.
	BZHIQ R12, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (R11), K1, Z6
	VPSHUFB Z31, Z6, Z6
	MULACC(Z6, (R14))
	CMPQ R12, $64
	JBE  openReduce
	LEAQ -64(R12), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 64(R11), K1, Z7
	VPSHUFB Z31, Z7, Z7
	MULACC(Z7, 64(R14))
	CMPQ R12, $128
	JBE  openReduce
	LEAQ -128(R12), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 128(R11), K1, Z6
	VPSHUFB Z31, Z6, Z6
	MULACC(Z6, 128(R14))
	CMPQ R12, $192
	JBE  openReduce
	LEAQ -192(R12), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z 192(R11), K1, Z7
	VPSHUFB Z31, Z7, Z7
	MULACC(Z7, 192(R14))

openReduce:
	REDUCE
	VPSHUFB X31, X13, X13
	VPXOR   X15, X13, X13

	// Compare with the received tag, its length in bytes (constant time:
	// one test of the XOR of both).
	MOVQ tag_base+88(FP), R9
	MOVQ tag_len+96(FP), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K5
	VMOVDQU8.Z (R9), K5, X6
	VMOVDQU8.Z X13, K5, X7
	VPXOR X6, X7, X7
	VPTEST X7, X7
	JNZ  openFail

	// Plaintext = keystream ⊕ ciphertext, over the span of 16 + len(ct)
	// bytes from 16 bytes before ct (its first 16 masked off).
	LEAQ 16(R12), DX
	BZHIQ DX, AX, BX
	ANDQ $-65536, BX
	KMOVQ BX, K1
	XORQ R10, R10
	LEAQ -64(DX), BX
	CMPQ DX, $64
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K2
	LEAQ -128(DX), BX
	CMPQ DX, $128
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K3
	LEAQ -192(DX), BX
	CMPQ DX, $192
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K4
	// All loads before any store: dst may be ct itself.
	VMOVDQU8.Z -16(R11), K1, Z6
	VMOVDQU8.Z 48(R11), K2, Z7
	VPXORD Z6, Z0, Z0
	VPXORD Z7, Z1, Z1
	CMPQ R12, $112
	JBE  openStore2
	VMOVDQU8.Z 112(R11), K3, Z6
	VMOVDQU8.Z 176(R11), K4, Z7
	VPXORD Z6, Z2, Z2
	VPXORD Z7, Z3, Z3
	VMOVDQU8 Z2, K3, 112(DI)
	VMOVDQU8 Z3, K4, 176(DI)

openStore2:
	VMOVDQU8 Z0, K1, -16(DI)
	VMOVDQU8 Z1, K2, 48(DI)
	MOVB $1, ret+112(FP)
	JMP  openClear

openFail:
	MOVB $0, ret+112(FP)

openClear:
	// Keystream, tag mask and plaintext out of the registers.
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z15, Z15, Z15
	VPXORD Z13, Z13, Z13
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Open in one pass, for ciphertexts of any length (Open sends those of up to
// 224 bytes to gcmOpenShortAVX512, which writes nothing on a bad tag) and
// 0..16 bytes of AAD. Each 256-byte chunk is loaded once: its 16 blocks go
// into GHASH while the AES of their 16 counter blocks runs beside it, and
// the plaintext is stored as the keystream is ready. Two chunks share a
// reduction (a window of 32 blocks) where they can. The AES units and the carry-less multiplier work side by side, and
// the data is read from memory once where the separate tag and counter-mode
// passes read it twice. The tag is compared only at the end, so a message
// that fails has had plaintext written to dst: the caller zeroes dst then
// (Open does), before any of it is released.
//
// The AAD block is multiplied by H^17 in the first chunk's window (always
// one of 16 blocks), or, when
// there is no whole chunk, by H^(n+1) in the final window of n blocks (the
// ciphertext's last 0..15 blocks and the length block), whose powers start
// at R14 = R13 + 16·(16-n) (n ≤ 17: the length block needs no room of its
// own past H^1).
//
// Registers: Z0..Z3 AES state, Z4..Z7 ciphertext (byte-reversed) for GHASH,
// Z8..Z12 GHASH accumulators and scratch, X13 Y, X14 the tag mask E(K, J0),
// Z15 counters, Z16..Z30 round keys, Z31 byte-reversal mask; the reduction
// constant and the counter step are read from memory.

// REDUCE_M: REDUCE with the reduction constant read from memory.
#define REDUCE_M \
	FOLD_LANES(Z8, Y8, X8); \
	FOLD_LANES(Z9, Y9, X9); \
	FOLD_LANES(Z10, Y10, X10); \
	VPSLLDQ    $8, X9, X11; \
	VPXOR      X11, X8, X8; \
	VPSRLDQ    $8, X9, X11; \
	VPXOR      X11, X10, X10; \
	VPCLMULQDQ $0x10, gcmPoly<>(SB), X8, X11; \
	VPSHUFD    $78, X8, X8; \
	VPXOR      X11, X8, X8; \
	VPCLMULQDQ $0x10, gcmPoly<>(SB), X8, X11; \
	VPSHUFD    $78, X8, X8; \
	VPXOR      X11, X8, X8; \
	VPXOR      X10, X8, X13

#define NEXT_CTR_M(Z) VPSHUFB Z31, Z15, Z; VPADDD ctrFourZ<>(SB), Z15, Z15

DATA ctrFourZ<>+0(SB)/8, $4
DATA ctrFourZ<>+8(SB)/8, $0
DATA ctrFourZ<>+16(SB)/8, $4
DATA ctrFourZ<>+24(SB)/8, $0
DATA ctrFourZ<>+32(SB)/8, $4
DATA ctrFourZ<>+40(SB)/8, $0
DATA ctrFourZ<>+48(SB)/8, $4
DATA ctrFourZ<>+56(SB)/8, $0
GLOBL ctrFourZ<>(SB), RODATA|NOPTR, $64

// One 256-byte chunk of gcmOpenAVX512: OPEN_CHUNK_HEAD starts the AES of
// its 16 counter blocks and loads and byte-reverses the first ciphertext
// blocks (the caller may fold Y into Z4 then); OPEN_CHUNK_BODY(P, last)
// runs the rounds but the last beside the GHASH products with the powers
// at P(R13) (0: H^16..H^1; -256: H^32..H^17), without reducing; the
// caller's label last then runs OPEN_CHUNK_TAIL: the last round, the
// plaintext (every load of the chunk before its stores: dst may be ct) and
// the pointers moved on.
#define OPEN_CHUNK_HEAD \
	NEXT_CTR_M(Z0); \
	NEXT_CTR_M(Z1); \
	NEXT_CTR_M(Z2); \
	NEXT_CTR_M(Z3); \
	VPXORD Z16, Z0, Z0; \
	VPXORD Z16, Z1, Z1; \
	VPXORD Z16, Z2, Z2; \
	VPXORD Z16, Z3, Z3; \
	VMOVDQU64 (SI), Z4; \
	VMOVDQU64 64(SI), Z5; \
	VMOVDQU64 128(SI), Z6; \
	VMOVDQU64 192(SI), Z7; \
	ROUND4(Z17); \
	VPSHUFB Z31, Z4, Z4; \
	VPSHUFB Z31, Z5, Z5

#define OPEN_CHUNK_BODY(P, last) \
	ROUND4(Z18); \
	MULACC(Z4, (P+0*64)(R13)); \
	ROUND4(Z19); \
	VPSHUFB Z31, Z6, Z6; \
	VPSHUFB Z31, Z7, Z7; \
	MULACC(Z5, (P+1*64)(R13)); \
	ROUND4(Z20); \
	MULACC(Z6, (P+2*64)(R13)); \
	ROUND4(Z21); \
	MULACC(Z7, (P+3*64)(R13)); \
	ROUND4(Z22); \
	ROUND4(Z23); \
	ROUND4(Z24); \
	ROUND4(Z25); \
	CMPQ CX, $10; \
	JE   last; \
	ROUND4(Z26); \
	ROUND4(Z27); \
	CMPQ CX, $12; \
	JE   last; \
	ROUND4(Z28); \
	ROUND4(Z29)

#define OPEN_CHUNK_TAIL \
	LAST4(Z30); \
	VPXORD (SI), Z0, Z0; \
	VPXORD 64(SI), Z1, Z1; \
	VPXORD 128(SI), Z2, Z2; \
	VPXORD 192(SI), Z3, Z3; \
	VMOVDQU64 Z0, (DI); \
	VMOVDQU64 Z1, 64(DI); \
	VMOVDQU64 Z2, 128(DI); \
	VMOVDQU64 Z3, 192(DI); \
	ADDQ $256, SI; \
	ADDQ $256, DI; \
	SUBQ $256, DX

// func gcmOpenAVX512(k *asmKeys, nonce *[12]byte, dst, ct, aad, tag []byte) bool
TEXT ·gcmOpenAVX512(SB), NOSPLIT, $0-113
	MOVQ k+0(FP), R8
	MOVQ nonce+8(FP), R9
	MOVQ dst_base+16(FP), DI
	MOVQ ct_base+40(FP), SI
	MOVQ ct_len+48(FP), R12
	MOVQ aad_base+64(FP), R11
	MOVQ KEYS_NR(R8), CX
	LEAQ (KEYS_HTAB+16*16)(R8), R13

	// The tag mask E(K, J0), J0 = nonce ‖ [1]32, one block beside the rest.
	TAG_MASK(X14, omaskLast)

omaskLast:
	TAG_MASK_LAST(X14)

	ROUND_KEYS

	// The data's counter blocks start at inc32(J0), counter 2.
	MOVL $0x02000000, AX
	COUNTER_LANES

	VPXOR X13, X13, X13
	ZERO_ACC
	MOVQ  $-1, AX
	MOVQ  R12, DX

	// The AAD block (zero for no AAD, which then adds nothing).
	MOVQ  aad_len+72(FP), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (R11), K1, Z4
	VPSHUFB Z31, Z4, Z4
	MOVQ  $1, R10 // the AAD block is still to be hashed
	CMPQ  DX, $256
	JB    otail
	MULACC(Z4, -16(R13))
	XORQ  R10, R10

	// The first chunk is a window of its own, which takes the AAD block
	// with it (H^33 is not in the table).
	OPEN_CHUNK_HEAD
	OPEN_CHUNK_BODY(0, ofirstLast)

ofirstLast:
	OPEN_CHUNK_TAIL
	REDUCE_M
	ZERO_ACC

	// Then 512 bytes a window: two chunks, each hashed beside its AES,
	// and one reduction, so the serial chain through Y is half as long
	// per byte.
oloop32:
	CMPQ DX, $512
	JB   oloop16
	OPEN_CHUNK_HEAD
	VPXORQ Z13, Z4, Z4
	OPEN_CHUNK_BODY(-256, oloopALast)

oloopALast:
	OPEN_CHUNK_TAIL
	OPEN_CHUNK_HEAD
	OPEN_CHUNK_BODY(0, oloopBLast)

oloopBLast:
	OPEN_CHUNK_TAIL
	REDUCE_M
	ZERO_ACC
	JMP oloop32

oloop16:
	CMPQ DX, $256
	JB   otail
	OPEN_CHUNK_HEAD
	VPXORQ Z13, Z4, Z4
	OPEN_CHUNK_BODY(0, oloop16Last)

oloop16Last:
	OPEN_CHUNK_TAIL
	REDUCE_M
	ZERO_ACC

otail:
	// 0 ≤ DX < 256 bytes left: n = ceil(DX/16) + 1 blocks with the length
	// block, powers from R14 = R13 + 240 - 16·ceil(DX/16).
	LEAQ 15(DX), BX
	SHRQ $4, BX
	SHLQ $4, BX
	NEGQ BX
	LEAQ 240(R13)(BX*1), R14
	TESTQ R10, R10
	JZ    otailLen
	MULACC(Z4, -16(R14))

otailLen:
	// Length block [len(A)]64 ‖ [len(C)]64 in bits, times H^1.
	MOVQ    aad_len+72(FP), BX
	SHLQ    $3, BX
	MOVQ    R12, R9
	SHLQ    $3, R9
	VMOVQ   R9, X4
	VPINSRQ $1, BX, X4, X4
	TESTQ   DX, DX
	JNZ     otailData
	// No ciphertext left: Y goes in with the length block.
	VPXOR   X13, X4, X4
	MULACC(Z4, (15*16)(R13))
	JMP     otag

otailData:
	MULACC(Z4, (15*16)(R13))
	// Byte masks K1..K4 of the 64-byte groups, clipped to DX.
	XORQ  R10, R10
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	LEAQ  -64(DX), BX
	CMPQ  DX, $64
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K2
	LEAQ  -128(DX), BX
	CMPQ  DX, $128
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K3
	LEAQ  -192(DX), BX
	CMPQ  DX, $192
	CMOVQLT R10, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K4
	CMPQ DX, $128
	JA   otailAES4
	NEXT_CTR_M(Z0)
	NEXT_CTR_M(Z1)
	AES2(otailLast2)

otailLast2:
	VAESENCLAST Z30, Z0, Z0
	VAESENCLAST Z30, Z1, Z1
	JMP otailHash

otailAES4:
	NEXT_CTR_M(Z0)
	NEXT_CTR_M(Z1)
	NEXT_CTR_M(Z2)
	NEXT_CTR_M(Z3)
	AES4(otailLast4)

otailLast4:
	LAST4(Z30)

otailHash:
	VMOVDQU8.Z (SI), K1, Z4
	VPSHUFB Z31, Z4, Z4
	VPXORQ  Z13, Z4, Z4
	MULACC(Z4, (R14))
	VMOVDQU8.Z (SI), K1, Z4
	VPXORD  Z4, Z0, Z0
	CMPQ DX, $64
	JBE  otailStore
	VMOVDQU8.Z 64(SI), K2, Z5
	VPXORD  Z5, Z1, Z1
	VPSHUFB Z31, Z5, Z5
	MULACC(Z5, 64(R14))
	CMPQ DX, $128
	JBE  otailStore
	VMOVDQU8.Z 128(SI), K3, Z6
	VPXORD  Z6, Z2, Z2
	VPSHUFB Z31, Z6, Z6
	MULACC(Z6, 128(R14))
	CMPQ DX, $192
	JBE  otailStore
	VMOVDQU8.Z 192(SI), K4, Z7
	VPXORD  Z7, Z3, Z3
	VPSHUFB Z31, Z7, Z7
	MULACC(Z7, 192(R14))

otailStore:
	// All of the tail is loaded (above) before it is stored: dst may be ct.
	VMOVDQU8 Z0, K1, (DI)
	CMPQ DX, $64
	JBE  otag
	VMOVDQU8 Z1, K2, 64(DI)
	CMPQ DX, $128
	JBE  otag
	VMOVDQU8 Z2, K3, 128(DI)
	VMOVDQU8 Z3, K4, 192(DI)

otag:
	REDUCE_M
	VPSHUFB X31, X13, X13
	VPXOR   X14, X13, X13

	// Compare with the received tag, its length in bytes, in constant time.
	MOVQ  tag_base+88(FP), R9
	MOVQ  tag_len+96(FP), BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K5
	VMOVDQU8.Z (R9), K5, X6
	VMOVDQU8.Z X13, K5, X7
	VPXOR  X6, X7, X7
	VPTEST X7, X7
	SETEQ  ret+112(FP)

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VZEROUPPER
	RET

// ---------------------------------------------------------------------------
// Seal of a short message in one call: 0..16 bytes of AAD, 0..224 bytes of
// plaintext (ESP packets up to ~200 bytes), the tag written behind the
// ciphertext. As in gcmOpenShortAVX512, J0 and the data's counter blocks
// fill lanes 0, 1, 2, … of Z0..Z3 and the data is loaded and stored at -16
// from its start with those 16 bytes masked off. The ciphertext is hashed
// from the registers it was made in: zero-masked to its length, it lies
// one block late in the lanes, so its blocks meet their powers of H from
// R14 - 16, and lane 0 (the tag mask's, masked off) carries the AAD block,
// which meets H^(n+1) there.
//
// Registers: Z0..Z3 AES state, then ciphertext; Z4 ctrFour, then the
// length block; Z5 the AAD block; Z6/Z7 plaintext, then GHASH input;
// Z8..Z12 GHASH, X13 Y, X14 reduction constant, X15 the tag mask,
// Z16..Z30 round keys, Z31 byte-reversal mask.

// func gcmSealShortAVX512(k *asmKeys, nonce *[12]byte, dst, pt, aad []byte, tagLen int)
TEXT ·gcmSealShortAVX512(SB), NOSPLIT, $0-96
	MOVQ k+0(FP), R8
	MOVQ nonce+8(FP), R9
	MOVQ dst_base+16(FP), DI
	MOVQ pt_base+40(FP), R11
	MOVQ pt_len+48(FP), R12
	MOVQ aad_base+64(FP), SI
	MOVQ aad_len+72(FP), DX
	MOVQ KEYS_NR(R8), CX
	LEAQ (KEYS_HTAB+16*16)(R8), R13

	SHORT_KEYSTREAM(sealAES4, sealLast2, sealLast4, sealData)

sealData:
	// The tag mask E(K, J0) is lane 0 of Z0.
	VMOVDQA X0, X15
	VMOVDQU gcmPoly<>(SB), X14
	MOVQ    $-1, AX

	// The AAD block, raw, in lane 0.
	BZHIQ DX, AX, BX
	KMOVQ BX, K1
	VMOVDQU8.Z (SI), K1, Z5

	// Masks of the span of 16 + len(pt) bytes from 16 bytes before pt
	// (its first 16 off), as in gcmOpenShortAVX512.
	LEAQ 16(R12), R10
	BZHIQ R10, AX, BX
	ANDQ $-65536, BX
	KMOVQ BX, K1
	XORQ R9, R9
	LEAQ -64(R10), BX
	CMPQ R10, $64
	CMOVQLT R9, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K2
	LEAQ -128(R10), BX
	CMPQ R10, $128
	CMOVQLT R9, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K3
	LEAQ -192(R10), BX
	CMPQ R10, $192
	CMOVQLT R9, BX
	BZHIQ BX, AX, BX
	KMOVQ BX, K4

	// Powers from R14 = R13 + 16·(16-n), n = ceil(len(pt)/16) + 1.
	LEAQ 31(R12), BX
	SHRQ $4, BX
	NEGQ BX
	SHLQ $4, BX
	LEAQ 256(R13)(BX*1), R14

	// All loads before any store: dst may be pt itself.
	VMOVDQU8.Z -16(R11), K1, Z6
	VMOVDQU8.Z 48(R11), K2, Z7
	VPXORD Z6, Z0, Z0
	VPXORD Z7, Z1, Z1
	CMPQ R12, $112
	JBE  sealHash2
	VMOVDQU8.Z 112(R11), K3, Z6
	VMOVDQU8.Z 176(R11), K4, Z7
	VPXORD Z6, Z2, Z2
	VPXORD Z7, Z3, Z3

	ZERO_ACC
	VMOVDQU8.Z Z2, K3, Z6
	VPSHUFB Z31, Z6, Z6
	MULACC(Z6, 112(R14))
	VMOVDQU8.Z Z3, K4, Z7
	VPSHUFB Z31, Z7, Z7
	MULACC(Z7, 176(R14))
	VMOVDQU8 Z2, K3, 112(DI)
	VMOVDQU8 Z3, K4, 176(DI)
	JMP sealHash

sealHash2:
	ZERO_ACC

sealHash:
	VMOVDQU8.Z Z0, K1, Z6
	VPXORQ  Z5, Z6, Z6
	VPSHUFB Z31, Z6, Z6
	MULACC(Z6, -16(R14))
	VMOVDQU8.Z Z1, K2, Z7
	VPSHUFB Z31, Z7, Z7
	MULACC(Z7, 48(R14))
	VMOVDQU8 Z0, K1, -16(DI)
	VMOVDQU8 Z1, K2, 48(DI)

	// Length block [len(A)]64 ‖ [len(C)]64 in bits, times H^1.
	MOVQ    DX, BX
	SHLQ    $3, BX
	MOVQ    R12, R10
	SHLQ    $3, R10
	VMOVQ   R10, X4
	VPINSRQ $1, BX, X4, X4
	MULACC(Z4, (15*16)(R13))

	REDUCE
	VPSHUFB X31, X13, X13
	VPXOR   X15, X13, X13
	MOVQ    tagLen+88(FP), BX
	BZHIQ   BX, AX, BX
	KMOVQ   BX, K5
	VMOVDQU8 X13, K5, (DI)(R12*1)

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z15, Z15, Z15
	VPXORD Z13, Z13, Z13
	VZEROUPPER
	RET
