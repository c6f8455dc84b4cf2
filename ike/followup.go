package ike

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): when the rekey of an IKE SA selects
// additional key exchanges, the CREATE_CHILD_SA exchange carries the first
// (main) one and each additional one follows in its own IKE_FOLLOWUP_KE
// exchange on the old IKE SA:
//
//	CREATE_CHILD_SA   SA, Ni, KEi            ->  SA, Nr, KEr, N(ADDITIONAL_KEY_EXCHANGE)(link)
//	IKE_FOLLOWUP_KE   KEi(1), N(…)(link)     ->  KEr(1) [, N(…)(next link)]
//
// and the new SA's SKEYSEED = prf(SK_d(old), SK(0) | Ni | Nr | SK(1) | …).
// Child SAs of a hybrid IKE SA need no follow-ups to keep the additional
// exchanges: their keys come from SK_d, which carries them.

// maxLinkLen bounds the ADDITIONAL_KEY_EXCHANGE data we keep from a peer:
// the link is the responder's handle, a few octets in practice.
const maxLinkLen = 64

// followupTimeout is how long the responder keeps a rekey's state while
// it waits for the next IKE_FOLLOWUP_KE request: the initiator sends it as
// soon as it has our answer, so this only has to outlast retransmissions.
const followupTimeout = 30 * time.Second

// followupState is the responder's half-made rekey between exchanges. The
// engine keeps it by old IKE SA (at most one at a time: a second rekey is
// refused meanwhile).
type followupState struct {
	next    *ikeSA
	sel     selected
	secrets [][]byte // SK(0), SK(1), …
	pending []iana.GroupID
	link    []byte
	timer   *time.Timer
	// deadline is when the peer's next IKE_FOLLOWUP_KE is due; a timer
	// event already queued when the deadline moved on finds it later and
	// does nothing.
	deadline time.Time
}

func newLink() []byte {
	b := make([]byte, 8)
	rand.Read(b)
	return b
}

// startFollowup records the state of a peer's rekey that continues in
// IKE_FOLLOWUP_KE; it takes ownership of secret.
func (e *Engine) startFollowup(old, next *ikeSA, sel selected, secret []byte, pending []iana.GroupID) *followupState {
	st := &followupState{next: next, sel: sel, secrets: [][]byte{secret}, pending: pending, link: newLink()}
	e.followups[old] = st
	st.deadline = e.now().Add(followupTimeout)
	st.timer = e.afterFunc(followupTimeout, func() {
		if e.followups[old] == st && !e.now().Before(st.deadline) {
			e.log.Warn("peer did not continue its IKE rekey with IKE_FOLLOWUP_KE, dropping it", "sa", old.logID(), "new", next.logID())
			e.dropFollowup(old, true)
		}
	})
	return st
}

// dropFollowup forgets old's follow-up state and wipes its secrets; with
// destroyNext the half-made IKE SA goes too.
func (e *Engine) dropFollowup(old *ikeSA, destroyNext bool) {
	st := e.followups[old]
	if st == nil {
		return
	}
	delete(e.followups, old)
	if st.timer != nil {
		st.timer.Stop()
	}
	for _, s := range st.secrets {
		crypto.Zero(s)
	}
	st.secrets = nil
	if destroyNext && st.next.state != StateEstablished {
		st.next.destroy()
	}
}

// respondFollowupKE is the responder's side of one IKE_FOLLOWUP_KE
// exchange. A request without our current link gets STATE_NOT_FOUND (RFC
// 9370 §2.2.4); a wrong or bad KE ends the rekey with INVALID_SYNTAX, since
// the method was already agreed.
func respondFollowupKE(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	st := sa.e.followups[sa]
	n := req.Notify(message.NotifyAdditionalKeyExchange)
	if st == nil || n == nil || !hmac.Equal(n.Data, st.link) {
		sa.e.log.Warn("IKE_FOLLOWUP_KE for no rekey of ours", "sa", sa.logID(), "have_state", st != nil)
		return []message.Payload{notify(message.NotifyStateNotFound, nil)}, nil
	}
	if sa.state != StateEstablished || sa.replaced {
		// Our own rekey of this IKE SA won a collision (or it is being
		// deleted): the peer's would only make a redundant IKE SA.
		sa.e.log.Info("IKE_FOLLOWUP_KE for an IKE SA we replaced, refusing", "sa", sa.logID())
		sa.e.dropFollowup(sa, true)
		return []message.Payload{notify(message.NotifyTemporaryFailure, nil)}, nil
	}
	fail := func(why string, args ...any) ([]message.Payload, func()) {
		sa.e.log.Warn("IKE_FOLLOWUP_KE refused: "+why, append([]any{"sa", sa.logID()}, args...)...)
		sa.e.dropFollowup(sa, true)
		return []message.Payload{notify(message.NotifyInvalidSyntax, nil)}, nil
	}
	want := st.pending[0]
	pub, secret, err := addKEResponse(req, want)
	if err != nil {
		return fail(err.Error())
	}
	st.secrets = append(st.secrets, secret)
	st.pending = st.pending[1:]
	resp := []message.Payload{&message.KeyExchange{Group: want, Data: pub}}
	if len(st.pending) > 0 {
		st.link = newLink()
		st.deadline = sa.e.now().Add(followupTimeout)
		st.timer.Reset(followupTimeout)
		return append(resp, notify(message.NotifyAdditionalKeyExchange, st.link)), nil
	}
	next := st.next
	err = next.deriveRekeyedKeys(sa, st.sel, st.secrets[0], st.secrets[1:]...)
	sa.e.dropFollowup(sa, err != nil)
	if err != nil {
		sa.e.log.Error("rekeyed IKE keys", "sa", sa.logID(), "err", err)
		return []message.Payload{notify(message.NotifyTemporaryFailure, nil)}, nil
	}
	if sa.ikeRekey != nil {
		sa.e.log.Info("IKE rekey collision: both ends rekey", "sa", sa.logID())
	}
	// As in respondRekeyIKE: the Child SAs move when the peer deletes
	// this IKE SA.
	sa.ikeSuccessor = next
	sa.e.log.Info("IKE rekey with additional key exchanges answered", "sa", sa.logID(), "new", next.logID(), "proposal", st.sel.String())
	return resp, nil
}

// followupKETask is one IKE_FOLLOWUP_KE exchange of our IKE rekey.
type followupKETask struct {
	rk *ikeRekeyTask
	keyShare
}

func (*followupKETask) exchange() message.ExchangeType { return message.ExchangeIKEFollowupKE }

func (t *followupKETask) build(sa *ikeSA) ([]message.Payload, error) {
	if sa.ikeRekey != t.rk || len(t.rk.pending) == 0 {
		return nil, errSkipTask // the rekey was given up meanwhile
	}
	if sa.state != StateEstablished || sa.replaced {
		t.rk.abort(sa, errors.New("IKE SA is going away"))
		return nil, errSkipTask
	}
	t.group = t.rk.pending[0]
	ke, err := t.share()
	if err != nil {
		return nil, fmt.Errorf("additional %w", err) // "additional key exchange GROUP: ..."
	}
	return []message.Payload{ke, notify(message.NotifyAdditionalKeyExchange, t.rk.link)}, nil
}

func (t *followupKETask) process(sa *ikeSA, resp message.Payloads) error {
	defer t.destroyKex()
	rk := t.rk
	if sa.ikeRekey != rk {
		return nil
	}
	for p := range resp.All(message.PayloadNotify) {
		if n := p.(*message.Notify); n.NotifyType.IsError() {
			rk.abort(sa, fmt.Errorf("peer refused IKE_FOLLOWUP_KE (%v): %v", t.group, n.NotifyType))
			return nil
		}
	}
	secret, err := addKEShared(resp, t.group, t.kex)
	if err != nil {
		rk.abort(sa, fmt.Errorf("IKE_FOLLOWUP_KE response: %w", err))
		return nil
	}
	rk.secrets = append(rk.secrets, secret)
	rk.pending = rk.pending[1:]
	sa.e.log.Info("IKE_FOLLOWUP_KE done", "sa", sa.logID(), "key_exchange", t.group, "left", len(rk.pending))
	if len(rk.pending) > 0 {
		n := resp.Notify(message.NotifyAdditionalKeyExchange)
		if n == nil || len(n.Data) == 0 || len(n.Data) > maxLinkLen {
			rk.abort(sa, errors.New("IKE_FOLLOWUP_KE response without the link to the next one"))
			return nil
		}
		rk.link = append(rk.link[:0], n.Data...)
		sa.enqueueFirst(&followupKETask{rk: rk})
		return nil
	}
	rk.complete(sa, rk.sel, rk.secrets[0], rk.secrets[1:]...)
	return nil
}
