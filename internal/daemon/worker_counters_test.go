package daemon

import (
	"maps"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/reasm"
	"github.com/xdpsec/xdpsec/sad"
)

// TestWorkerCounterNames: the worker's counters keep the names `xdpsec
// show stats` and the metrics have always had (the list below is the map
// the daemon used to write out by hand), each with its own value.
func TestWorkerCounterNames(t *testing.T) {
	var st fastpath.Stats
	for i := range st.Counts {
		st.Counts[i] = uint64(i + 1)
	}
	st.Reasm = reasm.Stats{Fragments: 101, Reassembled: 102, Malformed: 103, Tiny: 104, Overlap: 105, Late: 106,
		Duplicate: 107, TooBig: 108, Timeout: 109, Evicted: 110, SourceLimit: 111}
	st.Drops[sad.ErrNoFrame], st.Drops[sad.ErrTooBig] = 7, 8
	c, drops := WorkerCounters(st)
	n := func(k fastpath.Counter) uint64 { return st.Counts[k] }
	want := map[string]uint64{
		"polls": n(fastpath.Polls), "rx_packets": n(fastpath.RxPackets), "tx_packets": n(fastpath.TxPackets),
		"encaps": n(fastpath.Encaps), "decaps": n(fastpath.Decaps), "bypassed": n(fastpath.Bypassed),
		"tx_full": n(fastpath.TxFull), "no_frame": n(fastpath.NoFrame), "not_ip": n(fastpath.NotIP),
		"reasm_fragments": 101, "reasm_reassembled": 102,
		"reasm_malformed": 103, "reasm_tiny": 104, "reasm_overlap": 105,
		"reasm_duplicate": 107, "reasm_too_big": 108, "reasm_timeout": 109,
		"reasm_evicted": 110, "reasm_source_limit": 111, "reasm_late": 106,
		"icmp_too_big": n(fastpath.ICMPTooBig), "fragmented": n(fastpath.Fragmented), "fragments": n(fastpath.Fragments),
		"mss_clamped": n(fastpath.MSSClamped),
		"held":        n(fastpath.Held), "released": n(fastpath.Released), "held_drops": n(fastpath.HeldDrops),
		"gate_held": n(fastpath.GateHeld), "gate_released": n(fastpath.GateReleased), "gate_forwarded": n(fastpath.GateForwarded),
	}
	if !maps.Equal(c, want) {
		t.Errorf("counters\n got  %v\n want %v", c, want)
	}
	seen := map[uint64]string{}
	for k, v := range c {
		if prev, dup := seen[v]; dup {
			t.Errorf("%s and %s read the same counter", prev, k)
		}
		seen[v] = k
	}
	if want := map[string]uint64{"no_frame": 7, "too_big": 8}; !maps.Equal(drops, want) {
		t.Errorf("drops %v, want %v", drops, want)
	}
}
