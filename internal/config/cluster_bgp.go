package config

import (
	"fmt"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v3"
)

// How a tunnel group's addresses reach the network (cluster.address_mode,
// a group's address_mode).
const (
	// AddressL2: the active node holds the group's addresses on its
	// interfaces and announces them by gratuitous ARP / unsolicited
	// Neighbor Advertisement (one L2 segment per side).
	AddressL2 = "l2"
	// AddressBGP: the active node holds them as /32 or /128 and announces
	// them as routes over BGP (cluster.bgp) to the fabric's routers.
	AddressBGP = "bgp"
)

// BGP defaults (docs/cluster.md says why).
const (
	// DefaultBGPHoldTime is a session's hold time. A node whose process
	// dies on a live machine closes its TCP sessions at once (the router
	// withdraws its routes in milliseconds); the hold time only bounds a
	// machine or link that dies silently. 3 s is RFC 4271's least
	// non-zero value; the new active's route replaces a stale one at once
	// anyway (a lower MED), so the hold time is not the takeover time.
	DefaultBGPHoldTime = 3 * time.Second
	// DefaultBGPConnectRetry is how often an idle session is retried.
	DefaultBGPConnectRetry = time.Second
)

// BGP is cluster.bgp: this node's BGP speaker, which announces the groups
// it is active for (address_mode bgp) as host routes.
type BGP struct {
	Line int
	// AS is this node's autonomous system (as), RouterID its BGP
	// identifier (router_id, an IPv4 address).
	AS       uint32
	RouterID netip.Addr
	// HoldTime is the sessions' default hold time (hold_time; 3s to 240s,
	// RFC 4271 §4.2); keepalives go every third of it.
	HoldTime time.Duration
	// NextHop are the next hops the routes carry, by side and family
	// (next_hop: {wan, lan, wan6, lan6}); an unset one is the session's own
	// address ("next-hop self").
	NextHop BGPNextHops
	// Neighbors are the routers this node peers with (eBGP or iBGP).
	Neighbors []BGPNeighbor
}

// BGPNextHops are the next hops of the routes for a group's WAN and LAN
// addresses, per family; invalid: the session's own address.
type BGPNextHops struct {
	WAN, LAN, WAN6, LAN6 netip.Addr
}

// For is the next hop configured for a group address on side wan (false:
// lan); invalid: the session's own address.
func (h BGPNextHops) For(wan bool, a netip.Addr) netip.Addr {
	switch {
	case wan && a.Is4():
		return h.WAN
	case wan:
		return h.WAN6
	case a.Is4():
		return h.LAN
	default:
		return h.LAN6
	}
}

// BGPNeighbor is one BGP peer.
type BGPNeighbor struct {
	Line    int
	Address netip.Addr
	AS      uint32
	// Password is the TCP MD5 signature key (RFC 2385; empty: none).
	Password string
	// HoldTime overrides BGP.HoldTime for this session.
	HoldTime time.Duration
	// Port is the neighbour's BGP port (179).
	Port uint16
}

func (d *decoder) bgpHoldTime(v *yaml.Node, f string) time.Duration {
	h := d.duration(v, f)
	// RFC 4271 §4.2 allows 0 too (no keepalives), which would leave a dead
	// node's routes in place for good: not here.
	if h < 3*time.Second || h > 240*time.Second || h%time.Second != 0 {
		d.errf(v, f, "%v: a hold time is whole seconds from 3s to 240s (RFC 4271 §4.2; 0 would keep a dead node's routes)", h)
	}
	return h
}

func (d *decoder) bgpAS(v *yaml.Node, f string) uint32 {
	n, _ := d.integer(v, f, 1, 1<<32-1)
	if n == 23456 {
		d.errf(v, f, "AS 23456 is AS_TRANS (RFC 6793), not an AS")
	}
	return uint32(n)
}

// addressMode reads l2 or bgp.
func (d *decoder) addressMode(v *yaml.Node, f string) string {
	m := AddressL2
	oneOf(d, v, f, &m, choice[string]{AddressL2, []string{AddressL2}}, choice[string]{AddressBGP, []string{AddressBGP}})
	return m
}

// clusterBGP reads cluster.bgp.
func (d *decoder) clusterBGP(n *yaml.Node, field string) *BGP {
	b := &BGP{Line: n.Line, HoldTime: DefaultBGPHoldTime}
	var nbNode *yaml.Node
	d.mapping(n, field, []string{"as", "router_id", "hold_time", "next_hop", "neighbors"}, func(k string, v *yaml.Node) {
		f := field + "." + k
		switch k {
		case "as":
			b.AS = d.bgpAS(v, f)
		case "router_id":
			b.RouterID = parsed(d, v, f, netip.ParseAddr)
			if b.RouterID.IsValid() && (!b.RouterID.Is4() || b.RouterID.IsUnspecified()) {
				d.errf(v, f, "%v: a router id is a non-zero IPv4 address (RFC 6286)", b.RouterID)
			}
		case "hold_time":
			b.HoldTime = d.bgpHoldTime(v, f)
		case "next_hop":
			d.mapping(v, f, []string{"wan", "lan", "wan6", "lan6"}, func(k string, v *yaml.Node) {
				ff := f + "." + k
				a := parsed(d, v, ff, netip.ParseAddr)
				if !a.IsValid() {
					return
				}
				if a.Is4() != (k == "wan" || k == "lan") || a.IsUnspecified() || a.IsMulticast() {
					d.errf(v, ff, "%v is not a unicast IPv%s address", a, map[bool]string{true: "4", false: "6"}[k == "wan" || k == "lan"])
					return
				}
				switch k {
				case "wan":
					b.NextHop.WAN = a
				case "lan":
					b.NextHop.LAN = a
				case "wan6":
					b.NextHop.WAN6 = a
				case "lan6":
					b.NextHop.LAN6 = a
				}
			})
		case "neighbors":
			nbNode = v
		}
	})
	if n.Kind != yaml.MappingNode {
		return b
	}
	if b.AS == 0 || !b.RouterID.IsValid() {
		d.errf(n, field, "as and router_id are required")
	}
	if nbNode != nil {
		seen := map[netip.Addr]bool{}
		d.seq(nbNode, field+".neighbors", func(i int, e *yaml.Node) {
			p := fmt.Sprintf("%s.neighbors[%d]", field, i)
			nb := BGPNeighbor{Line: e.Line, Port: 179}
			d.mapping(e, p, []string{"address", "as", "password", "hold_time", "port"}, func(k string, v *yaml.Node) {
				f := p + "." + k
				switch k {
				case "address":
					nb.Address = parsed(d, v, f, netip.ParseAddr)
				case "as":
					nb.AS = d.bgpAS(v, f)
				case "password":
					nb.Password = d.str(v, f)
					if len(nb.Password) > 80 {
						d.errf(v, f, "a TCP MD5 key is at most 80 bytes (TCP_MD5SIG_MAXKEYLEN)")
					}
				case "hold_time":
					nb.HoldTime = d.bgpHoldTime(v, f)
				case "port":
					pt, _ := d.integer(v, f, 1, 65535)
					nb.Port = uint16(pt)
				}
			})
			if e.Kind != yaml.MappingNode {
				return
			}
			if !nb.Address.IsValid() || nb.AS == 0 {
				d.errf(e, p, "address and as are required")
			}
			if nb.Address.IsValid() && seen[nb.Address] {
				d.errf(e, p+".address", "%v given twice", nb.Address)
			}
			seen[nb.Address] = true
			if nb.HoldTime == 0 {
				nb.HoldTime = b.HoldTime
			}
			b.Neighbors = append(b.Neighbors, nb)
		})
	}
	if len(b.Neighbors) == 0 {
		d.errf(n, field+".neighbors", "required: the routers this node announces its groups to")
	}
	return b
}

// checkBGPGroups checks the groups whose addresses go over BGP: cluster.bgp
// is there, and each address has a next hop of its family (configured, or
// the session's own address when every neighbour is of that family).
func (d *decoder) checkBGPGroups(cl *Cluster) {
	if cl.Witness && cl.BGP != nil {
		d.errf(&yaml.Node{Line: cl.BGP.Line}, "cluster.bgp", "a witness (cluster.witness) carries no group: it announces nothing")
	}
	for i, g := range cl.Groups {
		if g.AddressMode != AddressBGP {
			continue
		}
		at := &yaml.Node{Line: g.Line}
		p := fmt.Sprintf("cluster.groups[%d]", i)
		if cl.BGP == nil {
			d.errf(at, p+".address_mode", "bgp needs a cluster.bgp section")
			continue
		}
		for _, s := range []struct {
			wan  bool
			name string
			p    netip.Prefix
		}{{true, "wan", g.WAN}, {false, "lan", g.LAN}} {
			if !s.p.IsValid() || cl.BGP.NextHop.For(s.wan, s.p.Addr()).IsValid() {
				continue
			}
			for _, nb := range cl.BGP.Neighbors {
				if nb.Address.Is4() != s.p.Addr().Is4() {
					key := s.name
					if !s.p.Addr().Is4() {
						key += "6"
					}
					d.errf(at, p+"."+s.name, "%v goes over BGP to %v, another family: set cluster.bgp.next_hop.%s", s.p.Addr(), nb.Address, key)
					break
				}
			}
		}
	}
}
