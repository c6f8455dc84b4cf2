// Package control is the daemon's local management interface: a Unix
// stream socket on which `xdpsec show` asks for a snapshot of the gateway's
// state (SAs with their counters, policies, workers, XDP and AF_XDP
// counters) and gets it back as JSON. It implements no RFC; the SA view
// carries what RFC 4301 §4.4.2.1 lists for an SAD entry, keys excepted.
//
// The protocol is one JSON request line ({"command":"snapshot"}, or an
// action such as {"command":"initiate","name":"site"}) answered by one JSON
// response line, then the server closes the connection. Actions (IKE
// initiate and terminate) wait on the network, bounded by ActionTimeout. Requests
// are bounded in size and time, so a stuck client cannot hold the daemon.
// The socket is created mode 0600: only its owner (root) may talk to it.
package control
