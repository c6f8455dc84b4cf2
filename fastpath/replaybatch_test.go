package fastpath

import (
	"fmt"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
)

// TestPipelineReplayInBatch: copies of packets inside one inbound batch,
// reordered, and the first packet repeated at the batch's end, are refused
// as replays, each original is delivered once, in order of arrival, and
// every frame (LAN frames taken for crossing packets too) returns to its
// pool. A guard for any change to how inbound commits sequence numbers
// (batched commits were tried, see bench/RESULTS.md).
func TestPipelineReplayInBatch(t *testing.T) {
	for _, o := range []pairOpts{{}, {cross: true}, {suite: "aes256-sha512", cross: true}, {v6: true, udp: true}} {
		t.Run(fmt.Sprintf("%s/cross=%v/v6=%v", o.suite, o.cross, o.v6), func(t *testing.T) {
			p := newPair(t, o)
			const n = 40
			for i := range n {
				p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 20+i, uint32(i)))
			}
			for p.aLAN.Pending() > 0 {
				p.a.Poll()
			}
			wire := collect(p.aWAN)
			if len(wire) != n {
				t.Fatalf("A sent %d, want %d", len(wire), n)
			}
			order := []int{0, 1, 2, 0, 3, 5, 4, 5, 6}
			for i := 7; i < n; i++ {
				order = append(order, i)
			}
			order = append(order, 39, 0, 20, 31)
			dups := len(order) - n
			for _, i := range order {
				p.bWAN.Inject(wire[i])
			}
			p.b.Poll()
			if p.bWAN.Pending() != 0 {
				t.Fatalf("%d frames left after one poll: the test wants one batch", p.bWAN.Pending())
			}
			got := collect(p.bLAN)
			if len(got) != n {
				t.Fatalf("delivered %d, want %d; stats %+v", len(got), n, p.b.Stats())
			}
			// Packet i is 20+i bytes: the first copies, in order of arrival.
			var firsts []int
			seen := map[int]bool{}
			for _, i := range order {
				if !seen[i] {
					seen[i] = true
					firsts = append(firsts, i)
				}
			}
			for k := range got {
				if len(got[k])-len(got[0]) != firsts[k]-firsts[0] {
					t.Fatalf("delivered packet %d is %d bytes, want packet %d (%d bytes after the first)",
						k, len(got[k]), firsts[k], firsts[k]-firsts[0])
				}
			}
			s := p.b.Stats()
			if s.Counts[Decaps] != n || s.Drops[sad.ErrReplay] != uint64(dups) {
				t.Fatalf("decaps %d, replays %d; want %d and %d", s.Counts[Decaps], s.Drops[sad.ErrReplay], n, dups)
			}
			if c := p.inB.Counters.Snapshot().Packets; c != n {
				t.Fatalf("SA counted %d packets, want %d", c, n)
			}
			checkNoLeak(t, p)
		})
	}
}
