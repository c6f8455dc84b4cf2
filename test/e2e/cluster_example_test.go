package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterExampleChecks: the README's three-node example
// (docs/examples/cluster-gw-a.yaml, and gw-b/gw-c made from it by the two
// substitutions its header gives) passes `xdpsec run --check` on each node.
func TestClusterExampleChecks(t *testing.T) {
	needBinary(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(root, "docs", "examples", "cluster-gw-a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"cluster.key": hex.EncodeToString(key),
		"psk-east":    hex.EncodeToString(key[:16]),
		"psk-west":    hex.EncodeToString(key[16:]),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, node := range []string{"gw-a", "gw-b", "gw-c"} {
		cfg := string(body)
		if node != "gw-a" {
			for _, r := range [][2]string{
				{"\n  node: gw-a\n", "\n  node: " + node + "\n"},
				{"peer_url: https://10.0.0.1:2380", "peer_url: https://10.0.0." + string(rune('1'+i)) + ":2380"},
			} {
				if !strings.Contains(cfg, r[0]) {
					t.Fatalf("the example no longer has %q, which its header tells gw-b and gw-c to change", r[0])
				}
				cfg = strings.Replace(cfg, r[0], r[1], 1)
			}
		}
		file := filepath.Join(dir, node+".yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(xdpsecBin, "run", "--check", "-c", file).CombinedOutput()
		if err != nil {
			t.Errorf("%s: the example does not check: %v\n%s", node, err, out)
		} else if !strings.Contains(string(out), "2 connections") {
			t.Errorf("%s: %s", node, out)
		}
	}
}
