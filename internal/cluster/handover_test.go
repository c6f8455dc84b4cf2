package cluster

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestHandOverHooks: on a move the owner's Forward hook runs while it may
// still send (so forwarding is set before the first frame it refuses), its
// Final hook after it stopped and before the mark (so what Final writes is
// in etcd before the next owner can take the group); a release runs Final
// and no Forward. Nodes' MACs go to etcd and come back.
func TestHandOverHooks(t *testing.T) {
	cl := testEtcd(t)
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}}
	ca, cb := testClient(t, cl), testClient(t, cl)
	var mu sync.Mutex
	var events []string
	note := func(s string) {
		mu.Lock()
		events = append(events, s)
		mu.Unlock()
	}
	var a *Ownership
	hooks := HandOver{
		Forward: func(group, to string) {
			open := a.Group(group).MaySend(Now())
			note("forward " + group + " " + to + map[bool]string{true: " open", false: " closed"}[open])
		},
		Final: func(group string) {
			closed := !a.Group(group).MaySend(Now())
			// What Final writes lands before the mark.
			if _, err := ca.Put(context.Background(), "/xdpsec/test/final", group); err != nil {
				t.Error(err)
			}
			note("final " + group + map[bool]string{true: " closed", false: " open"}[closed])
		},
	}
	var err error
	a, err = StartOwnership(ca, OwnershipConfig{Cluster: "test", Node: "a", TTL: testTTL, Margin: testMargin, Groups: spec, HandOver: hooks})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !waitFor(5*time.Second, func() bool { return a.Group("g1").MaySend(Now()) }) {
		t.Fatal("a never took g1")
	}
	b, err := StartOwnership(cb, OwnershipConfig{Cluster: "test", Node: "b", TTL: testTTL, Margin: testMargin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wa, _ := net.ParseMAC("02:00:00:01:00:01")
	la, _ := net.ParseMAC("02:00:00:02:00:01")
	wb, _ := net.ParseMAC("02:00:00:01:00:02")
	lb, _ := net.ParseMAC("02:00:00:02:00:02")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.PutMACs(ctx, wa, la); err != nil {
		t.Fatal(err)
	}
	if err := b.PutMACs(ctx, wb, lb); err != nil {
		t.Fatal(err)
	}
	if err := b.PutMACs(ctx, wb[:4], lb); err == nil {
		t.Fatal("a 4-byte MAC accepted")
	}
	macs, err := a.MACs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mb, ma := macs["b"], macs["a"]
	if len(macs) != 2 || net.HardwareAddr(mb[0][:]).String() != wb.String() || net.HardwareAddr(ma[1][:]).String() != la.String() {
		t.Fatalf("MACs read back: %v", macs)
	}
	// Watch the mark and the Final write: the write comes first.
	wch := cb.Watch(ctx, "/xdpsec/test/", clientv3.WithPrefix())
	if err := a.Move(ctx, "g1", "b"); err != nil {
		t.Fatal(err)
	}
	var order []string
	for len(order) < 2 {
		wr := <-wch
		for _, ev := range wr.Events {
			k := string(ev.Kv.Key)
			if k == "/xdpsec/test/final" || string(ev.Kv.Value) == "move b" {
				order = append(order, k)
			}
		}
	}
	if order[0] != "/xdpsec/test/final" {
		t.Fatalf("etcd saw %v: the mark before Final's write", order)
	}
	if !waitFor(5*time.Second, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("b never took g1")
	}
	mu.Lock()
	got := append([]string(nil), events...)
	mu.Unlock()
	if len(got) != 2 || got[0] != "forward g1 b open" || got[1] != "final g1 closed" {
		t.Fatalf("hooks ran as %q, want forward (gate open) then final (gate closed)", got)
	}
}
