package ike

import (
	"net/netip"

	"github.com/xdpsec/xdpsec/sad"
)

// Installer is how negotiated Child SAs reach the data plane; the gateway
// implements it on its SAD and SPD. The engine calls InstallInbound before
// it sends the message that lets the peer use the SA, and InstallOutbound
// once the peer is known to have the inbound half (RFC 7296 §2.8 ordering).
// The key slices in cfg belong to the engine, which wipes them as soon as
// the call returns: copy them (sad.New does).
//
// Rekeying (RFC 7296 §2.8) is make-before-break, and it relies on this
// contract of InstallOutbound: cfg.ReqID names the policy (the Child SA's
// selectors), which outlives any one SA. When an outbound SA with the same
// ReqID is already installed, InstallOutbound must atomically point the
// policy at the new SA — from then on the data plane encrypts with the new
// one — while the old outbound SA stays installed (harmlessly unused) until
// the engine deletes it. Deleting an outbound SA that a policy no longer
// points at must leave the policy alone. The engine installs the new
// inbound SA before any message that lets the peer send on it, switches
// the outbound only once the peer has the matching inbound SA, and deletes
// the old inbound SA only after the peer has stopped using it.
type Installer interface {
	InstallInbound(cfg sad.Config) error
	InstallOutbound(cfg sad.Config, sel []sad.Selector) error
	Delete(spi uint32, dir sad.Direction) error
}

// TrapInstaller is implemented by Installers that can keep a policy in
// place without an SA (a "trap"): traffic matching sel is then held back
// or dropped, never sent in the clear, until a new SA is negotiated. The
// engine calls InstallTrap for DPDTrap when it removes a dead peer's SAs.
type TrapInstaller interface {
	InstallTrap(reqID uint32, sel []sad.Selector) error
}

// UsageInstaller is implemented by Installers that can tell how many
// packets an inbound SA has delivered. The engine then takes ESP arriving
// from the peer as a sign of life and sends no liveness check while it
// flows: RFC 7296 §2.4 asks for one only when nothing cryptographically
// protected came from the peer for a while (strongSwan does the same).
type UsageInstaller interface {
	InboundPackets(spi uint32) (n uint64, ok bool)
}

// OutboundUsageInstaller is implemented by Installers that can tell how
// many packets an outbound SA has sent. ESP in UDP leaves from the NAT-T
// port, so while it flows it keeps a NAT's mapping alive and the engine
// sends no NAT-T keepalive (RFC 3948 §2.3: only when idle).
type OutboundUsageInstaller interface {
	OutboundPackets(spi uint32) (n uint64, ok bool)
}

// EndpointInstaller is implemented by Installers that can move an
// installed outbound SA to new outer addresses and UDP encapsulation ports
// in place: when the IKE SA follows its peer to a new address or port (a
// NAT's mapping changed, RFC 7296 §2.23), the Child SAs' ESP must go there
// too. The SA keeps its keys and its sequence numbers go on from where
// they were (a number is never used twice); the data plane switches
// without locking (a new SA published in the old one's place).
type EndpointInstaller interface {
	MoveOutbound(spi uint32, local, remote netip.Addr, encap sad.UDPEncap) error
}
