package nic

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AddAddr puts p (an address with its prefix length) on the interface
// ifindex, in the caller's network namespace; already there is no error,
// and its lifetime starts again. An IPv6 address skips duplicate address
// detection (IFA_F_NODAD): an address that moves between nodes is usable
// at once, not after DAD's second, and its owner is decided elsewhere (a
// cluster's election). With a lifetime (whole seconds, rounded up; 0:
// forever) the kernel removes the address by itself unless it is added
// again before then: an address outlives its owner's process that long.
func AddAddr(ifindex int, p netip.Prefix, lifetime time.Duration) error {
	a := nlAddr(p)
	if lifetime > 0 {
		secs := int((lifetime + time.Second - 1) / time.Second)
		a.ValidLft, a.PreferedLft = secs, secs
	}
	if err := netlink.AddrReplace(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, a); err != nil {
		return fmt.Errorf("add %v to interface %d: %w", p, ifindex, err)
	}
	return nil
}

// DelAddr takes p off the interface ifindex; not there is no error.
func DelAddr(ifindex int, p netip.Prefix) error {
	err := netlink.AddrDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, nlAddr(p))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %v from interface %d: %w", p, ifindex, err)
	}
	return nil
}

// HasAddr reports whether the interface ifindex holds p's address.
func HasAddr(ifindex int, p netip.Prefix) (bool, error) {
	fam := netlink.FAMILY_V4
	if p.Addr().Unmap().Is6() {
		fam = netlink.FAMILY_V6
	}
	as, err := netlink.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}, fam)
	if err != nil {
		return false, err
	}
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == p.Addr().Unmap() {
			return true, nil
		}
	}
	return false, nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	ip := p.Addr().Unmap()
	a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(p.Bits(), ip.BitLen())}}
	if ip.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// Announce sends the announcement frames (Announcement) of ips at mac out
// of the interface ifindex through an AF_PACKET socket of its own, in the
// caller's network namespace: no ARP or NDP of the kernel's is involved,
// and nothing outside the process runs.
func Announce(ifindex int, mac [6]byte, ips []netip.Addr) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: receives nothing
	if err != nil {
		return fmt.Errorf("announce: packet socket: %w", err)
	}
	defer unix.Close(fd)
	var errs []error
	for _, ip := range ips {
		f := Announcement(mac, ip)
		sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6,
			Protocol: uint16(f[12]) | uint16(f[13])<<8} // the EtherType, in network order as sll_protocol wants
		copy(sa.Addr[:], f[0:6])
		if err := unix.Sendto(fd, f, 0, sa); err != nil {
			errs = append(errs, fmt.Errorf("announce %v on interface %d: %w", ip, ifindex, err))
		}
	}
	return errors.Join(errs...)
}
