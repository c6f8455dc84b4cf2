package control

import "time"

// Snapshot is the gateway's state at one moment. Keys are never part of it.
type Snapshot struct {
	Config     string      `json:"config"`
	PID        int         `json:"pid"`
	Started    time.Time   `json:"started"`
	Now        time.Time   `json:"now"`
	OneArm     bool        `json:"one_arm"`
	Interfaces []Interface `json:"interfaces"`
	SAs        []SA        `json:"sas"`
	Policies   []Policy    `json:"policies"`
	Workers    []Worker    `json:"workers"`
	// XDP holds the steering program's verdict counters per set of
	// objects ("wan", "lan" or "onearm").
	XDP map[string]map[string]uint64 `json:"xdp"`
	XSK []XSK                        `json:"xsk"`
	// NextHops are the next-hop tables' counters per interface role.
	NextHops map[string]map[string]uint64 `json:"next_hops,omitempty"`
	// IKE lists the IKE SAs and their Child SAs; empty without
	// connections.
	IKE []IKESA `json:"ike,omitempty"`
	// IKEStats are the IKE responder's flood-defence counters (cookies,
	// rate-limit and half-open drops) and the half-open gauge; absent
	// without connections.
	IKEStats map[string]uint64 `json:"ike_stats,omitempty"`
	// Acquires counts the trap policies' acquires: raised by the workers,
	// lost (no room), and what the IKE engine made of them.
	Acquires map[string]uint64 `json:"acquires,omitempty"`
	// IKEFragments are the IKE engine's fragmentation (RFC 7383)
	// counters; empty without connections.
	IKEFragments map[string]uint64 `json:"ike_fragments,omitempty"`
	// WANMTU is the MTU the workers encapsulate for; PMTU counts the
	// ICMP "too big" reports read about our ESP (reports, learned,
	// unmatched, unusable).
	WANMTU int               `json:"wan_mtu,omitempty"`
	PMTU   map[string]uint64 `json:"pmtu,omitempty"`
	// Cluster is the node's view of its cluster; nil without one.
	Cluster *Cluster `json:"cluster,omitempty"`
}

// IKESA is one IKE SA as `show ike` prints it.
type IKESA struct {
	Connection  string    `json:"connection"`
	State       string    `json:"state"`
	Initiator   bool      `json:"initiator"`
	SPIi        string    `json:"spi_i"` // 16 hex digits
	SPIr        string    `json:"spi_r"`
	Local       string    `json:"local"` // addr:port
	Remote      string    `json:"remote"`
	LocalID     string    `json:"local_id"`
	RemoteID    string    `json:"remote_id"`
	NATT        bool      `json:"nat_t"`
	Proposal    string    `json:"proposal"`
	Established time.Time `json:"established,omitzero"`
	Children    []ChildSA `json:"children"`
}

// ChildSA is one Child SA of an IKE SA.
type ChildSA struct {
	Name      string    `json:"name"`
	State     string    `json:"state"` // INSTALLED or INSTALLING
	ReqID     uint32    `json:"reqid"`
	SPIIn     uint32    `json:"spi_in"`
	SPIOut    uint32    `json:"spi_out"`
	Mode      string    `json:"mode"`
	UDPEncap  bool      `json:"udp_encap"`
	Proposal  string    `json:"proposal"`
	LocalTS   []string  `json:"local_ts"`
	RemoteTS  []string  `json:"remote_ts"`
	Installed time.Time `json:"installed,omitzero"`
}

// Interface is one interface the program is attached to.
type Interface struct {
	Name    string `json:"name"`
	Ifindex int    `json:"ifindex"`
	Role    string `json:"role"`
	XDPMode string `json:"xdp_mode"`
	// Reused: a pinned attachment of an earlier run was taken over.
	Reused bool `json:"reused"`
}

// SA is one SA as `show sa` prints it.
type SA struct {
	Name      string    `json:"name"`
	SPI       uint32    `json:"spi"`
	Dir       string    `json:"dir"`
	Mode      string    `json:"mode"`
	Suite     string    `json:"suite"`
	Local     string    `json:"local"`
	Remote    string    `json:"remote"`
	UDPSrc    uint16    `json:"udp_src,omitempty"`
	UDPDst    uint16    `json:"udp_dst,omitempty"`
	ESN       bool      `json:"esn"`
	Selectors []string  `json:"selectors"`
	Created   time.Time `json:"created"`
	Seq       uint64    `json:"seq,omitempty"`
	// PathMTU is an outbound SA's path MTU learned from ICMP (0: none).
	PathMTU    int    `json:"path_mtu,omitempty"`
	ReplayWin  int    `json:"replay_window,omitempty"`
	ReplayTop  uint64 `json:"replay_top,omitempty"`
	Usable     bool   `json:"usable"`
	NeedsRekey bool   `json:"needs_rekey"`
	Packets    uint64 `json:"packets"`
	Bytes      uint64 `json:"bytes"`
	// Drops by reason name (sad.Reason.String), zero counts left out.
	Drops map[string]uint64 `json:"drops"`
}

// Policy is one SPD entry.
type Policy struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	Action   string `json:"action"`
	SA       string `json:"sa,omitempty"`
	SPI      uint32 `json:"spi,omitempty"`
	// Trap: without an SA, its traffic starts a negotiation.
	Trap bool `json:"trap,omitempty"`
	// Dir is "out" or "in" for a policy that decides one direction only;
	// empty for both (inbound, cleartext is matched against the reversed
	// selector).
	Dir string `json:"dir,omitempty"`
}

// Worker is one worker's counters (fastpath.Stats).
type Worker struct {
	ID       int               `json:"id"`
	Queue    int               `json:"queue"`
	CPU      int               `json:"cpu"` // -1: not pinned
	Counters map[string]uint64 `json:"counters"`
	Drops    map[string]uint64 `json:"drops"`
}

// XSK is one AF_XDP socket's counters (xsk.Stats).
type XSK struct {
	Interface string            `json:"interface"`
	Queue     int               `json:"queue"`
	ZeroCopy  bool              `json:"zero_copy"`
	Counters  map[string]uint64 `json:"counters"`
}
