package config

import (
	"strings"
	"testing"
)

// TestClusterAnnounce: cluster.announce defaults to DefaultAnnounce, takes
// 0..20, and refuses anything else with file:line.
func TestClusterAnnounce(t *testing.T) {
	key := clusterKey(t, key64, 0o600)
	for _, c := range []struct {
		extra string
		want  int
		err   string
	}{
		{"", DefaultAnnounce, ""},
		{"  announce: 0\n", 0, ""},
		{"  announce: 5\n", 5, ""},
		{"  announce: 21\n", 0, "x.yaml:28: cluster.announce"},
		{"  announce: often\n", 0, "cluster.announce"},
	} {
		cfg, err := Parse("x.yaml", []byte(clusterSection(key, c.extra)))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.extra, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.extra, err)
		case cfg.Cluster.Announce != c.want:
			t.Errorf("%q: announce %d, want %d", c.extra, cfg.Cluster.Announce, c.want)
		}
	}
}
