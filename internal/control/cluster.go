package control

import "time"

// CommandClusterMove asks the daemon to hand a tunnel group over to
// another node gracefully: Request.Name is "GROUP/NODE". Any node of the
// cluster may be asked; the answer comes once NODE owns the group.
const CommandClusterMove = "cluster-move"

// Cluster is the node's view of its cluster (`xdpsec show cluster`), nil
// without a cluster: section. Ages and durations are in seconds; -1
// means never.
type Cluster struct {
	Name string `json:"name"`
	Node string `json:"node"`
	// Etcd is "embedded" or "external".
	Etcd    string          `json:"etcd"`
	Members []ClusterMember `json:"members"`
	// MembersChecked is when the members were last asked for their
	// status; MembersError why the member list could not be read then.
	MembersChecked time.Time      `json:"members_checked,omitzero"`
	MembersError   string         `json:"members_error,omitempty"`
	Groups         []ClusterGroup `json:"groups"`
	// RecordsRejected counts replicated SA records that did not open
	// (tampered, another cluster key); RecordsFailed those the SA table
	// refused.
	RecordsRejected uint64 `json:"records_rejected"`
	RecordsFailed   uint64 `json:"records_failed"`
	// BGP are the BGP speaker's sessions (address_mode bgp), BGPRoutes
	// the host routes it announces now.
	BGP       []ClusterBGPSession `json:"bgp,omitempty"`
	BGPRoutes []string            `json:"bgp_routes,omitempty"`
}

// ClusterBGPSession is one BGP neighbour's session.
type ClusterBGPSession struct {
	Neighbor string `json:"neighbor"`
	AS       uint32 `json:"as"`
	// State is RFC 4271's: idle, connect, active, opensent, openconfirm,
	// established.
	State string `json:"state"`
}

// ClusterMember is one etcd member.
type ClusterMember struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"`
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls"`
	Healthy    bool     `json:"healthy"`
	Leader     bool     `json:"leader"`
	Error      string   `json:"error,omitempty"`
	Version    string   `json:"version,omitempty"`
	DBSize     int64    `json:"db_size,omitempty"`
	RaftTerm   uint64   `json:"raft_term,omitempty"`
}

// ClusterGroup is one tunnel group as this node sees it.
type ClusterGroup struct {
	Name  string `json:"name"`
	Owner string `json:"owner"` // "" none known (released, moving)
	// Role is this node's: active, standby, fenced (etcd still names it
	// but its lease ran out: it sends nothing), or "-" (not allowed).
	Role string `json:"role"`
	// Since: when this node took that role.
	Since time.Time `json:"since,omitzero"`
	// LeaseLeft: how long this node may send without a renewal (active).
	LeaseLeft float64 `json:"lease_left_s"`
	// Preference is this node's (0: not allowed); Nodes the allowed
	// nodes and theirs, most preferred first.
	Preference int           `json:"preference"`
	Nodes      []ClusterNode `json:"nodes"`
	// Changes: changes of owner this node saw since it started.
	Changes uint64 `json:"ownership_changes"`
	// OwnerSeen: how long ago this node saw the owner key change (each
	// renewal changes it: every lease/4 while the owner is alive).
	OwnerSeen float64 `json:"owner_seen_age_s"`
	// ReplayPublished: how long ago the published replay tops were last
	// known up to date (active only; -1 never).
	ReplayPublished float64 `json:"replay_publish_age_s"`
	// Writes: this node's etcd writes for the group by kind (renew, seq,
	// replay, record).
	Writes map[string]uint64 `json:"etcd_writes"`
	// Followed: SA records this node took in as a standby, the last
	// FollowedAge ago.
	Followed    uint64  `json:"records_followed"`
	FollowedAge float64 `json:"records_followed_age_s"`
	// Seq is the sequence-number reservation of each outbound SA.
	Seq []ClusterSeq `json:"seq,omitempty"`
}

// ClusterNode is a node allowed to carry a group.
type ClusterNode struct {
	Name       string `json:"name"`
	Preference int    `json:"preference"`
}

// ClusterSeq is an outbound SA's sequence-number reservation: Reserved is
// its high-water mark in etcd as this node last read or raised it, Limit
// how far the SA may go (the mark while active, its last number when
// stopped), Headroom = Limit - Seq.
type ClusterSeq struct {
	SA       string `json:"sa"`
	SPI      uint32 `json:"spi"`
	Seq      uint64 `json:"seq"`
	Limit    uint64 `json:"limit"`
	Reserved uint64 `json:"reserved"`
	Headroom uint64 `json:"headroom"`
	// ReservedAge: how long ago this node last raised the mark (-1 never).
	ReservedAge float64 `json:"reserved_age_s"`
}

// Seconds is d in seconds, -1 for a negative d (never).
func Seconds(d time.Duration) float64 {
	if d < 0 {
		return -1
	}
	return d.Seconds()
}
