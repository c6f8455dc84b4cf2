package swanctl

import (
	"net/netip"
	"strings"
	"testing"
)

// TestImportLocalAddrs: every address of local_addrs and remote_addrs is
// carried over (both families), a host name beside them is a comment with its line, the
// identity and `dynamic` selectors take the address of the remote's
// family, and the result loads as an xdpsec configuration.
func TestImportLocalAddrs(t *testing.T) {
	const conf = `connections {
	dual {
		local_addrs = 192.0.2.1, 2001:db8:f::1, gw.example.org, 192.0.2.1
		remote_addrs = 2001:db8:f::2, 192.0.2.2, peer.example.org
		local { auth = psk }
		remote { auth = psk
			id = gw-b.lab }
		children {
			net {
				local_ts = dynamic
				remote_ts = 2001:db8:b::/64
			}
		}
	}
}
secrets { ike { secret = 0123456789abcdef0123 } }
`
	res, cfg := importDir(t, t.TempDir(), conf)
	y := string(res.YAML)
	for _, want := range []string{
		"local_addrs: [192.0.2.1, 2001:db8:f::1]",
		"swanctl.conf:3: local_addrs = 192.0.2.1, 2001:db8:f::1, gw.example.org, 192.0.2.1: not carried over: xdpsec binds addresses (192.0.2.1, 2001:db8:f::1), not names, subnets, ranges or %any (gw.example.org)",
		"local_ts: [2001:db8:f::1/128]",
		"remote_addrs: [2001:db8:f::2, 192.0.2.2]",
		"swanctl.conf:4: remote_addrs = 2001:db8:f::2, 192.0.2.2, peer.example.org: not carried over: xdpsec takes remote addresses (2001:db8:f::2, 192.0.2.2), not names, subnets, ranges or %any (peer.example.org)",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("output lacks %q:\n%s", want, y)
		}
	}
	c := cfg.IKE.Connections[0]
	if len(c.RemoteAddrs) != 2 || c.RemoteAddr != netip.MustParseAddr("2001:db8:f::2") {
		t.Errorf("loaded: remote_addrs %v, remote_addr %v", c.RemoteAddrs, c.RemoteAddr)
	}
	if len(c.LocalAddrs) != 2 || c.LocalAddrs[1] != netip.MustParseAddr("2001:db8:f::1") || c.LocalAddr != c.LocalAddrs[1] ||
		c.Local.ID.String() != "2001:db8:f::1" {
		t.Errorf("loaded: local_addrs %v, local_addr %v, id %v", c.LocalAddrs, c.LocalAddr, c.Local.ID)
	}
	// One address stays local_addr, as before.
	res, _ = importDir(t, t.TempDir(), strings.Replace(conf, "192.0.2.1, 2001:db8:f::1, gw.example.org, 192.0.2.1", "2001:db8:f::1", 1))
	if y := string(res.YAML); !strings.Contains(y, "local_addr: 2001:db8:f::1\n") || strings.Contains(y, "local_addrs") {
		t.Errorf("one address:\n%s", y)
	}
}
