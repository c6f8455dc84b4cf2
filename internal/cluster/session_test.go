package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/internal/config"
)

// gateWatch samples two nodes' gates for a group at the same instants
// (every ~millisecond) and remembers when each last may send and whether
// both ever might at once.
type gateWatch struct {
	a, b    *Group
	lastA   atomic.Int64
	overlap atomic.Int64 // an instant both gates were open (0: never)
	stop    chan struct{}
	wg      sync.WaitGroup
}

func watchGates(a, b *Group) *gateWatch {
	w := &gateWatch{a: a, b: b, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
			now := Now()
			sa, sb := w.a.MaySend(now), w.b.MaySend(now)
			if sa {
				w.lastA.Store(now)
			}
			if sa && sb {
				w.overlap.CompareAndSwap(0, now)
			}
		}
	}()
	return w
}

func (w *gateWatch) close() { close(w.stop); w.wg.Wait() }

// ownerPair starts a on ca, waits until it owns g1 (nodes a, b), then
// starts b on a client of its own; both close with the test.
func ownerPair(t *testing.T, cl *config.Cluster, ca *clientv3.Client, ttl, margin time.Duration, log *slog.Logger) (a, b *Ownership) {
	t.Helper()
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}}
	a, err := StartOwnership(ca, OwnershipConfig{Cluster: "test", Node: "a", TTL: ttl, Margin: margin, Groups: spec, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if !waitFor(10*time.Second, func() bool { return a.Group("g1").MaySend(Now()) }) {
		t.Fatal("a never took g1")
	}
	if b, err = StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "b", TTL: ttl, Margin: margin, Groups: spec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// TestSessionLost: the owner a is cut from etcd (a TCP proxy that holds
// every byte) for longer than the group lease and its etcd session's
// lease, so etcd deletes a's presence key and b takes the group. During
// the outage a's gate closes within the lease; once the network delivers
// again, a makes a new etcd session, shows up as present, stays standby,
// and takes the group when b hands it back. Twice in a row, with one log
// line per loss and per recovery. On code that kept the first session
// for the node's life, a never came back (every put on the dead lease
// failed).
func TestSessionLost(t *testing.T) {
	const ttl, margin = time.Second, 250 * time.Millisecond
	const outage = 4 * time.Second // session lease: 1 s (etcd's floor here) + its 500 ms expiry check
	cl := testEtcd(t)
	proxy := newStallProxy(t, strings.TrimPrefix(cl.Embedded.ClientURL, "http://"))
	// a's client has the daemon's settings (Connect): its gRPC keepalive
	// drops the stalled connection and redials through the proxy.
	ca := testClient(t, &config.Cluster{Endpoints: []string{"http://" + proxy.l.Addr().String()}})
	var logA syncBuf
	a, b := ownerPair(t, cl, ca, ttl, margin, slog.New(slog.NewTextHandler(&logA, nil)))
	ga, gb := a.Group("g1"), b.Group("g1")
	w := watchGates(ga, gb)
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alive := func(node string) bool {
		up, err := b.Alive(ctx, node)
		return err == nil && up
	}
	for round := 1; round <= 2; round++ {
		time.Sleep(ttl / 2) // a renews a few times
		if !ga.MaySend(Now()) || gb.MaySend(Now()) || !alive("a") {
			t.Fatalf("round %d: a is not the only sender, or not present", round)
		}
		t0 := Now()
		proxy.stalled.Store(true)
		if !waitFor(3*ttl, func() bool { return gb.MaySend(Now()) }) {
			proxy.stalled.Store(false)
			t.Fatalf("round %d: b did not take g1 while a was cut off", round)
		}
		// The lease of a's session ran out in etcd: its presence went.
		if !waitFor(outage, func() bool { return !alive("a") }) {
			proxy.stalled.Store(false)
			t.Fatalf("round %d: a's presence outlived the outage: the test cuts too short", round)
		}
		time.Sleep(time.Duration(t0 + int64(outage) - Now()))
		proxy.stalled.Store(false)
		end := Now()
		lastA, bSince := w.lastA.Load(), gb.Since()
		if lastA >= t0+int64(ttl-margin) {
			t.Fatalf("round %d: a still might send %v after it was cut off (lease %v, margin %v)", round, time.Duration(lastA-t0), ttl, margin)
		}
		if lastA >= bSince {
			t.Fatalf("round %d: a might send until %v after b took g1", round, time.Duration(lastA-bSince))
		}
		t.Logf("round %d: a stopped %v after the cut, %v before b took g1 (%v after the cut)",
			round, time.Duration(lastA-t0), time.Duration(bSince-lastA), time.Duration(bSince-t0))
		// a comes back: present, standby, b's group left alone.
		if !waitFor(10*time.Second, func() bool { return alive("a") }) {
			t.Fatalf("round %d: a never registered its presence again after the outage", round)
		}
		t.Logf("round %d: a present again %v after the outage", round, time.Duration(Now()-end))
		if !waitFor(ttl, func() bool { return ga.Owner() == "b" }) || ga.MaySend(Now()) || !gb.MaySend(Now()) {
			t.Fatalf("round %d: after the outage a sees owner %q, a sends %v, b sends %v", round, ga.Owner(), ga.MaySend(Now()), gb.MaySend(Now()))
		}
		// ... and can carry the group again: b hands it back (asked on a,
		// so the request rides on a's new session).
		if _, err := a.RequestMove(ctx, "g1", "a"); err != nil {
			t.Fatalf("round %d: moving g1 back to a: %v", round, err)
		}
		if !waitFor(ttl/2, func() bool { return ga.MaySend(Now()) }) || gb.MaySend(Now()) {
			t.Fatalf("round %d: g1 did not move back to a", round)
		}
		// ... and keeps it (its renewals commit on the new lease).
		time.Sleep(2 * ttl)
		if !ga.MaySend(Now()) || gb.MaySend(Now()) {
			t.Fatalf("round %d: a did not keep g1 after taking it back", round)
		}
	}
	if at := w.overlap.Load(); at != 0 {
		t.Fatalf("a and b might both send at %v", time.Duration(at))
	}
	lost, back := strings.Count(logA.String(), "cluster: etcd session lost"), strings.Count(logA.String(), "cluster: etcd session back")
	if lost != 2 || back != 2 {
		t.Fatalf("a logged %d session losses and %d recoveries, want 2 each:\n%s", lost, back, logA.String())
	}
}

// TestOwnerKeyOutlivesSession: the owner's etcd session lease ends in etcd
// while its renewals still commit. That is what a lost etcd leader does
// to every other node: a member forwards each lease keepalive to the
// leader over HTTP and answers a client's keepalives one at a time, so
// one forwarded to the lost leader holds the node's whole keepalive
// stream for etcd's request timeout (5 s + 2 elections), longer than the
// session lease, while transactions go through raft to the new leader
// (TestClusterPartition saw it: a healthy owner fenced, its key deleted
// with its session, and a needless failover). Here the lease is revoked
// under the owner's feet. The owner must keep its group without a pause
// (the owner key is not on the session lease: the group's own lease, the
// renewals, says who owns it), b must not take it, and a makes a new
// session (one loss, one recovery). On code that wrote the owner key
// with the session lease, etcd deleted it, a fenced and b took g1.
func TestOwnerKeyOutlivesSession(t *testing.T) {
	const ttl, margin = time.Second, 250 * time.Millisecond
	cl := testEtcd(t)
	var logA syncBuf
	a, b := ownerPair(t, cl, testClient(t, cl), ttl, margin, slog.New(slog.NewTextHandler(&logA, nil)))
	ga, gb := a.Group("g1"), b.Group("g1")
	w := watchGates(ga, gb)
	defer w.close()
	time.Sleep(ttl / 2) // a renews a few times, b watches
	since := ga.Since()
	if since == 0 || !ga.MaySend(Now()) || gb.MaySend(Now()) {
		t.Fatal("a is not the only sender")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := testClient(t, cl)
	lease := a.lease()
	if _, err := admin.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return a.lease() != lease }) {
		t.Fatal("a made no new session after its lease was revoked")
	}
	time.Sleep(3 * ttl)
	if ga.Since() != since || ga.Stopped() != 0 || !ga.MaySend(Now()) {
		t.Fatalf("a lost g1 with its session: since %v -> %v, stopped %v, may send %v\n%s",
			since, ga.Since(), ga.Stopped(), ga.MaySend(Now()), logA.String())
	}
	if gb.Since() != 0 || gb.Owner() != "a" {
		t.Fatalf("b took g1 (since %v, owner %q)", gb.Since(), gb.Owner())
	}
	if at := w.overlap.Load(); at != 0 {
		t.Fatalf("a and b might both send at %v", time.Duration(at))
	}
	lost, back := strings.Count(logA.String(), "cluster: etcd session lost"), strings.Count(logA.String(), "cluster: etcd session back")
	if lost != 1 || back != 1 || strings.Contains(logA.String(), "group owner changed group=g1 from=a") {
		t.Fatalf("a logged %d session losses and %d recoveries (want 1 each) or an ownership change:\n%s", lost, back, logA.String())
	}
	// The owner key stays after a's new session: only the group's renewals
	// and takes write it.
	resp, err := admin.Get(ctx, a.keys.owner("g1"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != 0 {
		t.Fatalf("owner key after the session's loss: %v %+v (want one, on no lease)", err, resp)
	}
}
