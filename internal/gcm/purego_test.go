//go:build purego

package gcm

import "testing"

// TestPuregoForcesFallback: `make test` runs this package's whole suite
// again with -tags purego so that New, and every test that goes through
// it, runs the crypto/cipher fallback even on a CPU with VAES. The run is
// meaningful only if the tag really turned the assembly off.
func TestPuregoForcesFallback(t *testing.T) {
	if useAsm {
		t.Fatal("built with purego, but the assembly path is on")
	}
	for _, ts := range []int{8, 12, 16} {
		a, err := New(make([]byte, 32), ts)
		if err != nil {
			t.Fatal(err)
		}
		if a.impl != implStdlib {
			t.Fatalf("purego build: New(tag %d) runs %s", ts, implName(a.impl))
		}
	}
}
