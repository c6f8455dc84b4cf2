package bgp

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/xdpsec/xdpsec/internal/config"
)

func TestMED(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	if a, b := MED(t0), MED(t0.Add(medUnit)); b >= a {
		t.Errorf("MED %d then %d: a later take must be lower", a, b)
	}
	if m := MED(medEpoch.Add(-time.Hour)); m != math.MaxUint32 {
		t.Errorf("before the epoch: %d", m)
	}
}

// router is a GoBGP speaker on 127.0.0.1 (a free port) that accepts
// node's session passively: the test's view of what the node announces.
func router(t *testing.T, nodeAS uint32) (*server.BgpServer, uint16) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := server.NewBgpServer(server.LoggerOption(slogAdapter{slog.New(slog.DiscardHandler)}))
	go r.Serve()
	t.Cleanup(r.Stop)
	ctx := context.Background()
	if err := r.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "10.0.0.254",
		ListenPort: int32(port), ListenAddresses: []string{"127.0.0.1"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	p := peer(config.BGPNeighbor{Address: netip.MustParseAddr("127.0.0.1"), AS: nodeAS, HoldTime: 3 * time.Second})
	p.Transport = &api.Transport{PassiveMode: true}
	if err := r.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
		t.Fatal(err)
	}
	return r, uint16(port)
}

type seen struct {
	prefix  string
	nextHop string
	med     uint32
}

// routes are the router's best paths of family f.
func routes(t *testing.T, r *server.BgpServer, f *api.Family) []seen {
	t.Helper()
	var out []seen
	err := r.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: f}, func(d *api.Destination) {
		for _, p := range d.Paths {
			s := seen{prefix: d.Prefix}
			for _, a := range p.Pattrs {
				m, err := a.UnmarshalNew()
				if err != nil {
					continue
				}
				switch x := m.(type) {
				case *api.NextHopAttribute:
					s.nextHop = x.NextHop
				case *api.MpReachNLRIAttribute:
					s.nextHop = x.NextHops[0]
				case *api.MultiExitDiscAttribute:
					s.med = x.Med
				}
			}
			out = append(out, s)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b seen) int {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	})
	return out
}

func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestSpeaker: a Speaker's session comes up with a router (GoBGP on
// loopback), its host routes arrive there with their next hop (self or
// configured) and MED, IPv6 ones by MP_REACH_NLRI, and a Withdraw takes
// them away; Close withdraws the rest.
func TestSpeaker(t *testing.T) {
	r, port := router(t, 65001)
	cfg := &config.BGP{AS: 65001, RouterID: netip.MustParseAddr("10.0.0.11"), HoldTime: 3 * time.Second,
		Neighbors: []config.BGPNeighbor{{Address: netip.MustParseAddr("127.0.0.1"), AS: 65000, HoldTime: 3 * time.Second, Port: port}}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !waitFor(10*time.Second, func() bool {
		ss, _ := s.Sessions(ctx)
		return len(ss) == 1 && ss[0].State == "established"
	}) {
		ss, _ := s.Sessions(ctx)
		t.Fatalf("session not established: %+v", ss)
	}
	err = s.Announce(ctx, []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), MED: 7},
		{Prefix: netip.MustParsePrefix("203.0.113.129/32"), NextHop: netip.MustParseAddr("198.18.3.11"), MED: 7},
		{Prefix: netip.MustParsePrefix("2001:db8:f::1/128"), NextHop: netip.MustParseAddr("2001:db8:3::11"), MED: 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	want4 := []seen{{"203.0.113.1/32", "127.0.0.1", 7}, {"203.0.113.129/32", "198.18.3.11", 7}}
	want6 := []seen{{"2001:db8:f::1/128", "2001:db8:3::11", 7}}
	if !waitFor(5*time.Second, func() bool {
		return slices.Equal(routes(t, r, v4), want4) && slices.Equal(routes(t, r, v6), want6)
	}) {
		t.Fatalf("router has %+v %+v, want %+v %+v", routes(t, r, v4), routes(t, r, v6), want4, want6)
	}
	if err := s.Withdraw(ctx, []netip.Prefix{netip.MustParsePrefix("203.0.113.1/32")}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return slices.Equal(routes(t, r, v4), want4[1:]) }) {
		t.Fatalf("after the withdrawal the router has %+v", routes(t, r, v4))
	}
	if got := s.Announced(); len(got) != 2 {
		t.Errorf("announced %v", got)
	}
	s.Close()
	if !waitFor(5*time.Second, func() bool { return len(routes(t, r, v4)) == 0 && len(routes(t, r, v6)) == 0 }) {
		t.Fatalf("after Close the router has %+v %+v", routes(t, r, v4), routes(t, r, v6))
	}
}
