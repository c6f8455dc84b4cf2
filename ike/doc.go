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
// The API: New starts an Engine on a transport.Conn (ike/transport opens
// UDP 500 and 4500) with the Connections and an Installer; Initiate,
// RekeyChildren, RekeyIKE, Expire and Terminate drive it; List shows its SAs.
//
// What is implemented, section by section of RFC 7296 (and RFCs 3948,
// 7383, 7427, 9242, 9370), how unauthenticated input is bounded, the
// proposal syntax (strongSwan's, read by ParseProposals) and what is not
// implemented yet: docs/ike.md.
package ike
