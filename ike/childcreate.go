package ike

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// childCreate is one Child SA negotiation as the initiator runs it
// (RFC 7296 §1.2, §1.3.1, §1.3.3; strongSwan's child_create): carried by
// IKE_AUTH, where the keys come from the IKE SA's nonces, or (create set)
// by CREATE_CHILD_SA, with nonces of its own, a key exchange when the ESP
// proposal names a group (perfect forward secrecy) and, with old set, as
// the replacement of old (REKEY_SA). The task that carries it (authTask,
// createChildTask) decides what a failure means; respondChildSA is the
// responder's side.
type childCreate struct {
	cfg    *ChildConfig
	old    *childSA // the SA to rekey; nil for a new Child SA
	create bool     // carried by CREATE_CHILD_SA rather than IKE_AUTH
	child  *childSA // the SA being made, with its inbound SPI reserved
	keyShare
}

// request returns the Child SA payloads of our request. The first call
// reserves the inbound SPI; a retry after INVALID_KE_PAYLOAD keeps it and
// makes a new nonce and key share.
func (n *childCreate) request(sa *ikeSA) ([]message.Payload, error) {
	if n.child == nil {
		c := sa.e.newChild(sa, n.cfg)
		c.viaCreate, c.ourRequest = n.create, n.create
		if n.old != nil {
			c.reqID, c.mode = n.old.reqID, n.old.mode
		}
		n.child = c
	}
	c := n.child
	var ps []message.Payload
	if n.old != nil {
		ps = append(ps, &message.Notify{Protocol: message.ProtocolESP, SPI: binary.BigEndian.AppendUint32(nil, n.old.inSPI), NotifyType: message.NotifyRekeySA})
	}
	if c.mode == sad.Transport {
		ps = append(ps, notify(message.NotifyUseTransportMode, nil))
	}
	// IKE_AUTH carries no key exchange, so its proposals name no groups.
	ps = append(ps, wireSA(n.cfg.ESPProposals, binary.BigEndian.AppendUint32(nil, c.inSPI), n.create))
	if n.create {
		c.ni = newNonce()
		ps = append(ps, &message.Nonce{Data: c.ni})
		if n.group == 0 {
			n.group = firstGroup(n.cfg.ESPProposals)
		}
		if n.group != 0 {
			ke, err := n.share()
			if err != nil {
				return nil, err
			}
			ps = append(ps, ke)
		}
	}
	if n.old != nil {
		// A rekey proposes the selectors the old SA has (RFC 7296 §2.8).
		return append(ps, &message.TrafficSelectors{Selectors: n.old.localTS}, &message.TrafficSelectors{Responder: true, Selectors: n.old.remoteTS}), nil
	}
	return append(ps, wireTSList(n.cfg.LocalTS, false), wireTSList(n.cfg.RemoteTS, true)), nil
}

// response reads the responder's answer into the Child SA: the proposal it
// chose, its SPI, nonce and key exchange, the selectors it narrowed ours
// to. The caller installs the SA.
func (n *childCreate) response(resp message.Payloads) error {
	c := n.child
	for p := range resp.All(message.PayloadNotify) {
		if no := p.(*message.Notify); no.NotifyType.IsError() {
			return fmt.Errorf("peer refused the Child SA: %v", no.NotifyType)
		}
	}
	saP, _ := resp.Get(message.PayloadSA).(*message.SA)
	tsi, _ := resp.Get(message.PayloadTSi).(*message.TrafficSelectors)
	tsr, _ := resp.Get(message.PayloadTSr).(*message.TrafficSelectors)
	nP, _ := resp.Get(message.PayloadNonce).(*message.Nonce)
	if saP == nil || tsi == nil || tsr == nil || (n.create && nP == nil) {
		return errors.New("response lacks SA, Nonce, TSi or TSr")
	}
	if len(saP.Proposals) != 1 {
		return errors.New("response must carry exactly one proposal")
	}
	sel, err := selectProposal(n.cfg.ESPProposals, saP.Proposals, n.create)
	if err != nil || len(sel.SPI) != 4 || sel.DH != n.group {
		return fmt.Errorf("peer chose a proposal we did not offer: %s", describeProposals(saP.Proposals))
	}
	if n.group != 0 {
		keP, _ := resp.Get(message.PayloadKE).(*message.KeyExchange)
		if keP == nil || keP.Group != n.group {
			return errors.New("response lacks the KE payload of the chosen group")
		}
		secret, err := n.kex.SharedSecret(keP.Data)
		if err != nil {
			return fmt.Errorf("key exchange: %w", err)
		}
		c.secret = secret
	}
	// The responder may only narrow (RFC 7296 §2.9): what it returns must
	// lie inside what we proposed.
	local, remote := tsi.Selectors, tsr.Selectors
	if n.old != nil {
		local, remote = narrowWire(local, n.old.localTS), narrowWire(remote, n.old.remoteTS)
	} else {
		local, remote = narrow(local, n.cfg.LocalTS), narrow(remote, n.cfg.RemoteTS)
	}
	if len(local) == 0 || len(remote) == 0 {
		return errors.New("peer returned traffic selectors outside ours")
	}
	transport := resp.Notify(message.NotifyUseTransportMode) != nil
	if c.mode == sad.Transport && !transport {
		return errors.New("we asked for transport mode, the peer answered with tunnel mode")
	}
	if n.create && transport && c.mode != sad.Transport {
		// IKE_AUTH has always let this pass (the SA stays in tunnel mode).
		return errors.New("peer answered with transport mode, which we did not ask for")
	}
	c.localTS, c.remoteTS, c.sel = local, remote, sel
	c.outSPI = binary.BigEndian.Uint32(sel.SPI)
	if n.create {
		c.nr = append([]byte(nil), nP.Data...)
	}
	n.destroyKex()
	return nil
}

// respondChildSA is the responder's side of a Child SA negotiation, in
// IKE_AUTH or (create set) CREATE_CHILD_SA, whose request carries SA, TSi
// and TSr (and for CREATE_CHILD_SA a Nonce). The first of cands whose
// selectors overlap the proposed ones (those of old, for a rekey) and
// whose ESP proposals meet the peer's wins: its key exchange is answered,
// the selectors narrowed, and the inbound SA installed. It returns the
// Child SA payloads of the response and the new Child SA, or the error
// notify of the refusal and nil (RFC 7296 §1.2, §1.3, §2.9); the IKE SA
// stays either way.
func respondChildSA(sa *ikeSA, req message.Payloads, cands []*ChildConfig, old *childSA, create bool) ([]message.Payload, *childSA) {
	refuse := func(t message.NotifyType, data []byte) ([]message.Payload, *childSA) {
		return []message.Payload{notify(t, data)}, nil
	}
	saP, _ := req.Get(message.PayloadSA).(*message.SA)
	tsi, _ := req.Get(message.PayloadTSi).(*message.TrafficSelectors)
	tsr, _ := req.Get(message.PayloadTSr).(*message.TrafficSelectors)
	wantTransport := req.Notify(message.NotifyUseTransportMode) != nil
	var tsFailed, propFailed bool
	for _, cfg := range cands {
		var remote, local []message.TrafficSelector
		if old != nil {
			remote, local = narrowWire(tsi.Selectors, old.remoteTS), narrowWire(tsr.Selectors, old.localTS)
		} else {
			remote, local = narrow(tsi.Selectors, cfg.RemoteTS), narrow(tsr.Selectors, cfg.LocalTS)
		}
		if len(remote) == 0 || len(local) == 0 {
			tsFailed = true
			continue
		}
		sel, err := selectProposal(cfg.ESPProposals, saP.Proposals, create)
		if err != nil || len(sel.SPI) != 4 {
			propFailed = true
			sa.e.log.Warn("no ESP proposal chosen", "sa", sa.logID(), "child", cfg.Name, "received", describeProposals(saP.Proposals), "configured", describeOurs(cfg.ESPProposals))
			continue
		}
		var ke *message.KeyExchange
		var secret []byte
		if sel.DH != 0 {
			keP, _ := req.Get(message.PayloadKE).(*message.KeyExchange)
			if keP == nil || keP.Group != sel.DH {
				var g [2]byte
				binary.BigEndian.PutUint16(g[:], uint16(sel.DH))
				return refuse(message.NotifyInvalidKEPayload, g[:])
			}
			var pub []byte
			if pub, secret, err = crypto.RespondKeyExchange(sel.DH, keP.Data); err != nil {
				sa.e.log.Warn("bad key exchange data", "sa", sa.logID(), "err", err)
				return refuse(message.NotifyInvalidSyntax, nil)
			}
			ke = &message.KeyExchange{Group: sel.DH, Data: pub}
		}
		c := sa.e.newChild(sa, cfg)
		c.sel = sel
		c.outSPI = binary.BigEndian.Uint32(sel.SPI)
		c.localTS, c.remoteTS = local, remote
		c.mode = sad.Tunnel
		if wantTransport && modeOf(cfg) == sad.Transport {
			c.mode = sad.Transport
		}
		if old != nil {
			c.reqID, c.mode = old.reqID, old.mode
		}
		if create {
			nP, _ := req.Get(message.PayloadNonce).(*message.Nonce)
			c.viaCreate, c.secret = true, secret
			c.ni, c.nr = append([]byte(nil), nP.Data...), newNonce()
		}
		if err := sa.e.installChild(sa, c, true, false); err != nil {
			sa.e.log.Error("cannot install inbound SA", "sa", sa.logID(), "child", cfg.Name, "err", err)
			sa.e.deleteChild(sa, c)
			return refuse(message.NotifyTemporaryFailure, nil)
		}
		var ps []message.Payload
		if c.mode == sad.Transport {
			ps = append(ps, notify(message.NotifyUseTransportMode, nil))
		}
		ps = append(ps, sel.wire(message.ProtocolESP, binary.BigEndian.AppendUint32(nil, c.inSPI)))
		if create {
			ps = append(ps, &message.Nonce{Data: c.nr})
		}
		if ke != nil {
			ps = append(ps, ke)
		}
		return append(ps, &message.TrafficSelectors{Selectors: remote}, &message.TrafficSelectors{Responder: true, Selectors: local}), c
	}
	if propFailed {
		return refuse(message.NotifyNoProposalChosen, nil)
	}
	if tsFailed {
		sa.e.log.Warn("traffic selectors unacceptable", "sa", sa.logID(), "tsi", fmtTS(tsi.Selectors), "tsr", fmtTS(tsr.Selectors))
	}
	return refuse(message.NotifyTSUnacceptable, nil)
}

// installOutbound returns the step that installs the outbound half of a
// Child SA we answered once the response is out: the peer installs its
// inbound half on receiving it.
func (e *Engine) installOutbound(sa *ikeSA, c *childSA) func() {
	return func() {
		if sa.state == StateDead || c.state == childDead {
			return
		}
		if err := e.installChild(sa, c, false, true); err != nil {
			e.log.Error("cannot install outbound SA", "sa", sa.logID(), "child", c.cfg.Name, "err", err)
		}
	}
}

// respondChild is the responder's side of the Child SA in IKE_AUTH. A
// request without SA, TSi or TSr asks for none (RFC 6023).
func respondChild(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	saP, _ := req.Get(message.PayloadSA).(*message.SA)
	tsi, _ := req.Get(message.PayloadTSi).(*message.TrafficSelectors)
	tsr, _ := req.Get(message.PayloadTSr).(*message.TrafficSelectors)
	if saP == nil || tsi == nil || tsr == nil {
		return nil, nil
	}
	ps, c := respondChildSA(sa, req, childConfigs(sa.conn), nil, false)
	if c == nil {
		return ps, nil
	}
	return ps, sa.e.installOutbound(sa, c)
}

func childConfigs(conn *Connection) []*ChildConfig {
	cands := make([]*ChildConfig, len(conn.Children))
	for i := range conn.Children {
		cands[i] = &conn.Children[i]
	}
	return cands
}

// keyShare is the key exchange of a CREATE_CHILD_SA request of ours (a
// Child SA with PFS, an IKE SA rekey) or of an additional key exchange
// (IKE_INTERMEDIATE, IKE_FOLLOWUP_KE): its group, our private value, and
// the retries INVALID_KE_PAYLOAD caused.
type keyShare struct {
	group   iana.GroupID
	kex     crypto.KeyExchange
	retries int
}

// share makes a new private value of the group, for a new request (a
// retransmission resends the old message), and returns its KE payload.
func (k *keyShare) share() (*message.KeyExchange, error) {
	k.destroyKex()
	kex, err := crypto.NewKeyExchange(k.group)
	if err != nil {
		return nil, fmt.Errorf("key exchange %v: %w", k.group, err)
	}
	k.kex = kex
	return &message.KeyExchange{Group: k.group, Data: kex.PublicKey()}, nil
}

func (k *keyShare) destroyKex() {
	if k.kex != nil {
		k.kex.Destroy()
		k.kex = nil
	}
}

// retryKE handles an INVALID_KE_PAYLOAD answer to t's request: t goes
// again, first in sa's queue, with the group the peer asks for, or err
// says why it cannot. handled is false when resp is no such answer.
func (k *keyShare) retryKE(sa *ikeSA, t task, resp message.Payloads, offer []Proposal) (handled bool, err error) {
	n := resp.Notify(message.NotifyInvalidKEPayload)
	if n == nil {
		return false, nil
	}
	g, err := retryGroup(n, k.group, &k.retries, offer)
	if err != nil {
		return true, err
	}
	k.group = g
	sa.e.log.Info("peer wants another key exchange group, retrying", "sa", sa.logID(), "group", g)
	sa.enqueueFirst(t)
	return true, nil
}

// maxKERetries bounds the new requests INVALID_KE_PAYLOAD answers may
// cause: two peers that each ask for the other's group must not loop.
const maxKERetries = 2

// retryGroup is the one INVALID_KE_PAYLOAD rule (RFC 7296 §1.2, §1.3,
// §2.7): the request goes again with the group the peer names if we
// offered it and did not just send it, at most maxKERetries times.
func retryGroup(n *message.Notify, sent iana.GroupID, retries *int, offer []Proposal) (iana.GroupID, error) {
	g, err := n.KEGroup()
	if err != nil {
		return 0, fmt.Errorf("INVALID_KE_PAYLOAD: %w", err)
	}
	want := g
	if want == sent || *retries >= maxKERetries || !offersGroup(offer, want) {
		return 0, fmt.Errorf("INVALID_KE_PAYLOAD: peer asks for key exchange group %v, which we did not offer", want)
	}
	*retries++
	return want, nil
}
