package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Cluster defaults (docs/cluster.md says why).
const (
	// DefaultLeaseTTL is a group owner's lease: a node that cannot renew
	// it stops sending before it runs out, and a standby takes over after
	// it. etcd's own leases are whole seconds (at least 1 s), so this
	// sub-second lease is kept by compare-and-swap on the owner key. The
	// owner renews every quarter of it, and the slack (3/4 of it less the
	// margin) must outlast an etcd leader election (docs/cluster.md);
	// a lease plus an election (a dead owner that led etcd) stays under
	// a second.
	DefaultLeaseTTL = 700 * time.Millisecond
	// DefaultReplayPublish is how often the active publishes its inbound
	// SAs' replay-window tops (RFC 6027 §3.4).
	DefaultReplayPublish = 100 * time.Millisecond
	// DefaultFenceMargin is how long before its lease runs out (by its own
	// clock) an owner stops sending: clock-rate drift over one TTL, the
	// time one batch takes to leave, and the scheduling of the renewal.
	DefaultFenceMargin = 150 * time.Millisecond
	// DefaultAnnounce is how many times a node that takes a group
	// announces its addresses (gratuitous ARP, unsolicited Neighbor
	// Advertisement): at once, then 100 ms and 500 ms later, a neighbour
	// that missed one frame still learns the move within half a second.
	DefaultAnnounce = 3
)

// Cluster is the cluster: section: this node, its etcd, and the tunnel
// groups that move between nodes as a whole.
type Cluster struct {
	Line int
	// Name prefixes every etcd key (/xdpsec/NAME/...), so several
	// clusters may share one etcd.
	Name string
	// Node is this node's name, as groups' nodes: lists name it.
	Node string
	// Embedded runs an etcd member inside this process (nil: Endpoints).
	Embedded *EmbeddedEtcd
	// Endpoints are an external etcd cluster's client URLs.
	Endpoints []string
	// TLS (cert, key and CA files) secures the client and, embedded, the
	// peer connections. Empty: plain http, for labs only.
	TLSCert, TLSKey, TLSCA string
	// LeaseTTL is a group owner's lease (lease_ttl); FenceMargin how long
	// before its end the owner stops sending (fence_margin).
	LeaseTTL, FenceMargin time.Duration
	// ReplayPublish is how often inbound replay tops go to etcd.
	ReplayPublish time.Duration
	// Key seals SA state in etcd (AES-256-GCM): 32 bytes from key_file
	// (hex, mode 0600).
	Key    []byte
	Groups []TunnelGroup
	// Announce is how many times a new owner announces a group's
	// addresses (announce; 0: never).
	Announce int
	// AddressMode is the groups' default address_mode (AddressL2 or
	// AddressBGP); BGP the speaker for bgp mode (cluster_bgp.go).
	AddressMode string
	BGP         *BGP
	// Witness: this node is an etcd member only (witness: true): no
	// interfaces, no tunnels, in no group's nodes; the third member that
	// keeps a two-node cluster's quorum when one node dies.
	Witness bool
}

// Witness reports whether the configuration is an etcd witness's
// (cluster.witness): the daemon runs its embedded etcd member only.
func (c *Config) Witness() bool { return c.Cluster != nil && c.Cluster.Witness }

// EmbeddedEtcd is this node's etcd member.
type EmbeddedEtcd struct {
	// DataDir holds the member's data (data_dir).
	DataDir string
	// PeerURL is where the other members reach this one (peer_url),
	// ClientURL where this process's client reaches it (client_url).
	PeerURL, ClientURL string
	// Members maps every member's node name, this one's included, to its
	// peer URL: etcd's initial cluster.
	Members map[string]string
}

// TunnelGroup is a set of connections and static SAs that one node
// carries at a time, with the addresses that move with it.
type TunnelGroup struct {
	Line        int
	Name        string
	Connections []string
	SAs         []string
	// WAN is the address peers reach the group at, LAN the next hop the
	// LAN hosts use (prefix length: the subnet it is announced in).
	WAN, LAN netip.Prefix
	// Nodes may carry the group, most preferred first.
	Nodes []GroupNode
	// AddressMode is how the addresses move (AddressL2, AddressBGP).
	AddressMode string
}

// GroupNode is a node allowed to carry a group and its preference
// (higher wins when several are free to take it).
type GroupNode struct {
	Name       string
	Preference int
}

var clusterIdentRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

func (d *decoder) clusterIdent(n *yaml.Node, field string) string {
	s := d.str(n, field)
	if s != "" && !clusterIdentRE.MatchString(s) {
		d.errf(n, field, "%q: use 1-63 of a-z 0-9 _ . - (it becomes part of etcd keys)", s)
	}
	return s
}

func (d *decoder) clusterList(n *yaml.Node, field string) []string {
	var out []string
	d.seq(n, field, func(i int, e *yaml.Node) { out = append(out, d.str(e, fmt.Sprintf("%s[%d]", field, i))) })
	return out
}

func (d *decoder) clusterURL(n *yaml.Node, field string) string {
	s := d.str(n, field)
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.errf(n, field, "%q is not an http(s)://host:port URL", s)
	}
	return s
}

// cluster reads the cluster: section; c's connections and SAs are read
// already (groups name them).
func (d *decoder) cluster(n *yaml.Node, c *Config) {
	cl := &Cluster{Line: n.Line, LeaseTTL: DefaultLeaseTTL, FenceMargin: DefaultFenceMargin, ReplayPublish: DefaultReplayPublish,
		Announce: DefaultAnnounce, AddressMode: AddressL2}
	var groupsNode, ttlNode *yaml.Node
	keySet := false
	d.mapping(n, "cluster", []string{"name", "node", "etcd", "lease_ttl", "fence_margin", "replay_publish", "key_file", "groups", "announce", "address_mode", "bgp", "witness"}, func(k string, v *yaml.Node) {
		f := "cluster." + k
		switch k {
		case "name":
			cl.Name = d.clusterIdent(v, f)
		case "node":
			cl.Node = d.clusterIdent(v, f)
		case "etcd":
			d.clusterEtcd(v, f, cl)
		case "lease_ttl":
			cl.LeaseTTL, ttlNode = d.duration(v, f), v
		case "fence_margin":
			cl.FenceMargin = d.duration(v, f)
		case "replay_publish":
			cl.ReplayPublish = d.duration(v, f)
			if cl.ReplayPublish < 10*time.Millisecond || cl.ReplayPublish > 10*time.Second {
				d.errf(v, f, "must be between 10ms and 10s")
			}
		case "key_file":
			keySet = true
			cl.Key = d.keyMaterial(v, f, true)
			if cl.Key != nil && len(cl.Key) != 32 {
				d.errf(v, f, "the cluster key must be 32 bytes (64 hex digits), not %d", len(cl.Key))
				clear(cl.Key)
				cl.Key = nil
			}
		case "groups":
			groupsNode = v
		case "announce":
			n, _ := d.integer(v, f, 0, 20)
			cl.Announce = int(n)
		case "address_mode":
			cl.AddressMode = d.addressMode(v, f)
		case "bgp":
			cl.BGP = d.clusterBGP(v, f)
		case "witness":
			cl.Witness = d.boolean(v, f)
		}
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if cl.Name == "" || cl.Node == "" {
		d.errf(n, "cluster", "name and node are required")
	}
	if cl.Witness && cl.Embedded == nil {
		d.errf(n, "cluster.witness", "a witness is an embedded etcd member: etcd.embedded is required")
	}
	if !keySet && !cl.Witness {
		d.errf(n, "cluster.key_file", "required: 32 random bytes in hex (mode 0600) that seal SA keys in etcd")
	}
	if cl.Embedded == nil && cl.Endpoints == nil {
		d.errf(n, "cluster.etcd", "required: embedded: or endpoints:")
	}
	if at := ttlNode; at != nil {
		// 100 ms: below it the renewals (TTL/4) are lost in etcd's own
		// commit latency; 10 s: a takeover should never take longer.
		if cl.LeaseTTL < 100*time.Millisecond || cl.LeaseTTL > 10*time.Second {
			d.errf(at, "cluster.lease_ttl", "must be between 100ms and 10s")
		}
	}
	if cl.FenceMargin <= 0 || cl.FenceMargin >= cl.LeaseTTL/2 {
		d.errf(n, "cluster.fence_margin", "%v must be above 0 and below half of lease_ttl %v (the owner renews every quarter of it)", cl.FenceMargin, cl.LeaseTTL)
	}
	if cl.Embedded != nil && cl.Node != "" && cl.Embedded.Members[cl.Node] == "" {
		d.errf(n, "cluster.etcd.embedded.members", "must name this node %q", cl.Node)
	}
	if groupsNode != nil && cl.Witness {
		d.errf(groupsNode, "cluster.groups", "a witness (cluster.witness) carries no group")
		groupsNode = nil
	}
	if groupsNode != nil {
		seen := map[string]bool{}
		d.seq(groupsNode, "cluster.groups", func(i int, e *yaml.Node) {
			g := d.tunnelGroup(e, fmt.Sprintf("cluster.groups[%d]", i), c, cl)
			if g.Name != "" && seen[g.Name] {
				d.errf(e, fmt.Sprintf("cluster.groups[%d].name", i), "%q given twice", g.Name)
			}
			seen[g.Name] = true
			cl.Groups = append(cl.Groups, g)
		})
	}
	d.checkBGPGroups(cl)
	// A connection or SA is in one group at most: two owners of one SA
	// would send with one key.
	owner := map[string]string{}
	for _, g := range cl.Groups {
		for _, m := range slices.Concat(g.Connections, g.SAs) {
			if o, ok := owner[m]; ok && o != g.Name {
				d.errf(&yaml.Node{Line: g.Line}, "cluster.groups", "%q is in groups %q and %q: one group each", m, o, g.Name)
			}
			owner[m] = g.Name
		}
	}
	c.Cluster = cl
}

func (d *decoder) clusterEtcd(n *yaml.Node, field string, cl *Cluster) {
	d.mapping(n, field, []string{"embedded", "endpoints", "tls"}, func(k string, v *yaml.Node) {
		f := field + "." + k
		switch k {
		case "embedded":
			e := &EmbeddedEtcd{Members: map[string]string{}}
			d.mapping(v, f, []string{"data_dir", "peer_url", "client_url", "members"}, func(k string, v *yaml.Node) {
				ff := f + "." + k
				switch k {
				case "data_dir":
					e.DataDir = d.str(v, ff)
				case "peer_url":
					e.PeerURL = d.clusterURL(v, ff)
				case "client_url":
					e.ClientURL = d.clusterURL(v, ff)
				case "members":
					if v.Kind != yaml.MappingNode {
						d.errf(v, ff, "expected a mapping of node name to peer URL")
						return
					}
					for i := 0; i+1 < len(v.Content); i += 2 {
						name := d.clusterIdent(v.Content[i], ff)
						e.Members[name] = d.clusterURL(v.Content[i+1], ff+"."+name)
					}
				}
			})
			if e.DataDir == "" || e.PeerURL == "" || e.ClientURL == "" || len(e.Members) == 0 {
				d.errf(v, f, "data_dir, peer_url, client_url and members are required")
			}
			cl.Embedded = e
		case "endpoints":
			d.seq(v, f, func(i int, e *yaml.Node) {
				cl.Endpoints = append(cl.Endpoints, d.clusterURL(e, fmt.Sprintf("%s[%d]", f, i)))
			})
			if len(cl.Endpoints) == 0 {
				d.errf(v, f, "must list at least one URL")
			}
		case "tls":
			d.mapping(v, f, []string{"cert", "key", "ca"}, func(k string, v *yaml.Node) {
				p := d.str(v, f+"."+k)
				switch k {
				case "cert":
					cl.TLSCert = p
				case "key":
					cl.TLSKey = p
				case "ca":
					cl.TLSCA = p
				}
			})
			if cl.TLSCert == "" || cl.TLSKey == "" || cl.TLSCA == "" {
				d.errf(v, f, "cert, key and ca are all required")
			}
		}
	})
	if cl.Embedded != nil && cl.Endpoints != nil {
		d.errf(n, field, "embedded and endpoints exclude each other")
	}
}

func (d *decoder) tunnelGroup(n *yaml.Node, path string, c *Config, cl *Cluster) TunnelGroup {
	g := TunnelGroup{Line: n.Line, AddressMode: cl.AddressMode}
	d.mapping(n, path, []string{"name", "connections", "sas", "wan", "lan", "nodes", "address_mode"}, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "name":
			g.Name = d.clusterIdent(v, f)
		case "connections":
			g.Connections = d.clusterList(v, f)
			for i, s := range g.Connections {
				if !slices.ContainsFunc(c.IKE.Connections, func(cn Connection) bool { return cn.Name == s }) {
					d.errf(v, fmt.Sprintf("%s[%d]", f, i), "no connection named %q", s)
				}
			}
		case "sas":
			g.SAs = d.clusterList(v, f)
			for i, s := range g.SAs {
				if !slices.ContainsFunc(c.SAs, func(sa SA) bool { return sa.Name == s }) {
					d.errf(v, fmt.Sprintf("%s[%d]", f, i), "no sa named %q", s)
				}
			}
		case "wan":
			g.WAN = parsed(d, v, f, netip.ParsePrefix)
		case "lan":
			g.LAN = parsed(d, v, f, netip.ParsePrefix)
		case "nodes":
			if v.Kind != yaml.MappingNode {
				d.errf(v, f, "expected a mapping of node name to preference")
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				name := d.clusterIdent(v.Content[i], f)
				p, _ := d.integer(v.Content[i+1], f+"."+name, 0, 1000)
				if cl.Embedded != nil && cl.Embedded.Members[name] == "" {
					d.errf(v.Content[i], f, "%q is not an etcd member of this cluster", name)
				}
				g.Nodes = append(g.Nodes, GroupNode{Name: name, Preference: int(p)})
			}
			slices.SortStableFunc(g.Nodes, func(a, b GroupNode) int { return b.Preference - a.Preference })
		case "address_mode":
			g.AddressMode = d.addressMode(v, f)
		}
	})
	if n.Kind != yaml.MappingNode {
		return g
	}
	if g.Name == "" || len(g.Nodes) == 0 {
		d.errf(n, path, "name and nodes are required")
	}
	if len(g.Connections) == 0 && len(g.SAs) == 0 {
		d.errf(n, path, "a group carries connections or sas")
	}
	if !g.WAN.IsValid() {
		d.errf(n, path+".wan", "required: the address peers reach the group at, with its prefix length")
	}
	return g
}

// GroupOfSA is the group that carries the static SA named name ("" none,
// or no cluster).
func (cl *Cluster) GroupOfSA(name string) string {
	if cl == nil {
		return ""
	}
	for _, g := range cl.Groups {
		if slices.Contains(g.SAs, name) {
			return g.Name
		}
	}
	return ""
}
