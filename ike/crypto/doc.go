// Package crypto holds the cryptography of IKEv2 (RFC 7296): everything an IKE
// SA needs between "we agreed on these transforms" and "these bytes are
// authentic", with no knowledge of the message codec. It works on byte slices
// and on the IANA transform numbers of ike/iana, the same typed constants
// ike/message puts on the wire.
//
// What it implements:
//
//   - PRFs PRF_HMAC_SHA2_256/384/512 (RFC 4868 §2) and prf+ (RFC 7296 §2.13).
//   - IKE SA key derivation: SKEYSEED and its split into SK_d, SK_ai, SK_ar,
//     SK_ei, SK_er, SK_pi, SK_pr (RFC 7296 §2.14), the salt convention of AEAD
//     keys (RFC 5282 §7.1, RFC 7634 §2), SKEYSEED of a rekeyed IKE SA (RFC 7296
//     §2.18, also the chaining step of RFC 9370 §2.2.2) and Child SA KEYMAT
//     (RFC 7296 §2.17, with the extra secrets of RFC 9370 §2.2.4).
//   - Protection of the Encrypted (SK) and Encrypted Fragment (SKF) payload
//     bodies (RFC 7296 §3.14, RFC 7383 §2.5): AES-GCM with 8/12/16-octet ICVs
//     (RFC 5282), ChaCha20-Poly1305 (RFC 7634) and AES-CBC with
//     HMAC-SHA2-256-128/384-192/512-256 (RFC 3602, RFC 4868).
//   - Key exchange: MODP groups 14, 15, 16 (RFC 3526), ECP groups 19, 20, 21
//     (RFC 5903), Curve25519 (RFC 8031) and the ML-KEM-768/1024 KEMs for
//     additional key exchanges (RFC 9370, draft-ietf-ipsecme-ikev2-mlkem).
//   - Authentication (RFC 7296 §2.15): the signed octets, shared-key AUTH,
//     RSA (method 1), ECDSA (methods 9, 10, 11, RFC 4754), Digital Signature
//     (method 14, RFC 7427) with RSASSA-PKCS1-v1_5, RSASSA-PSS, ECDSA and
//     Ed25519 (RFC 8420), and the SIGNATURE_HASH_ALGORITHMS notify data.
//   - Certificates: chain verification against configured CAs only, and the
//     binding of an IKE identity (ID payload) to a certificate.
//
// Key material lives in byte slices the package owns; types holding it have
// a Destroy method that overwrites them with zeros (see Zero). Keys expanded
// inside the Go standard library (AES round keys, HMAC pads, math/big and
// crypto/ecdh internals) cannot be reached and are left to the garbage
// collector; that limit is stated where it applies.
//
// The package is named crypto after its directory; importers that also need
// the standard library's crypto package alias one of them.
package crypto
