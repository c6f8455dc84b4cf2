// Package iketest holds the test doubles of package ike, written once
// and imported by its tests (in the manner of wireguard-go's tun/tuntest):
// MemInstaller, an in-memory Installer. Production code does not import it.
package iketest

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/sad"
)

// MemInstaller is an ike.Installer (and TrapInstaller, UsageInstaller,
// OutboundUsageInstaller, EndpointInstaller) that keeps the SAs in memory
// and logs every call, for tests. It is safe for concurrent use.
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
