package config

import (
	"strings"
	"testing"
)

// witnessSection is an etcd witness's whole configuration, with extra
// lines inside cluster: and top lines before it.
func witnessSection(top, extra string) string {
	return top + `cluster:
  name: dc1
  node: gw-w
  witness: true
  etcd:
    embedded:
      data_dir: /var/lib/xdpsec/etcd
      peer_url: http://198.51.100.3:2380
      client_url: http://127.0.0.1:2379
      members: {gw-a: "http://198.51.100.1:2380", gw-b: "http://198.51.100.2:2380", gw-w: "http://198.51.100.3:2380"}
` + extra
}

// TestClusterWitness: a witness (cluster.witness) is an etcd member only:
// no interfaces, no tunnels, no key file and no group needed, and none
// allowed but the interfaces; a gateway's configuration is unchanged.
func TestClusterWitness(t *testing.T) {
	c, err := Parse("w.yaml", []byte(witnessSection("", "")))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Witness() || c.Cluster.Node != "gw-w" || c.Cluster.Embedded == nil || len(c.Cluster.Groups) != 0 {
		t.Fatalf("witness %+v", c.Cluster)
	}
	if c, err := Parse("x.yaml", []byte(clusterSection(clusterKey(t, key64, 0o600), ""))); err != nil || c.Witness() {
		t.Fatalf("a gateway node parses as a witness: %v", err)
	}
	if _, err := Parse("x.yaml", []byte(base)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"tunnels", witnessSection(base, ""), "a witness is an etcd member only: no sas, policies or connections"},
		{"groups", witnessSection("", `  groups:
    - {name: g1, sas: [ab], wan: 203.0.113.10/24, lan: 198.18.1.1/24, nodes: {gw-a: 1}}
`), "x.yaml:12: cluster.groups: a witness (cluster.witness) carries no group"},
		{"external etcd", strings.Replace(witnessSection("", ""), `  etcd:
    embedded:
      data_dir: /var/lib/xdpsec/etcd
      peer_url: http://198.51.100.3:2380
      client_url: http://127.0.0.1:2379
      members: {gw-a: "http://198.51.100.1:2380", gw-b: "http://198.51.100.2:2380", gw-w: "http://198.51.100.3:2380"}
`, "  etcd: {endpoints: [\"http://198.51.100.9:2379\"]}\n", 1), "cluster.witness: a witness is an embedded etcd member: etcd.embedded is required"},
		{"not a boolean", strings.Replace(witnessSection("", ""), "witness: true", "witness: maybe", 1), "x.yaml:4: cluster.witness"},
		{"no interfaces without witness", strings.Replace(witnessSection("", ""), "witness: true", "witness: false\n  key_file: /nonexistent", 1), "interfaces: lan and wan are required"},
	} {
		_, err := Parse("x.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
