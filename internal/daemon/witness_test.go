package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/internal/cluster/etcdtest"
	"github.com/xdpsec/xdpsec/internal/config"
)

// TestRunWitness: a witness's configuration (no interfaces, no tunnels)
// runs its etcd member, which serves clients, logs one line, and stops
// when the context ends. No root needed: nothing but etcd runs.
func TestRunWitness(t *testing.T) {
	peer, client := etcdtest.FreeURL(t), etcdtest.FreeURL(t)
	y := `cluster:
  name: lab
  node: w
  witness: true
  etcd:
    embedded:
      data_dir: ` + t.TempDir() + `
      peer_url: ` + peer + `
      client_url: ` + client + `
      members: {w: "` + peer + `"}
`
	cfg, err := config.Parse("w.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunWitness(ctx, cfg, slog.New(slog.NewTextHandler(&logBuf, nil)), func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("RunWitness: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the witness's member not ready after 30 s")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if _, err := cli.Put(pctx, "/xdpsec/lab/probe", "x"); err != nil {
		t.Fatalf("the witness's member does not serve: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunWitness after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunWitness did not return after its context ended")
	}
	if !strings.Contains(logBuf.String(), `msg="witness up: an etcd member only" cluster=lab node=w`) {
		t.Fatalf("log: %s", logBuf.String())
	}
}
