package cluster

import (
	"context"
	"errors"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/xdpsec/xdpsec/internal/config"
)

// Node is this gateway's part in a cluster: its etcd member (embedded) or
// client, the ownership of the groups it may carry, and the writers and
// readers of the groups' state in etcd.
type Node struct {
	Etcd       *embed.Etcd // nil with external endpoints
	Client     *clientv3.Client
	Ownership  *Ownership
	Replicator *Replicator
	Marks      *SeqMarks
	Tops       *ReplayTops
}

// NodeOptions are what a Node needs beyond the configuration.
type NodeOptions struct {
	Log *slog.Logger
	// OnChange: see OwnershipConfig.
	OnChange func(group string, sending bool)
	// HandOver: see OwnershipConfig.
	HandOver HandOver
}

// StartNode starts this node's etcd member (cl.Embedded) or connects to
// cl.Endpoints, then runs the ownership of cl's groups. The configuration
// keeps its key; the Node's sealer has its own derived copy.
func StartNode(ctx context.Context, cl *config.Cluster, opt NodeOptions) (n *Node, err error) {
	n = &Node{}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if cl.Embedded != nil {
		if n.Etcd, err = StartEmbedded(ctx, cl); err != nil {
			return nil, err
		}
	}
	if n.Client, err = Connect(cl); err != nil {
		return nil, err
	}
	seal, err := NewSealer(cl.Key)
	if err != nil {
		return nil, err
	}
	specs := make([]GroupSpec, 0, len(cl.Groups))
	for _, g := range cl.Groups {
		s := GroupSpec{Name: g.Name}
		for _, gn := range g.Nodes { // most preferred first
			s.Nodes = append(s.Nodes, gn.Name)
		}
		specs = append(specs, s)
	}
	n.Ownership, err = StartOwnership(n.Client, OwnershipConfig{
		Cluster: cl.Name, Node: cl.Node, TTL: cl.LeaseTTL, Margin: cl.FenceMargin,
		Groups: specs, Log: opt.Log, OnChange: opt.OnChange, HandOver: opt.HandOver,
	})
	if err != nil {
		return nil, err
	}
	n.Replicator = NewReplicator(n.Ownership, seal)
	n.Marks = NewSeqMarks(n.Ownership)
	n.Tops = NewReplayTops(n.Ownership)
	return n, nil
}

// Close lets go of this node's groups (released for the others to take at
// once), then closes the client and stops the member.
func (n *Node) Close() error {
	var errs []error
	if n.Ownership != nil {
		errs = append(errs, n.Ownership.Close())
	}
	if n.Client != nil {
		errs = append(errs, n.Client.Close())
	}
	if n.Etcd != nil {
		n.Etcd.Close()
	}
	return errors.Join(errs...)
}
