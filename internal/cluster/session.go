package cluster

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// The node's etcd session: one etcd lease (concurrency.Session, kept
// alive by the client) that the node's presence key and its move requests
// are written with, so that etcd removes them when the node is gone. A
// node cut from etcd for longer than that lease (a partition, a slow etcd
// leader change) loses it: etcd deletes the keys, and every later write
// with the dead lease fails ("lease not found"). keepSession then makes a
// new session and writes the presence key again.
//
// The owner keys are on no lease. A session can die while the node's
// transactions still commit: a member forwards each lease keepalive to
// the raft leader over HTTP and answers a client's keepalive stream one
// request at a time, so after the leader is lost (cut off, killed) one
// keepalive forwarded to it holds every lease of the node for etcd's
// request timeout (5 s + 2 election timeouts), longer than the session's
// lease, while transactions already go through raft to the new leader.
// Owner keys on the session lease went with it: a healthy owner fenced
// and a standby took the group over (TestClusterPartition, 2 runs in 3
// when the cut node was the leader; TestOwnerKeyOutlivesSession). The
// group's own lease, the owner's renewals by compare-and-swap, is what
// says who owns it: a standby takes a key that has not changed for a TTL,
// however long the key stays in etcd, and an owner that cannot renew
// fences itself by its deadline, so nothing needs the key deleted.
//
// Nothing here opens a gate: only a take or a renewal that etcd committed
// under its compare does (owner.go), so a node that lost its groups in
// the outage comes back as a standby, and the fencing deadlines are the
// same as without a new session.

// session is the node's etcd session now.
func (o *Ownership) session() *concurrency.Session { return o.sess.Load() }

// lease is the lease of the node's etcd session now, for its writes.
func (o *Ownership) lease() clientv3.LeaseID { return o.session().Lease() }

// newSession grants a lease of o's session TTL and keeps it alive. The
// grant alone is bounded by timeout; the keepalive lives until the client
// closes or the session is closed.
func (o *Ownership) newSession(ctx context.Context, timeout time.Duration) (*concurrency.Session, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lr, err := o.cli.Grant(gctx, int64(o.sessTTL))
	if err != nil {
		return nil, err
	}
	return concurrency.NewSession(o.cli, concurrency.WithTTL(o.sessTTL), concurrency.WithLease(lr.ID))
}

// putPresence writes the node's presence key with its session's lease.
func (o *Ownership) putPresence(ctx context.Context, s *concurrency.Session) error {
	if _, err := o.cli.Put(ctx, o.keys.node(o.node), o.node, clientv3.WithLease(s.Lease())); err != nil {
		return fmt.Errorf("cluster: presence: %w", err)
	}
	return nil
}

// keepSession replaces the node's etcd session whenever it ends (its
// lease expired, or the client's keepalive gave up on it) and registers
// the node's presence again, until the Ownership or the client closes.
// One log line when the session is lost, one when the node is back.
func (o *Ownership) keepSession() {
	defer o.wg.Done()
	try := max(o.ttl, time.Second) // one grant or put
	pause := max(o.ttl/4, 50*time.Millisecond)
	var lost int64 // Now() when the session was lost (0: it lives)
	born := Now()  // when the session now was made
	for {
		s := o.session()
		select {
		case <-o.ctx.Done():
			return
		case <-s.Done():
		}
		if o.ctx.Err() != nil || o.cli.Ctx().Err() != nil {
			return
		}
		// A session that died young (a keepalive that gives up at once)
		// must not make the loop spin.
		if time.Duration(Now()-born) < time.Duration(o.sessTTL)*time.Second && !o.sleep(pause) {
			return
		}
		if lost == 0 {
			lost = Now()
			o.log.Warn("cluster: etcd session lost: its lease expired or is no longer kept alive (its presence key goes with it); making a new session",
				"node", o.node, "lease", fmt.Sprintf("%x", int64(s.Lease())))
		}
		ns, err := o.newSession(o.ctx, try)
		if err != nil {
			if !o.sleep(pause) {
				return
			}
			continue
		}
		o.sess.Store(ns)
		born = Now()
		s.Orphan() // its keepalive has ended; its lease dies by itself
		for {
			ctx, cancel := context.WithTimeout(o.ctx, try)
			err = o.putPresence(ctx, ns)
			cancel()
			if err == nil {
				o.log.Info("cluster: etcd session back: this node is present again",
					"node", o.node, "lease", fmt.Sprintf("%x", int64(ns.Lease())), "took_ms", time.Duration(Now()-lost).Milliseconds())
				lost = 0
				break
			}
			select {
			case <-ns.Done(): // lost again before the presence was written
			case <-o.ctx.Done():
				return
			case <-time.After(pause):
				continue
			}
			break
		}
	}
}

// sleep waits d unless o closes first (false).
func (o *Ownership) sleep(d time.Duration) bool {
	select {
	case <-o.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
