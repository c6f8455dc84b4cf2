package config

import (
	"strings"
	"testing"
)

// The lab's ceiling key is refused unless `xdpsec run --bench` allowed it,
// with the file and line of the key.
func TestBenchNullCipherGuard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   string
		allowed bool
		wantErr string
	}{
		{"absent", "", false, ""},
		{"false", "bench_null_cipher: false\n", false, ""},
		{"refused", "bench_null_cipher: true\n", false, "x.yaml:12: bench_null_cipher: bench only"},
		{"allowed", "bench_null_cipher: true\n", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("x.yaml", []byte(base+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			c.BenchAllowed = tc.allowed
			err = c.CheckBench()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckBench: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("CheckBench: %v, want %q", err, tc.wantErr)
			}
		})
	}
	// A file cannot allow itself.
	if _, err := Parse("x.yaml", []byte(base+"bench_allowed: true\n")); err == nil {
		t.Fatal("bench_allowed accepted as a key")
	}
	if _, err := Parse("x.yaml", []byte(base+"bench_null_cipher: maybe\n")); err == nil {
		t.Fatal("bench_null_cipher: maybe accepted")
	}
}
