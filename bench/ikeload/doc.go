// Package ikeload is an IKEv2 load generator: it sets up many IKE SAs, each
// with its first Child SA, against any responder, with a bounded number of
// setups in flight, and reports setups per second, latency percentiles,
// retransmissions and failures by cause. It also holds the responder side of
// the benchmark: ServeXdpsec runs an ike.Engine that accepts the generator's
// identities and installs the Child SAs into sad tables, so its memory per
// IKE SA is what a gateway pays.
//
// The generator is a lean initiator, not an ike.Engine per tunnel: each setup
// is a straight-line IKE_SA_INIT + IKE_AUTH exchange (RFC 7296 §1.2) built
// from ike/message and ike/crypto, so tens of thousands of setups cost little
// memory and the generator spends its CPU on the cryptography the protocol
// demands. What it implements of RFC 7296:
//
//   - §1.2, §2.2: IKE_SA_INIT and IKE_AUTH with the first Child SA, message IDs
//     0 and 1; §2.1: retransmission with exponential back-off and a give-up.
//   - §2.6: a COOKIE notification is echoed once in a repeated IKE_SA_INIT.
//   - §2.12: the initiator may reuse its Diffie-Hellman private value for a
//     number of exchanges (KEReuse), which halves the generator's key
//     exchange cost without changing the responder's work.
//   - §2.14, §2.15: IKE SA keys, shared-key AUTH (method 2) in both directions;
//     the responder's AUTH is verified.
//   - §2.23: NAT detection; when the responder reports a NAT (strongSwan with
//     kernel-libipsec fakes one), IKE_AUTH moves to the NAT-T port with the
//     non-ESP marker (RFC 3948 §2.2).
//
// It does not rekey, delete or carry traffic: an established SA is counted
// and forgotten by the generator (the responder keeps it).
package ikeload
