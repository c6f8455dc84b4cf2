package ike

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// Hybrid key exchange: the additional key exchanges of RFC 9370, each in
// its own IKE_INTERMEDIATE exchange (RFC 9242) between IKE_SA_INIT and
// IKE_AUTH.
//
//	IKE_SA_INIT        SA(…, ADDKE1=ML-KEM-768), KE(x25519), N(INTERMEDIATE_EXCHANGE_SUPPORTED)
//	IKE_INTERMEDIATE   SK{KE(ML-KEM-768)}    keys then rekeyed from SK_d and the new secret
//	IKE_AUTH           AUTH over … | IntAuth_i | IntAuth_r | IKE_AUTH message ID
//
// The IKE_INTERMEDIATE messages are protected with the keys of the step
// before them, and AUTH covers them through the IntAuth chains, so an
// attacker who breaks the classical exchange alone gets neither the keys
// nor an undetected change of an intermediate message.

// hybridState is the IKE_INTERMEDIATE state of an IKE SA that negotiated
// additional key exchanges, from IKE_SA_INIT to IKE_AUTH. The engine keeps
// it in a map beside the SA rather than in it: an established SA needs
// none of it, and the SA struct stays in its allocation size class.
type hybridState struct {
	pending []iana.GroupID // the additional key exchanges still to run, in order
	done    int            // IKE_INTERMEDIATE exchanges completed
	// intAuthI and intAuthR are the running IntAuth_i and IntAuth_r of
	// RFC 9242 §3.3.2: over the messages the initiator and the
	// responder sent.
	intAuthI, intAuthR []byte
	// authMID is the message ID of the IKE_AUTH request, which the AUTH
	// octets include after the chains.
	authMID uint32
}

// startHybrid prepares an SA whose IKE_SA_INIT selected additional key
// exchanges. It returns false when there are none.
func (sa *ikeSA) startHybrid() bool {
	ks := sa.sel.addKEs()
	if len(ks) == 0 {
		return false
	}
	sa.e.hybrid[sa] = &hybridState{pending: ks}
	return true
}

// hybrid returns the SA's IKE_INTERMEDIATE state, nil when it has none
// (no additional key exchanges, or established already).
func (sa *ikeSA) hybrid() *hybridState {
	if len(sa.e.hybrid) == 0 {
		return nil
	}
	return sa.e.hybrid[sa]
}

// isHybrid reports whether the SA was set up with additional key
// exchanges (RFC 9370).
func (sa *ikeSA) isHybrid() bool {
	return len(sa.sel.addKEs()) > 0
}

// hybridPending reports whether additional key exchanges remain before
// IKE_AUTH may run.
func (sa *ikeSA) hybridPending() bool {
	pq := sa.hybrid()
	return pq != nil && len(pq.pending) > 0
}

// foldIntAuth adds one IKE_INTERMEDIATE message to its direction's chain
// (RFC 9242 §3.3.2):
//
//	IntAuth_x(n) = prf(SK_px, IntAuth_x(n-1) | IntAuth_x(n)_A | IntAuth_x(n)_P)
//
// ad is the message from the IKE header to the end of the SK payload's
// generic header as it went on the wire, plain the inner payloads in clear.
// A is ad with the IKE header's Length and the SK payload's Payload Length
// set as if the message had no IV, padding, pad length or ICV; SK_px is
// the key of the sender's direction in force when the message was
// protected, so the caller folds before the keys move on.
func (sa *ikeSA) foldIntAuth(sentByInitiator bool, ad, plain []byte) {
	pq := sa.hybrid()
	if pq == nil || sa.keys == nil || len(ad) < message.HeaderLen+4 {
		return
	}
	chain, skp := &pq.intAuthR, sa.keys.SKpr
	if sentByInitiator {
		chain, skp = &pq.intAuthI, sa.keys.SKpi
	}
	buf := make([]byte, 0, len(*chain)+len(ad)+len(plain))
	buf = append(buf, *chain...)
	a := len(buf)
	buf = append(buf, ad...)
	buf = append(buf, plain...)
	binary.BigEndian.PutUint32(buf[a+24:], uint32(len(ad)+len(plain)))
	binary.BigEndian.PutUint16(buf[a+len(ad)-2:], uint16(4+len(plain)))
	*chain = sa.prf.Compute(skp, buf)
	crypto.Zero(buf)
}

// intAuth is what IKE_AUTH's signed octets carry after MACedIDFor[I|R]
// (RFC 9242 §3.3.2): IntAuth_iN | IntAuth_rN | IKE_AUTH_MID, or nothing
// when no IKE_INTERMEDIATE exchange took place.
func (sa *ikeSA) intAuth() []byte {
	pq := sa.hybrid()
	if pq == nil || pq.done == 0 {
		return nil
	}
	out := make([]byte, 0, len(pq.intAuthI)+len(pq.intAuthR)+4)
	out = append(append(out, pq.intAuthI...), pq.intAuthR...)
	return binary.BigEndian.AppendUint32(out, pq.authMID)
}

// applyAddKE mixes the shared secret of one additional key exchange into
// the IKE SA's keys (RFC 9370 §2.2.2):
//
//	SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
//	{SK_d(n) | SK_ai(n) | … | SK_pr(n)} = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr)
//
// with the nonces and SPIs of IKE_SA_INIT.
func (sa *ikeSA) applyAddKE(secret []byte) error {
	pq := sa.hybrid()
	if pq == nil || len(pq.pending) == 0 {
		return errors.New("no additional key exchange is due")
	}
	old := sa.keys
	keys, err := crypto.DeriveRekeyedIKEKeys(sa.sel.PRF, old.SKd, old.Suite, secret, sa.ni, sa.nr, sa.spiI, sa.spiR)
	if err != nil {
		return fmt.Errorf("IKE keys after additional key exchange %d: %w", pq.done+1, err)
	}
	sa.keys = keys
	old.Destroy()
	if err := sa.checkProtectors(); err != nil {
		return fmt.Errorf("IKE protectors: %w", err)
	}
	pq.done++
	pq.pending = pq.pending[1:]
	if len(pq.pending) == 0 {
		// Only the final keys protect IKE_AUTH and what follows; a key
		// log row per step would shadow them (one row per SPI pair).
		sa.e.logIKEKeys(sa)
	}
	return nil
}

// intermediateTask is one IKE_INTERMEDIATE exchange carrying an additional
// key exchange, as the initiator runs it (strongSwan 6's ike_init in its
// intermediate rounds).
type intermediateTask struct {
	keyShare
}

func (*intermediateTask) exchange() message.ExchangeType { return message.ExchangeIKEIntermediate }

func (t *intermediateTask) build(sa *ikeSA) ([]message.Payload, error) {
	if !sa.hybridPending() || sa.hybrid().pending[0] != t.group {
		return nil, fmt.Errorf("IKE_INTERMEDIATE for %v out of order", t.group)
	}
	ke, err := t.share()
	if err != nil {
		return nil, fmt.Errorf("additional %w", err) // "additional key exchange GROUP: ..."
	}
	return []message.Payload{ke}, nil
}

func (t *intermediateTask) process(sa *ikeSA, resp message.Payloads) error {
	defer t.destroyKex()
	for p := range resp.All(message.PayloadNotify) {
		if n := p.(*message.Notify); n.NotifyType.IsError() {
			return fmt.Errorf("peer refused IKE_INTERMEDIATE (additional key exchange %v): %v", t.group, n.NotifyType)
		}
	}
	secret, err := addKEShared(resp, t.group, t.kex)
	if err != nil {
		return fmt.Errorf("IKE_INTERMEDIATE response: %w", err)
	}
	defer crypto.Zero(secret)
	if err := sa.applyAddKE(secret); err != nil {
		return err
	}
	sa.e.log.Info("IKE_INTERMEDIATE done", "sa", sa.logID(), "key_exchange", t.group, "round", sa.hybrid().done)
	return nil
}

// respondIntermediate is the responder's side of one IKE_INTERMEDIATE
// exchange: the next additional key exchange in the negotiated order. The
// keys move on after the response is sent under the old ones. A request
// that does not fit ends the IKE SA with INVALID_SYNTAX: the method was
// negotiated in IKE_SA_INIT, so unlike there a wrong KE cannot be
// renegotiated (RFC 9370 §2.2.2).
func respondIntermediate(sa *ikeSA, req message.Payloads) ([]message.Payload, func()) {
	fail := func(why string, args ...any) ([]message.Payload, func()) {
		if sa.e.quiet.allow(noisyIntermediate) {
			sa.e.log.Warn("IKE_INTERMEDIATE refused: "+why, append([]any{"sa", sa.logID(), "peer", sa.remote}, args...)...)
		}
		return []message.Payload{notify(message.NotifyInvalidSyntax, nil)}, sa.destroy
	}
	if !sa.hybridPending() {
		return fail("no additional key exchange is due")
	}
	want := sa.hybrid().pending[0]
	pub, secret, err := addKEResponse(req, want)
	if err != nil {
		return fail(err.Error())
	}
	return []message.Payload{&message.KeyExchange{Group: want, Data: pub}}, func() {
		defer crypto.Zero(secret)
		if err := sa.applyAddKE(secret); err != nil {
			sa.e.log.Error("key derivation failed", "sa", sa.logID(), "err", err)
			sa.destroy()
			return
		}
		if sa.e.quiet.allow(noisyIntermediate) {
			sa.e.log.Info("IKE_INTERMEDIATE answered", "sa", sa.logID(), "key_exchange", want, "round", sa.hybrid().done)
		}
	}
}

// addKEResponse answers the KE payload of a request for an additional key
// exchange of method want (IKE_INTERMEDIATE, IKE_FOLLOWUP_KE): our public
// value and the shared secret, or what was wrong with the request.
func addKEResponse(req message.Payloads, want iana.GroupID) (pub, secret []byte, err error) {
	keP, _ := req.Get(message.PayloadKE).(*message.KeyExchange)
	if keP == nil {
		return nil, nil, errors.New("request lacks KE")
	}
	if g := keP.Group; g != want {
		return nil, nil, fmt.Errorf("KE of %v, negotiated %v", g, want)
	}
	pub, secret, err = crypto.RespondKeyExchange(want, keP.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("bad %v key exchange data: %w", want, err)
	}
	return pub, secret, nil
}

// addKEShared completes our additional key exchange of method group with
// the KE payload of the peer's response.
func addKEShared(resp message.Payloads, group iana.GroupID, kex crypto.KeyExchange) ([]byte, error) {
	keP, _ := resp.Get(message.PayloadKE).(*message.KeyExchange)
	if keP == nil {
		return nil, errors.New("no KE payload")
	}
	if g := keP.Group; g != group {
		return nil, fmt.Errorf("KE of %v, we run %v", g, group)
	}
	secret, err := kex.SharedSecret(keP.Data)
	if err != nil {
		return nil, fmt.Errorf("additional key exchange %v: %w", group, err)
	}
	return secret, nil
}
