package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/control"
)

// TestPrintQueues: show stats opens with packets per queue and interface.
func TestPrintQueues(t *testing.T) {
	s := &control.Snapshot{
		Workers: []control.Worker{{ID: 0, Queue: 0, CPU: 1}, {ID: 1, Queue: 1, CPU: -1}},
		XSK: []control.XSK{
			{Interface: "wan0", Queue: 0, Counters: map[string]uint64{"rx_packets": 10}},
			{Interface: "lan0", Queue: 0, Counters: map[string]uint64{"rx_packets": 20}},
			{Interface: "wan0", Queue: 1, Counters: map[string]uint64{"rx_packets": 30}},
			{Interface: "lan0", Queue: 1, Counters: map[string]uint64{"rx_packets": 40}},
		},
	}
	var b bytes.Buffer
	printQueues(&b, s)
	want := "queue  cpu  wan0 rx  lan0 rx\n0      1    10       20\n1      any  30       40\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	printStats(&b, s)
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("show stats does not open with the queue table:\n%s", b.String())
	}
}
