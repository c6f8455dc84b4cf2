package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/internal/bgp"
	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
)

// clusterPlane runs the cluster (cluster: section, package cluster) for
// the static SAs of the tunnel groups: an outbound SA sends only while
// this node owns its group (its gate, which ReserveSeq checks once per
// batch, closes by itself at the lease's deadline) and above the group's
// mark in etcd, which the Reserver raises ahead of the traffic exactly as
// it does a state_dir mark; an inbound SA's window is marked seen up to
// the published top when this node takes the group, and its top is
// published while it owns it. (Negotiated SAs and the addresses are the
// next steps; see docs/cluster.md.)
type clusterPlane struct {
	cfg  *config.Cluster
	log  *slog.Logger
	node *cluster.Node
	// out are each group's outbound static SAs (Fingerprint: their mark's
	// id), in each group's inbound ones.
	out    map[string][]seqstate.Key
	in     map[string][]*sad.SA
	res    *seqstate.Reserver
	events chan groupEvent
	// addrs moves the groups' addresses (clusteraddr.go).
	addrs *groupAddrs
	// ike runs the groups' negotiated tunnels (cluster_ike.go).
	ike *clusterIKE
	// bgp announces the bgp groups' addresses (clusteraddr_bgp.go).
	bgp    atomic.Pointer[bgp.Speaker]
	cancel context.CancelFunc
	done   chan struct{}
	status clusterStatus // cluster_status.go
	ho     handOverState // cluster_move.go
}

type groupEvent struct {
	group   string
	sending bool
}

// newClusterPlane sorts the static SAs (sas, in cfg.SAs' order) into
// their groups; it reads the keys for the marks' ids, so it runs before
// the configuration's keys are wiped.
func newClusterPlane(cfg *config.Config, sas []*sad.SA, log *slog.Logger) *clusterPlane {
	p := &clusterPlane{cfg: cfg.Cluster, log: log, out: map[string][]seqstate.Key{}, in: map[string][]*sad.SA{},
		events: make(chan groupEvent, 64)}
	p.addrs = newGroupAddrs(cfg.Cluster, log)
	p.ike = newClusterIKE(p, log)
	for i, sa := range sas {
		sc := &cfg.SAs[i]
		g := cfg.Cluster.GroupOfSA(sc.Name)
		if g == "" {
			continue
		}
		if sa.Dir == sad.Outbound {
			sa.SetSeqLimit(0) // nothing until this node owns the group
			p.out[g] = append(p.out[g], seqstate.Key{SA: sa, Fingerprint: cluster.ID(g, seqstate.Fingerprint(sc.Key, sc.IntegKey))})
		} else {
			p.in[g] = append(p.in[g], sa)
		}
	}
	return p
}

// start joins the cluster and runs the group changes, the reservations
// and the replay tops until close.
func (p *clusterPlane) start(ctx context.Context) error {
	node, err := cluster.StartNode(ctx, p.cfg, cluster.NodeOptions{Log: p.log, OnChange: func(g string, sending bool) {
		if !sending {
			p.addrs.set(g, false) // at once: before a release or move is written
		} else {
			p.taken(g)
		}
		p.events <- groupEvent{g, sending}
	}, HandOver: p.handOver()})
	if err != nil {
		return err
	}
	p.node = node
	p.ho.node.Store(node)
	p.addrs.own.Store(node.Ownership)
	// The workers do not run yet: the gates are in place before any
	// batch reads them.
	for g, ks := range p.out {
		gate := node.Ownership.Group(g).Gate()
		for _, k := range ks {
			k.SA.SetGate(gate)
		}
	}
	// Inbound ones receive only while the group is ready here (the
	// published tops applied): a standby decrypts none of their packets.
	for g, sas := range p.in {
		gate := node.Ownership.Group(g).Gate()
		for _, sa := range sas {
			sa.SetGate(gate)
		}
	}
	p.res = seqstate.NewReserver(node.Marks.Save)
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	p.status.begin(rctx, node)
	go p.run(rctx)
	return nil
}

// run owns the Reserver: group changes, and a Refresh every
// seqstate.RefreshInterval.
func (p *clusterPlane) run(ctx context.Context) {
	defer close(p.done)
	tops := make(chan struct{})
	go func() {
		defer close(tops)
		p.node.Tops.Run(ctx, p.cfg.ReplayPublish, func(g string) []*sad.SA { return append(slices.Clone(p.in[g]), p.ike.inbound(g)...) }, func(err error) {
			p.log.Warn("cluster: replay tops not published", "err", err)
		})
	}()
	defer func() { <-tops }()
	t := time.NewTicker(seqstate.RefreshInterval)
	defer t.Stop()
	var f saveFailures
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-p.events:
			// The ticket before the tops are read: a close meanwhile (the
			// group lost again) makes it stale, and the group is not
			// marked ready on windows older than the close.
			gate := p.node.Ownership.Group(ev.group).Gate()
			tk := gate.Ticket()
			ok := p.change(ctx, ev)
			p.ike.change(ctx, ev)
			if ev.sending && ok {
				// Tops applied, marks resumed: the group's SAs may
				// receive now (sad.Gate.Ready).
				gate.MarkReady(tk)
				p.addrs.set(ev.group, true) // the addresses bring the traffic: last
			}
		case now := <-t.C:
			f.note(p.log, p.res.Refresh(now),
				"cluster: cannot raise sequence marks: the groups' outbound SAs stop at their marks (seq_unreserved)",
				"cluster: sequence marks raised again")
		}
	}
}

// change takes a group's static SAs over or lets them go; on a take it
// reports whether they resumed (the caller moves the addresses after the
// negotiated tunnels are taken over too).
func (p *clusterPlane) change(ctx context.Context, ev groupEvent) bool {
	if !ev.sending {
		p.res.Remove(p.out[ev.group])
		for _, k := range p.out[ev.group] {
			k.SA.SetSeqLimit(k.SA.Seq()) // what a worker reserved is the last
		}
		p.addrs.set(ev.group, false)
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.LeaseTTL)
	defer cancel()
	// Replay tops before the SAs may send (the group's addresses, which
	// bring its traffic here, move after that).
	err := errors.Join(p.node.Tops.Apply(cctx, ev.group, p.in[ev.group]),
		p.node.Marks.Resume(cctx, p.res, p.out[ev.group], time.Now()))
	if err != nil {
		p.log.Error("cluster: group taken but its SAs not resumed: they stay stopped", "group", ev.group, "err", err)
		p.res.Remove(p.out[ev.group])
		for _, k := range p.out[ev.group] {
			k.SA.SetSeqLimit(min(k.SA.SeqLimit(), k.SA.Seq()))
		}
		return false
	}
	p.log.Info("cluster: group's SAs resumed above their marks", "group", ev.group, "outbound", len(p.out[ev.group]), "inbound", len(p.in[ev.group]))
	return true
}

// clusterJoinTimeout bounds the wait for the cluster's etcd at start: an
// embedded member waits for a quorum of its members.
const clusterJoinTimeout = time.Minute

// startCluster joins the cluster before any worker runs.
func (d *Daemon) startCluster() error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterJoinTimeout)
	defer cancel()
	if err := d.cluster.start(ctx); err != nil {
		return fmt.Errorf("refusing to start: %w (an embedded etcd member waits for a quorum of its members: start them within %v)", err, clusterJoinTimeout)
	}
	d.log.Info("cluster joined", "cluster", d.cfg.Cluster.Name, "node", d.cfg.Cluster.Node, "groups", len(d.cfg.Cluster.Groups))
	return nil
}

// close lets go of this node's groups and leaves the cluster.
func (p *clusterPlane) close() error {
	if p.node == nil {
		return nil
	}
	err := p.node.Close() // fences, releases: its OnChange events queue
	p.addrs.close()
	p.stopBGP()
	p.cancel()
	<-p.done
	// Only now: the plane's goroutines read it until done.
	p.node = nil
	p.ike.close()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}
