// Package bgp is the cluster's BGP speaker (issue 11 item 7, L3 mode): the
// node active for a tunnel group announces the group's addresses as host
// routes (/32, /128) to the fabric's routers, and withdraws them before it
// lets the group go. It wraps GoBGP (github.com/osrg/gobgp/v3) used as a
// library: an in-process BgpServer with no gRPC listener and no BGP
// listener (the node connects out to its neighbours; RFC 4271), MD5
// signatures per RFC 2385, multiprotocol routes for IPv6 per RFC 4760.
//
// Which of two announcements of one address wins at a router that still
// holds a dead node's route (a session not yet timed out) is decided by
// the MULTI_EXIT_DISC (RFC 4271 §5.1.4): a node announces with a MED that
// is lower the later it took the group (MED), so the newest active's
// route is preferred at once, whatever the routers' tie-breaks.
package bgp
