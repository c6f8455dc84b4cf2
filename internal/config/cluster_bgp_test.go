package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const bgpSection = `  bgp:
    as: 65001
    router_id: 192.0.2.11
    next_hop: {lan: 198.18.3.11}
    neighbors:
      - {address: 192.0.2.254, as: 65000}
      - {address: 192.0.2.253, as: 65001, password: s3cret, hold_time: 9s, port: 1179}
`

// TestClusterBGP: cluster.bgp and address_mode parse with their defaults.
func TestClusterBGP(t *testing.T) {
	key := clusterKey(t, key64, 0o600)
	cfg, err := Parse("x.yaml", []byte(clusterSection(key, "      address_mode: bgp\n"+bgpSection)))
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Cluster
	if cl.AddressMode != AddressL2 || cl.Groups[0].AddressMode != AddressBGP {
		t.Fatalf("modes %q %q", cl.AddressMode, cl.Groups[0].AddressMode)
	}
	b := cl.BGP
	if b == nil || b.AS != 65001 || b.RouterID != netip.MustParseAddr("192.0.2.11") || b.HoldTime != DefaultBGPHoldTime ||
		b.NextHop.LAN != netip.MustParseAddr("198.18.3.11") || b.NextHop.WAN.IsValid() || len(b.Neighbors) != 2 {
		t.Fatalf("bgp %+v", b)
	}
	if n := b.Neighbors[0]; n.Address != netip.MustParseAddr("192.0.2.254") || n.AS != 65000 || n.HoldTime != 3*time.Second || n.Port != 179 || n.Password != "" {
		t.Errorf("neighbour 0 %+v", n)
	}
	if n := b.Neighbors[1]; n.AS != 65001 || n.HoldTime != 9*time.Second || n.Port != 1179 || n.Password != "s3cret" {
		t.Errorf("neighbour 1 %+v", n)
	}
	if h := b.NextHop.For(false, netip.MustParseAddr("198.18.1.1")); h != b.NextHop.LAN {
		t.Errorf("next hop for lan %v", h)
	}
	// The global default applies to groups that say nothing.
	cfg, err = Parse("x.yaml", []byte(clusterSection(key, "  address_mode: bgp\n"+bgpSection)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Groups[0].AddressMode != AddressBGP {
		t.Errorf("group mode %q under a global bgp", cfg.Cluster.Groups[0].AddressMode)
	}
}

// TestClusterBGPErrors: each mistake is refused at its file:line.
func TestClusterBGPErrors(t *testing.T) {
	key := clusterKey(t, key64, 0o600)
	// Line 28 is the first line after clusterSection, 23 its group.
	for _, c := range []struct{ extra, err string }{
		{"      address_mode: bgp\n", "x.yaml:23: cluster.groups[0].address_mode: bgp needs a cluster.bgp section"},
		{"      address_mode: l3\n", `x.yaml:28: cluster.groups[0].address_mode: "l3" is not l2 or bgp`},
		{"  address_mode: ospf\n", `x.yaml:28: cluster.address_mode: "ospf" is not l2 or bgp`},
		{"  bgp: {as: 65001, router_id: 192.0.2.1}\n", "x.yaml:28: cluster.bgp.neighbors: required"},
		{"  bgp: {router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "x.yaml:28: cluster.bgp: as and router_id are required"},
		{"  bgp: {as: 0, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "x.yaml:28: cluster.bgp.as: 0 out of range"},
		{"  bgp: {as: 23456, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "cluster.bgp.as: AS 23456 is AS_TRANS"},
		{"  bgp: {as: 1, router_id: 2001:db8::1, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "x.yaml:28: cluster.bgp.router_id: 2001:db8::1: a router id is a non-zero IPv4"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, hold_time: 2s, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "x.yaml:28: cluster.bgp.hold_time: 2s: a hold time is whole seconds"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 2, hold_time: 0}]}\n", "cluster.bgp.neighbors[0].hold_time: 0s: a hold time is whole seconds from 3s"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, hold_time: 3500ms, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "cluster.bgp.hold_time: 3.5s"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, next_hop: {wan: 2001:db8::1}, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "x.yaml:28: cluster.bgp.next_hop.wan: 2001:db8::1 is not a unicast IPv4 address"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, next_hop: {gw: 192.0.2.1}, neighbors: [{address: 192.0.2.254, as: 1}]}\n", "cluster.bgp.next_hop.gw: unknown field"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254}]}\n", "x.yaml:28: cluster.bgp.neighbors[0]: address and as are required"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 2}, {address: 192.0.2.254, as: 3}]}\n", "cluster.bgp.neighbors[1].address: 192.0.2.254 given twice"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 2, port: 0}]}\n", "cluster.bgp.neighbors[0].port: 0 out of range"},
		{"  bgp: {as: 1, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 2, password: " + strings.Repeat("x", 81) + "}]}\n", "cluster.bgp.neighbors[0].password: a TCP MD5 key is at most 80 bytes"},
		// The group's WAN is IPv4, the only neighbour IPv6: the route needs an
		// IPv4 next hop the session cannot give.
		{"  address_mode: bgp\n  bgp: {as: 1, router_id: 192.0.2.1, next_hop: {lan: 198.18.3.1}, neighbors: [{address: 2001:db8::fe, as: 2}]}\n",
			"x.yaml:23: cluster.groups[0].wan: 203.0.113.10 goes over BGP to 2001:db8::fe, another family: set cluster.bgp.next_hop.wan"},
	} {
		_, err := Parse("x.yaml", []byte(clusterSection(key, c.extra)))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q:\n error %v\n want %q", c.extra, err, c.err)
		}
	}
}

// TestClusterBGPWitness: a witness carries no group, so it has no BGP.
func TestClusterBGPWitness(t *testing.T) {
	_, err := Parse("w.yaml", []byte(witnessSection("", "  bgp: {as: 1, router_id: 192.0.2.1, neighbors: [{address: 192.0.2.254, as: 2}]}\n")))
	if err == nil || !strings.Contains(err.Error(), "cluster.bgp: a witness (cluster.witness) carries no group") {
		t.Errorf("error %v", err)
	}
}
