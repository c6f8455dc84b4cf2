package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// TestPrintCluster: show cluster names the members with their health and
// the raft leader, each group's active node and this node's part, the
// reservations' headroom and the sync ages, and it survives JSON (what
// the control socket carries).
func TestPrintCluster(t *testing.T) {
	now := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	snap := &control.Snapshot{Now: now, Cluster: &control.Cluster{Name: "lab", Node: "gw-a", Etcd: "embedded",
		MembersChecked: now.Add(-time.Second),
		Members: []control.ClusterMember{
			{Name: "gw-a", PeerURLs: []string{"http://10.0.0.1:2380"}, ClientURLs: []string{"http://10.0.0.1:2379"}, Healthy: true, Leader: true, Version: "3.7.3"},
			{Name: "gw-b", PeerURLs: []string{"http://10.0.0.2:2380"}, ClientURLs: []string{"http://10.0.0.2:2379"}, Error: "context deadline exceeded"},
		},
		Groups: []control.ClusterGroup{
			{Name: "site-a", Owner: "gw-a", Role: "active", Since: now.Add(-5 * time.Minute), LeaseLeft: 0.612, Preference: 100,
				Nodes: []control.ClusterNode{{Name: "gw-a", Preference: 100}, {Name: "gw-b", Preference: 50}}, Changes: 2, OwnerSeen: 0.012,
				ReplayPublished: 0.045, Writes: map[string]uint64{"renew": 1234, "seq": 12, "replay": 600}, FollowedAge: -1,
				Seq: []control.ClusterSeq{{SA: "out1", SPI: 0x1001, Seq: 5136, Limit: 65536, Reserved: 65536, Headroom: 60400, ReservedAge: 0.4}}},
			{Name: "site-b", Owner: "gw-b", Role: "standby", Since: now.Add(-time.Hour), Preference: 50,
				Nodes: []control.ClusterNode{{Name: "gw-b", Preference: 100}, {Name: "gw-a", Preference: 50}}, OwnerSeen: 0.1,
				ReplayPublished: -1, Writes: map[string]uint64{}, Followed: 4, FollowedAge: 3},
		},
		BGP:       []control.ClusterBGPSession{{Neighbor: "192.0.2.254", AS: 65000, State: "established"}, {Neighbor: "192.0.2.253", AS: 65000, State: "active"}},
		BGPRoutes: []string{"198.18.1.1/32", "203.0.113.10/32"},
	}}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back control.Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printCluster(&out, &back)
	t.Logf("\n%s", out.String())
	for _, want := range []string{
		"cluster lab, this node gw-a, etcd embedded",
		"etcd members: 2, 1 healthy (checked 1s ago)",
		"  gw-a  ok      LEADER  http://10.0.0.1:2380",
		"  gw-b  DOWN    -       http://10.0.0.2:2380",
		"  gw-b: context deadline exceeded",
		"  site-a  gw-a       active     5m0s    612ms       100   gw-a:100 gw-b:50  2        12ms ago",
		"  site-b  gw-b       standby    1h0m0s  -",
		"  site-a  out1  0x00001001  5136  65536  65536             60400     400ms ago",
		"  site-a  45ms ago",
		"1234/12/600/0",
		"  site-b  -                      0/0/0/0        4                 3s ago",
		"bgp sessions:\n  NEIGHBOR     AS     STATE\n  192.0.2.254  65000  established\n  192.0.2.253  65000  active\n",
		"announced: 198.18.1.1/32 203.0.113.10/32",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show cluster lacks %q", want)
		}
	}
	out.Reset()
	printCluster(&out, &control.Snapshot{})
	if !strings.Contains(out.String(), "no cluster") {
		t.Errorf("without a cluster: %q", out.String())
	}
	// -o json keys (what scripts read) are the documented ones.
	for _, k := range []string{`"role":"active"`, `"lease_left_s":0.612`, `"headroom":60400`, `"replay_publish_age_s":0.045`, `"etcd_writes":{`, `"leader":true`, `"bgp":[{"neighbor":"192.0.2.254","as":65000,"state":"established"}`, `"bgp_routes":[`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("json lacks %s", k)
		}
	}
}

// stdout runs f with os.Stdout going to a pipe and returns what it wrote.
func stdout(t *testing.T, f func() int) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	code := f()
	os.Stdout = saved
	w.Close()
	return string(<-done), code
}

// TestClusterCommands: show cluster and cluster move through a control
// socket: the request the daemon gets, and what the operator reads.
func TestClusterCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "x.sock")
	snap := &control.Snapshot{Now: time.Now(), Cluster: &control.Cluster{Name: "lab", Node: "gw-a", Etcd: "external",
		Groups: []control.ClusterGroup{{Name: "site-a", Owner: "gw-b", Role: "standby", ReplayPublished: -1, FollowedAge: -1, OwnerSeen: 0.05}}}}
	srv, err := control.Listen(sock, control.Access{}, func() *control.Snapshot { return snap }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var asked []string
	srv.Handle(control.CommandClusterMove, func(_ context.Context, name string) (string, error) {
		asked = append(asked, name)
		if name == "site-a/gw-c" {
			return "", errors.New(`move refused: node "gw-c" may not carry group site-a (allowed: gw-a, gw-b)`)
		}
		return "group site-a moved from gw-b to gw-a in 14 ms", nil
	})
	out, code := stdout(t, func() int { return runShow([]string{"cluster", "--socket", sock}) })
	if code != 0 || !strings.Contains(out, "site-a  gw-b       standby") {
		t.Errorf("show cluster: exit %d\n%s", code, out)
	}
	out, code = stdout(t, func() int { return runShow([]string{"cluster", "-o", "json", "--socket", sock}) })
	var c control.Cluster
	if err := json.Unmarshal([]byte(out), &c); code != 0 || err != nil || c.Node != "gw-a" || c.Groups[0].Owner != "gw-b" {
		t.Errorf("show cluster -o json: exit %d, %v\n%s", code, err, out)
	}
	out, code = stdout(t, func() int { return runCluster([]string{"move", "--socket", sock, "site-a", "gw-a"}) })
	if code != 0 || out != "group site-a moved from gw-b to gw-a in 14 ms\n" {
		t.Errorf("cluster move: exit %d, %q", code, out)
	}
	if _, code = stdout(t, func() int { return runCluster([]string{"move", "site-a", "gw-c", "--socket", sock}) }); code != 1 {
		t.Errorf("a refused move: exit %d", code)
	}
	saved := helpOut
	helpOut = io.Discard
	defer func() { helpOut = saved }()
	for _, bad := range [][]string{{"move", "site-a"}, {"move", "site-a/gw-a", "x"}, {"mv", "a", "b"}} {
		if _, code = stdout(t, func() int { return runCluster(append(bad, "--socket", sock)) }); code != 2 {
			t.Errorf("cluster %v: exit %d, want 2", bad, code)
		}
	}
	if want := []string{"site-a/gw-a", "site-a/gw-c"}; strings.Join(asked, " ") != strings.Join(want, " ") {
		t.Errorf("the daemon was asked %q, want %q", asked, want)
	}
}
