package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// rewriteConfig replaces old with new in the configuration file path.
func rewriteConfig(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startFails runs the daemon in node with cfg and expects it to refuse to
// start; it returns what it printed.
func (l *lab) startFails(t *testing.T, node, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := l.cmd(ctx, node, xdpsecBin, "run", "-c", cfg).CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("xdpsec in %s started (or hung: %v) where it must refuse\n%s", node, ctx.Err(), out)
	}
	return string(out)
}

// queueRX is the rx_packets of each queue of an interface, from show stats.
func queueRX(t *testing.T, sock, ifc string) map[int]uint64 {
	t.Helper()
	s, err := control.Query(sock)
	if err != nil {
		t.Fatal(err)
	}
	rx := map[int]uint64{}
	for _, x := range s.XSK {
		if x.Interface == ifc {
			rx[x.Queue] = x.Counters["rx_packets"]
		}
	}
	return rx
}

// TestQueuesFromNIC: on veths with four queues, the default configuration
// (queues: auto, here with cpus: auto) serves all four with a worker each,
// flows spread over them, and show stats reports the spread; an explicit
// queues: 1 refuses to start naming 4 and 1; rss_esp_spi: true is logged
// as unsupported by veth and the gateway runs; zerocopy: on refuses on veth
// (copy mode only) while auto falls back with one log line;
// set_channels: true makes the NIC fit queues: 2, and a later ethtool -L
// back to 4 is logged, as is the traffic on the queues without a socket.
func TestQueuesFromNIC(t *testing.T) {
	needLab(t)
	l := newLabQueues(t, "", 4)
	a, b, _ := l.configs(t, tunnelOpts{queues: 4})
	const explicit = "queues: 4, xdp_mode: auto, cpus: []"
	for _, f := range []string{a, b} {
		rewriteConfig(t, f, explicit, "xdp_mode: auto, cpus: auto")
	}

	one := strings.Replace(a, "gw-a", "gw-a-one", 1)
	copyFile(t, a, one)
	rewriteConfig(t, one, "xdp_mode: auto, cpus: auto", "queues: 1, xdp_mode: auto")
	out := l.startFails(t, "gA", one)
	if !strings.Contains(out, "queues: 1") || !strings.Contains(out, "has 4 RX queues") {
		t.Errorf("queues: 1 on a 4-queue NIC: the refusal does not name both counts:\n%s", out)
	}
	// Refused before anything was attached.
	if att := l.xdpAttached(t, "gA"); len(att) > 0 {
		t.Errorf("after the refusal, gA has XDP attached on %v", att)
	}

	zc := strings.Replace(a, "gw-a", "gw-a-zc", 1)
	copyFile(t, a, zc)
	rewriteConfig(t, zc, "cpus: auto", "cpus: auto, zerocopy: on")
	if out := l.startFails(t, "gA", zc); !strings.Contains(out, "zerocopy: on") {
		t.Errorf("zerocopy: on on veth: the refusal does not say why:\n%s", out)
	}

	// rss_esp_spi on veth, which cannot choose its hash fields: one line
	// saying so, and the gateway runs.
	// Busy polling is passed to the sockets; the lab reserves no
	// hugepages, so the UMEMs are on normal pages, which one line says.
	rewriteConfig(t, a, "cpus: auto", "cpus: auto, rss_esp_spi: true, busy_poll: 50, prefer_busy_poll: true, busy_poll_budget: 64")
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	if n := strings.Count(gA.logText(), "rss_esp_spi: the driver cannot hash ESP on the SPI"); n != 1 {
		t.Errorf("rss_esp_spi on veth: %d lines saying the driver cannot; want 1\n%s", n, gA.logText())
	}
	if n := strings.Count(gA.logText(), "UMEM on normal pages"); n != 1 {
		t.Errorf("%d lines on the UMEMs' pages; want 1\n%s", n, gA.logText())
	}
	l.warmUp(t, "hA", hostB4)
	tcp := l.iperf(t, hostB4, "-t", "2", "-P", "16", "-b", "20M")
	if tcp.End.SumReceived.Bytes == 0 {
		t.Error("iperf3 over four queues: nothing received")
	}
	for _, g := range []*gateway{gA, gB} {
		s, err := control.Query(l.sockPath(g.node))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Workers) != 4 || len(s.XSK) != 8 {
			t.Fatalf("%s: %d workers, %d sockets; want 4 and 8", g.node, len(s.Workers), len(s.XSK))
		}
		for _, w := range s.Workers {
			if w.CPU < 0 {
				t.Errorf("%s: cpus: auto left worker %d unpinned", g.node, w.ID)
			}
		}
		if n := strings.Count(g.logText(), "zero-copy unavailable"); n != 2 {
			t.Errorf("%s: %d zero-copy fallback lines; want one per interface (2)\n%s", g.node, n, g.logText())
		}
		if out, err := exec.Command(xdpsecBin, "show", "stats", "--socket", l.sockPath(g.node)).Output(); err == nil {
			t.Logf("%s show stats:\n%s", g.node, strings.SplitN(string(out), "worker", 2)[0])
		}
	}
	// The hosts' flows spread over the LAN queues, and gwA's WAN socket q
	// sends on queue q, which the lab's router keeps to gwB's queue q.
	for _, c := range []struct {
		g   *gateway
		ifc string
	}{{gA, "lan0"}, {gB, "wan0"}, {gB, "lan0"}} {
		rx := queueRX(t, l.sockPath(c.g.node), c.ifc)
		busy := 0
		for _, n := range rx {
			if n > 0 {
				busy++
			}
		}
		t.Logf("%s %s rx per queue: %v", c.g.node, c.ifc, rx)
		if busy < 2 {
			t.Errorf("%s %s: traffic on %d of 4 queues: %v; want a spread", c.g.node, c.ifc, busy, rx)
		}
	}
	l.stopClean(t, gA)

	// set_channels: queues: 2 sets gwA's veths to two RX queues.
	two := strings.Replace(a, "gw-a", "gw-a-two", 1)
	copyFile(t, a, two)
	rewriteConfig(t, two, "xdp_mode: auto, cpus: auto", "queues: 2, set_channels: true, xdp_mode: auto")
	gA = l.start(t, "gA", two)
	if s, err := control.Query(l.sockPath("gA")); err != nil || len(s.Workers) != 2 {
		t.Fatalf("set_channels with queues: 2: %v, %d workers", err, len(s.Workers))
	}
	if out, _ := l.run("gA", 5*time.Second, "ethtool", "-l", "lan0"); !strings.Contains(strings.SplitN(out, "Current", 2)[1], "RX:\t\t2") {
		t.Errorf("set_channels: lan0 not at 2 RX queues:\n%s", out)
	}
	// Someone gives lan0 its four queues back: logged, and the flows that
	// land on queues 2 and 3 are counted as xsk_missing and logged.
	if out, err := l.run("gA", 5*time.Second, "ethtool", "-L", "lan0", "rx", "4"); err != nil {
		t.Fatalf("ethtool -L lan0 rx 4: %v\n%s", err, out)
	}
	l.iperf(t, hostB4, "-t", "1", "-P", "16", "-b", "5M")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !(strings.Contains(gA.logText(), "RX queue count changed") &&
		strings.Contains(gA.logText(), "no AF_XDP socket")) {
		time.Sleep(200 * time.Millisecond)
	}
	log := gA.logText()
	if !strings.Contains(log, "RX queue count changed") || !strings.Contains(log, "no AF_XDP socket (xsk_missing)") {
		t.Errorf("the channel change and the unserved traffic were not logged:\n%s", log)
	}
	if n := strings.Count(log, "no AF_XDP socket (xsk_missing)"); n != 1 {
		t.Errorf("%d xsk_missing lines within seconds; want 1 (once a minute)", n)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
