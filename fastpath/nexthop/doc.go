// Package nexthop answers the fast path's question "which Ethernet header
// does a packet to this IP destination leave with?" (fastpath.NextHop).
//
// Table is the netlink-backed answer for one outgoing interface. It asks
// the kernel's FIB (RTM_GETROUTE, the equivalent of `ip route get`) which
// route a destination takes, follows the route's gateway or, for an
// on-link destination, the destination itself, and takes the link-layer
// address from the kernel's neighbour table (ARP, RFC 826, for IPv4;
// Neighbor Discovery, RFC 4861 §7, for IPv6). Multicast destinations map
// to their group MAC without resolution (RFC 1112 §6.4, RFC 2464 §7).
//
// Workers call Lookup from the hot path, so Lookup never locks, allocates
// or makes a syscall: answers live in a bounded, set-associative cache of
// immutable entries behind atomic pointers, written only by the table's
// background goroutine. That goroutine follows the kernel's route,
// neighbour and link events (RTNLGRP_*) and rewrites or drops the affected
// entries, so a neighbour's new MAC or a new route reaches the workers
// without their asking.
//
// A destination that is not resolved yet misses: Lookup counts it and hands
// the address to the background goroutine through a bounded queue that
// drops when full. The goroutine resolves the route and, when the neighbour
// is unknown or INCOMPLETE, makes the kernel solicit it by sending an empty
// UDP datagram to the next hop's discard port (RFC 863) from a socket
// bound to the interface: the kernel creates the neighbour entry, sends
// the ARP request or Neighbor Solicitation itself (with its own retries,
// rate limits and FAILED handling, RFC 4861 §7.2.2) and reports the
// outcome as a neighbour event, which fills the cache. Unlike writing
// NUD_INCOMPLETE entries over netlink, this works the same for ARP and ND
// on every kernel and never leaves entries the kernel did not make.
//
// The fast path's packets bypass the kernel, so the kernel never sees the
// traffic that would make it re-check a neighbour it has marked STALE
// (Neighbor Unreachability Detection, RFC 4861 §7.3). Every
// ConfirmInterval the table sends the same datagram to the STALE
// neighbours behind answers in use: the kernel probes them and reports
// REACHABLE, a new address, or FAILED, which withdraws the answers.
//
// The background goroutine locks its thread into the table's network
// namespace (Options.NetNS, by default the caller's), so a table works for
// an interface inside a namespace whatever thread its users run on.
//
// StaticTable is the fixed alternative for configurations that pin their
// next hops: a longest-prefix match over a handful of prefixes.
package nexthop
