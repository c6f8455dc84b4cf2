package cluster

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// syncBuf is a log buffer the group loops may write to concurrently.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRequestMove: a move asked on any node (the owner, another allowed
// node, a node outside the group) hands the group over at once; moves
// that cannot work are refused with a message that names the problem;
// each change of owner is one log line on each node it involves.
func TestRequestMove(t *testing.T) {
	cl := testEtcd(t)
	// d may carry g1 but never starts.
	spec := []GroupSpec{{Name: "g1", Nodes: []string{"a", "b", "d"}}, {Name: "g2", Nodes: []string{"b", "a"}}}
	logs := map[string]*syncBuf{}
	start := func(node string) *Ownership {
		logs[node] = &syncBuf{}
		o, err := StartOwnership(testClient(t, cl), OwnershipConfig{Cluster: "test", Node: node, TTL: testTTL, Margin: testMargin,
			Groups: spec, Log: slog.New(slog.NewTextHandler(logs[node], nil))})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	a := start("a")
	defer a.Close()
	b := start("b")
	defer b.Close()
	c := start("c")
	defer c.Close()
	if !waitFor(5*time.Second, func() bool { return a.Group("g1").MaySend(Now()) && b.Group("g2").MaySend(Now()) }) {
		t.Fatalf("g1 owner %q, g2 owner %q", a.Group("g1").Owner(), b.Group("g2").Owner())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ group, node, want string }{
		{"nope", "b", `no group "nope" (groups: g1, g2)`},
		{"g1", "zz", `no node "zz" in the cluster`},
		{"g1", "c", `node "c" may not carry group g1 (allowed: a, b, d)`},
		{"g2", "d", `node "d" may not carry group g2 (allowed: b, a)`},
		{"g1", "d", `node "d" is not up`},
	} {
		_, err := c.RequestMove(ctx, tc.group, tc.node)
		if !errors.Is(err, ErrMove) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("move %s %s: %v, want %q", tc.group, tc.node, err, tc.want)
		}
	}
	if !a.Group("g1").MaySend(Now()) {
		t.Fatal("a refused move moved g1")
	}
	// From c, which may not carry g1: through etcd to a.
	res, err := c.RequestMove(ctx, "g1", "b")
	if err != nil {
		t.Fatal(err)
	}
	if res.From != "a" || res.To != "b" || res.Already {
		t.Fatalf("result %+v", res)
	}
	if a.Group("g1").MaySend(Now()) || !waitFor(testTTL/4, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("g1 did not move from a to b")
	}
	t.Logf("%v (asked on c)", res)
	// On the owner itself.
	if res, err = b.RequestMove(ctx, "g1", "a"); err != nil || res.From != "b" {
		t.Fatalf("%v %+v", err, res)
	}
	t.Logf("%v (asked on the owner)", res)
	if !waitFor(testTTL/4, func() bool { return a.Group("g1").MaySend(Now()) }) || b.Group("g1").MaySend(Now()) {
		t.Fatal("g1 did not move back to a")
	}
	if res, err = c.RequestMove(ctx, "g1", "a"); err != nil || !res.Already {
		t.Fatalf("a move to the owner: %v %+v", err, res)
	}
	// From a, the standby of g2.
	if res, err = a.RequestMove(ctx, "g2", "a"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%v (asked on the target)", res)
	if !waitFor(testTTL/4, func() bool { return a.Group("g2").MaySend(Now()) }) || b.Group("g2").MaySend(Now()) {
		t.Fatal("g2 did not move to a")
	}
	// The request keys are gone once answered.
	if resp, err := c.cli.Get(ctx, c.keys.moves(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("move requests left in etcd: %v %v", resp, err)
	}
	if n := a.Group("g1").Changes(); n != 2 {
		t.Errorf("a saw %d changes of g1's owner, want 2 (a->b->a)", n)
	}
	for _, want := range []struct{ node, line string }{
		{"a", "group=g1 from=none to=a reason=takeover"},
		{"a", "group=g1 from=a to=b reason=move"},
		{"b", "group=g1 from=a to=b reason=move"},
		{"b", "group=g1 from=b to=a reason=move"},
		{"a", "group=g1 from=b to=a reason=move"},
		{"a", "group=g2 from=b to=a reason=move"},
		{"b", "group=g2 from=b to=a reason=move"}, // once its mark is written: maybe after a took g2
	} {
		if !waitFor(time.Second, func() bool {
			return strings.Contains(logs[want.node].String(), "msg=\"cluster: group owner changed\" "+want.line)
		}) {
			t.Errorf("no log line %q in\n%s", want.line, logs[want.node].String())
		}
	}
	lb, lc := logs["b"].String(), logs["c"].String()
	if strings.Contains(lc, "group owner changed") {
		t.Errorf("c, not involved, logged a change:\n%s", lc)
	}
	if n := strings.Count(lb, "group=g1 from=a to=b reason=move"); n != 1 {
		t.Errorf("b logged the move of g1 to it %d times", n)
	}
	st := (&Node{Ownership: a}).Groups()
	if len(st) != 2 || st[0].Role != RoleActive || st[0].Writes["renew"] == 0 || st[0].Changes != 2 || st[0].OwnerSeen < 0 {
		t.Errorf("a's status %+v", st)
	}
	if st := (&Node{Ownership: c}).Groups(); st[0].Role != RoleNone || st[1].Role != RoleNone {
		t.Errorf("c's status %+v", st)
	}
	if st := (&Node{Ownership: b}).Groups(); st[0].Role != RoleStandby || st[0].Owner != "a" {
		t.Errorf("b's status %+v", st)
	}
	// a loses etcd: b takes g1 and g2 after a lease; a fences itself.
	a.cli.Close()
	if !waitFor(3*testTTL, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("b did not take g1 over")
	}
	if !waitFor(testTTL, func() bool { return strings.Contains(logs["a"].String(), "group=g1 from=a to=none reason=fenced") }) {
		t.Errorf("a did not log its fencing:\n%s", logs["a"].String())
	}
	if lb := logs["b"].String(); !strings.Contains(lb, "group=g1 from=a to=b reason=takeover") {
		t.Errorf("b did not log its takeover:\n%s", lb)
	}
	if st := (&Node{Ownership: a}).Groups(); st[0].Role != RoleFenced {
		t.Errorf("a's status after losing etcd: %+v", st[0])
	}
}
