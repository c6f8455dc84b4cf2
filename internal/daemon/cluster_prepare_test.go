package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/iketest"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// TestClusterOutboundReservedBeforePublish: a grouped outbound Child SA
// has its first block of sequence numbers (reserved in etcd) before the
// store publishes it, so a rekey's new SA, which takes the traffic at
// once, can send from its first packet. Reserved after it was published
// (the old code: installed), the workers dropped the traffic
// (seq_unreserved) for the etcd round trips: TestClusterSwanTakeover saw
// 5-16 datagrams lost at 1,000/s per rekey. A poller watches the store
// for new outbound SAs and notes the limit each had when first seen.
func TestClusterOutboundReservedBeforePublish(t *testing.T) {
	peerURL := etcdtest.FreeURL(t)
	etcd := &config.Cluster{Name: "t", Node: "e", Embedded: &config.EmbeddedEtcd{DataDir: t.TempDir(), PeerURL: peerURL,
		ClientURL: etcdtest.FreeURL(t), Members: map[string]string{"e": peerURL}}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := cluster.StartEmbedded(ctx, etcd)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	peerAddr, gwAddr := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	ui, err := transport.Listen(peerAddr, 0, 0)
	if err != nil {
		t.Skipf("cannot listen on %v: %v", peerAddr, err)
	}
	defer ui.Close()
	ua, err := transport.Listen(gwAddr, 0, 0)
	if err != nil {
		t.Skipf("cannot listen on %v: %v", gwAddr, err)
	}
	iIKE, iNATT := ui.Ports()
	gIKE, gNATT := ua.Ports()
	a := startGW(t, ctx, "a", etcd.Embedded.ClientURL, ua, ikeTestConn(t, gwAddr, peerAddr, "198.18.2.0/24", "198.18.1.0/24", "gw.test", "peer.test"), iIKE, iNATT)
	defer func() {
		a.plane.close()
		a.e.Close()
	}()
	if !etcdtest.WaitFor(5*time.Second, func() bool {
		a.plane.ike.mu.Lock()
		defer a.plane.ike.mu.Unlock()
		return a.plane.ike.owned["g1"]
	}) {
		t.Fatal("a never took g1")
	}
	peer, err := ike.New(ike.Config{Connections: []ike.Connection{ikeTestConn(t, peerAddr, gwAddr, "198.18.1.0/24", "198.18.2.0/24", "peer.test", "gw.test")},
		RemoteIKEPort: gIKE, RemoteNATTPort: gNATT, Retransmit: ike.Retransmit{Timeout: 200 * time.Millisecond, Tries: 4}}, ui, iketest.NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	// The poller: every outbound SA the store holds, with its limit when
	// first seen.
	var mu sync.Mutex
	first := map[*sad.SA]uint64{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, sa := range a.st.SAs(store.Negotiated) {
				if sa.Dir != sad.Outbound {
					continue
				}
				mu.Lock()
				if _, ok := first[sa]; !ok {
					first[sa] = sa.SeqLimit()
				}
				mu.Unlock()
			}
		}
	}()
	if err := peer.Initiate(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		// Rekeys from either end: the responder's and the initiator's
		// InstallOutbound.
		for _, e := range []*ike.Engine{peer, a.e} {
			// Until the last rekey's Delete is through.
			if !etcdtest.WaitFor(5*time.Second, func() bool { return e.RekeyChildren(ctx, "test", "net") == nil }) {
				t.Fatal("Child SA rekey refused for 5 s")
			}
		}
		if !etcdtest.WaitFor(5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(first) >= 3+2*i }) {
			t.Fatalf("the poller saw %d outbound SAs after %d rekeys", len(first), 2*i+2)
		}
	}
	close(stop)
	<-done
	var zero int
	for sa, lim := range first {
		if lim == 0 {
			zero++
			t.Errorf("outbound SA %08x was published with no sequence numbers reserved (limit 0)", sa.SPI)
		}
	}
	// The block used before its write committed is covered once it has:
	// the live SAs' marks in etcd are at least their first block and at
	// least what each has sent.
	for _, sa := range a.st.SAs(store.Negotiated) {
		if sa.Dir != sad.Outbound {
			continue
		}
		id := cluster.ID("g1", fmt.Sprintf("%08x", sa.SPI))
		var mark uint64
		if !etcdtest.WaitFor(5*time.Second, func() bool {
			m, err := a.plane.node.Marks.Load(ctx, id)
			mark = m
			return err == nil && m >= seqstate.MinBlock && m >= sa.Seq()
		}) {
			t.Errorf("outbound SA %08x: mark %d in etcd, seq %d", sa.SPI, mark, sa.Seq())
		}
	}
	t.Logf("%d outbound SAs seen, %d published before their first block was reserved", len(first), zero)
}
