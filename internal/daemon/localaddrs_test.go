package daemon

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ike"
)

// TestIKELocalAddrs: the transport listens on the union of every
// connection's local addresses (local_addr and local_addrs alike), each
// once, in order; an address the machine lacks is warned about by name.
func TestIKELocalAddrs(t *testing.T) {
	var buf bytes.Buffer
	d := &Daemon{log: slog.New(slog.NewTextHandler(&buf, nil))}
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	conns := []ike.Connection{
		{Name: "v4", LocalAddr: a("127.0.0.1")},
		{Name: "both", LocalAddr: a("127.0.0.1"), LocalAddrs: []netip.Addr{a("::1"), a("127.0.0.1")}},
		{Name: "absent", LocalAddrs: []netip.Addr{a("192.0.2.199")}},
	}
	got := d.ikeLocalAddrs(conns)
	want := []netip.Addr{a("127.0.0.1"), a("::1"), a("192.0.2.199")}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	log := buf.String()
	if !strings.Contains(log, "address=192.0.2.199") || strings.Count(log, "not on this machine") != 1 {
		t.Errorf("warnings:\n%s", log)
	}
}

// TestReachable: a route from the source decides; a source the machine
// lacks cannot reach anything.
func TestReachable(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	if !reachable(lo, lo) {
		t.Skip("loopback not routable here")
	}
	if reachable(netip.MustParseAddr("192.0.2.199"), lo) {
		t.Error("an address the machine lacks reaches loopback")
	}
}
