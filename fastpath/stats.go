package fastpath

import (
	"sync/atomic"

	"github.com/xdpsec/xdpsec/fastpath/reasm"
	"github.com/xdpsec/xdpsec/sad"
)

// Counter names one of a worker's counters (other than its drops, which
// are counted by sad.Reason). Stats.Counts is indexed by it; counterNames
// has the names `xdpsec show stats` and the metrics use (Stats.Each).
type Counter uint8

const (
	Polls     Counter = iota
	RxPackets         // frames received
	TxPackets         // frames the TX rings accepted
	Encaps            // packets encapsulated (fragments counted once)
	Decaps            // packets decapsulated and sent or held
	Bypassed          // packets forwarded in clear by a BYPASS policy
	// TxFull counts packets the TX ring refused.
	TxFull
	// NoFrame counts frames a port could not give when the worker asked
	// for them (packets crossing memories, fragments); the packets left
	// without one are dropped as sad.ErrNoFrame.
	NoFrame
	// NotIP counts frames that were not IPv4/IPv6 (or not on the VLAN).
	NotIP
	// ICMPTooBig counts ICMP errors sent for oversized packets.
	ICMPTooBig
	// Fragmented counts the packets split before encryption, Fragments
	// the pieces they became.
	Fragmented
	Fragments
	// MSSClamped counts TCP SYNs whose MSS option was lowered.
	MSSClamped
	// Held counts packets held for a neighbour being resolved, Released
	// those sent once it was, HeldDrops those refused because the hold was
	// full (see pending.go; the ones that wait too long are no_route
	// drops).
	Held
	Released
	HeldDrops
	// GateHeld counts packets of a cluster group held until the group is
	// ready here, GateReleased those processed once it was, GateForwarded
	// those sent on to the group's new owner (gatehold.go; the ones that
	// wait too long or find the hold full are not_owner drops).
	GateHeld
	GateReleased
	GateForwarded
	NumCounters
)

// counterNames is the one list of the counters' names.
var counterNames = [NumCounters]string{
	Polls:         "polls",
	RxPackets:     "rx_packets",
	TxPackets:     "tx_packets",
	Encaps:        "encaps",
	Decaps:        "decaps",
	Bypassed:      "bypassed",
	TxFull:        "tx_full",
	NoFrame:       "no_frame",
	NotIP:         "not_ip",
	ICMPTooBig:    "icmp_too_big",
	Fragmented:    "fragmented",
	Fragments:     "fragments",
	MSSClamped:    "mss_clamped",
	Held:          "held",
	Released:      "released",
	HeldDrops:     "held_drops",
	GateHeld:      "gate_held",
	GateReleased:  "gate_released",
	GateForwarded: "gate_forwarded",
}

// Stats are a worker's counters.
type Stats struct {
	Counts [NumCounters]uint64
	Drops  [sad.NumReasons]uint64
	// Reasm are the counters of the reassembly of outer fragments.
	Reasm reasm.Stats
}

// Each calls f with the name and value of every counter but the drops:
// the worker's own, then the reassembly's (prefixed "reasm_"). Drops are
// named by sad.Reason.
func (s *Stats) Each(f func(name string, v uint64)) {
	for c, v := range s.Counts {
		f(counterNames[c], v)
	}
	s.Reasm.Each(func(name string, v uint64) { f("reasm_"+name, v) })
}

// atomicStats is the published copy, added to once per poll.
type atomicStats struct {
	counts [NumCounters]atomic.Uint64
	drops  [sad.NumReasons]atomic.Uint64
}

// flush publishes the poll's counters and zeroes the local copy.
func (w *Worker) flush() {
	l, pub := &w.local, &w.pub
	for i := range l.Counts {
		if v := l.Counts[i]; v != 0 {
			pub.counts[i].Add(v)
			l.Counts[i] = 0
		}
	}
	for i := range l.Drops {
		if v := l.Drops[i]; v != 0 {
			pub.drops[i].Add(v)
			l.Drops[i] = 0
		}
	}
}

// Stats returns the worker's published counters; safe from any goroutine.
func (w *Worker) Stats() Stats {
	var s Stats
	for i := range s.Counts {
		s.Counts[i] = w.pub.counts[i].Load()
	}
	for i := range s.Drops {
		s.Drops[i] = w.pub.drops[i].Load()
	}
	s.Reasm = w.reasm.Stats()
	return s
}
