package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// The capacity lab: two xdpsec nodes n1 and n2 (both etcd members) and
// two tunnel groups of static SAs: g1 (WAN 192.0.2.1, LAN 198.18.1.1,
// preferred on n1) carries hA (198.18.1.2) <-> hB (198.18.2.2) through
// the xdpsec peer gP1 (192.0.2.2); g2 (WAN 192.0.2.3, LAN 198.18.3.1,
// preferred on n2) carries hC (198.18.3.2) <-> hD (198.18.4.2) through
// gP2 (192.0.2.4). So n1 carries g1 and n2 carries g2 at the same time,
// each standby for the other's group.
type capLab struct {
	*lab
	cfgs map[string]string
	gws  map[string]*gateway
}

type capGroup struct {
	name, wan, lan, peer, lnet, rnet, host, far string
	out, in                                     uint32
	ab, ba                                      []byte
}

var capGroups = []capGroup{
	{name: "g1", wan: "192.0.2.1", lan: "198.18.1.1", peer: "192.0.2.2", lnet: "198.18.1.0/24", rnet: "198.18.2.0/24",
		host: "198.18.1.2", far: "198.18.2.2", out: 0x1101, in: 0x2101},
	{name: "g2", wan: "192.0.2.3", lan: "198.18.3.1", peer: "192.0.2.4", lnet: "198.18.3.0/24", rnet: "198.18.4.0/24",
		host: "198.18.3.2", far: "198.18.4.2", out: 0x1102, in: 0x2102},
}

// capHosts: the LAN host and the far host of each group, and its peer.
var capHosts = [][3]string{{"hA", "hB", "gP1"}, {"hC", "hD", "gP2"}}

func newCapLab(t *testing.T) *capLab {
	t.Helper()
	l := &lab{t: t, prefix: "k" + testlab.Tag(), dir: t.TempDir()}
	c := &capLab{lab: l, cfgs: map[string]string{}, gws: map[string]*gateway{}}
	names := []string{"sw", "n1", "n2", "gP1", "gP2", "hA", "hB", "hC", "hD"}
	ns := map[string]*testlab.Netns{}
	for _, n := range names {
		ns[n] = testlab.NewNetns(t, l.prefix+"-"+n, testlab.NoIPv6|testlab.LoUp)
	}
	t.Cleanup(func() {
		for _, n := range []string{"n1", "n2", "gP1", "gP2"} {
			cleanupPins(l.pinPath(n))
			os.Remove(l.sockPath(n))
		}
	})
	sw := ns["sw"]
	for _, br := range []string{"bw", "bl", "bm"} {
		sw.Bridge(t, br)
	}
	port := func(name, br string) *testlab.End { return &testlab.End{NS: sw, Name: name, Master: br, MTU: 1600} }
	pfx := netip.MustParsePrefix
	for i := 1; i <= 2; i++ {
		n := ns[clNode(i)]
		testlab.Veth(t, &testlab.End{NS: n, Name: "wan0", MAC: clMAC(1, i), MTU: 1600, Addr: pfx(fmt.Sprintf("192.0.2.%d/24", 10+i))},
			port(fmt.Sprintf("w%d", i), "bw"), testlab.TxOff)
		testlab.Veth(t, &testlab.End{NS: n, Name: "lan0", MAC: clMAC(2, i), Addr: pfx(fmt.Sprintf("198.18.1.%d/24", 10+i))},
			port(fmt.Sprintf("l%d", i), "bl"), testlab.TxOff)
		testlab.Veth(t, &testlab.End{NS: n, Name: "mg0", Addr: pfx(fmt.Sprintf("198.51.100.%d/24", 10+i))},
			port(fmt.Sprintf("m%d", i), "bm"), 0)
		n.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		for _, g := range capGroups {
			n.Route(t, "unreachable", g.rnet) // the far sites: fail closed
		}
	}
	for i, g := range capGroups {
		h := capHosts[i]
		gp := ns[h[2]]
		testlab.Veth(t, &testlab.End{NS: gp, Name: "wan0", MTU: 1600, Addr: pfx(g.peer + "/24")}, port(fmt.Sprintf("wp%d", i+1), "bw"), testlab.TxOff)
		testlab.Veth(t, &testlab.End{NS: ns[h[0]], Name: "eth0", Addr: pfx(g.host + "/24")}, port(fmt.Sprintf("la%d", i+1), "bl"), testlab.TxOff)
		farGW := strings.TrimSuffix(g.far, ".2") + ".1"
		testlab.Veth(t, &testlab.End{NS: gp, Name: "lan0", Addr: pfx(farGW + "/24")},
			&testlab.End{NS: ns[h[1]], Name: "eth0", Addr: pfx(g.far + "/24")}, testlab.TxOff)
		gp.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		gp.Route(t, "unreachable", g.lnet)
		ns[h[0]].Route(t, "default", "via", g.lan)
		ns[h[1]].Route(t, "default", "via", farGW)
	}

	key := func() []byte { b := make([]byte, 20); rand.Read(b); return b }
	groups := make([]capGroup, len(capGroups))
	copy(groups, capGroups)
	for i := range groups {
		groups[i].ab, groups[i].ba = key(), key()
	}
	ck := make([]byte, 32)
	rand.Read(ck)
	keyFile := filepath.Join(l.dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(ck)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := func(node string) string {
		return fmt.Sprintf(`# capacity lab %s
interfaces: {lan: lan0, wan: wan0, queues: 1, xdp_mode: auto, cpus: []}
default_action: discard
pin_path: %s
on_stop: detach
control: %s
state_dir: %s
`, node, l.pinPath(node), l.sockPath(node), filepath.Join(l.dir, node+"-state"))
	}
	sa := func(name string, spi uint32, dir, local, remote string, k []byte, src, dst string) string {
		extra := ""
		if dir == "in" {
			extra = " replay_window: 1024,"
		}
		return fmt.Sprintf("  - {name: %s, spi: 0x%x, dir: %s, local: %s, remote: %s, suite: aes128gcm16, key: 0x%s,%s selectors: [{src: %s, dst: %s}]}\n",
			name, spi, dir, local, remote, hex.EncodeToString(k), extra, src, dst)
	}
	var nodeSAs, nodePol, groupsY strings.Builder
	nodeSAs.WriteString("sas:\n")
	nodePol.WriteString("policies:\n")
	for i, g := range groups {
		o, in := fmt.Sprintf("out%d", i+1), fmt.Sprintf("in%d", i+1)
		nodeSAs.WriteString(sa(o, g.out, "out", g.wan, g.peer, g.ab, g.lnet, g.rnet))
		nodeSAs.WriteString(sa(in, g.in, "in", g.wan, g.peer, g.ba, g.rnet, g.lnet))
		fmt.Fprintf(&nodePol, "  - {name: p%d, src: %s, dst: %s, action: protect, sa: %s}\n", i+1, g.lnet, g.rnet, o)
		pref := "{n1: 100, n2: 50}"
		if i == 1 {
			pref = "{n2: 100, n1: 50}"
		}
		fmt.Fprintf(&groupsY, "    - {name: %s, sas: [%s, %s], wan: %s/24, lan: %s/24, nodes: %s}\n", g.name, o, in, g.wan, g.lan, pref)
		peerY := head(capHosts[i][2]) + "sas:\n" + sa("out", g.in, "out", g.peer, g.wan, g.ba, g.rnet, g.lnet) +
			sa("in", g.out, "in", g.peer, g.wan, g.ab, g.lnet, g.rnet) +
			fmt.Sprintf("policies:\n  - {name: v4, src: %s, dst: %s, action: protect, sa: out}\n", g.rnet, g.lnet)
		p := filepath.Join(l.dir, capHosts[i][2]+".yaml")
		if err := os.WriteFile(p, []byte(peerY), 0o600); err != nil {
			t.Fatal(err)
		}
		c.cfgs[capHosts[i][2]] = p
		newKeys(t, p)
	}
	members := `n1: "http://198.51.100.11:2380", n2: "http://198.51.100.12:2380"`
	for i := 1; i <= 2; i++ {
		n := clNode(i)
		y := head(n) + nodeSAs.String() + nodePol.String() + fmt.Sprintf(`cluster:
  name: cap
  node: %s
  key_file: %s
  etcd:
    embedded:
      data_dir: %s
      peer_url: http://198.51.100.%d:2380
      client_url: http://127.0.0.1:2379
      members: {%s}
  groups:
%s`, n, keyFile, filepath.Join(l.dir, n+"-etcd"), 10+i, members, groupsY.String())
		c.cfgs[n] = filepath.Join(l.dir, n+".yaml")
		if err := os.WriteFile(c.cfgs[n], []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// start launches the named daemons at once and waits for their control
// sockets (clusterLab's startNodes on this lab).
func (c *capLab) start(t *testing.T, nodes ...string) {
	t.Helper()
	(&clusterLab{lab: c.lab, cfgs: c.cfgs, gws: c.gws}).startNodes(t, nodes...)
}

// holds: node's WAN interface holds addr.
func (c *capLab) holds(node, addr string) bool {
	out, _ := c.run(node, 5*time.Second, "ip", "-4", "-o", "addr", "show", "dev", "wan0")
	return strings.Contains(out, " "+addr+"/")
}

// udpResult is what iperf3 -u -J reports at its end (the receiver's
// figures, sent back to the client).
type udpResult struct {
	End struct {
		Sum struct {
			Seconds     float64 `json:"seconds"`
			Bytes       float64 `json:"bytes"`
			BPS         float64 `json:"bits_per_second"`
			Packets     float64 `json:"packets"`
			LostPackets float64 `json:"lost_packets"`
			LostPercent float64 `json:"lost_percent"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// delivered is the rate the far host received, Mbit/s.
func (r udpResult) delivered() float64 {
	s := r.End.Sum
	if s.Packets == 0 || s.Seconds == 0 {
		return 0
	}
	return s.BPS * (s.Packets - s.LostPackets) / s.Packets / 1e6
}

// udpLoad runs iperf3 UDP at rate (Mbit/s) for secs seconds from group
// i's LAN host to its far host, the server started before.
func (c *capLab) udpLoad(t *testing.T, i int, mbps, secs int) (udpResult, error) {
	g, h := capGroups[i], capHosts[i]
	srv := c.cmd(context.Background(), h[1], "iperf3", "-s", "-1", "-B", g.far)
	if err := srv.Start(); err != nil {
		return udpResult{}, err
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	var out string
	var err error
	for range 30 {
		time.Sleep(100 * time.Millisecond)
		out, err = c.run(h[0], time.Duration(secs+20)*time.Second, "iperf3", "-c", g.far, "-u", "-b", fmt.Sprintf("%dM", mbps),
			"-l", "1200", "-t", strconv.Itoa(secs), "-J")
		if err == nil || !strings.Contains(out, "unable to connect") {
			break
		}
	}
	var r udpResult
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		return r, fmt.Errorf("iperf3 %s: %v: %v\n%s", g.name, err, jerr, out)
	}
	if r.Error != "" || err != nil {
		return r, fmt.Errorf("iperf3 %s: %v %s", g.name, err, r.Error)
	}
	return r, nil
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// TestClusterTwoGroupsCapacity (CLUSTER_CAP=1; a measurement, not in
// make test): two nodes carry two groups at once, each at the rate one
// node carries one group, measured in the same run. At a fixed offered
// rate (CLUSTER_CAP_MBPS, default 50 Mbit/s of 1,200-byte datagrams, one
// way) it runs, CLUSTER_CAP_ROUNDS times (default 3): g1 alone on n1,
// then g1 on n1 and g2 on n2 together, and reports the delivered rates
// side by side and their ratio to the single-node rate, with the host's
// load average (the 2-core host is shared: it asserts no rate, only that
// each group is carried by its own node and delivers traffic).
func TestClusterTwoGroupsCapacity(t *testing.T) {
	if os.Getenv("CLUSTER_CAP") == "" {
		t.Skip("a capacity measurement: set CLUSTER_CAP=1 (and CLUSTER_CAP_MBPS, CLUSTER_CAP_ROUNDS, CLUSTER_CAP_SECS)")
	}
	needLab(t)
	num := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	mbps, rounds, secs := num("CLUSTER_CAP_MBPS", 50), num("CLUSTER_CAP_ROUNDS", 3), num("CLUSTER_CAP_SECS", 5)
	c := newCapLab(t)
	c.start(t, "n1", "n2", "gP1", "gP2")
	// Each node holds its preferred group, and only it.
	deadline := time.Now().Add(30 * time.Second)
	for !(c.holds("n1", capGroups[0].wan) && c.holds("n2", capGroups[1].wan)) {
		if time.Now().After(deadline) {
			t.Fatalf("n1 holds g1: %v, n2 holds g2: %v\n%s\n%s", c.holds("n1", capGroups[0].wan), c.holds("n2", capGroups[1].wan),
				c.gws["n1"].logText(), c.gws["n2"].logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.holds("n1", capGroups[1].wan) || c.holds("n2", capGroups[0].wan) {
		t.Fatal("a node holds both groups")
	}
	for i, h := range capHosts {
		c.warmUp(t, h[0], capGroups[i].far)
	}
	type row struct {
		alone, g1, g2 float64
		lossA         float64
		loss1, loss2  float64
		loadA, loadB  string
	}
	var rows []row
	for r := range rounds {
		var rw row
		rw.loadA = loadAvg()
		res, err := c.udpLoad(t, 0, mbps, secs)
		if err != nil {
			t.Fatal(err)
		}
		rw.alone, rw.lossA = res.delivered(), res.End.Sum.LostPercent
		rw.loadB = loadAvg()
		var wg sync.WaitGroup
		var both [2]udpResult
		var errs [2]error
		for i := range 2 {
			wg.Add(1)
			go func() { defer wg.Done(); both[i], errs[i] = c.udpLoad(t, i, mbps, secs) }()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		rw.g1, rw.g2 = both[0].delivered(), both[1].delivered()
		rw.loss1, rw.loss2 = both[0].End.Sum.LostPercent, both[1].End.Sum.LostPercent
		rows = append(rows, rw)
		t.Logf("round %d: offered %d Mbit/s per group; g1 alone on n1: %.1f Mbit/s delivered (loss %.2f %%, load %s); together: g1 on n1 %.1f (loss %.2f %%), g2 on n2 %.1f (loss %.2f %%) (load %s); ratios to alone: g1 %.3f, g2 %.3f, sum %.3f",
			r+1, mbps, rw.alone, rw.lossA, rw.loadA, rw.g1, rw.loss1, rw.g2, rw.loss2, rw.loadB, rw.g1/rw.alone, rw.g2/rw.alone, (rw.g1+rw.g2)/rw.alone)
		if rw.g1 == 0 || rw.g2 == 0 || rw.alone == 0 {
			t.Errorf("round %d: a group delivered nothing", r+1)
		}
	}
	// Still each group on its own node.
	if !c.holds("n1", capGroups[0].wan) || !c.holds("n2", capGroups[1].wan) || c.holds("n1", capGroups[1].wan) || c.holds("n2", capGroups[0].wan) {
		t.Error("the groups moved during the measurement")
	}
	var sa, s1, s2 float64
	for _, rw := range rows {
		sa, s1, s2 = sa+rw.alone, s1+rw.g1, s2+rw.g2
	}
	k := float64(len(rows))
	t.Logf("mean over %d rounds at %d Mbit/s offered: alone %.1f Mbit/s; together g1 %.1f + g2 %.1f = %.1f Mbit/s (%.2f x the single-node rate)",
		len(rows), mbps, sa/k, s1/k, s2/k, (s1+s2)/k, (s1+s2)/sa)
	// The nodes' own view: each active for one group, standby for the other.
	for _, n := range []string{"n1", "n2"} {
		out, _ := exec.Command(xdpsecBin, "show", "cluster", "--socket", c.sockPath(n)).CombinedOutput()
		t.Logf("%s: show cluster:\n%s", n, out)
	}
}
