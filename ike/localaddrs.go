package ike

import (
	"fmt"
	"net/netip"
)

// Locals returns the connection's local addresses: LocalAddrs, or
// LocalAddr alone, or none (any address the engine listens on).
func (c *Connection) Locals() []netip.Addr {
	if len(c.LocalAddrs) > 0 {
		return c.LocalAddrs
	}
	if c.LocalAddr.IsValid() {
		return []netip.Addr{c.LocalAddr}
	}
	return nil
}

// Remotes returns the peer's addresses: RemoteAddrs, or RemoteAddr alone,
// or none (any peer, as responder only).
func (c *Connection) Remotes() []netip.Addr {
	if len(c.RemoteAddrs) > 0 {
		return c.RemoteAddrs
	}
	if c.RemoteAddr.IsValid() {
		return []netip.Addr{c.RemoteAddr}
	}
	return nil
}

// acceptsLocal reports whether a message that arrived on local may belong
// to the connection: local is one of its addresses, or it names none.
func (c *Connection) acceptsLocal(local netip.Addr) bool {
	return anyOrIn(c.Locals(), local)
}

// acceptsRemote reports whether a message from remote may belong to the
// connection: remote is one of the peer's addresses, or it names none.
func (c *Connection) acceptsRemote(remote netip.Addr) bool {
	return anyOrIn(c.Remotes(), remote)
}

func anyOrIn(as []netip.Addr, a netip.Addr) bool {
	if len(as) == 0 {
		return true
	}
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// validateLocals checks the addresses: specific unicast ones, and, when
// both ends are known, a local address of some remote's family.
func (c *Connection) validateLocals() error {
	for _, as := range [][]netip.Addr{c.Locals(), c.Remotes()} {
		for _, a := range as {
			if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
				return fmt.Errorf("connection %s: address %v is not a unicast address", c.Name, a)
			}
		}
	}
	if len(c.Locals()) == 0 || len(c.Remotes()) == 0 {
		return nil
	}
	for _, r := range c.Remotes() {
		for _, l := range c.Locals() {
			if l.Is4() == r.Is4() {
				return nil
			}
		}
	}
	return fmt.Errorf("connection %s: no local address of a remote address's family (%v)", c.Name, c.Remotes())
}

// endpoints picks the addresses an initiator uses (strongSwan's semantics
// for local_addrs and remote_addrs): the first remote address, in order,
// with a local address of its family that reaches it, and the first such
// local address. When no pair reaches (no route yet), the first remote
// with a local address of its family and the first of those: the
// exchange's retransmissions go on, and a route that appears meanwhile
// carries them.
func (e *Engine) endpoints(c *Connection) (local, remote netip.Addr, err error) {
	var fl, fr netip.Addr
	for _, r := range c.Remotes() {
		for _, l := range c.Locals() {
			if l.Is4() != r.Is4() {
				continue
			}
			if e.reachable == nil || e.reachable(l, r) {
				return l, r, nil
			}
			if !fl.IsValid() {
				fl, fr = l, r
			}
		}
	}
	if !fl.IsValid() {
		return fl, fr, fmt.Errorf("connection %s has no local address of its remote addresses' families (%v)", c.Name, c.Remotes())
	}
	e.log.Warn("no local address reaches the peer; initiating from the first of its family", "connection", c.Name,
		"local", fl, "remote", fr)
	return fl, fr, nil
}
