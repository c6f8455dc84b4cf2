package iana

//go:generate sh -c "go tool stringer -linecomment -type=TransformType,EncrID,PRFID,IntegID,ESNID,GroupID,AuthMethod,IDType,HashAlgorithm -output=names_string.go && sed -i -f fallback.sed names_string.go"

import "strconv"

// TransformType is the Transform Type of a transform substructure
// (RFC 7296 §3.3.2, RFC 9370 §2.2).
type TransformType uint8

// Transform types.
const (
	TransformEncr TransformType = 1 // ENCR
	TransformPRF  TransformType = 2 // PRF
	// Integrity Algorithm.
	TransformInteg TransformType = 3 // INTEG
	// Key Exchange Method (formerly D-H group).
	TransformDH TransformType = 4 // KE
	// Extended Sequence Numbers.
	TransformESN TransformType = 5 // ESN
	// Additional Key Exchange 1 to 7, RFC 9370.
	TransformAddKE1 TransformType = 6  // ADDKE1
	TransformAddKE2 TransformType = 7  // ADDKE2
	TransformAddKE3 TransformType = 8  // ADDKE3
	TransformAddKE4 TransformType = 9  // ADDKE4
	TransformAddKE5 TransformType = 10 // ADDKE5
	TransformAddKE6 TransformType = 11 // ADDKE6
	TransformAddKE7 TransformType = 12 // ADDKE7
)

// EncrID is a Transform Type 1 (Encryption Algorithm) ID.
type EncrID uint16

// Encryption algorithms.
const (
	EncrDES  EncrID = 2  // ENCR_DES
	Encr3DES EncrID = 3  // ENCR_3DES
	EncrNULL EncrID = 11 // ENCR_NULL
	// RFC 3602; needs the Key Length attribute.
	EncrAESCBC EncrID = 12 // ENCR_AES_CBC
	// RFC 5930.
	EncrAESCTR EncrID = 13 // ENCR_AES_CTR
	// RFC 5282.
	EncrAESCCM8  EncrID = 14 // ENCR_AES_CCM_8
	EncrAESCCM12 EncrID = 15 // ENCR_AES_CCM_12
	EncrAESCCM16 EncrID = 16 // ENCR_AES_CCM_16
	// RFC 5282, with an 8-, 12- or 16-octet ICV.
	EncrAESGCM8  EncrID = 18 // ENCR_AES_GCM_8
	EncrAESGCM12 EncrID = 19 // ENCR_AES_GCM_12
	EncrAESGCM16 EncrID = 20 // ENCR_AES_GCM_16
	// RFC 4543.
	EncrNULLAuthAESGMAC EncrID = 21 // ENCR_NULL_AUTH_AES_GMAC
	// RFC 5529.
	EncrCamelliaCBC   EncrID = 23 // ENCR_CAMELLIA_CBC
	EncrCamelliaCTR   EncrID = 24 // ENCR_CAMELLIA_CTR
	EncrCamelliaCCM8  EncrID = 25 // ENCR_CAMELLIA_CCM_8
	EncrCamelliaCCM12 EncrID = 26 // ENCR_CAMELLIA_CCM_12
	EncrCamelliaCCM16 EncrID = 27 // ENCR_CAMELLIA_CCM_16
	// RFC 7634.
	EncrChaCha20Poly1305 EncrID = 28 // ENCR_CHACHA20_POLY1305
)

// PRFID is a Transform Type 2 (Pseudorandom Function) ID.
type PRFID uint16

// Pseudorandom functions.
const (
	PRFHMACMD5  PRFID = 1 // PRF_HMAC_MD5
	PRFHMACSHA1 PRFID = 2 // PRF_HMAC_SHA1
	// RFC 4434.
	PRFAES128XCBC PRFID = 4 // PRF_AES128_XCBC
	// RFC 4868 §2.1.
	PRFHMACSHA2_256 PRFID = 5 // PRF_HMAC_SHA2_256
	PRFHMACSHA2_384 PRFID = 6 // PRF_HMAC_SHA2_384
	PRFHMACSHA2_512 PRFID = 7 // PRF_HMAC_SHA2_512
	// RFC 4615.
	PRFAES128CMAC PRFID = 8 // PRF_AES128_CMAC
)

// IntegID is a Transform Type 3 (Integrity Algorithm) ID.
type IntegID uint16

// Integrity algorithms. IntegNone is the only valid value with an AEAD
// cipher.
const (
	IntegNone       IntegID = 0  // NONE
	IntegHMACMD596  IntegID = 1  // AUTH_HMAC_MD5_96
	IntegHMACSHA196 IntegID = 2  // AUTH_HMAC_SHA1_96
	IntegAESXCBC96  IntegID = 5  // AUTH_AES_XCBC_96
	IntegAESCMAC96  IntegID = 8  // AUTH_AES_CMAC_96
	IntegAES128GMAC IntegID = 9  // AUTH_AES_128_GMAC
	IntegAES192GMAC IntegID = 10 // AUTH_AES_192_GMAC
	IntegAES256GMAC IntegID = 11 // AUTH_AES_256_GMAC
	// RFC 4868 §2.1.
	IntegHMACSHA2_256_128 IntegID = 12 // AUTH_HMAC_SHA2_256_128
	IntegHMACSHA2_384_192 IntegID = 13 // AUTH_HMAC_SHA2_384_192
	IntegHMACSHA2_512_256 IntegID = 14 // AUTH_HMAC_SHA2_512_256
)

// ESNID is a Transform Type 5 (Extended Sequence Numbers) ID.
type ESNID uint16

// Extended Sequence Numbers choices.
const (
	ESNNo  ESNID = 0 // NO_ESN
	ESNYes ESNID = 1 // ESN
)

// GroupID is a key exchange method number (Transform Type 4, formerly
// Diffie-Hellman Group, and the ADDKE types of RFC 9370): the Transform ID
// of a KE or ADDKE transform and the group field of the KE payload.
type GroupID uint16

// Key exchange methods.
const (
	// NONE, the optional choice of an ADDKE type (RFC 9370 §2.2.1).
	GroupNone     GroupID = 0 // NONE
	GroupMODP768  GroupID = 1 // MODP_768
	GroupMODP1024 GroupID = 2 // MODP_1024
	GroupMODP1536 GroupID = 5 // MODP_1536
	// RFC 3526 §3 to §7.
	GroupMODP2048 GroupID = 14 // MODP_2048
	GroupMODP3072 GroupID = 15 // MODP_3072
	GroupMODP4096 GroupID = 16 // MODP_4096
	GroupMODP6144 GroupID = 17 // MODP_6144
	GroupMODP8192 GroupID = 18 // MODP_8192
	// RFC 5903.
	GroupECP256 GroupID = 19 // ECP_256
	GroupECP384 GroupID = 20 // ECP_384
	GroupECP521 GroupID = 21 // ECP_521
	// RFC 8031.
	GroupCurve25519 GroupID = 31 // CURVE_25519
	GroupCurve448   GroupID = 32 // CURVE_448
	// draft-ietf-ipsecme-ikev2-mlkem, with RFC 9370.
	GroupMLKEM512  GroupID = 35 // ML_KEM_512
	GroupMLKEM768  GroupID = 36 // ML_KEM_768
	GroupMLKEM1024 GroupID = 37 // ML_KEM_1024
)

// AuthMethod is the Auth Method of an AUTH payload (RFC 7296 §3.8).
type AuthMethod uint8

// Authentication methods.
const (
	// RSASSA-PKCS1-v1_5 with SHA-1 (legacy).
	AuthRSASignature AuthMethod = 1 // RSA_SIG
	// Shared Key Message Integrity Code.
	AuthSharedKeyMIC AuthMethod = 2 // PSK
	AuthDSSSignature AuthMethod = 3 // DSS_SIG
	// RFC 4754.
	AuthECDSASHA256P256 AuthMethod = 9  // ECDSA_256
	AuthECDSASHA384P384 AuthMethod = 10 // ECDSA_384
	AuthECDSASHA512P521 AuthMethod = 11 // ECDSA_521
	// RFC 6467.
	AuthGenericSecurePassword AuthMethod = 12 // GSPM
	// RFC 7619.
	AuthNULL AuthMethod = 13 // NULL
	// RFC 7427.
	AuthDigitalSignature AuthMethod = 14 // DIGITAL_SIGNATURE
)

// IDType is the ID Type of an IDi/IDr payload (RFC 7296 §3.5).
type IDType uint8

// Identification types.
const (
	IDIPv4Addr   IDType = 1  // ID_IPV4_ADDR
	IDFQDN       IDType = 2  // ID_FQDN
	IDRFC822Addr IDType = 3  // ID_RFC822_ADDR
	IDIPv6Addr   IDType = 5  // ID_IPV6_ADDR
	IDDERASN1DN  IDType = 9  // ID_DER_ASN1_DN
	IDDERASN1GN  IDType = 10 // ID_DER_ASN1_GN
	IDKeyID      IDType = 11 // ID_KEY_ID
	// RFC 4595.
	IDFCName IDType = 12 // ID_FC_NAME
	// RFC 7619.
	IDNull IDType = 13 // ID_NULL
)

// HashAlgorithm is an IKEv2 Hash Algorithm ID (RFC 7427 §7, IANA "IKEv2
// Hash Algorithms"), the unit of the SIGNATURE_HASH_ALGORITHMS notify.
type HashAlgorithm uint16

// Hash algorithms for digital signatures. HashIdentity is for signature
// schemes that hash internally, such as Ed25519 (RFC 8420 §2).
const (
	HashSHA1     HashAlgorithm = 1 // SHA1
	HashSHA2_256 HashAlgorithm = 2 // SHA2_256
	HashSHA2_384 HashAlgorithm = 3 // SHA2_384
	HashSHA2_512 HashAlgorithm = 4 // SHA2_512
	HashIdentity HashAlgorithm = 5 // IDENTITY
)

// TransformIDString names a transform ID in the registry of its type:
// TransformIDString(TransformEncr, 20) is ENCR_AES_GCM_16.
func TransformIDString(t TransformType, id uint16) string {
	switch {
	case t == TransformEncr:
		return EncrID(id).String()
	case t == TransformPRF:
		return PRFID(id).String()
	case t == TransformInteg:
		return IntegID(id).String()
	case t == TransformESN:
		return ESNID(id).String()
	case t == TransformDH || (t >= TransformAddKE1 && t <= TransformAddKE7):
		return GroupID(id).String()
	}
	return t.String() + "(" + strconv.FormatUint(uint64(id), 10) + ")"
}
