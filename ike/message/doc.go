// Package message encodes and decodes IKEv2 messages: the IKE header and
// every payload of RFC 7296 §3, plus the Encrypted Fragment payload of
// RFC 7383 §2.5.
//
// It is a codec only. It checks syntax (every length against its container,
// counts against what follows, value ranges the RFCs fix) and leaves
// semantics — which payloads an exchange needs, proposal selection, SPI
// values — to the exchange layer. The Encrypted (SK) and Encrypted Fragment
// (SKF) payloads stay opaque here: the IV, ciphertext and ICV are kept as
// bytes, and ike/crypto seals and opens them. This package supplies what that
// needs: [Encrypted.Split] and [EncryptedFragment.Split] cut the body given
// the IV and ICV lengths, [LocateEncrypted] finds those regions in an encoded
// message, and [Message.AppendAssociatedData] builds the associated data that
// RFC 5282 §5.1 (and RFC 7383 §2.5 for fragments) authenticates: the IKE
// header through the end of the SK (or SKF) payload header. The decrypted
// inner payload chain is decoded with [DecodePayloads] and built with
// [AppendPayloads].
//
// Implemented sections:
//   - RFC 7296 §3.1 IKE header; §3.2 generic payload header and the critical
//     bit (§2.5: an unknown payload with the critical bit set yields
//     [*UnsupportedCriticalPayloadError]; one without is kept as [Unknown]).
//   - §3.3 SA payload: proposals, transforms, transform attributes (the Key
//     Length attribute in TV format, §3.3.5).
//   - §3.4 KE, §3.5 IDi/IDr, §3.6 CERT, §3.7 CERTREQ, §3.8 AUTH, §3.9 Ni/Nr,
//     §3.10 Notify (with the §3.10.1 type registry), §3.11 Delete, §3.12
//     Vendor ID, §3.13 TSi/TSr, §3.14 Encrypted, §3.15 Configuration, §3.16
//     EAP (opaque).
//   - RFC 7383 §2.5 Encrypted Fragment payload.
//   - Registry values from the IANA IKEv2 parameters (exchange types, transform
//     IDs incl. RFC 9370 additional key exchanges and ML-KEM, auth methods,
//     certificate encodings, notify types).
//
// Decoding copies its input once and never retains the caller's buffer;
// byte slices in decoded payloads alias that private copy. Attacker input
// never drives an allocation beyond what its own length pays for, and counts
// are capped by [MaxPayloads], [MaxProposals], [MaxTransforms],
// [MaxAttributes], [MaxTrafficSelectors] and [MaxConfigAttributes].
package message
