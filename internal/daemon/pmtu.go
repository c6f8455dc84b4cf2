package daemon

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// The gateway's MTUs, kept off the data path: the WAN MTU is read from
// the interface at start (or taken from the configuration's mtu) and
// checked once a second, and the path MTU towards each peer is learned
// from the ICMP errors routers send back for our ESP (RFC 4301 §8.2: an
// SA's PMTU, aged as RFC 1191 §6.3 says). The kernel receives those
// errors (they are addressed to the gateway, which the XDP program passes
// to it); a raw ICMP socket per family gives the daemon a copy.

// wanMTU is the MTU the workers encapsulate for.
func (d *Daemon) wanMTU() int {
	if d.cfg.MTU > 0 {
		return d.cfg.MTU
	}
	return d.wanIf.MTU
}

// icmpSources are the LAN addresses the workers send ICMP errors from:
// the first global unicast address of each family.
func (d *Daemon) icmpSources() (v4, v6 netip.Addr) {
	addrs, err := d.lanIf.Addrs()
	if err != nil {
		d.log.Warn("lan addresses: oversized packets get no ICMP error", "interface", d.lanIf.Name, "err", err)
		return
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ad, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !ad.IsGlobalUnicast() {
			continue
		}
		ad = ad.Unmap()
		if ad.Is4() && !v4.IsValid() {
			v4 = ad
		} else if ad.Is6() && !v6.IsValid() {
			v6 = ad
		}
	}
	return
}

// refreshMTU follows the WAN interface's MTU when the configuration does
// not fix it.
func (d *Daemon) refreshMTU() {
	if d.cfg.MTU > 0 {
		return
	}
	ifc, err := net.InterfaceByIndex(d.wanIf.Index)
	if err != nil || int64(ifc.MTU) == d.curMTU.Load() {
		return
	}
	d.log.Info("WAN MTU changed", "interface", ifc.Name, "from", d.curMTU.Load(), "to", ifc.MTU)
	d.curMTU.Store(int64(ifc.MTU))
	for _, q := range d.queues {
		if q.w != nil {
			q.w.SetWANMTU(ifc.MTU)
		}
	}
}

// tooBig is what an ICMP "fragmentation needed" (RFC 792/1191) or
// "packet too big" (RFC 4443 §3.2) says about one of our ESP packets.
type tooBig struct {
	MTU      int
	Src, Dst netip.Addr // the quoted packet's: our address, the peer's
	SPI      uint32
	UDP      bool   // ESP in UDP (RFC 3948)
	DstPort  uint16 // its destination port
}

// parseTooBig reads an ICMP message (from its type byte; for IPv4 the
// socket has taken the IP header off) and reports a "too big" that quotes
// an ESP or ESP-in-UDP packet: enough of it to read the SPI.
func parseTooBig(b []byte, v6 bool) (r tooBig, ok bool) {
	if len(b) < 8 {
		return r, false
	}
	q := b[8:]
	var proto uint8
	var hl int
	if v6 {
		if b[0] != 2 || b[1] != 0 {
			return r, false
		}
		r.MTU = int(binary.BigEndian.Uint32(b[4:]))
		if len(q) < packet.IPv6Len || q[0]>>4 != 6 {
			return r, false
		}
		r.Src = netip.AddrFrom16([16]byte(q[8:24]))
		r.Dst = netip.AddrFrom16([16]byte(q[24:40]))
		proto, hl = q[6], packet.IPv6Len
	} else {
		if b[0] != 3 || b[1] != 4 {
			return r, false
		}
		r.MTU = int(binary.BigEndian.Uint16(b[6:]))
		if len(q) < packet.IPv4MinLen || q[0]>>4 != 4 {
			return r, false
		}
		hl = int(q[0]&0x0f) * 4
		if hl < packet.IPv4MinLen || binary.BigEndian.Uint16(q[6:])&0x1fff != 0 {
			return r, false // a later fragment quotes no SPI
		}
		r.Src = netip.AddrFrom4([4]byte(q[12:16]))
		r.Dst = netip.AddrFrom4([4]byte(q[16:20]))
		proto = q[9]
	}
	switch proto {
	case packet.ProtoESP:
	case packet.ProtoUDP:
		if len(q) < hl+packet.UDPLen {
			return r, false
		}
		r.UDP, r.DstPort = true, binary.BigEndian.Uint16(q[hl+2:])
		hl += packet.UDPLen
	default:
		return r, false
	}
	if len(q) < hl+4 || r.MTU == 0 {
		// RFC 792 routers quote only 8 bytes past the IP header, which for
		// ESP in UDP stops short of the SPI; a pre-RFC 1191 router says
		// MTU 0. Neither tells us which SA or how much.
		return r, false
	}
	r.SPI = binary.BigEndian.Uint32(q[hl:])
	return r, r.SPI != 0
}

// pmtuCounters count the ICMP "too big" reports the daemon read.
type pmtuCounters struct {
	reports, learned, unmatched, unusable atomic.Uint64
}

func (c *pmtuCounters) snapshot() map[string]uint64 {
	return map[string]uint64{
		"reports": c.reports.Load(), "learned": c.learned.Load(),
		"unmatched": c.unmatched.Load(), "unusable": c.unusable.Load(),
	}
}

// outboundSAs are the SAs the policies send with now, static and
// negotiated.
func (d *Daemon) outboundSAs() []*sad.SA {
	var out []*sad.SA
	for _, p := range d.spd.Policies() {
		if sa := p.SA.Load(); sa != nil {
			out = append(out, sa)
		}
	}
	return out
}

// learnPMTU applies a report to the outbound SA it quotes, matched by SPI
// and both outer addresses (and the UDP port for ESP in UDP), so a
// report about someone else's traffic changes nothing.
func (d *Daemon) learnPMTU(r tooBig, now time.Time) {
	d.pmtu.reports.Add(1)
	for _, sa := range d.outboundSAs() {
		if sa.SPI != r.SPI || sa.Local != r.Src || sa.Remote != r.Dst || sa.Encap.Enabled() != r.UDP ||
			r.UDP && sa.Encap.DstPort != r.DstPort {
			continue
		}
		if sa.LowerPathMTU(r.MTU, now) {
			d.pmtu.learned.Add(1)
			d.log.Info("path MTU lowered by ICMP", "sa", sa.Name, "spi", sa.SPI, "peer", sa.Remote, "mtu", sa.PathMTU())
		}
		return
	}
	d.pmtu.unmatched.Add(1)
}

// agePMTU forgets path MTUs learned too long ago.
func (d *Daemon) agePMTU(now time.Time) {
	for _, sa := range d.outboundSAs() {
		if sa.AgePathMTU(now) {
			d.log.Info("learned path MTU aged out", "sa", sa.Name, "spi", sa.SPI, "peer", sa.Remote)
		}
	}
}

// icmpListener reads ICMP errors from raw sockets until closed.
type icmpListener struct {
	conns []net.PacketConn
	wg    sync.WaitGroup
}

// listenICMP opens the raw sockets; a family the host lacks is skipped.
func (d *Daemon) listenICMP() *icmpListener {
	l := &icmpListener{}
	for _, fam := range []struct {
		network, addr string
		v6            bool
	}{{"ip4:icmp", "0.0.0.0", false}, {"ip6:ipv6-icmp", "::", true}} {
		c, err := net.ListenPacket(fam.network, fam.addr)
		if err != nil {
			d.log.Warn("no path MTU discovery from ICMP", "network", fam.network, "err", err)
			continue
		}
		if err := onlyTooBig(c, fam.v6); err != nil {
			d.log.Warn("ICMP type filter (every ICMP message will be read)", "network", fam.network, "err", err)
		}
		l.conns = append(l.conns, c)
		l.wg.Add(1)
		go func(c net.PacketConn, v6 bool) {
			defer l.wg.Done()
			buf := make([]byte, 1500)
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if n < 2 || (v6 && buf[0] != 2) || (!v6 && buf[0] != 3) {
					continue // not a "too big": the common case, not counted
				}
				if r, ok := parseTooBig(buf[:n], v6); ok {
					d.learnPMTU(r, time.Now())
				} else if v6 || buf[1] == 4 {
					d.pmtu.unusable.Add(1)
				}
			}
		}(c, fam.v6)
	}
	return l
}

// onlyTooBig has the kernel pass the raw socket nothing but
// "destination unreachable" (IPv4: its "fragmentation needed" is a code of
// it) or "packet too big" (IPv6), so echo, neighbour discovery and ICMP
// floods towards the gateway cost the daemon nothing (Linux's ICMP_FILTER,
// RFC 3542 §3.2's ICMP6_FILTER).
func onlyTooBig(c net.PacketConn, v6 bool) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("not a raw socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			var f unix.ICMPv6Filter
			for i := range f.Data {
				f.Data[i] = ^uint32(0) // a set bit blocks its type
			}
			f.Data[0] &^= 1 << 2 // packet too big
			serr = unix.SetsockoptICMPv6Filter(int(fd), unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &f)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_RAW, unix.ICMP_FILTER, int(^uint32(1<<3)))
	})
	if err != nil {
		return err
	}
	return serr
}

func (l *icmpListener) close() {
	if l == nil {
		return
	}
	for _, c := range l.conns {
		c.Close()
	}
	l.wg.Wait()
}
