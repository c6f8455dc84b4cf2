package nic

import (
	"encoding/binary"
	"net/netip"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// Announcement frames: how a node that has just taken an address over
// tells its link, so that the neighbours' caches (and the switches'
// forwarding tables) point at its MAC at once instead of at the node that
// held the address before.

// GratuitousARP is the Ethernet frame of an ARP Announcement (RFC 5227
// §2.3; RFC 826 format) of the IPv4 address ip at mac: a broadcast ARP
// request whose sender and target protocol addresses are both ip and
// whose target hardware address is zero. Linux takes a request with
// sender = target for gratuitous and lets it override a cached address
// (arp_process, arp_is_garp) whatever its locktime.
func GratuitousARP(mac [6]byte, ip netip.Addr) []byte {
	a := ip.As4()
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x0806) // ARP
	binary.BigEndian.PutUint16(f[14:], 1)      // hardware: Ethernet
	binary.BigEndian.PutUint16(f[16:], 0x0800) // protocol: IPv4
	f[18], f[19] = 6, 4                        // address lengths
	binary.BigEndian.PutUint16(f[20:], 1)      // request
	copy(f[22:28], mac[:])
	copy(f[28:32], a[:])
	// f[32:38], the target hardware address, stays zero.
	copy(f[38:42], a[:])
	return f
}

// Neighbor Advertisement flags (RFC 4861 §4.4).
const (
	naRouter    = 0x80
	naSolicited = 0x40
	naOverride  = 0x20
)

// UnsolicitedNA is the Ethernet frame of an unsolicited Neighbor
// Advertisement (RFC 4861 §7.2.6) of the IPv6 address ip at mac, sent from
// ip to all nodes (ff02::1) with hop limit 255, the Override flag set so
// that a neighbour's cached address is replaced, Solicited clear, and the
// Target Link-Layer Address option. router sets the Router flag: a
// gateway forwards, and a host that sees an advertisement of its default
// router without it drops the router (RFC 4861 §7.2.5).
func UnsolicitedNA(mac [6]byte, ip netip.Addr, router bool) []byte {
	const icmpLen = 32 // type, code, checksum, flags+reserved, target, option
	src := ip.As16()
	dst := [16]byte{0xff, 0x02, 15: 0x01}
	f := make([]byte, 14+40+icmpLen)
	copy(f[0:6], []byte{0x33, 0x33, dst[12], dst[13], dst[14], dst[15]}) // RFC 2464 §7
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	h := f[14:54]
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], icmpLen)
	h[6], h[7] = 58, 255 // ICMPv6; RFC 4861 §7.1.2 drops anything below 255
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])
	m := f[54:]
	m[0] = 136 // Neighbor Advertisement
	m[4] = naOverride
	if router {
		m[4] |= naRouter
	}
	copy(m[8:24], src[:])
	m[24], m[25] = 2, 1 // Target Link-Layer Address, 8 octets
	copy(m[26:32], mac[:])
	binary.BigEndian.PutUint16(m[2:], packet.Checksum(m, packet.PseudoSum(src[:], dst[:], 58, icmpLen)))
	return f
}

// Announcement is the frame that announces ip at mac: a gratuitous ARP for
// IPv4, an unsolicited Neighbor Advertisement (Router flag set) for IPv6.
func Announcement(mac [6]byte, ip netip.Addr) []byte {
	ip = ip.Unmap()
	if ip.Is4() {
		return GratuitousARP(mac, ip)
	}
	return UnsolicitedNA(mac, ip, true)
}
