package ike

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/xdpsec/xdpsec/ike/crypto"
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

// MemInstaller is an Installer that keeps the SAs in memory, for tests and
// for showing what would be installed. It is safe for concurrent use.
type MemInstaller struct {
	mu       sync.Mutex
	inbound  map[uint32]sad.Config
	outbound map[uint32]sad.Config
	policies map[uint32][]sad.Selector
	active   map[uint32]uint32 // ReqID -> the outbound SPI its policy uses
	traps    map[uint32][]sad.Selector
	usage    map[uint32]uint64 // inbound SPI -> packets, set by tests
	outUsage map[uint32]uint64 // outbound SPI -> packets, set by tests
	log      []string
}

// NewMemInstaller returns an empty MemInstaller.
func NewMemInstaller() *MemInstaller {
	return &MemInstaller{
		inbound:  map[uint32]sad.Config{},
		outbound: map[uint32]sad.Config{},
		policies: map[uint32][]sad.Selector{},
		active:   map[uint32]uint32{},
		traps:    map[uint32][]sad.Selector{},
		usage:    map[uint32]uint64{},
		outUsage: map[uint32]uint64{},
	}
}

// SetInboundPackets sets what InboundPackets reports for an installed
// inbound SA, as if the data plane had delivered n packets on it.
func (m *MemInstaller) SetInboundPackets(spi uint32, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.usage[spi] = n
}

// InboundPackets implements UsageInstaller.
func (m *MemInstaller) InboundPackets(spi uint32) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.inbound[spi]; !ok {
		return 0, false
	}
	return m.usage[spi], true
}

// SetOutboundPackets sets what OutboundPackets reports for an installed
// outbound SA, as if the data plane had sent n packets on it.
func (m *MemInstaller) SetOutboundPackets(spi uint32, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outUsage[spi] = n
}

// OutboundPackets implements OutboundUsageInstaller.
func (m *MemInstaller) OutboundPackets(spi uint32) (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.outbound[spi]; !ok {
		return 0, false
	}
	return m.outUsage[spi], true
}

// MoveOutbound implements EndpointInstaller: the recorded outbound SA
// takes the new addresses and ports.
func (m *MemInstaller) MoveOutbound(spi uint32, local, remote netip.Addr, encap sad.UDPEncap) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cfg, ok := m.outbound[spi]
	if !ok {
		return fmt.Errorf("outbound sa %08x not installed", spi)
	}
	cfg.Local, cfg.Remote, cfg.Encap = local, remote, encap
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.outbound[spi] = cfg
	m.log = append(m.log, fmt.Sprintf("move %08x %v %d", spi, remote, encap.DstPort))
	return nil
}

func cloneConfig(cfg sad.Config) sad.Config {
	cfg.Key = slices.Clone(cfg.Key)
	cfg.IntegKey = slices.Clone(cfg.IntegKey)
	cfg.Selectors = slices.Clone(cfg.Selectors)
	return cfg
}

// InstallInbound records an inbound SA after checking it as sad.New would.
func (m *MemInstaller) InstallInbound(cfg sad.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.inbound[cfg.SPI]; dup {
		return fmt.Errorf("inbound sa %08x exists", cfg.SPI)
	}
	m.inbound[cfg.SPI] = cloneConfig(cfg)
	m.log = append(m.log, fmt.Sprintf("in %08x", cfg.SPI))
	return nil
}

// InstallOutbound records an outbound SA and its policy selectors; the
// policy of cfg.ReqID now uses it, replacing any older SA (which stays
// recorded until deleted) and any trap.
func (m *MemInstaller) InstallOutbound(cfg sad.Config, sel []sad.Selector) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.outbound[cfg.SPI]; dup {
		return fmt.Errorf("outbound sa %08x exists", cfg.SPI)
	}
	m.outbound[cfg.SPI] = cloneConfig(cfg)
	m.policies[cfg.SPI] = slices.Clone(sel)
	m.active[cfg.ReqID] = cfg.SPI
	delete(m.traps, cfg.ReqID)
	m.log = append(m.log, fmt.Sprintf("out %08x", cfg.SPI))
	return nil
}

// Delete forgets an SA and wipes its keys.
func (m *MemInstaller) Delete(spi uint32, dir sad.Direction) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tab := m.inbound
	if dir == sad.Outbound {
		tab = m.outbound
	}
	cfg, ok := tab[spi]
	if !ok {
		return fmt.Errorf("%v sa %08x not installed", dir, spi)
	}
	crypto.Zero(cfg.Key)
	crypto.Zero(cfg.IntegKey)
	delete(tab, spi)
	delete(m.policies, spi)
	if dir == sad.Outbound && m.active[cfg.ReqID] == spi {
		delete(m.active, cfg.ReqID)
	}
	m.log = append(m.log, fmt.Sprintf("del %v %08x", dir, spi))
	return nil
}

// Inbound returns copies of the installed inbound SAs.
func (m *MemInstaller) Inbound() []sad.Config { return m.list(sad.Inbound) }

// Outbound returns copies of the installed outbound SAs.
func (m *MemInstaller) Outbound() []sad.Config { return m.list(sad.Outbound) }

func (m *MemInstaller) list(dir sad.Direction) []sad.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	tab := m.inbound
	if dir == sad.Outbound {
		tab = m.outbound
	}
	var out []sad.Config
	for _, c := range tab {
		out = append(out, cloneConfig(c))
	}
	slices.SortFunc(out, func(a, b sad.Config) int { return int(int64(a.SPI) - int64(b.SPI)) })
	return out
}

// Policies returns the selectors installed with the outbound SA spi.
func (m *MemInstaller) Policies(spi uint32) []sad.Selector {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.policies[spi])
}

// Log returns the calls in order ("in SPI", "out SPI", "del DIR SPI",
// "move SPI REMOTE PORT").
func (m *MemInstaller) Log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}

// InstallTrap records a policy without an SA.
func (m *MemInstaller) InstallTrap(reqID uint32, sel []sad.Selector) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.traps[reqID] = slices.Clone(sel)
	m.log = append(m.log, fmt.Sprintf("trap %d", reqID))
	return nil
}

// Traps returns the ReqIDs of the policies held as traps.
func (m *MemInstaller) Traps() []uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []uint32
	for id := range m.traps {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Active returns the outbound SAs that policies use now, one per ReqID:
// the SAs the data plane would encrypt with.
func (m *MemInstaller) Active() []sad.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sad.Config
	for _, spi := range m.active {
		out = append(out, cloneConfig(m.outbound[spi]))
	}
	slices.SortFunc(out, func(a, b sad.Config) int { return int(int64(a.SPI) - int64(b.SPI)) })
	return out
}
