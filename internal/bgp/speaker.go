package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/xdpsec/xdpsec/internal/config"
)

// Route is one host route this node announces.
type Route struct {
	// Prefix is a /32 or /128.
	Prefix netip.Prefix
	// NextHop: invalid is the session's own address (next-hop self).
	NextHop netip.Addr
	// MED is the MULTI_EXIT_DISC (lower wins; see MED).
	MED uint32
}

// medEpoch and medUnit: MED counts down from MaxUint32 in medUnit steps
// since medEpoch, so it wraps after 2^32 × 100 ms ≈ 13.6 years (a wrap
// makes one takeover wait for the old session's hold time, no worse).
var medEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const medUnit = 100 * time.Millisecond

// MED is the MULTI_EXIT_DISC of routes announced by a node that took its
// group at t (wall clock): a later take has a lower MED, so a router that
// still holds an earlier active's route (its session alive until the hold
// time, e.g. a hung machine) prefers the new one at once. Clocks must
// agree within medUnit for the order to hold between nodes; when they do
// not, the old route still goes at its session's hold time.
func MED(t time.Time) uint32 {
	d := t.Sub(medEpoch) / medUnit
	if d < 0 {
		d = 0
	}
	return math.MaxUint32 - uint32(uint64(d)%math.MaxUint32)
}

// Speaker announces and withdraws host routes to the configured
// neighbours.
type Speaker struct {
	log *slog.Logger
	srv *server.BgpServer
	cfg *config.BGP

	mu     sync.Mutex
	routes map[netip.Prefix]Route // announced now
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs a BGP speaker with cfg's AS, router id and neighbours. It
// returns once the neighbours are configured; sessions come up by
// themselves (connect retry every DefaultBGPConnectRetry).
func Start(ctx context.Context, cfg *config.BGP, log *slog.Logger) (*Speaker, error) {
	srv := server.NewBgpServer(server.LoggerOption(slogAdapter{log.With("subsystem", "bgp")}))
	go srv.Serve()
	s := &Speaker{log: log, srv: srv, cfg: cfg, routes: map[netip.Prefix]Route{}, done: make(chan struct{})}
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:        cfg.AS,
		RouterId:   cfg.RouterID.String(),
		ListenPort: -1, // outbound sessions only: nothing to listen for
	}})
	if err != nil {
		srv.Stop()
		return nil, fmt.Errorf("bgp: %w", err)
	}
	for _, nb := range cfg.Neighbors {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer(nb)}); err != nil {
			srv.Stop()
			return nil, fmt.Errorf("bgp: neighbour %v: %w", nb.Address, err)
		}
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.watch(wctx)
	return s, nil
}

func peer(nb config.BGPNeighbor) *api.Peer {
	hold := uint64(nb.HoldTime / time.Second)
	var fams []*api.AfiSafi
	for _, f := range []*api.Family{v4, v6} {
		fams = append(fams, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}})
	}
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: nb.Address.String(), PeerAsn: nb.AS, AuthPassword: nb.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          hold,
			KeepaliveInterval: max(hold/3, 1),
			ConnectRetry:      uint64(config.DefaultBGPConnectRetry / time.Second),
			// After a session drops, try again at once rather than after
			// GoBGP's 30 s: an active node's routes are down meanwhile.
			IdleHoldTimeAfterReset: 1,
		}},
		Transport: &api.Transport{RemotePort: uint32(nb.Port)},
		AfiSafis:  fams,
	}
}

var (
	v4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	v6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// path is r as GoBGP's API path (IPv4: NEXT_HOP; IPv6: MP_REACH_NLRI,
// RFC 4760).
func path(r Route) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: r.Prefix.Addr().String(), PrefixLen: uint32(r.Prefix.Bits())})
	if err != nil {
		return nil, err
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	if err != nil {
		return nil, err
	}
	med, err := anypb.New(&api.MultiExitDiscAttribute{Med: r.MED})
	if err != nil {
		return nil, err
	}
	fam, nh := v4, "0.0.0.0" // unspecified: GoBGP puts the session's address
	if r.Prefix.Addr().Is6() {
		fam, nh = v6, "::"
	}
	if r.NextHop.IsValid() {
		nh = r.NextHop.String()
	}
	var hop *anypb.Any
	if fam == v4 {
		hop, err = anypb.New(&api.NextHopAttribute{NextHop: nh})
	} else {
		hop, err = anypb.New(&api.MpReachNLRIAttribute{Family: fam, NextHops: []string{nh}, Nlris: []*anypb.Any{nlri}})
	}
	if err != nil {
		return nil, err
	}
	return &api.Path{Family: fam, Nlri: nlri, Pattrs: []*anypb.Any{origin, hop, med}}, nil
}

// Announce adds routes to what this node announces (an announced prefix
// is replaced: a new MED or next hop).
func (s *Speaker) Announce(ctx context.Context, routes []Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, r := range routes {
		p, err := path(r)
		if err == nil {
			_, err = s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %v: %w", r.Prefix, err))
			continue
		}
		s.routes[r.Prefix] = r
	}
	return errors.Join(errs...)
}

// Withdraw takes prefixes out of what this node announces. It returns
// once GoBGP has queued the withdrawal (an UPDATE with the prefixes in
// WITHDRAWN ROUTES or MP_UNREACH_NLRI) on every established session.
func (s *Speaker) Withdraw(ctx context.Context, prefixes []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, pf := range prefixes {
		r, ok := s.routes[pf]
		if !ok {
			continue
		}
		p, err := path(r)
		if err == nil {
			err = s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p.Family, Path: p})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: withdraw %v: %w", pf, err))
			continue
		}
		delete(s.routes, pf)
	}
	return errors.Join(errs...)
}

// Announced are the prefixes announced now.
func (s *Speaker) Announced() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Prefix
	for p := range s.routes {
		out = append(out, p)
	}
	return out
}

// Session is one neighbour's session as GoBGP sees it.
type Session struct {
	Neighbor netip.Addr
	AS       uint32
	State    string // idle, connect, active, opensent, openconfirm, established
}

// Sessions are the neighbours' sessions.
func (s *Speaker) Sessions(ctx context.Context) ([]Session, error) {
	var out []Session
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		a, _ := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		out = append(out, Session{Neighbor: a, AS: p.GetConf().GetPeerAsn(), State: sessionState(p.GetState().GetSessionState())})
	})
	return out, err
}

func sessionState(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_IDLE:
		return "idle"
	case api.PeerState_CONNECT:
		return "connect"
	case api.PeerState_ACTIVE:
		return "active"
	case api.PeerState_OPENSENT:
		return "opensent"
	case api.PeerState_OPENCONFIRM:
		return "openconfirm"
	case api.PeerState_ESTABLISHED:
		return "established"
	}
	return "unknown"
}

// watch logs each session's ups and downs (one line per change).
func (s *Speaker) watch(ctx context.Context) {
	defer close(s.done)
	up := map[string]bool{} // neighbour -> established (GoBGP calls fn from one goroutine)
	err := s.srv.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
		pe := r.GetPeer()
		if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
			return
		}
		st := pe.GetPeer().GetState()
		nb, est := st.GetNeighborAddress(), st.GetSessionState() == api.PeerState_ESTABLISHED
		switch {
		case est && !up[nb]:
			s.log.Info("bgp: session established", "neighbor", nb, "as", st.GetPeerAsn())
		case !est && up[nb]:
			s.log.Warn("bgp: session down: this node's routes are gone from that router", "neighbor", nb, "state", sessionState(st.GetSessionState()))
		}
		up[nb] = est
	})
	if err != nil {
		s.log.Warn("bgp: session events not watched", "err", err)
		return
	}
	<-ctx.Done()
}

// Close withdraws everything (the sessions close with a NOTIFICATION
// Cease, RFC 4486) and stops the speaker.
func (s *Speaker) Close() {
	s.mu.Lock()
	if len(s.routes) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		for _, f := range []*api.Family{v4, v6} {
			if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: f}); err != nil {
				s.log.Warn("bgp: routes not withdrawn at stop", "err", err)
			}
		}
		cancel()
		clear(s.routes)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		s.log.Warn("bgp: stop", "err", err)
	}
	s.cancel()
	<-s.done
	s.srv.Stop()
}

// slogAdapter is GoBGP's logger on slog: its Info is our Debug (GoBGP
// logs each FSM step), Warn and Error stay.
type slogAdapter struct{ l *slog.Logger }

func attrs(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		if k == gobgplog.FieldFacility || k == "Topic" {
			continue
		}
		out = append(out, k, v)
	}
	return out
}

func (a slogAdapter) Panic(msg string, f gobgplog.Fields) { a.l.Error(msg, attrs(f)...); panic(msg) }
func (a slogAdapter) Fatal(msg string, f gobgplog.Fields) { a.l.Error(msg, attrs(f)...); panic(msg) }
func (a slogAdapter) Error(msg string, f gobgplog.Fields) { a.l.Error(msg, attrs(f)...) }
func (a slogAdapter) Warn(msg string, f gobgplog.Fields)  { a.l.Warn(msg, attrs(f)...) }
func (a slogAdapter) Info(msg string, f gobgplog.Fields)  { a.l.Debug(msg, attrs(f)...) }
func (a slogAdapter) Debug(msg string, f gobgplog.Fields) { a.l.Debug(msg, attrs(f)...) }
func (a slogAdapter) SetLevel(gobgplog.LogLevel)          {}
func (a slogAdapter) GetLevel() gobgplog.LogLevel         { return gobgplog.InfoLevel }
