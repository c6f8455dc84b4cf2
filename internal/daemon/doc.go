// Package daemon wires the gateway together for `xdpsec run`: it builds the
// SAD and SPD (RFC 4301 §4.4) from a configuration, loads and attaches the
// XDP steering program (package bpf), opens one AF_XDP socket per interface
// and queue (package xsk), runs one fastpath.Worker per queue on its own OS
// thread, and serves the control socket and the Prometheus metrics.
//
// Shutdown is orderly: workers stop and sockets leave the XSKMAP and
// close. By default (on_stop: keep) the pinned programs stay attached, as
// after a daemon that dies (kill -9): PROTECT traffic is dropped for want
// of a socket (fail closed), never routed in clear, and the next run takes
// the pins over and traffic flows again. With on_stop: detach, or with
// pin_path: none, the programs are detached and unpinned, so nothing stays
// attached and the kernel routes on its own again (Daemon.Shutdown).
//
// Outbound static SAs resume above their keys' durable sequence marks
// (package seqstate, state_dir) before any worker runs, and a reserver
// keeps the marks ahead of the traffic; Start refuses whenever that
// cannot be guaranteed (unknown key, unwritable state, a key in use).
//
// In two-arm mode the protected and unprotected interfaces get separate
// sets of XDP objects (pinned under pin_path/lan and pin_path/wan): the
// program's XSKMAP is indexed by receive queue only, and queue q of each
// interface needs its own socket.
//
// With connections in the configuration the daemon also runs the IKEv2
// engine (package ike, RFC 7296) on the WAN address, UDP 500 and the NAT-T
// port, which the XDP program passes to the kernel. The daemon is the
// engine's Installer (RFC 7296 §2.8 ordering, as documented on
// ike.Installer): an inbound Child SA goes into the inbound table and the
// XDP program's live SPIs; an outbound one is published through the PROTECT
// policies of its ReqID with one atomic store each, so a rekey repoints the
// policy without rebuilding the SPD. Each configured child's selectors are
// PROTECT policies without an SA from the start, so their traffic is
// dropped, never sent in the clear, while no tunnel is up (RFC 4301 §5.1:
// a PROTECT policy with no SA discards and asks the key manager). Those of
// start_action trap connections (and those dpd_action trap keeps) are
// traps: the workers raise an acquire (fastpath.Acquirer, at most one per
// policy per acquire_interval) and the daemon asks the engine for the
// policy's child (ike.Engine.Acquire, which coalesces with a negotiation
// under way). A ticker reports the data plane's byte, packet and
// sequence-number expiries to the engine (soft: rekey; hard: delete). The
// ike: section of the configuration sets the engine's flood defence
// (cookies, per-source limit, half-open cap); its counters appear as
// ike_stats in the snapshot (`xdpsec show ike`, `show stats`) and as
// xdpsec_ike_flood_total and xdpsec_ike_half_open.
//
// After a restart the configured tunnels come back by themselves:
// start_action start connections initiate at once, with INITIAL_CONTACT
// (RFC 7296 §2.4), so the peer drops the SAs it still holds with the old
// run; trap connections on their first packet. A peer that restarted as
// responder has lost the SAs this end still sends on, and RFC 7296 gives
// it no trustworthy way to say so; this end finds out by its liveness
// checks (DPD, §2.4: dpd_delay) and, with dpd_action restart, initiates
// again. dpd_delay and the retransmit schedule (retransmit:) decide how
// soon.
package daemon
