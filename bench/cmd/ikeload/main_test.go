package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/bench/ikeload"
)

func TestGenerateFlagErrors(t *testing.T) {
	psk := filepath.Join(t.TempDir(), "psk")
	os.WriteFile(psk, []byte("secret\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	t.Setenv("IKELOAD_PSK", "")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-psk-file", psk}, "-target"},
		{[]string{"-target", "192.0.2.1"}, "psk"},
		{[]string{"-target", "192.0.2.1", "-psk-file", empty}, "empty"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "-port", "70000"}, "-port"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "-local", "192.0.2.2", "-local-range", "198.18.0.0/16"}, "exclude"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "-local-range", "198.18.0.0/30", "-sources", "9"}, "cannot hold"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "-o", "xml"}, "-o"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "-tsi", "nope"}, "-tsi"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "-n", "0"}, "positive"},
		{[]string{"-target", "192.0.2.1", "-psk-file", psk, "extra"}, "unexpected"},
	} {
		err := generate(tc.args, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
		}
	}
	if err := serve([]string{"-listen", "nope"}, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "-listen") {
		t.Errorf("serve -listen nope: %v", err)
	}
}

// TestGenerateJSON runs the command's generator against an in-process
// responder on loopback and decodes its -o json output.
func TestGenerateJSON(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	srv, err := ikeload.ServeXdpsec(ikeload.ServeConfig{Addr: lo, IKEPort: 0, NATTPort: 0, PSK: []byte("cmd test key")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ip, np := srv.Ports()
	t.Setenv("IKELOAD_PSK", "cmd test key")
	var out strings.Builder
	err = generate([]string{"-target", "127.0.0.1", "-port", strconv.Itoa(int(ip)), "-natt-port", strconv.Itoa(int(np)),
		"-n", "20", "-c", "4", "-o", "json"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Succeeded       int                `json:"succeeded"`
		MaxInFlight     int                `json:"max_in_flight"`
		SetupsPerSecond float64            `json:"setups_per_second"`
		LatencyMS       map[string]float64 `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.Succeeded != 20 || r.MaxInFlight > 4 || r.SetupsPerSecond <= 0 || r.LatencyMS["p99"] <= 0 {
		t.Fatalf("report %+v", r)
	}
}
