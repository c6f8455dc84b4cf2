package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CLUSTER_DEBUG=DIR runs the cluster lab's nodes with log_level debug (the
// ownership loops' steps, with timestamps) and copies every node's log to
// DIR when the test ends, for a slow takeover to be read afterwards.
func clusterDebugDir() string { return os.Getenv("CLUSTER_DEBUG") }

// clusterLogLevel is the cluster nodes' log_level line.
func clusterLogLevel() string {
	if clusterDebugDir() != "" {
		return "log_level: debug\n"
	}
	return ""
}

// keepClusterLogs copies the lab's daemon logs to CLUSTER_DEBUG's
// directory (nothing without it).
func (c *clusterLab) keepClusterLogs(t *testing.T) {
	dir := clusterDebugDir()
	if dir == "" {
		return
	}
	t.Cleanup(func() {
		os.MkdirAll(dir, 0o755)
		logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
		for _, f := range logs {
			if b, err := os.ReadFile(f); err == nil {
				os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644)
			}
		}
		t.Logf("cluster logs copied to %s", dir)
	})
}

// etcdLeader is the live node whose embedded etcd member leads the raft
// group now ("" if none answers as leader), asked through each member's
// gRPC gateway (maintenance/status).
func (c *clusterLab) etcdLeader(t *testing.T) string {
	t.Helper()
	for n, g := range c.gws {
		if n == "gP" || isDone(g) {
			continue
		}
		out, err := c.run(n, 2*time.Second, "curl", "-s", "-m", "1", "-X", "POST", "http://127.0.0.1:2379/v3/maintenance/status", "-d", "{}")
		if err != nil {
			continue
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if json.Unmarshal([]byte(out), &st) == nil && st.Leader != "" && st.Leader == st.Header.MemberID {
			return n
		}
	}
	return ""
}
