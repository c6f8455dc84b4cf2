package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/control"
)

// TestClusterShow: a real daemon with a cluster: section (its own
// embedded etcd member, one group of its static SAs) answers `xdpsec show
// cluster` (text and JSON), `xdpsec cluster move` (refusals, and "already
// there"), exports the xdpsec_cluster_* metrics, and logs its taking the
// group as one ownership-change line.
func TestClusterShow(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(l.dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The lab's namespace is the test's own: fixed loopback ports are free.
	top := fmt.Sprintf(`cluster:
  name: e2e
  node: ga
  key_file: %s
  etcd:
    embedded:
      data_dir: %s
      peer_url: http://127.0.0.1:23800
      client_url: http://127.0.0.1:23790
      members: {ga: "http://127.0.0.1:23800"}
  groups:
    - name: g1
      sas: [out, in]
      wan: 198.51.100.10/32
      lan: 198.18.1.254/24
      nodes: {ga: 100}   # every node of a group is an etcd member: one alone keeps its quorum`, keyFile, filepath.Join(l.dir, "etcd-gA"))
	a, _, _ := l.configs(t, tunnelOpts{top: top})
	g := l.start(t, "gA", a)
	var c *control.Cluster
	if !etcdtest.WaitFor(10*time.Second, func() bool {
		s, err := control.Query(l.sockPath("gA"))
		if err != nil || s.Cluster == nil || len(s.Cluster.Groups) != 1 || len(s.Cluster.Members) != 1 {
			return false
		}
		c = s.Cluster
		return c.Groups[0].Role == "active" && c.Members[0].Healthy
	}) {
		t.Fatalf("gA never showed g1 active with a healthy member: %+v\n%s", c, g.logText())
	}
	sock := l.sockPath("gA")
	out, err := exec.Command(xdpsecBin, "show", "cluster", "--socket", sock).CombinedOutput()
	t.Logf("xdpsec show cluster:\n%s", out)
	for _, want := range []string{"cluster e2e, this node ga, etcd embedded", "etcd members: 1, 1 healthy", "ga    ok      LEADER  http://127.0.0.1:23800",
		"g1     ga         active", "ga:100", "out  0x"} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("show cluster lacks %q (%v)", want, err)
		}
	}
	out, err = exec.Command(xdpsecBin, "show", "cluster", "-o", "json", "--socket", sock).Output()
	var jc control.Cluster
	if err != nil || json.Unmarshal(out, &jc) != nil || jc.Groups[0].Owner != "ga" || len(jc.Groups[0].Seq) != 1 || jc.Groups[0].Seq[0].Headroom == 0 {
		t.Errorf("show cluster -o json: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"g1", "ga"}, 0, "group g1 is active on ga already"},
		{[]string{"g2", "ga"}, 1, `no group "g2"`},
		{[]string{"g1", "gb"}, 1, `no node "gb"`},
	} {
		out, err := exec.Command(xdpsecBin, append(append([]string{"cluster", "move"}, tc.args...), "--socket", sock)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("cluster move %v: exit %d %q, want %d %q", tc.args, code, out, tc.code, tc.want)
		}
	}
	metrics := l.scrape(t, "gA", "127.0.0.1:9301")
	for _, want := range []string{`xdpsec_cluster_group_active{group="g1"} 1`, `xdpsec_cluster_etcd_members{state="healthy"} 1`,
		`xdpsec_cluster_etcd_member_leader{member="ga"} 1`, `xdpsec_cluster_etcd_writes_total{group="g1",kind="renew"}`,
		`xdpsec_cluster_seq_headroom{group="g1",sa="out",spi="0x`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if log := g.logText(); !strings.Contains(log, "cluster: group owner changed") || !strings.Contains(log, "reason=takeover") && !strings.Contains(log, `"reason":"takeover"`) {
		t.Errorf("no ownership-change line in the log:\n%s", log)
	}
	l.stopClean(t, g)
}
