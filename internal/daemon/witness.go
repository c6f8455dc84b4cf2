package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/xdpsec/xdpsec/internal/cluster"
	"github.com/xdpsec/xdpsec/internal/config"
)

// RunWitness runs an etcd witness (cluster.witness): this node's embedded
// etcd member and nothing else (no interfaces, no XDP, no tunnels, no
// control socket), until ctx is done or the member fails. A two-node
// cluster needs a third member for its quorum: without it the survivor of
// a kill could neither renew nor take a group. ready, if set, is called
// once the member serves.
func RunWitness(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func()) error {
	cl := cfg.Cluster
	jctx, cancel := context.WithTimeout(ctx, clusterJoinTimeout)
	srv, err := cluster.StartEmbedded(jctx, cl)
	cancel()
	if err != nil {
		return fmt.Errorf("refusing to start: %w (an embedded etcd member waits for a quorum of its members: start them within %v)", err, clusterJoinTimeout)
	}
	defer srv.Close()
	log.Info("witness up: an etcd member only", "cluster", cl.Name, "node", cl.Node, "peer_url", cl.Embedded.PeerURL,
		"members", len(cl.Embedded.Members))
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-srv.Err():
		return fmt.Errorf("cluster: etcd member %s: %w", cl.Node, err)
	}
}
