package selftest

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	rep, err := Run(Options{Packets: 700, Suites: "aes128gcm16, chacha20poly1305, aes256-sha384, aes128gcm8", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Suites != 4 || rep.Packets != 2800 {
		t.Fatalf("report %+v", rep)
	}
	for _, want := range []string{"#pkts encaps: 701", "#pkts decaps: 701", "replay drops: 11"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := Run(Options{Packets: 10, Suites: "des-md5"}); err == nil {
		t.Fatal("unknown suite accepted")
	}
}
