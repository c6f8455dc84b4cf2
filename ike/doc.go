// Package ike runs the IKEv2 exchanges of RFC 7296 between this gateway and
// its peers, and hands the Child SAs they negotiate to the data plane as
// sad.Config values through an Installer.
//
// The shape follows strongSwan's charon: every exchange is a small task with
// the same steps — build the request (initiator), process it and build the
// response (responder), process the response (initiator) — and a per-IKE-SA
// queue runs one task at a time, owning the message IDs, the protection of
// the Encrypted payload, retransmission and the cached last response, so no
// task repeats that logic. One goroutine (the Engine's loop) owns every IKE
// SA, so the state machines need no locks.
//
// Implemented sections of RFC 7296:
//   - §1.2, §2.2, §2.3: IKE_SA_INIT and IKE_AUTH with the first Child SA,
//     message IDs with a window of one, retransmission with exponential
//     back-off, duplicate requests answered from the cached response.
//   - §1.3, §2.7: proposal selection (ours in order of preference against
//     the peer's), INVALID_KE_PAYLOAD and the retry with the requested group
//     (§1.2, §2.7), NO_PROPOSAL_CHOSEN.
//   - §2.9: traffic selector narrowing by the responder, TS_UNACCEPTABLE.
//   - §1.3.1, §3.10.1: USE_TRANSPORT_MODE; §3.3.2 ESN negotiation.
//   - §2.15: AUTH with a shared key (method 2) and with signatures from
//     certificates (methods 1, 9-11 and RFC 7427 method 14), IDi/IDr, CERT.
//   - §2.17: Child SA KEYMAT; §2.14 IKE SA keys (through ike/crypto).
//   - §2.23 and RFC 3948: NAT detection (NAT_DETECTION_SOURCE_IP and
//     NAT_DETECTION_DESTINATION_IP), the move to UDP 4500 with the non-ESP
//     marker, following a peer that floats (its Child SAs move with it:
//     EndpointInstaller), UDP encapsulation of Child SAs, NAT-T keepalives
//     (RFC 3948 §2.3) when we are behind a NAT and the flow is idle.
//   - §1.4, §2.4: INFORMATIONAL: Delete of Child SAs and of the IKE SA in
//     both directions, the empty request as a liveness check.
//   - §1.3.1, §2.17: CREATE_CHILD_SA for further Child SAs (a connection's
//     children beyond the first, from either end), with a KE payload for
//     perfect forward secrecy when the ESP proposal names a group
//     ("aes128gcm16-x25519"), INVALID_KE_PAYLOAD and the retry, and
//     NO_ADDITIONAL_SAS beyond Connection.MaxChildren.
//   - §1.3.3, §2.8: Child SA rekeying (REKEY_SA), make-before-break: the
//     responder installs the new inbound SA before its response, the
//     initiator installs both halves on the response and deletes the old
//     SA RekeyDeleteDelay later (packets sealed with it just before the
//     switch leave first); the responder moves its outbound traffic when
//     that Delete arrives (or after a grace period). Both ends keep the old
//     inbound SA RekeyedInboundDelay past the Delete exchange, for packets
//     the IKE message overtook. The Installer contract for the switch is
//     on Installer. §2.8.1: simultaneous rekeys, the SA with the lowest
//     nonce is deleted by its creator. §2.25: TEMPORARY_FAILURE and
//     CHILD_SA_NOT_FOUND for rekeys of SAs going away or unknown.
//   - §1.3.2, §2.18: IKE SA rekeying with new SPIs and SKEYSEED from the old
//     SK_d; the Child SAs move to the new IKE SA (on the responder, at the
//     Delete of the old one or the first Child SA work on the new one);
//     collisions as in §2.8.1.
//   - Lifetimes: soft (rekey, jittered up to 10% earlier) and hard
//     (delete) times for Child SAs (ChildConfig.Lifetime) and IKE SAs
//     (Connection.IKERekeyTime, IKELifetime); the data plane's byte, packet
//     and sequence-number limits arrive through Engine.Expire. A rekey a
//     soft lifetime asked for is retried until it succeeds.
//   - §2.4: dead peer detection (Connection.DPDDelay) with the actions
//     clear, restart (re-initiate until the peer answers) and trap
//     (TrapInstaller); INITIAL_CONTACT sent on the first IKE_AUTH with a
//     peer and, received, clears the stale IKE SAs of the same identities.
//   - Close actions (strongSwan's close_action): when the peer deletes
//     the IKE SA or a Child SA other than by a rekey, CloseStart initiates
//     again and CloseTrap keeps the policies as traps.
//   - Acquires (RFC 4301 §4.4.1, strongSwan's start_action trap):
//     Engine.Acquire starts the Child SA a trap policy's traffic asks for,
//     with CREATE_CHILD_SA on an established IKE SA or a new IKE SA, and
//     coalesces with a negotiation already under way.
//   - §2.5: UNSUPPORTED_CRITICAL_PAYLOAD for a critical unknown payload.
//   - RFC 7427 §4: SIGNATURE_HASH_ALGORITHMS.
//   - §2.6: cookies. Once the half-open IKE SAs reach Config.CookieThreshold,
//     IKE_SA_INIT requests without a valid COOKIE get a stateless reply with
//     only a COOKIE (no state, no key exchange); the cookie is an HMAC over
//     SPIi, the initiator's address and Ni under a secret that rotates, the
//     previous one still accepted (cookie.go). As initiator the engine
//     repeats IKE_SA_INIT with the cookie first, with the same SPIi and
//     nonce, also across INVALID_KE_PAYLOAD (§2.6.1), at most three times.
//   - RFC 9370 with RFC 9242 (intermediate.go, followup.go): hybrid key
//     exchange, e.g. X25519 in IKE_SA_INIT and ML-KEM-768 (ADDKE1) in an
//     IKE_INTERMEDIATE exchange, keys chained after each (§2.2.2), AUTH
//     over IntAuth (RFC 9242 §3.3.2); IKE SA rekeys repeat the additional
//     exchanges in IKE_FOLLOWUP_KE (§2.2.4) and never drop them. A proposal
//     whose ADDKE slots are all optional also goes out without them, for
//     peers that predate RFC 9370 (strongSwan 5.9.8 refuses any proposal
//     with an ADDKE transform).
//   - RFC 7383: IKE message fragmentation, negotiated with
//     IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (Connection.NoFragmentation
//     turns it off): a protected message over Connection.FragmentSize goes
//     out, and is retransmitted, as Encrypted Fragment payloads each sealed on
//     its own; received fragments are verified one by one and reassembled
//     within fixed bounds (fragment.go), counted in Engine.FragmentStats.
//
// Unauthenticated input cannot grow state without bound: responder IKE SAs
// that have not finished IKE_AUTH live in a half-open table with a fixed cap
// and expire after a timeout; the requests that may create them pass an
// admission step on its own goroutine (cookies, unknown peers, an 8 KiB
// size cap) and then, only when they would cost a key exchange, a
// per-source limit (a rate in a fixed-size table and a share of the
// half-open table, a source being an IPv4 /32 or an IPv6 /64 by default).
// A source over its limit gets a COOKIE, not silence, and requests that
// return a valid one are counted apart, so an off-path attacker spoofing a
// peer's address cannot use the peer's allowance up (admit.go,
// ratelimit.go). Fragments being reassembled share a memory budget, of
// which IKE SAs that have not authenticated get half and a small limit
// each (fragment.go). Log lines that unauthenticated input can cause pass
// one rate limiter with a summary of what it held back (quietlog.go), and
// an IKE SA follows a peer to a new address only behind a NAT (§2.23).
// Engine.Stats counts what each of these dropped or answered.
//
// Proposals are written the way strongSwan's configuration writes them
// (ParseProposals): "aes256gcm16-prfsha384-ecp384" for IKE,
// "aes256gcm16-prfsha384-x25519-ke1_mlkem768" for a hybrid IKE SA (strongSwan
// 6's syntax; keN_none makes slot N optional), "aes128gcm16-x25519-esn" for
// ESP.
//
// The API: New starts an Engine on a transport.Conn (ike/transport opens
// UDP 500 and 4500) with the Connections and an Installer; Initiate,
// RekeyChildren, RekeyIKE, Expire and Terminate drive it; List shows its SAs.
//
// Not implemented yet: configuration payloads, EAP,
// MOBIKE, and additional key exchanges for Child SAs (ESP proposals with
// keN_ are refused: their IKE_FOLLOWUP_KE is not implemented; the keys of
// a hybrid IKE SA's Child SAs come from its SK_d, which carries them).
package ike
