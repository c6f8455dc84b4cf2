package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// TestClusterMove: `xdpsec cluster move` under traffic loses nothing on the
// wire. Three real xdpsec processes carry the lab's group g1 to the xdpsec
// peer while hA and hB exchange numbered UDP datagrams at about 1,000 a
// second each way; the group is moved back and forth six times (n1 -> n2
// -> n1 -> n3 -> n1 -> n2 -> n1). Each move: the old owner points the
// group's gate at the new owner's MACs, stops, publishes its last replay
// tops and writes the mark; the frames that still reach it (the peer's and
// hA's neighbour entries name it until the new owner's gratuitous ARPs
// land) go on to the new owner unopened, which holds them until it has
// taken the group (tops applied, marks resumed) and processes them first.
// The test shows: every datagram delivered exactly once, no (SPI,
// sequence number) sent twice on the WAN (a forwarded frame is the peer's
// own frame relayed, checked to be one), the group's ESP sent by one node
// at a time (the capture's senders switch exactly once per move, to the
// move's target), no plaintext on the WAN; it reports each move's gap
// (the old owner's last ESP to the new owner's first, WAN and LAN) and
// the nodes' forward/hold counters. Then the inbound fence: the peer's
// ESP, captured, is sent again to each standby's MAC (a stale neighbour
// entry, or an attacker on the WAN): no standby decrypts any of it.
func TestClusterMove(t *testing.T) {
	needLab(t)
	c := newClusterLab(t)
	c.startNodes(t, "n1", "n2", "n3", "gP")
	owner := c.waitOwner(t, 20*time.Second)
	t.Logf("group g1 owned by %s", owner)
	c.warmUp(t, "hA", clHostB)
	c.warmUp(t, "hB", clHostA)

	wan := c.capture(t, "sw", "bw", 128)
	lan := c.captureFilter(t, "sw", "bl", 128, "udp", "port", strconv.Itoa(clFlowPort))
	stop := make(chan struct{})
	wait := c.flows(t, time.Millisecond, stop)
	others := []string{}
	for i := 1; i <= clNodes; i++ {
		if clNode(i) != owner {
			others = append(others, clNode(i))
		}
	}
	home := owner
	targets := []string{others[0], home, others[1], home, others[0], home}
	type move struct {
		from, to string
		at       time.Time
		took     time.Duration
	}
	var moves []move
	for _, to := range targets {
		time.Sleep(1500 * time.Millisecond)
		m := move{from: owner, to: to, at: time.Now()}
		// Asked on a node that is neither side, as an operator would.
		asker := c.sockPath(owner)
		for i := 1; i <= clNodes; i++ {
			if n := clNode(i); n != owner && n != to {
				asker = c.sockPath(n)
			}
		}
		res, err := control.Do(asker, control.CommandClusterMove, "g1/"+to)
		m.took = time.Since(m.at)
		if err != nil {
			close(stop)
			wait()
			c.diagnose(t)
			t.Fatalf("cluster move g1 %s: %v (%s)", to, err, res)
		}
		if got := c.waitOwner(t, 5*time.Second); got != to {
			t.Fatalf("after moving g1 to %s the address is on %s", to, got)
		}
		t.Logf("move %d: %s -> %s: the command took %v", len(moves)+1, owner, to, m.took.Round(time.Millisecond))
		moves = append(moves, m)
		owner = to
	}
	time.Sleep(1500 * time.Millisecond)
	// Whole frames of the peer's ESP, for the replay at the standbys below.
	peerESP := c.captureFilter(t, "sw", "bw", 0, "esp", "and", "src", "host", clPeerWAN)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	ab, ba := wait()
	wanPcap, lanPcap := wan.stop(), lan.stop()
	c.replayToStandbys(t, peerESP.stop(), owner)

	// The nodes' counters: forwarded, held, released, refused.
	for i := 1; i <= clNodes; i++ {
		n := clNode(i)
		snap, err := control.Query(c.sockPath(n))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		var fw, held, rel, notOwner uint64
		for _, w := range snap.Workers {
			fw += w.Counters["gate_forwarded"]
			held += w.Counters["gate_held"]
			rel += w.Counters["gate_released"]
			notOwner += w.Drops["not_owner"]
		}
		t.Logf("%s: gate_forwarded %d, gate_held %d, gate_released %d, not_owner drops %d", n, fw, held, rel, notOwner)
	}

	// Delivery: every datagram exactly once.
	lost := false
	for _, d := range []struct {
		name string
		f    *udpFlow
	}{{"hA->hB", ab}, {"hB->hA", ba}} {
		lost = !d.f.exactlyOnce(t, d.name) || lost
	}
	if lost {
		c.diagnose(t)
	}

	// The WAN: ESP only; no (SPI, sequence number) sent twice; the group's
	// ESP from one node at a time.
	noLeak(t, wanPcap)
	nodeOf := map[string]string{}
	for i := 1; i <= clNodes; i++ {
		nodeOf[clMAC(1, i).String()] = clNode(i)
	}
	seen := map[string]bool{}
	dups, forwarded, orphans := 0, 0, 0
	var out [][2]string // group -> peer: time, sender MAC
	for _, ln := range tshark(t, wanPcap, nil, "-Y", "esp", "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src",
		"-e", "ip.src", "-e", "esp.spi", "-e", "esp.sequence", "-e", "eth.dst") {
		f := strings.Split(ln, "\t")
		if len(f) != 6 {
			continue
		}
		k := f[3] + " " + f[4]
		if f[2] == clPeerWAN && nodeOf[f[1]] != "" {
			// A node relaying the peer's frame to the group's new owner:
			// the peer must have sent it, once, before.
			forwarded++
			if !seen[k] {
				orphans++
			}
			continue
		}
		if seen[k] {
			if dups++; dups <= 5 {
				t.Errorf("(SPI, sequence number) sent twice on the WAN: %s", k)
			}
		}
		seen[k] = true
		if f[2] == clGroupWAN {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	if dups > 0 || orphans > 0 {
		t.Errorf("%d (SPI, sequence number) pairs sent more than once, %d forwarded frames the peer never sent", dups, orphans)
	}
	var in [][2]string // delivered to hA: time, sender MAC
	lanFwd := 0
	for _, ln := range tshark(t, lanPcap, nil, "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src", "-e", "ip.dst") {
		f := strings.Split(ln, "\t")
		if len(f) != 3 {
			continue
		}
		if f[2] == clHostA {
			in = append(in, [2]string{f[0], f[1]})
		} else if strings.HasPrefix(f[1], "02:00:00:02:00:") {
			lanFwd++ // hA's datagram relayed by a node to the new owner
		}
	}
	t.Logf("captured: %d ESP frames sent (%d by the group), %d relayed on the WAN, %d relayed on the LAN; %d delivered to hA",
		len(seen), len(out), forwarded, lanFwd, len(in))

	// One sender at a time: the senders switch exactly once per move, to
	// the move's target; the gap is the old owner's last frame to the new
	// owner's first.
	var gaps []string
	for _, d := range []struct {
		name   string
		frames [][2]string
		side   int
	}{{"WAN ESP group->peer", out, 1}, {"LAN group->hA", in, 2}} {
		var runs []string
		var switches []float64
		last := ""
		var lastAt float64
		for _, fr := range d.frames {
			ts, _ := strconv.ParseFloat(fr[0], 64)
			if fr[1] != last {
				if last != "" {
					switches = append(switches, (ts-lastAt)*1000)
				}
				runs = append(runs, fr[1])
				last = fr[1]
			}
			lastAt = ts
		}
		want := []string{}
		for _, n := range append([]string{home}, targets...) {
			i, _ := strconv.Atoi(strings.TrimPrefix(n, "n"))
			want = append(want, clMAC(d.side, i).String())
		}
		if strings.Join(runs, " ") != strings.Join(want, " ") {
			t.Errorf("%s: senders in turn %v, want %v (one node at a time, switching once per move)", d.name, runs, want)
			continue
		}
		var ms []string
		for _, s := range switches {
			ms = append(ms, fmt.Sprintf("%.1f", s))
		}
		gaps = append(gaps, d.name+": "+strings.Join(ms, " "))
	}
	t.Logf("move gaps (ms, old owner's last frame to the new owner's first, per move): %s", strings.Join(gaps, "; "))
}

// exactlyOnce logs a flow's delivery and reports whether every datagram
// sent was delivered exactly once (errors say which were not).
func (f *udpFlow) exactlyOnce(t *testing.T, name string) bool {
	t.Helper()
	gap, lo, hi := f.gap()
	t.Logf("%s: %d sent, %d delivered, %d lost, longest gap %v (between #%d and #%d)", name, f.sent, len(f.got),
		int(f.sent)-len(f.got), gap.Round(time.Millisecond), lo, hi)
	ok := true
	if n := f.dups(); n > 0 {
		t.Errorf("%s: %d datagrams delivered twice", name, n)
		ok = false
	}
	if f.sent < 8000 {
		t.Errorf("%s: only %d datagrams sent", name, f.sent)
		ok = false
	}
	if uint64(len(f.got)) != f.sent {
		ok = false
		var missing []string
		for s := uint64(1); s <= f.sent && len(missing) < 20; s++ {
			if f.got[s] == 0 {
				missing = append(missing, strconv.FormatUint(s, 10))
			}
		}
		t.Errorf("%s: %d of %d datagrams lost (first: %s)", name, int(f.sent)-len(f.got), f.sent, strings.Join(missing, " "))
	}
	return ok
}

// replayToStandbys sends captured ESP of the peer (whole frames in pcap)
// again, to each live node but owner, at its WAN MAC, and checks that no
// standby decrypts any of it: each frame is refused as not_owner, after
// being held for a lease in case the group were being moved there.
func (c *clusterLab) replayToStandbys(t *testing.T, pcap, owner string) {
	t.Helper()
	if why := scapyMissing(); why != "" {
		t.Logf("replay to the standbys skipped: needs /usr/bin/python3 with scapy: %s", why)
		return
	}
	const n = 20
	script := `import sys
from scapy.all import rdpcap, sendp, Ether, IP
pk = [p for p in rdpcap(sys.argv[1]) if IP in p and p[IP].proto == 50 and p[Ether].src == sys.argv[3]][:int(sys.argv[4])]
for p in pk:
    p[Ether].dst = sys.argv[2]
sendp(pk, iface="wan0", verbose=False)
print(len(pk))
`
	peerMAC := c.mac(t, "gP", "wan0")
	counts := func(node string) (decaps, held, notOwner uint64) {
		snap, err := control.Query(c.sockPath(node))
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		for _, w := range snap.Workers {
			decaps += w.Counters["decaps"]
			held += w.Counters["gate_held"]
			notOwner += w.Drops["not_owner"]
		}
		return
	}
	for i := 1; i <= clNodes; i++ {
		node := clNode(i)
		if node == owner {
			continue
		}
		d0, h0, n0 := counts(node)
		out, err := c.run("gP", 30*time.Second, "/usr/bin/python3", "-c", script, pcap, clMAC(1, i).String(), peerMAC, strconv.Itoa(n))
		if err != nil || strings.TrimSpace(out) != strconv.Itoa(n) {
			t.Fatalf("replaying %d captured ESP frames to %s: %v\n%s", n, node, err, out)
		}
		time.Sleep(1500 * time.Millisecond) // past the hold (a lease)
		d1, h1, n1 := counts(node)
		t.Logf("%d captured ESP frames of the peer sent to standby %s: decrypted %d, held %d, refused as not_owner %d", n, node, d1-d0, h1-h0, n1-n0)
		if d1 != d0 || n1-n0 != n {
			t.Errorf("standby %s decrypted %d of %d replayed frames of a group it does not own (not_owner drops %d)", node, d1-d0, n, n1-n0)
		}
	}
}
