//go:build amd64 && !purego

package gcm

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
	"unsafe"
)

// FIPS-197 Appendix C: one block through the assembly's AES with our key
// schedule. CTR of a zero block with the plaintext as counter block is
// exactly E(K, plaintext).
func TestAESBlockFIPS197AppendixC(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly path in this build or on this CPU")
	}
	pt := unhex(t, "00112233445566778899aabbccddeeff")
	tests := []struct{ key, ct string }{
		{"000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"},
		{"000102030405060708090a0b0c0d0e0f1011121314151617", "dda97ca4864cdfe06eaf70a0ec0d7191"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "8ea2b7ca516745bfeafc49904b496089"},
	}
	for _, tc := range tests {
		a, err := newWith(unhex(t, tc.key), 16, implAsm)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]byte, 16)
		gcmCtrAVX512(a.keys, (*[12]byte)(pt[:12]), binary.BigEndian.Uint32(pt[12:]), out, make([]byte, 16))
		if got := hex.EncodeToString(out); got != tc.ct {
			t.Errorf("key %s: E(K, P) = %s, want %s", tc.key, got, tc.ct)
		}
	}
}

// TestAsmKeysLayout: the offsets gcm_amd64.s uses (KEYS_NR, KEYS_HTAB,
// KEYS_RK), and the 256 readable bytes past htab that a final GHASH window
// may load (16 entries past H^1), all inside the struct.
func TestAsmKeysLayout(t *testing.T) {
	var k asmKeys
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"nr", unsafe.Offsetof(k.nr), 0},
		{"htab", unsafe.Offsetof(k.htab), 64},
		{"rk", unsafe.Offsetof(k.rk), 576},
	} {
		if c.got != c.want {
			t.Errorf("asmKeys.%s at %d, gcm_amd64.s expects %d", c.name, c.got, c.want)
		}
	}
	if end, size := unsafe.Offsetof(k.htab)+uintptr(len(k.htab)+16)*16, unsafe.Sizeof(k); end > size {
		t.Errorf("reads past htab reach offset %d of a %d-byte asmKeys", end, size)
	}
	if size := unsafe.Sizeof(k); size > 896 {
		t.Errorf("asmKeys is %d bytes, over the 896-byte size class", size)
	}
}
