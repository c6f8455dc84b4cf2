package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xdpsec/xdpsec/sad"
)

// Now is this process's monotonic clock in nanoseconds (sad.Now, the
// gates' clock), the time base of Group.MaySend and Group.Deadline.
func Now() int64 { return sad.Now() }

// Values of the owner key besides "NODE TERM".
const (
	// released: the owner let the group go (shutdown); any allowed node
	// may take it at once.
	released = "released"
	// movePrefix + NODE: the owner handed the group to NODE, which may
	// take it at once; the others wait a lease as after a failure.
	movePrefix = "move "
)

// Ownership runs this node's side of the groups' ownership: one loop per
// group it may carry, all on one etcd session.
//
// The lease. etcd leases are whole seconds, and at least
// ceil(1.5 × the election timeout) (etcdserver's MinLeaseTTL), so a
// sub-second takeover cannot wait for one to expire. A group's owner key
// carries a shorter lease of its own, kept by compare-and-swap: the owner
// rewrites the key every TTL/4 (compare: the value is still its own
// "NODE TERM"); a standby that has seen no change of the key for a TTL,
// by its own clock from when it saw the last change, takes the key with a
// compare on the revision it saw. Exactly one such transaction can win.
// The owner key carries no etcd lease (session.go says why); the node's
// etcd session (concurrency.Session) holds its presence key and move
// requests only.
//
// Fencing. The owner may send until (when it sent its last successful
// renewal) + TTL − margin, by its monotonic clock. A standby's wait
// starts when it saw that renewal, which is after it was sent, and lasts
// a full TTL: so the owner has stopped at least margin before a standby
// can start, whatever happened to the messages in between. The margin
// covers the two clocks' rate difference over one TTL and the time a
// batch that passed MaySend takes to leave.
type Ownership struct {
	cli    *clientv3.Client
	sess   atomic.Pointer[concurrency.Session] // session.go: replaced when lost
	keys   keys
	node   string
	ttl    time.Duration
	margin time.Duration
	log    *slog.Logger
	change func(group string, sending bool)
	// Quiesce waits until no batch that passed MaySend before it was
	// called is still being sent (graceful hand-over); nil: 10 ms.
	Quiesce func()

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	groups map[string]*Group
	ext    ownershipExt // move.go

	// sessTTL: the etcd session lease's TTL in seconds (session.go).
	sessTTL int
	// handOver: hooks of a graceful hand-over (handover.go).
	handOver HandOver
}

// GroupSpec is a group this node may carry and the nodes allowed to,
// most preferred first.
type GroupSpec struct {
	Name  string
	Nodes []string
}

// Group is one tunnel group as this node sees it. MaySend is for the
// workers (one atomic load); the rest for the slow path.
type Group struct {
	Name  string
	nodes []string
	// token is this node's owner value for the group, "NODE TERM" (TERM
	// random per start): writes an owner makes are guarded by it.
	token string
	// gate: open until the Now() this node may send until; closed when
	// it does not own the group. Written by the group's loop only; the
	// group's outbound SAs read it (sad.SA.SetGate).
	gate sad.Gate
	// since: Now() when this node last gained the group (0: not owner);
	// stopped: Now() when it last stopped sending for it.
	since, stopped atomic.Int64
	owner          atomic.Pointer[string]
	move           chan moveReq
	stats          groupStats // move.go
}

type moveReq struct {
	to   string
	done chan error
}

// MaySend reports whether this node may send for the group at now
// (Now()): it owns the group and its lease is safely ahead. No lock, one
// atomic load: the workers call it once per batch.
func (g *Group) MaySend(now int64) bool { return g.gate.MaySend(now) }

// Gate is the group's right to send, for its outbound SAs
// (sad.SA.SetGate): their ReserveSeq hands out nothing while it is closed.
func (g *Group) Gate() *sad.Gate { return &g.gate }

// Deadline is the Now() at which this node stops sending unless it renews
// (0: not the owner).
func (g *Group) Deadline() int64 { return g.gate.Deadline() }

// Since is the Now() at which this node last became the owner (0: not
// the owner).
func (g *Group) Since() int64 { return g.since.Load() }

// ownerCmp holds a transaction to this node's ownership of the group: a
// node that lost the group cannot write for it any more.
func (o *Ownership) ownerCmp(g *Group) clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(o.keys.owner(g.Name)), "=", g.token)
}

// Stopped is the Now() at which this node last stopped sending for the
// group: its deadline, or the moment it learnt it had lost the group if
// that came first (0: never).
func (g *Group) Stopped() int64 { return g.stopped.Load() }

// Owner is the node etcd last said owns the group ("" none known).
func (g *Group) Owner() string {
	if p := g.owner.Load(); p != nil {
		return *p
	}
	return ""
}

// OwnershipConfig sets up an Ownership.
type OwnershipConfig struct {
	Cluster, Node string
	TTL, Margin   time.Duration
	Groups        []GroupSpec
	Log           *slog.Logger
	// OnChange, if set, hears each change of this node's right to send
	// for a group: true when it took the group (or resumed after an etcd
	// outage), false when it stopped. It runs on the group's loop and
	// must return quickly: the renewals wait for it.
	OnChange func(group string, sending bool)
	// HandOver are the hooks of a graceful hand-over (handover.go).
	HandOver HandOver
}

// StartOwnership opens the node's etcd session and starts a loop for each
// group that lists this node.
func StartOwnership(cli *clientv3.Client, cfg OwnershipConfig) (*Ownership, error) {
	if cfg.TTL <= 0 || cfg.Margin <= 0 || cfg.Margin >= cfg.TTL/2 {
		return nil, fmt.Errorf("cluster: lease %v with margin %v: the margin must be above 0 and below half the lease", cfg.TTL, cfg.Margin)
	}
	secs := max(int(math.Ceil(cfg.TTL.Seconds())), 1)
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(secs))
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd session: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := &Ownership{cli: cli, sessTTL: secs, keys: keys{cfg.Cluster}, node: cfg.Node, ttl: cfg.TTL, margin: cfg.Margin,
		log: log, change: cfg.OnChange, groups: map[string]*Group{}, handOver: cfg.HandOver}
	o.sess.Store(sess)
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.wg.Add(1)
	go o.keepSession()
	for _, gs := range cfg.Groups {
		g := &Group{Name: gs.Name, nodes: gs.Nodes, token: cfg.Node + " " + newTerm(), move: make(chan moveReq)}
		o.groups[gs.Name] = g
		for _, n := range gs.Nodes {
			if n == cfg.Node {
				o.wg.Add(1)
				go o.run(g)
				break
			}
		}
	}
	if err := o.startExt(); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// Group returns the named group (nil: none).
func (o *Ownership) Group(name string) *Group { return o.groups[name] }

// Close lets go of every group this node owns (fenced first, then
// released in etcd for the others to take at once) and ends the session.
func (o *Ownership) Close() error {
	o.cancel()
	o.wg.Wait()
	return o.session().Close()
}

// Move hands group to node: this node stops sending, waits for its last
// batch (Quiesce), then marks the group for node, which takes it at once.
func (o *Ownership) Move(ctx context.Context, group, node string) error {
	g := o.groups[group]
	if g == nil {
		return fmt.Errorf("cluster: no group %q", group)
	}
	r := moveReq{to: node, done: make(chan error, 1)}
	select {
	case g.move <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (o *Ownership) quiesce() {
	if o.Quiesce != nil {
		o.Quiesce()
		return
	}
	time.Sleep(10 * time.Millisecond)
}

// loop state of one group.
type groupLoop struct {
	o      *Ownership
	g      *Group
	myVal  string
	rev    int64  // mod revision of the owner key last seen (0: absent)
	val    string // its value
	seenAt int64  // Now() when a change of the key was last seen
	// gone: the value the key held when its lease deleted it (expired),
	// for the ranks ("" otherwise).
	gone string
	// refusals: takes etcd refused in a row with no event from the watch
	// in between (takeRefused).
	refusals int
	sentAt   int64 // Now() when the last successful renewal was sent
}

func newTerm() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (o *Ownership) run(g *Group) {
	defer o.wg.Done()
	l := &groupLoop{o: o, g: g, myVal: g.token, seenAt: Now()}
	key := o.keys.owner(g.Name)
	poll := max(o.ttl/30, 5*time.Millisecond)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var wch clientv3.WatchChan
	stopWatch := func() {}
	defer func() { stopWatch() }()
	for {
		if wch == nil {
			if rev, ok := l.resync(key); ok {
				stopWatch()
				wctx, c := context.WithCancel(o.ctx)
				stopWatch = c
				wch = o.cli.Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithPrevKV())
			}
		}
		select {
		case <-o.ctx.Done():
			l.letGo(key, released)
			return
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				l.debug("watch ended", "closed", !ok, "err", wr.Err())
				wch = nil
				continue
			}
			if len(wr.Events) > 0 {
				l.refusals = 0
			}
			for _, ev := range wr.Events {
				l.debug("watch event", "rev", ev.Kv.ModRevision, "val", string(ev.Kv.Value), "delete", ev.Type == clientv3.EventTypeDelete)
				if ev.Kv.ModRevision < l.rev {
					continue
				}
				switch {
				case ev.Type == clientv3.EventTypeDelete && ev.PrevKv != nil && ev.PrevKv.ModRevision == l.rev:
					l.expired()
				case ev.Type == clientv3.EventTypeDelete:
					l.saw(0, "")
				default:
					l.saw(ev.Kv.ModRevision, string(ev.Kv.Value))
				}
			}
			if l.val == released || l.val == movePrefix+o.node {
				l.take(key) // handed over: at once, not at the next tick
			}
		case r := <-g.move:
			if l.owner() {
				r.done <- l.letGo(key, movePrefix+r.to)
			} else {
				r.done <- fmt.Errorf("cluster: group %s: not the owner", g.Name)
			}
		case <-tick.C:
			now := Now()
			switch {
			case l.owner():
				if time.Duration(now-l.sentAt) >= o.ttl/renewals {
					l.renew(key)
				}
			case l.mayTake(now):
				l.take(key)
			}
		}
	}
}

// renewals is how many times an owner renews per lease: the slack between
// a renewal and the deadline, TTL*(1-1/renewals) - margin, must outlast an
// etcd leader election (ElectionMs to 2*ElectionMs, plus a pre-vote).
const renewals = 4

func (l *groupLoop) owner() bool { return l.val == l.myVal }

// saw records a change of the owner key; losing it fences at once.
func (l *groupLoop) saw(rev int64, val string) {
	l.seenAt, l.gone = Now(), ""
	l.set(rev, val)
}

// expired records the deletion of the owner key right after the write
// this node saw last (the watch's previous value has the revision it
// saw): its owner's etcd session lease ran out, so the owner wrote
// nothing since. The wait for a silent owner still counts from that last
// write, not from the deletion: the owner's deadline counts from when it
// sent that write, before this node saw it. (A deletion found by a
// resync, after writes this node may have missed, restarts the wait.)
func (l *groupLoop) expired() {
	l.gone = l.val
	l.set(0, "")
}

func (l *groupLoop) set(rev int64, val string) {
	was := l.owner()
	l.rev, l.val = rev, val
	l.g.stats.seen.Store(Now())
	name, _, _ := strings.Cut(val, " ")
	if strings.HasPrefix(val, movePrefix) || val == released {
		name = ""
	}
	l.g.setOwner(name)
	if was && !l.owner() {
		l.fence("taken by " + val)
	}
}

func (l *groupLoop) fence(why string) {
	if d := l.g.gate.Close(); d != 0 {
		l.g.stopped.Store(min(d, Now()))
		l.g.since.Store(0)
		l.logLost(why)
		l.notify(false)
	}
}

func (l *groupLoop) notify(sending bool) {
	if l.o.change != nil {
		l.o.change(l.g.Name, sending)
	}
}

// resync reads the owner key afresh; ok false: etcd unreachable.
func (l *groupLoop) resync(key string) (int64, bool) {
	ctx, cancel := context.WithTimeout(l.o.ctx, l.o.ttl)
	defer cancel()
	start := Now()
	resp, err := l.o.cli.Get(ctx, key)
	l.debug("resync", "took_ms", ms(Now()-start), "err", err)
	if err != nil {
		return 0, false
	}
	if len(resp.Kvs) == 0 {
		if l.rev != 0 || l.val != "" {
			l.saw(0, "")
		}
	} else if kv := resp.Kvs[0]; kv.ModRevision != l.rev {
		l.saw(kv.ModRevision, string(kv.Value))
	}
	return resp.Header.Revision, true
}

// mayTake: the group is free for this node (released, moved to it), or
// its key has not changed for a lease (plus this node's place among the
// allowed nodes other than the current owner, so the preferred one goes
// first).
func (l *groupLoop) mayTake(now int64) bool {
	if l.val == released || l.val == movePrefix+l.o.node {
		return true
	}
	rank := 0
	cur, _, _ := strings.Cut(l.val, " ")
	if l.val == "" {
		cur, _, _ = strings.Cut(l.gone, " ")
	}
	for _, n := range l.g.nodes {
		if n == l.o.node {
			break
		}
		if n != cur {
			rank++
		}
	}
	wait := l.o.ttl + time.Duration(rank)*l.o.ttl/6
	return time.Duration(now-l.seenAt) >= wait
}

func (l *groupLoop) put(key string, cmp clientv3.Cmp, val string) (ok bool, rev int64, err error) {
	until := l.g.gate.Deadline()
	timeout := l.o.ttl
	if until != 0 {
		timeout = min(timeout, time.Duration(until-Now()))
	}
	ctx, cancel := context.WithTimeout(l.o.ctx, max(timeout, time.Millisecond))
	defer cancel()
	// No lease: the owner key lives by its renewals alone (session.go says
	// why the etcd session's lease must not take it away).
	resp, err := l.o.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, val)).Commit()
	if err != nil {
		return false, 0, err
	}
	return resp.Succeeded, resp.Header.Revision, nil
}

func (l *groupLoop) take(key string) {
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", l.rev)
	if l.rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	sent := Now()
	prev, prevSeen, from := l.val, l.seenAt, l.g.lastOwner()
	l.o.CountWrite(l.g.Name, WriteRenew)
	l.debug("take", "rev", l.rev, "val", l.val, "unchanged_ms", ms(sent-l.seenAt))
	ok, rev, err := l.put(key, cmp, l.myVal)
	l.debug("take done", "ok", ok, "took_ms", ms(Now()-sent), "err", err)
	if err != nil || !ok {
		if err == nil {
			l.takeRefused(key)
		}
		return
	}
	l.refusals = 0
	l.sentAt = sent
	l.rev, l.val, l.seenAt = rev, l.myVal, Now()
	l.g.stats.seen.Store(l.seenAt)
	l.g.setOwner(l.o.node)
	l.g.gate.Open(sent + int64(l.o.ttl-l.o.margin))
	l.g.since.Store(Now())
	l.logTaken(prev, prevSeen, from)
	l.notify(true)
}

// maxRefusals is how many refused takes in a row wait for the watch to
// say why before a resync reads the key instead.
const maxRefusals = 3

// takeRefused: etcd refused a take because the owner key changed since
// the revision this node saw. The watch, which brings every change in
// order, says how: another node took it (the wait starts again), or the
// silent owner's lease ran out and deleted it right after the write this
// node saw (expired: the wait still counts from that write, and the next
// tick takes it). A resync would read only the end of it, an absent key
// after writes it may have missed, and must restart the wait: a takeover
// that raced the deletion took a lease more. The loop retries at its
// next ticks; if the watch says nothing for maxRefusals of them, it
// resyncs after all.
func (l *groupLoop) takeRefused(key string) {
	if l.refusals++; l.refusals >= maxRefusals {
		l.refusals = 0
		l.resync(key)
	}
}

func (l *groupLoop) renew(key string) {
	// Fenced (its deadline passed with no renewal heard of), the owner
	// writes again only once it hears etcd: a renewal whose answer is
	// lost may commit all the same (etcd's replies lost, its requests
	// delivered), and renewals that commit unheard would keep the
	// standbys waiting while this node sends nothing (TestRepliesLost).
	if l.g.gate.Deadline() == 0 {
		if _, ok := l.resync(key); !ok || !l.owner() {
			return
		}
	}
	sent := Now()
	l.o.CountWrite(l.g.Name, WriteRenew)
	ok, rev, err := l.put(key, clientv3.Compare(clientv3.Value(key), "=", l.myVal), l.myVal)
	if took := time.Duration(Now() - sent); err != nil || !ok || took > l.o.ttl/8 {
		l.debug("renewal", "ok", ok, "took_ms", took.Milliseconds(), "err", err)
	}
	switch {
	case err != nil:
		// The deadline stays: it runs out by itself if etcd stays away.
		// The key may still be ours: the loop keeps renewing, and a
		// renewal that commits later proves nobody took the group, so
		// sending resumes after the outage, not a lease after it.
		if d := l.g.gate.Deadline(); d != 0 && Now() >= d {
			l.fence("lease not renewed: " + err.Error())
		}
	case !ok:
		l.fence("renewal refused")
		l.resync(key)
	default:
		l.sentAt = sent
		if rev > l.rev {
			l.rev = rev
		}
		if l.g.gate.Open(sent+int64(l.o.ttl-l.o.margin)) == 0 {
			// Fenced by an etcd outage, and nobody took the group.
			l.g.since.Store(Now())
			l.o.log.Info("cluster: group renewed after an outage: sending again", "group", l.g.Name, "node", l.o.node)
			l.notify(true)
		}
	}
}

// letGo stops sending, waits for the last batch, then writes val (released
// or a move) if the group is still this node's.
func (l *groupLoop) letGo(key, val string) error {
	if !l.owner() {
		return nil
	}
	stop := Now()
	if to, ok := strings.CutPrefix(val, movePrefix); ok && l.o.handOver.Forward != nil {
		l.o.handOver.Forward(l.g.Name, to)
	}
	l.fence(val)
	l.o.quiesce()
	if l.o.handOver.Final != nil {
		l.o.handOver.Final(l.g.Name)
	}
	l.o.CountWrite(l.g.Name, WriteRenew)
	ctx, cancel := context.WithTimeout(context.Background(), l.o.ttl)
	defer cancel()
	// No lease: the session's end (Close) must not delete the mark
	// before the others read it.
	resp, err := l.o.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", l.myVal)).
		Then(clientv3.OpPut(key, val)).Commit()
	if err != nil || !resp.Succeeded {
		l.o.logChange(l.g, l.o.node, "", ReasonFenced, time.Duration(Now()-stop), "why", "could not write "+val)
	}
	if err != nil {
		return fmt.Errorf("cluster: group %s: %w", l.g.Name, err)
	}
	if !resp.Succeeded {
		return errors.New("cluster: group " + l.g.Name + ": no longer the owner")
	}
	l.rev, l.val, l.seenAt = resp.Header.Revision, val, Now()
	l.logLetGo(val, time.Duration(l.seenAt-stop))
	return nil
}

// debug logs a step of the group's loop at debug level (log_level:
// debug): what a slow takeover waited for.
func (l *groupLoop) debug(msg string, args ...any) {
	if !l.o.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.o.log.Debug("cluster: "+msg, append([]any{"group", l.g.Name, "node", l.o.node}, args...)...)
}

func ms(d int64) int64 { return time.Duration(d).Milliseconds() }
