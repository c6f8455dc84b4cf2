package daemon

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
)

// reservation is one batch's numbers a node's outbound SA handed out,
// and the Now() before and after the call.
type reservation struct {
	node     string
	first, n uint64
	t1, t2   int64
}

// startTestEtcd runs a one-member embedded etcd for the test and returns
// its client URL.
func startTestEtcd(t *testing.T) string {
	t.Helper()
	peer := etcdtest.FreeURL(t)
	etcd := &config.Cluster{Name: "t", Node: "e", Embedded: &config.EmbeddedEtcd{DataDir: t.TempDir(), PeerURL: peer,
		ClientURL: etcdtest.FreeURL(t), Members: map[string]string{"e": peer}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := cluster.StartEmbedded(ctx, etcd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return etcd.Embedded.ClientURL
}

// TestClusterMoveUnderTraffic: `xdpsec cluster move`, asked on a node
// outside the group and on the owner, hands the group over while both
// nodes' outbound SA ask for numbers all the time (as a worker does per
// batch): never two senders at once, no sequence number twice, and the
// gap between the old owner's last batch and the new one's first is
// short. Then the status and the metrics of both nodes.
func TestClusterMoveUnderTraffic(t *testing.T) {
	endpoint := startTestEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	planes := map[string]*clusterPlane{}
	sas := map[string][]*sad.SA{}
	for _, n := range []string{"a", "b", "c"} { // c may not carry g1
		cfg, s := clusterNode(t, n, endpoint)
		planes[n], sas[n] = newClusterPlane(cfg, s, slog.New(slog.DiscardHandler)), s
		if err := planes[n].start(ctx); err != nil {
			t.Fatal(err)
		}
		defer planes[n].close()
		if n == "a" && !etcdtest.WaitFor(5*time.Second, func() bool { return s[0].SeqLimit() > s[0].Seq() }) {
			t.Fatal("a's outbound SA never got numbers")
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"g1", "want GROUP/NODE"},
		{"g1/c", `node "c" may not carry group g1 (allowed: a, b)`},
		{"g9/a", `no group "g9"`},
	} {
		if _, err := planes["c"].moveAction(ctx, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("move %s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// The traffic: each node's outbound SA asks for a batch every
	// 100 µs or so.
	var mu sync.Mutex
	var got []reservation
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, n := range []string{"a", "b"} {
		sa := sas[n][0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				t1 := cluster.Now()
				f, k := sa.ReserveSeq(16)
				t2 := cluster.Now()
				if k > 0 {
					mu.Lock()
					got = append(got, reservation{n, f, uint64(k), t1, t2})
					mu.Unlock()
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	res, err := planes["c"].moveAction(ctx, "g1/b") // forwarded to a through etcd
	if err != nil || !strings.Contains(res, "moved from a to b") {
		t.Fatalf("move g1/b on c: %q %v", res, err)
	}
	t.Log("on c:", res)
	time.Sleep(300 * time.Millisecond)
	if res, err = planes["b"].moveAction(ctx, "g1/a"); err != nil || !strings.Contains(res, "moved from b to a") {
		t.Fatalf("move g1/a on b: %q %v", res, err)
	}
	t.Log("on b:", res)
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	// Runs of one node's batches, in the order they were asked for.
	slices.SortFunc(got, func(x, y reservation) int { return int(x.t1 - y.t1) })
	type run struct {
		node          string
		first, last   int // indexes in got
		maxSeq, minSq uint64
	}
	var runs []run
	for i, r := range got {
		if len(runs) == 0 || runs[len(runs)-1].node != r.node {
			runs = append(runs, run{node: r.node, first: i, minSq: r.first})
		}
		cur := &runs[len(runs)-1]
		cur.last = i
		cur.maxSeq = max(cur.maxSeq, r.first+r.n-1)
		cur.minSq = min(cur.minSq, r.first)
	}
	var nodes []string
	for _, r := range runs {
		nodes = append(nodes, r.node)
	}
	if !slices.Equal(nodes, []string{"a", "b", "a"}) {
		t.Fatalf("senders in turn: %v, want a, b, a", nodes)
	}
	for i := 1; i < len(runs); i++ {
		prev, next := got[runs[i-1].last], got[runs[i].first]
		// prev's call had returned before next's began: never two
		// senders, whatever the gates' exact instants.
		if prev.t2 >= next.t1 {
			t.Errorf("%s sent until %v, %s from %v: overlap", prev.node, time.Duration(prev.t2), next.node, time.Duration(next.t1))
		}
		if runs[i].minSq <= runs[i-1].maxSeq {
			t.Errorf("%s starts at %d, at or below %s's %d", runs[i].node, runs[i].minSq, runs[i-1].node, runs[i-1].maxSeq)
		}
		gap := time.Duration(next.t1 - prev.t2)
		t.Logf("move %s -> %s: gap %v between the last batch and the first (seq %d -> %d)", prev.node, next.node, gap.Round(10*time.Microsecond), prev.first+prev.n-1, next.first)
		if gap > config.DefaultLeaseTTL {
			t.Errorf("move %s -> %s: gap %v, want well under a lease", prev.node, next.node, gap)
		}
	}
	// No number twice, over everything both handed out.
	slices.SortFunc(got, func(x, y reservation) int {
		if x.first < y.first {
			return -1
		}
		if x.first > y.first {
			return 1
		}
		return 0
	})
	for i := 1; i < len(got); i++ {
		if got[i].first < got[i-1].first+got[i-1].n {
			t.Fatalf("sequence numbers used twice: %s %d+%d and %s %d+%d", got[i-1].node, got[i-1].first, got[i-1].n, got[i].node, got[i].first, got[i].n)
		}
	}
	t.Logf("%d batches, %d runs", len(got), len(runs))

	// Status: a active, b standby, c not allowed; the etcd member.
	if !etcdtest.WaitFor(5*time.Second, func() bool { s := planes["b"].snapshot(); return len(s.Members) == 1 && s.Members[0].Healthy }) {
		t.Fatalf("members %+v", planes["b"].snapshot().Members)
	}
	// c follows no group: it reads the owner every membersInterval.
	if !etcdtest.WaitFor(2*membersInterval+time.Second, func() bool { return planes["c"].snapshot().Groups[0].Owner == "a" }) {
		t.Error("c does not see a as g1's owner")
	}
	sa, sb, sc := planes["a"].snapshot(), planes["b"].snapshot(), planes["c"].snapshot()
	ga, gb, gc := sa.Groups[0], sb.Groups[0], sc.Groups[0]
	if sa.Node != "a" || sa.Etcd != "external" || ga.Role != cluster.RoleActive || ga.Owner != "a" || ga.LeaseLeft <= 0 || ga.Preference != 100 ||
		ga.Changes != 2 || ga.Writes["seq"] == 0 || ga.Writes["renew"] == 0 || len(ga.Seq) != 1 || ga.Since.IsZero() {
		t.Errorf("a: %+v", ga)
	}
	if q := ga.Seq[0]; q.SA != "out" || q.Reserved != q.Limit || q.Headroom == 0 || q.Headroom != q.Limit-q.Seq || q.ReservedAge < 0 {
		t.Errorf("a's reservation: %+v", q)
	}
	if gb.Role != cluster.RoleStandby || gb.Owner != "a" || gb.LeaseLeft != 0 || gb.Preference != 50 || gb.OwnerSeen < 0 || gb.OwnerSeen > config.DefaultLeaseTTL.Seconds() {
		t.Errorf("b: %+v", gb)
	}
	if gc.Role != cluster.RoleNone || gc.Owner != "a" || gc.Preference != 0 {
		t.Errorf("c: %+v", gc)
	}
	if m := sb.Members[0]; m.Name != "e" || !m.Leader || len(m.PeerURLs) != 1 {
		t.Errorf("member %+v", m)
	}
	// The same through the metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(func() *control.Snapshot { return &control.Snapshot{Cluster: sa} }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string, labels ...string) (float64, bool) {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				for i := 0; i+1 < len(labels); i += 2 {
					has := false
					for _, l := range m.GetLabel() {
						has = has || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
					}
					if !has {
						continue next
					}
				}
				switch {
				case m.Gauge != nil:
					return m.Gauge.GetValue(), true
				case m.Counter != nil:
					return m.Counter.GetValue(), true
				}
			}
		}
		return 0, false
	}
	for _, w := range []struct {
		name   string
		labels []string
		ok     func(float64) bool
	}{
		{"xdpsec_cluster_group_active", []string{"group", "g1"}, func(v float64) bool { return v == 1 }},
		{"xdpsec_cluster_group_role", []string{"group", "g1", "role", "standby"}, func(v float64) bool { return v == 0 }},
		{"xdpsec_cluster_ownership_changes_total", []string{"group", "g1"}, func(v float64) bool { return v == 2 }},
		{"xdpsec_cluster_lease_left_seconds", []string{"group", "g1"}, func(v float64) bool { return v > 0 && v < 1 }},
		{"xdpsec_cluster_etcd_writes_total", []string{"group", "g1", "kind", "seq"}, func(v float64) bool { return v > 0 }},
		{"xdpsec_cluster_etcd_writes_total", []string{"group", "g1", "kind", "renew"}, func(v float64) bool { return v > 0 }},
		{"xdpsec_cluster_seq_headroom", []string{"group", "g1", "sa", "out", "spi", "0x00001001"}, func(v float64) bool { return v > 0 }},
		{"xdpsec_cluster_seq_reservation_age_seconds", []string{"group", "g1", "sa", "out"}, func(v float64) bool { return v >= 0 && v < 5 }},
		{"xdpsec_cluster_replay_publish_age_seconds", []string{"group", "g1"}, func(v float64) bool { return v >= 0 && v < 1 }},
		{"xdpsec_cluster_etcd_members", []string{"state", "healthy"}, func(v float64) bool { return v == 1 }},
		{"xdpsec_cluster_etcd_member_leader", []string{"member", "e"}, func(v float64) bool { return v == 1 }},
	} {
		if v, ok := value(w.name, w.labels...); !ok || !w.ok(v) {
			t.Errorf("%s%v = %v (present %v)", w.name, w.labels, v, ok)
		}
	}
}

// TestClusterEtcdWriteRate: the etcd writes one group costs in steady
// state (one outbound SA at ~10,000 packets/s, one inbound SA whose
// window moves all the time, replay_publish 100 ms), counted by kind as
// xdpsec_cluster_etcd_writes_total counts them: renewals 4 per lease
// (5/s), replay tops at most one transaction per interval (10/s), the
// sequence reservations a few per second at most.
func TestClusterEtcdWriteRate(t *testing.T) {
	endpoint := startTestEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, sas := clusterNode(t, "a", endpoint)
	cfg.Cluster.ReplayPublish = 100 * time.Millisecond
	p := newClusterPlane(cfg, sas, slog.New(slog.DiscardHandler))
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if !etcdtest.WaitFor(5*time.Second, func() bool { return sas[0].SeqLimit() > sas[0].Seq() }) {
		t.Fatal("a's outbound SA never got numbers")
	}
	writes := func() map[string]uint64 { return p.snapshot().Groups[0].Writes }
	before, t0 := writes(), time.Now()
	var in uint64
	for time.Since(t0) < 2*time.Second {
		sas[0].ReserveSeq(10) // 10 packets a millisecond
		for range 10 {
			in++
			sas[1].Replay.Commit(in)
		}
		time.Sleep(time.Millisecond)
	}
	after, secs := writes(), time.Since(t0).Seconds()
	rate := map[string]float64{}
	for k := range after {
		rate[k] = float64(after[k]-before[k]) / secs
	}
	t.Logf("etcd writes per second for one group (1 out + 1 in SA, %.0f packets/s out): renew %.1f, seq %.1f, replay %.1f, record %.1f",
		float64(sas[0].Seq())/secs, rate["renew"], rate["seq"], rate["replay"], rate["record"])
	for k, most := range map[string]float64{"renew": 6, "seq": 3, "replay": 11, "record": 0} {
		if rate[k] > most {
			t.Errorf("%s: %.1f writes/s, want at most %v", k, rate[k], most)
		}
	}
	if rate["renew"] < 3 || rate["replay"] < 5 {
		t.Errorf("renewals or replay tops not counted: %v", rate)
	}
}
