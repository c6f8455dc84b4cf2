package daemon

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/internal/bgp"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
)

// L3 mode (address_mode bgp, issue 11 item 7): a group's addresses are
// held by its active node as host addresses (/32, /128) on the same
// interfaces as in L2 mode, so its kernel and XDP tables treat them as its
// own, and announced as host routes over BGP instead of by gratuitous
// ARP. The order on a change:
//
//   - taking: addresses added, XDP tables republished, then the routes
//     announced (the routes bring the traffic: last), with a MED lower
//     than any earlier active's (bgp.MED), so a router that still holds a
//     hung node's route prefers the new one at once;
//   - losing (gate closed, release, fence): the routes withdrawn
//     first, synchronously on the ownership loop (OnChange(false) runs
//     this before a release is written to etcd), then the addresses
//     removed;
//   - a graceful move: the addresses go at once, the routes stay for
//     moveWithdraw (the new owner's, with their lower MED, win as soon as
//     it takes), and what the router still sends here meanwhile is
//     forwarded to the new owner unopened (cluster_move.go): no moment
//     without a route, so nothing lost.
//
// A killed process's sessions close with it (its kernel sends the FIN),
// so the routers drop its routes at once; a machine that dies silently
// is dropped at the session's hold time (cluster.bgp.hold_time), and its
// route loses to the new active's lower MED before that.

// routeOps announces and withdraws host routes (bgp.Speaker; a fake in
// tests).
type routeOps interface {
	announce(routes []bgp.Route) error
	withdraw(prefixes []netip.Prefix) error
}

// hostPrefix is a's host route (/32, /128).
func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// routesTimeout bounds one announcement or withdrawal (in-process: GoBGP
// queues the UPDATEs on its sessions).
const routesTimeout = time.Second

// useRoutes gives groupAddrs the speaker for its bgp groups.
func (a *groupAddrs) useRoutes(r routeOps, nextHops config.BGPNextHops) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.routes, a.nextHops = r, nextHops
}

// announceRoutes announces h's addresses (those added) as host routes;
// a.mu is held.
func (a *groupAddrs) announceRoutes(group string, h *heldGroup) {
	if a.routes == nil {
		a.log.Error("cluster: group in address_mode bgp but no BGP speaker: its addresses are not announced", "group", group)
		return
	}
	med := bgp.MED(time.Now())
	var rs []bgp.Route
	for _, b := range h.addrs {
		rs = append(rs, bgp.Route{Prefix: hostPrefix(b.prefix.Addr()), NextHop: a.nextHops.For(b.wan, b.prefix.Addr()), MED: med})
	}
	if err := a.routes.announce(rs); err != nil {
		a.log.Error("cluster: group's routes not announced", "group", group, "err", err)
		return
	}
	a.log.Info("cluster: group's routes announced", "group", group, "routes", len(rs), "med", med)
}

// withdrawRoutes withdraws h's host routes if group is in bgp mode; a.mu
// is held.
func (a *groupAddrs) withdrawRoutes(group string, h *heldGroup) {
	if a.routes == nil || a.groups[group].AddressMode != config.AddressBGP {
		return
	}
	var ps []netip.Prefix
	for _, b := range h.addrs {
		ps = append(ps, hostPrefix(b.prefix.Addr()))
	}
	if err := a.routes.withdraw(ps); err != nil {
		a.log.Error("cluster: group's routes not withdrawn", "group", group, "err", err)
		return
	}
	a.log.Info("cluster: group's routes withdrawn", "group", group, "routes", len(ps))
}

// moveWithdraw is how long a node that handed a bgp group over in a
// graceful move keeps announcing its routes: the new owner's (lower MED)
// win as soon as it takes, and this node forwards what the router still
// sends it (cluster_move.go) for moveForward, longer than this.
const moveWithdraw = moveForward / 2

// withdrawLater withdraws h's routes moveWithdraw from now, unless this
// node holds the group again by then; a.mu is held.
func (a *groupAddrs) withdrawLater(group string, h *heldGroup) {
	if a.routes == nil || a.groups[group].AddressMode != config.AddressBGP {
		return
	}
	a.log.Info("cluster: group moved: its routes stay while this node forwards to the new owner", "group", group, "for", moveWithdraw)
	a.timer(moveWithdraw, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.held[group] != nil {
			return // taken back: its routes were announced again
		}
		a.withdrawRoutes(group, h)
	})
}

// speakerRoutes are routeOps on a bgp.Speaker.
type speakerRoutes struct{ s *bgp.Speaker }

func (r speakerRoutes) announce(routes []bgp.Route) error {
	ctx, cancel := context.WithTimeout(context.Background(), routesTimeout)
	defer cancel()
	return r.s.Announce(ctx, routes)
}

func (r speakerRoutes) withdraw(prefixes []netip.Prefix) error {
	ctx, cancel := context.WithTimeout(context.Background(), routesTimeout)
	defer cancel()
	return r.s.Withdraw(ctx, prefixes)
}

// startBGP starts the BGP speaker when a group's addresses go over BGP.
func (p *clusterPlane) startBGP() {
	if p.cfg.BGP == nil {
		return
	}
	need := false
	for _, g := range p.cfg.Groups {
		need = need || g.AddressMode == config.AddressBGP
	}
	if !need {
		p.log.Warn("cluster: cluster.bgp is set but no group has address_mode bgp: no BGP speaker")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := bgp.Start(ctx, p.cfg.BGP, p.log)
	if err != nil {
		p.log.Error("cluster: BGP speaker not started: the bgp groups' addresses are not announced", "err", err)
		return
	}
	p.bgp.Store(s)
	p.addrs.useRoutes(speakerRoutes{s}, p.cfg.BGP.NextHop)
	p.log.Info("cluster: BGP speaker started", "as", p.cfg.BGP.AS, "router_id", p.cfg.BGP.RouterID, "neighbors", len(p.cfg.BGP.Neighbors))
}

// stopBGP stops the speaker (after the groups' addresses went: their
// routes are withdrawn already).
func (p *clusterPlane) stopBGP() {
	if s := p.bgp.Swap(nil); s != nil {
		s.Close()
	}
}

// bgpStatus adds the speaker's sessions and routes to c (show cluster,
// metrics).
func (p *clusterPlane) bgpStatus(c *control.Cluster) {
	s := p.bgp.Load()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ss, err := s.Sessions(ctx)
	if err != nil {
		return
	}
	for _, x := range ss {
		c.BGP = append(c.BGP, control.ClusterBGPSession{Neighbor: x.Neighbor.String(), AS: x.AS, State: x.State})
	}
	for _, r := range s.Announced() {
		c.BGPRoutes = append(c.BGPRoutes, r.String())
	}
	slices.Sort(c.BGPRoutes)
}
