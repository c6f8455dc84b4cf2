package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
)

// The defaults: the tests measure what a cluster gets out of the box.
const (
	testTTL    = config.DefaultLeaseTTL
	testMargin = config.DefaultFenceMargin
)

func TestOwnershipTakeoverFenced(t *testing.T) {
	ca, _, a, b := ownerAndStandby(t)
	ga, gb := a.Group("g1"), b.Group("g1")
	// b is standby while a renews: several leases long.
	if waitFor(3*testTTL, func() bool { return gb.MaySend(Now()) }) {
		t.Fatal("b sends while a holds g1")
	}
	if gb.Owner() != "a" {
		t.Fatalf("b sees owner %q", gb.Owner())
	}
	// An outbound SA of the group on a: it sends while a owns g1.
	sa := testSA(t, 0x1001, sad.Outbound)
	sa.SetGate(ga.Gate())
	if _, n := sa.ReserveSeq(1); n != 1 {
		t.Fatal("a's SA does not send while a owns g1")
	}
	// a's etcd connection dies: it can renew no more.
	ca.Close()
	if !waitFor(3*testTTL, func() bool { return gb.MaySend(Now()) }) {
		t.Fatal("b did not take g1 over")
	}
	fenced, started := ga.Deadline(), gb.Since()
	if fenced == 0 {
		// a noticed its deadline pass (it keeps trying to renew).
		fenced = ga.Stopped()
	}
	if ga.MaySend(started) {
		t.Fatalf("a may still send when b starts: a's deadline %v, b since %v", time.Duration(fenced), time.Duration(started))
	}
	gap := time.Duration(started - fenced)
	// a stops at its last renewal + TTL - margin; b starts a TTL after it
	// saw that renewal: at least the margin apart, and not much more (the
	// renewal period, the poll).
	if gap < testMargin {
		t.Errorf("a fenced only %v before b started; want at least the margin %v", gap, testMargin)
	}
	// How soon: only where timing means something (not under the race
	// detector's slowdown).
	if !raceEnabled && gap > testMargin+testTTL/2 {
		t.Errorf("a fenced %v before b started; want about the margin %v", gap, testMargin)
	}
	if _, n := sa.ReserveSeq(1); n != 0 {
		t.Fatal("a's SA still hands out numbers after b took g1")
	}
	t.Logf("a stopped sending %v before b started; b started %v after a's last renewal", gap, gap+testTTL-testMargin)
	a.cancel() // its client is closed: nothing to release
	a.wg.Wait()
}

func TestOwnershipMoveAndRelease(t *testing.T) {
	cl := testEtcd(t)
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}, {Name: "g2", Nodes: []string{"b", "a"}}}
	a, err := StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "a", TTL: testTTL, Margin: testMargin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	b, err := StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "b", TTL: testTTL, Margin: testMargin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Both start within a lease of each other; each takes its preferred
	// group (the other waits a sixth of a lease more per rank).
	if !waitFor(5*time.Second, func() bool { return a.Group("g1").MaySend(Now()) && b.Group("g2").MaySend(Now()) }) {
		t.Fatalf("g1 owner %q, g2 owner %q", a.Group("g1").Owner(), b.Group("g2").Owner())
	}
	if a.Group("g2").MaySend(Now()) || b.Group("g1").MaySend(Now()) {
		t.Fatal("a group has two senders")
	}
	// A graceful move: at once, not after a lease.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t0 := Now()
	if err := a.Move(ctx, "g1", "b"); err != nil {
		t.Fatal(err)
	}
	if a.Group("g1").MaySend(Now()) {
		t.Fatal("a still sends after Move")
	}
	if !waitFor(testTTL/2, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("b did not take the moved group within half a lease")
	}
	t.Logf("move took %v", time.Duration(b.Group("g1").Since()-t0))
	if err := a.Move(ctx, "g1", "b"); err == nil {
		t.Fatal("a moved a group it does not own")
	}
	// Closing b releases both groups to a at once.
	b.Close()
	if !waitFor(testTTL/2, func() bool { return a.Group("g1").MaySend(Now()) && a.Group("g2").MaySend(Now()) }) {
		t.Fatal("a did not take the released groups within half a lease")
	}
	a.Close()
}
