package ike

import (
	"fmt"
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
type Installer interface {
	InstallInbound(cfg sad.Config) error
	InstallOutbound(cfg sad.Config, sel []sad.Selector) error
	Delete(spi uint32, dir sad.Direction) error
}

// MemInstaller is an Installer that keeps the SAs in memory, for tests and
// for showing what would be installed. It is safe for concurrent use.
type MemInstaller struct {
	mu       sync.Mutex
	inbound  map[uint32]sad.Config
	outbound map[uint32]sad.Config
	policies map[uint32][]sad.Selector
	log      []string
}

// NewMemInstaller returns an empty MemInstaller.
func NewMemInstaller() *MemInstaller {
	return &MemInstaller{
		inbound:  map[uint32]sad.Config{},
		outbound: map[uint32]sad.Config{},
		policies: map[uint32][]sad.Selector{},
	}
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

// InstallOutbound records an outbound SA and its policy selectors.
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

// Log returns the calls in order ("in SPI", "out SPI", "del DIR SPI").
func (m *MemInstaller) Log() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}
