package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Status is a node's view of its cluster, for `xdpsec show cluster` and
// metrics: the etcd members and the groups.
type Status struct {
	Node    string
	Members []MemberStatus
	Groups  []GroupStatus
	// Rejected and Failed are the Replicator's counts (records that did
	// not open; records the store refused).
	Rejected, Failed uint64
}

// MemberStatus is one etcd member.
type MemberStatus struct {
	Name       string
	ID         string
	PeerURLs   []string
	ClientURLs []string
	Leader     bool
	// Healthy: the member answered a status request on one of its client
	// URLs within MemberTimeout; Error says why not. Version, DBSize and
	// RaftTerm are from that answer.
	Healthy  bool
	Error    string
	Version  string
	DBSize   int64
	RaftTerm uint64
}

// GroupStatus is one group as this node sees it.
type GroupStatus struct {
	Name  string
	Owner string // "" none known
	// Sending: this node may send for it now; For how long it has, and
	// Left how long its lease has left.
	Sending   bool
	For, Left time.Duration
	// Role is this node's: RoleActive, RoleStandby, RoleFenced (etcd
	// still names it, but it may not send: its lease ran out), or
	// RoleNone (not allowed to carry the group). RoleFor: since when.
	Role    string
	RoleFor time.Duration
	// Nodes are the nodes allowed to carry it, most preferred first.
	Nodes []string
	// Changes: changes of owner this node saw; OwnerSeen: how long ago
	// it last saw the owner key change (a renewal: every lease/4), -1
	// never.
	Changes   uint64
	OwnerSeen time.Duration
	// ReplayAge: how long ago the published replay tops were last known
	// up to date (while active; -1 never).
	ReplayAge time.Duration
	// Writes counts this node's etcd writes for the group by kind
	// (WriteKinds).
	Writes map[string]uint64
	// Followed counts the SA records this node took in as a standby;
	// FollowedAge is how long ago the last one came (-1 never).
	Followed    uint64
	FollowedAge time.Duration
}

// Roles of a node for a group.
const (
	RoleActive  = "active"
	RoleStandby = "standby"
	RoleFenced  = "fenced"
	RoleNone    = "-"
)

// MemberTimeout bounds the status request to each etcd member.
const MemberTimeout = 500 * time.Millisecond

// Status asks etcd for its members (through this node's client) and adds
// this node's view of the groups, by name.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st := Status{Node: n.Ownership.node, Rejected: n.Replicator.Rejected(), Groups: n.Groups()}
	st.Failed, _ = n.Replicator.Failed()
	var err error
	st.Members, err = n.Members(ctx)
	return st, err
}

// age is how long ago t (a Now()) was; -1 for 0 (never).
func age(now, t int64) time.Duration {
	if t == 0 {
		return -1
	}
	return time.Duration(now - t)
}

// Groups is this node's view of the groups, by name; it asks etcd
// nothing.
func (n *Node) Groups() []GroupStatus {
	o := n.Ownership
	now := Now()
	var gl []GroupStatus
	for name, g := range o.groups {
		gs := GroupStatus{Name: name, Owner: g.Owner(), Sending: g.MaySend(now), Nodes: g.Nodes(),
			Changes: g.Changes(), OwnerSeen: age(now, g.stats.seen.Load()), ReplayAge: -1,
			Followed: g.stats.followed.Load(), FollowedAge: age(now, g.stats.followedAt.Load()),
			Writes: map[string]uint64{}}
		for k, name := range WriteKinds {
			gs.Writes[name] = g.stats.writes[k].Load()
		}
		switch {
		case !slices.Contains(g.nodes, o.node):
			gs.Role = RoleNone
		case gs.Sending:
			gs.Role = RoleActive
			gs.For, gs.Left = time.Duration(now-g.Since()), time.Duration(g.Deadline()-now)
			gs.RoleFor = gs.For
		case gs.Owner == o.node && (g.Stopped() != 0 || g.Deadline() != 0):
			// (Neither: it never sent in this life; etcd names a
			// previous one, killed and restarted: a standby.)
			gs.Role, gs.RoleFor = RoleFenced, age(now, g.Stopped())
		default:
			gs.Role, gs.RoleFor = RoleStandby, time.Duration(now-max(g.Stopped(), o.ext.started))
		}
		if n.Tops != nil && gs.Role == RoleActive {
			gs.ReplayAge = age(now, n.Tops.Synced(name))
		}
		gl = append(gl, gs)
	}
	slices.SortFunc(gl, func(a, b GroupStatus) int { return strings.Compare(a.Name, b.Name) })
	return gl
}

// Members lists the etcd members and asks each, on its client URLs, for
// its status (in parallel, MemberTimeout each): health, version, and who
// the raft leader is.
func (n *Node) Members(ctx context.Context) ([]MemberStatus, error) {
	ml, err := n.Client.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd members: %w", err)
	}
	ms := make([]MemberStatus, len(ml.Members))
	var leader atomic.Uint64
	var wg sync.WaitGroup
	for i, m := range ml.Members {
		ms[i] = MemberStatus{Name: m.Name, ID: fmt.Sprintf("%x", m.ID), PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
			Error: "no client URL (not started yet?)"}
		wg.Add(1)
		go func(st *MemberStatus) {
			defer wg.Done()
			for _, u := range st.ClientURLs {
				sctx, cancel := context.WithTimeout(ctx, MemberTimeout)
				r, err := n.Client.Status(sctx, u)
				cancel()
				if err != nil {
					st.Error = err.Error()
					continue
				}
				st.Healthy, st.Error, st.Version, st.DBSize, st.RaftTerm = true, "", r.Version, r.DbSize, r.RaftTerm
				if len(r.Errors) > 0 {
					st.Healthy, st.Error = false, strings.Join(r.Errors, "; ")
				}
				if r.Leader != 0 {
					leader.Store(r.Leader)
				}
				return
			}
		}(&ms[i])
	}
	wg.Wait()
	for i, m := range ml.Members {
		ms[i].Leader = m.ID == leader.Load()
	}
	slices.SortFunc(ms, func(a, b MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	return ms, nil
}

// markSynced notes that group's published tops were up to date as of
// start (a Now()).
func (p *ReplayTops) markSynced(group string, start int64) {
	p.mu.Lock()
	if start > p.synced[group] {
		p.synced[group] = start
	}
	p.mu.Unlock()
}

// Synced is the Now() as of which group's published tops were last known
// up to date (0: never).
func (p *ReplayTops) Synced(group string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.synced[group]
}

// Mark is the mark id as this node last read or wrote it, and the Now()
// of this node's last raise of it (0: none); ok false: never loaded.
func (m *SeqMarks) Mark(id string) (mark uint64, raised int64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mark, ok = m.last[id]
	return mark, m.raised[id], ok
}
