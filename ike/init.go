package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// nonceLen is our nonce size: at least half the PRF key size of any PRF we
// offer (RFC 7296 §2.10), 32 octets for SHA-512.
const nonceLen = 32

func newNonce() []byte {
	n := make([]byte, nonceLen)
	rand.Read(n)
	return n
}

// natNotifies builds our NAT detection notifications. With fake set the
// source hash is random, so the peer sees a NAT (ForceEncap).
func natNotifies(spiI, spiR uint64, local, remote netip.AddrPort, fake bool) []message.Payload {
	src := message.NATDetectionHash(spiI, spiR, local)
	if fake {
		rand.Read(src)
	}
	return []message.Payload{
		notify(message.NotifyNATDetectionSourceIP, src),
		notify(message.NotifyNATDetectionDestinationIP, message.NATDetectionHash(spiI, spiR, remote)),
	}
}

func sigHashNotify() *message.Notify {
	return notify(message.NotifySignatureHashAlgorithms, crypto.EncodeSignatureHashAlgorithms(crypto.SupportedHashAlgorithms()))
}

func peerHashAlgorithms(ps message.Payloads) []iana.HashAlgorithm {
	n := ps.Notify(message.NotifySignatureHashAlgorithms)
	if n == nil {
		return nil
	}
	h, err := crypto.ParseSignatureHashAlgorithms(n.Data)
	if err != nil || h == nil {
		return []iana.HashAlgorithm{}
	}
	return h
}

// initTask is IKE_SA_INIT as the initiator runs it (strongSwan's ike_init
// plus ike_natd).
type initTask struct {
	retries      int    // INVALID_KE_PAYLOAD retries so far
	cookieRounds int    // COOKIE replies followed so far
	cookie       []byte // the responder's COOKIE, echoed in every retry (§2.6)
}

func (*initTask) exchange() message.ExchangeType { return message.ExchangeIKESAInit }

func (t *initTask) build(sa *ikeSA) ([]message.Payload, error) {
	if sa.kex == nil {
		kex, err := crypto.NewKeyExchange(sa.dhGroup)
		if err != nil {
			return nil, fmt.Errorf("key exchange %v: %w", sa.dhGroup, err)
		}
		sa.kex = kex
	}
	if sa.ni == nil {
		sa.ni = newNonce()
	}
	var ps []message.Payload
	if t.cookie != nil {
		// RFC 7296 §2.6: the COOKIE comes first. It stays in the retries
		// after INVALID_KE_PAYLOAD too (the short exchange of §2.6.1): our
		// SPIi and Ni do not change, and those are what a cookie binds.
		ps = append(ps, notify(message.NotifyCookie, t.cookie))
	}
	ps = append(ps,
		wireSA(withLegacyCopies(sa.conn.IKEProposals), nil, true),
		&message.KeyExchange{Group: sa.dhGroup, Data: sa.kex.PublicKey()},
		&message.Nonce{Data: sa.ni},
	)
	ps = append(ps, natNotifies(sa.spiI, 0, sa.local, sa.remote, sa.conn.ForceEncap)...)
	ps = append(ps, sigHashNotify())
	if offersAddKE(sa.conn.IKEProposals) {
		// RFC 9370 §2.2.1: additional key exchanges run in IKE_INTERMEDIATE,
		// which each end announces (RFC 9242 §3.1). Announced only when
		// needed: we have no other use for the exchange.
		ps = append(ps, notify(message.NotifyIntermediateExchangeSupported, nil))
	}
	if sa.conn.fragmentation() {
		ps = append(ps, notify(message.NotifyIKEv2FragmentationSupported, nil))
	}
	return ps, nil
}

// withLegacyCopies follows each proposal whose additional key exchanges
// are all optional (every ADDKE slot includes NONE) with the same proposal
// without ADDKE transforms, unless the list has that one already. A
// responder that predates RFC 9370 (strongSwan 5.9.8, checked in
// TestStrongSwanInterop) rejects every proposal with a transform type it
// does not know, NONE or not (RFC 7296 §3.3.6), so "optional" would
// otherwise mean "no agreement" with it. One that knows RFC 9370 meets
// the original first and never needs the copy.
func withLegacyCopies(ps []Proposal) []Proposal {
	var out []Proposal
	for i, p := range ps {
		out = append(out, p)
		if !p.hasAddKE() {
			continue
		}
		optional := true
		for _, slot := range p.AddKE {
			if len(slot) > 0 && !slices.Contains(slot, groupNone) {
				optional = false
			}
		}
		if !optional {
			continue
		}
		c := p
		c.AddKE = [maxAddKE][]iana.GroupID{}
		dup := false
		for _, q := range ps[i+1:] {
			dup = dup || q.String() == c.String()
		}
		if !dup {
			out = append(out, c)
		}
	}
	if len(out) > 255 {
		out = out[:255] // proposal numbers are one octet
	}
	return out
}

// offersAddKE reports whether any of the proposals asks for additional
// key exchanges.
func offersAddKE(ps []Proposal) bool {
	for i := range ps {
		if ps[i].hasAddKE() {
			return true
		}
	}
	return false
}

func (t *initTask) process(sa *ikeSA, resp message.Payloads) error {
	if n := resp.Notify(message.NotifyCookie); n != nil && sa.spiR == 0 {
		// The responder is under load and wants proof that we receive at
		// our address: send the same request (same SPIi, nonce and key
		// share) again with its cookie first.
		if len(n.Data) == 0 || len(n.Data) > maxCookieLen {
			return fmt.Errorf("COOKIE of %d octets (RFC 7296 allows 1 to %d)", len(n.Data), maxCookieLen)
		}
		if t.cookieRounds >= maxCookieRounds {
			return fmt.Errorf("responder asked for a cookie %d times in a row", t.cookieRounds+1)
		}
		t.cookieRounds++
		t.cookie = append(t.cookie[:0], n.Data...)
		sa.e.flood.cookieRetries.Add(1)
		sa.e.log.Info("responder asks for a cookie, repeating IKE_SA_INIT with it", "sa", sa.logID(), "peer", sa.remote)
		return errRestart
	}
	if n := resp.Notify(message.NotifyInvalidKEPayload); n != nil {
		g, err := retryGroup(n, sa.dhGroup, &t.retries, sa.conn.IKEProposals)
		if err != nil {
			return err
		}
		sa.e.log.Info("peer wants another key exchange group, retrying", "sa", sa.logID(), "offered", sa.dhGroup, "requested", g)
		sa.kex.Destroy()
		sa.kex = nil
		sa.dhGroup = g
		return errRestart
	}
	for p := range resp.All(message.PayloadNotify) {
		n := p.(*message.Notify)
		if n.NotifyType.IsError() {
			if n.NotifyType == message.NotifyNoProposalChosen {
				sa.e.log.Warn("peer chose none of our IKE proposals", "sa", sa.logID(), "ours", describeOurs(sa.conn.IKEProposals))
				return errSilentFail
			}
			return fmt.Errorf("peer refused IKE_SA_INIT: %v", n.NotifyType)
		}
	}
	if sa.spiR == 0 {
		return errors.New("IKE_SA_INIT response without responder SPI")
	}
	saP, _ := resp.Get(message.PayloadSA).(*message.SA)
	keP, _ := resp.Get(message.PayloadKE).(*message.KeyExchange)
	nP, _ := resp.Get(message.PayloadNonce).(*message.Nonce)
	if saP == nil || keP == nil || nP == nil {
		return errors.New("IKE_SA_INIT response lacks SA, KE or Nonce")
	}
	if len(saP.Proposals) != 1 {
		return errors.New("IKE_SA_INIT response must carry exactly one proposal")
	}
	sel, err := selectProposal(sa.conn.IKEProposals, saP.Proposals, true)
	if err != nil || len(groupTransforms(&saP.Proposals[0]).encr) != 1 || !oneAddKEEach(&saP.Proposals[0]) {
		return fmt.Errorf("peer chose a proposal we did not offer: %s", describeProposals(saP.Proposals))
	}
	if sel.DH != sa.dhGroup || keP.Group != sa.dhGroup {
		return fmt.Errorf("peer chose group %v but we sent a KE of %v", sel.DH, sa.dhGroup)
	}
	sa.sel = sel
	sa.nr = append([]byte(nil), nP.Data...)
	secret, err := sa.kex.SharedSecret(keP.Data)
	sa.kex.Destroy()
	sa.kex = nil
	if err != nil {
		return fmt.Errorf("key exchange: %w", err)
	}
	defer crypto.Zero(secret)
	if err := sa.deriveKeys(secret); err != nil {
		return err
	}
	if sa.startHybrid() {
		if resp.Notify(message.NotifyIntermediateExchangeSupported) == nil {
			return fmt.Errorf("peer chose additional key exchanges (%s) without announcing IKE_INTERMEDIATE", sel.String())
		}
		// The IKE_INTERMEDIATE exchanges go before the queued IKE_AUTH,
		// one per additional key exchange, in the order of the ADDKE
		// types (RFC 9370 §2.2.2).
		var ts []task
		for _, g := range sa.hybrid().pending {
			ts = append(ts, &intermediateTask{keyShare{group: g}})
		}
		sa.queue = append(ts, sa.queue...)
	}
	sa.peerHashes = peerHashAlgorithms(resp)
	// RFC 7383 §2.3: fragmentation is used only when both ends announced it.
	sa.fragment = sa.conn.fragmentation() && resp.Notify(message.NotifyIKEv2FragmentationSupported) != nil
	peerNAT, localNAT, ok := message.CheckNAT(resp, sa.spiI, sa.spiR, sa.local, sa.remote)
	sa.natRemote, sa.natLocal, sa.natHere = peerNAT, localNAT || sa.conn.ForceEncap, localNAT
	if (ok || sa.conn.ForceEncap) && (sa.natRemote || sa.natLocal) {
		// RFC 7296 §2.23: the initiator moves to port 4500 as soon as it
		// knows a NAT is in the way, starting with IKE_AUTH.
		sa.floatToNATT()
		sa.e.log.Info("NAT detected, moving to NAT-T", "sa", sa.logID(), "peer_behind_nat", peerNAT, "we_behind_nat", localNAT, "local", sa.local, "remote", sa.remote)
	}
	sa.e.log.Info("IKE_SA_INIT done", "sa", sa.logID(), "proposal", sel.String(), "peer", sa.remote)
	return nil
}

// deriveKeys computes the IKE SA keys and protectors from the shared secret.
func (sa *ikeSA) deriveKeys(secret []byte) error {
	suite := sa.sel.Suite()
	prf, err := crypto.NewPRF(suite.PRF)
	if err != nil {
		return err
	}
	sa.prf = prf
	keys, err := crypto.DeriveIKEKeys(suite, sa.ni, sa.nr, secret, sa.spiI, sa.spiR)
	if err != nil {
		return fmt.Errorf("IKE keys: %w", err)
	}
	sa.keys = keys
	if err = sa.checkProtectors(); err != nil {
		return fmt.Errorf("IKE protectors: %w", err)
	}
	if len(sa.sel.addKEs()) == 0 {
		// With additional key exchanges the keys change again before
		// IKE_AUTH; applyAddKE logs the final ones.
		sa.e.logIKEKeys(sa)
	}
	return nil
}

// respondInit answers an IKE_SA_INIT request that created no state yet.
// Errors that need no state (no proposal, wrong KE group) are answered
// without keeping anything, so such requests cost the responder nothing
// but the answer (RFC 7296 §2.6 spirit).
//
// proven says the request carried a valid COOKIE. Only a request that
// passes every check and would now cost a key exchange is charged to its
// source's limit (chargeInit).
func (e *Engine) respondInit(m *message.Message, raw []byte, pkt transport.Packet, proven bool) {
	cands := e.candidates(pkt.Local.Addr(), pkt.Remote.Addr())
	if len(cands) == 0 {
		if e.quiet.allow(noisyUnknownPeer) {
			e.log.Info("IKE_SA_INIT from unknown peer ignored", "peer", pkt.Remote)
		}
		return
	}
	reply := func(ps ...message.Payload) {
		h := message.Header{SPIi: m.SPIi, Exchange: message.ExchangeIKESAInit, Flags: message.FlagResponse, MessageID: 0}
		out := message.Message{Header: h, Payloads: ps}
		b, err := out.Encode()
		if err == nil {
			e.conn.Send(transport.Packet{Data: b, Local: pkt.Local, Remote: pkt.Remote})
		}
	}
	saP, _ := m.Get(message.PayloadSA).(*message.SA)
	keP, _ := m.Get(message.PayloadKE).(*message.KeyExchange)
	nP, _ := m.Get(message.PayloadNonce).(*message.Nonce)
	if saP == nil || keP == nil || nP == nil {
		reply(notify(message.NotifyInvalidSyntax, nil))
		return
	}
	// The first connection whose proposals match decides the selection;
	// IKE_AUTH later picks among those that accept the same one.
	var conn *Connection
	var sel selected
	var matching []*Connection
	for _, c := range cands {
		s, err := selectProposal(c.IKEProposals, saP.Proposals, true)
		if err != nil {
			continue
		}
		if conn == nil {
			conn, sel = c, s
			matching = append(matching, c)
		} else if s.sameAlgorithms(sel) {
			matching = append(matching, c)
		}
	}
	if conn == nil {
		if e.quiet.allow(noisyNoProposal) {
			e.log.Warn("no IKE proposal chosen", "peer", pkt.Remote, "received", clip(describeProposals(saP.Proposals)), "configured", describeOurs(cands[0].IKEProposals))
		}
		reply(notify(message.NotifyNoProposalChosen, nil))
		return
	}
	hybrid := len(sel.addKEs()) > 0
	if hybrid && m.Payloads.Notify(message.NotifyIntermediateExchangeSupported) == nil {
		// RFC 9370 §2.2.1 needs IKE_INTERMEDIATE for the additional
		// exchanges; an initiator that offers them without it is broken.
		if e.quiet.allow(noisyBadInit) {
			e.log.Warn("IKE_SA_INIT offers additional key exchanges without INTERMEDIATE_EXCHANGE_SUPPORTED", "peer", pkt.Remote, "received", clip(describeProposals(saP.Proposals)))
		}
		reply(notify(message.NotifyInvalidSyntax, nil))
		return
	}
	if keP.Group != sel.DH {
		if e.quiet.allow(noisyWrongKE) {
			e.log.Info("peer sent KE of another group, asking for ours", "peer", pkt.Remote, "received", keP.Group, "wanted", sel.DH)
		}
		var g [2]byte
		binary.BigEndian.PutUint16(g[:], uint16(sel.DH))
		reply(notify(message.NotifyInvalidKEPayload, g[:]))
		return
	}
	if !e.chargeInit(m.SPIi, pkt, proven, nP.Data) {
		return
	}
	pub, secret, err := crypto.RespondKeyExchange(sel.DH, keP.Data)
	if err != nil {
		// RFC 6989 §2: a public value outside the group ends the exchange.
		if e.quiet.allow(noisyBadInit) {
			e.log.Warn("bad key exchange data", "peer", pkt.Remote, "group", sel.DH, "err", err)
		}
		reply(notify(message.NotifyInvalidSyntax, nil))
		return
	}
	sa := e.newSA(conn, false, pkt.Local, pkt.Remote)
	sa.cands = matching
	sa.spiI = m.SPIi
	sa.sel = sel
	sa.ni = append([]byte(nil), nP.Data...)
	sa.nr = newNonce()
	sa.initReq = append([]byte(nil), raw...)
	defer crypto.Zero(secret)
	sa.startHybrid()
	e.addHalfOpen(sa, proven)
	sa.peerHashes = peerHashAlgorithms(m.Payloads)
	if err := sa.deriveKeys(secret); err != nil {
		e.log.Error("key derivation failed", "sa", sa.logID(), "err", err)
		sa.destroy()
		return
	}
	peerNAT, localNAT, _ := message.CheckNAT(m.Payloads, sa.spiI, 0, pkt.Local, pkt.Remote)
	sa.natRemote, sa.natLocal, sa.natHere = peerNAT, localNAT || conn.ForceEncap, localNAT
	ps := []message.Payload{
		sel.wire(message.ProtocolIKE, nil),
		&message.KeyExchange{Group: sel.DH, Data: pub},
		&message.Nonce{Data: sa.nr},
	}
	ps = append(ps, natNotifies(sa.spiI, sa.spiR, pkt.Local, pkt.Remote, conn.ForceEncap)...)
	ps = append(ps, sigHashNotify())
	if hybrid {
		ps = append(ps, notify(message.NotifyIntermediateExchangeSupported, nil))
	}
	if conn.fragmentation() && m.Notify(message.NotifyIKEv2FragmentationSupported) != nil {
		// RFC 7383 §2.3: the responder announces support only in answer to
		// the initiator's announcement.
		sa.fragment = true
		ps = append(ps, notify(message.NotifyIKEv2FragmentationSupported, nil))
	}
	if cr := conn.Remote.certReq(); cr != nil {
		// The responder asks in IKE_SA_INIT (RFC 7296 §1.2), so the
		// initiator's IKE_AUTH brings its certificate.
		ps = append(ps, cr)
	}
	out, err := sa.encode(message.ExchangeIKESAInit, true, 0, ps)
	if err != nil {
		e.log.Error("cannot encode IKE_SA_INIT response", "sa", sa.logID(), "err", err)
		sa.destroy()
		return
	}
	sa.initResp = out[0]
	sa.peerMID = 1
	sa.lastResp, sa.haveLastResp = out, true
	if e.quiet.allow(noisyInitAnswered) {
		e.log.Info("IKE_SA_INIT answered", "sa", sa.logID(), "proposal", sel.String(), "peer", pkt.Remote, "peer_behind_nat", peerNAT, "we_behind_nat", localNAT)
	}
	sa.send(out)
}
