package ike

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike/message"
)

// jitter returns a soft lifetime moved earlier by a random amount of up to
// 10%, so the two ends of a tunnel (configured alike) rarely rekey at the
// same moment and many tunnels do not rekey in lockstep.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}

// armChild starts the time-based lifetimes of a freshly installed Child SA.
func (e *Engine) armChild(c *childSA) {
	lt := c.cfg.Lifetime
	if lt.Soft.Time > 0 {
		c.timers = append(c.timers, e.afterFunc(jitter(lt.Soft.Time), func() { e.softExpired(c) }))
	}
	if lt.Hard.Time > 0 {
		c.timers = append(c.timers, e.afterFunc(lt.Hard.Time, func() { e.expireChild(c, nil) }))
	}
}

func (c *childSA) alive() bool {
	return c.state != childDead && c.ike != nil && c.ike.state != StateDead && slices.Contains(c.ike.children, c)
}

// softExpired rekeys c because a soft lifetime ran out: its time, or the
// data plane's bytes, packets or sequence numbers. From now on a rekey
// that fails is tried again until one succeeds or c goes.
func (e *Engine) softExpired(c *childSA) {
	c.rekeyDue = true
	e.rekeyChild(c, nil)
}

// rekeyChild queues a rekey of c unless one is under way or c is going.
func (e *Engine) rekeyChild(c *childSA, done chan error) bool {
	if !c.alive() || c.state != childActive || !c.installed || !c.outInst {
		return false
	}
	sa := c.ike
	if sa.state != StateEstablished || e.isStandby(sa) {
		return false
	}
	c.state = childRekeying
	e.log.Info("rekeying Child SA", "sa", sa.logID(), "child", c.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI))
	sa.enqueue(newCreateChildTask(c.cfg, c, done))
	return true
}

// retryRekey tries a failed rekey again after a short while (the peer may
// have answered TEMPORARY_FAILURE, or an IKE rekey was under way), as
// long as the SA lives and its soft lifetime has run out. A soft expiry
// the data plane reported (bytes, packets, a sequence number nearing its
// limit) is reported once: without the retry such an SA would run on to
// its hard limit or stop sending when its sequence numbers end.
func (e *Engine) retryRekey(c *childSA) {
	if !c.rekeyDue {
		return
	}
	d := max(e.retransmit.Timeout, c.cfg.Lifetime.Soft.Time/10)
	// One pending retry, replaced: a peer that keeps refusing must not
	// grow the SA's timers for as long as it lives.
	if c.retry != nil {
		c.retry.Stop()
	}
	c.retry = e.afterFunc(jitter(d), func() { e.rekeyChild(c, nil) })
}

// expireChild deletes c: its hard lifetime ran out.
func (e *Engine) expireChild(c *childSA, done chan error) bool {
	if !c.alive() || c.state == childDeleting {
		return false
	}
	sa := c.ike
	e.log.Info("Child SA expired, deleting", "sa", sa.logID(), "child", c.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI))
	c.state = childDeleting
	if sa.state != StateEstablished {
		e.deleteChild(sa, c)
		return true
	}
	// Nothing may be sent on an expired SA: its outbound half goes now.
	e.deleteOutbound(c)
	sa.enqueueFirst(&deleteChildTask{children: []*childSA{c}, done: done})
	return true
}

// armIKE starts the lifetimes and the liveness check of an established
// IKE SA.
func (sa *ikeSA) armIKE() {
	c := sa.conn
	if c == nil {
		return
	}
	sa.lastRecv = sa.e.now().Sub(sa.created)
	if c.IKERekeyTime > 0 {
		sa.timers = append(sa.timers, sa.e.afterFunc(jitter(c.IKERekeyTime), func() { sa.e.rekeyIKE(sa, nil) }))
	}
	if c.IKELifetime > 0 {
		sa.timers = append(sa.timers, sa.e.afterFunc(c.IKELifetime, func() {
			if sa.state == StateEstablished {
				sa.e.log.Info("IKE SA expired, deleting", "sa", sa.logID())
				sa.enqueueFirst(&deleteIKETask{})
			}
		}))
	}
	if c.DPDDelay > 0 {
		sa.espSeen = sa.inboundPackets()
		sa.dpdPrev = sa.lastRecv
		sa.dpdTimer = sa.e.afterFunc(sa.dpdStep(c.DPDDelay), sa.dpdCheck)
	}
	sa.armKeepalive()
}

// dpdStep is the longest wait between two DPD checks: the interval, or
// half of it when the installer reports ESP (UsageInstaller), so that the
// time of the peer's last ESP is known to within half an interval.
func (sa *ikeSA) dpdStep(d time.Duration) time.Duration {
	if _, ok := sa.e.inst.(UsageInstaller); ok {
		return d / 2
	}
	return d
}

// inboundPackets is the sum of the packets the data plane delivered on
// the IKE SA's installed inbound Child SAs, or 0 when the installer cannot
// tell (UsageInstaller).
func (sa *ikeSA) inboundPackets() uint64 {
	u, ok := sa.e.inst.(UsageInstaller)
	if !ok {
		return 0
	}
	var sum uint64
	for _, c := range sa.children {
		if c.installed {
			if n, ok := u.InboundPackets(c.inSPI); ok {
				sum += n
			}
		}
	}
	return sum
}

// espArrived reports whether ESP came in from the peer since the last
// call. The sum only grows with traffic: a new Child SA starts at zero, a
// deleted one lowers the sum, which is then taken as the new mark.
func (sa *ikeSA) espArrived() bool {
	n := sa.inboundPackets()
	grew := n > sa.espSeen
	sa.espSeen = n
	return grew
}

// rekeyIKE queues a rekey of the IKE SA.
func (e *Engine) rekeyIKE(sa *ikeSA, done chan error) bool {
	if sa.state != StateEstablished || sa.ikeRekey != nil || sa.ikeSuccessor != nil || sa.replaced || e.isStandby(sa) {
		return false
	}
	for _, t := range sa.queue {
		if _, ok := t.(*ikeRekeyTask); ok {
			return false
		}
	}
	e.log.Info("rekeying IKE SA", "sa", sa.logID())
	sa.enqueue(&ikeRekeyTask{done: done})
	return true
}

func (e *Engine) retryIKERekey(sa *ikeSA) {
	if sa.conn == nil || sa.conn.IKERekeyTime == 0 {
		return
	}
	d := max(e.retransmit.Timeout, sa.conn.IKERekeyTime/10)
	if sa.retry != nil {
		sa.retry.Stop()
	}
	sa.retry = e.afterFunc(jitter(d), func() { e.rekeyIKE(sa, nil) })
}

// dpdCheck sends an empty INFORMATIONAL when the peer was silent for the
// DPD interval (RFC 7296 §2.4) and re-arms itself. A missing answer ends
// in peerDead through the retransmission schedule. Silent means no
// authenticated IKE message and no ESP on its Child SAs: ESP that arrived
// since the previous check proves the peer alive as of that check (the
// earliest it can have come), so a peer whose ESP flows is never probed,
// and one that falls silent is probed at most an interval after its last
// packet, as without traffic.
func (sa *ikeSA) dpdCheck() {
	if sa.state != StateEstablished {
		return
	}
	d := sa.conn.DPDDelay
	now := sa.e.now().Sub(sa.created)
	if sa.espArrived() && sa.dpdPrev > sa.lastRecv {
		sa.lastRecv = sa.dpdPrev
	}
	sa.dpdPrev = now
	idle := now - sa.lastRecv
	next := d - idle
	if idle >= d {
		if sa.pending == nil && len(sa.queue) == 0 {
			sa.enqueue(&livenessTask{})
		}
		// Any outstanding request is a liveness check by itself.
		next = d
	}
	sa.dpdTimer = sa.e.afterFunc(min(next, sa.dpdStep(d)), sa.dpdCheck)
}

// peerDead ends an IKE SA whose peer did not answer through the whole
// retransmission schedule, and takes the connection's DPD action.
func (sa *ikeSA) peerDead(err error) {
	conn := sa.conn
	wasUp := sa.state == StateEstablished || sa.state == StateDeleting
	type trap struct {
		reqID uint32
		sel   []message.TrafficSelector
		rem   []message.TrafficSelector
	}
	var traps []trap
	if wasUp && conn != nil && conn.DPDAction == DPDTrap {
		for _, c := range sa.children {
			traps = append(traps, trap{c.reqID, c.localTS, c.remoteTS})
		}
	}
	sa.fail(err)
	if !wasUp || conn == nil {
		return
	}
	sa.e.log.Warn("peer is dead", "sa", sa.logID(), "action", conn.DPDAction)
	switch conn.DPDAction {
	case DPDRestart:
		sa.e.restart(conn)
	case DPDTrap:
		ti, ok := sa.e.inst.(TrapInstaller)
		if !ok {
			sa.e.log.Warn("installer cannot hold trap policies; the SAs are cleared", "sa", sa.logID())
			return
		}
		for _, t := range traps {
			if err := ti.InstallTrap(t.reqID, selectors(t.sel, t.rem)); err != nil {
				sa.e.log.Error("cannot install trap policy", "sa", sa.logID(), "reqid", t.reqID, "err", err)
			}
		}
	}
}

// restart initiates conn again after its peer died, unless another IKE SA
// of it is up or on its way (the peer may have come back first).
func (e *Engine) restart(conn *Connection) {
	if !conn.RemoteAddr.IsValid() {
		e.log.Warn("cannot restart a connection without a remote address", "connection", conn.Name)
		return
	}
	for _, sa := range e.sas {
		if sa.conn == conn && !sa.unauthenticated() && sa.state != StateDead && sa.state != StateDeleting {
			return
		}
	}
	sa, err := e.initiate(conn.Name, nil)
	if err != nil {
		e.log.Warn("restart failed", "connection", conn.Name, "err", err)
		return
	}
	sa.restartOnFail = true
}

// scheduleRestart tries a restart again after the retransmission timeout.
func (e *Engine) scheduleRestart(conn *Connection) {
	if conn == nil {
		return
	}
	e.afterFunc(e.retransmit.Timeout, func() { e.restart(conn) })
}

// childBySPI finds a Child SA by either of its SPIs.
func (e *Engine) childBySPI(spi uint32) *childSA {
	for _, sa := range e.sas {
		if sa.state == StateDead {
			continue
		}
		for _, c := range sa.children {
			if c.inSPI == spi || c.outSPI == spi {
				return c
			}
		}
	}
	return nil
}

// Expire is how the data plane's byte and packet lifetimes reach the
// engine: the gateway polls its SAs' NeedsRekey and Expired flags and
// calls Expire with either SPI of the Child SA. A soft expiry rekeys the
// Child SA (once), a hard one deletes it. It returns an error when no
// Child SA has the SPI.
func (e *Engine) Expire(spi uint32, hard bool) error {
	found := false
	ok := e.do(context.Background(), func() {
		c := e.childBySPI(spi)
		if c == nil {
			return
		}
		found = true
		if hard {
			e.expireChild(c, nil)
		} else {
			e.softExpired(c)
		}
	})
	if !ok {
		return errors.New("ike: engine closed")
	}
	if !found {
		return fmt.Errorf("ike: no Child SA with SPI %08x", spi)
	}
	return nil
}

// rekeyChildSPI rekeys the Child SA with either SPI spi and waits until the
// CREATE_CHILD_SA exchange is done. It returns nil also when a colliding
// rekey of the peer replaced the SA instead.
func (e *Engine) rekeyChildSPI(ctx context.Context, spi uint32) error {
	w := make(chan error, 1)
	var err error
	if !e.do(ctx, func() {
		c := e.childBySPI(spi)
		switch {
		case c == nil:
			err = fmt.Errorf("ike: no Child SA with SPI %08x", spi)
		case !e.rekeyChild(c, w):
			err = fmt.Errorf("ike: Child SA %08x is being rekeyed or deleted", spi)
		}
	}) {
		return errors.New("ike: engine closed")
	}
	if err != nil {
		return err
	}
	return wait(ctx, true, w)
}

// RekeyChildren rekeys the Child SAs named child of the connection's
// established IKE SAs (an operator's or a test's explicit rekey, as
// `swanctl --rekey --child`) and waits for the CREATE_CHILD_SA exchanges.
// Child SAs being rekeyed (by either end) or deleted are left alone; it
// fails when that leaves none.
func (e *Engine) RekeyChildren(ctx context.Context, conn, child string) error {
	var waits []chan error
	var busy bool
	if !e.do(ctx, func() {
		for _, sa := range e.sas {
			if sa.conn == nil || sa.conn.Name != conn || sa.state != StateEstablished {
				continue
			}
			for _, c := range sa.children {
				if c.cfg.Name != child {
					continue
				}
				w := make(chan error, 1)
				if e.rekeyChild(c, w) {
					waits = append(waits, w)
				} else if c.state != childDead {
					busy = true
				}
			}
		}
	}) {
		return errors.New("ike: engine closed")
	}
	if len(waits) == 0 {
		if busy {
			return fmt.Errorf("ike: Child SA %s/%s is being rekeyed or deleted", conn, child)
		}
		return fmt.Errorf("ike: no installed Child SA %s/%s to rekey", conn, child)
	}
	return wait(ctx, true, waits...)
}

// RekeyIKE rekeys every established IKE SA of the connection and waits
// for the exchanges.
func (e *Engine) RekeyIKE(ctx context.Context, name string) error {
	var waits []chan error
	if !e.do(ctx, func() {
		for _, sa := range e.sas {
			if sa.conn != nil && sa.conn.Name == name {
				w := make(chan error, 1)
				if e.rekeyIKE(sa, w) {
					waits = append(waits, w)
				}
			}
		}
	}) {
		return errors.New("ike: engine closed")
	}
	if len(waits) == 0 {
		return fmt.Errorf("ike: no established IKE SA of connection %q to rekey", name)
	}
	return wait(ctx, true, waits...)
}

// initiateChild creates the named Child SA of the connection on an
// established IKE SA with CREATE_CHILD_SA and waits for the outcome.
func (e *Engine) initiateChild(ctx context.Context, conn, child string) error {
	w := make(chan error, 1)
	var err error
	if !e.do(ctx, func() {
		c := e.connection(conn)
		if c == nil {
			err = fmt.Errorf("ike: no connection %q", conn)
			return
		}
		var cfg *ChildConfig
		for i := range c.Children {
			if c.Children[i].Name == child {
				cfg = &c.Children[i]
			}
		}
		if cfg == nil {
			err = fmt.Errorf("ike: connection %s has no child %q", conn, child)
			return
		}
		for _, sa := range e.sas {
			if sa.conn == c && sa.state == StateEstablished && sa.ikeSuccessor == nil && sa.ikeRekey == nil && !sa.replaced {
				sa.enqueue(newCreateChildTask(cfg, nil, w))
				return
			}
		}
		err = fmt.Errorf("ike: no established IKE SA of connection %q", conn)
	}) {
		return errors.New("ike: engine closed")
	}
	if err != nil {
		return err
	}
	return wait(ctx, true, w)
}

// firstContact reports whether sa is our only IKE SA with its peer's
// address for its connection.
func (e *Engine) firstContact(sa *ikeSA) bool {
	for _, o := range e.sas {
		if o != sa && o.conn == sa.conn && o.state != StateDead && o.remote.Addr() == sa.remote.Addr() {
			return false
		}
	}
	return true
}

// initialContact handles INITIAL_CONTACT (RFC 7296 §2.4): the peer,
// authenticated as sa.remoteID, has no other IKE SA with us, so ours with
// the same identities are stale and go at once, without a Delete the peer
// could no longer read.
func (e *Engine) initialContact(sa *ikeSA) {
	for _, o := range e.sas {
		if o == sa || o.state == StateDead || o.conn == nil || sa.conn == nil {
			continue
		}
		if o.remoteID.equal(sa.remoteID.Type, sa.remoteID.Data) && o.conn.Local.ID.equal(sa.conn.Local.ID.Type, sa.conn.Local.ID.Data) {
			e.log.Info("INITIAL_CONTACT: deleting stale IKE SA", "sa", o.logID(), "new", sa.logID(), "remote_id", sa.remoteID.String())
			o.destroy()
		}
	}
}
