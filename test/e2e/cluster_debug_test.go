package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
		if id, leader := c.etcdMember(n); id != "" && id == leader {
			return n
		}
	}
	return ""
}

// probeGroupARP broadcasts n ARP requests for the group's WAN address from
// gP's WAN interface, gap apart ("who has 192.0.2.1, tell 192.0.2.2"):
// every kernel that holds the address answers, unless the XDP fence drops
// the request.
func (c *clusterLab) probeGroupARP(t *testing.T, n int, gap time.Duration) {
	t.Helper()
	var frame []byte
	err := c.inNetns("gP", func() error {
		ifc, err := net.InterfaceByName("wan0")
		if err != nil {
			return err
		}
		frame = append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ifc.HardwareAddr...)
		frame = append(frame, 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1)
		frame = append(frame, ifc.HardwareAddr...)
		frame = append(frame, netip.MustParseAddr(clPeerWAN).AsSlice()...)
		frame = append(frame, 0, 0, 0, 0, 0, 0)
		frame = append(frame, netip.MustParseAddr(clGroupWAN).AsSlice()...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(gap)
		}
		c.sendRaw(t, "gP", "wan0", [][]byte{frame})
	}
}

// arpReplies are the ARP replies for the group's WAN address in a
// capture: time and sender MAC.
func arpReplies(t *testing.T, pcap string) [][2]string {
	var out [][2]string
	for _, ln := range tshark(t, pcap, nil, "-Y", "arp.opcode == 2 and arp.src.proto_ipv4 == "+clGroupWAN, "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src") {
		if f := strings.Split(ln, "\t"); len(f) == 2 {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	return out
}

// etcdMember is node's etcd member ID and the leader's it knows ("" when
// its member does not answer).
func (c *clusterLab) etcdMember(n string) (id, leader string) {
	out, err := c.etcdPost(n, "/v3/maintenance/status", "{}", time.Second)
	if err != nil {
		return "", ""
	}
	var st struct {
		Header struct {
			MemberID string `json:"member_id"`
		} `json:"header"`
		Leader string `json:"leader"`
	}
	if json.Unmarshal([]byte(out), &st) != nil {
		return "", ""
	}
	return st.Header.MemberID, st.Leader
}

// moveEtcdLeader makes node's etcd member the raft leader (etcd's
// leadership transfer, asked of the leader), for CLUSTER_KILL_LEADER: a
// kill of the group's owner is then a kill of the etcd leader too.
func (c *clusterLab) moveEtcdLeader(t *testing.T, node string) {
	t.Helper()
	to, _ := c.etcdMember(node)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		leader := c.etcdLeader(t)
		if leader == node {
			return
		}
		if leader != "" && to != "" {
			c.etcdPost(leader, "/v3/maintenance/transfer-leadership", `{"targetID":"`+to+`"}`, 2*time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("etcd leadership did not move to %s", node)
}

// etcdPost posts body to node's etcd member's JSON gateway (client URL
// 127.0.0.1:2379 in node's namespace) and returns the response body. The
// connection is made inside the namespace; its socket stays there.
func (c *clusterLab) etcdPost(node, path, body string, timeout time.Duration) (string, error) {
	var conn net.Conn
	if err := c.netns(node).Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", "127.0.0.1:2379", timeout)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:2379"+path, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("etcd %s: %s: %s", path, resp.Status, b)
	}
	return string(b), err
}
