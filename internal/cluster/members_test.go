package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/xdpsec/xdpsec/internal/config"
)

// threeMembers starts three embedded etcd members in one process, as
// three nodes would, and returns each node's cluster configuration and
// member, and a stop function for each member (safe to call twice).
func threeMembers(t *testing.T) ([]*config.Cluster, []*embed.Etcd, []func()) {
	t.Helper()
	quietEtcd, noFsync = true, true
	names := []string{"a", "b", "c"}
	members := map[string]string{}
	for _, n := range names {
		members[n] = freeURL(t)
	}
	cls := make([]*config.Cluster, 3)
	srvs := make([]*embed.Etcd, 3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, n := range names {
		cls[i] = &config.Cluster{Name: "test", Node: n, Embedded: &config.EmbeddedEtcd{
			DataDir: t.TempDir(), PeerURL: members[n], ClientURL: freeURL(t), Members: members,
		}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srvs[i], errs[i] = StartEmbedded(ctx, cls[i])
		}()
	}
	wg.Wait()
	stop := make([]func(), 3)
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		stop[i] = sync.OnceFunc(srvs[i].Close)
		t.Cleanup(stop[i])
	}
	return cls, srvs, stop
}

// TestMemberLost: one of three etcd members dies (the raft leader where
// it is not the owner's own member); the owner keeps sending throughout.
// With a 2 s lease (slack 1.2 s): the default 800 ms one rides out an
// election too on an idle machine (docs/cluster.md), but not on one whose
// load starves the members' 20 ms heartbeats, as a shared CI host can.
func TestMemberLost(t *testing.T) {
	if raceEnabled {
		t.Skip("a timing test (no pause at all): not under the race detector's slowdown")
	}
	const testTTL, testMargin = 2 * time.Second, 300 * time.Millisecond
	cls, srvs, stopMember := threeMembers(t)
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b", "c"}}}
	var own []*Ownership
	for i, n := range []string{"a", "b", "c"} {
		o, err := StartOwnership(testClient(t, cls[i]), OwnershipConfig{Cluster: "test", Node: n, TTL: testTTL, Margin: testMargin, Groups: spec})
		if err != nil {
			t.Fatal(err)
		}
		own = append(own, o)
	}
	defer own[0].Close()
	defer own[1].Close()
	g := own[0].Group("g1")
	if !waitFor(5*time.Second, func() bool { return g.MaySend(Now()) }) {
		t.Fatal("a never took g1")
	}
	victim := 2
	if lead := srvs[0].Server.Leader(); lead != srvs[0].Server.MemberID() && lead == srvs[1].Server.MemberID() {
		victim = 1
	}
	wasLeader := srvs[victim].Server.Leader() == srvs[victim].Server.MemberID()
	// Watch a's right to send, every millisecond, across the loss.
	stop := make(chan struct{})
	gaps := make(chan time.Duration, 1)
	go func() {
		var gap, worst time.Duration
		var since int64
		for {
			select {
			case <-stop:
				gaps <- worst
				return
			default:
			}
			now := Now()
			if g.MaySend(now) {
				since = 0
			} else if since == 0 {
				since = now
			} else {
				gap = time.Duration(now - since)
				worst = max(worst, gap)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(testTTL)
	own[victim].cancel() // its node dies with its member
	own[victim].wg.Wait()
	stopMember[victim]()
	time.Sleep(4 * testTTL)
	close(stop)
	worst := <-gaps
	t.Logf("member %s lost (raft leader: %v); longest pause of a's sending: %v", []string{"a", "b", "c"}[victim], wasLeader, worst)
	if worst > 0 {
		t.Errorf("a stopped sending for %v after losing an etcd member", worst)
	}
	other := 3 - victim // the node that is neither a nor the victim
	if !g.MaySend(Now()) || own[other].Group("g1").MaySend(Now()) {
		t.Fatal("ownership moved")
	}
}
