package config

import (
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxAddrList bounds a connection's local_addrs and remote_addrs.
const maxAddrList = 16

// addrList reads local_addrs or remote_addrs: a list of addresses, or one
// string of them separated by commas (strongSwan's form), IPv4 and IPv6
// mixed. Each must be a specific unicast address: the daemon binds a
// socket pair to each local one, so strongSwan's %any is refused there
// with what to write instead; for the remote, %any alone means any peer
// (as an absent remote_addr: responder only) and returns nil.
func (d *decoder) addrList(n *yaml.Node, field string, anyOK bool) []netip.Addr {
	items := d.list(n, field, "addresses", maxAddrList)
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	anyAt := -1
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := d.scalar(it, f)
		if !ok {
			continue
		}
		for _, w := range strings.Split(s, ",") {
			w = strings.TrimSpace(w)
			if w == "%any" && anyOK {
				anyAt = i
				continue
			}
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
	if anyAt >= 0 && len(out) > 0 {
		d.errf(items[anyAt], fmt.Sprintf("%s[%d]", field, anyAt), "%%any with addresses: give the addresses, or %%any alone for any peer")
		return nil
	}
	if len(items) == 0 {
		d.errf(n, field, "empty: give at least one address")
		return nil
	}
	if len(out) > maxAddrList {
		d.errf(n, field, "more than %d addresses", maxAddrList)
		return nil
	}
	return out
}

// checkLocalAddrs applies the rules of local_addr/local_addrs and
// remote_addr/remote_addrs: one form of each, a local address of some
// remote address's family, RemoteAddr the first remote address, and
// LocalAddr the address the connection's default identity and
// single-address users take (the first local address of the first remote
// address's family it has, else the first).
func (d *decoder) checkLocalAddrs(n *yaml.Node, path string, c *Connection, one, many, remotes *yaml.Node) {
	if remotes != nil {
		if c.RemoteAddr.IsValid() {
			d.errf(remotes, path+".remote_addrs", "give remote_addr or remote_addrs, not both")
			return
		}
		if len(c.RemoteAddrs) > 0 {
			c.RemoteAddr = c.RemoteAddrs[0]
		}
	}
	switch {
	case one != nil && many != nil:
		d.errf(many, path+".local_addrs", "give local_addr or local_addrs, not both")
		return
	case many != nil:
		if len(c.LocalAddrs) == 0 {
			return // reported
		}
		c.LocalAddr = c.LocalAddrs[0]
	case one == nil:
		d.errf(n, path+".local_addr", "required (the gateway's WAN address for this peer; local_addrs for several)")
		return
	}
	if len(c.Remotes()) == 0 || !c.LocalAddr.IsValid() {
		return
	}
	for _, r := range c.Remotes() {
		for _, l := range c.Locals() {
			if l.Is4() == r.Is4() {
				c.LocalAddr = l
				return
			}
		}
	}
	switch {
	case many != nil:
		d.errf(many, path+".local_addrs", "no address of the remote address's family (%s)", c.RemoteAddr)
	case remotes != nil:
		d.errf(remotes, path+".remote_addrs", "no address of local_addr %s's family", c.LocalAddr)
	default:
		d.errf(n, path+".remote_addr", "local_addr and remote_addr are of different address families")
	}
}
