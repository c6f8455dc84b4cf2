package daemon

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
)

// The daemon swaps in the null transform only for bench_null_cipher with
// --bench; the key without the flag fails the start, and without the key
// the SA keeps its AES-GCM whatever the flag.
func TestBenchNullCipherHook(t *testing.T) {
	for _, tc := range []struct {
		name           string
		key, allowed   bool
		wantErr, swaps bool
	}{
		{"off", false, false, false, false},
		{"flag alone", false, true, false, false},
		{"key without flag", true, false, true, false},
		{"key and flag", true, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := sad.ParseSuite("aes128gcm16")
			sa, err := sad.New(sad.Config{Name: "b", SPI: 0x1001, Dir: sad.Outbound, Mode: sad.Tunnel, Suite: s,
				Key: make([]byte, 20), Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2")})
			if err != nil {
				t.Fatal(err)
			}
			before := sa.Crypto.AEAD
			cfg := &config.Config{File: "x.yaml", BenchNullCipher: tc.key, BenchLine: 3, BenchAllowed: tc.allowed}
			err = benchNullCipher(cfg, sa, nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if swapped := sa.Crypto.AEAD != before; swapped != tc.swaps {
				t.Fatalf("transform swapped %v, want %v", swapped, tc.swaps)
			}
		})
	}
}
