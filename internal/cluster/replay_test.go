package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

func TestReplayTops(t *testing.T) {
	_, a, b := twoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pa, pb := NewReplayTops(a), NewReplayTops(b)
	saA, saB := testSA(t, 0x2002, sad.Inbound), testSA(t, 0x2002, sad.Inbound)

	// a receives 1..5000 and publishes every 10 ms.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pa.Run(rctx, 10*time.Millisecond, func(string) []*sad.SA { return []*sad.SA{saA} }, func(err error) { t.Error(err) })
	}()
	for s := uint64(1); s <= 5000; s++ {
		saA.Replay.Commit(s)
	}
	if !waitFor(5*time.Second, func() bool {
		r, err := b.cli.Get(ctx, a.keys.replay("g1", 0x2002))
		return err == nil && len(r.Kvs) == 1 && string(r.Kvs[0].Value) == "5000"
	}) {
		t.Fatal("top 5000 never published")
	}
	stop()
	<-done
	// The standby cannot publish.
	saB.Replay.Commit(9000)
	if _, err := pb.Publish(ctx, "g1", []*sad.SA{saB}); err == nil {
		t.Fatal("standby published a top")
	}
	saB = testSA(t, 0x2002, sad.Inbound)

	// b takes over and applies the top: a replay of anything a accepted
	// is refused, the peer's next packets are not.
	if err := a.Move(ctx, "g1", "b"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("b did not take g1")
	}
	if err := pb.Apply(ctx, "g1", []*sad.SA{saB}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []uint64{1, 4000, 4999, 5000} {
		if saB.Replay.Commit(s) {
			t.Fatalf("replay of %d accepted after takeover", s)
		}
	}
	if !saB.Replay.Commit(5001) || !saB.Replay.Commit(5003) {
		t.Fatal("fresh packets refused after takeover")
	}
	// b now publishes above a's top.
	n, err := pb.Publish(ctx, "g1", []*sad.SA{saB})
	if err != nil || n != 1 {
		t.Fatalf("b published %d: %v", n, err)
	}
}
