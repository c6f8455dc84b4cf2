package cluster

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
)

var freeURL, waitFor = etcdtest.FreeURL, etcdtest.WaitFor

// testEtcd starts a one-member embedded etcd in a temporary directory and
// returns its configuration (for more clients); it stops with the test.
func testEtcd(t *testing.T) *config.Cluster {
	t.Helper()
	cl, _ := testEtcdServer(t)
	return cl
}

// testEtcdServer is testEtcd with its member.
func testEtcdServer(t *testing.T) (*config.Cluster, *embed.Etcd) {
	quietEtcd, noFsync = true, true
	t.Helper()
	peer := freeURL(t)
	cl := &config.Cluster{Name: "test", Node: "n1", Embedded: &config.EmbeddedEtcd{
		DataDir: t.TempDir(), PeerURL: peer, ClientURL: freeURL(t), Members: map[string]string{"n1": peer},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := StartEmbedded(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return cl, srv
}

// testClient is one more client of cl's etcd, closed with the test.
func testClient(t *testing.T, cl *config.Cluster) *clientv3.Client {
	t.Helper()
	c, err := Connect(cl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
