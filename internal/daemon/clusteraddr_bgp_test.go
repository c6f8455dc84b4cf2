package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/internal/bgp"
	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
)

// fakeRoutes records announcements and withdrawals into the same log as
// fakeAddrs, so the order of addresses and routes shows; before, if set,
// runs at each withdrawal (to look at etcd at that moment).
type fakeRoutes struct {
	f      *fakeAddrs
	meds   []uint32
	before func() string
}

func (r *fakeRoutes) announce(rs []bgp.Route) error {
	s := "announce-routes"
	for _, x := range rs {
		s += fmt.Sprintf(" %v via %v", x.Prefix, x.NextHop)
		r.meds = append(r.meds, x.MED)
	}
	return r.f.rec(s)
}

func (r *fakeRoutes) withdraw(ps []netip.Prefix) error {
	s := "withdraw-routes"
	for _, p := range ps {
		s += " " + p.String()
	}
	if r.before != nil {
		s += " (" + r.before() + ")"
	}
	return r.f.rec(s)
}

var bgpNextHops = config.BGPNextHops{LAN: netip.MustParseAddr("198.18.3.11")}

// TestGroupAddrsBGP: a group in address_mode bgp gets its addresses as
// host addresses, then the XDP tables republished, then its host routes
// announced (the wan one next-hop self, the lan one via the configured
// next hop), and no gratuitous ARP; on a loss, by an event or by the gate
// closing alone, the routes are withdrawn before the addresses go; a
// later take announces with a lower MED.
func TestGroupAddrsBGP(t *testing.T) {
	cl := &config.Cluster{Announce: 3, Groups: []config.TunnelGroup{
		{Name: "g1", AddressMode: config.AddressBGP, WAN: netip.MustParsePrefix("203.0.113.1/24"), LAN: netip.MustParsePrefix("198.18.1.1/24")},
		{Name: "g6", AddressMode: config.AddressBGP, WAN: netip.MustParsePrefix("2001:db8:f::1/64")},
		{Name: "l2", WAN: netip.MustParsePrefix("192.0.2.1/24")},
	}}
	a := newGroupAddrs(cl, slog.New(slog.DiscardHandler))
	a.refreshEvery = time.Hour
	var open [3]atomic.Bool
	idx := map[string]int{"g1": 0, "g6": 1, "l2": 2}
	a.owned = func(g string) bool { return open[idx[g]].Load() }
	timers := 0
	a.timer = func(d time.Duration, f func()) *time.Timer { timers++; return time.NewTimer(time.Hour) }
	f := &fakeAddrs{}
	r := &fakeRoutes{f: f}
	wan := &net.Interface{Index: 2, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xaa}}
	lan := &net.Interface{Index: 3, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xbb}}
	a.useRoutes(r, bgpNextHops)
	open[0].Store(true)
	a.set("g1", true)
	a.attach(f, wan, lan)
	defer a.close()
	want := []string{"del 2 192.0.2.1/24", "del 2 2001:db8:f::1/128", // stale ones, sorted
		"add 2 203.0.113.1/32", "add 3 198.18.1.1/32", "republish",
		"announce-routes 203.0.113.1/32 via invalid IP 198.18.1.1/32 via 198.18.3.11", "republish"}
	got := f.take()
	slices.Sort(got[:2])
	if !slices.Equal(got, want) {
		t.Fatalf("attach:\n got %q\nwant %q", got, want)
	}
	if timers != 0 {
		t.Errorf("%d announcements (GARP/NA) scheduled for a bgp group", timers)
	}

	// Lost by an event: routes withdrawn first, synchronously.
	open[0].Store(false)
	a.set("g1", false)
	if got, want := f.take(), []string{"withdraw-routes 203.0.113.1/32 198.18.1.1/32", "del 2 203.0.113.1/32", "del 3 198.18.1.1/32", "republish"}; !slices.Equal(got, want) {
		t.Errorf("lost:\n got %q\nwant %q", got, want)
	}
	// Taken again later: a lower MED than the first take.
	time.Sleep(150 * time.Millisecond)
	open[0].Store(true)
	a.set("g1", true)
	f.take()
	if len(r.meds) != 4 || r.meds[2] >= r.meds[0] {
		t.Errorf("MEDs %v: the later take must announce a lower MED", r.meds)
	}
	// IPv6: a /128, next-hop self.
	open[1].Store(true)
	a.set("g6", true)
	if got, want := f.take(), []string{"add 2 2001:db8:f::1/128", "republish", "announce-routes 2001:db8:f::1/128 via invalid IP"}; !slices.Equal(got, want) {
		t.Errorf("g6 taken:\n got %q\nwant %q", got, want)
	}
	// The L2 group beside them: GARP/NA, no routes.
	open[2].Store(true)
	a.set("l2", true)
	if got, want := f.take(), []string{"add 2 192.0.2.1/24", "republish"}; !slices.Equal(got, want) || timers != 3 {
		t.Errorf("l2 taken: %q, %d announcements", got, timers)
	}
	// g1's gate closes alone (etcd away): the watchdog withdraws, then
	// removes.
	open[0].Store(false)
	if !etcdtest.WaitFor(time.Second, func() bool { return !slices.Contains(a.heldGroups(), "g1") }) {
		t.Fatal("the watchdog kept g1 after its gate closed")
	}
	if got, want := f.take(), []string{"withdraw-routes 203.0.113.1/32 198.18.1.1/32", "del 2 203.0.113.1/32", "del 3 198.18.1.1/32", "republish"}; !slices.Equal(got, want) {
		t.Errorf("fenced:\n got %q\nwant %q", got, want)
	}
}

// TestClusterBGPWithdrawBeforeRelease: on real ownership (etcd), a node
// that lets a bgp group go withdraws its routes while etcd still names it
// the owner: before a move or a release is written.
func TestClusterBGPWithdrawBeforeRelease(t *testing.T) {
	endpoint := startTestEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner := func() string {
		resp, err := cli.Get(ctx, "/xdpsec/t/", clientv3.WithPrefix())
		if err != nil {
			return "etcd: " + err.Error()
		}
		for _, kv := range resp.Kvs {
			if strings.HasSuffix(string(kv.Key), "/owner") {
				v, _, _ := strings.Cut(string(kv.Value), " ")
				return "owner " + v
			}
		}
		return "no owner key"
	}
	plane := func(node string) (*clusterPlane, *fakeAddrs) {
		cfg, sas := clusterNode(t, node, endpoint)
		cfg.Cluster.Groups[0].AddressMode = config.AddressBGP
		cfg.Cluster.Groups[0].WAN = netip.MustParsePrefix("203.0.113.1/32")
		p := newClusterPlane(cfg, sas, slog.New(slog.DiscardHandler))
		f := &fakeAddrs{}
		p.addrs.useRoutes(&fakeRoutes{f: f, before: owner}, config.BGPNextHops{})
		if err := p.start(ctx); err != nil {
			t.Fatal(err)
		}
		p.addrs.attach(f, &net.Interface{Index: 2, HardwareAddr: make(net.HardwareAddr, 6)}, nil)
		return p, f
	}
	pa, fa := plane("a")
	defer pa.close()
	announced := func(f *fakeAddrs) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.ContainsFunc(f.log, func(s string) bool { return strings.HasPrefix(s, "announce-routes") })
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool { return announced(fa) }) {
		t.Fatalf("a never announced g1: %q", fa.take())
	}
	pb, fb := plane("b")
	defer pb.close()
	fa.take()
	// A graceful move a -> b.
	if err := pa.node.Ownership.Move(ctx, "g1", "b"); err != nil {
		t.Fatal(err)
	}
	if got, want := fa.take(), []string{"withdraw-routes 203.0.113.1/32 (owner a)", "del 2 203.0.113.1/32", "republish"}; !slices.Equal(got, want) {
		t.Errorf("a moved g1 away:\n got %q\nwant %q", got, want)
	}
	if !etcdtest.WaitFor(5*time.Second, func() bool { return announced(fb) }) {
		t.Fatalf("b never announced g1: %q", fb.take())
	}
	fb.take()
	// b stops: it releases the group, withdrawing first.
	if err := pb.close(); err != nil {
		t.Fatal(err)
	}
	if got, want := fb.take(), []string{"withdraw-routes 203.0.113.1/32 (owner b)", "del 2 203.0.113.1/32", "republish"}; !slices.Equal(got, want) {
		t.Errorf("b released g1:\n got %q\nwant %q", got, want)
	}
}

// TestGroupAddrsBGPMove: a bgp group lost in a graceful move (its gate
// forwards to the new owner) keeps its routes for moveWithdraw while the
// addresses go at once, then withdraws them; taken back before that, the
// late withdrawal is dropped (it would remove the routes just announced
// again). Lost any other way, the routes go first, at once.
func TestGroupAddrsBGPMove(t *testing.T) {
	cl := &config.Cluster{Groups: []config.TunnelGroup{
		{Name: "g1", AddressMode: config.AddressBGP, WAN: netip.MustParsePrefix("203.0.113.1/24")},
	}}
	a := newGroupAddrs(cl, slog.New(slog.DiscardHandler))
	a.refreshEvery = time.Hour
	var open, fwd atomic.Bool
	a.owned = func(string) bool { return open.Load() }
	a.forwarding = func(string) bool { return fwd.Load() }
	var later []func()
	var delays []time.Duration
	a.timer = func(d time.Duration, f func()) *time.Timer {
		later, delays = append(later, f), append(delays, d)
		return time.NewTimer(time.Hour)
	}
	f := &fakeAddrs{}
	a.useRoutes(&fakeRoutes{f: f}, bgpNextHops)
	wan := &net.Interface{Index: 2, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xaa}}
	lan := &net.Interface{Index: 3, HardwareAddr: net.HardwareAddr{2, 0, 0, 0, 0, 0xbb}}
	open.Store(true)
	a.set("g1", true)
	a.attach(f, wan, lan)
	defer a.close()
	f.take()

	// Moved: the addresses go, the routes stay until the timer.
	open.Store(false)
	fwd.Store(true)
	a.set("g1", false)
	if got, want := f.take(), []string{"del 2 203.0.113.1/32", "republish"}; !slices.Equal(got, want) {
		t.Fatalf("moved:\n got %q\nwant %q", got, want)
	}
	if len(later) != 1 || delays[0] != moveWithdraw || moveWithdraw >= moveForward {
		t.Fatalf("withdrawal scheduled %v (%d timers), want one at %v < forwarding %v", delays, len(later), moveWithdraw, moveForward)
	}
	later[0]()
	if got, want := f.take(), []string{"withdraw-routes 203.0.113.1/32"}; !slices.Equal(got, want) {
		t.Fatalf("after moveWithdraw:\n got %q\nwant %q", got, want)
	}

	// Moved away and taken back before the timer: no withdrawal then.
	fwd.Store(false)
	open.Store(true)
	a.set("g1", true)
	f.take()
	open.Store(false)
	fwd.Store(true)
	a.set("g1", false)
	f.take()
	fwd.Store(false)
	open.Store(true)
	a.set("g1", true)
	f.take()
	later[len(later)-1]()
	if got := f.take(); len(got) != 0 {
		t.Fatalf("a late withdrawal after the group was taken back: %q", got)
	}

	// Lost without a move (fenced, released): withdrawn first, at once.
	open.Store(false)
	a.set("g1", false)
	if got, want := f.take(), []string{"withdraw-routes 203.0.113.1/32", "del 2 203.0.113.1/32", "republish"}; !slices.Equal(got, want) {
		t.Fatalf("lost:\n got %q\nwant %q", got, want)
	}
}
