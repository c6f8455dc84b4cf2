//go:build amd64 && !purego

package gcm

import (
	"encoding/binary"
	"encoding/hex"
	"testing"
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
