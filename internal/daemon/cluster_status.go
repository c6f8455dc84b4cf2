package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/control"
)

// clusterStatus is what `xdpsec show cluster`, the metrics and `xdpsec
// cluster move` read of the cluster plane: the running node, and the etcd
// members' health, asked in the background (every membersInterval) so
// that a snapshot never waits on the network.
type clusterStatus struct {
	node atomic.Pointer[cluster.Node]

	mu        sync.Mutex
	owners    map[string]string // of the groups this node may not carry
	members   []cluster.MemberStatus
	checked   time.Time
	membersEr string
}

// membersInterval: how often the etcd members are asked for their health.
const membersInterval = 2 * time.Second

// begin makes node the running one and polls its members until ctx ends.
func (s *clusterStatus) begin(ctx context.Context, node *cluster.Node) {
	s.node.Store(node)
	go func() {
		t := time.NewTicker(membersInterval)
		defer t.Stop()
		for {
			s.pollMembers(ctx, node)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (s *clusterStatus) pollMembers(ctx context.Context, node *cluster.Node) {
	mctx, cancel := context.WithTimeout(ctx, 2*cluster.MemberTimeout)
	ms, err := node.Members(mctx)
	owners := map[string]string{}
	for _, g := range node.Groups() {
		if g.Role == cluster.RoleNone {
			if o, err := node.Ownership.OwnerOf(mctx, g.Name); err == nil {
				owners[g.Name] = o
			}
		}
	}
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked, s.owners = time.Now(), owners
	if err != nil {
		s.membersEr = err.Error()
		for i := range s.members { // known, but not reachable now
			s.members[i].Healthy, s.members[i].Leader, s.members[i].Error = false, false, "member list: "+err.Error()
		}
		return
	}
	s.members, s.membersEr = ms, ""
}

// snapshot is the cluster part of a control.Snapshot (nil before the
// node joined).
func (p *clusterPlane) snapshot() *control.Cluster {
	node := p.status.node.Load()
	if node == nil {
		return nil
	}
	c := &control.Cluster{Name: p.cfg.Name, Node: p.cfg.Node, Etcd: "external", Groups: []control.ClusterGroup{}}
	if p.cfg.Embedded != nil {
		c.Etcd = "embedded"
	}
	p.status.mu.Lock()
	for _, m := range p.status.members {
		c.Members = append(c.Members, control.ClusterMember{Name: m.Name, ID: m.ID, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs,
			Healthy: m.Healthy, Leader: m.Leader, Error: m.Error, Version: m.Version, DBSize: m.DBSize, RaftTerm: m.RaftTerm})
	}
	c.MembersChecked, c.MembersError = p.status.checked, p.status.membersEr
	owners := p.status.owners
	p.status.mu.Unlock()
	if node.Replicator != nil {
		c.RecordsRejected = node.Replicator.Rejected()
		c.RecordsFailed, _ = node.Replicator.Failed()
	}
	now := time.Now()
	for _, gs := range node.Groups() {
		g := control.ClusterGroup{Name: gs.Name, Owner: gs.Owner, Role: gs.Role, LeaseLeft: max(gs.Left, 0).Seconds(),
			Changes: gs.Changes, OwnerSeen: control.Seconds(gs.OwnerSeen), ReplayPublished: control.Seconds(gs.ReplayAge),
			Writes: gs.Writes, Followed: gs.Followed, FollowedAge: control.Seconds(gs.FollowedAge)}
		if gs.Role == cluster.RoleNone {
			g.Owner = owners[gs.Name] // as of the last poll
		}
		if gs.Role != cluster.RoleNone && gs.RoleFor >= 0 {
			g.Since = now.Add(-gs.RoleFor).Round(time.Millisecond)
		}
		for _, tg := range p.cfg.Groups {
			if tg.Name != gs.Name {
				continue
			}
			for _, n := range tg.Nodes {
				g.Nodes = append(g.Nodes, control.ClusterNode{Name: n.Name, Preference: n.Preference})
				if n.Name == p.cfg.Node {
					g.Preference = n.Preference
				}
			}
		}
		for _, k := range p.out[gs.Name] {
			seq, limit := k.SA.Seq(), k.SA.SeqLimit()
			q := control.ClusterSeq{SA: k.SA.Name, SPI: k.SA.SPI, Seq: seq, Limit: limit, ReservedAge: -1}
			if limit > seq {
				q.Headroom = limit - seq
			}
			if mark, raised, ok := node.Marks.Mark(k.Fingerprint); ok {
				q.Reserved = mark
				if raised != 0 {
					q.ReservedAge = time.Duration(cluster.Now() - raised).Seconds()
				}
			}
			g.Seq = append(g.Seq, q)
		}
		c.Groups = append(c.Groups, g)
	}
	p.bgpStatus(c)
	return c
}

// moveAction is the control command cluster-move: name is "GROUP/NODE".
func (p *clusterPlane) moveAction(ctx context.Context, name string) (string, error) {
	group, to, ok := strings.Cut(name, "/")
	if !ok || group == "" || to == "" || strings.Contains(to, "/") {
		return "", fmt.Errorf("want GROUP/NODE, got %q", name)
	}
	node := p.status.node.Load()
	if node == nil {
		return "", errors.New("the cluster is not running")
	}
	res, err := node.Ownership.RequestMove(ctx, group, to)
	if err != nil {
		return "", err
	}
	return res.String(), nil
}
