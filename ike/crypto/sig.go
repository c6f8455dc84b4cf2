package crypto

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // AUTH method 1 hashes with SHA-1
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// SupportedHashAlgorithms returns what this package verifies in Digital
// Signature AUTH payloads, to announce in SIGNATURE_HASH_ALGORITHMS. SHA-1 is
// left out on purpose (RFC 8247 §3.2).
func SupportedHashAlgorithms() []iana.HashAlgorithm {
	return []iana.HashAlgorithm{iana.HashSHA2_256, iana.HashSHA2_384, iana.HashSHA2_512, iana.HashIdentity}
}

// EncodeSignatureHashAlgorithms returns the Notification Data of a
// SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4): 16-bit IDs, big-endian.
func EncodeSignatureHashAlgorithms(algs []iana.HashAlgorithm) []byte {
	out := make([]byte, 0, 2*len(algs))
	for _, a := range algs {
		out = append(out, byte(a>>8), byte(a))
	}
	return out
}

// ParseSignatureHashAlgorithms parses SIGNATURE_HASH_ALGORITHMS notification
// data. Unknown IDs are kept (the caller intersects with its own list).
func ParseSignatureHashAlgorithms(data []byte) ([]iana.HashAlgorithm, error) {
	if len(data)%2 != 0 {
		return nil, fmt.Errorf("ike/crypto: SIGNATURE_HASH_ALGORITHMS data of odd length %d", len(data))
	}
	out := make([]iana.HashAlgorithm, 0, len(data)/2)
	for i := 0; i < len(data); i += 2 {
		out = append(out, iana.HashAlgorithm(data[i])<<8|iana.HashAlgorithm(data[i+1]))
	}
	return out, nil
}

// SignatureScheme is the signature algorithm inside an AUTH payload.
type SignatureScheme uint8

// Signature schemes. SigRSAPKCS1SHA1 exists only for AUTH method 1, which
// RFC 7296 defines with SHA-1; it is legacy and method 14 never uses it.
const (
	SigNone SignatureScheme = iota
	SigRSAPKCS1SHA1
	SigRSAPKCS1SHA256
	SigRSAPKCS1SHA384
	SigRSAPKCS1SHA512
	SigRSAPSSSHA256
	SigRSAPSSSHA384
	SigRSAPSSSHA512
	SigECDSASHA256
	SigECDSASHA384
	SigECDSASHA512
	SigEd25519
)

type keyKind uint8

const (
	keyRSA keyKind = iota + 1
	keyECDSA
	keyEd25519
)

var (
	oidRSAPKCS1SHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSAPKCS1SHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSAPKCS1SHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidSHA256         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidECDSASHA256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519        = asn1.ObjectIdentifier{1, 3, 101, 112}
)

type schemeInfo struct {
	name   string
	key    keyKind
	hash   gocrypto.Hash // 0 for Ed25519, which signs the message itself
	hashID iana.HashAlgorithm
	oid    asn1.ObjectIdentifier // signature algorithm OID for method 14
	pss    bool
	null   bool // RSA PKCS#1 v1.5 identifiers carry NULL parameters
}

var schemes = map[SignatureScheme]schemeInfo{
	SigRSAPKCS1SHA1:   {name: "RSA-PKCS1-SHA1", key: keyRSA, hash: gocrypto.SHA1, hashID: iana.HashSHA1},
	SigRSAPKCS1SHA256: {name: "RSA-PKCS1-SHA256", key: keyRSA, hash: gocrypto.SHA256, hashID: iana.HashSHA2_256, oid: oidRSAPKCS1SHA256, null: true},
	SigRSAPKCS1SHA384: {name: "RSA-PKCS1-SHA384", key: keyRSA, hash: gocrypto.SHA384, hashID: iana.HashSHA2_384, oid: oidRSAPKCS1SHA384, null: true},
	SigRSAPKCS1SHA512: {name: "RSA-PKCS1-SHA512", key: keyRSA, hash: gocrypto.SHA512, hashID: iana.HashSHA2_512, oid: oidRSAPKCS1SHA512, null: true},
	SigRSAPSSSHA256:   {name: "RSA-PSS-SHA256", key: keyRSA, hash: gocrypto.SHA256, hashID: iana.HashSHA2_256, oid: oidRSAPSS, pss: true},
	SigRSAPSSSHA384:   {name: "RSA-PSS-SHA384", key: keyRSA, hash: gocrypto.SHA384, hashID: iana.HashSHA2_384, oid: oidRSAPSS, pss: true},
	SigRSAPSSSHA512:   {name: "RSA-PSS-SHA512", key: keyRSA, hash: gocrypto.SHA512, hashID: iana.HashSHA2_512, oid: oidRSAPSS, pss: true},
	SigECDSASHA256:    {name: "ECDSA-SHA256", key: keyECDSA, hash: gocrypto.SHA256, hashID: iana.HashSHA2_256, oid: oidECDSASHA256},
	SigECDSASHA384:    {name: "ECDSA-SHA384", key: keyECDSA, hash: gocrypto.SHA384, hashID: iana.HashSHA2_384, oid: oidECDSASHA384},
	SigECDSASHA512:    {name: "ECDSA-SHA512", key: keyECDSA, hash: gocrypto.SHA512, hashID: iana.HashSHA2_512, oid: oidECDSASHA512},
	SigEd25519:        {name: "Ed25519", key: keyEd25519, hashID: iana.HashIdentity, oid: oidEd25519},
}

func (s SignatureScheme) String() string {
	if s == SigNone {
		return "NONE"
	}
	if i, ok := schemes[s]; ok {
		return i.name
	}
	return "SIG(" + strconv.Itoa(int(s)) + ")"
}

// HashAlgorithm returns the RFC 7427 hash ID a peer must have announced for
// this scheme to be used in a Digital Signature AUTH payload.
func (s SignatureScheme) HashAlgorithm() iana.HashAlgorithm { return schemes[s].hashID }

func hashOID(h gocrypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case gocrypto.SHA256:
		return oidSHA256
	case gocrypto.SHA384:
		return oidSHA384
	case gocrypto.SHA512:
		return oidSHA512
	}
	return nil
}

// pssParameters is RSASSA-PSS-params (RFC 4055 §3.1). Hash and MGF carry no
// DEFAULT here: their default is SHA-1, which is refused anyway.
type pssParameters struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength   int                      `asn1:"optional,explicit,tag:2,default:20"`
	TrailerField int                      `asn1:"optional,explicit,tag:3,default:1"`
}

// algorithmIdentifier returns the DER AlgorithmIdentifier that method 14
// puts in front of the signature (RFC 7427 §3). PSS uses MGF1 with the same
// hash and a salt as long as the hash, the usual choice (RFC 7427 A.4.3).
func (s SignatureScheme) algorithmIdentifier() ([]byte, error) {
	info, ok := schemes[s]
	if !ok || info.oid == nil {
		return nil, fmt.Errorf("ike/crypto: %v has no Digital Signature encoding", s)
	}
	ai := pkix.AlgorithmIdentifier{Algorithm: info.oid}
	switch {
	case info.null:
		ai.Parameters = asn1.NullRawValue
	case info.pss:
		h := pkix.AlgorithmIdentifier{Algorithm: hashOID(info.hash), Parameters: asn1.NullRawValue}
		hDER, err := asn1.Marshal(h)
		if err != nil {
			return nil, err
		}
		params, err := asn1.Marshal(pssParameters{
			Hash:         h,
			MGF:          pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: hDER}},
			SaltLength:   info.hash.Size(),
			TrailerField: 1,
		})
		if err != nil {
			return nil, err
		}
		ai.Parameters = asn1.RawValue{FullBytes: params}
	}
	return asn1.Marshal(ai)
}

func keyKindOf(pub gocrypto.PublicKey) (keyKind, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return keyRSA, nil
	case *ecdsa.PublicKey:
		return keyECDSA, nil
	case ed25519.PublicKey:
		return keyEd25519, nil
	}
	return 0, fmt.Errorf("ike/crypto: unsupported public key type %T", pub)
}

// SelectSignatureScheme picks the Digital Signature scheme for our key among
// the hashes the peer announced (RFC 7427 §4). With no announcement (nil) it
// returns the default for the key. Preferences: RSA uses PSS with SHA-256,
// then -384, -512; ECDSA first uses the hash matching its curve (P-256 with
// SHA-256, P-384 with SHA-384, P-521 with SHA-512); Ed25519 needs Identity.
func SelectSignatureScheme(pub gocrypto.PublicKey, peerHashes []iana.HashAlgorithm) (SignatureScheme, error) {
	var prefs []SignatureScheme
	switch k := pub.(type) {
	case *rsa.PublicKey:
		prefs = []SignatureScheme{SigRSAPSSSHA256, SigRSAPSSSHA384, SigRSAPSSSHA512}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P384():
			prefs = []SignatureScheme{SigECDSASHA384, SigECDSASHA512, SigECDSASHA256}
		case elliptic.P521():
			prefs = []SignatureScheme{SigECDSASHA512, SigECDSASHA384, SigECDSASHA256}
		default:
			prefs = []SignatureScheme{SigECDSASHA256, SigECDSASHA384, SigECDSASHA512}
		}
	case ed25519.PublicKey:
		prefs = []SignatureScheme{SigEd25519}
	default:
		return SigNone, fmt.Errorf("ike/crypto: unsupported public key type %T", pub)
	}
	if peerHashes == nil {
		return prefs[0], nil
	}
	for _, s := range prefs {
		for _, h := range peerHashes {
			if h == s.HashAlgorithm() {
				return s, nil
			}
		}
	}
	return SigNone, fmt.Errorf("ike/crypto: peer announced no hash usable with a %T key (%v)", pub, peerHashes)
}

// methodCurve is the curve and coordinate length fixed by AUTH methods 9-11
// (RFC 4754 §3).
func methodCurve(m iana.AuthMethod) (elliptic.Curve, gocrypto.Hash, int, bool) {
	switch m {
	case iana.AuthECDSASHA256P256:
		return elliptic.P256(), gocrypto.SHA256, 32, true
	case iana.AuthECDSASHA384P384:
		return elliptic.P384(), gocrypto.SHA384, 48, true
	case iana.AuthECDSASHA512P521:
		return elliptic.P521(), gocrypto.SHA512, 66, true
	}
	return nil, 0, 0, false
}

func digest(h gocrypto.Hash, msg []byte) []byte {
	d := h.New()
	d.Write(msg)
	return d.Sum(nil)
}

// SignAuth computes the Authentication Data of an AUTH payload over
// signedOctets (see SignedOctets) with key:
//
//   - iana.AuthRSASignature (1): RSASSA-PKCS1-v1_5 with SHA-1, as RFC 7296 defines
//     it. Legacy; scheme must be SigNone or SigRSAPKCS1SHA1.
//   - iana.AuthECDSASHA256P256/384P384/512P521 (9-11): ECDSA on the method's curve
//     and hash, signature r | s at the curve's width (RFC 4754 §7); scheme is
//     ignored.
//   - iana.AuthDigitalSignature (14): scheme's AlgorithmIdentifier with its length
//     octet, then the signature (RFC 7427 §3); ECDSA signatures are DER
//     Ecdsa-Sig-Value there.
//
// key may be any crypto.Signer (a private key, or an HSM handle).
func SignAuth(method iana.AuthMethod, scheme SignatureScheme, key gocrypto.Signer, signedOctets []byte) ([]byte, error) {
	pub := key.Public()
	switch method {
	case iana.AuthRSASignature:
		if scheme != SigNone && scheme != SigRSAPKCS1SHA1 {
			return nil, fmt.Errorf("ike/crypto: %v signs with RSA-PKCS1-SHA1, not %v", method, scheme)
		}
		if _, ok := pub.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("ike/crypto: %v needs an RSA key, have %T", method, pub)
		}
		return key.Sign(rand.Reader, digest(gocrypto.SHA1, signedOctets), gocrypto.SHA1)
	case iana.AuthECDSASHA256P256, iana.AuthECDSASHA384P384, iana.AuthECDSASHA512P521:
		curve, h, size, _ := methodCurve(method)
		if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != curve {
			return nil, fmt.Errorf("ike/crypto: %v needs an ECDSA %s key, have %T", method, curve.Params().Name, pub)
		}
		der, err := key.Sign(rand.Reader, digest(h, signedOctets), h)
		if err != nil {
			return nil, fmt.Errorf("ike/crypto: %v: %w", method, err)
		}
		return ecdsaDERToFixed(der, size)
	case iana.AuthDigitalSignature:
		info, ok := schemes[scheme]
		if !ok || info.oid == nil {
			return nil, fmt.Errorf("ike/crypto: %v cannot carry %v", method, scheme)
		}
		kind, err := keyKindOf(pub)
		if err != nil {
			return nil, err
		}
		if kind != info.key {
			return nil, fmt.Errorf("ike/crypto: %v cannot be made with a %T key", scheme, pub)
		}
		ai, err := scheme.algorithmIdentifier()
		if err != nil {
			return nil, err
		}
		var sig []byte
		switch {
		case info.key == keyEd25519:
			sig, err = key.Sign(rand.Reader, signedOctets, gocrypto.Hash(0))
		case info.pss:
			sig, err = key.Sign(rand.Reader, digest(info.hash, signedOctets),
				&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: info.hash})
		default:
			sig, err = key.Sign(rand.Reader, digest(info.hash, signedOctets), info.hash)
		}
		if err != nil {
			return nil, fmt.Errorf("ike/crypto: %v: %w", scheme, err)
		}
		out := make([]byte, 0, 1+len(ai)+len(sig))
		out = append(append(append(out, byte(len(ai))), ai...), sig...)
		return out, nil
	}
	return nil, fmt.Errorf("ike/crypto: cannot sign with authentication method %v", method)
}

type ecdsaSig struct{ R, S *big.Int }

func ecdsaDERToFixed(der []byte, size int) ([]byte, error) {
	var sig ecdsaSig
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 ||
		sig.R.BitLen() > 8*size || sig.S.BitLen() > 8*size {
		return nil, errors.New("ike/crypto: signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// VerifyAuth checks Authentication Data made by SignAuth's rules with the
// peer's public key (normally the end-entity certificate's PublicKey) and
// returns the scheme that was used, so the caller can apply policy (for
// example, refuse SigRSAPKCS1SHA1). For method 14 it accepts only the
// schemes this package defines: SHA-2 or Ed25519, RSA-PSS with MGF1 on the
// same hash. All failures wrap ErrAuthFailed.
func VerifyAuth(method iana.AuthMethod, pub gocrypto.PublicKey, signedOctets, authData []byte) (SignatureScheme, error) {
	switch method {
	case iana.AuthRSASignature:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return SigNone, fmt.Errorf("%w: %v with a %T key", ErrAuthFailed, method, pub)
		}
		if err := rsa.VerifyPKCS1v15(k, gocrypto.SHA1, digest(gocrypto.SHA1, signedOctets), authData); err != nil {
			return SigNone, fmt.Errorf("%w: %v: %v", ErrAuthFailed, method, err)
		}
		return SigRSAPKCS1SHA1, nil
	case iana.AuthECDSASHA256P256, iana.AuthECDSASHA384P384, iana.AuthECDSASHA512P521:
		curve, h, size, _ := methodCurve(method)
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || k.Curve != curve {
			return SigNone, fmt.Errorf("%w: %v with a %T key", ErrAuthFailed, method, pub)
		}
		if len(authData) != 2*size {
			return SigNone, fmt.Errorf("%w: %v signature of %d octets, want %d", ErrAuthFailed, method, len(authData), 2*size)
		}
		r := new(big.Int).SetBytes(authData[:size])
		s := new(big.Int).SetBytes(authData[size:])
		if !ecdsa.Verify(k, digest(h, signedOctets), r, s) {
			return SigNone, fmt.Errorf("%w: %v signature does not verify", ErrAuthFailed, method)
		}
		switch h {
		case gocrypto.SHA384:
			return SigECDSASHA384, nil
		case gocrypto.SHA512:
			return SigECDSASHA512, nil
		}
		return SigECDSASHA256, nil
	case iana.AuthDigitalSignature:
		return verifyDigitalSignature(pub, signedOctets, authData)
	}
	return SigNone, fmt.Errorf("%w: unsupported authentication method %v", ErrAuthFailed, method)
}

// ParseDigitalSignature splits method 14 Authentication Data into its
// scheme and signature value (RFC 7427 §3) without verifying anything.
func ParseDigitalSignature(authData []byte) (SignatureScheme, []byte, error) {
	scheme, _, sig, err := parseDigitalSignature(authData)
	return scheme, sig, err
}

func parseDigitalSignature(authData []byte) (SignatureScheme, int, []byte, error) {
	if len(authData) < 1 {
		return SigNone, 0, nil, fmt.Errorf("%w: empty Digital Signature data", ErrAuthFailed)
	}
	n := int(authData[0])
	if len(authData) < 1+n+1 {
		return SigNone, 0, nil, fmt.Errorf("%w: Digital Signature data of %d octets cannot hold a %d-octet AlgorithmIdentifier and a signature", ErrAuthFailed, len(authData), n)
	}
	aiDER, sig := authData[1:1+n], authData[1+n:]
	var ai pkix.AlgorithmIdentifier
	rest, err := asn1.Unmarshal(aiDER, &ai)
	if err != nil || len(rest) != 0 {
		return SigNone, 0, nil, fmt.Errorf("%w: malformed AlgorithmIdentifier", ErrAuthFailed)
	}
	noParams := len(ai.Parameters.FullBytes) == 0 || isNull(ai.Parameters)
	switch {
	case ai.Algorithm.Equal(oidRSAPKCS1SHA256) && noParams:
		return SigRSAPKCS1SHA256, 0, sig, nil
	case ai.Algorithm.Equal(oidRSAPKCS1SHA384) && noParams:
		return SigRSAPKCS1SHA384, 0, sig, nil
	case ai.Algorithm.Equal(oidRSAPKCS1SHA512) && noParams:
		return SigRSAPKCS1SHA512, 0, sig, nil
	case ai.Algorithm.Equal(oidECDSASHA256) && noParams:
		return SigECDSASHA256, 0, sig, nil
	case ai.Algorithm.Equal(oidECDSASHA384) && noParams:
		return SigECDSASHA384, 0, sig, nil
	case ai.Algorithm.Equal(oidECDSASHA512) && noParams:
		return SigECDSASHA512, 0, sig, nil
	case ai.Algorithm.Equal(oidEd25519) && len(ai.Parameters.FullBytes) == 0:
		return SigEd25519, 0, sig, nil
	case ai.Algorithm.Equal(oidRSAPSS):
		scheme, salt, err := parsePSSParameters(ai.Parameters)
		if err != nil {
			return SigNone, 0, nil, err
		}
		return scheme, salt, sig, nil
	}
	return SigNone, 0, nil, fmt.Errorf("%w: unsupported signature algorithm %v", ErrAuthFailed, ai.Algorithm)
}

func isNull(v asn1.RawValue) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == asn1.TagNull && len(v.Bytes) == 0
}

// parsePSSParameters accepts RSASSA-PSS parameters with a SHA-2 hash, MGF1
// over the same hash (the only kind crypto/rsa computes), any salt length
// up to the hash size plus 64, and the standard trailer.
func parsePSSParameters(raw asn1.RawValue) (SignatureScheme, int, error) {
	var p pssParameters
	rest, err := asn1.Unmarshal(raw.FullBytes, &p)
	if err != nil || len(rest) != 0 {
		return SigNone, 0, fmt.Errorf("%w: malformed RSASSA-PSS parameters", ErrAuthFailed)
	}
	hashParamsOK := func(ai pkix.AlgorithmIdentifier) bool {
		return len(ai.Parameters.FullBytes) == 0 || isNull(ai.Parameters)
	}
	var scheme SignatureScheme
	var h gocrypto.Hash
	switch {
	case p.Hash.Algorithm.Equal(oidSHA256):
		scheme, h = SigRSAPSSSHA256, gocrypto.SHA256
	case p.Hash.Algorithm.Equal(oidSHA384):
		scheme, h = SigRSAPSSSHA384, gocrypto.SHA384
	case p.Hash.Algorithm.Equal(oidSHA512):
		scheme, h = SigRSAPSSSHA512, gocrypto.SHA512
	default:
		return SigNone, 0, fmt.Errorf("%w: RSASSA-PSS with unsupported hash %v", ErrAuthFailed, p.Hash.Algorithm)
	}
	if !hashParamsOK(p.Hash) {
		return SigNone, 0, fmt.Errorf("%w: RSASSA-PSS hash with parameters", ErrAuthFailed)
	}
	var mgfHash pkix.AlgorithmIdentifier
	if !p.MGF.Algorithm.Equal(oidMGF1) {
		return SigNone, 0, fmt.Errorf("%w: RSASSA-PSS with mask generation %v", ErrAuthFailed, p.MGF.Algorithm)
	}
	if rest, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil || len(rest) != 0 ||
		!mgfHash.Algorithm.Equal(p.Hash.Algorithm) || !hashParamsOK(mgfHash) {
		return SigNone, 0, fmt.Errorf("%w: RSASSA-PSS MGF1 hash differs from the message hash", ErrAuthFailed)
	}
	if p.SaltLength < 0 || p.SaltLength > h.Size()+64 || p.TrailerField != 1 {
		return SigNone, 0, fmt.Errorf("%w: RSASSA-PSS salt length %d or trailer %d", ErrAuthFailed, p.SaltLength, p.TrailerField)
	}
	return scheme, p.SaltLength, nil
}

func verifyDigitalSignature(pub gocrypto.PublicKey, signedOctets, authData []byte) (SignatureScheme, error) {
	scheme, salt, sig, err := parseDigitalSignature(authData)
	if err != nil {
		return SigNone, err
	}
	info := schemes[scheme]
	kind, err := keyKindOf(pub)
	if err != nil || kind != info.key {
		return SigNone, fmt.Errorf("%w: %v signature with a %T key", ErrAuthFailed, scheme, pub)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		d := digest(info.hash, signedOctets)
		if info.pss {
			err = rsa.VerifyPSS(k, info.hash, d, sig, &rsa.PSSOptions{SaltLength: salt, Hash: info.hash})
		} else {
			err = rsa.VerifyPKCS1v15(k, info.hash, d, sig)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest(info.hash, signedOctets), sig) {
			err = errors.New("signature does not verify")
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize || !ed25519.Verify(k, signedOctets, sig) {
			err = errors.New("signature does not verify")
		}
	}
	if err != nil {
		return SigNone, fmt.Errorf("%w: %v: %v", ErrAuthFailed, scheme, err)
	}
	return scheme, nil
}
