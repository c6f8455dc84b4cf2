package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
)

// fakeFence is fakeAddrs where the XDP programs run: it records the fence
// writes too.
type fakeFence struct{ fakeAddrs }

func (f *fakeFence) fence(b boundAddr, until int64) error {
	return f.rec(fmt.Sprintf("fence %v %d", b.prefix.Addr(), until))
}
func (f *fakeFence) unfence(b boundAddr) error {
	return f.rec(fmt.Sprintf("unfence %v", b.prefix.Addr()))
}

// TestGroupAddrsFence: a group's addresses enter the XDP fence with the
// group's gate deadline before the kernel holds them, the deadline follows
// each renewal (written once per change), and an address the node lets go
// leaves the fence after the kernel dropped it; stale addresses removed at
// attach leave it too.
func TestGroupAddrsFence(t *testing.T) {
	cl := &config.Cluster{Groups: []config.TunnelGroup{
		{Name: "g1", WAN: netip.MustParsePrefix("192.0.2.1/24"), LAN: netip.MustParsePrefix("198.18.1.1/24")},
		{Name: "g2", WAN: netip.MustParsePrefix("192.0.2.9/24")},
	}}
	a := newGroupAddrs(cl, slog.New(slog.DiscardHandler))
	a.refreshEvery = time.Hour
	a.timer = func(time.Duration, func()) *time.Timer { return time.NewTimer(time.Hour) }
	var deadline atomic.Int64
	deadline.Store(1000)
	a.owned = func(g string) bool { return g == "g1" && deadline.Load() != 0 }
	a.deadline = func(g string) int64 {
		if g != "g1" {
			return 0
		}
		return deadline.Load()
	}
	f := &fakeFence{}
	a.set("g1", true)
	a.attach(f, &net.Interface{Index: 2, HardwareAddr: make(net.HardwareAddr, 6)}, &net.Interface{Index: 3, HardwareAddr: make(net.HardwareAddr, 6)})
	defer a.close()
	want := []string{"del 2 192.0.2.9/24", "unfence 192.0.2.9", "fence 192.0.2.1 1000", "fence 198.18.1.1 1000",
		"add 2 192.0.2.1/24", "add 3 198.18.1.1/24", "republish", "republish"}
	if got := f.take(); !slices.Equal(got, want) {
		t.Fatalf("attach: %q, want %q", got, want)
	}
	// A renewal moves the deadline: the watchdog writes it, once.
	deadline.Store(2000)
	if !etcdtest.WaitFor(time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.log) >= 2
	}) {
		t.Fatal("the renewed deadline was not written to the fence")
	}
	time.Sleep(5 * watchdogEvery)
	if got := f.take(); !slices.Equal(got, []string{"fence 192.0.2.1 2000", "fence 198.18.1.1 2000"}) {
		t.Errorf("renewal: %q (want the new deadline once per address)", got)
	}
	// The gate closes: the addresses go, then leave the fence.
	deadline.Store(0)
	if !etcdtest.WaitFor(time.Second, func() bool { return len(a.heldGroups()) == 0 }) {
		t.Fatal("the watchdog kept g1's addresses after its gate closed")
	}
	got := strings.Join(f.take(), ", ")
	if want := "del 2 192.0.2.1/24, del 3 198.18.1.1/24, unfence 192.0.2.1, unfence 198.18.1.1, republish"; got != want {
		t.Errorf("lost: %s, want %s", got, want)
	}
}
