package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
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

// A reload keeps the ceiling's null transform for the SAs it makes anew
// (run --bench carries over), and refuses to switch bench_null_cipher.
func TestBenchNullCipherReload(t *testing.T) {
	const k1, k2 = "0x000102030405060708090a0b0c0d0e0f10111213", "0x0f0102030405060708090a0b0c0d0e0f10111213"
	file := filepath.Join(t.TempDir(), "gw.yaml")
	state := "state_dir: " + t.TempDir() + "\n"
	writeConfig(t, file, reloadStaticYAML(k1, "")+state+"bench_null_cipher: true\n")
	cfg, err := config.Check(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BenchAllowed = true
	d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d.saPrints = cfg.SAFingerprints()
	if err := d.buildTables(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.store.Close() })
	isNull := func(sa *sad.SA) bool { return fmt.Sprintf("%T", sa.Crypto.AEAD) == "sad.nullAEAD" }
	if !isNull(d.inbound.Lookup(0x2001)) {
		t.Fatal("started without the null transform")
	}
	writeConfig(t, file, reloadStaticYAML(k2, "")+state+"bench_null_cipher: true\n")
	if _, err := d.Reload(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if sa := d.inbound.Lookup(0x2001); sa == nil || !isNull(sa) {
		t.Fatal("the reloaded SA lost the null transform")
	}
	writeConfig(t, file, reloadStaticYAML(k1, "")+state)
	if _, err := d.Reload(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "bench_null_cipher: changed (true -> false)") {
		t.Fatalf("reload switching bench_null_cipher off: %v", err)
	}
}
