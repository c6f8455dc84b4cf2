package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// createChildTask is CREATE_CHILD_SA for a Child SA as the initiator runs
// it (RFC 7296 §1.3.1, §1.3.3; strongSwan's child_create and child_rekey):
// the Child SA negotiation of a new Child SA on an established IKE SA, or,
// with old set, of the replacement of old (REKEY_SA), plus what only
// CREATE_CHILD_SA has: the state checks of §2.25, the KE retry, rekey
// collisions (§2.8.1) and the make-before-break switch to the new SA.
type createChildTask struct {
	childCreate
	done chan error
}

// newCreateChildTask makes the task that creates a Child SA of cfg or,
// with old set, rekeys old; done (may be nil) hears the outcome.
func newCreateChildTask(cfg *ChildConfig, old *childSA, done chan error) *createChildTask {
	return &createChildTask{childCreate: childCreate{cfg: cfg, old: old, create: true}, done: done}
}

func (*createChildTask) exchange() message.ExchangeType { return message.ExchangeCreateChildSA }

func (t *createChildTask) finish(err error) {
	t.destroyKex()
	if t.done != nil {
		signal(t.done, err)
	}
}

// firstGroup is the PFS group a request's KE uses: the first one of our
// most preferred proposal that names any (RFC 7296 §1.3.1: the KE payload
// must match the first proposal's group the responder is likely to take).
func firstGroup(ps []Proposal) iana.GroupID {
	for _, p := range ps {
		if len(p.DH) > 0 {
			return p.DH[0]
		}
	}
	return 0
}

var errSkipTask = errors.New("task no longer needed")

func (t *createChildTask) build(sa *ikeSA) ([]message.Payload, error) {
	if old := t.old; old != nil && (old.ike != sa || old.state != childRekeying || old.successor != nil) {
		// The peer rekeyed it first, or it is gone, or an IKE rekey moved
		// it to another IKE SA.
		if old.state == childRekeying {
			if old.successor != nil {
				old.state = childRekeyed
			} else {
				old.state = childActive
				sa.e.retryRekey(old)
			}
		}
		t.finish(errors.New("Child SA no longer needs our rekey"))
		return nil, errSkipTask
	}
	if sa.state != StateEstablished || sa.ikeRekey != nil || sa.ikeSuccessor != nil || sa.replaced {
		// The IKE SA is being deleted or rekeyed (§2.25): try again later,
		// on its successor if it has one.
		if old := t.old; old != nil {
			old.state = childActive
			sa.e.retryRekey(old)
		}
		t.finish(errors.New("IKE SA is going away or being rekeyed"))
		return nil, errSkipTask
	}
	return t.request(sa)
}

// drop ends a task whose IKE SA is gone: the SPI it reserved for a Child
// SA that never got installed goes back.
func (t *createChildTask) drop(sa *ikeSA) {
	if c := t.child; c != nil && !c.installed && !slices.Contains(sa.children, c) {
		sa.e.releaseSPI(c.inSPI)
	}
	t.finish(errors.New("IKE SA deleted"))
}

// abort ends the task without a new SA; the IKE SA stays.
func (t *createChildTask) abort(sa *ikeSA, err error) {
	if c := t.child; c != nil && !c.installed {
		sa.e.releaseSPI(c.inSPI)
		crypto.Zero(c.secret)
		c.secret = nil
	}
	if old := t.old; old != nil && old.state == childRekeying {
		if old.successor != nil {
			// A collision whose other half succeeded: the peer's SA
			// replaces old, and the peer deletes old.
			old.state = childRekeyed
			old.replaced = true
		} else {
			old.state = childActive
			sa.e.retryRekey(old)
		}
	}
	sa.e.log.Warn("CREATE_CHILD_SA failed", "sa", sa.logID(), "child", t.cfg.Name, "rekey", t.old != nil, "err", err)
	t.finish(err)
}

func (t *createChildTask) process(sa *ikeSA, resp message.Payloads) error {
	if handled, err := t.retryKE(sa, t, resp, t.cfg.ESPProposals); handled {
		if err != nil {
			t.abort(sa, err)
		}
		return nil
	}
	if err := t.response(resp); err != nil {
		t.abort(sa, err)
		return nil
	}
	c := t.child
	old := t.old
	if old != nil && old.successor != nil && old.successor.state != childDead {
		// Both ends rekeyed old at once (RFC 7296 §2.8.1): the SA made
		// with the lowest of the four nonces is redundant, and its
		// creator deletes it; the winner deletes old.
		peer := old.successor
		if bytes.Compare(minNonce(c.ni, c.nr), minNonce(peer.ni, peer.nr)) < 0 {
			sa.e.log.Info("rekey collision lost, deleting our redundant Child SA", "sa", sa.logID(), "child", t.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI))
			old.state = childRekeyed
			old.replaced = true
			c.ike = sa
			c.state = childDeleting
			sa.children = append(sa.children, c)
			sa.enqueueFirst(&deleteChildTask{children: []*childSA{c}})
			t.finish(nil)
			return nil
		}
		sa.e.log.Info("rekey collision won", "sa", sa.logID(), "child", t.cfg.Name)
		old.successor = nil
	}
	if err := sa.e.installChild(sa, c, true, true); err != nil {
		sa.e.log.Error("cannot install Child SA", "sa", sa.logID(), "child", t.cfg.Name, "err", err)
		sa.e.deleteChild(sa, c)
		t.abort(sa, err)
		return nil
	}
	if old != nil && old.state != childDead && old.ike == sa {
		// Make-before-break: the peer has had the new inbound SA since its
		// response and InstallOutbound just moved our traffic to the new
		// SA; old's outbound half is idle, its inbound half stays until
		// the peer confirms the Delete, and lingers a little after it.
		sa.e.log.Info("Child SA rekeyed", "sa", sa.logID(), "child", t.cfg.Name, "old_in", fmt.Sprintf("%08x", old.inSPI), "new_in", fmt.Sprintf("%08x", c.inSPI), "pfs", t.group != 0)
		old.state = childDeleting
		old.replaced = true
		sa.e.deleteOutbound(old)
		sa.e.deleteRekeyed(old)
	}
	t.finish(nil)
	return nil
}

// deleteRekeyed sends the Delete of a Child SA our rekey replaced, once
// RekeyDeleteDelay has let the packets sealed with it before the switch
// leave the data plane (they must not arrive after the Delete at a peer
// that removes the SA at once). The SA may have moved to another IKE SA
// meanwhile; on a dead IKE SA it went with the rest.
func (e *Engine) deleteRekeyed(old *childSA) {
	send := func() {
		if sa := old.ike; old.state == childDeleting && sa != nil && sa.state == StateEstablished && slices.Contains(sa.children, old) {
			sa.enqueueFirst(&deleteChildTask{children: []*childSA{old}})
		}
	}
	if e.rekeyDelete <= 0 {
		send()
		return
	}
	old.timers = append(old.timers, e.afterFunc(e.rekeyDelete, send))
}

func minNonce(a, b []byte) []byte {
	if bytes.Compare(a, b) < 0 {
		return a
	}
	return b
}

func offersGroup(ps []Proposal, g iana.GroupID) bool {
	for _, p := range ps {
		if slices.Contains(p.DH, g) {
			return true
		}
	}
	return false
}

// respondCreateChild answers the peer's CREATE_CHILD_SA: a new Child SA, a
// Child SA rekey, or an IKE SA rekey. Refusals keep the IKE SA (§1.3, §2.25).
func respondCreateChild(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	refuse := func(t message.NotifyType) ([]message.Payload, func()) {
		return []message.Payload{notify(t, nil)}, nil
	}
	saP, _ := req.Get(message.PayloadSA).(*message.SA)
	if saP != nil && len(saP.Proposals) > 0 && saP.Proposals[0].Protocol == message.ProtocolIKE {
		return respondRekeyIKE(sa, req)
	}
	if sa.state != StateEstablished || sa.ikeRekey != nil || sa.ikeSuccessor != nil || sa.replaced || sa.e.followups[sa] != nil {
		// §2.25: busy with the IKE SA itself; the peer may try again.
		return refuse(message.NotifyTemporaryFailure)
	}
	nP, _ := req.Get(message.PayloadNonce).(*message.Nonce)
	tsi, _ := req.Get(message.PayloadTSi).(*message.TrafficSelectors)
	tsr, _ := req.Get(message.PayloadTSr).(*message.TrafficSelectors)
	if saP == nil || nP == nil || tsi == nil || tsr == nil {
		return refuse(message.NotifyInvalidSyntax)
	}
	var old *childSA
	if n := req.Notify(message.NotifyRekeySA); n != nil {
		if n.Protocol != message.ProtocolESP || len(n.SPI) != 4 {
			return refuse(message.NotifyChildSANotFound)
		}
		spi := binary.BigEndian.Uint32(n.SPI)
		for _, c := range sa.children {
			if c.outSPI == spi && c.state != childDead {
				old = c
			}
		}
		if old == nil {
			sa.e.log.Info("peer rekeys an unknown Child SA", "sa", sa.logID(), "spi", fmt.Sprintf("%08x", spi))
			return []message.Payload{&message.Notify{Protocol: message.ProtocolESP, SPI: n.SPI, NotifyType: message.NotifyChildSANotFound}}, nil
		}
		if old.state == childRekeyed || old.state == childDeleting {
			// §2.25: we are replacing or deleting it already.
			return refuse(message.NotifyTemporaryFailure)
		}
		if len(sa.children) >= 2*sa.conn.maxChildren() {
			// Rekeyed SAs linger until the peer deletes them; a peer that
			// rekeys without deleting must not grow our state for ever.
			sa.e.log.Warn("too many Child SAs awaiting deletion, refusing rekey", "sa", sa.logID())
			return refuse(message.NotifyTemporaryFailure)
		}
	} else if len(sa.children) >= sa.conn.maxChildren() {
		sa.e.log.Warn("peer asks for more Child SAs than allowed", "sa", sa.logID(), "limit", sa.conn.maxChildren())
		return refuse(message.NotifyNoAdditionalSAs)
	}
	cands := childConfigs(sa.conn)
	if old != nil {
		cands = []*ChildConfig{old.cfg} // a rekey keeps the old SA's config
	}
	ps, c := respondChildSA(sa, req, cands, old, true)
	if c == nil {
		return ps, nil
	}
	if old == nil {
		return ps, sa.e.installOutbound(sa, c)
	}
	// A rekey: our outbound switches to c only once the peer has the
	// inbound half, which its Delete of old proves (make-before-break);
	// the grace timer covers a peer that never sends it.
	if old.state == childRekeying {
		sa.e.log.Info("rekey collision: both ends rekey the Child SA", "sa", sa.logID(), "child", c.cfg.Name)
	} else {
		old.state = childRekeyed
	}
	old.successor = c
	c.timers = append(c.timers, sa.e.afterFunc(sa.e.rekeyGrace(), func() { sa.e.graceExpired(old, c) }))
	return ps, nil
}

// switchToSuccessor moves our outbound traffic from old to the Child SA
// that replaced it in a rekey the peer started.
func (e *Engine) switchToSuccessor(sa *ikeSA, old *childSA) {
	s := old.successor
	if s == nil || s.state == childDead || s.ike != sa {
		return
	}
	if !s.outInst {
		if err := e.installChild(sa, s, false, true); err != nil {
			e.log.Error("cannot install outbound SA", "sa", sa.logID(), "child", s.cfg.Name, "err", err)
			return
		}
		e.log.Info("Child SA rekeyed by peer", "sa", sa.logID(), "child", s.cfg.Name, "old_in", fmt.Sprintf("%08x", old.inSPI), "new_in", fmt.Sprintf("%08x", s.inSPI))
	}
	old.replaced = true
}

// graceExpired handles a peer that rekeyed old but never deleted it: we
// switch to the new SA and delete old ourselves.
func (e *Engine) graceExpired(old, c *childSA) {
	sa := old.ike
	if sa == nil || sa.state != StateEstablished || old.successor != c || old.state != childRekeyed || c.state == childDead {
		return
	}
	e.log.Info("peer did not delete the rekeyed Child SA, deleting it", "sa", sa.logID(), "child", old.cfg.Name, "spi_in", fmt.Sprintf("%08x", old.inSPI))
	e.switchToSuccessor(sa, old)
	old.state = childDeleting
	e.deleteOutbound(old)
	sa.enqueueFirst(&deleteChildTask{children: []*childSA{old}})
}

// rekeyGrace is how long a rekey responder waits for the peer's Delete of
// the old Child SA: the peer's whole retransmission schedule.
func (e *Engine) rekeyGrace() time.Duration {
	var d time.Duration
	for n := 0; n <= e.retransmit.Tries; n++ {
		d += e.retransmit.delay(n)
	}
	return d
}
