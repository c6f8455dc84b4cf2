// Package daemon wires the gateway together for `xdpsec run`: it builds the
// SAD and SPD (RFC 4301 §4.4) from a configuration, loads and attaches the
// XDP steering program (package bpf), opens one AF_XDP socket per interface
// and queue (package xsk), runs one fastpath.Worker per queue on its own OS
// thread, and serves the control socket and the Prometheus metrics.
//
// Shutdown is orderly: workers stop, sockets leave the XSKMAP and close,
// and the programs are detached and unpinned, so nothing stays attached. A
// daemon that dies instead (kill -9) leaves its pinned program attached,
// dropping PROTECT traffic for want of a socket (fail closed); the next
// run takes the pins over and traffic flows again.
//
// In two-arm mode the protected and unprotected interfaces get separate
// sets of XDP objects (pinned under pin_path/lan and pin_path/wan): the
// program's XSKMAP is indexed by receive queue only, and queue q of each
// interface needs its own socket.
package daemon
