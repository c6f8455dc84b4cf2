package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/iketest"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// countConn counts the IKE messages sent through it by exchange and
// direction ("IKE_SA_INIT/req").
type countConn struct {
	transport.Conn
	mu sync.Mutex
	n  map[string]int
}

func (c *countConn) Send(p transport.Packet) error {
	if h, err := message.DecodeHeader(p.Data); err == nil {
		k := h.Exchange.String() + "/req"
		if h.IsResponse() {
			k = h.Exchange.String() + "/resp"
		}
		c.mu.Lock()
		c.n[k]++
		c.mu.Unlock()
	}
	return c.Conn.Send(p)
}

func (c *countConn) sent(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// ikeTestConn is one end of the test tunnel "test" (net 198.18.1.0/24 <->
// 198.18.2.0/24), PSK.
func ikeTestConn(t *testing.T, local, remote netip.Addr, lnet, rnet, lid, rid string) ike.Connection {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	ikeP, err := ike.ParseProposals(message.ProtocolIKE, "aes256gcm16-prfsha384-ecp384")
	must(err)
	espP, err := ike.ParseProposals(message.ProtocolESP, "aes128gcm16")
	must(err)
	lts, err := ike.ParseTrafficSelector(lnet)
	must(err)
	rts, err := ike.ParseTrafficSelector(rnet)
	must(err)
	li, err := ike.ParseIdentity(lid)
	must(err)
	ri, err := ike.ParseIdentity(rid)
	must(err)
	psk := []byte("cluster test pre-shared key, long")
	return ike.Connection{Name: "test", LocalAddr: local, RemoteAddr: remote,
		Local: ike.AuthConfig{ID: li, PSK: bytes.Clone(psk)}, Remote: ike.AuthConfig{ID: ri, PSK: bytes.Clone(psk)},
		IKEProposals: ikeP, DPDDelay: time.Hour, // DPD only when asked (ping)
		Children: []ike.ChildConfig{{Name: "net", LocalTS: []ike.TrafficSelector{lts}, RemoteTS: []ike.TrafficSelector{rts}, ESPProposals: espP}}}
}

// gwNode is one gateway of the test cluster: its cluster plane, SA store
// and engine (the IKE plane's Installer on that store).
type gwNode struct {
	plane *clusterPlane
	st    *store.Store
	e     *ike.Engine
	conn  *countConn
}

func startGW(t *testing.T, ctx context.Context, node, endpoint string, tc transport.Conn, conn ike.Connection, rike, rnatt uint16) *gwNode {
	t.Helper()
	cfg := &config.Config{}
	cfg.Cluster = &config.Cluster{Name: "t", Node: node, Key: bytes.Repeat([]byte{7}, 32),
		LeaseTTL: config.DefaultLeaseTTL, FenceMargin: config.DefaultFenceMargin, ReplayPublish: 10 * time.Millisecond,
		Endpoints: []string{endpoint},
		Groups: []config.TunnelGroup{{Name: "g1", Connections: []string{"test"},
			Nodes: []config.GroupNode{{Name: "a", Preference: 100}, {Name: "b", Preference: 50}}}}}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{t, node}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := newClusterPlane(cfg, nil, log)
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: log, store: st, inbound: st.Inbound(), cluster: p}
	ip := &ikePlane{d: d}
	ecfg := ike.Config{Connections: []ike.Connection{conn}, RemoteIKEPort: rike, RemoteNATTPort: rnatt,
		Retransmit: ike.Retransmit{Timeout: 200 * time.Millisecond, Tries: 4}, Logger: log.With("subsystem", "ike")}
	p.ike.configure(&ecfg)
	cc := &countConn{Conn: tc, n: map[string]int{}}
	e, err := ike.New(ecfg, p.ike.engineConn(cc), ip)
	if err != nil {
		t.Fatal(err)
	}
	p.ike.start(e, st)
	return &gwNode{plane: p, st: st, e: e, conn: cc}
}

type tWriter struct {
	t    *testing.T
	name string
}

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, bytes.TrimSpace(p))
	return len(p), nil
}

// TestClusterIKETakeover: a peer's IKE SA with gateway a (group g1's
// owner) is replicated to b through etcd (the IKE SA sealed, its Child
// SAs as standby SAs in b's store, ReqIDs from the group's range); a
// leaves, b takes the group: b's Child SAs resume above a's marks, and b
// answers the peer's liveness check with the right message IDs, rekeys a
// Child SA and the IKE SA from either end, all without a new IKE_SA_INIT.
// It logs the etcd writes per tunnel.
func TestClusterIKETakeover(t *testing.T) {
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
	ep := etcd.Embedded.ClientURL

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
	gwConn := ikeTestConn(t, gwAddr, peerAddr, "198.18.2.0/24", "198.18.1.0/24", "gw.test", "peer.test")
	a := startGW(t, ctx, "a", ep, ua, gwConn, iIKE, iNATT)
	if !etcdtest.WaitFor(5*time.Second, func() bool { return a.plane.node.Ownership.Group("g1").MaySend(cluster.Now()) }) {
		t.Fatal("a never took g1")
	}
	sw := iketest.NewSwitchConn(gIKE, gNATT)
	b := startGW(t, ctx, "b", ep, sw, gwConn, iIKE, iNATT)
	defer func() {
		b.plane.close()
		b.e.Close()
	}()

	peerInst := iketest.NewMemInstaller()
	pc := &countConn{Conn: ui, n: map[string]int{}}
	peer, err := ike.New(ike.Config{Connections: []ike.Connection{ikeTestConn(t, peerAddr, gwAddr, "198.18.1.0/24", "198.18.2.0/24", "peer.test", "gw.test")},
		RemoteIKEPort: gIKE, RemoteNATTPort: gNATT, Retransmit: ike.Retransmit{Timeout: 200 * time.Millisecond, Tries: 4}}, pc, peerInst)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.Initiate(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	ikeRep := a.plane.ike.ikeRep
	writes := func() uint64 { p, d := ikeRep.Writes(); return p + d }
	// b holds the IKE SA passively and the Child SAs as standby SAs.
	standbyReady := func(n int) bool {
		return b.e.Standby() == 1 && len(b.st.SAs(store.Negotiated)) == n
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool { return standbyReady(2) }) {
		t.Fatalf("b: %d passive IKE SAs, %d Child SAs", b.e.Standby(), len(b.st.SAs(store.Negotiated)))
	}
	wEstab := writes()
	for _, sa := range b.st.SAs(store.Negotiated) {
		if sa.ReqID&(1<<31) == 0 || sa.ReqID&^0xffff != reqIDBase("g1") {
			t.Fatalf("ReqID %#x is not from g1's range %#x", sa.ReqID, reqIDBase("g1"))
		}
		if sa.Dir == sad.Inbound && sa.SPI&^0xffff != reqIDBase("g1") {
			t.Fatalf("inbound SPI %08x is not from g1's range %#x", sa.SPI, reqIDBase("g1"))
		}
		if sa.Dir == sad.Outbound {
			if _, n := sa.ReserveSeq(1); n != 0 {
				t.Fatal("b's standby outbound SA gave a sequence number")
			}
		}
	}
	// a's outbound SA sends (its block reserved in etcd).
	var aOut *sad.SA
	for _, sa := range a.st.SAs(store.Negotiated) {
		if sa.Dir == sad.Outbound {
			aOut = sa
		}
	}
	if aOut == nil {
		t.Fatal("a has no outbound Child SA")
	}
	var lastA uint64
	if f, n := aOut.ReserveSeq(100); n == 0 {
		t.Fatal("a's outbound Child SA cannot send")
	} else {
		lastA = f + uint64(n) - 1
	}
	// Ten liveness checks from the peer: message IDs only.
	for range 10 {
		if err := peer.Ping(ctx, "test"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * cluster.DefaultIKEWriteInterval)
	wDPD := writes() - wEstab
	// A Child SA rekey by the peer, before the takeover.
	w0 := writes()
	if err := peer.RekeyChildren(ctx, "test", "net"); err != nil {
		t.Fatal(err)
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool {
		l, lb := a.e.List(), b.e.List()
		return len(l) == 1 && len(lb) == 1 && len(l[0].Children) == 1 && len(lb[0].Children) == 1 &&
			l[0].Children[0].SPIIn == lb[0].Children[0].SPIIn && standbyReady(2) && len(a.st.SAs(store.Negotiated)) == 2
	}) {
		t.Fatal("b never followed the Child SA rekey")
	}
	time.Sleep(2 * cluster.DefaultIKEWriteInterval)
	wRekey := writes() - w0
	t.Logf("etcd writes of IKE SA records: %d to establish, %d for 10 DPD exchanges, %d for a Child SA rekey", wEstab, wDPD, wRekey)
	for _, sa := range a.st.SAs(store.Negotiated) {
		if sa.Dir == sad.Outbound {
			aOut = sa
		}
	}
	if f, n := aOut.ReserveSeq(100); n > 0 {
		lastA = f + uint64(n) - 1
	}
	lastA = max(lastA, aOut.SeqLimit())
	before := peer.List()[0]

	// a leaves; its address goes to b.
	if err := a.plane.close(); err != nil {
		t.Fatal(err)
	}
	if n := a.e.Standby(); n != 1 {
		t.Fatalf("a, having let the group go, still runs %d IKE SAs actively", 1-n)
	}
	a.e.Close()
	ua.Close()
	ub, err := transport.Listen(gwAddr, gIKE, gNATT)
	if err != nil {
		t.Fatalf("b cannot take the address's ports: %v", err)
	}
	defer ub.Close()
	sw.Attach(ub)
	if !etcdtest.WaitFor(5*time.Second, func() bool { return b.e.Standby() == 0 }) {
		t.Fatal("b never took the IKE SA over")
	}
	// b's outbound Child SA sends, above everything a could use.
	var bOut *sad.SA
	for _, sa := range b.st.SAs(store.Negotiated) {
		if sa.Dir == sad.Outbound {
			bOut = sa
		}
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool { return bOut.SeqLimit() > bOut.Seq() }) {
		t.Fatal("b's outbound Child SA never got numbers")
	}
	if f, n := bOut.ReserveSeq(1); n != 1 || f <= lastA {
		t.Fatalf("b starts at %d (n %d), a could use up to %d", f, n, lastA)
	}
	// The peer's DPD, a Child SA rekey from either end, IKE SA rekeys.
	steady := func() {
		t.Helper()
		if !etcdtest.WaitFor(5*time.Second, func() bool {
			l, lb := peer.List(), b.e.List()
			return len(l) == 1 && len(lb) == 1 && l[0].SPIi == lb[0].SPIi && l[0].SPIr == lb[0].SPIr && len(l[0].Children) == 1 &&
				len(lb[0].Children) == 1 && l[0].Children[0].SPIIn == lb[0].Children[0].SPIOut
		}) {
			t.Fatalf("peer and b disagree: %+v vs %+v", peer.List(), b.e.List())
		}
	}
	if err := peer.Ping(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	bIKE := b.plane.ike.ikeRep
	bWrites := func() uint64 { p, d := bIKE.Writes(); return p + d }
	for _, step := range []struct {
		what  string
		rekey func() error
	}{
		{"the peer's Child SA rekey", func() error { return peer.RekeyChildren(ctx, "test", "net") }},
		{"b's Child SA rekey", func() error { return b.e.RekeyChildren(ctx, "test", "net") }},
		{"b's IKE SA rekey", func() error { return b.e.RekeyIKE(ctx, "test") }},
		{"the peer's IKE SA rekey", func() error { return peer.RekeyIKE(ctx, "test") }},
	} {
		w0 := bWrites()
		if err := step.rekey(); err != nil {
			t.Fatal(err)
		}
		steady()
		time.Sleep(2 * cluster.DefaultIKEWriteInterval)
		t.Logf("etcd writes of IKE SA records for %s: %d", step.what, bWrites()-w0)
	}
	if l := peer.List()[0]; l.SPIi == before.SPIi || l.Children[0].SPIIn == before.Children[0].SPIIn {
		t.Fatal("not rekeyed")
	}
	if err := peer.Ping(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if n := pc.sent("IKE_SA_INIT/req"); n != 1 {
		t.Fatalf("the peer sent %d IKE_SA_INIT requests, want 1", n)
	}
	if n := b.conn.sent("IKE_SA_INIT/req") + b.conn.sent("IKE_SA_INIT/resp"); n != 0 {
		t.Fatalf("b sent %d IKE_SA_INIT messages", n)
	}
	// b's new SAs are its own, in the group's ReqID range, and replicated.
	for _, sa := range b.st.SAs(store.Negotiated) {
		if sa.ReqID&^0xffff != reqIDBase("g1") {
			t.Fatalf("ReqID %#x is not from g1's range", sa.ReqID)
		}
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool { p, _ := bIKE.Writes(); return p > 0 }) {
		t.Fatal("b never wrote its IKE SA")
	}
}

// TestClusterReqIDs: a grouped connection's ReqIDs come from its group's
// range, distinct groups get distinct ranges, ReqIDs live in the group
// are skipped, and ungrouped connections are left to the engine.
func TestClusterReqIDs(t *testing.T) {
	cfg := &config.Config{Cluster: &config.Cluster{Groups: []config.TunnelGroup{
		{Name: "g1", Connections: []string{"a", "b"}}, {Name: "g2", Connections: []string{"c"}}}}}
	c := newClusterIKE(newClusterPlane(cfg, nil, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if reqIDBase("g1") == reqIDBase("g2") {
		t.Fatal("two groups share a ReqID range")
	}
	if id := c.reqID("ungrouped"); id != 0 {
		t.Fatalf("ungrouped connection got ReqID %#x", id)
	}
	first := c.reqID("a")
	if first != reqIDBase("g1")|1 || first < 1<<31 {
		t.Fatalf("first ReqID of g1 %#x, want %#x", first, reqIDBase("g1")|1)
	}
	// The IKE SAs of g1 hold the next two (imported from the old owner).
	c.noteReqIDsLocked("g1", ike.IKESAState{SPIi: 1, Initiator: true, Children: []ike.ChildSAState{{ReqID: first + 1}, {ReqID: first + 2}}})
	if id := c.reqID("b"); id != first+3 {
		t.Fatalf("got %#x, want %#x (live ones skipped)", id, first+3)
	}
	if id := c.reqID("c"); id&^0xffff != reqIDBase("g2") {
		t.Fatalf("g2's connection got %#x", id)
	}
	if p, m := c.spiRange("a"); p != reqIDBase("g1") || m != 0xffff0000 {
		t.Fatalf("g1's SPI range %#x/%#x", p, m)
	}
	if p, m := c.spiRange("ungrouped"); p != 0 || m != 1<<31 {
		t.Fatalf("ungrouped SPI range %#x/%#x", p, m)
	}
	c.noteReqIDsLocked("g1", ike.IKESAState{SPIi: 1, Initiator: true, Deleted: true})
	if len(c.reqIDs["g1"]) != 0 {
		t.Fatal("a deleted IKE SA's ReqIDs stay reserved")
	}
}
