package daemon

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/iketest"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/store"
)

// delayProxy forwards TCP connections to target, each byte delayed by d
// in each direction (an etcd 2d of round trip away, as across racks or
// zones). It keeps the order of the bytes.
func delayProxy(t *testing.T, target string, d time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	pump := func(dst, src net.Conn) {
		defer wg.Done()
		type chunk struct {
			at time.Time
			b  []byte
		}
		ch := make(chan chunk, 1024)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer dst.Close()
			for c := range ch {
				time.Sleep(time.Until(c.at))
				if _, err := dst.Write(c.b); err != nil {
					for range ch {
					}
					return
				}
			}
		}()
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{time.Now().Add(d), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go pump(s, c)
			go pump(c, s)
		}
	}()
	return "http://" + l.Addr().String()
}

// stormConns are n tunnels between one peer and the gateway: tunnel i has
// its own peer identity and remote network (10.x.y.0/24), all of them in
// group g1 on the gateway.
func stormConns(t *testing.T, n int, gw, peer netip.Addr) (gws, peers []ike.Connection) {
	for i := range n {
		rnet := fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
		g := ikeTestConn(t, gw, peer, "198.18.2.0/24", rnet, "gw.test", fmt.Sprintf("peer%d.test", i))
		g.Name = fmt.Sprintf("t%d", i)
		p := ikeTestConn(t, peer, gw, rnet, "198.18.2.0/24", fmt.Sprintf("peer%d.test", i), "gw.test")
		p.Name = g.Name
		gws, peers = append(gws, g), append(peers, p)
	}
	return gws, peers
}

// stormEnds are the peer's (127.0.0.1) and the gateway's (gw) IKE
// sockets, closed with the test, and n tunnels between them.
func stormEnds(t *testing.T, n int, gw string) (up, ug *transport.UDP, gws, peers []ike.Connection) {
	t.Helper()
	peerAddr, gwAddr := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr(gw)
	var err error
	if up, err = transport.Listen(peerAddr, 0, 0); err != nil {
		t.Skipf("cannot listen on %v: %v", peerAddr, err)
	}
	t.Cleanup(func() { up.Close() })
	if ug, err = transport.Listen(gwAddr, 0, 0); err != nil {
		t.Skipf("cannot listen on %v: %v", gwAddr, err)
	}
	t.Cleanup(func() { ug.Close() })
	gws, peers = stormConns(t, n, gwAddr, peerAddr)
	return up, ug, gws, peers
}

// stormPeer waits until a owns g1 and starts the peer's engine on up
// with inst; both stop with the test.
func stormPeer(t *testing.T, a *gwNode, peers []ike.Connection, up, ug *transport.UDP, inst ike.Installer) *ike.Engine {
	t.Helper()
	t.Cleanup(func() {
		a.plane.close()
		a.e.Close()
	})
	if !etcdtest.WaitFor(5*time.Second, func() bool { return a.ownsIKE("g1") }) {
		t.Fatal("a never took g1")
	}
	gIKE, gNATT := ug.Ports()
	peer, err := ike.New(ike.Config{Connections: peers, RemoteIKEPort: gIKE, RemoteNATTPort: gNATT,
		Retransmit: ike.Retransmit{Timeout: 2 * time.Second, Tries: 4}}, up, inst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peer.Close)
	return peer
}

// etcdClient is a client of the etcd at url, closed with the test.
func etcdClient(t *testing.T, url string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// startStormGW is startGW with many connections in group g1 and a
// one-node group.
func startStormGW(t *testing.T, ctx context.Context, endpoint string, tc transport.Conn, conns []ike.Connection, rike, rnatt uint16) *gwNode {
	t.Helper()
	st, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return startStormGWOn(t, ctx, endpoint, st, nil, tc, conns, rike, rnatt)
}

// startStormGWOn is startStormGW on st; wrap, if set, wraps the engine's
// Conn above the heldConn.
func startStormGWOn(t *testing.T, ctx context.Context, endpoint string, st *store.Store, wrap func(transport.Conn) transport.Conn,
	tc transport.Conn, conns []ike.Connection, rike, rnatt uint16) *gwNode {
	t.Helper()
	var names []string
	for _, c := range conns {
		names = append(names, c.Name)
	}
	cfg := &config.Config{}
	cfg.Cluster = &config.Cluster{Name: "t", Node: "a", Key: make([]byte, 32),
		LeaseTTL: config.DefaultLeaseTTL, FenceMargin: config.DefaultFenceMargin, ReplayPublish: 100 * time.Millisecond,
		Endpoints: []string{endpoint},
		Groups:    []config.TunnelGroup{{Name: "g1", Connections: names, Nodes: []config.GroupNode{{Name: "a", Preference: 100}}}}}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(tWriter{t, "gw"}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p := newClusterPlane(cfg, nil, log)
	if err := p.start(ctx); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: log, store: st, inbound: st.Inbound(), cluster: p}
	ip := &ikePlane{d: d}
	ecfg := ike.Config{Connections: conns, RemoteIKEPort: rike, RemoteNATTPort: rnatt,
		Retransmit: ike.Retransmit{Timeout: 2 * time.Second, Tries: 4}, Logger: log}
	p.ike.configure(&ecfg)
	cc := &countConn{Conn: tc, n: map[string]int{}}
	conn := p.ike.engineConn(cc)
	if wrap != nil {
		conn = wrap(conn)
	}
	e, err := ike.New(ecfg, conn, ip)
	if err != nil {
		t.Fatal(err)
	}
	p.ike.start(e, st)
	return &gwNode{plane: p, st: st, e: e, conn: cc}
}

// ownsIKE: the group is this node's, for its negotiated tunnels too
// (clusterIKE.change ran: the static SAs' gate opens before).
func (n *gwNode) ownsIKE(g string) bool {
	c := n.plane.ike
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.plane.node.Ownership.Group(g).MaySend(cluster.Now()) && c.owned[g]
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestClusterRekeyStorm: n tunnels of one group (CLUSTER_STORM_N, default
// 100) on a gateway whose etcd is CLUSTER_STORM_RTT_MS (default 10) of
// round trip away. It measures the etcd writes per tunnel in steady state
// (every tunnel's SAs carrying 1,000 packets/s each way) and during a
// rekey storm (the peer rekeys every tunnel's Child SA at once), and the
// storm's wall time. The Installer hooks must not serialise the storm on
// etcd round trips: the storm takes less than one round trip per tunnel
// (waiting for etcd on the IKE engine's loop costs at least four: record
// puts, mark read and raise per new SA, two record deletes per old SA).
// After the storm every SA of the gateway has its record in etcd and
// every outbound one its sequence block.
func TestClusterRekeyStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("rekey storm: not in -short")
	}
	n := envInt("CLUSTER_STORM_N", 100)
	rtt := time.Duration(envInt("CLUSTER_STORM_RTT_MS", 10)) * time.Millisecond
	direct := startTestEtcd(t)
	ep := direct
	if os.Getenv("CLUSTER_STORM_RTT_MS") != "0" {
		ep = delayProxy(t, direct[len("http://"):], rtt/2)
	} else {
		rtt = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli := etcdClient(t, direct)
	// etcd's own counters (its /metrics): keys written (puts and
	// deletes), raft proposals committed, WAL fsyncs.
	etcdCounts := func() [3]float64 {
		var c [3]float64
		resp, err := http.Get(direct + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "etcd_mvcc_put_total", "etcd_mvcc_delete_total":
				c[0] += v
			case "etcd_server_proposals_committed_total":
				c[1] += v
			case "etcd_disk_wal_fsync_duration_seconds_count":
				c[2] += v
			}
		}
		return c
	}
	rev := func() int64 {
		r, err := cli.Get(ctx, "/nothing")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}

	up, ug, gws, peers := stormEnds(t, n, "127.0.0.3")
	pIKE, pNATT := up.Ports()
	a := startStormGW(t, ctx, ep, ug, gws, pIKE, pNATT)
	peer := stormPeer(t, a, peers, up, ug, iketest.NewMemInstaller())

	// Establish the tunnels, 16 at a time.
	all := func(f func(name string) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 16)
		for _, c := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := f(c.Name); err != nil {
					errs <- fmt.Errorf("%s: %w", c.Name, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	all(func(name string) error { return peer.Initiate(ctx, name) })
	sendsAll := func() bool {
		sas := a.st.SAs(store.Negotiated)
		outs := 0
		for _, sa := range sas {
			if sa.Dir == sad.Outbound {
				if sa.SeqLimit() <= sa.Seq() {
					return false
				}
				outs++
			}
		}
		return outs >= n
	}
	if !etcdtest.WaitFor(30*time.Second, sendsAll) {
		t.Fatal("not every tunnel's outbound SA got sequence numbers")
	}
	t.Logf("%d tunnels up in %v (etcd round trip %v)", n, time.Since(t0).Round(time.Millisecond), rtt)
	time.Sleep(time.Second) // the IKE SA records written

	writes := func() map[string]uint64 { return a.plane.snapshot().Groups[0].Writes }
	perTunnel := func(what string, before, after map[string]uint64, revs int64, secs float64, e0 [3]float64) {
		t.Helper()
		e1 := etcdCounts()
		div := float64(n)
		if secs > 0 {
			div *= secs
		}
		t.Logf("%s: etcd counters per tunnel%s: keys written %.2f, raft proposals %.2f, WAL fsyncs %.2f", what,
			map[bool]string{true: " per second", false: ""}[secs > 0], (e1[0]-e0[0])/div, (e1[1]-e0[1])/div, (e1[2]-e0[2])/div)
		var sum uint64
		s := ""
		for _, k := range []string{"record", "seq", "replay", "renew"} {
			d := after[k] - before[k]
			sum += d
			if secs > 0 {
				s += fmt.Sprintf(" %s %.3f/s", k, float64(d)/float64(n)/secs)
			} else {
				s += fmt.Sprintf(" %s %.2f", k, float64(d)/float64(n))
			}
		}
		if secs > 0 {
			t.Logf("%s, per tunnel:%s; all kinds %.3f/s; etcd revisions (transactions) %.3f/s per tunnel, %.1f/s in all",
				what, s, float64(sum)/float64(n)/secs, float64(revs)/float64(n)/secs, float64(revs)/secs)
		} else {
			t.Logf("%s, per tunnel:%s; all kinds %.2f; etcd revisions (transactions) %.2f per tunnel, %d in all",
				what, s, float64(sum)/float64(n), float64(revs)/float64(n), revs)
		}
	}

	// Steady state: 1,000 packets/s each way on every tunnel for 3 s.
	var outs, ins []*sad.SA
	for _, sa := range a.st.SAs(store.Negotiated) {
		if sa.Dir == sad.Outbound {
			outs = append(outs, sa)
		} else {
			ins = append(ins, sa)
		}
	}
	w0, r0, e0, s0 := writes(), rev(), etcdCounts(), time.Now()
	var top uint64
	for time.Since(s0) < 3*time.Second {
		top += 10
		for _, sa := range outs {
			sa.ReserveSeq(10)
		}
		for _, sa := range ins {
			sa.Replay.Commit(top)
		}
		time.Sleep(10 * time.Millisecond)
	}
	perTunnel("steady state (1,000 packets/s each way per tunnel, no IKE exchange)", w0, writes(), rev()-r0, time.Since(s0).Seconds(), e0)

	// The storm: the peer rekeys every tunnel's Child SA at once.
	w0, r0, e0, s0 = writes(), rev(), etcdCounts(), time.Now()
	info0 := a.conn.sent("INFORMATIONAL/resp")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := peer.RekeyChildren(ctx, c.Name, "net"); err != nil {
				errs <- fmt.Errorf("%s: %w", c.Name, err)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(s0)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The peer deletes the old Child SAs after each rekey: the storm ends
	// when the gateway has answered every Delete.
	if !etcdtest.WaitFor(2*time.Minute, func() bool { return a.conn.sent("INFORMATIONAL/resp")-info0 >= n }) {
		t.Fatalf("the gateway answered %d of %d Deletes", a.conn.sent("INFORMATIONAL/resp")-info0, n)
	}
	wallDel := time.Since(s0)
	// The lingering inbound halves go after a second; the IKE SA records
	// are written within half a second.
	if !etcdtest.WaitFor(time.Minute, func() bool { return len(a.st.SAs(store.Negotiated)) == 2*n }) {
		t.Fatalf("%d negotiated SAs on the gateway, want %d", len(a.st.SAs(store.Negotiated)), 2*n)
	}
	time.Sleep(time.Second)
	perTunnel(fmt.Sprintf("rekey storm of %d tunnels (all rekeyed in %v, old SAs deleted in %v)", n, wall.Round(time.Millisecond), wallDel.Round(time.Millisecond)),
		w0, writes(), rev()-r0, 0, e0)
	t.Logf("gateway sent %d CREATE_CHILD_SA responses, %d INFORMATIONAL requests, %d responses; %d negotiated SAs in its store",
		a.conn.sent("CREATE_CHILD_SA/resp"), a.conn.sent("INFORMATIONAL/req"), a.conn.sent("INFORMATIONAL/resp"), len(a.st.SAs(store.Negotiated)))
	t.Logf("rekey storm: %d tunnels rekeyed in %v (%.1f rekeys/s), old SAs deleted in %v; etcd round trip %v", n, wall.Round(time.Millisecond),
		float64(n)/wall.Seconds(), wallDel.Round(time.Millisecond), rtt)

	// Every SA of the gateway is in etcd, every outbound one may send
	// within a durable block.
	checkDurable(t, ctx, cli, a.st, n)
	if rtt > 0 && wallDel >= time.Duration(n)*rtt {
		t.Errorf("the rekey storm of %d tunnels took %v, at least one etcd round trip (%v) per tunnel: the Installer hooks serialise it", n, wallDel, rtt)
	}
}

// checkDurable: every negotiated SA of st has its record in etcd, and
// every outbound one a mark at or above its limit, which is above its
// counter.
func checkDurable(t *testing.T, ctx context.Context, cli *clientv3.Client, st *store.Store, n int) {
	t.Helper()
	recs, err := cli.Get(ctx, "/xdpsec/t/groups/g1/child/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, kv := range recs.Kvs {
		have[string(kv.Key)] = true
	}
	outs := 0
	for _, sa := range st.SAs(store.Negotiated) {
		key := fmt.Sprintf("/xdpsec/t/groups/g1/child/%s-%08x", sa.Dir, sa.SPI)
		if !have[key] {
			t.Errorf("SA %s %08x has no record in etcd (%s)", sa.Dir, sa.SPI, key)
		}
		if sa.Dir != sad.Outbound {
			continue
		}
		outs++
		m, err := cli.Get(ctx, fmt.Sprintf("/xdpsec/t/groups/g1/seq/%08x", sa.SPI))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Kvs) == 0 {
			t.Errorf("outbound SA %08x has no sequence mark", sa.SPI)
			continue
		}
		mark, _ := strconv.ParseUint(string(m.Kvs[0].Value), 10, 64)
		if sa.SeqLimit() > mark || sa.SeqLimit() <= sa.Seq() {
			t.Errorf("outbound SA %08x: limit %d, counter %d, mark in etcd %d", sa.SPI, sa.SeqLimit(), sa.Seq(), mark)
		}
	}
	if outs < n {
		t.Errorf("%d outbound SAs, want %d", outs, n)
	}
}

// checkInst is the peer's Installer: when the peer is about to send on
// a new SA (InstallOutbound: it has the message that lets it), the
// gateway's inbound SA of that SPI must have its record in etcd.
type checkInst struct {
	*iketest.MemInstaller
	t       *testing.T
	ctx     context.Context
	cli     *clientv3.Client
	mu      sync.Mutex
	checked int
}

func (c *checkInst) InstallOutbound(cfg sad.Config, sel []sad.Selector) error {
	k := fmt.Sprintf("/xdpsec/t/groups/g1/child/in-%08x", cfg.SPI)
	if r, err := c.cli.Get(c.ctx, k, clientv3.WithCountOnly()); err != nil {
		c.t.Error(err)
	} else if r.Count == 0 {
		c.t.Errorf("the peer may send on %08x before the gateway's record %s is in etcd", cfg.SPI, k)
	}
	c.mu.Lock()
	c.checked++
	c.mu.Unlock()
	return c.MemInstaller.InstallOutbound(cfg, sel)
}

// TestClusterHeldSends: with etcd 40 ms of round trip away, every IKE
// message the gateway sends (IKE_AUTH and CREATE_CHILD_SA responses
// above all) leaves only once the records of the SAs installed before it
// are in etcd, and an outbound SA's sequence mark with them, while the
// IKE engine does not wait for etcd (heldConn, cluster.Batcher).
func TestClusterHeldSends(t *testing.T) {
	const n = 8
	direct := startTestEtcd(t)
	ep := delayProxy(t, direct[len("http://"):], 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := etcdClient(t, direct)
	up, ug, gws, peers := stormEnds(t, n, "127.0.0.4")
	pIKE, pNATT := up.Ports()
	st, err := store.New(store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	check := &checkInst{MemInstaller: iketest.NewMemInstaller(), t: t, ctx: ctx, cli: cli}
	a := startStormGWOn(t, ctx, ep, st, nil, ug, gws, pIKE, pNATT)
	peer := stormPeer(t, a, peers, up, ug, check)
	var wg sync.WaitGroup
	for _, c := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := peer.Initiate(ctx, c.Name); err != nil {
				t.Error(err)
				return
			}
			for range 2 {
				if err := peer.RekeyChildren(ctx, c.Name, "net"); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range gws[:2] { // the gateway's own rekeys too
		if !etcdtest.WaitFor(10*time.Second, func() bool { return a.e.RekeyChildren(ctx, c.Name, "net") == nil }) {
			t.Fatalf("the gateway could not rekey %s", c.Name)
		}
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if check.checked < 3*n {
		t.Fatalf("only %d SAs checked", check.checked)
	}
	t.Logf("%d of the gateway's inbound SAs were in etcd when the peer could first send on them", check.checked)
}
