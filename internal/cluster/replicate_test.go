package cluster

import (
	"bytes"
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// twoNodes starts a and b on one etcd, both allowed g1, a preferred, and
// waits until a owns it.
func twoNodes(t *testing.T) (cli *clientv3.Client, a, b *Ownership) {
	t.Helper()
	cl := testEtcd(t)
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}}
	var err error
	if a, err = StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "a", TTL: testTTL, Margin: testMargin, Groups: spec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if !waitFor(5*time.Second, func() bool { return a.Group("g1").MaySend(Now()) }) {
		t.Fatal("a never took g1")
	}
	if b, err = StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "b", TTL: testTTL, Margin: testMargin, Groups: spec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return testClient(t, cl), a, b
}

func TestReplicateChildSAs(t *testing.T) {
	cli, a, b := twoNodes(t)
	clusterKey := bytes.Repeat([]byte{0xc1}, 32)
	seal, err := NewSealer(clusterKey)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := NewReplicator(a, seal), NewReplicator(b, seal)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	out, in := testRecord(0x1001, sad.Outbound, 0xa5), testRecord(0x2002, sad.Inbound, 0x5a)
	outKey, inKey := bytes.Clone(out.Config.Key), bytes.Clone(in.Config.Key)
	for _, r := range []*Record{&out, &in} {
		if err := ra.Put(ctx, "g1", r); err != nil {
			t.Fatal(err)
		}
	}
	// The standby's writes are refused: it does not own the group.
	if err := rb.Put(ctx, "g1", &out); err == nil {
		t.Fatal("standby wrote a record")
	}

	st, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rb.Follow(fctx, "g1", StoreFollower{Store: st}) }()
	outK, inK := store.Key{SPI: 0x1001, Dir: sad.Outbound}, store.Key{SPI: 0x2002, Dir: sad.Inbound}
	if !waitFor(5*time.Second, func() bool { return st.Lookup(outK) != nil && st.Lookup(inK) != nil }) {
		n, err := rb.Failed()
		t.Fatalf("standby did not install the SAs (rejected %d, failed %d: %v)", rb.Rejected(), n, err)
	}
	sa := st.Lookup(outK)
	if sa.Remote != out.Config.Remote || sa.Encap != out.Config.Encap || !sa.ESN || sa.ReqID != 7 || len(st.Bound(7)) != 1 {
		t.Fatalf("installed %+v", sa)
	}
	// Standby: the outbound SA hands out no sequence number.
	if _, got := sa.ReserveSeq(1); got != 0 {
		t.Fatal("a standby outbound SA gave a sequence number")
	}
	if st.Inbound().Lookup(0x2002) == nil {
		t.Fatal("inbound SA not in the table")
	}

	// No value in etcd holds an SA key or the cluster key.
	all, err := cli.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Kvs) < 3 {
		t.Fatalf("only %d keys in etcd", len(all.Kvs))
	}
	for _, kv := range all.Kvs {
		for _, secret := range [][]byte{outKey[:16], outKey[20:36], inKey[:16], clusterKey[:16], clusterKey[16:]} {
			if bytes.Contains(kv.Value, secret) {
				t.Fatalf("%s holds key bytes in clear", kv.Key)
			}
		}
	}

	// Tampered in etcd: refused, counted, not installed.
	key := a.keys.child("g1", sad.Outbound, 0x3003)
	forged := testRecord(0x3003, sad.Outbound, 0x77)
	raw, _ := forged.encode()
	sealed := seal.Seal(key, raw)
	sealed[len(sealed)-1] ^= 1
	if _, err := cli.Put(ctx, key, string(sealed)); err != nil {
		t.Fatal(err)
	}
	// A good record copied under another SPI's key: refused too.
	good, err := cli.Get(ctx, a.keys.child("g1", sad.Outbound, 0x1001))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, a.keys.child("g1", sad.Outbound, 0x4004), string(good.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return rb.Rejected() == 2 }) {
		t.Fatalf("rejected %d, want 2", rb.Rejected())
	}
	if st.Lookup(store.Key{SPI: 0x3003, Dir: sad.Outbound}) != nil || st.Lookup(store.Key{SPI: 0x4004, Dir: sad.Outbound}) != nil {
		t.Fatal("a bad record was installed")
	}

	// A delete by the owner removes the standby's SA.
	if err := ra.Delete(ctx, "g1", sad.Inbound, 0x2002); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return st.Lookup(inK) == nil }) {
		t.Fatal("deleted SA still installed on the standby")
	}
	fcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
