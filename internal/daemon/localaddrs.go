package daemon

import (
	"net"
	"net/netip"
	"slices"

	"github.com/xdpsec/xdpsec/ike"
)

// ikeLocalAddrs is the union of the connections' local addresses, in the
// order they first appear: the IKE transport binds a socket pair to each.
// An address the machine does not have is warned about, not refused: like
// strongSwan, which loads local_addrs it cannot find and uses them once
// they appear, the transport binds it anyway (IP_FREEBIND) so a floating
// or later-configured address (VRRP, DHCP, SLAAC) serves when it comes up.
func (d *Daemon) ikeLocalAddrs(conns []ike.Connection) []netip.Addr {
	var out []netip.Addr
	for i := range conns {
		for _, a := range conns[i].Locals() {
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	have := d.hostAddrs()
	for _, a := range out {
		if !slices.Contains(have, a) {
			d.log.Warn("local address is not on this machine: IKE listens on it anyway and serves once it is configured",
				"address", a)
		}
	}
	return out
}

// reachable says whether the kernel routes remote from local: connect(2)
// on a UDP socket bound to local looks the route up and sends nothing. A
// local address the machine lacks fails the bind. Called once per
// initiation, never per packet.
func reachable(local, remote netip.Addr) bool {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)),
		net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote, 500)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}
