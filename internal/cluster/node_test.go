package cluster

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
)

// TestNode: node a runs the embedded member, node b uses it as an
// external endpoint; each takes its preferred group, hears the change,
// and a's shutdown hands its group to b at once.
func TestNode(t *testing.T) {
	quietEtcd, noFsync = true, true
	peer := freeURL(t)
	key := bytes.Repeat([]byte{7}, 32)
	groups := []config.TunnelGroup{
		{Name: "g1", Nodes: []config.GroupNode{{Name: "a", Preference: 100}, {Name: "b", Preference: 50}}},
		{Name: "g2", Nodes: []config.GroupNode{{Name: "b", Preference: 100}, {Name: "a", Preference: 50}}},
	}
	clA := &config.Cluster{Name: "test", Node: "a", Key: key, LeaseTTL: config.DefaultLeaseTTL, FenceMargin: config.DefaultFenceMargin,
		Embedded: &config.EmbeddedEtcd{DataDir: t.TempDir(), PeerURL: peer, ClientURL: freeURL(t), Members: map[string]string{"a": peer}},
		Groups:   groups}
	clB := &config.Cluster{Name: "test", Node: "b", Key: key, LeaseTTL: config.DefaultLeaseTTL, FenceMargin: config.DefaultFenceMargin,
		Endpoints: []string{clA.Embedded.ClientURL}, Groups: groups}
	var mu sync.Mutex
	heard := map[string][]bool{}
	on := func(node string) func(string, bool) {
		return func(g string, sending bool) {
			mu.Lock()
			heard[node+"/"+g] = append(heard[node+"/"+g], sending)
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := StartNode(ctx, clA, NodeOptions{OnChange: on("a")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := StartNode(ctx, clB, NodeOptions{OnChange: on("b")})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	defer b.Close()
	ga, gb := a.Ownership.Group("g1"), b.Ownership.Group("g2")
	if !waitFor(5*time.Second, func() bool { return ga.MaySend(Now()) && gb.MaySend(Now()) }) {
		t.Fatal("the preferred nodes did not take their groups")
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "b" || len(st.Members) != 1 || st.Members[0].Name != "a" || !st.Members[0].Leader ||
		len(st.Groups) != 2 || st.Groups[0].Name != "g1" || st.Groups[0].Owner != "a" || st.Groups[0].Sending ||
		st.Groups[1].Owner != "b" || !st.Groups[1].Sending || st.Groups[1].Left <= 0 || st.Groups[1].Left > config.DefaultLeaseTTL {
		t.Fatalf("status %+v", st)
	}
	// b stops using a's member as a's node goes: it gets g1 released
	// first (Ownership.Close before the member stops).
	released := make(chan struct{})
	go func() {
		waitFor(5*time.Second, func() bool { return b.Ownership.Group("g1").MaySend(Now()) })
		close(released)
	}()
	a.Ownership.Close()
	a.Ownership = nil
	<-released
	if !b.Ownership.Group("g1").MaySend(Now()) {
		t.Fatal("b did not take g1 on a's shutdown")
	}
	mu.Lock()
	got := map[string][]bool{}
	for k, v := range heard {
		got[k] = append([]bool(nil), v...)
	}
	mu.Unlock() // the callbacks run on as the nodes close
	for k, want := range map[string][]bool{"a/g1": {true, false}, "b/g2": {true}, "b/g1": {true}} {
		if got := got[k]; len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
			t.Errorf("%s heard %v, want %v", k, got, want)
		}
	}
	b.Close()
	a.Close()
}
