package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clusterKey writes a cluster key file of mode perm holding content.
func clusterKey(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	return p
}

const key64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

func clusterSection(keyFile, extra string) string {
	return base + `cluster:
  name: dc1
  node: gw-a
  key_file: ` + keyFile + `
  etcd:
    embedded:
      data_dir: /var/lib/xdpsec/etcd
      peer_url: http://198.51.100.1:2380
      client_url: http://127.0.0.1:2379
      members: {gw-a: "http://198.51.100.1:2380", gw-b: "http://198.51.100.2:2380"}
  groups:
    - name: g1
      sas: [ab]
      wan: 203.0.113.10/24
      lan: 198.18.1.1/24
      nodes: {gw-b: 50, gw-a: 100}
` + extra
}

func TestClusterConfig(t *testing.T) {
	c, err := Parse("x.yaml", []byte(clusterSection(clusterKey(t, key64, 0o600), "")))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	if cl == nil || cl.Name != "dc1" || cl.Node != "gw-a" || len(cl.Key) != 32 || cl.Key[1] != 0x11 ||
		cl.LeaseTTL != DefaultLeaseTTL || cl.FenceMargin != DefaultFenceMargin || cl.ReplayPublish != DefaultReplayPublish {
		t.Fatalf("cluster %+v", cl)
	}
	if e := cl.Embedded; e == nil || e.Members["gw-b"] != "http://198.51.100.2:2380" || e.DataDir != "/var/lib/xdpsec/etcd" {
		t.Fatalf("embedded %+v", e)
	}
	g := cl.Groups[0]
	if g.Name != "g1" || len(g.SAs) != 1 || g.WAN != netip.MustParsePrefix("203.0.113.10/24") ||
		len(g.Nodes) != 2 || g.Nodes[0] != (GroupNode{"gw-a", 100}) || g.Nodes[1] != (GroupNode{"gw-b", 50}) {
		t.Fatalf("group %+v", g)
	}
	c.Wipe()
	for _, b := range cl.Key {
		if b != 0 {
			t.Fatal("Wipe left the cluster key")
		}
	}
}

func TestClusterConfigErrors(t *testing.T) {
	good := clusterKey(t, key64, 0o600)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"open key file", clusterSection(clusterKey(t, key64, 0o644), ""), "cluster.key_file: "},
		{"short key", clusterSection(clusterKey(t, "0011", 0o600), ""), "cluster key must be 32 bytes"},
		{"ttl", clusterSection(good, "  lease_ttl: 50ms\n"), "x.yaml:28: cluster.lease_ttl: must be between"},
		{"margin", clusterSection(good, "  lease_ttl: 200ms\n  fence_margin: 150ms\n"), "cluster.fence_margin"},
		{"unknown sa", strings.Replace(clusterSection(good, ""), "sas: [ab]", "sas: [zz]", 1), `x.yaml:24: cluster.groups[0].sas[0]: no sa named "zz"`},
		{"unknown node", strings.Replace(clusterSection(good, ""), "gw-b: 50,", "gw-z: 50,", 1), `"gw-z" is not an etcd member`},
		{"bad name", strings.Replace(clusterSection(good, ""), "name: dc1", "name: DC/1", 1), "cluster.name"},
		{"both etcds", strings.Replace(clusterSection(good, ""), "  etcd:\n", "  etcd:\n    endpoints: [\"http://127.0.0.1:2379\"]\n", 1), "exclude each other"},
		{"bad url", strings.Replace(clusterSection(good, ""), "http://127.0.0.1:2379", "127.0.0.1:2379", 1), "cluster.etcd.embedded.client_url"},
		{"unknown field", clusterSection(good, "  ttl: 1s\n"), "x.yaml:28: cluster.ttl: unknown field"},
		{"no key", strings.Replace(clusterSection(good, ""), "  key_file: "+good+"\n", "", 1), "cluster.key_file: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestReloadCluster: a changed cluster: section needs a restart, and the
// refusal never prints the cluster key.
func TestReloadCluster(t *testing.T) {
	cur, err := Parse("x.yaml", []byte(clusterSection(clusterKey(t, key64, 0o600), "")))
	if err != nil {
		t.Fatal(err)
	}
	other := "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
	next, err := Parse("x.yaml", []byte(clusterSection(clusterKey(t, other, 0o600), "  lease_ttl: 1s\n")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compare(cur, cur.SAFingerprints(), next)
	if err == nil || !strings.Contains(err.Error(), "cluster") || !strings.Contains(err.Error(), "key_file") {
		t.Fatalf("reload of a changed cluster: %v", err)
	}
	for _, leak := range []string{"255 238 221", "ffeedd", "0 17 34 51", "00112233", "[255", "[0 17"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("the refusal prints key bytes (%q): %v", leak, err)
		}
	}
	if _, err := Compare(cur, cur.SAFingerprints(), cur); err != nil {
		t.Fatalf("the same cluster: %v", err)
	}
}
