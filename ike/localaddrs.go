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

// acceptsLocal reports whether a message that arrived on local may belong
// to the connection: local is one of its addresses, or it names none.
func (c *Connection) acceptsLocal(local netip.Addr) bool {
	ls := c.Locals()
	if len(ls) == 0 {
		return true
	}
	for _, a := range ls {
		if a == local {
			return true
		}
	}
	return false
}

// validateLocals checks the local addresses: specific unicast ones, and one
// of the remote's family at least when the remote is known.
func (c *Connection) validateLocals() error {
	fam := false
	for _, a := range c.Locals() {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("connection %s: local address %v is not a unicast address", c.Name, a)
		}
		fam = fam || a.Is4() == c.RemoteAddr.Is4()
	}
	if c.RemoteAddr.IsValid() && len(c.Locals()) > 0 && !fam {
		return fmt.Errorf("connection %s: no local address of the remote %v's family", c.Name, c.RemoteAddr)
	}
	return nil
}

// localFor picks the address an initiator sends from (strongSwan's
// semantics for local_addrs): the first local address of the remote's
// family that reaches it. When none does (no route yet), the first of the
// family: the exchange's retransmissions go on, and a route that appears
// meanwhile carries them.
func (e *Engine) localFor(c *Connection) (netip.Addr, error) {
	var first netip.Addr
	for _, a := range c.Locals() {
		if a.Is4() != c.RemoteAddr.Is4() {
			continue
		}
		if e.reachable == nil || e.reachable(a, c.RemoteAddr) {
			return a, nil
		}
		if !first.IsValid() {
			first = a
		}
	}
	if !first.IsValid() {
		return netip.Addr{}, fmt.Errorf("connection %s has no local address of %v's family", c.Name, c.RemoteAddr)
	}
	e.log.Warn("no local address reaches the peer; initiating from the first of its family", "connection", c.Name,
		"local", first, "remote", c.RemoteAddr)
	return first, nil
}
