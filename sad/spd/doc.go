// Package spd is the Security Policy Database of RFC 4301 §4.4.1: an
// ordered list of policies, each a traffic selector (sad.Selector) with an
// action — PROTECT (send through an SA), BYPASS (send in the clear) or
// DISCARD — where the first policy in order that matches a packet decides.
// The list is searched as ordered, not decorrelated (§4.4.1 allows both):
// overlapping policies are fine and order alone resolves them.
//
// The outbound fast path looks a policy up for every packet, so lookups
// never lock and never allocate: writers (configuration, IKE) compile the
// whole list into an immutable index and publish it with one atomic store
// (RCU style), and a reader keeps whichever index it loaded. Binding or
// rebinding the outbound SA of a PROTECT policy is an atomic store in the
// Policy itself and needs no rebuild. When a PROTECT policy has no SA yet,
// the caller asks the key manager for one (an acquire, §5.1) and drops.
//
// The index is keyed on the destination address: a longest-prefix match
// over the distinct destination prefixes (binary search on prefix lengths
// with hashed levels and markers, after Waldvogel et al., "Scalable
// High-Speed Prefix Matching", ACM TOCS 2001) yields a node whose own
// policies, followed by those of the enclosing prefixes, are the only
// candidates; they are checked in order against source, protocol and ports.
// See Lookup for the cost and its worst case.
//
// Mirror projects the SPD onto destination prefixes alone for the XDP
// program's LPM map, erring towards "let user space decide" so that the
// early classification can never send in the clear a packet the SPD would
// protect or discard.
package spd
