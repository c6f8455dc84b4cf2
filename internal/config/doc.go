// Package config reads the gateway's YAML configuration: the interfaces and
// queues the data plane serves, the manually keyed SAs (RFC 4301 §4.5: the
// static alternative to IKE that `ip xfrm state` also offers) and the ordered
// SPD (RFC 4301 §4.4.1) that binds traffic to them, and the IKEv2 (RFC 7296)
// connections that key SAs on their own: addresses, identities, PSK (from a
// file or the environment, never from the YAML) or certificates, proposals
// in strongSwan's syntax, children with traffic selectors, lifetimes, start
// (none, start, trap) and DPD actions, the acquire interval of trap
// policies, the IKE retransmission schedule, and an optional Wireshark key
// log.
//
// Every error names the file, the line and the field (e.g.
// "gw.yaml:12: sas[0].key: 20 bytes, aes128gcm16 needs 20"), so an operator
// finds the mistake at once. Key material is never part of an error or of
// anything this package prints: errors about keys give lengths only.
//
// The shape of a configuration with static SAs is in scripts/lab/gw-a.yaml;
// scripts/lab/gen-ike-config.sh writes one with an IKE connection.
package config
