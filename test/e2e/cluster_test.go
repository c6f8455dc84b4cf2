package e2e

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// The cluster lab: three xdpsec nodes (n1, n2, n3) on a WAN bridge, a LAN
// bridge and a management bridge (etcd's peer traffic) in the switch
// namespace sw; an xdpsec peer gateway gP (not clustered) on the WAN with
// hB behind it; hA on the LAN, whose default route is the group's LAN
// address. One tunnel group g1 of static SAs carries hA <-> hB; its
// addresses (WAN 192.0.2.1, LAN 198.18.1.1) are held by its owner only.
const (
	clGroupWAN = "192.0.2.1"
	clGroupLAN = "198.18.1.1"
	clPeerWAN  = "192.0.2.2"
	clHostA    = "198.18.1.2"
	clHostB    = "198.18.2.2"
	clFlowPort = 7000
	clNodes    = 3
	// clLeaseTTL is the nodes' lease_ttl (the default).
	clLeaseTTL = 700 * time.Millisecond
)

func clNode(i int) string { return fmt.Sprintf("n%d", i) }

// clMAC is node i's MAC on its WAN (side 1) or LAN (side 2) interface.
func clMAC(side, i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, byte(side), 0, byte(i)} }

// clusterLab is the cluster lab: its namespaces are the lab's, named
// prefix-node like lab.sh's, so the lab's helpers (cmd, run, capture,
// launch, ping) work on them.
type clusterLab struct {
	*lab
	keys tunnelKeys
	cfgs map[string]string
	gws  map[string]*gateway
}

// clusterNodes makes a cluster lab's namespaces (sw, n1..n3, gP and
// others), the switch's bridges bw (WAN), bl (LAN), bm (management) and
// the nodes' wan0, lan0 and mg0 on them, node i at .10+i of wanNet,
// lanNet and mgNet (each "A.B.C.0/LEN"), forwarding and with no route to
// the far site (198.18.2.0/24) but through the tunnels. port makes a
// port of a bridge.
func clusterNodes(t *testing.T, prefix string, others []string, wanNet, lanNet, mgNet string) (c *clusterLab, ns map[string]*testlab.Netns, port func(name, br string) *testlab.End) {
	t.Helper()
	l := &lab{t: t, prefix: prefix + testlab.Tag(), dir: t.TempDir()}
	c = &clusterLab{lab: l, cfgs: map[string]string{}, gws: map[string]*gateway{}}
	ns = map[string]*testlab.Netns{}
	for _, n := range append([]string{"sw", "gP", "n1", "n2", "n3"}, others...) {
		ns[n] = testlab.NewNetns(t, l.prefix+"-"+n, testlab.NoIPv6|testlab.LoUp)
	}
	t.Cleanup(func() {
		for _, n := range []string{"n1", "n2", "n3", "gP"} {
			cleanupPins(l.pinPath(n))
			os.Remove(l.sockPath(n))
		}
	})
	sw := ns["sw"]
	for _, br := range []string{"bw", "bl", "bm"} {
		sw.Bridge(t, br)
	}
	port = func(name, br string) *testlab.End { return &testlab.End{NS: sw, Name: name, Master: br, MTU: 1600} }
	addr := func(net string, i int) netip.Prefix {
		p := netip.MustParsePrefix(net)
		a := p.Addr().As4()
		a[3] = byte(10 + i)
		return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
	}
	for i := 1; i <= clNodes; i++ {
		n := ns[clNode(i)]
		testlab.Veth(t, &testlab.End{NS: n, Name: "wan0", MAC: clMAC(1, i), MTU: 1600, Addr: addr(wanNet, i)},
			port(fmt.Sprintf("w%d", i), "bw"), testlab.TxOff)
		testlab.Veth(t, &testlab.End{NS: n, Name: "lan0", MAC: clMAC(2, i), Addr: addr(lanNet, i)},
			port(fmt.Sprintf("l%d", i), "bl"), testlab.TxOff)
		testlab.Veth(t, &testlab.End{NS: n, Name: "mg0", Addr: addr(mgNet, i)}, port(fmt.Sprintf("m%d", i), "bm"), 0)
		n.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		// The kernel never routes the far site: fail closed.
		n.Route(t, "unreachable", "198.18.2.0/24")
	}
	return c, ns, port
}

// clusterKey writes a random cluster key file and returns its path.
func (c *clusterLab) clusterKey(t *testing.T) string {
	t.Helper()
	ck := make([]byte, 32)
	rand.Read(ck)
	keyFile := filepath.Join(c.dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(ck)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// nodeHead is the top of a lab node's configuration (interfaces wan0 and
// lan0, its pins, socket and state in the lab).
func (c *clusterLab) nodeHead(node string) string {
	return fmt.Sprintf(`# cluster lab %s
interfaces: {lan: lan0, wan: wan0, queues: 1, xdp_mode: auto, cpus: []}
default_action: discard
pin_path: %s
on_stop: detach
control: %s
state_dir: %s
`, node, c.pinPath(node), c.sockPath(node), filepath.Join(c.dir, node+"-state")) + clusterLogLevel()
}

// etcdYAML is node i's cluster.etcd section: an embedded member on its
// management address (198.51.100.10+i), the three nodes its members.
func (c *clusterLab) etcdYAML(i int) string {
	var members []string
	for j := 1; j <= clNodes; j++ {
		members = append(members, fmt.Sprintf("%s: \"http://198.51.100.%d:2380\"", clNode(j), 10+j))
	}
	return fmt.Sprintf(`  etcd:
    embedded:
      data_dir: %s
      peer_url: http://198.51.100.%d:2380
      client_url: http://127.0.0.1:2379
      members: {%s}
`, filepath.Join(c.dir, clNode(i)+"-etcd"), 10+i, strings.Join(members, ", "))
}

func newClusterLab(t *testing.T) *clusterLab {
	t.Helper()
	c, ns, port := clusterNodes(t, "c", []string{"hA", "hB"}, "192.0.2.0/24", "198.18.1.0/24", "198.51.100.0/24")
	l := c.lab
	pfx := netip.MustParsePrefix
	testlab.Veth(t, &testlab.End{NS: ns["gP"], Name: "wan0", MTU: 1600, Addr: pfx(clPeerWAN + "/24")}, port("wp", "bw"), testlab.TxOff)
	testlab.Veth(t, &testlab.End{NS: ns["hA"], Name: "eth0", Addr: pfx(clHostA + "/24")}, port("la", "bl"), testlab.TxOff)
	testlab.Veth(t, &testlab.End{NS: ns["gP"], Name: "lan0", Addr: pfx("198.18.2.1/24")},
		&testlab.End{NS: ns["hB"], Name: "eth0", Addr: pfx(clHostB + "/24")}, testlab.TxOff)
	ns["gP"].Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ns["gP"].Route(t, "unreachable", "198.18.1.0/24")
	ns["hA"].Route(t, "default", "via", clGroupLAN)
	ns["hB"].Route(t, "default", "via", "198.18.2.1")

	key := func() []byte { b := make([]byte, 20); rand.Read(b); return b }
	c.keys = tunnelKeys{ab: key(), ba: key(), family: "IPv4", a: clGroupWAN, b: clPeerWAN}
	keyFile := c.clusterKey(t)
	sas := func(local, remote string, out, in uint32, outKey, inKey []byte, lnet, rnet string) string {
		return fmt.Sprintf(`sas:
  - {name: out, spi: 0x%x, dir: out, local: %s, remote: %s, suite: aes128gcm16, key: 0x%s,
     selectors: [{src: %s, dst: %s}]}
  - {name: in, spi: 0x%x, dir: in, local: %s, remote: %s, suite: aes128gcm16, key: 0x%s, replay_window: 1024,
     selectors: [{src: %s, dst: %s}]}
policies:
  - {name: v4, src: %s, dst: %s, action: protect, sa: out}
`, out, local, remote, hex.EncodeToString(outKey), lnet, rnet, in, local, remote, hex.EncodeToString(inKey), rnet, lnet, lnet, rnet)
	}
	head := c.nodeHead
	for i := 1; i <= clNodes; i++ {
		n := clNode(i)
		y := head(n) + sas(clGroupWAN, clPeerWAN, spiAB, spiBA, c.keys.ab, c.keys.ba, "198.18.1.0/24", "198.18.2.0/24") +
			fmt.Sprintf(`cluster:
  name: lab
  node: %s
  key_file: %s
%s  groups:
    - name: g1
      sas: [out, in]
      wan: %s/24
      lan: %s/24
      nodes: {n1: 100, n2: 50, n3: 10}
`, n, keyFile, c.etcdYAML(i), clGroupWAN, clGroupLAN)
		c.cfgs[n] = filepath.Join(l.dir, n+".yaml")
		if err := os.WriteFile(c.cfgs[n], []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.cfgs["gP"] = filepath.Join(l.dir, "gP.yaml")
	if err := os.WriteFile(c.cfgs["gP"], []byte(head("gP")+sas(clPeerWAN, clGroupWAN, spiBA, spiAB, c.keys.ba, c.keys.ab, "198.18.2.0/24", "198.18.1.0/24")), 0o600); err != nil {
		t.Fatal(err)
	}
	newKeys(t, c.cfgs["gP"])
	return c
}

// startNodes launches the named daemons at once (an embedded etcd member
// waits for a quorum of its peers) and waits for their control sockets.
func (c *clusterLab) startNodes(t *testing.T, nodes ...string) {
	t.Helper()
	for _, n := range nodes {
		c.gws[n] = c.launch(t, n, c.dir, exec.Command("nsenter", "--net="+c.ns(n), "--", xdpsecBin, "run", "-c", c.cfgs[n]))
	}
	deadline := time.Now().Add(40 * time.Second)
	for _, n := range nodes {
		for {
			if _, err := control.Query(c.sockPath(n)); err == nil {
				break
			}
			select {
			case <-c.gws[n].done:
				t.Fatalf("xdpsec in %s exited: %v\n%s", n, c.gws[n].err, c.gws[n].logText())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("xdpsec in %s: control socket not answering after 40 s\n%s", n, c.gws[n].logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// diagnose logs the live gateways' SAs and counters and the peer's
// neighbour entry for the group.
func (c *clusterLab) diagnose(t *testing.T) {
	t.Helper()
	var live []string
	for n, g := range c.gws {
		if !isDone(g) {
			live = append(live, n)
		}
	}
	t.Log(c.diagnoseNodes(live...))
	out, _ := c.run("gP", 5*time.Second, "ip", "neigh", "show")
	t.Logf("gP's neighbours:\n%s", out)
	for i := 1; i <= clNodes; i++ {
		out, _ := c.run(clNode(i), 5*time.Second, "ip", "-br", "addr")
		t.Logf("%s's addresses:\n%s", clNode(i), out)
	}
}

// holders are the live nodes whose WAN interface holds the group's WAN
// address.
func (c *clusterLab) holders(t *testing.T) []string {
	t.Helper()
	var hs []string
	for i := 1; i <= clNodes; i++ {
		n := clNode(i)
		if g := c.gws[n]; g == nil || isDone(g) {
			continue
		}
		if out, _ := c.run(n, 5*time.Second, "ip", "-4", "-o", "addr", "show", "dev", "wan0"); strings.Contains(out, " "+clGroupWAN+"/") {
			hs = append(hs, n)
		}
	}
	return hs
}

func isDone(g *gateway) bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// waitOwner waits until exactly one live node holds the group's address
// and returns it.
func (c *clusterLab) waitOwner(t *testing.T, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		hs := c.holders(t)
		if len(hs) == 1 {
			return hs[0]
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for n, g := range c.gws {
				fmt.Fprintf(&logs, "--- %s\n%s\n", n, g.logText())
			}
			t.Fatalf("group address held by %v after %v (want exactly one node)\n%s", hs, within, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// udpFlow is one direction's numbered UDP datagrams.
type udpFlow struct {
	sent     uint64
	mu       sync.Mutex
	got      map[uint64]int       // sequence -> times delivered
	arrivals map[uint64]time.Time // first delivery
}

// flows sends numbered datagrams hA -> hB and hB -> hA every interval until
// stop is closed; wait returns both directions once the last datagrams had
// time to arrive.
func (c *clusterLab) flows(t *testing.T, interval time.Duration, stop chan struct{}) (wait func() (ab, ba *udpFlow)) {
	t.Helper()
	return c.flowsBetween(t, interval, stop, "hA", clHostA, "hB", clHostB)
}

// flowsBetween is flows between addrA in namespace nsA and addrB in nsB.
func (c *clusterLab) flowsBetween(t *testing.T, interval time.Duration, stop chan struct{}, nsA, addrA, nsB, addrB string) (wait func() (ab, ba *udpFlow)) {
	t.Helper()
	ab, ba, w := c.startFlows(t, interval, stop, nil, nsA, addrA, nsB, addrB)
	return func() (*udpFlow, *udpFlow) {
		w()
		return ab, ba
	}
}

// startFlows starts flowsBetween's two directions; while paused (if not
// nil) is set nothing is sent either way. wait returns once stop is
// closed and the last datagrams had time to arrive.
func (c *clusterLab) startFlows(t *testing.T, interval time.Duration, stop chan struct{}, paused *atomic.Bool, nsA, addrA, nsB, addrB string) (ab, ba *udpFlow, wait func()) {
	t.Helper()
	open := func(node, addr string) *net.UDPConn {
		var conn *net.UDPConn
		err := c.netns(node).Do(func() error {
			var err error
			conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(addr), clFlowPort)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	a, b := open(nsA, addrA), open(nsB, addrB)
	ab, ba = &udpFlow{got: map[uint64]int{}, arrivals: map[uint64]time.Time{}}, &udpFlow{got: map[uint64]int{}, arrivals: map[uint64]time.Time{}}
	var wg sync.WaitGroup
	wg.Add(4)
	recv := func(conn *net.UDPConn, f *udpFlow) {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if n < 8 {
				continue
			}
			s := binary.BigEndian.Uint64(buf)
			f.mu.Lock()
			if f.got[s]++; f.got[s] == 1 {
				f.arrivals[s] = time.Now()
			}
			f.mu.Unlock()
		}
	}
	send := func(conn *net.UDPConn, to string, f *udpFlow) {
		defer wg.Done()
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(to), clFlowPort))
		buf := make([]byte, 100)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			if paused != nil && paused.Load() {
				continue
			}
			f.mu.Lock()
			f.sent++
			seq := f.sent
			f.mu.Unlock()
			binary.BigEndian.PutUint64(buf, seq)
			conn.WriteToUDP(buf, dst) // a datagram the kernel refuses counts as lost
		}
	}
	go send(a, addrB, ab)
	go send(b, addrA, ba)
	go recv(b, ab)
	go recv(a, ba)
	return ab, ba, func() {
		<-stop
		time.Sleep(time.Second)
		a.Close()
		b.Close()
		wg.Wait()
	}
}

// gap is the longest time between two consecutive first deliveries, and
// the sequence numbers around it.
func (f *udpFlow) gap() (time.Duration, uint64, uint64) {
	var seqs []uint64
	for s := range f.arrivals {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	var best time.Duration
	var lo, hi uint64
	for i := 1; i < len(seqs); i++ {
		if d := f.arrivals[seqs[i]].Sub(f.arrivals[seqs[i-1]]); d > best {
			best, lo, hi = d, seqs[i-1], seqs[i]
		}
	}
	return best, lo, hi
}

func (f *udpFlow) dups() (n int) {
	for _, k := range f.got {
		if k > 1 {
			n++
		}
	}
	return n
}

// switchover finds in a capture's frames (time, MAC, in order) the first
// frame from a MAC other than old after at least one from old, and the
// last frame from old before it.
func switchover(frames [][2]string, old string) (last, first float64, to string, ok bool) {
	seen := false
	for _, f := range frames {
		switch {
		case f[1] == old:
			last, _ = strconv.ParseFloat(f[0], 64)
			seen = true
		case seen && f[1] != "":
			first, _ = strconv.ParseFloat(f[0], 64)
			return last, first, f[1], true
		}
	}
	return last, 0, "", false
}

// TestClusterTakeover: three real xdpsec processes carry one tunnel group
// of static SAs to an xdpsec peer while hA and hB exchange numbered UDP
// datagrams at about 1,000 a second each way; the active node is killed
// with SIGKILL. Another node takes the group over: its addresses move
// (gratuitous ARP) and its SAs resume above the marks in etcd. The WAN and
// LAN captures give the takeover time (last packet of the old node to
// first of the new, each way); the test shows that no (SPI, sequence
// number) appears twice on the WAN, no datagram is delivered twice, no
// plaintext crosses the WAN, and the new owner is another node.
// CLUSTER_KILLS=N repeats the kill N times (the killed node restarted as
// a standby in between) for a distribution of takeover times;
// CLUSTER_KILL_LEADER=1 makes the owner the etcd leader before each kill;
// CLUSTER_DEBUG=DIR keeps the nodes' debug logs (cluster_debug_test.go).
func TestClusterTakeover(t *testing.T) {
	needLab(t)
	kills := 1
	if s := os.Getenv("CLUSTER_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
		kills = max(kills, 1)
	}
	c := newClusterLab(t)
	c.keepClusterLogs(t)
	c.startNodes(t, "n1", "n2", "n3", "gP")
	owner := c.waitOwner(t, 20*time.Second)
	t.Logf("group g1 owned by %s", owner)
	c.warmUp(t, "hA", clHostB)

	wan := c.capture(t, "sw", "bw", 128)
	lan := c.captureFilter(t, "sw", "bl", 128, "udp", "port", strconv.Itoa(clFlowPort))
	stop := make(chan struct{})
	wait := c.flows(t, time.Millisecond, stop)
	type kill struct {
		node, next string
		at         time.Time
	}
	var killed []kill
	for k := 0; k < kills; k++ {
		time.Sleep(2 * time.Second)
		if k > 0 {
			owner = c.waitOwner(t, 10*time.Second)
		}
		if os.Getenv("CLUSTER_KILL_LEADER") != "" {
			c.moveEtcdLeader(t, owner)
			time.Sleep(300 * time.Millisecond) // a few renewals under the new leader
		}
		leader := c.etcdLeader(t)
		killed = append(killed, kill{node: owner, at: time.Now()})
		c.gws[owner].stop(t, syscall.SIGKILL)
		t.Logf("kill %d at %s: %s (etcd leader: %s)", k+1, killed[k].at.UTC().Format("15:04:05.000"), owner, leader)
		next := c.waitOwner(t, 10*time.Second)
		killed[k].next = next
		if next == owner {
			t.Fatalf("kill %d: %s still owns the group after its kill -9", k+1, owner)
		}
		t.Logf("kill %d: %s killed, %s owns the group", k+1, owner, next)
		// The killed node's kernel still holds the address (its lifetime
		// is seconds): only the XDP fence keeps it from answering.
		c.probeGroupARP(t, 5, 100*time.Millisecond)
		if k+1 < kills {
			time.Sleep(2 * time.Second)
			c.startNodes(t, owner) // rejoins as a standby: removes the address it was killed with
			if hs := c.holders(t); len(hs) != 1 || hs[0] != next {
				t.Fatalf("after %s restarted the group address is held by %v, want %s", owner, hs, next)
			}
		}
		owner = next
	}
	time.Sleep(3 * time.Second)
	// The last killed node's kernel lives on: the group's address it held
	// runs out of lifetime, so it stops answering ARP for it by itself.
	last := killed[len(killed)-1]
	for {
		out, _ := c.run(last.node, 5*time.Second, "ip", "-4", "-o", "addr", "show", "dev", "wan0")
		if !strings.Contains(out, " "+clGroupWAN+"/") {
			t.Logf("%s's kernel no longer holds %s %v after the kill -9", last.node, clGroupWAN, time.Since(last.at).Round(100*time.Millisecond))
			break
		}
		if time.Since(last.at) > 8*time.Second {
			t.Errorf("%s's kernel still holds %s %v after the kill -9", last.node, clGroupWAN, time.Since(last.at).Round(time.Second))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	ab, ba := wait()
	wanPcap, lanPcap := wan.stop(), lan.stop()
	// The new owner's XDP tables know the addresses it took: with
	// default_action discard, ping to them passes only as the gateway's own
	// (BYPASS in the LAN mirror, "host" in the inbound SPD).
	for _, p := range [][2]string{{"hA", clGroupLAN}, {"gP", clGroupWAN}} {
		if n := c.ping(p[0], p[1], 3); n != 3 {
			t.Errorf("ping %s -> %s (the group's address on %s): %d of 3 answered", p[0], p[1], owner, n)
		}
	}

	if t.Failed() || ba.sent > uint64(len(ba.got))+2000 {
		c.diagnose(t)
	}
	// Delivery: none twice, loss counted, the application's longest gap.
	delivery(t, ab, ba)

	// The WAN: ESP only, no (SPI, sequence number) twice.
	noLeak(t, wanPcap)
	seen := map[string]int{}
	dups := 0
	var out [][2]string  // group -> peer: time, sender MAC
	var toGr [][2]string // peer -> group: time, receiver MAC
	for _, ln := range tshark(t, wanPcap, nil, "-Y", "esp", "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src",
		"-e", "ip.src", "-e", "esp.spi", "-e", "esp.sequence", "-e", "eth.dst") {
		f := strings.Split(ln, "\t")
		if len(f) != 6 {
			continue
		}
		if f[2] == clPeerWAN {
			toGr = append(toGr, [2]string{f[0], f[5]})
		}
		k := f[3] + " " + f[4]
		if seen[k]++; seen[k] == 2 {
			if dups++; dups <= 5 {
				t.Errorf("(SPI, sequence number) twice on the WAN: %s", k)
			}
		}
		if f[2] == clGroupWAN {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	if dups > 0 {
		t.Errorf("%d (SPI, sequence number) pairs sent more than once", dups)
	}
	var in [][2]string // delivered to hA: time, sender MAC
	for _, ln := range tshark(t, lanPcap, nil, "-Y", "ip.dst == "+clHostA, "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src") {
		if f := strings.Split(ln, "\t"); len(f) == 2 {
			in = append(in, [2]string{f[0], f[1]})
		}
	}
	t.Logf("captured: %d ESP frames, %d from the group; %d datagrams delivered to hA on the LAN", len(seen), len(out), len(in))

	// The announcements: gratuitous ARPs for the group's address, by sender.
	garps := map[string]int{}
	for _, ln := range tshark(t, wanPcap, nil, "-Y", "arp.isgratuitous == 1 and arp.src.proto_ipv4 == "+clGroupWAN, "-T", "fields", "-e", "eth.src") {
		garps[ln]++
	}
	t.Logf("gratuitous ARPs for %s on the WAN, by sender: %v", clGroupWAN, garps)
	for _, kl := range killed {
		i, _ := strconv.Atoi(strings.TrimPrefix(kl.next, "n"))
		if n := garps[clMAC(1, i).String()]; n == 0 {
			t.Errorf("no gratuitous ARP from %s, which took the group over from %s", kl.next, kl.node)
		}
	}

	// ARP: after a lease from its kill, the killed node's kernel answers
	// no request for the group's address; the new owner does.
	replies := arpReplies(t, wanPcap)
	for k, kl := range killed {
		i, _ := strconv.Atoi(strings.TrimPrefix(kl.node, "n"))
		j, _ := strconv.Atoi(strings.TrimPrefix(kl.next, "n"))
		from, until := float64(kl.at.Add(clLeaseTTL).UnixNano())/1e9, 1e300
		if k+1 < len(killed) {
			until = float64(killed[k+1].at.UnixNano()) / 1e9
		}
		dead, live := 0, 0
		for _, r := range replies {
			ts, _ := strconv.ParseFloat(r[0], 64)
			if ts < from || ts >= until {
				continue
			}
			switch r[1] {
			case clMAC(1, i).String():
				dead++
			case clMAC(1, j).String():
				live++
			}
		}
		if dead > 0 {
			t.Errorf("kill %d: %s's kernel answered %d ARP requests for %s more than a lease after its kill -9", k+1, kl.node, dead, clGroupWAN)
		}
		if live == 0 {
			t.Errorf("kill %d: the new owner %s answered no ARP request for %s", k+1, kl.next, clGroupWAN)
		}
		if k == 0 || dead > 0 {
			t.Logf("kill %d: ARP replies for %s after a lease: %d from %s (killed), %d from %s (owner)", k+1, clGroupWAN, dead, kl.node, live, kl.next)
		}
	}

	// Takeover per kill: the old node's last frame to the next node's first.
	var times []string
	for k, kl := range killed {
		i, _ := strconv.Atoi(strings.TrimPrefix(kl.node, "n"))
		for _, d := range []struct {
			name   string
			frames [][2]string
			mac    string
		}{{"WAN ESP group->peer", out, clMAC(1, i).String()}, {"LAN group->hA", in, clMAC(2, i).String()},
			{"WAN ESP peer->group, its destination MAC", toGr, clMAC(1, i).String()}} {
			// Only frames from a second before this kill to the next one.
			var fr [][2]string
			from, until := float64(kl.at.Add(-time.Second).UnixNano())/1e9, 1e300
			if k+1 < len(killed) {
				until = float64(killed[k+1].at.UnixNano()) / 1e9
			}
			for _, f := range d.frames {
				if ts, _ := strconv.ParseFloat(f[0], 64); ts >= from && ts < until {
					fr = append(fr, f)
				}
			}
			last, first, to, ok := switchover(fr, d.mac)
			if !ok {
				t.Errorf("kill %d (%s): %s: no switch from %s to another node in the capture", k+1, kl.node, d.name, d.mac)
				continue
			}
			ms := (first - last) * 1000
			if !strings.Contains(d.name, "destination") {
				times = append(times, fmt.Sprintf("%.0f", ms))
			}
			t.Logf("kill %d (%s): %s: takeover %.0f ms (last frame of %s %.0f ms after the kill, first of %s)", k+1, kl.node, d.name,
				ms, d.mac, (last-float64(kl.at.UnixNano())/1e9)*1000, to)
			if to == d.mac {
				t.Errorf("kill %d: %s: the new sender is the killed node", k+1, d.name)
			}
		}
	}
	t.Logf("takeover times (ms, WAN and LAN per kill): %s", strings.Join(times, " "))
}
