package gcm

import (
	"testing"
)

// TestFallbackIsConstantTime: where the assembly cannot run, every tag
// size, 8 included, takes crypto/cipher's constant-time GCM (issue 13: an
// 8-byte tag used to take a portable GHASH with secret-indexed table
// lookups). New without the assembly must choose it.
func TestFallbackIsConstantTime(t *testing.T) {
	for _, ts := range []int{8, 12, 16} {
		if impl := defaultImpl(false); impl != implStdlib {
			t.Errorf("tag %d without the assembly: %s, want stdlib", ts, implName(impl))
		}
		a, err := New(make([]byte, 16), ts)
		if err != nil {
			t.Fatal(err)
		}
		want := implStdlib
		if useAsm {
			want = implAsm
		}
		if a.impl != want {
			t.Errorf("New(tag %d) runs %s, want %s (useAsm %v)", ts, implName(a.impl), implName(want), useAsm)
		}
		if a.impl == implStdlib && a.std == nil {
			t.Errorf("New(tag %d): stdlib path without a crypto/cipher AEAD", ts)
		}
	}
}
