package cluster

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// TestNodeRestart: the owner a dies as in kill -9 (its etcd client goes,
// nothing is released) and b takes the group over and carries on (its own
// reservation, a higher replay top, a rekeyed SA). a starts again at once
// under the same name, while its old session's lease may still live: it
// rejoins as a standby (present, b left alone for several leases, its
// presence outliving the old lease), catches up (follows every record of
// the group into its store), and when b hands the group back it resumes
// above b's sequence numbers and refuses what b accepted.
func TestNodeRestart(t *testing.T) {
	cl := testEtcd(t)
	seal, err := NewSealer(bytes.Repeat([]byte{0xc1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// a's first life: the owner, with a record per direction, a
	// reservation and a published top.
	a1, b := ownerPair(t, cl, testClient(t, cl), testTTL, testMargin, nil)
	out, in := testRecord(0x1001, sad.Outbound, 0xa5), testRecord(0x2002, sad.Inbound, 0x5a)
	ra1 := NewReplicator(a1, seal)
	for _, r := range []*Record{&out, &in} {
		if err := ra1.Put(ctx, "g1", r); err != nil {
			t.Fatal(err)
		}
	}
	id := ID("g1", "00001001")
	now := time.Now()
	outA := testSA(t, 0x1001, sad.Outbound)
	ma1 := NewSeqMarks(a1)
	if err := ma1.Resume(ctx, seqstate.NewReserver(ma1.Save), []seqstate.Key{{SA: outA, Fingerprint: id}}, now); err != nil {
		t.Fatal(err)
	}
	outA.ReserveSeq(100)
	inA := testSA(t, 0x2002, sad.Inbound)
	for s := uint64(1); s <= 300; s++ {
		inA.Replay.Commit(s)
	}
	if _, err := NewReplayTops(a1).Publish(ctx, "g1", []*sad.SA{inA}); err != nil {
		t.Fatal(err)
	}

	// kill -9.
	a1.cli.Close()
	killed := Now()
	if !waitFor(3*testTTL, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("b did not take g1 from the dead a")
	}
	// b carries on: above a's mark, a higher top, a rekeyed outbound SA.
	outB := testSA(t, 0x1001, sad.Outbound)
	mb := NewSeqMarks(b)
	if err := mb.Resume(ctx, seqstate.NewReserver(mb.Save), []seqstate.Key{{SA: outB, Fingerprint: id}}, now); err != nil {
		t.Fatal(err)
	}
	firstB, _ := outB.ReserveSeq(100)
	if firstB <= outA.Seq() {
		t.Fatalf("b starts at %d, a used up to %d", firstB, outA.Seq())
	}
	inB := testSA(t, 0x2002, sad.Inbound)
	if err := NewReplayTops(b).Apply(ctx, "g1", []*sad.SA{inB}); err != nil {
		t.Fatal(err)
	}
	for s := uint64(301); s <= 700; s++ {
		inB.Replay.Commit(s)
	}
	if _, err := NewReplayTops(b).Publish(ctx, "g1", []*sad.SA{inB}); err != nil {
		t.Fatal(err)
	}
	rekeyed := testRecord(0x1003, sad.Outbound, 0x33)
	if err := NewReplicator(b, seal).Put(ctx, "g1", &rekeyed); err != nil {
		t.Fatal(err)
	}

	// a starts again, same name, new term.
	a2 := restart(t, cl)
	restarted := Now()
	if waitFor(3*testTTL, func() bool { return a2.Group("g1").MaySend(Now()) }) {
		t.Fatal("the restarted a took g1 from b, which carries it")
	}
	if a2.Group("g1").Owner() != "b" || !b.Group("g1").MaySend(Now()) {
		t.Fatalf("after a's restart: a sees owner %q, b sends %v", a2.Group("g1").Owner(), b.Group("g1").MaySend(Now()))
	}
	// Past the old session's lease (1 s, expired within 500 ms more),
	// a is present: its new session wrote the key again.
	time.Sleep(max(0, time.Duration(killed+int64(2*time.Second)-Now())))
	if up, err := b.Alive(ctx, "a"); err != nil || !up {
		t.Fatalf("the restarted a is not present (%v)", err)
	}
	t.Logf("a restarted %v after its kill; standby, present", time.Duration(restarted-killed))

	// It catches up: every record of the group, b's rekey included.
	st, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ra2 := NewReplicator(a2, seal)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ra2.Follow(fctx, "g1", StoreFollower{Store: st}) }()
	keys := []store.Key{{SPI: 0x1001, Dir: sad.Outbound}, {SPI: 0x2002, Dir: sad.Inbound}, {SPI: 0x1003, Dir: sad.Outbound}}
	if !waitFor(5*time.Second, func() bool {
		for _, k := range keys {
			if st.Lookup(k) == nil {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the restarted a did not follow every record (rejected %d)", ra2.Rejected())
	}

	// b hands g1 back: a resumes above b's numbers, refuses what b took.
	if err := b.Move(ctx, "g1", "a"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(testTTL, func() bool { return a2.Group("g1").MaySend(Now()) }) || b.Group("g1").MaySend(Now()) {
		t.Fatal("g1 did not move to the restarted a")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	outA2, inA2 := st.Lookup(keys[0]), st.Lookup(keys[1])
	ma2 := NewSeqMarks(a2)
	if err := ma2.Resume(ctx, seqstate.NewReserver(ma2.Save), []seqstate.Key{{SA: outA2, Fingerprint: id}}, now); err != nil {
		t.Fatal(err)
	}
	outA2.SetGate(a2.Group("g1").Gate())
	first, got := outA2.ReserveSeq(1)
	if got != 1 || first <= outB.Seq() || first <= outB.SeqLimit() {
		t.Fatalf("the restarted a starts at %d (got %d); b used up to %d, limit %d", first, got, outB.Seq(), outB.SeqLimit())
	}
	if err := NewReplayTops(a2).Apply(ctx, "g1", []*sad.SA{inA2}); err != nil {
		t.Fatal(err)
	}
	if inA2.Replay.Commit(700) || inA2.Replay.Commit(5) || !inA2.Replay.Commit(701) {
		t.Fatal("the restarted a's window does not start at b's top")
	}
}

// TestNodeRestartFast: a node killed and started again before anyone took
// its group finds its previous life's owner value in etcd (its name, an
// older term). It is not that owner and never sent in this life: its role
// is standby, not fenced, until the group is taken a lease later.
func TestNodeRestartFast(t *testing.T) {
	cl := testEtcd(t)
	a1, b := ownerPair(t, cl, testClient(t, cl), testTTL, testMargin, nil)
	a1.cli.Close() // kill -9
	a2 := restart(t, cl)
	g := a2.Group("g1")
	if !waitFor(testTTL/2, func() bool { return g.Owner() == "a" }) {
		t.Skipf("the group changed hands before the restarted a read it (owner %q)", g.Owner())
	}
	st := (&Node{Ownership: a2}).Groups()[0]
	if st.Owner == "a" && !b.Group("g1").MaySend(Now()) && st.Role != RoleStandby {
		t.Fatalf("the restarted a, which never sent, shows role %q while etcd names its previous life", st.Role)
	}
	if !waitFor(3*testTTL, func() bool { return g.MaySend(Now()) || b.Group("g1").MaySend(Now()) }) {
		t.Fatal("nobody took g1 from the dead a")
	}
}

// restart starts node a again (after a kill) on a new client of cl, with
// a new term; it closes with the test.
func restart(t *testing.T, cl *config.Cluster) *Ownership {
	t.Helper()
	o, err := StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "a", TTL: testTTL, Margin: testMargin,
		Groups: []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}
