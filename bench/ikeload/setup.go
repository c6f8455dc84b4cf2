package ikeload

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// nonceLen is our nonce size: half the key of the largest PRF we may
// negotiate (HMAC-SHA2-512), the minimum RFC 7296 §2.10 asks for.
const nonceLen = 32

// Failure causes that are not a notification from the responder.
const (
	CauseTimeoutInit = "timeout IKE_SA_INIT"
	CauseTimeoutAuth = "timeout IKE_AUTH"
	CauseBadInit     = "bad IKE_SA_INIT response"
	CauseBadAuth     = "bad IKE_AUTH response"
	CausePeerAuth    = "responder AUTH invalid"
	CauseSend        = "send error"
	CauseLocal       = "local error"
	CauseCanceled    = "canceled"
)

// setupError is a failed setup with the cause it is counted under.
type setupError struct {
	cause string
	err   error
}

func (e *setupError) Error() string {
	if e.err == nil {
		return e.cause
	}
	return e.cause + ": " + e.err.Error()
}

func (e *setupError) Unwrap() error { return e.err }

func fail(cause string, format string, args ...any) *setupError {
	return &setupError{cause: cause, err: fmt.Errorf(format, args...)}
}

// errIgnore says a datagram was not the awaited response (a late duplicate,
// another exchange, a forgery failing its integrity check): the setup keeps
// waiting, as RFC 7296 §2.21 has an initiator do with unprotected junk.
var errIgnore = errors.New("ignored")

// errCookie says the responder wants its COOKIE echoed (RFC 7296 §2.6):
// the caller sends the rebuilt IKE_SA_INIT request.
var errCookie = errors.New("cookie requested")

// profile is what every setup of a run shares: parsed proposals, the PSK
// and the identity and selector templates.
type profile struct {
	ike      ike.Proposal
	esp      ike.Proposal
	group    iana.GroupID
	psk      []byte
	localID  func(i int) ike.Identity
	remoteID ike.Identity // zero: no IDr sent
	tsi      func(i int) netip.Prefix
	tsr      netip.Prefix
}

// setup is one IKE SA + first Child SA setup as the initiator runs it.
type setup struct {
	p      *profile
	index  int
	kex    crypto.KeyExchange // owned by the worker, possibly reused (§2.12)
	local  netip.AddrPort     // our address on the IKE port socket
	remote netip.AddrPort     // the responder's IKE port

	spiI, spiR uint64
	ni, nr     []byte
	cookie     []byte
	initReq    []byte
	initResp   []byte
	suite      crypto.Suite
	prf        crypto.PRF
	keys       *crypto.IKEKeys
	out, in    crypto.Protector
	natt       bool // the responder reported a NAT: IKE_AUTH goes to NAT-T
	espSPI     uint32
}

func randomSPI() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
}

func notify(t message.NotifyType, data []byte) *message.Notify {
	return &message.Notify{NotifyType: t, Data: data}
}

// chosen reads the responder's single accepted proposal and checks that
// every transform in it is one we offered (RFC 7296 §3.3.6: the responder
// must not pick what was not proposed).
func chosen(offer ike.Proposal, sa *message.SA, protocol message.ProtocolID) (crypto.Suite, iana.GroupID, error) {
	var s crypto.Suite
	var g iana.GroupID
	if sa == nil || len(sa.Proposals) != 1 {
		return s, 0, errors.New("response must carry exactly one proposal")
	}
	p := sa.Proposals[0]
	if p.Protocol != protocol {
		return s, 0, fmt.Errorf("proposal for protocol %d, want %d", p.Protocol, protocol)
	}
	var seen [6]int
	for _, t := range p.Transforms {
		if int(t.Type) < len(seen) {
			seen[t.Type]++
		}
		switch t.Type {
		case iana.TransformEncr:
			bits, _ := t.KeyLength()
			ok := false
			for _, e := range offer.Encr {
				want := e.KeyBits
				if e.ID == iana.EncrChaCha20Poly1305 {
					want = int(bits) // no attribute on the wire
				}
				if iana.EncrID(t.ID) == e.ID && int(bits) == want {
					s.Encr, s.KeyBits, ok = e.ID, e.KeyBits, true
				}
			}
			if !ok {
				return s, 0, fmt.Errorf("responder chose encryption %s, not offered", t.String())
			}
		case iana.TransformPRF:
			if !contains(offer.PRF, iana.PRFID(t.ID)) {
				return s, 0, fmt.Errorf("responder chose PRF %s, not offered", t.String())
			}
			s.PRF = iana.PRFID(t.ID)
		case iana.TransformInteg:
			if !contains(offer.Integ, iana.IntegID(t.ID)) && iana.IntegID(t.ID) != iana.IntegNone {
				return s, 0, fmt.Errorf("responder chose integrity %s, not offered", t.String())
			}
			s.Integ = iana.IntegID(t.ID)
		case iana.TransformDH:
			if !contains(offer.DH, iana.GroupID(t.ID)) {
				return s, 0, fmt.Errorf("responder chose group %s, not offered", t.String())
			}
			g = iana.GroupID(t.ID)
		}
	}
	for typ := 1; typ < len(seen); typ++ {
		if seen[typ] > 1 {
			return s, 0, fmt.Errorf("responder chose %d transforms of type %d", seen[typ], typ)
		}
	}
	if seen[iana.TransformEncr] != 1 {
		return s, 0, errors.New("responder chose no encryption transform")
	}
	if protocol == message.ProtocolIKE {
		if err := s.ValidateIKE(); err != nil {
			return s, 0, err
		}
	} else if err := s.ValidateCipher(); err != nil {
		return s, 0, err
	}
	return s, g, nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// buildInit encodes the IKE_SA_INIT request (RFC 7296 §1.2), echoing the
// responder's cookie first when it asked for one (§2.6).
func (s *setup) buildInit() ([]byte, error) {
	if s.ni == nil {
		s.ni = make([]byte, nonceLen)
		if _, err := rand.Read(s.ni); err != nil {
			return nil, err
		}
	}
	var ps message.Payloads
	if s.cookie != nil {
		ps = append(ps, notify(message.NotifyCookie, s.cookie))
	}
	ps = append(ps,
		&message.SA{Proposals: []message.Proposal{s.p.ike.Wire(1, nil, true)}},
		&message.KeyExchange{Group: s.kex.Group(), Data: s.kex.PublicKey()},
		&message.Nonce{Data: s.ni},
		notify(message.NotifyNATDetectionSourceIP, message.NATDetectionHash(s.spiI, 0, s.local)),
		notify(message.NotifyNATDetectionDestinationIP, message.NATDetectionHash(s.spiI, 0, s.remote)),
	)
	m := message.Message{Header: message.Header{SPIi: s.spiI, Exchange: message.ExchangeIKESAInit, Flags: message.FlagInitiator}, Payloads: ps}
	b, err := m.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode IKE_SA_INIT: %w", err)
	}
	s.initReq = b
	return b, nil
}

// errorNotify returns the first error notification in ps, if any.
func errorNotify(ps message.Payloads) *message.Notify {
	for p := range ps.All(message.PayloadNotify) {
		if n := p.(*message.Notify); n.NotifyType.IsError() {
			return n
		}
	}
	return nil
}

// processInit handles a datagram that may be the IKE_SA_INIT response.
// It returns errIgnore for anything else, errCookie when the request must be
// repeated with a cookie, a *setupError when the setup has failed, and nil
// when the IKE SA keys are ready.
func (s *setup) processInit(raw []byte) error {
	m, err := message.Decode(raw)
	if err != nil {
		return errIgnore // unauthenticated junk cannot end the exchange
	}
	if m.Exchange != message.ExchangeIKESAInit || !m.IsResponse() || m.IsInitiator() || m.MessageID != 0 || m.SPIi != s.spiI {
		return errIgnore
	}
	if n := m.Notify(message.NotifyCookie); n != nil {
		if len(n.Data) < 1 || len(n.Data) > 64 {
			return fail(CauseBadInit, "unusable COOKIE of %d octets", len(n.Data))
		}
		if s.cookie != nil && string(s.cookie) == string(n.Data) {
			// The answer to a retransmission of the request without the
			// cookie: the request with it is already out.
			return errIgnore
		}
		s.cookie = append([]byte(nil), n.Data...)
		return errCookie
	}
	if n := errorNotify(m.Payloads); n != nil {
		return &setupError{cause: "IKE_SA_INIT: " + n.NotifyType.String()}
	}
	if m.SPIr == 0 {
		return fail(CauseBadInit, "no responder SPI")
	}
	saP, _ := m.Get(message.PayloadSA).(*message.SA)
	keP, _ := m.Get(message.PayloadKE).(*message.KeyExchange)
	nP, _ := m.Get(message.PayloadNonce).(*message.Nonce)
	if saP == nil || keP == nil || nP == nil {
		return fail(CauseBadInit, "SA, KE or Nonce missing")
	}
	suite, group, err := chosen(s.p.ike, saP, message.ProtocolIKE)
	if err != nil {
		return &setupError{cause: CauseBadInit, err: err}
	}
	if group != s.kex.Group() || keP.Group != group {
		return fail(CauseBadInit, "responder chose group %v with a KE of %v, we sent %v", group, keP.Group, s.kex.Group())
	}
	secret, err := s.kex.SharedSecret(keP.Data)
	if err != nil {
		return &setupError{cause: CauseBadInit, err: fmt.Errorf("key exchange: %w", err)}
	}
	defer crypto.Zero(secret)
	s.spiR = m.SPIr
	s.suite = suite
	s.nr = append([]byte(nil), nP.Data...)
	s.initResp = append([]byte(nil), raw...)
	if s.prf, err = crypto.NewPRF(suite.PRF); err != nil {
		return &setupError{cause: CauseLocal, err: err}
	}
	if s.keys, err = crypto.DeriveIKEKeys(suite, s.ni, s.nr, secret, s.spiI, s.spiR); err != nil {
		return &setupError{cause: CauseLocal, err: fmt.Errorf("IKE keys: %w", err)}
	}
	if s.out, s.in, err = s.keys.Protectors(true); err != nil {
		return &setupError{cause: CauseLocal, err: fmt.Errorf("IKE protectors: %w", err)}
	}
	// A responder that sends no NAT detection data does not support
	// NAT-T, and we stay on the IKE port.
	peerNAT, localNAT, supported := message.CheckNAT(m.Payloads, s.spiI, s.spiR, s.local, s.remote)
	s.natt = supported && (peerNAT || localNAT)
	return nil
}

// tsPayload is a traffic selector payload covering one prefix, any protocol
// and port.
func tsPayload(responder bool, p netip.Prefix) *message.TrafficSelectors {
	return &message.TrafficSelectors{Responder: responder, Selectors: []message.TrafficSelector{message.PrefixSelector(p)}}
}

// buildAuth encodes the IKE_AUTH request: IDi, [IDr], AUTH with the PSK
// (RFC 7296 §2.15), and the first Child SA's SA, TSi, TSr (§1.2).
func (s *setup) buildAuth() ([]byte, error) {
	lid := s.p.localID(s.index)
	id := &message.ID{IDType: lid.Type, Data: lid.Data}
	idBody, err := id.AppendBody(nil)
	if err != nil {
		return nil, fmt.Errorf("IDi: %w", err)
	}
	octets := crypto.SignedOctets(s.prf, s.initReq, s.nr, s.keys.SKpi, idBody)
	var spi [4]byte
	for s.espSPI < 256 { // 1-255 are reserved (RFC 4303 §2.1)
		if _, err := rand.Read(spi[:]); err != nil {
			return nil, err
		}
		s.espSPI = binary.BigEndian.Uint32(spi[:])
	}
	binary.BigEndian.PutUint32(spi[:], s.espSPI)
	ps := message.Payloads{id}
	if s.p.remoteID.Type != 0 {
		ps = append(ps, &message.ID{Responder: true, IDType: s.p.remoteID.Type, Data: s.p.remoteID.Data})
	}
	ps = append(ps,
		&message.Auth{Method: iana.AuthSharedKeyMIC, Data: crypto.SharedKeyAuth(s.prf, s.p.psk, octets)},
		&message.SA{Proposals: []message.Proposal{s.p.esp.Wire(1, spi[:], false)}},
		tsPayload(false, s.p.tsi(s.index)),
		tsPayload(true, s.p.tsr),
	)
	inner, first, err := message.AppendPayloads(nil, ps)
	if err != nil {
		return nil, fmt.Errorf("encode IKE_AUTH payloads: %w", err)
	}
	defer crypto.Zero(inner)
	bodyLen := s.out.SealedLen(len(inner))
	m := message.Message{
		Header:   message.Header{SPIi: s.spiI, SPIr: s.spiR, Exchange: message.ExchangeIKEAuth, Flags: message.FlagInitiator, MessageID: 1},
		Payloads: message.Payloads{&message.Encrypted{NextPayload: first, Body: make([]byte, bodyLen)}},
	}
	b, err := m.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode IKE_AUTH: %w", err)
	}
	prefix := b[:len(b)-bodyLen]
	// Seal appends the body to dst, which must already hold the prefix.
	return s.out.Seal(append(make([]byte, 0, len(b)), prefix...), prefix, inner)
}

// processAuth handles a datagram that may be the IKE_AUTH response: it
// verifies the responder's AUTH and checks the Child SA it accepted.
func (s *setup) processAuth(raw []byte) error {
	m, err := message.Decode(raw)
	if err != nil {
		return errIgnore
	}
	if m.Exchange != message.ExchangeIKEAuth || !m.IsResponse() || m.IsInitiator() || m.MessageID != 1 || m.SPIi != s.spiI || m.SPIr != s.spiR {
		return errIgnore
	}
	if len(m.Payloads) == 0 {
		return errIgnore
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*message.Encrypted)
	if !ok {
		return errIgnore // fragments (RFC 7383) are not offered, so not expected
	}
	lay, err := message.LocateEncrypted(raw, s.in.IVLen(), s.in.ICVLen())
	if err != nil {
		return errIgnore
	}
	plain, err := s.in.Open(nil, lay.AssociatedData, raw[len(lay.AssociatedData):])
	if err != nil {
		return errIgnore // RFC 7296 §2.21.2: a failed integrity check is dropped
	}
	defer crypto.Zero(plain)
	ps, err := message.DecodePayloads(sk.NextPayload, plain)
	if err != nil {
		return &setupError{cause: CauseBadAuth, err: err}
	}
	idr, _ := ps.Get(message.PayloadIDr).(*message.ID)
	auth, _ := ps.Get(message.PayloadAUTH).(*message.Auth)
	if idr == nil || auth == nil {
		if n := errorNotify(ps); n != nil {
			return &setupError{cause: "IKE_AUTH: " + n.NotifyType.String()}
		}
		return fail(CauseBadAuth, "IDr or AUTH missing")
	}
	if auth.Method != iana.AuthSharedKeyMIC {
		return fail(CausePeerAuth, "responder authenticates with method %d, we expect a shared key", auth.Method)
	}
	idBody, err := idr.AppendBody(nil)
	if err != nil {
		return &setupError{cause: CauseBadAuth, err: err}
	}
	octets := crypto.SignedOctets(s.prf, s.initResp, s.ni, s.keys.SKpr, idBody)
	if err := crypto.VerifySharedKeyAuth(s.prf, s.p.psk, octets, auth.Data); err != nil {
		return &setupError{cause: CausePeerAuth, err: err}
	}
	// The IKE SA is up; the setup counts only with its Child SA (§1.2: an
	// error notify here refuses the child alone).
	if n := errorNotify(ps); n != nil {
		return &setupError{cause: "child: " + n.NotifyType.String()}
	}
	saP, _ := ps.Get(message.PayloadSA).(*message.SA)
	if ps.Get(message.PayloadTSi) == nil || ps.Get(message.PayloadTSr) == nil {
		return fail(CauseBadAuth, "child without TSi or TSr")
	}
	if _, _, err := chosen(s.p.esp, saP, message.ProtocolESP); err != nil {
		return &setupError{cause: CauseBadAuth, err: fmt.Errorf("child: %w", err)}
	}
	if len(saP.Proposals[0].SPI) != 4 {
		return fail(CauseBadAuth, "child SPI of %d octets", len(saP.Proposals[0].SPI))
	}
	return nil
}

// destroy wipes the setup's keys.
func (s *setup) destroy() {
	if s.keys != nil {
		s.keys.Destroy()
	}
	if s.out != nil {
		s.out.Destroy()
	}
	if s.in != nil {
		s.in.Destroy()
	}
}
