package ike

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// authSigned returns the octets our AUTH covers (RFC 7296 §2.15).
// After IKE_INTERMEDIATE exchanges both ends' octets also carry IntAuth
// (RFC 9242 §3.3.2).
func (sa *ikeSA) ourSignedOctets(idBody []byte) []byte {
	if sa.initiator {
		return crypto.SignedOctets(sa.prf, sa.initReq, sa.nr, sa.keys.SKpi, idBody, sa.intAuth())
	}
	return crypto.SignedOctets(sa.prf, sa.initResp, sa.ni, sa.keys.SKpr, idBody, sa.intAuth())
}

func (sa *ikeSA) peerSignedOctets(idBody []byte) []byte {
	if sa.initiator {
		return crypto.SignedOctets(sa.prf, sa.initResp, sa.ni, sa.keys.SKpr, idBody, sa.intAuth())
	}
	return crypto.SignedOctets(sa.prf, sa.initReq, sa.nr, sa.keys.SKpi, idBody, sa.intAuth())
}

// buildAuth makes our ID, CERT and AUTH payloads with conn's local auth.
func (sa *ikeSA) buildAuth(conn *Connection) ([]message.Payload, error) {
	id := &message.ID{Responder: !sa.initiator, IDType: conn.Local.ID.Type, Data: conn.Local.ID.Data}
	idBody, err := id.AppendBody(nil)
	if err != nil {
		return nil, err
	}
	octets := sa.ourSignedOctets(idBody)
	ps := []message.Payload{id}
	if conn.Local.usesPSK() {
		ps = append(ps, &message.Auth{Method: iana.AuthSharedKeyMIC, Data: crypto.SharedKeyAuth(sa.prf, conn.Local.PSK, octets)})
		return ps, nil
	}
	ps = append(ps, &message.Cert{Encoding: message.CertX509Signature, Data: conn.Local.Certificate.Raw})
	for _, c := range conn.Local.Intermediates {
		ps = append(ps, &message.Cert{Encoding: message.CertX509Signature, Data: c.Raw})
	}
	method, scheme, err := signatureMethod(conn.Local.Key.Public(), sa.peerHashes)
	if err != nil {
		return nil, err
	}
	data, err := crypto.SignAuth(method, scheme, conn.Local.Key, octets)
	if err != nil {
		return nil, fmt.Errorf("sign AUTH: %w", err)
	}
	return append(ps, &message.Auth{Method: method, Data: data}), nil
}

// signatureMethod picks RFC 7427 Digital Signature when the peer announced
// hash algorithms, else the key's classic method (RFC 7296 §3.8, RFC 4754).
func signatureMethod(pub any, peerHashes []iana.HashAlgorithm) (iana.AuthMethod, crypto.SignatureScheme, error) {
	if peerHashes != nil {
		s, err := crypto.SelectSignatureScheme(pub, peerHashes)
		if err != nil {
			return 0, 0, fmt.Errorf("no signature scheme the peer accepts: %w", err)
		}
		return iana.AuthDigitalSignature, s, nil
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return iana.AuthRSASignature, crypto.SigRSAPKCS1SHA1, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return iana.AuthECDSASHA256P256, crypto.SigNone, nil
		case elliptic.P384():
			return iana.AuthECDSASHA384P384, crypto.SigNone, nil
		case elliptic.P521():
			return iana.AuthECDSASHA512P521, crypto.SigNone, nil
		}
	}
	return 0, 0, fmt.Errorf("key type %T needs RFC 7427 signatures, which the peer did not announce", pub)
}

var errAuth = errors.New("authentication failed")

// verifyPeer checks the peer's ID and AUTH payloads (and CERTs) against
// conn's remote auth config. The error never carries key material.
func (sa *ikeSA) verifyPeer(conn *Connection, id *message.ID, auth *message.Auth, ps message.Payloads) error {
	if conn.Remote.ID.Type != 0 && !conn.Remote.ID.equal(id.IDType, id.Data) {
		return fmt.Errorf("%w: identity %v is not the configured %v", errAuth, Identity{id.IDType, id.Data}, conn.Remote.ID)
	}
	idBody, err := id.AppendBody(nil)
	if err != nil {
		return err
	}
	octets := sa.peerSignedOctets(idBody)
	if conn.Remote.usesPSK() {
		if auth.Method != iana.AuthSharedKeyMIC {
			return fmt.Errorf("%w: peer used %v, we expect a pre-shared key", errAuth, auth.Method)
		}
		if err := crypto.VerifySharedKeyAuth(sa.prf, conn.Remote.PSK, octets, auth.Data); err != nil {
			return fmt.Errorf("%w: pre-shared key AUTH does not verify (different keys?)", errAuth)
		}
		return nil
	}
	var leaf *x509.Certificate
	var inter []*x509.Certificate
	for p := range ps.All(message.PayloadCERT) {
		c := p.(*message.Cert)
		if c.Encoding != message.CertX509Signature {
			continue
		}
		cert, err := x509.ParseCertificate(c.Data)
		if err != nil {
			return fmt.Errorf("%w: bad certificate: %v", errAuth, err)
		}
		if leaf == nil {
			leaf = cert
		} else if len(inter) < 8 {
			inter = append(inter, cert)
		}
	}
	if leaf == nil {
		return fmt.Errorf("%w: peer sent no X.509 certificate", errAuth)
	}
	if _, err := conn.Remote.trust.Verify(leaf, inter, time.Time{}); err != nil {
		return fmt.Errorf("%w: certificate of %q: %v", errAuth, leaf.Subject, err)
	}
	if err := crypto.MatchID(leaf, id.IDType, id.Data); err != nil {
		return fmt.Errorf("%w: %v", errAuth, err)
	}
	if _, err := crypto.VerifyAuth(auth.Method, leaf.PublicKey, octets, auth.Data); err != nil {
		return fmt.Errorf("%w: signature of %q: %v", errAuth, leaf.Subject, err)
	}
	return nil
}

// authTask is IKE_AUTH as the initiator runs it, carrying the first Child
// SA (strongSwan's ike_auth plus child_create).
type authTask struct {
	child *childCreate
}

func (*authTask) exchange() message.ExchangeType { return message.ExchangeIKEAuth }

func (t *authTask) build(sa *ikeSA) ([]message.Payload, error) {
	if sa.hybridPending() {
		return nil, errors.New("IKE_AUTH before the additional key exchanges")
	}
	if pq := sa.hybrid(); pq != nil {
		// start gives this request the next message ID (RFC 9242 §3.3.2:
		// IKE_AUTH_MID is the ID of the IKE_AUTH request).
		pq.authMID = sa.nextMID
	}
	ps, err := sa.buildAuth(sa.conn)
	if err != nil {
		return nil, err
	}
	if sa.conn.Remote.ID.Type != 0 {
		// IDr right after IDi tells the responder which identity we want.
		id := &message.ID{Responder: true, IDType: sa.conn.Remote.ID.Type, Data: sa.conn.Remote.ID.Data}
		ps = append(ps[:1], append([]message.Payload{id}, ps[1:]...)...)
	}
	if cr := sa.conn.Remote.certReq(); cr != nil {
		ps = append(ps, cr)
	}
	if sa.e.firstContact(sa) {
		// RFC 7296 §2.4: we hold no other IKE SA with this peer, so any it
		// still has with us are stale (we restarted, or it lost us).
		ps = append(ps, notify(message.NotifyInitialContact, nil))
	}
	if len(sa.conn.Children) > 0 {
		if t.child == nil {
			t.child = &childCreate{cfg: &sa.conn.Children[0]}
		}
		childPs, err := t.child.request(sa)
		if err != nil {
			return nil, err
		}
		ps = append(ps, childPs...)
	}
	return ps, nil
}

func (t *authTask) process(sa *ikeSA, resp message.Payloads) error {
	if resp.Notify(message.NotifyAuthenticationFailed) != nil {
		sa.e.log.Warn("peer rejected our authentication (AUTHENTICATION_FAILED); check the pre-shared key or certificate and identities", "sa", sa.logID(), "local_id", sa.conn.Local.ID, "peer", sa.remote)
		t.dropChild(sa)
		return errSilentFail
	}
	id, _ := resp.Get(message.PayloadIDr).(*message.ID)
	auth, _ := resp.Get(message.PayloadAUTH).(*message.Auth)
	if id == nil || auth == nil {
		for p := range resp.All(message.PayloadNotify) {
			if n := p.(*message.Notify); n.NotifyType.IsError() {
				t.dropChild(sa)
				return fmt.Errorf("peer refused IKE_AUTH: %v", n.NotifyType)
			}
		}
		t.dropChild(sa)
		return errors.New("IKE_AUTH response lacks IDr or AUTH")
	}
	if err := sa.verifyPeer(sa.conn, id, auth, resp); err != nil {
		sa.e.log.Warn("authentication of the peer failed", "sa", sa.logID(), "peer", sa.remote, "reason", err)
		t.dropChild(sa)
		return errSilentFail
	}
	sa.remoteID = Identity{id.IDType, append([]byte(nil), id.Data...)}
	sa.established()
	if t.child != nil {
		err := t.child.response(resp)
		if err == nil {
			err = sa.e.installChild(sa, t.child.child, true, true)
		}
		if err != nil {
			sa.e.log.Warn("first Child SA not established", "sa", sa.logID(), "child", t.child.cfg.Name, "err", err)
			t.dropChild(sa)
		}
	}
	sa.notifyWaiters(nil)
	// The connection's other Child SAs follow with CREATE_CHILD_SA.
	for i := 1; i < len(sa.conn.Children); i++ {
		sa.enqueue(newCreateChildTask(&sa.conn.Children[i], nil, nil))
	}
	return nil
}

func (t *authTask) dropChild(sa *ikeSA) {
	if t.child != nil {
		sa.e.releaseSPI(t.child.child.inSPI)
		t.child = nil
	}
}

func (sa *ikeSA) established() {
	sa.state = StateEstablished
	sa.estab = sa.e.now()
	// Both AUTH payloads are computed and checked by now, and the peer has
	// stopped retransmitting IKE_SA_INIT, so the two messages the AUTH
	// octets sign (RFC 7296 §2.15) are no longer needed.
	sa.initReq, sa.initResp = nil, nil
	sa.cands = nil          // IKE_AUTH has picked sa.conn among them
	delete(sa.e.hybrid, sa) // the IntAuth chains are in both AUTHs by now
	// For the same reason the responder stops matching retransmitted
	// IKE_SA_INITs against this SA: the initiator had our response, since
	// it sent IKE_AUTH under the keys it made, and a copy arriving now is a
	// stale duplicate that the half-open limit and timeout deal with.
	if !sa.initiator && sa.e.byInit[sa.hoKey] == sa {
		delete(sa.e.byInit, sa.hoKey)
	}
	sa.e.removeHalfOpen(sa)
	sa.armIKE()
	sa.e.markExport(sa, true)
	sa.e.log.Info("IKE SA established", "sa", sa.logID(), "local", sa.local, "remote", sa.remote, "remote_id", sa.remoteID.String(), "proposal", sa.sel.String())
}

func (sa *ikeSA) notifyWaiters(err error) { sa.signalWaiters(false, err) }

// respondAuth is the responder's side of IKE_AUTH.
func respondAuth(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	id, _ := req.Get(message.PayloadIDi).(*message.ID)
	auth, _ := req.Get(message.PayloadAUTH).(*message.Auth)
	fail := func() ([]message.Payload, func()) {
		return []message.Payload{notify(message.NotifyAuthenticationFailed, nil)}, sa.destroy
	}
	if id == nil || auth == nil {
		if sa.e.quiet.allow(noisyAuthFailed) {
			sa.e.log.Warn("IKE_AUTH request without IDi or AUTH", "sa", sa.logID(), "peer", sa.remote)
		}
		return fail()
	}
	if sa.hybridPending() {
		// The initiator skipped negotiated key exchanges: going on would
		// give it an IKE SA without them.
		if sa.e.quiet.allow(noisyAuthFailed) {
			sa.e.log.Warn("IKE_AUTH before the negotiated additional key exchanges", "sa", sa.logID(), "peer", sa.remote, "missing", len(sa.hybrid().pending))
		}
		return []message.Payload{notify(message.NotifyInvalidSyntax, nil)}, sa.destroy
	}
	if pq := sa.hybrid(); pq != nil {
		pq.authMID = sa.peerMID // handleRequest checked the request's ID against it
	}
	idr, _ := req.Get(message.PayloadIDr).(*message.ID)
	// Prefer the connection whose local identity the peer asked for in IDr,
	// then any whose remote identity accepts IDi.
	var conn *Connection
	for pass := 0; pass < 2 && conn == nil; pass++ {
		for _, c := range sa.cands {
			if c.Remote.ID.Type != 0 && !c.Remote.ID.equal(id.IDType, id.Data) {
				continue
			}
			if pass == 0 && idr != nil && !c.Local.ID.equal(idr.IDType, idr.Data) {
				continue
			}
			conn = c
			break
		}
	}
	peerID := Identity{id.IDType, id.Data}
	if conn == nil {
		if sa.e.quiet.allow(noisyAuthFailed) {
			sa.e.log.Warn("authentication failed: no connection for the peer's identity", "sa", sa.logID(), "peer", sa.remote, "peer_id", clip(peerID.String()))
		}
		return fail()
	}
	sa.conn = conn
	if err := sa.verifyPeer(conn, id, auth, req); err != nil {
		if sa.e.quiet.allow(noisyAuthFailed) {
			sa.e.log.Warn("authentication of the peer failed", "sa", sa.logID(), "peer", sa.remote, "peer_id", clip(peerID.String()), "reason", clip(err.Error()))
		}
		return fail()
	}
	sa.remoteID = Identity{id.IDType, append([]byte(nil), id.Data...)}
	if req.Notify(message.NotifyInitialContact) != nil {
		sa.e.initialContact(sa)
	}
	ps, err := sa.buildAuth(conn)
	if err != nil {
		sa.e.log.Error("cannot build our AUTH", "sa", sa.logID(), "err", err)
		return fail()
	}
	sa.established()
	childPs, after := respondChild(sa, req)
	return append(ps, childPs...), after
}
