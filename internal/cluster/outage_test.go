package cluster

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/xdpsec/xdpsec/internal/config"
)

// stallProxy forwards TCP to target; while stalled it holds every byte
// back (a network that stops delivering, as in a partition).
type stallProxy struct {
	l       net.Listener
	stalled atomic.Bool
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l}
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
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	return p
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.stalled.Load() {
			time.Sleep(time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestOwnerOutage: the owner's etcd connection stalls past its deadline
// but not past the standby's lease: it stops sending at its deadline, and
// as soon as the connection delivers again its pending renewal commits and
// it sends again, with the standby never taking over. The standby's lease
// ends a margin after the owner's deadline: with a 3 s lease and a 1 s
// margin, a stall that ends 200 ms after the deadline leaves the renewal
// 800 ms to commit, room for a loaded machine. a's client keeps its
// connection through the stall (no keepalive timeout within it).
func TestOwnerOutage(t *testing.T) {
	const ttl, margin = 3 * time.Second, time.Second
	cl := testEtcd(t)
	proxy := newStallProxy(t, strings.TrimPrefix(cl.Embedded.ClientURL, "http://"))
	viaProxy := &config.Cluster{Endpoints: []string{"http://" + proxy.l.Addr().String()}}
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}}
	ca, err := clientv3.New(clientv3.Config{Endpoints: viaProxy.Endpoints, DialTimeout: 2 * time.Second,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	a, err := StartOwnership(ca, OwnershipConfig{Cluster: "test", Node: "a", TTL: ttl, Margin: margin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ga := a.Group("g1")
	if !waitFor(10*time.Second, func() bool { return ga.MaySend(Now()) }) {
		t.Fatal("a never took g1")
	}
	b, err := StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "b", TTL: ttl, Margin: margin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	time.Sleep(ttl / 2)
	since := ga.Since()
	// Stall right after a renewal (b saw it), until 200 ms past a's
	// deadline.
	if !waitFor(ttl, func() bool { return ga.Deadline() > Now()+int64(ttl-margin-100*time.Millisecond) }) {
		t.Fatal("no renewal seen")
	}
	proxy.stalled.Store(true)
	end := ga.Deadline() + int64(200*time.Millisecond)
	time.Sleep(time.Duration(end - Now()))
	stalledFor := Now()
	if ga.MaySend(stalledFor) {
		t.Fatal("a still may send past its deadline in a stall")
	}
	proxy.stalled.Store(false)
	if !waitFor(ttl/2, func() bool { return ga.MaySend(Now()) }) {
		t.Fatal("a did not resume once its connection delivered again")
	}
	t.Logf("a resumed %v after the stall ended", time.Duration(ga.Since()-stalledFor))
	if ga.Since() == since {
		t.Fatal("a never stopped")
	}
	if b.Group("g1").Since() != 0 || b.Group("g1").Stopped() != 0 {
		t.Fatal("b took g1 during a's stall")
	}
}
