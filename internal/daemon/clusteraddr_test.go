package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
)

// fakeAddrs records groupAddrs' system calls in order.
type fakeAddrs struct {
	mu  sync.Mutex
	log []string
}

func (f *fakeAddrs) rec(s string) error {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
	return nil
}
func (f *fakeAddrs) add(b boundAddr) error {
	return f.rec(fmt.Sprintf("add %d %v", b.ifindex, b.prefix))
}
func (f *fakeAddrs) del(b boundAddr) error {
	return f.rec(fmt.Sprintf("del %d %v", b.ifindex, b.prefix))
}
func (f *fakeAddrs) announce(bs []boundAddr) error {
	s := "announce"
	for _, b := range bs {
		s += fmt.Sprintf(" %v@%x", b.prefix.Addr(), b.mac[5])
	}
	return f.rec(s)
}
func (f *fakeAddrs) republish() error { return f.rec("republish") }
func (f *fakeAddrs) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

// TestGroupAddrs: a group's addresses are added (then the XDP tables
// republished, then announced at 0, 100 ms, 500 ms) only on the node that
// sends for it and once the interfaces are known; stale ones are removed
// at attach; losing the group cancels the announcements still due and
// removes the addresses, whether etcd says so or the gate closes alone.
func TestGroupAddrs(t *testing.T) {
	cl := &config.Cluster{Announce: 3, Groups: []config.TunnelGroup{
		{Name: "g1", WAN: netip.MustParsePrefix("192.0.2.1/24"), LAN: netip.MustParsePrefix("198.18.1.1/24")},
		{Name: "g2", WAN: netip.MustParsePrefix("2001:db8:f::1/64")},
	}}
	a := newGroupAddrs(cl, slog.New(slog.DiscardHandler))
	a.refreshEvery = time.Hour // TestGroupAddrsRefresh
	var open sync.Map          // group -> *atomic.Bool
	gate := func(g string) *atomic.Bool { v, _ := open.LoadOrStore(g, new(atomic.Bool)); return v.(*atomic.Bool) }
	a.owned = func(g string) bool { return gate(g).Load() }
	type due struct {
		d time.Duration
		f func()
		t *time.Timer
	}
	var timers []due
	var tmu sync.Mutex
	a.timer = func(d time.Duration, f func()) *time.Timer {
		tm := time.NewTimer(time.Hour) // stopped by the code under test; fired by hand here
		tmu.Lock()
		timers = append(timers, due{d, f, tm})
		tmu.Unlock()
		return tm
	}
	fire := func() []time.Duration {
		tmu.Lock()
		ts := timers
		timers = nil
		tmu.Unlock()
		var ds []time.Duration
		for _, x := range ts {
			ds = append(ds, x.d)
			if x.t.Stop() { // not cancelled
				x.f()
			}
		}
		return ds
	}
	f := &fakeAddrs{}
	wan := &net.Interface{Index: 2, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xaa}}
	lan := &net.Interface{Index: 3, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xbb}}

	gate("g1").Store(true)
	a.set("g1", true) // before attach: remembered only
	a.attach(f, wan, lan)
	defer a.close()
	if got, want := f.take(), []string{"del 2 2001:db8:f::1/64", "add 2 192.0.2.1/24", "add 3 198.18.1.1/24", "republish", "republish"}; !slices.Equal(got, want) {
		t.Fatalf("attach: %q, want %q", got, want)
	}
	if ds := fire(); !slices.Equal(ds, []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond}) {
		t.Errorf("announcement offsets %v", ds)
	}
	if got := f.take(); len(got) != 3 || got[0] != "announce 192.0.2.1@aa 198.18.1.1@bb" {
		t.Errorf("announcements %q", got)
	}

	// g2 taken without its gate open (a stale event): nothing.
	a.set("g2", true)
	if got := f.take(); len(got) != 0 {
		t.Errorf("a group whose gate is closed got its addresses: %q", got)
	}
	gate("g2").Store(true)
	a.set("g2", true)
	if got := f.take(); !slices.Equal(got, []string{"add 2 2001:db8:f::1/64", "republish"}) {
		t.Errorf("g2 taken: %q", got)
	}
	// g2 lost before its announcements are due: none is sent.
	gate("g2").Store(false)
	a.set("g2", false)
	fire()
	if got := f.take(); !slices.Equal(got, []string{"del 2 2001:db8:f::1/64", "republish"}) {
		t.Errorf("g2 lost: %q (announcements must be cancelled)", got)
	}
	// g1's gate closes with no event: the watchdog removes its addresses.
	gate("g1").Store(false)
	if !etcdtest.WaitFor(time.Second, func() bool { return len(a.heldGroups()) == 0 }) {
		t.Fatal("the watchdog kept g1's addresses after its gate closed")
	}
	if got := f.take(); !slices.Equal(got, []string{"del 2 192.0.2.1/24", "del 3 198.18.1.1/24", "republish"}) {
		t.Errorf("g1 fenced: %q", got)
	}
	// close removes what is held.
	gate("g1").Store(true)
	a.set("g1", true)
	fire()
	f.take()
	a.close()
	if got := f.take(); !slices.Equal(got, []string{"del 2 192.0.2.1/24", "del 3 198.18.1.1/24", "republish"}) {
		t.Errorf("close: %q", got)
	}
}

func (a *groupAddrs) heldGroups() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gs []string
	for g := range a.held {
		gs = append(gs, g)
	}
	return gs
}

func TestAnnounceTimes(t *testing.T) {
	ms := time.Millisecond
	for n, want := range map[int][]time.Duration{0: nil, 1: {0}, 3: {0, 100 * ms, 500 * ms}, 5: {0, 100 * ms, 500 * ms, 1500 * ms, 2500 * ms}} {
		if got := announceTimes(n); !slices.Equal(got, want) {
			t.Errorf("announceTimes(%d) = %v, want %v", n, got, want)
		}
	}
}

// TestGroupAddrsRefresh: a held address is added again (its lifetime
// renewed) every refreshEvery, and no longer once the group is lost.
func TestGroupAddrsRefresh(t *testing.T) {
	cl := &config.Cluster{Groups: []config.TunnelGroup{{Name: "g1", WAN: netip.MustParsePrefix("192.0.2.1/24")}}}
	a := newGroupAddrs(cl, slog.New(slog.DiscardHandler))
	a.refreshEvery = 50 * time.Millisecond
	var open atomic.Bool
	open.Store(true)
	a.owned = func(string) bool { return open.Load() }
	f := &fakeAddrs{}
	a.set("g1", true)
	a.attach(f, &net.Interface{Index: 2, HardwareAddr: make(net.HardwareAddr, 6)}, nil)
	defer a.close()
	time.Sleep(300 * time.Millisecond)
	open.Store(false)
	time.Sleep(100 * time.Millisecond)
	got := f.take()
	adds := 0
	for _, s := range got {
		if s == "add 2 192.0.2.1/24" {
			adds++
		}
	}
	if adds < 3 || got[len(got)-2] != "del 2 192.0.2.1/24" {
		t.Errorf("refreshes: %q (want the add renewed every 50 ms, then the del)", got)
	}
}
