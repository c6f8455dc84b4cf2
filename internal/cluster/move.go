package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Moving a group on request (`xdpsec cluster move GROUP NODE`), from any
// node, and what the status and the metrics need of the ownership: the
// node's presence key, per-group counters, and one log line per change of
// a group's owner.
//
// Keys, besides the groups' (keys.go):
//
//	/xdpsec/CLUSTER/nodes/NODE   present while NODE's etcd session lives
//	/xdpsec/CLUSTER/moves/GROUP  "ID TARGET OWNERVALUE": a request to the
//	                             owner named by OWNERVALUE ("NODE TERM")
//	                             to hand GROUP to TARGET; "failed ID why"
//	                             when the owner refused it
func (k keys) node(n string) string { return fmt.Sprintf("/xdpsec/%s/nodes/%s", k.cluster, n) }
func (k keys) moves() string        { return fmt.Sprintf("/xdpsec/%s/moves/", k.cluster) }
func (k keys) move(g string) string { return k.moves() + g }

// WriteKind is what an etcd write of a group was for, as the metrics
// count them (the etcd write rate per tunnel).
type WriteKind int

const (
	WriteRenew  WriteKind = iota // owner key: take, renewal, release, move
	WriteSeq                     // a sequence-number reservation
	WriteReplay                  // a publication of replay-window tops
	WriteRecord                  // an SA record written or deleted
	nWriteKinds
)

// WriteKinds are the kinds' names, by WriteKind.
var WriteKinds = [nWriteKinds]string{"renew", "seq", "replay", "record"}

// groupStats are a group's counters for the status and the metrics.
type groupStats struct {
	changes atomic.Uint64 // changes of owner this node saw
	last    atomic.Pointer[string]
	seen    atomic.Int64 // Now() when the owner key last changed (renewals too)
	writes  [nWriteKinds]atomic.Uint64
	// followed: records a standby took in (installed or removed), the
	// last at followedAt (Now()).
	followed   atomic.Uint64
	followedAt atomic.Int64
}

// ownershipExt is what move.go keeps for an Ownership.
type ownershipExt struct {
	started int64 // Now() at StartOwnership
	// moving: the ids of the move requests being carried out (a re-list
	// after a broken watch shows them again).
	moving sync.Map
}

// CountWrite counts one etcd write of kind for group.
func (o *Ownership) CountWrite(group string, kind WriteKind) {
	if g := o.groups[group]; g != nil && kind >= 0 && kind < nWriteKinds {
		g.stats.writes[kind].Add(1)
	}
}

// countFollowed counts a record followed for group (Replicator.Follow).
func (o *Ownership) countFollowed(group string) {
	if g := o.groups[group]; g != nil {
		g.stats.followed.Add(1)
		g.stats.followedAt.Store(Now())
	}
}

// setOwner records who etcd says owns g now ("" none: released, moving,
// absent) and counts a change of owner (to another named node).
func (g *Group) setOwner(name string) {
	g.owner.Store(&name)
	if name == "" {
		return
	}
	if p := g.stats.last.Load(); p == nil || *p != name {
		if p != nil {
			g.stats.changes.Add(1)
		}
		g.stats.last.Store(&name)
	}
}

// lastOwner is the last node etcd named as g's owner ("" none yet).
func (g *Group) lastOwner() string {
	if p := g.stats.last.Load(); p != nil {
		return *p
	}
	return ""
}

// Changes is how many times this node saw g's owner change.
func (g *Group) Changes() uint64 { return g.stats.changes.Load() }

// Nodes are the nodes allowed to carry g, most preferred first.
func (g *Group) Nodes() []string { return slices.Clone(g.nodes) }

// Ownership-change reasons, in the log line and the status.
const (
	ReasonTakeover = "takeover" // the owner's lease ran out (or there was none)
	ReasonMove     = "move"     // handed over (xdpsec cluster move)
	ReasonFenced   = "fenced"   // this node stopped: lease not renewed, or taken
	ReasonReleased = "released" // the owner shut down
)

// logChange is the one log line per change of a group's owner, on each
// node the change involves.
func (o *Ownership) logChange(g *Group, from, to, reason string, took time.Duration, more ...any) {
	if from == "" {
		from = "none"
	}
	if to == "" {
		to = "none"
	}
	attrs := append([]any{"group", g.Name, "from", from, "to", to, "reason", reason, "took_ms", took.Milliseconds(), "node", o.node}, more...)
	if reason == ReasonFenced {
		o.log.Warn("cluster: group owner changed", attrs...)
		return
	}
	o.log.Info("cluster: group owner changed", attrs...)
}

// logTaken logs this node's taking g, which etcd held as prev (seen at
// prevSeen) before, from's (the last owner etcd named).
func (l *groupLoop) logTaken(prev string, prevSeen int64, from string) {
	reason := ReasonTakeover
	switch {
	case prev == released:
		reason = ReasonReleased
	case strings.HasPrefix(prev, movePrefix):
		reason = ReasonMove
	}
	l.o.logChange(l.g, from, l.o.node, reason, time.Duration(Now()-prevSeen))
}

// logLost logs this node's losing g (fence's why); a release or a move
// (letGo) logs itself once written.
func (l *groupLoop) logLost(why string) {
	if why == released || strings.HasPrefix(why, movePrefix) {
		return
	}
	to := ""
	if v, ok := strings.CutPrefix(why, "taken by "); ok {
		to, _, _ = strings.Cut(v, " ")
		if v == released || strings.HasPrefix(v, movePrefix) {
			to = ""
		}
	}
	l.o.logChange(l.g, l.o.node, to, ReasonFenced, time.Duration(Now()-l.sentAt), "why", why)
}

// logLetGo logs a release or a move this node wrote, took after it
// stopped sending.
func (l *groupLoop) logLetGo(val string, took time.Duration) {
	if to, ok := strings.CutPrefix(val, movePrefix); ok {
		l.o.logChange(l.g, l.o.node, to, ReasonMove, took)
		return
	}
	l.o.logChange(l.g, l.o.node, "", ReasonReleased, took)
}

// startExt writes this node's presence key (on the session's lease: it
// goes when the node does) and serves move requests addressed to it.
func (o *Ownership) startExt() error {
	o.ext.started = Now()
	ctx, cancel := context.WithTimeout(o.ctx, max(o.ttl, 5*time.Second))
	defer cancel()
	if err := o.putPresence(ctx, o.session()); err != nil {
		return err
	}
	o.wg.Add(1)
	go o.serveMoves()
	return nil
}

// Alive reports whether node has a live etcd session (its presence key).
func (o *Ownership) Alive(ctx context.Context, node string) (bool, error) {
	resp, err := o.cli.Get(ctx, o.keys.node(node), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("cluster: is %s up: %w", node, err)
	}
	return resp.Count > 0, nil
}

// OwnerOf reads group's owner from etcd ("" none): for the groups this
// node does not follow (not allowed to carry them).
func (o *Ownership) OwnerOf(ctx context.Context, group string) (string, error) {
	resp, err := o.cli.Get(ctx, o.keys.owner(group))
	if err != nil {
		return "", fmt.Errorf("cluster: group %s: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	v := string(resp.Kvs[0].Value)
	if v == released || strings.HasPrefix(v, movePrefix) {
		return "", nil
	}
	name, _, _ := strings.Cut(v, " ")
	return name, nil
}

// ErrMove is wrapped by every refusal of a move request that retrying
// would not change (unknown group or node, a node not allowed or not up).
var ErrMove = errors.New("move refused")

// checkMove refuses a move of group to node that cannot work.
func (o *Ownership) checkMove(ctx context.Context, group, node string) (*Group, error) {
	g := o.groups[group]
	if g == nil {
		names := make([]string, 0, len(o.groups))
		for n := range o.groups {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%w: no group %q (groups: %s)", ErrMove, group, strings.Join(names, ", "))
	}
	up, err := o.Alive(ctx, node)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(g.nodes, node) {
		known := up
		for _, og := range o.groups {
			known = known || slices.Contains(og.nodes, node)
		}
		if !known {
			return nil, fmt.Errorf("%w: no node %q in the cluster (no group lists it, none such is up)", ErrMove, node)
		}
		return nil, fmt.Errorf("%w: node %q may not carry group %s (allowed: %s)", ErrMove, node, group, strings.Join(g.nodes, ", "))
	}
	if !up {
		return nil, fmt.Errorf("%w: node %q is not up (no live etcd session)", ErrMove, node)
	}
	return g, nil
}

// MoveResult is what a move did.
type MoveResult struct {
	Group, From, To string
	// Took: from the request until the target's ownership was seen in
	// etcd, by the requesting node's clock.
	Took time.Duration
	// Already: the group was on To before the request; nothing moved.
	Already bool
}

func (r MoveResult) String() string {
	if r.Already {
		return fmt.Sprintf("group %s is active on %s already", r.Group, r.To)
	}
	return fmt.Sprintf("group %s moved from %s to %s in %d ms", r.Group, r.From, r.To, r.Took.Milliseconds())
}

// moveTimeout bounds a move request: the owner hands over in a few etcd
// round trips and the target takes at once.
func (o *Ownership) moveTimeout() time.Duration { return max(5*time.Second, 4*o.ttl) }

// RequestMove hands group over to node gracefully, from any node of the
// cluster: the owner stops sending, waits for its last batch, and marks
// the group for node, which takes it at once and resumes its SAs above
// their marks. On the owner this is Move; elsewhere the request goes to
// the owner through etcd (/moves/GROUP, written only while the owner is
// the one this node saw: guarded by its owner value). It returns once
// etcd names node as the owner.
func (o *Ownership) RequestMove(ctx context.Context, group, node string) (MoveResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.moveTimeout())
	defer cancel()
	t0 := Now()
	res := MoveResult{Group: group, To: node}
	g, err := o.checkMove(ctx, group, node)
	if err != nil {
		return res, err
	}
	okey := o.keys.owner(group)
	resp, err := o.cli.Get(ctx, okey)
	if err != nil {
		return res, fmt.Errorf("cluster: group %s: %w", group, err)
	}
	if len(resp.Kvs) == 0 {
		return res, fmt.Errorf("cluster: group %s has no owner now: try again", group)
	}
	val := string(resp.Kvs[0].Value)
	if val == released || strings.HasPrefix(val, movePrefix) {
		return res, fmt.Errorf("cluster: group %s has no owner now (%s): try again", group, val)
	}
	res.From, _, _ = strings.Cut(val, " ")
	if res.From == node {
		res.Already = true
		return res, nil
	}
	rev := resp.Header.Revision
	// Watch before acting: a watch that starts behind etcd's revision
	// catches up in etcd's 100 ms sync rounds.
	wait, err := o.awaitOwner(ctx, group, res.From, node, rev)
	if err != nil {
		return res, err
	}
	var id string
	if val == g.token {
		if err := o.Move(ctx, group, node); err != nil {
			return res, err
		}
	} else {
		id = newTerm()
		tr, err := o.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(okey), "=", val)).
			Then(clientv3.OpPut(o.keys.move(group), id+" "+node+" "+val, clientv3.WithLease(o.lease()))).Commit()
		if err != nil {
			return res, fmt.Errorf("cluster: group %s: move request: %w", group, err)
		}
		if !tr.Succeeded {
			return res, fmt.Errorf("cluster: group %s changed owner meanwhile: try again", group)
		}
		defer func() {
			// A request nobody answered goes (one answered is gone).
			dctx, c := context.WithTimeout(context.Background(), time.Second)
			o.cli.Txn(dctx).If(clientv3.Compare(clientv3.Value(o.keys.move(group)), "=", id+" "+node+" "+val)).
				Then(clientv3.OpDelete(o.keys.move(group))).Commit()
			c()
		}()
	}
	err = wait(id)
	res.Took = time.Duration(Now() - t0)
	return res, err
}

// awaitOwner watches the owner key (and the answer to a request) from
// rev on; wait(id) returns once etcd names node as group's owner, or the
// owner refused request id. from is the owner the request goes to (its
// renewals and the move mark are steps on the way).
func (o *Ownership) awaitOwner(ctx context.Context, group, from, node string, rev int64) (wait func(id string) error, err error) {
	wctx, cancel := context.WithCancel(ctx)
	okey, mkey := o.keys.owner(group), o.keys.move(group)
	wo := o.cli.Watch(wctx, okey, clientv3.WithRev(rev+1), clientv3.WithCreatedNotify())
	wm := o.cli.Watch(wctx, mkey, clientv3.WithRev(rev+1), clientv3.WithCreatedNotify())
	for _, w := range []clientv3.WatchChan{wo, wm} {
		select {
		case wr, ok := <-w:
			if ok && wr.Created {
				continue
			}
			cancel()
			return nil, fmt.Errorf("cluster: group %s: watching the move: %v", group, wr.Err())
		case <-ctx.Done():
			cancel()
			return nil, fmt.Errorf("cluster: group %s: watching the move: %w", group, ctx.Err())
		}
	}
	return func(id string) error {
		defer cancel()
		return o.waitOwner(ctx, group, from, node, id, wo, wm)
	}, nil
}

func (o *Ownership) waitOwner(ctx context.Context, group, from, node, id string, wo, wm clientv3.WatchChan) error {
	mkey := o.keys.move(group)
	for {
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: group %s: %s did not take it within %v", group, node, o.moveTimeout())
		case wr, ok = <-wo:
		case wr, ok = <-wm:
		}
		if !ok || wr.Err() != nil {
			return fmt.Errorf("cluster: group %s: watching the move: %v", group, wr.Err())
		}
		for _, ev := range wr.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			k, v := string(ev.Kv.Key), string(ev.Kv.Value)
			if k == mkey {
				if why, ok := strings.CutPrefix(v, "failed "+id+" "); ok && id != "" {
					return fmt.Errorf("cluster: group %s: the owner refused: %s", group, why)
				}
				continue
			}
			name, _, _ := strings.Cut(v, " ")
			switch {
			case name == node && v != released && !strings.HasPrefix(v, movePrefix):
				return nil
			case v == released || strings.HasPrefix(v, movePrefix) || name == from:
			default:
				return fmt.Errorf("cluster: group %s: %s took it over meanwhile", group, name)
			}
		}
	}
}

// serveMoves answers the move requests addressed to this node as the
// owner of their group.
func (o *Ownership) serveMoves() {
	defer o.wg.Done()
	for o.ctx.Err() == nil {
		resp, err := o.cli.Get(o.ctx, o.keys.moves(), clientv3.WithPrefix())
		if err != nil {
			time.Sleep(o.ttl / 4)
			continue
		}
		for _, kv := range resp.Kvs {
			o.moveRequest(string(kv.Key), string(kv.Value))
		}
		wch := o.cli.Watch(o.ctx, o.keys.moves(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					o.moveRequest(string(ev.Kv.Key), string(ev.Kv.Value))
				}
			}
		}
	}
}

// moveRequest carries out a request "ID TARGET OWNERVALUE" for the group
// named by key if OWNERVALUE is this node's.
func (o *Ownership) moveRequest(key, val string) {
	group := strings.TrimPrefix(key, o.keys.moves())
	id, rest, ok := strings.Cut(val, " ")
	if !ok || id == "failed" {
		return
	}
	target, owner, ok := strings.Cut(rest, " ")
	g := o.groups[group]
	if !ok || g == nil || owner != g.token {
		return
	}
	if _, dup := o.ext.moving.LoadOrStore(id, true); dup {
		return
	}
	o.wg.Add(1) // serveMoves, the caller, holds the group open
	go func() {
		defer o.wg.Done()
		defer o.ext.moving.Delete(id)
		ctx, cancel := context.WithTimeout(o.ctx, o.moveTimeout())
		defer cancel()
		_, err := o.checkMove(ctx, group, target)
		if err == nil {
			err = o.Move(ctx, group, target)
		}
		cmp := clientv3.Compare(clientv3.Value(key), "=", val)
		if err != nil {
			o.log.Warn("cluster: move request refused", "group", group, "to", target, "err", err)
			o.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, "failed "+id+" "+err.Error(), clientv3.WithIgnoreLease())).Commit()
			return
		}
		o.cli.Txn(ctx).If(cmp).Then(clientv3.OpDelete(key)).Commit()
	}()
}
