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
//     marker, following a peer that floats, UDP encapsulation of Child SAs.
//   - §1.4, §2.4: INFORMATIONAL: Delete of Child SAs and of the IKE SA in
//     both directions, the empty request as a liveness check.
//   - §2.5: UNSUPPORTED_CRITICAL_PAYLOAD for a critical unknown payload.
//   - RFC 7427 §4: SIGNATURE_HASH_ALGORITHMS.
//
// Unauthenticated input cannot grow state without bound: responder IKE SAs
// that have not finished IKE_AUTH live in a half-open table with a fixed cap
// and expire after a timeout.
//
// Proposals are written the way strongSwan's configuration writes them
// (ParseProposals): "aes256gcm16-prfsha384-ecp384" for IKE,
// "aes128gcm16-x25519-esn" for ESP.
//
// The API: New starts an Engine on a transport.Conn (ike/transport opens
// UDP 500 and 4500) with the Connections and an Installer; Initiate,
// Terminate, TerminateChild and Ping drive it; List shows its SAs.
//
// Not implemented yet: CREATE_CHILD_SA (rekeying of Child and IKE SAs,
// Child SAs beyond the first; a peer's CREATE_CHILD_SA is refused with
// NO_ADDITIONAL_SAS), lifetimes and the timers that would rekey or expire
// SAs, periodic liveness checks (DPD) and NAT keepalives, cookies (§2.6),
// fragmentation (RFC 7383), INITIAL_CONTACT, configuration payloads, EAP,
// MOBIKE, and collisions of simultaneous exchanges.
package ike
