package cluster

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xdpsec/xdpsec/internal/config"
)

// oneWayProxy forwards TCP to target; while dropping it delivers what the
// client sends and throws away what etcd answers (a path that loses only
// the replies: the requests commit, the client hears nothing).
type oneWayProxy struct {
	l        net.Listener
	dropping atomic.Bool
}

func newOneWayProxy(t *testing.T, target string) *oneWayProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &oneWayProxy{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(u, c); u.Close() }()
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && !p.dropping.Load() {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestRepliesLost: etcd's replies to the owner are lost, its requests
// still arrive: its renewals commit but it hears of none. It must stop
// sending by its deadline (the last renewal it heard of + TTL − margin),
// and, fenced, write nothing more until it hears etcd again, so the
// standby takes over a TTL after the last renewal that committed: within
// 2 TTL − margin of the cut, never while the owner might send. Then the
// replies flow again: the owner is back as a standby. Before, a fenced
// owner kept renewing blindly until its client gave up the connection
// (gRPC keepalive, 1 s + 1 s, and more: 3.5 s here), and the standby
// took over 4.5 s after the cut, nobody sending in between.
func TestRepliesLost(t *testing.T) {
	const ttl, margin = time.Second, 250 * time.Millisecond
	const keepalive = 2 * time.Second // Connect: DialKeepAliveTime + DialKeepAliveTimeout, for the report
	cl := testEtcd(t)
	proxy := newOneWayProxy(t, strings.TrimPrefix(cl.Embedded.ClientURL, "http://"))
	ca := testClient(t, &config.Cluster{Endpoints: []string{"http://" + proxy.l.Addr().String()}})
	var logA syncBuf
	a, b := ownerPair(t, cl, ca, ttl, margin, slog.New(slog.NewTextHandler(&logA, nil)))
	ga, gb := a.Group("g1"), b.Group("g1")
	w := watchGates(ga, gb)
	defer w.close()
	// The last commit of a's renewals, as etcd's watchers see it.
	admin := testClient(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var lastRenewal atomic.Int64
	wch := admin.Watch(ctx, a.keys.owner("g1"))
	go func() {
		for wr := range wch {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut && strings.HasPrefix(string(ev.Kv.Value), "a ") {
					lastRenewal.Store(Now())
				}
			}
		}
	}()
	time.Sleep(ttl / 2)
	if !ga.MaySend(Now()) || gb.MaySend(Now()) {
		t.Fatal("a is not the only sender")
	}
	t0 := Now()
	proxy.dropping.Store(true)
	if !waitFor(keepalive+ttl+2*time.Second, func() bool { return gb.MaySend(Now()) }) {
		proxy.dropping.Store(false)
		t.Fatalf("b did not take g1 within %v of the cut (a's renewals last committed %v after it)", keepalive+ttl+2*time.Second,
			time.Duration(lastRenewal.Load()-t0))
	}
	lastA, bSince, last := w.lastA.Load(), gb.Since(), lastRenewal.Load()
	t.Logf("a stopped %v after the cut; its renewals committed until %v after it; b took g1 %v after the cut",
		time.Duration(lastA-t0), time.Duration(last-t0), time.Duration(bSince-t0))
	if lastA >= t0+int64(ttl-margin) {
		t.Errorf("a might send %v after the cut (lease %v, margin %v)", time.Duration(lastA-t0), ttl, margin)
	}
	if last <= t0 {
		t.Errorf("none of a's renewals committed after the cut: the proxy lost the requests too")
	}
	// The owner writes nothing after its deadline (cut + TTL − margin at
	// the latest) until it hears etcd; b waits a TTL from the last write.
	if bound := 2*ttl - margin + 500*time.Millisecond; time.Duration(bSince-t0) > bound {
		t.Errorf("b took g1 %v after the cut: over 2 leases − margin + 500 ms = %v (a's renewals kept committing unheard)", time.Duration(bSince-t0), bound)
	}
	proxy.dropping.Store(false)
	if !waitFor(10*time.Second, func() bool { return ga.Owner() == "b" }) || ga.MaySend(Now()) || !gb.MaySend(Now()) {
		t.Fatalf("after the heal a sees owner %q, a sends %v, b sends %v\n%s", ga.Owner(), ga.MaySend(Now()), gb.MaySend(Now()), logA.String())
	}
	time.Sleep(ttl)
	if at := w.overlap.Load(); at != 0 {
		t.Fatalf("a and b might both send at %v", time.Duration(at-t0))
	}
	if ga.MaySend(Now()) || !gb.MaySend(Now()) {
		t.Fatal("a took g1 back after the heal")
	}
}
