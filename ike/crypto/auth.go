package crypto

import (
	"crypto/hmac"
	"errors"
	"fmt"
)

// ErrAuthFailed is returned (wrapped) when AUTH payload data does not verify.
var ErrAuthFailed = errors.New("ike/crypto: authentication failed")

// SignedOctets returns the octets an AUTH payload signs or MACs (RFC 7296
// §2.15):
//
//	InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
//	ResponderSignedOctets = RealMessage2 | NonceIData | MACedIDForR
//	MACedIDForX           = prf(SK_px, RestOfIDxPayload)
//
// realMessage is this end's IKE_SA_INIT message exactly as sent (header to
// last octet); peerNonce is the body of the other end's Nonce payload; skp is
// this end's SK_pi or SK_pr; idBody is this end's ID payload without its
// 4-octet generic header (ID Type, the 3 reserved octets, and the data).
// To verify the peer, pass the peer's message, our nonce, the peer's SK_p and
// the peer's ID body.
//
// extra is appended after MACedID; IKE_INTERMEDIATE (RFC 9242 §3.3.2) puts
// IntAuth there.
func SignedOctets(p PRF, realMessage, peerNonce, skp, idBody []byte, extra ...[]byte) []byte {
	maced := p.Compute(skp, idBody)
	n := len(realMessage) + len(peerNonce) + len(maced)
	for _, e := range extra {
		n += len(e)
	}
	out := make([]byte, 0, n)
	out = append(append(append(out, realMessage...), peerNonce...), maced...)
	for _, e := range extra {
		out = append(out, e...)
	}
	return out
}

// keyPad is the fixed string of RFC 7296 §2.15.
var keyPad = []byte("Key Pad for IKEv2")

// SharedKeyAuth returns the AUTH data of the Shared Key Message Integrity
// Code method (and of EAP, with the MSK as secret), RFC 7296 §2.15:
//
//	AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
func SharedKeyAuth(p PRF, secret, signedOctets []byte) []byte {
	k := p.Compute(secret, keyPad)
	defer Zero(k)
	return p.Compute(k, signedOctets)
}

// VerifySharedKeyAuth checks shared-key AUTH data in constant time.
func VerifySharedKeyAuth(p PRF, secret, signedOctets, authData []byte) error {
	want := SharedKeyAuth(p, secret, signedOctets)
	if !hmac.Equal(want, authData) {
		return fmt.Errorf("%w: shared key MIC does not match", ErrAuthFailed)
	}
	return nil
}
