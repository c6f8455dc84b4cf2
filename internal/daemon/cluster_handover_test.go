package daemon

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/sad"
)

// TestClusterMoveHandOver: a graceful move hands the new owner the old
// one's exact last replay tops (published after it stopped receiving, not
// the last periodic publication: here there is none), and the old owner's
// gate forwards the group's frames to the new owner's MACs from the moment
// it stops; the new owner forwards nothing and is ready only with the tops
// in its windows.
func TestClusterMoveHandOver(t *testing.T) {
	endpoint := startTestEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgA, sasA := clusterNode(t, "a", endpoint)
	cfgB, sasB := clusterNode(t, "b", endpoint)
	cfgA.Cluster.ReplayPublish, cfgB.Cluster.ReplayPublish = time.Hour, time.Hour
	pa, pb := newClusterPlane(cfgA, sasA, slog.New(slog.DiscardHandler)), newClusterPlane(cfgB, sasB, slog.New(slog.DiscardHandler))
	if err := pa.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pa.close()
	gateA := sasA[1].Gate()
	if !etcdtest.WaitFor(5*time.Second, func() bool { return gateA.Ready(sad.Now()) }) {
		t.Fatal("a never became ready")
	}
	if err := pb.start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pb.close()
	macs := map[string]cluster.NodeMACs{}
	for i, p := range []*clusterPlane{pa, pb} {
		w := net.HardwareAddr{2, 0, 0, 1, 0, byte(i + 1)}
		l := net.HardwareAddr{2, 0, 0, 2, 0, byte(i + 1)}
		if err := p.node.Ownership.PutMACs(ctx, w, l); err != nil {
			t.Fatal(err)
		}
		var m cluster.NodeMACs
		copy(m[0][:], w)
		copy(m[1][:], l)
		p.ho.self.Store(&m)
		macs[p.cfg.Node] = m
	}
	// a accepted up to 900 and published nothing since it took the group.
	for s := uint64(1); s <= 900; s++ {
		sasA[1].Replay.Commit(s)
	}
	if err := pa.node.Ownership.Move(ctx, "g1", "b"); err != nil {
		t.Fatal(err)
	}
	now := sad.Now()
	if gateA.Ready(now) {
		t.Fatal("a still ready after handing g1 over")
	}
	f := gateA.Forwarding(now)
	if f == nil || f.To != macs["b"] || f.Self != macs["a"] || len(f.Nodes) != 4 {
		t.Fatalf("a's forward: %+v, want to b's MACs %v", f, macs["b"])
	}
	gateB := sasB[1].Gate()
	if !etcdtest.WaitFor(5*time.Second, func() bool { return gateB.Ready(sad.Now()) }) {
		t.Fatal("b never became ready")
	}
	if sasB[1].Replay.Commit(900) || sasB[1].Replay.Commit(450) || !sasB[1].Replay.Commit(901) {
		t.Fatal("b's window does not hold a's last top (900)")
	}
	if gateB.Forwarding(sad.Now()) != nil {
		t.Fatal("the new owner forwards")
	}
	// And back: b's last top (1000) reaches a; a forwards no more.
	for s := uint64(902); s <= 1000; s++ {
		sasB[1].Replay.Commit(s)
	}
	if err := pb.node.Ownership.Move(ctx, "g1", "a"); err != nil {
		t.Fatal(err)
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool { return gateA.Ready(sad.Now()) }) {
		t.Fatal("a never became ready again")
	}
	if gateA.Forwarding(sad.Now()) != nil {
		t.Fatal("a, the owner again, still forwards")
	}
	if sasA[1].Replay.Commit(1000) || !sasA[1].Replay.Commit(1001) {
		t.Fatal("a's window is not at b's last top")
	}
}
