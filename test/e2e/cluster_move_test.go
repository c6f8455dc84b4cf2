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
// the nodes' forward/hold counters.
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
	close(stop)
	ab, ba := wait()
	wanPcap, lanPcap := wan.stop(), lan.stop()

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
