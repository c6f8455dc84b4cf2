package cluster

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/sad"
)

// TestBatcher: the records and first marks of many SAs go in few
// transactions (one per batch while one is in flight), a record and its
// mark together; tickets settle in order and Notify hears them; a mark
// that exists (a stale one of other keys under the SPI) is set to the
// new SA's block with its record; a deletion takes the mark
// with the record; a second write of one key waits for the next batch;
// the standby's batches fail as not owner and write nothing.
func TestBatcher(t *testing.T) {
	cli, a, b := twoNodes(t)
	seal, err := NewSealer(bytes.Repeat([]byte{0xc1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ma := NewSeqMarks(a)
	ba := NewReplicator(a, seal).Batcher(ma, 5*time.Second)
	var mu sync.Mutex
	var notified []uint64
	ba.Notify(func(s uint64) {
		mu.Lock()
		notified = append(notified, s)
		mu.Unlock()
	})
	// A mark that exists already (an SPI used before).
	if _, err := cli.Put(ctx, "/xdpsec/test/groups/g1/seq/00000105", "777"); err != nil {
		t.Fatal(err)
	}
	const n = 250 // more than one transaction's worth
	type res struct {
		err error
	}
	got := make([]res, n)
	done := make(chan int, n)
	var last uint64
	for i := range n {
		spi := uint32(0x100 + i)
		rec := testRecord(spi, sad.Outbound, byte(i))
		tk, err := ba.PutReserve("g1", &rec, ID("g1", fmt.Sprintf("%08x", spi)), 1<<16, func(err error) {
			got[i] = res{err}
			done <- i
		})
		if err != nil {
			t.Fatal(err)
		}
		if tk != last+1 {
			t.Fatalf("ticket %d after %d", tk, last)
		}
		last = tk
		if i%2 == 0 {
			in := testRecord(spi, sad.Inbound, byte(i))
			if last, err = ba.Put("g1", &in, func(err error) { t.Error(err) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ba.Settled() != 0 || ba.Issued() != last {
		t.Fatalf("settled %d, issued %d before Run (last ticket %d)", ba.Settled(), ba.Issued(), last)
	}
	rctx, rcancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { ba.Run(rctx); close(ran) }()
	for range n {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatal("not every reservation settled")
		}
	}
	if !waitFor(5*time.Second, func() bool { return ba.Settled() == last }) {
		t.Fatalf("settled %d of %d", ba.Settled(), last)
	}
	for i, r := range got {
		spi := 0x100 + i
		switch {
		case r.err != nil:
			t.Fatalf("%08x: %v", spi, r.err)
		}
	}
	// Every SA's mark is its first block, the stale one under 0x105 too.
	if r, err := cli.Get(ctx, "/xdpsec/test/groups/g1/seq/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	} else {
		for _, kv := range r.Kvs {
			if string(kv.Value) != "65536" {
				t.Fatalf("mark %s = %s, want 65536", kv.Key, kv.Value)
			}
		}
	}
	txns, ops := ba.Stats()
	// 250 records + 250 marks + 125 inbound records = 625 operations, at
	// most 100 a transaction: at least 7.
	if ops != 625 || txns < 7 || txns > 30 {
		t.Fatalf("%d transactions, %d operations", txns, ops)
	}
	mu.Lock()
	for i := 1; i < len(notified); i++ {
		if notified[i] <= notified[i-1] {
			t.Fatalf("settled tickets out of order: %v", notified)
		}
	}
	mu.Unlock()
	count := func(prefix string) int64 {
		r, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return r.Count
	}
	if c, m := count("/xdpsec/test/groups/g1/child/"), count("/xdpsec/test/groups/g1/seq/"); c != 375 || m != n {
		t.Fatalf("%d records, %d marks in etcd", c, m)
	}
	// The stale mark under 0x105 now holds the new SA's block.
	if r, err := cli.Get(ctx, "/xdpsec/test/groups/g1/seq/00000105"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "65536" {
		t.Fatalf("mark 00000105 after its SA's first block: %v %v", r, err)
	}
	// The marks are remembered: the next raise starts from them.
	if err := ma.Save(ID("g1", "00000101"), 1<<17); err != nil {
		t.Fatal(err)
	}
	if err := ma.Save(ID("g1", "00000105"), 1<<17); err != nil {
		t.Fatal(err)
	}

	// A put and a delete of one key in a row: two batches, in order.
	rec := testRecord(0x9000, sad.Outbound, 1)
	t1, _ := ba.PutReserve("g1", &rec, ID("g1", "00009000"), 1<<16, func(error) {})
	t2, _ := ba.Delete("g1", sad.Outbound, 0x9000, ID("g1", "00009000"), func(err error) { t.Error(err) })
	if _, err := cli.Put(ctx, "/xdpsec/test/groups/g1/replay/00000102", "99"); err != nil {
		t.Fatal(err)
	}
	ba.Delete("g1", sad.Inbound, 0x102, "", func(err error) { t.Error(err) })
	t3, _ := ba.Delete("g1", sad.Outbound, 0x101, ID("g1", "00000101"), func(err error) { t.Error(err) })
	if !waitFor(5*time.Second, func() bool { return ba.Settled() >= t3 }) || t2 != t1+1 {
		t.Fatalf("settled %d, want %d", ba.Settled(), t3)
	}
	for _, k := range []string{"child/out-00009000", "seq/00009000", "child/out-00000101", "seq/00000101", "child/in-00000102", "replay/00000102"} {
		if c := count("/xdpsec/test/groups/g1/" + k); c != 0 {
			t.Fatalf("%s still in etcd", k)
		}
	}

	// The standby: not owner, nothing written, the failure reported.
	bb := NewReplicator(b, seal).Batcher(NewSeqMarks(b), 5*time.Second)
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	go bb.Run(bctx)
	fail := make(chan error, 2)
	rec = testRecord(0xa000, sad.Outbound, 2)
	bb.PutReserve("g1", &rec, ID("g1", "0000a000"), 1<<16, func(err error) { fail <- err })
	in := testRecord(0xa001, sad.Inbound, 2)
	bb.Put("g1", &in, func(err error) { fail <- err })
	for range 2 {
		if err := <-fail; err == nil {
			t.Fatal("the standby's batch succeeded")
		}
	}
	if c := count("/xdpsec/test/groups/g1/child/out-0000a000") + count("/xdpsec/test/groups/g1/seq/0000a000"); c != 0 {
		t.Fatal("the standby wrote")
	}
	// Stopped: what is queued fails and settles.
	rcancel()
	<-ran
	stopped := make(chan error, 1)
	rec = testRecord(0xb000, sad.Outbound, 3)
	tk, _ := ba.PutReserve("g1", &rec, ID("g1", "0000b000"), 1<<16, func(err error) { stopped <- err })
	go ba.Run(rctx)
	if err := <-stopped; err == nil || !waitFor(time.Second, func() bool { return ba.Settled() == tk }) {
		t.Fatalf("after the stop: %v, settled %d of %d", err, ba.Settled(), tk)
	}
}

// TestReplayTopsManySAs: a group whose tunnels are more than one etcd
// transaction may hold (--max-txn-ops, 128) publishes every top, in
// several transactions; a forgotten SA's SPI publishes afresh.
func TestReplayTopsManySAs(t *testing.T) {
	cli, a, _ := twoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := NewReplayTops(a)
	var sas []*sad.SA
	for i := range 300 {
		sa := testSA(t, uint32(0x3000+i), sad.Inbound)
		sa.Replay.Commit(uint64(1000 + i))
		sas = append(sas, sa)
	}
	before := a.groups["g1"].stats.writes[WriteReplay].Load()
	n, err := p.Publish(ctx, "g1", sas)
	if err != nil || n != 300 {
		t.Fatalf("published %d tops: %v", n, err)
	}
	r, err := cli.Get(ctx, "/xdpsec/test/groups/g1/replay/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 300 {
		t.Fatalf("%d tops in etcd (%v)", r.Count, err)
	}
	if w := a.groups["g1"].stats.writes[WriteReplay].Load() - before; w != 3 {
		t.Fatalf("%d transactions, want 3", w)
	}
	// The SA 0x3000 is deleted and its SPI comes back with a lower top.
	p.Forget("g1", 0x3000)
	sa := testSA(t, 0x3000, sad.Inbound)
	sa.Replay.Commit(5)
	if n, err := p.Publish(ctx, "g1", []*sad.SA{sa}); err != nil || n != 1 {
		t.Fatalf("the new SA's top: %d published (%v)", n, err)
	}
}

// TestEmbeddedCompacts: the embedded member compacts its history
// periodically (without, every renewal and replay top stays in its
// database until the space quota stops all writes).
func TestEmbeddedCompacts(t *testing.T) {
	_, srv := testEtcdServer(t)
	c := srv.Config()
	if c.AutoCompactionMode != "periodic" || c.AutoCompactionRetention != EtcdHistory.String() {
		t.Fatalf("auto compaction %q %q, want periodic %v", c.AutoCompactionMode, c.AutoCompactionRetention, EtcdHistory)
	}
}
