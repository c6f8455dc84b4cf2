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
//
// Who may talk to it (issue 13): the socket lives in a directory that
// belongs to the daemon's user and that no one else may write, is created
// under umask 0177, and is mode 0600 (root only) or, with a control group
// configured, 0660 and that group's. Whatever the file's mode, each
// connection's peer credentials (SO_PEERCRED and SO_PEERGROUPS, fixed at
// connect) decide: root and the daemon's own user may do everything;
// members of Access.AdminGID (control_admin_group) may too; members of
// Access.ReadGID (control_group) may only read (the snapshot behind
// `xdpsec show`); anyone else is refused whatever it asks.
// Every command other than the snapshot counts as changing state.
package control
