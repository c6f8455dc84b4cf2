package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/swantest"
)

// TestImportCommand: `xdpsec import swanctl` writes the YAML and the PSK
// file (0600, flags before or after the file name), exits 1 on a syntax
// error and 2 on a usage error.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "swanctl.conf")
	const psk = "0123456789abcdef0123456789abcdef"
	site := swantest.GwB("192.0.2.2", "192.0.2.1", "aes128gcm16-prfsha256-x25519", "aes128gcm16").PSKConf(psk)
	if err := os.WriteFile(in, []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out", "xdpsec.yaml")
	os.Mkdir(filepath.Dir(out), 0o700)
	if code := runImport([]string{"swanctl", "-o", out, in, "-lan", "eth1", "-wan", "eth0"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Wipe()
	if cfg.LAN != "eth1" || cfg.WAN != "eth0" || string(cfg.IKE.Connections[0].Local.PSK) != psk {
		t.Errorf("loaded %s/%s %+v", cfg.LAN, cfg.WAN, cfg.IKE.Connections)
	}
	if fi, err := os.Stat(filepath.Join(dir, "out", "site.psk")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("site.psk: %v %v", fi, err)
	}
	if y, _ := os.ReadFile(out); strings.Contains(string(y), psk) {
		t.Error("the PSK is in the YAML")
	}

	if err := os.WriteFile(in, []byte(strings.Replace(site, "local_addrs =", "local_addrs", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := runImport([]string{"swanctl", "-o", out, in}); code != 1 {
		t.Errorf("syntax error: exit %d, want 1", code)
	}
	for _, args := range [][]string{{"swanctl"}, {"ipsec.conf", in}, {"swanctl", in, in}} {
		if code := runImport(args); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
