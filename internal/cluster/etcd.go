package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/xdpsec/xdpsec/internal/config"
)

// For tests: quietEtcd silences the embedded member's own log, and
// noFsync spares it the disk's latency (which a loaded CI disk makes
// long enough to miss renewals), as tests need no durability.
var quietEtcd, noFsync bool

// Raft timing of the embedded member. A group owner renews every quarter
// of its lease; while the etcd members elect a new leader (ElectionMs to
// twice that, plus a pre-vote and a vote round) no renewal commits, so the
// election must fit in the slack between a renewal and the owner's
// deadline, TTL*3/4 - margin: 375 ms with the defaults (700 ms, 150 ms).
// It also bounds a takeover: a renewal the dead owner sent just before it
// died, when it was also the etcd leader, commits only once the election
// is over, and a standby counts its lease from when it saw that renewal,
// so the takeover is up to an election longer (docs/cluster.md). 10 ms
// ticks and a 100 ms election timeout keep that under a second with the
// default lease, on a LAN; etcd's defaults (100 ms, 1 s) would fence every
// group whenever the etcd leader's node dies. etcd's lease minimum follows
// from them: ceil(1.5 × 100 ms) rounded up to whole seconds = 1 s.
const (
	TickMs     = 10
	ElectionMs = 100
)

// EtcdHistory is how much history the embedded member keeps: it compacts
// older revisions every EtcdHistory. A watch that falls further behind
// lists again (followPrefix).
const EtcdHistory = 5 * time.Minute

// StartEmbedded starts this node's etcd member and waits until it serves
// (or ctx ends). Every member lists the same members, so the first start
// of all of them forms the cluster ("new"); a member whose data directory
// holds a cluster already rejoins it.
func StartEmbedded(ctx context.Context, cl *config.Cluster) (*embed.Etcd, error) {
	e := cl.Embedded
	if e == nil {
		return nil, errors.New("cluster: no embedded etcd configured")
	}
	cfg := embed.NewConfig()
	cfg.Name = cl.Node
	cfg.Dir = e.DataDir
	cfg.TickMs, cfg.ElectionMs = TickMs, ElectionMs
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	if quietEtcd {
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	}
	cfg.UnsafeNoFsync = noFsync
	// Keep EtcdHistory of history, no more: every renewal, replay top and
	// record is a revision, and etcd keeps all of them until compacted
	// (100 busy tunnels write ~1,000 keys a second): without compaction
	// the member reaches its space quota within hours and refuses every
	// write, renewals too (docs/cluster.md, "Capacity").
	cfg.AutoCompactionMode, cfg.AutoCompactionRetention = embed.CompactorModePeriodic, EtcdHistory.String()
	peer, err := url.Parse(e.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: peer_url: %w", err)
	}
	client, err := url.Parse(e.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: client_url: %w", err)
	}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	names := make([]string, 0, len(e.Members))
	for n := range e.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	var ic []string
	for _, n := range names {
		ic = append(ic, n+"="+e.Members[n])
	}
	cfg.InitialCluster = strings.Join(ic, ",")
	cfg.InitialClusterToken = "xdpsec-" + cl.Name
	cfg.ClusterState = embed.ClusterStateFlagNew
	if cl.TLSCert != "" {
		ti := transport.TLSInfo{CertFile: cl.TLSCert, KeyFile: cl.TLSKey, TrustedCAFile: cl.TLSCA, ClientCertAuth: true}
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = ti, ti
	}
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd member %s: %w", cl.Node, err)
	}
	select {
	case <-srv.Server.ReadyNotify():
		return srv, nil
	case err := <-srv.Err():
		srv.Close()
		return nil, fmt.Errorf("cluster: etcd member %s: %w", cl.Node, err)
	case <-ctx.Done():
		srv.Close()
		return nil, fmt.Errorf("cluster: etcd member %s not ready: %w", cl.Node, ctx.Err())
	}
}

// Connect makes this node's etcd client: to its embedded member, or to
// the external endpoints.
func Connect(cl *config.Cluster) (*clientv3.Client, error) {
	eps := cl.Endpoints
	if cl.Embedded != nil {
		eps = []string{cl.Embedded.ClientURL}
	}
	cfg := clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 2 * time.Second,
		// Keepalives find a dead connection within a lease: the
		// renewals' own deadlines do the fencing, these only reconnect.
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	}
	if cl.TLSCert != "" {
		ti := transport.TLSInfo{CertFile: cl.TLSCert, KeyFile: cl.TLSKey, TrustedCAFile: cl.TLSCA}
		tc, err := ti.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("cluster: etcd tls: %w", err)
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client: %w", err)
	}
	return c, nil
}
