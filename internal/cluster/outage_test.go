package cluster

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// TestOwnerOutage: the owner's etcd connection stalls for longer than its
// slack but less than a lease: it stops sending at its deadline, and as
// soon as the connection delivers again its pending renewal commits and it
// sends again, with the standby never taking over. A 2 s lease (slack
// 1.2 s) and a 1.5 s stall leave half a second either side for a loaded
// machine.
func TestOwnerOutage(t *testing.T) {
	const ttl, margin, stall = 2 * time.Second, 300 * time.Millisecond, 1500 * time.Millisecond
	cl := testEtcd(t)
	proxy := newStallProxy(t, strings.TrimPrefix(cl.Embedded.ClientURL, "http://"))
	viaProxy := &config.Cluster{Endpoints: []string{"http://" + proxy.l.Addr().String()}}
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b"}}}
	a, err := StartOwnership(testClient(t, viaProxy), OwnershipConfig{Cluster: "test", Node: "a", TTL: ttl, Margin: margin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ga := a.Group("g1")
	if !waitFor(5*time.Second, func() bool { return ga.MaySend(Now()) }) {
		t.Fatal("a never took g1")
	}
	b, err := StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: "b", TTL: ttl, Margin: margin, Groups: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	time.Sleep(ttl / 2)
	// Stall just after a renewal: the stall outlasts the slack (3/4 of the
	// lease less the margin), not the lease (b's clock starts when it saw
	// the renewal).
	since := ga.Since()
	waitFor(ttl, func() bool { return ga.Deadline() > Now()+int64(ttl*3/4-margin)-int64(10*time.Millisecond) })
	proxy.stalled.Store(true)
	time.Sleep(stall)
	stalledFor := Now()
	if ga.MaySend(stalledFor) {
		t.Fatalf("a still may send %v into a stall: its slack is %v", stall, ttl*3/4-margin)
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
