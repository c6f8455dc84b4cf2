package ikeload

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/sad"
)

// ServeConfig is the xdpsec responder of the benchmark.
type ServeConfig struct {
	// Addr is the address to listen on (a specific one: NAT detection hashes
	// it). IKEPort and NATTPort are the ports (500 and 4500 in production);
	// zero picks a free one, as tests do (Server.Ports tells which).
	Addr              netip.Addr
	IKEPort, NATTPort uint16
	PSK               []byte
	// LocalID is the responder's identity; default "responder.ikeload.test".
	// Any initiator identity that proves the PSK is accepted.
	LocalID string
	// IKEProposals and ESPProposals default to the generator's.
	IKEProposals, ESPProposals string
	// LocalTS and RemoteTS are the Child SA's selectors; defaults 0.0.0.0/0
	// and 100.64.0.0/10 (the generator's TSi pool), which the engine
	// narrows to each initiator's /32.
	LocalTS, RemoteTS netip.Prefix
	// HalfOpenLimit is passed to ike.Config; a load run needs more than the
	// default when C is large. 0 means 1<<20.
	HalfOpenLimit int
	// Logger defaults to warnings and errors on stderr.
	Logger *slog.Logger
}

// Server is a running xdpsec responder.
type Server struct {
	Engine    *ike.Engine
	Installer *SADInstaller
	conn      *transport.UDP
}

// ServeXdpsec starts an ike.Engine on transport.Listen(cfg.Addr, ...) with
// one connection that answers any peer and any identity proving the PSK,
// installing Child SAs into sad tables (a SADInstaller).
func ServeXdpsec(cfg ServeConfig) (*Server, error) {
	if !cfg.Addr.IsValid() {
		return nil, errors.New("ikeload serve: a listen address is required")
	}
	if len(cfg.PSK) == 0 {
		return nil, errors.New("ikeload serve: a PSK is required")
	}
	if cfg.LocalID == "" {
		cfg.LocalID = "responder.ikeload.test"
	}
	if cfg.IKEProposals == "" {
		cfg.IKEProposals = DefaultIKEProposal
	}
	if cfg.ESPProposals == "" {
		cfg.ESPProposals = DefaultESPProposal
	}
	if !cfg.LocalTS.IsValid() {
		cfg.LocalTS = netip.MustParsePrefix("0.0.0.0/0")
	}
	if !cfg.RemoteTS.IsValid() {
		cfg.RemoteTS = netip.MustParsePrefix("100.64.0.0/10")
	}
	if cfg.HalfOpenLimit <= 0 {
		cfg.HalfOpenLimit = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	id, err := ike.ParseIdentity(cfg.LocalID)
	if err != nil {
		return nil, fmt.Errorf("ikeload serve: identity: %w", err)
	}
	ikeProps, err := ike.ParseProposals(message.ProtocolIKE, cfg.IKEProposals)
	if err != nil {
		return nil, fmt.Errorf("ikeload serve: IKE proposals: %w", err)
	}
	espProps, err := ike.ParseProposals(message.ProtocolESP, cfg.ESPProposals)
	if err != nil {
		return nil, fmt.Errorf("ikeload serve: ESP proposals: %w", err)
	}
	conn := ike.Connection{
		Name:         "ikeload",
		LocalAddr:    cfg.Addr,
		Local:        ike.AuthConfig{ID: id, PSK: append([]byte(nil), cfg.PSK...)},
		Remote:       ike.AuthConfig{PSK: append([]byte(nil), cfg.PSK...)},
		IKEProposals: ikeProps,
		Children: []ike.ChildConfig{{
			Name:         "load",
			LocalTS:      []ike.TrafficSelector{{Prefix: cfg.LocalTS}},
			RemoteTS:     []ike.TrafficSelector{{Prefix: cfg.RemoteTS}},
			ESPProposals: espProps,
		}},
	}
	udp, err := transport.Listen(cfg.Addr, cfg.IKEPort, cfg.NATTPort)
	if err != nil {
		return nil, fmt.Errorf("ikeload serve: %w", err)
	}
	inst := NewSADInstaller()
	e, err := ike.New(ike.Config{
		Connections: []ike.Connection{conn},
		// The generator sets up thousands of IKE SAs from a handful of
		// addresses: a per-source limit would measure itself. The cookie
		// threshold is raised as strongSwan's is in the comparison
		// (cookie_threshold = 1000000): the benchmark measures setups, not
		// cookie rounds (the generator follows cookies all the same).
		Defence: ike.Defence{HalfOpenLimit: cfg.HalfOpenLimit, InitRate: -1, CookieThreshold: 1_000_000},
		Logger:  cfg.Logger,
	}, udp, inst)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("ikeload serve: %w", err)
	}
	return &Server{Engine: e, Installer: inst, conn: udp}, nil
}

// Ports returns the IKE and NAT-T ports the server listens on.
func (s *Server) Ports() (ikePort, nattPort uint16) { return s.conn.Ports() }

// Close stops the engine (wiping its keys) and closes the sockets.
func (s *Server) Close() {
	s.Engine.Close()
	s.conn.Close()
}

// SADInstaller installs Child SAs the way the gateway does: every SA is
// built with sad.New (keys copied, replay window allocated), inbound SAs
// go into a sad.Table by SPI, outbound ones are kept by SPI with a policy
// per ReqID pointing at the current one. It carries no traffic; its point
// is that the responder's memory per IKE SA includes the SAD's share.
type SADInstaller struct {
	mu     sync.Mutex
	in     *sad.Table
	out    map[uint32][]*sad.SA // peer-chosen SPIs may collide across peers
	policy map[uint32]policy    // by ReqID
	nOut   int
}

type policy struct {
	sa  *sad.SA
	sel []sad.Selector
}

// NewSADInstaller returns an empty SADInstaller.
func NewSADInstaller() *SADInstaller {
	return &SADInstaller{in: sad.NewTable(1024), out: map[uint32][]*sad.SA{}, policy: map[uint32]policy{}}
}

// InstallInbound implements ike.Installer.
func (s *SADInstaller) InstallInbound(cfg sad.Config) error {
	sa, err := sad.New(cfg)
	if err != nil {
		return fmt.Errorf("inbound sa %08x: %w", cfg.SPI, err)
	}
	if err := s.in.Add(sa); err != nil {
		return fmt.Errorf("inbound sa %08x: %w", cfg.SPI, err)
	}
	return nil
}

// InstallOutbound implements ike.Installer, pointing the ReqID's policy at
// the new SA (make-before-break, as ike.Installer asks).
func (s *SADInstaller) InstallOutbound(cfg sad.Config, sel []sad.Selector) error {
	sa, err := sad.New(cfg)
	if err != nil {
		return fmt.Errorf("outbound sa %08x: %w", cfg.SPI, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out[cfg.SPI] = append(s.out[cfg.SPI], sa)
	s.policy[cfg.ReqID] = policy{sa: sa, sel: append([]sad.Selector(nil), sel...)}
	s.nOut++
	return nil
}

// Delete implements ike.Installer.
func (s *SADInstaller) Delete(spi uint32, dir sad.Direction) error {
	if dir == sad.Inbound {
		if sa := s.in.Delete(spi); sa != nil {
			sa.Kill()
			return nil
		}
		return fmt.Errorf("inbound sa %08x: not installed", spi)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.out[spi]
	if len(list) == 0 {
		return fmt.Errorf("outbound sa %08x: not installed", spi)
	}
	sa := list[0]
	if len(list) == 1 {
		delete(s.out, spi)
	} else {
		s.out[spi] = list[1:]
	}
	s.nOut--
	if p, ok := s.policy[sa.ReqID]; ok && p.sa == sa {
		delete(s.policy, sa.ReqID) // the policy goes with its current SA only
	}
	sa.Kill()
	return nil
}

// Counts returns the installed inbound and outbound SAs.
func (s *SADInstaller) Counts() (inbound, outbound int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.in.Len(), s.nOut
}
