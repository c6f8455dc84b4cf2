package config

import (
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxLocalAddrs bounds a connection's local_addrs.
const maxLocalAddrs = 16

// localAddrs reads local_addrs: a list of addresses, or one string of them
// separated by commas (strongSwan's form), IPv4 and IPv6 mixed. Each must
// be a specific unicast address: the daemon binds a socket pair to each,
// so strongSwan's %any (a wildcard) is refused with what to write instead.
func (d *decoder) localAddrs(n *yaml.Node, field string) []netip.Addr {
	items := d.list(n, field, "addresses", maxLocalAddrs)
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := d.scalar(it, f)
		if !ok {
			continue
		}
		for _, w := range strings.Split(s, ",") {
			w = strings.TrimSpace(w)
			if strings.HasPrefix(w, "%any") {
				d.errf(it, f, "%q: xdpsec binds each local address, list them (e.g. [192.0.2.1, 2001:db8::1])", w)
				continue
			}
			a, err := netip.ParseAddr(w)
			if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
				d.errf(it, f, "%q is not a unicast address", w)
				continue
			}
			if seen[a] {
				d.errf(it, f, "%s given twice", a)
				continue
			}
			seen[a] = true
			out = append(out, a)
		}
	}
	if len(out) > maxLocalAddrs {
		d.errf(n, field, "more than %d addresses", maxLocalAddrs)
		return nil
	}
	return out
}

// checkLocalAddrs applies the rules of local_addr and local_addrs: one of
// them, a local address of the remote's family, and LocalAddr set to the
// address the connection's default identity and single-address users
// take (the first of the remote's family, else the first).
func (d *decoder) checkLocalAddrs(n *yaml.Node, path string, c *Connection, one, many *yaml.Node) {
	switch {
	case one != nil && many != nil:
		d.errf(many, path+".local_addrs", "give local_addr or local_addrs, not both")
		return
	case many != nil:
		if len(c.LocalAddrs) == 0 {
			return // reported
		}
		c.LocalAddr = c.LocalAddrs[0]
		if c.RemoteAddr.IsValid() {
			for _, a := range c.LocalAddrs {
				if a.Is4() == c.RemoteAddr.Is4() {
					c.LocalAddr = a
					break
				}
			}
		}
	case one == nil:
		d.errf(n, path+".local_addr", "required (the gateway's WAN address for this peer; local_addrs for several)")
		return
	}
	if c.RemoteAddr.IsValid() && c.LocalAddr.IsValid() && c.LocalAddr.Is4() != c.RemoteAddr.Is4() {
		if many != nil {
			d.errf(many, path+".local_addrs", "no address of remote_addr %s's family", c.RemoteAddr)
		} else {
			d.errf(n, path+".remote_addr", "local_addr and remote_addr are of different address families")
		}
	}
}
