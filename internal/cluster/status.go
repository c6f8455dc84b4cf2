package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
}

// GroupStatus is one group as this node sees it.
type GroupStatus struct {
	Name  string
	Owner string // "" none known
	// Sending: this node may send for it now; For how long it has, and
	// Left how long its lease has left.
	Sending   bool
	For, Left time.Duration
}

// Status asks etcd for its members (through this node's client) and adds
// this node's view of the groups, by name.
func (n *Node) Status(ctx context.Context) (Status, error) {
	st := Status{Node: n.Ownership.node, Rejected: n.Replicator.Rejected()}
	st.Failed, _ = n.Replicator.Failed()
	now := Now()
	for name, g := range n.Ownership.groups {
		gs := GroupStatus{Name: name, Owner: g.Owner(), Sending: g.MaySend(now)}
		if gs.Sending {
			gs.For, gs.Left = time.Duration(now-g.Since()), time.Duration(g.Deadline()-now)
		}
		st.Groups = append(st.Groups, gs)
	}
	slices.SortFunc(st.Groups, func(a, b GroupStatus) int { return strings.Compare(a.Name, b.Name) })
	ml, err := n.Client.MemberList(ctx)
	if err != nil {
		return st, fmt.Errorf("cluster: etcd members: %w", err)
	}
	var leader uint64
	if eps := n.Client.Endpoints(); len(eps) > 0 {
		if s, err := n.Client.Status(ctx, eps[0]); err == nil {
			leader = s.Leader
		}
	}
	for _, m := range ml.Members {
		st.Members = append(st.Members, MemberStatus{Name: m.Name, ID: fmt.Sprintf("%x", m.ID),
			PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Leader: m.ID == leader})
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}
