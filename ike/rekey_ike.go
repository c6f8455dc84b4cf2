package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// ikeRekeyTask rekeys the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2,
// §2.18; strongSwan's ike_rekey): a new IKE SA with new SPIs and a fresh
// key exchange, keyed from the old SK_d; the Child SAs move to it and the
// old IKE SA is deleted.
type ikeRekeyTask struct {
	next *ikeSA
	keyShare
	done chan error

	// With additional key exchanges (RFC 9370 §2.2.4) the new SA is
	// complete only after the IKE_FOLLOWUP_KE exchanges: until then the
	// task keeps the selection, the shared secrets SK(0)..SK(n) so far,
	// the exchanges still due and the responder's link to its state.
	sel     selected
	secrets [][]byte
	pending []iana.GroupID
	link    []byte
}

func (*ikeRekeyTask) exchange() message.ExchangeType { return message.ExchangeCreateChildSA }

func (t *ikeRekeyTask) finish(sa *ikeSA, err error) {
	t.destroyKex()
	for _, s := range t.secrets {
		crypto.Zero(s)
	}
	t.secrets, t.pending = nil, nil
	if sa.ikeRekey == t {
		sa.ikeRekey = nil
	}
	if t.done != nil {
		signal(t.done, err)
	}
}

func (t *ikeRekeyTask) build(sa *ikeSA) ([]message.Payload, error) {
	if sa.state != StateEstablished || sa.ikeSuccessor != nil || sa.replaced {
		t.finish(sa, errors.New("IKE SA is going away or was rekeyed by the peer"))
		return nil, errSkipTask
	}
	if t.next == nil {
		t.next = sa.e.newSA(sa.conn, true, sa.local, sa.remote)
		t.next.ni = newNonce()
	}
	if t.group == 0 {
		t.group = sa.sel.DH
	}
	ke, err := t.share()
	if err != nil {
		return nil, err
	}
	sa.ikeRekey = t
	spi := binary.BigEndian.AppendUint64(nil, t.next.spiI)
	return []message.Payload{
		wireSA(withLegacyCopies(rekeyOffer(sa)), spi, true),
		&message.Nonce{Data: t.next.ni},
		ke,
	}, nil
}

func (t *ikeRekeyTask) abort(sa *ikeSA, err error) {
	sa.e.log.Warn("IKE SA rekey failed", "sa", sa.logID(), "err", err)
	if t.next != nil {
		t.next.destroy()
		t.next = nil
	}
	t.finish(sa, err)
	if sa.ikeSuccessor == nil {
		sa.e.retryIKERekey(sa)
	}
}

func (t *ikeRekeyTask) process(sa *ikeSA, resp message.Payloads) error {
	if handled, err := t.retryKE(sa, t, resp, sa.conn.IKEProposals); handled {
		if err != nil {
			t.abort(sa, err)
		}
		return nil
	}
	for p := range resp.All(message.PayloadNotify) {
		if n := p.(*message.Notify); n.NotifyType.IsError() {
			t.abort(sa, fmt.Errorf("peer refused: %v", n.NotifyType))
			return nil
		}
	}
	saP, _ := resp.Get(message.PayloadSA).(*message.SA)
	nP, _ := resp.Get(message.PayloadNonce).(*message.Nonce)
	keP, _ := resp.Get(message.PayloadKE).(*message.KeyExchange)
	if saP == nil || nP == nil || keP == nil || len(saP.Proposals) != 1 {
		t.abort(sa, errors.New("response lacks SA, Nonce or KE"))
		return nil
	}
	sel, err := selectProposal(rekeyOffer(sa), saP.Proposals, true)
	if err != nil || len(sel.SPI) != 8 || sel.DH != t.group || keP.Group != t.group || !oneAddKEEach(&saP.Proposals[0]) {
		t.abort(sa, fmt.Errorf("peer chose a proposal we did not offer: %s", describeProposals(saP.Proposals)))
		return nil
	}
	next := t.next
	next.spiR = binary.BigEndian.Uint64(sel.SPI)
	if next.spiR == 0 {
		t.abort(sa, errors.New("responder SPI zero"))
		return nil
	}
	next.nr = append([]byte(nil), nP.Data...)
	secret, err := t.kex.SharedSecret(keP.Data)
	if err != nil {
		t.abort(sa, fmt.Errorf("key exchange: %w", err))
		return nil
	}
	if ks := sel.addKEs(); len(ks) > 0 {
		// RFC 9370 §2.2.4: the additional exchanges follow in
		// IKE_FOLLOWUP_KE, each carrying the responder's link back.
		n := resp.Notify(message.NotifyAdditionalKeyExchange)
		if n == nil || len(n.Data) == 0 || len(n.Data) > maxLinkLen {
			crypto.Zero(secret)
			t.abort(sa, errors.New("peer chose additional key exchanges without a valid ADDITIONAL_KEY_EXCHANGE link"))
			return nil
		}
		t.sel, t.secrets, t.pending, t.link = sel, [][]byte{secret}, ks, slices.Clone(n.Data)
		sa.enqueueFirst(&followupKETask{rk: t})
		return nil
	}
	defer crypto.Zero(secret)
	t.complete(sa, sel, secret)
	return nil
}

// complete derives the new IKE SA's keys from all the rekey's shared
// secrets and hands the Child SAs over.
func (t *ikeRekeyTask) complete(sa *ikeSA, sel selected, secret []byte, additional ...[]byte) {
	next := t.next
	if sa.isHybrid() && len(sel.addKEs()) == 0 {
		t.abort(sa, errors.New("rekey without the additional key exchanges the IKE SA has"))
		return
	}
	if err := next.deriveRekeyedKeys(sa, sel, secret, additional...); err != nil {
		t.abort(sa, err)
		return
	}
	t.finish(sa, nil)
	peer := sa.ikeSuccessor
	if st := sa.e.followups[sa]; peer == nil && st != nil {
		// The peer's colliding rekey still waits for its IKE_FOLLOWUP_KE
		// exchanges; its nonces are known, so both ends reach the same
		// verdict now. If we win, its follow-ups are refused (the old SA
		// is replaced, see respondFollowupKE).
		peer = st.next
	}
	if peer != nil && peer.state != StateDead {
		// Both ends rekeyed the IKE SA at once (§2.8.1): the new SA with
		// the lowest nonce is redundant and its initiator deletes it.
		if bytes.Compare(minNonce(next.ni, next.nr), minNonce(peer.ni, peer.nr)) < 0 {
			sa.e.log.Info("IKE rekey collision lost, deleting our redundant IKE SA", "sa", next.logID())
			next.enqueue(&deleteIKETask{})
			return
		}
		sa.e.log.Info("IKE rekey collision won", "sa", next.logID())
	}
	sa.e.log.Info("IKE SA rekeyed", "old", sa.logID(), "new", next.logID(), "proposal", next.sel.String())
	sa.moveTo(next)
	sa.enqueue(&deleteIKETask{})
}

// rekeyOffer is what a CREATE_CHILD_SA rekey of the IKE SA may agree on:
// the connection's proposals, but for an IKE SA that has additional key
// exchanges only those with one, NONE dropped from their slots. A rekey
// must not quietly give the new SA less than the old one had (the peer
// could otherwise pick a classical proposal or NONE).
func rekeyOffer(sa *ikeSA) []Proposal {
	ps := sa.conn.IKEProposals
	if !sa.isHybrid() {
		return ps
	}
	out := make([]Proposal, 0, len(ps))
	for _, p := range ps {
		for n, slot := range p.AddKE {
			if slices.Contains(slot, groupNone) {
				kept := make([]iana.GroupID, 0, len(slot))
				for _, g := range slot {
					if g != groupNone {
						kept = append(kept, g)
					}
				}
				p.AddKE[n] = kept
			}
		}
		if p.hasAddKE() {
			out = append(out, p)
		}
	}
	return out
}

// deriveRekeyedKeys makes the keys of an IKE SA that replaces old
// (RFC 7296 §2.18) and completes the new SA.
// additional are the secrets of IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4).
func (sa *ikeSA) deriveRekeyedKeys(old *ikeSA, sel selected, secret []byte, additional ...[]byte) error {
	prf, err := crypto.NewPRF(sel.PRF)
	if err != nil {
		return err
	}
	keys, err := crypto.DeriveRekeyedIKEKeys(old.sel.PRF, old.keys.SKd, sel.Suite(), secret, sa.ni, sa.nr, sa.spiI, sa.spiR, additional...)
	if err != nil {
		return fmt.Errorf("rekeyed IKE keys: %w", err)
	}
	sa.sel, sa.prf, sa.keys = sel, prf, keys
	if err = sa.checkProtectors(); err != nil {
		return fmt.Errorf("IKE protectors: %w", err)
	}
	sa.e.logIKEKeys(sa)
	sa.remoteID = old.remoteID
	sa.peerHashes = old.peerHashes
	sa.natLocal, sa.natRemote, sa.natHere = old.natLocal, old.natRemote, old.natHere
	// Fragmentation support is a property of the peer announced only in
	// IKE_SA_INIT; the IKE SA that replaces this one keeps it.
	sa.fragment = old.fragment
	sa.local, sa.remote = old.local, old.remote
	sa.established()
	return nil
}

// moveTo hands the Child SAs and the queued Child SA work of a rekeyed IKE
// SA to its replacement.
func (sa *ikeSA) moveTo(next *ikeSA) {
	sa.replaced = true
	sa.e.markExport(sa, true)
	sa.e.markExport(next, true)
	for _, c := range sa.children {
		c.ike = next
		next.children = append(next.children, c)
	}
	sa.children = nil
	// The replacement's DPD counts ESP from here, not what the Child SAs
	// carried before they moved.
	next.espSeen = next.inboundPackets()
	// Child SA work queued here goes with the Child SAs: a rekey's
	// pending Delete of the old Child SA (RekeyDeleteDelay) left behind
	// would die with this IKE SA, and the old SA would stay for ever.
	var keep []task
	for _, t := range sa.queue {
		switch t.(type) {
		case *createChildTask, *deleteChildTask:
			next.queue = append(next.queue, t)
			continue
		}
		keep = append(keep, t)
	}
	sa.queue = keep
	next.next()
}

// childWork reports whether a request is about Child SAs: a
// CREATE_CHILD_SA other than an IKE SA rekey, or an INFORMATIONAL that
// deletes Child SAs and not the IKE SA.
func childWork(ex message.ExchangeType, req message.Payloads) bool {
	switch ex {
	case message.ExchangeCreateChildSA:
		saP, _ := req.Get(message.PayloadSA).(*message.SA)
		return saP == nil || len(saP.Proposals) == 0 || saP.Proposals[0].Protocol != message.ProtocolIKE
	case message.ExchangeInformational:
		child := false
		for p := range req.All(message.PayloadDelete) {
			if p.(*message.Delete).Protocol == message.ProtocolIKE {
				return false
			}
			child = true
		}
		return child
	}
	return false
}

// adoptFromPredecessor ends, on the responder's side, an IKE SA rekey the
// peer started: the peer does Child SA work on the new IKE SA, so it has
// moved its Child SAs already; ours move now too, rather than on the
// Delete of the old IKE SA, which may still be on its way (a Delete of a
// rekeyed Child SA that the peer queued behind the IKE rekey would
// otherwise find no such Child SA here). The peer never uses a new IKE SA
// it is about to delete as a collision's loser (§2.8.1), so only the SA
// it kept gets here.
func (sa *ikeSA) adoptFromPredecessor() {
	for _, o := range sa.e.sas {
		if o.ikeSuccessor == sa && o.state == StateEstablished && !o.replaced {
			sa.e.log.Info("IKE SA rekeyed by peer", "old", o.logID(), "new", sa.logID())
			o.moveTo(sa)
		}
	}
}

// respondRekeyIKE answers the peer's rekey of this IKE SA.
func respondRekeyIKE(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	refuse := func(t message.NotifyType, data []byte) ([]message.Payload, func()) {
		return []message.Payload{notify(t, data)}, nil
	}
	if sa.state != StateEstablished || sa.ikeSuccessor != nil || sa.replaced || sa.e.followups[sa] != nil {
		// Rekeyed already, by the peer or (a collision the peer has not
		// seen yet) by us, or the peer's rekey waits for IKE_FOLLOWUP_KE:
		// §2.25.
		return refuse(message.NotifyTemporaryFailure, nil)
	}
	for _, c := range sa.children {
		if c.state == childRekeying {
			// A Child SA rekey of ours is in flight on this IKE SA; let it
			// finish first (§2.25).
			return refuse(message.NotifyTemporaryFailure, nil)
		}
	}
	saP, _ := req.Get(message.PayloadSA).(*message.SA)
	nP, _ := req.Get(message.PayloadNonce).(*message.Nonce)
	keP, _ := req.Get(message.PayloadKE).(*message.KeyExchange)
	if saP == nil || nP == nil || keP == nil {
		return refuse(message.NotifyInvalidSyntax, nil)
	}
	sel, err := selectProposal(rekeyOffer(sa), saP.Proposals, true)
	if err != nil || len(sel.SPI) != 8 || binary.BigEndian.Uint64(sel.SPI) == 0 {
		if sa.isHybrid() {
			sa.e.log.Error("no IKE proposal with additional key exchanges chosen for the rekey of a hybrid IKE SA; refusing rather than lose them", "sa", sa.logID(), "ours", sa.sel.String(), "received", describeProposals(saP.Proposals))
		} else {
			sa.e.log.Warn("no IKE proposal chosen for rekey", "sa", sa.logID(), "received", describeProposals(saP.Proposals))
		}
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	if keP.Group != sel.DH {
		var g [2]byte
		binary.BigEndian.PutUint16(g[:], uint16(sel.DH))
		return refuse(message.NotifyInvalidKEPayload, g[:])
	}
	pub, secret, err := crypto.RespondKeyExchange(sel.DH, keP.Data)
	if err != nil {
		sa.e.log.Warn("bad key exchange data", "sa", sa.logID(), "err", err)
		return refuse(message.NotifyInvalidSyntax, nil)
	}
	next := sa.e.newSA(sa.conn, false, sa.local, sa.remote)
	next.spiI = binary.BigEndian.Uint64(sel.SPI)
	next.ni, next.nr = append([]byte(nil), nP.Data...), newNonce()
	if ks := sel.addKEs(); len(ks) > 0 {
		// RFC 9370 §2.2.4: the new SA waits for the IKE_FOLLOWUP_KE
		// exchanges; the peer finds our state again by the link.
		st := sa.e.startFollowup(sa, next, sel, secret, ks)
		return []message.Payload{
			sel.wire(message.ProtocolIKE, binary.BigEndian.AppendUint64(nil, next.spiR)),
			&message.Nonce{Data: next.nr},
			&message.KeyExchange{Group: sel.DH, Data: pub},
			notify(message.NotifyAdditionalKeyExchange, st.link),
		}, nil
	}
	defer crypto.Zero(secret)
	if err := next.deriveRekeyedKeys(sa, sel, secret); err != nil {
		sa.e.log.Error("rekeyed IKE keys", "sa", sa.logID(), "err", err)
		next.destroy()
		return refuse(message.NotifyTemporaryFailure, nil)
	}
	if sa.ikeRekey != nil {
		sa.e.log.Info("IKE rekey collision: both ends rekey", "sa", sa.logID())
	}
	// The Child SAs move when the peer deletes this IKE SA (or at once if
	// our own colliding rekey wins).
	sa.ikeSuccessor = next
	return []message.Payload{
		sel.wire(message.ProtocolIKE, binary.BigEndian.AppendUint64(nil, next.spiR)),
		&message.Nonce{Data: next.nr},
		&message.KeyExchange{Group: sel.DH, Data: pub},
	}, nil
}
