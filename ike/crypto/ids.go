package crypto

import "strconv"

// EncrID is an IKEv2 Transform Type 1 (Encryption Algorithm) ID from the IANA
// "IKEv2 Parameters" registry.
type EncrID uint16

// Encryption algorithms this package implements.
const (
	EncrAESCBC           EncrID = 12 // ENCR_AES_CBC, RFC 3602
	EncrAESGCM8          EncrID = 18 // ENCR_AES_GCM_8 (8-octet ICV), RFC 5282
	EncrAESGCM12         EncrID = 19 // ENCR_AES_GCM_12 (12-octet ICV), RFC 5282
	EncrAESGCM16         EncrID = 20 // ENCR_AES_GCM_16 (16-octet ICV), RFC 5282
	EncrChaCha20Poly1305 EncrID = 28 // ENCR_CHACHA20_POLY1305, RFC 7634
)

func (e EncrID) String() string {
	switch e {
	case EncrAESCBC:
		return "ENCR_AES_CBC"
	case EncrAESGCM8:
		return "ENCR_AES_GCM_8"
	case EncrAESGCM12:
		return "ENCR_AES_GCM_12"
	case EncrAESGCM16:
		return "ENCR_AES_GCM_16"
	case EncrChaCha20Poly1305:
		return "ENCR_CHACHA20_POLY1305"
	}
	return "ENCR(" + strconv.Itoa(int(e)) + ")"
}

// PRFID is an IKEv2 Transform Type 2 (Pseudorandom Function) ID.
type PRFID uint16

// PRFs this package implements (RFC 4868 §2.1).
const (
	PRFHMACSHA2_256 PRFID = 5
	PRFHMACSHA2_384 PRFID = 6
	PRFHMACSHA2_512 PRFID = 7
)

func (p PRFID) String() string {
	switch p {
	case PRFHMACSHA2_256:
		return "PRF_HMAC_SHA2_256"
	case PRFHMACSHA2_384:
		return "PRF_HMAC_SHA2_384"
	case PRFHMACSHA2_512:
		return "PRF_HMAC_SHA2_512"
	}
	return "PRF(" + strconv.Itoa(int(p)) + ")"
}

// IntegID is an IKEv2 Transform Type 3 (Integrity Algorithm) ID.
type IntegID uint16

// Integrity algorithms this package implements (RFC 4868 §2.1). IntegNone is
// the only valid value with an AEAD cipher.
const (
	IntegNone             IntegID = 0
	IntegHMACSHA2_256_128 IntegID = 12
	IntegHMACSHA2_384_192 IntegID = 13
	IntegHMACSHA2_512_256 IntegID = 14
)

func (i IntegID) String() string {
	switch i {
	case IntegNone:
		return "NONE"
	case IntegHMACSHA2_256_128:
		return "AUTH_HMAC_SHA2_256_128"
	case IntegHMACSHA2_384_192:
		return "AUTH_HMAC_SHA2_384_192"
	case IntegHMACSHA2_512_256:
		return "AUTH_HMAC_SHA2_512_256"
	}
	return "AUTH(" + strconv.Itoa(int(i)) + ")"
}

// GroupID is an IKEv2 Transform Type 4 (Key Exchange Method, formerly
// Diffie-Hellman Group) ID.
type GroupID uint16

// Key exchange methods this package implements.
const (
	GroupMODP2048   GroupID = 14 // RFC 3526 §3
	GroupMODP3072   GroupID = 15 // RFC 3526 §4
	GroupMODP4096   GroupID = 16 // RFC 3526 §5
	GroupECP256     GroupID = 19 // RFC 5903
	GroupECP384     GroupID = 20 // RFC 5903
	GroupECP521     GroupID = 21 // RFC 5903
	GroupCurve25519 GroupID = 31 // RFC 8031
	GroupMLKEM768   GroupID = 36 // draft-ietf-ipsecme-ikev2-mlkem (IANA)
	GroupMLKEM1024  GroupID = 37 // draft-ietf-ipsecme-ikev2-mlkem (IANA)
)

func (g GroupID) String() string {
	switch g {
	case GroupMODP2048:
		return "MODP_2048"
	case GroupMODP3072:
		return "MODP_3072"
	case GroupMODP4096:
		return "MODP_4096"
	case GroupECP256:
		return "ECP_256"
	case GroupECP384:
		return "ECP_384"
	case GroupECP521:
		return "ECP_521"
	case GroupCurve25519:
		return "CURVE_25519"
	case GroupMLKEM768:
		return "ML_KEM_768"
	case GroupMLKEM1024:
		return "ML_KEM_1024"
	}
	return "GROUP(" + strconv.Itoa(int(g)) + ")"
}

// AuthMethod is an IKEv2 Authentication Method (AUTH payload, RFC 7296 §3.8).
type AuthMethod uint8

// Authentication methods this package implements.
const (
	AuthRSASignature     AuthMethod = 1  // RSASSA-PKCS1-v1_5 with SHA-1 (legacy)
	AuthSharedKeyMIC     AuthMethod = 2  // Shared Key Message Integrity Code
	AuthECDSASHA256P256  AuthMethod = 9  // RFC 4754
	AuthECDSASHA384P384  AuthMethod = 10 // RFC 4754
	AuthECDSASHA512P521  AuthMethod = 11 // RFC 4754
	AuthDigitalSignature AuthMethod = 14 // RFC 7427
)

func (a AuthMethod) String() string {
	switch a {
	case AuthRSASignature:
		return "RSA_SIG"
	case AuthSharedKeyMIC:
		return "PSK"
	case AuthECDSASHA256P256:
		return "ECDSA_SHA256_P256"
	case AuthECDSASHA384P384:
		return "ECDSA_SHA384_P384"
	case AuthECDSASHA512P521:
		return "ECDSA_SHA512_P521"
	case AuthDigitalSignature:
		return "DIGITAL_SIGNATURE"
	}
	return "AUTH_METHOD(" + strconv.Itoa(int(a)) + ")"
}

// IDType is the ID Type of an Identification payload (RFC 7296 §3.5).
type IDType uint8

// ID types.
const (
	IDIPv4Addr   IDType = 1
	IDFQDN       IDType = 2
	IDRFC822Addr IDType = 3
	IDIPv6Addr   IDType = 5
	IDDERASN1DN  IDType = 9
	IDDERASN1GN  IDType = 10
	IDKeyID      IDType = 11
)

func (t IDType) String() string {
	switch t {
	case IDIPv4Addr:
		return "ID_IPV4_ADDR"
	case IDFQDN:
		return "ID_FQDN"
	case IDRFC822Addr:
		return "ID_RFC822_ADDR"
	case IDIPv6Addr:
		return "ID_IPV6_ADDR"
	case IDDERASN1DN:
		return "ID_DER_ASN1_DN"
	case IDDERASN1GN:
		return "ID_DER_ASN1_GN"
	case IDKeyID:
		return "ID_KEY_ID"
	}
	return "ID(" + strconv.Itoa(int(t)) + ")"
}
