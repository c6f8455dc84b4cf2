package ike

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/sad"
)

// TestLocalAddrsBothFamilies: a responder with local_addrs [127.0.0.2, ::1]
// serves an IPv4 and an IPv6 peer at once on one transport; an initiator
// with local_addrs [127.0.0.1, 127.0.0.3, ::1] takes, per connection, the
// first address of the remote's family that reaches it (127.0.0.1 does
// not, by the Reachable hook). Each IKE SA records the address it runs
// on, the responder answers from the address the request came to, and
// the Child SAs' outer addresses follow the IKE SA's family.
func TestLocalAddrsBothFamilies(t *testing.T) {
	lo4, lo4b, lo4c, lo6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"),
		netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("::1")
	ur, err := transport.ListenAddrs([]netip.Addr{lo4b, lo6}, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	defer ur.Close()
	// The initiator's ports differ from the responder's (::1 is both's).
	ui, err := transport.ListenAddrs([]netip.Addr{lo4, lo4c, lo6}, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	defer ui.Close()

	mk := func(name, remoteID string, locals []netip.Addr, remote netip.Addr, initiator bool) Connection {
		ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		c := cr
		if initiator {
			c = ci
		}
		c.Name, c.LocalAddr, c.LocalAddrs, c.RemoteAddr = name, netip.Addr{}, locals, remote
		if initiator {
			c.Local.ID = mustID(t, remoteID)
		} else {
			c.Remote.ID = mustID(t, remoteID)
		}
		return c
	}
	rLocals, iLocals := []netip.Addr{lo4b, lo6}, []netip.Addr{lo4, lo4c, lo6}
	rIKE, rNATT := ur.Ports()
	iIKE, iNATT := ui.Ports()
	logR, logI := &logBuffer{}, &logBuffer{}
	instR, instI := NewMemInstaller(), NewMemInstaller()
	r, err := New(Config{
		Connections:   []Connection{mk("v4", "v4.test", rLocals, netip.Addr{}, false), mk("v6", "v6.test", rLocals, netip.Addr{}, false)},
		RemoteIKEPort: iIKE, RemoteNATTPort: iNATT, Retransmit: Retransmit{Timeout: 100 * time.Millisecond, Tries: 3},
		Logger: slog.New(slog.NewTextHandler(logR, nil)),
	}, ur, instR)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var asked []netip.Addr
	i, err := New(Config{
		Connections:   []Connection{mk("v4", "v4.test", iLocals, lo4b, true), mk("v6", "v6.test", iLocals, lo6, true)},
		RemoteIKEPort: rIKE, RemoteNATTPort: rNATT, Retransmit: Retransmit{Timeout: 100 * time.Millisecond, Tries: 3},
		Logger: slog.New(slog.NewTextHandler(logI, nil)),
		Reachable: func(local, remote netip.Addr) bool {
			asked = append(asked, local) // the engine's goroutine only
			return local != lo4
		},
	}, ui, instI)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	defer func() {
		if t.Failed() {
			t.Logf("initiator:\n%s\nresponder:\n%s", logI.String(), logR.String())
		}
	}()
	for _, name := range []string{"v4", "v6"} {
		if err := i.Initiate(ctx(t), name); err != nil {
			t.Fatalf("initiate %s: %v", name, err)
		}
	}
	want := map[string][2]netip.Addr{"v4": {lo4c, lo4b}, "v6": {lo6, lo6}}
	waitFor(t, "two IKE SAs with a Child SA each on both ends", func() bool {
		return len(i.List()) == 2 && len(r.List()) == 2 && len(instI.Outbound()) == 2 && len(instR.Outbound()) == 2
	})
	for _, side := range []struct {
		e       *Engine
		inst    *MemInstaller
		crossed bool
	}{{i, instI, false}, {r, instR, true}} {
		for _, sa := range side.e.List() {
			w, ok := want[sa.Name]
			if !ok {
				t.Fatalf("unexpected IKE SA %+v", sa)
			}
			local, remote := w[0], w[1]
			if side.crossed {
				local, remote = remote, local
			}
			if sa.Local.Addr() != local || sa.Remote.Addr() != remote {
				t.Errorf("%s (initiator %v): IKE SA %v -> %v, want %v -> %v", sa.Name, sa.Initiator, sa.Local, sa.Remote, local, remote)
			}
		}
		for _, cfgs := range [][]sad.Config{side.inst.Outbound(), side.inst.Inbound()} {
			for _, c := range cfgs {
				if c.Local.Is4() != c.Remote.Is4() || (c.Local != lo4c && c.Local != lo4b && c.Local != lo6) {
					t.Errorf("Child SA %08x outer %v -> %v", c.SPI, c.Local, c.Remote)
				}
			}
		}
	}
	if len(asked) < 2 || asked[0] != lo4 || asked[1] != lo4c {
		t.Errorf("Reachable asked for %v, want 127.0.0.1 then 127.0.0.3", asked)
	}
}

// TestLocalsValidate: the local addresses must be unicast and include one
// of the remote's family; LocalAddr alone still works.
func TestLocalsValidate(t *testing.T) {
	ci, _ := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	for _, tc := range []struct {
		name   string
		locals []netip.Addr
		one    netip.Addr
		remote netip.Addr
		ok     bool
	}{
		{"local_addr alone", nil, addrI, addrR, true},
		{"both families", []netip.Addr{netip.MustParseAddr("2001:db8::1"), addrI}, netip.Addr{}, addrR, true},
		{"none of the remote's family", []netip.Addr{netip.MustParseAddr("2001:db8::1")}, netip.Addr{}, addrR, false},
		{"unspecified", []netip.Addr{addrI, netip.IPv4Unspecified()}, netip.Addr{}, addrR, false},
		{"any remote", []netip.Addr{netip.MustParseAddr("2001:db8::1")}, netip.Addr{}, netip.Addr{}, true},
	} {
		c := ci
		c.LocalAddrs, c.LocalAddr, c.RemoteAddr = tc.locals, tc.one, tc.remote
		if err := c.validateLocals(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestEndpoints: an initiator takes the first remote address, in order,
// that a local address of its family reaches, and the first such local
// address; with no route at all, the first pair of one family; with no
// family in common, an error. A responder accepts the peer from any of
// its remote addresses.
func TestEndpoints(t *testing.T) {
	a := netip.MustParseAddr
	v4a, v4b, v6a := a("192.0.2.1"), a("198.51.100.1"), a("2001:db8:f::1")
	r4, r6, r4b := a("192.0.2.2"), a("2001:db8:f::2"), a("203.0.113.2")
	routes := map[[2]netip.Addr]bool{{v4b, r4}: true, {v6a, r6}: true}
	for _, tc := range []struct {
		name            string
		locals, remotes []netip.Addr
		noRoutes        bool
		wantL, wantR    netip.Addr
		wantErr         bool
	}{
		{"first local of the family that reaches", []netip.Addr{v6a, v4a, v4b}, []netip.Addr{r4}, false, v4b, r4, false},
		{"first remote that is reached", []netip.Addr{v4a, v6a}, []netip.Addr{r4b, r6, r4}, false, v6a, r6, false},
		{"no route: first pair of a family", []netip.Addr{v6a, v4a}, []netip.Addr{r4, r6}, true, v4a, r4, false},
		{"no common family", []netip.Addr{v6a}, []netip.Addr{r4, r4b}, false, netip.Addr{}, netip.Addr{}, true},
	} {
		e := &Engine{log: slog.New(slog.DiscardHandler), reachable: func(l, r netip.Addr) bool { return !tc.noRoutes && routes[[2]netip.Addr{l, r}] }}
		c := &Connection{Name: tc.name, LocalAddrs: tc.locals, RemoteAddrs: tc.remotes}
		l, r, err := e.endpoints(c)
		if (err != nil) != tc.wantErr || l != tc.wantL || r != tc.wantR {
			t.Errorf("%s: %v -> %v (%v), want %v -> %v", tc.name, l, r, err, tc.wantL, tc.wantR)
		}
	}
	c := &Connection{RemoteAddrs: []netip.Addr{r4, r6}}
	if !c.acceptsRemote(r6) || c.acceptsRemote(r4b) || !(&Connection{}).acceptsRemote(r4b) {
		t.Error("acceptsRemote")
	}
}
