package sad

import (
	"net/netip"
	"testing"
	"time"
)

func TestPathMTU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		remote string
		steps  []int // reports, in order
		want   int
	}{
		{"192.0.2.2", []int{1400}, 1400},
		{"192.0.2.2", []int{1400, 1450}, 1400}, // never raised by a report
		{"192.0.2.2", []int{1400, 1300}, 1300}, // lowered
		{"192.0.2.2", []int{100}, MinPMTU4},    // floor
		{"2001:db8::2", []int{1000}, MinPMTU6}, // IPv6 floor
		{"2001:db8::2", []int{1400, 1350}, 1350},
		{"192.0.2.2", []int{70000}, 0}, // nonsense ignored
	} {
		sa := &SA{Remote: netip.MustParseAddr(tc.remote)}
		for _, m := range tc.steps {
			sa.LowerPathMTU(m, t0)
		}
		if got := sa.PathMTU(); got != tc.want {
			t.Errorf("%s %v: path MTU %d, want %d", tc.remote, tc.steps, got, tc.want)
		}
	}
	sa := &SA{Remote: netip.MustParseAddr("192.0.2.2")}
	sa.LowerPathMTU(1400, t0)
	if sa.AgePathMTU(t0.Add(PMTUAge - time.Second)) {
		t.Fatal("aged before PMTUAge")
	}
	sa.LowerPathMTU(1400, t0.Add(time.Minute)) // the same report again refreshes it
	if sa.AgePathMTU(t0.Add(PMTUAge)) || sa.PathMTU() != 1400 {
		t.Fatal("a refreshed path MTU aged on the old clock")
	}
	if !sa.AgePathMTU(t0.Add(time.Minute+PMTUAge)) || sa.PathMTU() != 0 {
		t.Fatal("path MTU not forgotten after PMTUAge")
	}
}
