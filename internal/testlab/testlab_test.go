package testlab

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestUnhex(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"00 01\n\tff", "\x00\x01\xff"},
		{"0a|0B | 0c", "\x0a\x0b\x0c"},
		{"", ""},
	} {
		if got := Unhex(t, tc.in); !bytes.Equal(got, []byte(tc.want)) {
			t.Errorf("Unhex(%q) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestTag(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tag := Tag()
		if len(tag) != 6 || strings.Trim(tag, "0123456789abcdef") != "" {
			t.Fatalf("Tag() = %q, want six hex digits", tag)
		}
		seen[tag] = true
	}
	if len(seen) < 99 {
		t.Errorf("100 tags, only %d different", len(seen))
	}
}

// TestVeth builds two namespaces joined by a veth pair with static
// neighbours, pings across it, and checks Do ran in the namespace and
// brought its thread back. Root.
func TestVeth(t *testing.T) {
	RequireRoot(t, "network namespaces", "ip", "ethtool", "ping")
	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tag := Tag()
	a := &End{NS: NewNetns(t, "tl"+tag+"a", NoIPv6|LoUp), Name: "tl" + tag + "a0",
		MAC: net.HardwareAddr{2, 'T', 'L', 0, 0, 0xa}, Addr: netip.MustParsePrefix("198.18.0.1/24"), MTU: 1400}
	b := &End{NS: NewNetns(t, "tl"+tag+"b", NoIPv6|LoUp), Name: "tl" + tag + "b0",
		MAC: net.HardwareAddr{2, 'T', 'L', 0, 0, 0xb}, Addr: netip.MustParsePrefix("198.18.0.2/24")}
	Veth(t, a, b, StaticNeigh|TxOff)
	if a.Ifindex == 0 || b.Ifindex == 0 {
		t.Fatalf("ifindexes %d, %d", a.Ifindex, b.Ifindex)
	}
	if out := a.NS.IP(t, "link", "show", a.Name); !strings.Contains(out, "mtu 1400") || !strings.Contains(out, a.MAC.String()) {
		t.Errorf("%s: %s", a.Name, out)
	}
	if out := b.NS.IP(t, "neigh", "show", "dev", b.Name); !strings.Contains(out, "198.18.0.1 lladdr "+a.MAC.String()+" PERMANENT") {
		t.Errorf("%s's neighbours: %s", b.Name, out)
	}
	b.NS.Route(t, "192.0.2.0/24", "via", "198.18.0.1")
	if out := b.NS.IP(t, "route", "show", "192.0.2.0/24"); !strings.Contains(out, "via 198.18.0.1") {
		t.Errorf("route: %q", out)
	}
	a.NS.Run(t, "ping", "-c", "1", "-W", "2", "198.18.0.2")
	var inside string
	if err := b.NS.Do(func() (err error) {
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var here string
	a.NS.InTest(t, func() { here, _ = os.Readlink("/proc/thread-self/ns/net") })
	after, _ := os.Readlink("/proc/thread-self/ns/net")
	if inside == self || here == self || inside == here || after != self {
		t.Errorf("namespaces: test %s, Do in b %s, InTest in a %s, after %s", self, inside, here, after)
	}
}
