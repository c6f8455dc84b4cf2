package daemon

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/nic"
	"github.com/xdpsec/xdpsec/sad"
)

// groupAddrs moves the tunnel groups' addresses with their ownership (L2
// mode, issue 11 item 7): the node that sends for a group holds its wan
// address on the WAN interface and its lan address on the LAN interface,
// and announces them (gratuitous ARP, unsolicited Neighbor Advertisement)
// so that the peers' and the LAN hosts' neighbour caches follow at once;
// every other node holds neither, so its kernel answers no ARP or
// Neighbor Solicitation for them. The order on a change:
//
//   - taking: the group's SAs are resumed (replay tops applied, sequence
//     marks raised) first, then the addresses are added, the XDP tables
//     republished (the gateway's own addresses are BYPASS in the LAN mirror
//     and "host" in the inbound SPD), then announced: at once, then 100 ms
//     and 500 ms later, then once a second (cluster.announce times in all);
//   - losing: the gate has stopped sending already (it closes by itself at
//     the lease's deadline); the pending announcements are cancelled, then
//     the addresses removed and the tables republished. A watchdog removes
//     them too when the gate closes with no word from etcd (an etcd outage:
//     the node stops at its deadline, fence_margin before anyone may take
//     the group, and lets the addresses go within watchdogEvery of it).
//
// The addresses carry a lifetime (addrLifetime) that the watchdog renews
// every addrRefresh while the node holds them: a node whose process dies
// (kill -9, a crash) while its kernel lives on would otherwise keep them,
// and its kernel would go on answering ARP for them next to the new
// owner; the kernel drops them when the lifetime runs out. At attach,
// addresses of groups this node does not send for are removed: a node
// killed while it held a group may have left them.
//
// The lifetime is seconds (the kernel's unit, and its expiry check runs up
// to a second late), far longer than a lease. The XDP fence closes the
// rest (bpf.Objects.Fence): while a group's addresses are held the
// watchdog keeps the group's gate deadline in the pinned fence map, so a
// dead daemon's kernel stops answering ARP requests and Neighbor
// Solicitations for them at that deadline, which is fence_margin before
// any other node may take the group.
type groupAddrs struct {
	log    *slog.Logger
	groups map[string]config.TunnelGroup
	times  []time.Duration // announcement offsets
	// owned says whether this node may send for the group now (its gate);
	// own is the ownership it asks by default.
	owned func(group string) bool
	// deadline is the group's gate deadline (cluster.Now(); 0: closed).
	deadline func(group string) int64
	// forwarding says whether the group's frames that reach this node go
	// on to a new owner now (a graceful move, cluster_move.go).
	forwarding func(group string) bool
	own        atomic.Pointer[cluster.Ownership]

	mu    sync.Mutex
	ops   addrOps // nil until attach: the interfaces are not known yet
	want  map[string]bool
	held  map[string]*heldGroup
	bound map[string][]boundAddr
	stop  chan struct{}
	done  chan struct{}
	timer func(d time.Duration, f func()) *time.Timer
	// refreshEvery is addrRefresh (longer in tests).
	refreshEvery time.Duration
	// routes announces the groups in address_mode bgp (clusteraddr_bgp.go)
	// with nextHops.
	routes   routeOps
	nextHops config.BGPNextHops
}

type heldGroup struct {
	addrs  []boundAddr
	timers []*time.Timer
	// fenced is the deadline last written to the fence (0: none yet).
	fenced int64
}

// boundAddr is a group address on the interface it goes on.
type boundAddr struct {
	ifindex int
	mac     [6]byte
	prefix  netip.Prefix
	wan     bool // the group's wan address (false: lan)
}

// addrOps are the system calls groupAddrs makes (a fake in tests).
type addrOps interface {
	add(a boundAddr) error
	del(a boundAddr) error
	announce(a []boundAddr) error
	// republish makes the XDP tables see the interfaces' addresses.
	republish() error
}

// addrFence is what addrOps also do where the XDP programs run: keep a
// held address's deadline (cluster.Now()) in the fence, and take an
// address out of it.
type addrFence interface {
	fence(a boundAddr, until int64) error
	unfence(a boundAddr) error
}

// watchdogEvery is how often held groups' gates are checked.
const watchdogEvery = 20 * time.Millisecond

// addrLifetime is the lifetime a group's address is added with (the
// kernel's granularity is a second, its expiry check up to a second late);
// addrRefresh how often a holder adds it again.
const (
	addrLifetime = 2 * time.Second
	addrRefresh  = 500 * time.Millisecond
)

// announceTimes are the offsets of n announcements: 0, 100 ms, 500 ms,
// then one a second.
func announceTimes(n int) []time.Duration {
	var ts []time.Duration
	for i := range n {
		switch i {
		case 0:
			ts = append(ts, 0)
		case 1:
			ts = append(ts, 100*time.Millisecond)
		case 2:
			ts = append(ts, 500*time.Millisecond)
		default:
			ts = append(ts, time.Duration(i-2)*time.Second+500*time.Millisecond)
		}
	}
	return ts
}

func newGroupAddrs(cl *config.Cluster, log *slog.Logger) *groupAddrs {
	a := &groupAddrs{log: log, groups: map[string]config.TunnelGroup{}, times: announceTimes(cl.Announce),
		want: map[string]bool{}, held: map[string]*heldGroup{}, timer: time.AfterFunc, refreshEvery: addrRefresh}
	a.owned = func(group string) bool {
		o := a.own.Load()
		if o == nil {
			return false
		}
		g := o.Group(group)
		return g != nil && g.MaySend(cluster.Now())
	}
	a.deadline = func(group string) int64 {
		o := a.own.Load()
		if o == nil {
			return 0
		}
		if g := o.Group(group); g != nil {
			return g.Deadline()
		}
		return 0
	}
	a.forwarding = func(group string) bool {
		o := a.own.Load()
		if o == nil {
			return false
		}
		g := o.Group(group)
		return g != nil && g.Gate().Forwarding(sad.Now()) != nil
	}
	for _, g := range cl.Groups {
		a.groups[g.Name] = g
	}
	return a
}

// bind is where group g's addresses go: wan on the WAN interface, lan on
// the LAN one (the same interface in one-arm mode).
func bind(g config.TunnelGroup, wan, lan *net.Interface) []boundAddr {
	var out []boundAddr
	for _, p := range []struct {
		p   netip.Prefix
		ifc *net.Interface
	}{{g.WAN, wan}, {g.LAN, lan}} {
		if !p.p.IsValid() || p.ifc == nil {
			continue
		}
		b := boundAddr{ifindex: p.ifc.Index, prefix: p.p, wan: p.p == g.WAN}
		if g.AddressMode == config.AddressBGP {
			b.prefix = hostPrefix(p.p.Addr()) // routed to this node: no subnet
		}
		copy(b.mac[:], p.ifc.HardwareAddr)
		out = append(out, b)
	}
	return out
}

// set records whether this node sends for group and, once attached, moves
// the addresses to match. It returns quickly: it may run on a group's
// ownership loop.
func (a *groupAddrs) set(group string, sending bool) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want[group] = sending
	if a.ops != nil {
		a.apply(group)
	}
}

// attach gives groupAddrs the interfaces: stale group addresses go, and
// the groups this node sends for get theirs. The workers run: the
// addresses bring traffic.
func (a *groupAddrs) attach(ops addrOps, wan, lan *net.Interface) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, g := range a.groups {
		if a.want[name] {
			continue
		}
		for _, b := range bind(g, wan, lan) {
			if err := ops.del(b); err != nil {
				a.log.Warn("cluster: a group's address left from before not removed", "group", name, "address", b.prefix, "err", err)
			}
			if f, ok := ops.(addrFence); ok {
				if err := f.unfence(b); err != nil {
					a.log.Warn("cluster: a group's address not taken out of the xdp fence", "group", name, "address", b.prefix, "err", err)
				}
			}
		}
	}
	a.ops = ops
	binds := map[string][]boundAddr{}
	for name, g := range a.groups {
		binds[name] = bind(g, wan, lan)
	}
	a.bound = binds
	for name := range a.groups {
		a.apply(name)
	}
	if err := ops.republish(); err != nil {
		a.log.Warn("cluster: xdp tables not republished", "err", err)
	}
	a.stop, a.done = make(chan struct{}), make(chan struct{})
	go a.watchdog(a.stop, a.done)
}

// apply moves group's addresses to match want; a.mu is held.
func (a *groupAddrs) apply(group string) {
	h := a.held[group]
	switch want := a.want[group] && a.owned(group); {
	case want && h == nil:
		h = &heldGroup{addrs: a.bound[group]}
		a.fence(group, h) // before the kernel holds them
		var added []boundAddr
		for _, b := range h.addrs {
			if err := a.ops.add(b); err != nil {
				a.log.Error("cluster: group's address not added", "group", group, "address", b.prefix, "err", err)
				continue
			}
			added = append(added, b)
		}
		h.addrs = added
		a.held[group] = h
		if err := a.ops.republish(); err != nil {
			a.log.Warn("cluster: xdp tables not republished", "group", group, "err", err)
		}
		if a.groups[group].AddressMode == config.AddressBGP {
			a.announceRoutes(group, h) // routes, no GARP/NA
		} else {
			for _, d := range a.times {
				h.timers = append(h.timers, a.timer(d, func() { a.announce(group, h) }))
			}
		}
		a.log.Info("cluster: group's addresses added", "group", group, "addresses", len(added), "announcements", len(a.times))
	case !want && h != nil:
		for _, tm := range h.timers {
			tm.Stop()
		}
		if a.forwarding != nil && a.forwarding(group) {
			// A graceful move: this node forwards what still reaches it to
			// the new owner, which announces with a lower MED as it takes;
			// withdrawn at once, the router had no route until then.
			a.withdrawLater(group, h)
		} else {
			a.withdrawRoutes(group, h) // the routes go first: no traffic to a node losing the address
		}
		delete(a.held, group)
		for _, b := range h.addrs {
			if err := a.ops.del(b); err != nil {
				a.log.Error("cluster: group's address not removed", "group", group, "address", b.prefix, "err", err)
			}
		}
		a.unfence(group, a.bound[group])
		if err := a.ops.republish(); err != nil {
			a.log.Warn("cluster: xdp tables not republished", "group", group, "err", err)
		}
		a.log.Info("cluster: group's addresses removed", "group", group)
	}
}

// announce sends one round of h's announcements if h still holds them.
func (a *groupAddrs) announce(group string, h *heldGroup) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.held[group] != h || !a.owned(group) {
		return
	}
	if err := a.ops.announce(h.addrs); err != nil {
		a.log.Warn("cluster: group's addresses not announced", "group", group, "err", err)
	}
}

// watchdog lets go of the addresses of groups whose gate closed.
func (a *groupAddrs) watchdog(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(watchdogEvery)
	defer t.Stop()
	refreshed := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			a.mu.Lock()
			refresh := now.Sub(refreshed) >= a.refreshEvery
			for g, h := range a.held {
				if !a.owned(g) {
					a.apply(g)
					continue
				}
				a.fence(g, h)
				if refresh {
					for _, b := range h.addrs {
						if err := a.ops.add(b); err != nil {
							a.log.Warn("cluster: group's address not renewed", "group", g, "address", b.prefix, "err", err)
						}
					}
				}
			}
			if refresh {
				refreshed = now
			}
			a.mu.Unlock()
		}
	}
}

// fence writes the group's gate deadline for its addresses to the XDP
// fence if it changed (a renewal); a.mu is held. The written deadline
// lags the gate's by a watchdog period at most: never later than it.
func (a *groupAddrs) fence(group string, h *heldGroup) {
	f, ok := a.ops.(addrFence)
	d := a.deadline(group)
	if !ok || d == 0 || d == h.fenced {
		return
	}
	for _, b := range a.bound[group] {
		if err := f.fence(b, d); err != nil {
			a.log.Warn("cluster: group's address deadline not written to the xdp fence", "group", group, "address", b.prefix, "err", err)
			return
		}
	}
	h.fenced = d
}

// unfence takes addresses the kernel no longer holds out of the fence.
func (a *groupAddrs) unfence(group string, bs []boundAddr) {
	f, ok := a.ops.(addrFence)
	if !ok {
		return
	}
	for _, b := range bs {
		if err := f.unfence(b); err != nil {
			a.log.Warn("cluster: group's address not taken out of the xdp fence", "group", group, "address", b.prefix, "err", err)
		}
	}
}

// close removes every address this node holds.
func (a *groupAddrs) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	stop, done := a.stop, a.done
	a.stop = nil
	for g := range a.want {
		a.want[g] = false
	}
	if a.ops != nil {
		for g := range a.held {
			a.apply(g)
		}
	}
	a.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// sysAddrs are the real system calls, in the daemon's namespace.
type sysAddrs struct{ d *Daemon }

func (s sysAddrs) add(b boundAddr) error { return nic.AddAddr(b.ifindex, b.prefix, addrLifetime) }
func (s sysAddrs) del(b boundAddr) error { return nic.DelAddr(b.ifindex, b.prefix) }
func (s sysAddrs) announce(bs []boundAddr) error {
	var err error
	for _, b := range bs {
		if e := nic.Announce(b.ifindex, b.mac, []netip.Addr{b.prefix.Addr()}); e != nil {
			err = e
		}
	}
	return err
}
func (s sysAddrs) republish() error { return s.d.store.Resync() }

// fence writes until (cluster.Now()) on the XDP programs' clock to every
// object set's fence (both programs see every frame of their interface).
func (s sysAddrs) fence(b boundAddr, until int64) error {
	mono := bpf.MonotonicNow() + (until - cluster.Now())
	var err error
	for _, set := range s.d.objs {
		if e := set.o.Fence(b.prefix.Addr(), mono); e != nil {
			err = e
		}
	}
	return err
}

func (s sysAddrs) unfence(b boundAddr) error {
	var err error
	for _, set := range s.d.objs {
		if e := set.o.Unfence(b.prefix.Addr()); e != nil {
			err = e
		}
	}
	return err
}

// attachClusterAddrs lets the groups' addresses follow their ownership
// from now on (the workers run).
func (d *Daemon) attachClusterAddrs() {
	if d.cluster == nil {
		return
	}
	if d.cfg.Trunk() {
		d.log.Warn("cluster: in trunk mode the groups' addresses go on the trunk's interface untagged; put them on VLAN interfaces yourself")
	}
	d.cluster.startBGP()
	d.cluster.addrs.attach(sysAddrs{d}, d.wanIf, d.lanIf)
}
