package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
)

// clusterNode is node's configuration of a two-SA group g1 (a preferred)
// and its SAs, on the etcd at endpoint.
func clusterNode(t *testing.T, node, endpoint string) (*config.Config, []*sad.SA) {
	t.Helper()
	key := bytes.Repeat([]byte{0x11}, 20)
	mk := func(name string, spi uint32, dir sad.Direction) config.SA {
		return config.SA{Config: sad.Config{Name: name, SPI: spi, Dir: dir, Mode: sad.Tunnel,
			Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
			Suite: sad.AESGCM128, Key: bytes.Clone(key)}}
	}
	cfg := &config.Config{SAs: []config.SA{mk("out", 0x1001, sad.Outbound), mk("in", 0x2002, sad.Inbound)}}
	cfg.Cluster = &config.Cluster{Name: "t", Node: node, Key: bytes.Repeat([]byte{7}, 32),
		LeaseTTL: config.DefaultLeaseTTL, FenceMargin: config.DefaultFenceMargin, ReplayPublish: 10 * time.Millisecond,
		Groups: []config.TunnelGroup{{Name: "g1", SAs: []string{"out", "in"},
			Nodes: []config.GroupNode{{Name: "a", Preference: 100}, {Name: "b", Preference: 50}}}}}
	cfg.Cluster.Endpoints = []string{endpoint}
	var sas []*sad.SA
	for _, sc := range cfg.SAs {
		sa, err := sad.New(sc.Config)
		if err != nil {
			t.Fatal(err)
		}
		sas = append(sas, sa)
	}
	return cfg, sas
}

// TestClusterPlaneStaticSAs: a group's static SAs send only on the node
// that owns the group, above the group's mark; when the group moves, the
// new owner's first sequence number is above everything the old one could
// use, and its inbound window refuses what the old one accepted.
func TestClusterPlaneStaticSAs(t *testing.T) {
	endpoint := startTestEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgA, sasA := clusterNode(t, "a", endpoint)
	cfgB, sasB := clusterNode(t, "b", endpoint)
	if len(seqKeys(cfgA, sasA)) != 0 {
		t.Fatal("a grouped SA got a state_dir mark as well")
	}
	pa, pb := newClusterPlane(cfgA, sasA, slog.New(slog.DiscardHandler)), newClusterPlane(cfgB, sasB, slog.New(slog.DiscardHandler))
	if err := pa.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pa.close()
	if !etcdtest.WaitFor(5*time.Second, func() bool { return sasA[0].SeqLimit() > sasA[0].Seq() }) {
		t.Fatal("a's outbound SA never got numbers")
	}
	if err := pb.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pb.close()
	// a sends and receives; b, the standby, can send nothing.
	var lastA uint64
	for i := 0; i < 1000; i++ {
		if f, n := sasA[0].ReserveSeq(64); n > 0 {
			lastA = f + uint64(n) - 1
		}
	}
	for s := uint64(1); s <= 700; s++ {
		sasA[1].Replay.Commit(s)
	}
	if _, n := sasB[0].ReserveSeq(1); n != 0 {
		t.Fatal("the standby's outbound SA gave a number")
	}
	// Its gate is the group's: closed on the standby, whatever the limit.
	sasB[0].SetSeqLimit(1 << 20)
	if _, n := sasB[0].ReserveSeq(1); n != 0 {
		t.Fatal("the standby's outbound SA is not gated")
	}
	sasB[0].SetSeqLimit(0)
	// The inbound fence: a's inbound SA receives, b's (the standby's) not.
	if g := sasA[1].Gate(); g == nil || !etcdtest.WaitFor(5*time.Second, func() bool { return g.Ready(sad.Now()) }) {
		t.Fatal("the owner's inbound SA is not ready to receive")
	}
	if g := sasB[1].Gate(); g == nil || g.Ready(sad.Now()) {
		t.Fatalf("the standby's inbound SA may receive (gate %p)", g)
	}
	time.Sleep(100 * time.Millisecond) // a publishes its top (every 10 ms)
	// a leaves: the group moves to b at once.
	if err := pa.close(); err != nil {
		t.Fatal(err)
	}
	if _, n := sasA[0].ReserveSeq(1); n != 0 && sasA[0].Seq() > sasA[0].SeqLimit() {
		t.Fatal("a sends past its limit after leaving")
	}
	lastA = max(lastA, sasA[0].SeqLimit()) // everything a could have used
	if !etcdtest.WaitFor(5*time.Second, func() bool { return sasB[0].SeqLimit() > sasB[0].Seq() }) {
		t.Fatal("b's outbound SA never got numbers")
	}
	first, n := sasB[0].ReserveSeq(1)
	if n != 1 || first <= lastA {
		t.Fatalf("b starts at %d, a could use up to %d", first, lastA)
	}
	if sasA[1].Gate().Ready(sad.Now()) {
		t.Fatal("a's inbound SA may still receive after a left")
	}
	// b receives once ready, and by then its window holds a's top.
	if !etcdtest.WaitFor(5*time.Second, func() bool { return sasB[1].Gate().Ready(sad.Now()) }) {
		t.Fatal("b's inbound SA never became ready")
	}
	if sasB[1].Replay.Commit(700) || sasB[1].Replay.Commit(1) || !sasB[1].Replay.Commit(701) {
		t.Fatal("b's inbound window is not at a's published top")
	}
	t.Logf("a used up to %d (limit %d), b starts at %d", sasA[0].Seq(), sasA[0].SeqLimit(), first)
}
