package config

import (
	"strings"
	"testing"
	"time"
)

// TestReassembly: the reassembly: block, its defaults (zero: the fast
// path's) and its errors with file:line: field.
func TestReassembly(t *testing.T) {
	c, err := Parse("x.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Reassembly != (Reassembly{}) {
		t.Errorf("default %+v", c.Reassembly)
	}
	c, err = Parse("x.yaml", []byte("reassembly: {timeout: 2s, datagrams: 128, per_source: 16}\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Reassembly{Timeout: 2 * time.Second, Datagrams: 128, PerSource: 16}); c.Reassembly != want {
		t.Errorf("got %+v, want %+v", c.Reassembly, want)
	}
	for _, tc := range []struct{ cfg, want string }{
		{"reassembly: {timeout: 10ms}\n", "x.yaml:1: reassembly.timeout: 10ms is not within 100ms..2m"},
		{"reassembly: {timeout: 1h}\n", "x.yaml:1: reassembly.timeout: 1h0m0s is not within"},
		{"reassembly: {datagrams: 0}\n", "x.yaml:1: reassembly.datagrams: 0 out of range [1, 4096]"},
		{"reassembly: {datagrams: 8, per_source: 9}\n", "x.yaml:1: reassembly.per_source: 9 is more than reassembly.datagrams (8)"},
		{"reassembly:\n  slots: 4\n", "x.yaml:2: reassembly.slots"},
		{"reassembly: 64\n", "x.yaml:1: reassembly: expected a mapping"},
	} {
		_, err := Parse("x.yaml", []byte(tc.cfg+base))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
