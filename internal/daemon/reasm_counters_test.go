package daemon

import (
	"testing"

	"github.com/xdpsec/xdpsec/fastpath"
)

func TestWorkerCountersReasm(t *testing.T) {
	var st fastpath.Stats
	st.Reasm.Reassembled, st.Reasm.Overlap, st.Reasm.Timeout, st.Reasm.Late = 3, 1, 2, 4
	c, _ := WorkerCounters(st)
	if c["reasm_reassembled"] != 3 || c["reasm_overlap"] != 1 || c["reasm_timeout"] != 2 || c["reasm_late"] != 4 {
		t.Fatalf("counters %v", c)
	}
}
