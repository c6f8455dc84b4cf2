package cluster

import (
	"bytes"
	"context"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

func testIKEState(spiI uint64, fill byte) ike.IKESAState {
	key := func(n int) []byte { return bytes.Repeat([]byte{fill}, n) }
	return ike.IKESAState{
		Connection: "gw-b", Initiator: true, SPIi: spiI, SPIr: 0x2222333344445555,
		Local: netip.MustParseAddrPort("192.0.2.1:4500"), Remote: netip.MustParseAddrPort("[2001:db8::2]:4500"),
		Encr: iana.EncrAESGCM16, KeyBits: 256, PRF: iana.PRFHMACSHA2_384, DH: iana.GroupID(21),
		AddKE: [7]uint8{35}, AddKESlots: 1,
		SKd: key(48), SKai: nil, SKar: nil, SKei: key(36), SKer: key(36), SKpi: key(48), SKpr: key(48),
		Ni: key(32), Nr: key(32), NextMID: 7, PeerMID: 1 << 20,
		LastResponse: [][]byte{key(100), key(3)}, PendingRequest: [][]byte{key(80)},
		NATLocal: true, NATRemote: false, NATHere: true, Fragment: true,
		RemoteID: ike.Identity{Type: iana.IDType(2), Data: []byte("peer.example")},
		Created:  time.Unix(0, 1700000000123456789), Established: time.Unix(0, 1700000001000000000),
		Children: []ike.ChildSAState{{
			Name: "net", InSPI: 0xc0010001, OutSPI: 0xc0020002, ReqID: 0x80100001, Mode: sad.Tunnel,
			Encap: sad.UDPEncap{SrcPort: 4500, DstPort: 4500}, Encr: iana.EncrAESGCM16, KeyBits: 128, ESN: true,
			LocalTS: []message.TrafficSelector{message.PrefixSelector(netip.MustParsePrefix("10.1.0.0/16"))},
			RemoteTS: []message.TrafficSelector{{Type: message.TSIPv6AddrRange, IPProtocol: 17, StartPort: 53, EndPort: 53,
				StartAddr: netip.MustParseAddr("2001:db8:1::"), EndAddr: netip.MustParseAddr("2001:db8:1::ffff")}},
			Created: time.Unix(0, 1700000002000000000),
		}},
	}
}

func TestIKERecordRoundTrip(t *testing.T) {
	s := testIKEState(0x1111, 0xa5)
	b, err := encodeIKE(&s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeIKE(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, s)
	}
	// Every truncation fails, and so does a trailing octet.
	for n := range len(b) {
		if _, err := decodeIKE(b[:n]); err == nil {
			t.Fatalf("truncated to %d octets decodes", n)
		}
	}
	if _, err := decodeIKE(append(bytes.Clone(b), 0)); err == nil {
		t.Fatal("trailing octet decodes")
	}
	del := ike.IKESAState{SPIi: 1, SPIr: 2, Deleted: true}
	if _, err := encodeIKE(&del); err == nil {
		t.Fatal("a Deleted state encodes")
	}
}

func FuzzDecodeIKERecord(f *testing.F) {
	s := testIKEState(0x1234, 0x5a)
	b, _ := encodeIKE(&s)
	f.Add(b)
	f.Add([]byte(ikeRecordMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeIKE(b)
		if err != nil {
			return
		}
		again, err := encodeIKE(&st)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

// TestReplicateIKESAs: the owner's writer puts sealed IKE SA records
// (urgent ones at once, message-ID-only ones coalesced), a standby follows
// them, deletions arrive as Deleted states, the standby cannot write, and
// tampered or moved records are refused.
func TestReplicateIKESAs(t *testing.T) {
	cli, a, b := twoNodes(t)
	clusterKey := bytes.Repeat([]byte{0xc2}, 32)
	seal, err := NewSealer(clusterKey)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := NewIKEReplicator(a, seal), NewIKEReplicator(b, seal)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var mu sync.Mutex
	var got []ike.IKESAState
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- rb.FollowIKE(fctx, "g1", func(s ike.IKESAState) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, s)
			return nil
		}, func(err error) { t.Error(err) })
	}()
	last := func() (ike.IKESAState, int) {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return ike.IKESAState{}, 0
		}
		return got[len(got)-1], len(got)
	}

	const interval = 300 * time.Millisecond
	var failed []error
	w := ra.NewIKEWriter(interval, func(err error) { failed = append(failed, err) })
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() { defer close(wdone); w.Run(wctx) }()

	s := testIKEState(0x1111, 0xa5)
	secret := bytes.Clone(s.SKei)
	s.Urgent = true
	w.Offer("g1", s)
	if !waitFor(5*time.Second, func() bool { st, _ := last(); return st.NextMID == 7 }) {
		t.Fatal("standby never saw the IKE SA")
	}
	if st, _ := last(); !bytes.Equal(st.SKei, secret) || st.Connection != "gw-b" || len(st.Children) != 1 {
		t.Fatalf("standby got %+v", st)
	}
	// Ten message-ID-only changes within one interval: one write.
	waitFor(5*time.Second, func() bool { p, _ := ra.Writes(); return p == 1 }) // counted after the txn returns
	p0, _ := ra.Writes()
	for i := range 10 {
		s := testIKEState(0x1111, 0xa5)
		s.NextMID = uint32(8 + i)
		w.Offer("g1", s)
	}
	if !waitFor(5*time.Second, func() bool { st, _ := last(); return st.NextMID == 17 }) {
		t.Fatal("standby never saw the last message ID")
	}
	time.Sleep(2 * interval)
	if p, _ := ra.Writes(); p-p0 > 2 {
		t.Fatalf("%d writes for 10 message-ID changes within an interval", p-p0)
	}
	if w.Coalesced() < 8 {
		t.Fatalf("coalesced %d of 10", w.Coalesced())
	}

	// Sealed: no key in clear anywhere in etcd.
	all, err := cli.Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		for _, sec := range [][]byte{secret[:16], clusterKey[:16]} {
			if bytes.Contains(kv.Value, sec) {
				t.Fatalf("%s holds key bytes in clear", kv.Key)
			}
		}
	}
	// The standby cannot write.
	s2 := testIKEState(0x9999, 1)
	if err := rb.Put(ctx, "g1", &s2); err == nil {
		t.Fatal("standby wrote an IKE SA record")
	}
	// A record moved under another SA's key, and a tampered one: refused.
	good, err := cli.Get(ctx, a.keys.ikeSA("g1", 0x1111, 0x2222333344445555))
	if err != nil || len(good.Kvs) != 1 {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, a.keys.ikeSA("g1", 0x7777, 0x2222333344445555), string(good.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good.Kvs[0].Value)
	bad[len(bad)-1] ^= 1
	if _, err := cli.Put(ctx, a.keys.ikeSA("g1", 0x1111, 0x2222333344445555), string(bad)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return rb.Rejected() == 2 }) {
		t.Fatalf("rejected %d, want 2", rb.Rejected())
	}
	// Deleted: the record goes, the standby hears a Deleted state.
	w.Offer("g1", ike.IKESAState{Connection: "gw-b", Initiator: true, SPIi: 0x1111, SPIr: 0x2222333344445555, Deleted: true})
	if !waitFor(5*time.Second, func() bool { st, _ := last(); return st.Deleted }) {
		t.Fatal("standby never heard of the deletion")
	}
	if st, _ := last(); st.SPIi != 0x1111 || !st.Initiator || st.Connection != "gw-b" {
		t.Fatalf("deleted state %+v", st)
	}
	// The writer counts once its transaction returns, which may be after
	// the standby saw it.
	if !waitFor(5*time.Second, func() bool { _, d := ra.Writes(); return d == 1 }) {
		_, d := ra.Writes()
		t.Fatalf("%d deletes", d)
	}
	// The writes count in the group's status (show cluster, metrics).
	p, d := ra.Writes()
	if got := a.groups["g1"].stats.writes[WriteRecord].Load(); got != p+d {
		t.Fatalf("group's record writes %d, the writer's %d", got, p+d)
	}
	if b.groups["g1"].stats.followed.Load() == 0 {
		t.Fatal("the standby counted no record followed")
	}
	wcancel()
	<-wdone
	fcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(failed) != 0 {
		t.Fatalf("writes failed: %v", failed)
	}
}
