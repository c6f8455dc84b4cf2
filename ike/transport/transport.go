// Package transport carries IKEv2 messages over UDP: port 500, and port 4500
// where every IKE message starts with the four-octet zero non-ESP marker
// (RFC 7296 §2.23, RFC 3948 §2.2). Datagrams on 4500 that do not start with
// the marker are ESP or NAT keepalives (RFC 3948 §2.3) and are the data
// plane's business; this package drops them.
package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Packet is one IKE message with the addresses it travelled between. Local's
// port says whether it came (or goes) over the IKE port or the NAT-T port.
type Packet struct {
	Data          []byte // the IKE message, without the non-ESP marker
	Local, Remote netip.AddrPort
}

// Conn sends and receives IKE messages.
type Conn interface {
	// Receive returns the channel on which received packets arrive; it is
	// closed when the Conn is closed.
	Receive() <-chan Packet
	// Send sends p.Data from p.Local to p.Remote, adding the non-ESP marker
	// when p.Local's port is the NAT-T port.
	Send(p Packet) error
	// Ports returns the IKE and NAT-T ports this Conn listens on.
	Ports() (ike, natt uint16)
	Close() error
}

// KeepaliveSender is implemented by Conns that can send NAT-T keepalives:
// the one-octet 0xFF payload in a UDP datagram from the NAT-T port (RFC 3948
// §2.3), which a NAT in front of us takes as traffic on the mapping. It is
// not an IKE message, so it goes out without the non-ESP marker.
type KeepaliveSender interface {
	SendKeepalive(local, remote netip.AddrPort) error
}

// keepalivePayload is the NAT-keepalive packet's only octet.
var keepalivePayload = []byte{0xff}

// MaxMessage bounds a received datagram. RFC 7296 §2 only asks for 1280
// octets; certificate-bearing IKE_AUTH messages can be several kilobytes.
const MaxMessage = 65535

// nonESPMarker is the zero SPI that tells IKE from ESP on port 4500.
var nonESPMarker = [4]byte{}

// UDP is a Conn over a pair of UDP sockets (IKE port, NAT-T port) per
// local address. Each socket is bound to its address, not the wildcard: a
// datagram's destination is then known from the socket it arrived on (NAT
// detection hashes it, RFC 7296 §2.23) and a reply leaves from the address
// the request came to, with no IP_PKTINFO ancillary data on either path.
type UDP struct {
	// mu guards socks, which AddAddr and RemoveAddr change while the
	// daemon runs (live reload); senders read it per IKE message.
	mu        sync.RWMutex
	closed    bool
	socks     []boundPair
	ikePort   uint16
	nattPort  uint16
	ch        chan Packet
	dropped   atomic.Uint64 // datagrams dropped because the engine was behind
	initShed  atomic.Uint64 // of those, SA-starting requests shed at half a queue
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// boundPair is the IKE and NAT-T socket of one local address.
type boundPair struct {
	addr      netip.Addr
	ike, natt *net.UDPConn
}

// Listen opens the IKE and NAT-T sockets on addr. Ports 500 and 4500 are
// the standard ones; tests pass high ports. A zero port picks a free one.
// addr must be a specific address, not the unspecified one: NAT detection
// hashes the address a message arrived on.
func Listen(addr netip.Addr, ikePort, nattPort uint16) (*UDP, error) {
	return ListenAddrs([]netip.Addr{addr}, ikePort, nattPort)
}

// ListenAddrs opens an IKE and a NAT-T socket on each of addrs (IPv4 and
// IPv6 alike), all on the same two ports: a zero port is picked free on the
// first address and taken on the others. Each socket is bound with
// IP_FREEBIND, so an address the machine does not (yet) have is accepted,
// as strongSwan accepts local_addrs it cannot find: its messages flow once
// the address is configured. Packets carry the address they arrived on
// in Local; Send sends from p.Local's address.
func ListenAddrs(addrs []netip.Addr, ikePort, nattPort uint16) (*UDP, error) {
	if len(addrs) == 0 {
		return nil, errors.New("ike transport: no local address")
	}
	u := &UDP{ch: make(chan Packet, 256), ikePort: ikePort, nattPort: nattPort}
	seen := map[netip.Addr]bool{}
	for _, addr := range addrs {
		addr = addr.Unmap()
		if !addr.IsValid() || addr.IsUnspecified() {
			u.closeAll()
			return nil, fmt.Errorf("ike transport: need a specific local address, got %v", addr)
		}
		if seen[addr] {
			continue
		}
		seen[addr] = true
		b := boundPair{addr: addr}
		var err error
		if b.ike, err = listenFree(addr, u.ikePort); err != nil {
			u.closeAll()
			return nil, fmt.Errorf("ike transport: %w", err)
		}
		if b.natt, err = listenFree(addr, u.nattPort); err != nil {
			b.ike.Close()
			u.closeAll()
			return nil, fmt.Errorf("ike transport: %w", err)
		}
		u.ikePort = b.ike.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		u.nattPort = b.natt.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		u.socks = append(u.socks, b)
	}
	for _, b := range u.socks {
		u.wg.Add(2)
		go u.read(b.ike, netip.AddrPortFrom(b.addr, u.ikePort), false)
		go u.read(b.natt, netip.AddrPortFrom(b.addr, u.nattPort), true)
	}
	u.wg.Add(1) // held until Close: AddAddr may start readers later
	go func() { u.wg.Wait(); close(u.ch) }()
	return u, nil
}

// listenFree binds a UDP socket to addr:port with IP_FREEBIND (or its IPv6
// twin), so binding does not depend on the address being up yet.
func listenFree(addr netip.Addr, port uint16) (*net.UDPConn, error) {
	network := "udp4"
	if addr.Is6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if addr.Is6() {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("freebind: %w", serr)
		}
		return nil
	}}
	pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(addr, port).String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// Addrs returns the local addresses the Conn listens on.
func (u *UDP) Addrs() []netip.Addr {
	u.mu.RLock()
	defer u.mu.RUnlock()
	as := make([]netip.Addr, len(u.socks))
	for i, b := range u.socks {
		as[i] = b.addr
	}
	return as
}

// pair returns the sockets bound to a.
func (u *UDP) pair(a netip.Addr) (*boundPair, error) {
	a = a.Unmap()
	u.mu.RLock()
	defer u.mu.RUnlock()
	for i := range u.socks {
		if u.socks[i].addr == a {
			b := u.socks[i]
			return &b, nil
		}
	}
	return nil, fmt.Errorf("ike transport: not listening on %v", a)
}

func (u *UDP) read(c *net.UDPConn, local netip.AddrPort, marker bool) {
	defer u.wg.Done()
	buf := make([]byte, MaxMessage)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		b := buf[:n]
		if marker {
			if n < 4 || [4]byte(b[:4]) != nonESPMarker {
				continue // ESP in UDP or a keepalive
			}
			b = b[4:]
		}
		if len(b) >= 16 && binary.BigEndian.Uint64(b[8:16]) == 0 && len(u.ch) >= cap(u.ch)/2 {
			// A request that starts an IKE SA (responder SPI zero), with
			// the queue half full: those may take only half of it, so a
			// flood of spoofed IKE_SA_INITs (on either port) cannot crowd
			// out the messages of established SAs (IKE_AUTH, rekeys, DPD).
			u.dropped.Add(1)
			u.initShed.Add(1)
			continue
		}
		p := Packet{Data: append([]byte(nil), b...), Local: local, Remote: netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}
		select {
		case u.ch <- p:
		default:
			// The engine is behind: drop rather than queue without bound;
			// the peer retransmits.
			u.dropped.Add(1)
		}
	}
}

// Dropped returns how many received datagrams were dropped because the
// reader of Receive was behind.
func (u *UDP) Dropped() uint64 { return u.dropped.Load() }

// InitShed returns how many of the dropped datagrams were requests that
// start an IKE SA, shed once the queue was half full.
func (u *UDP) InitShed() uint64 { return u.initShed.Load() }

// Receive implements Conn.
func (u *UDP) Receive() <-chan Packet { return u.ch }

// Ports implements Conn.
func (u *UDP) Ports() (ike, natt uint16) { return u.ikePort, u.nattPort }

// Send implements Conn: it sends from p.Local's address, which must be one
// the Conn listens on (a reply goes out from the address its request came
// to, the one its IKE SA records).
func (u *UDP) Send(p Packet) error {
	b, err := u.pair(p.Local.Addr())
	if err != nil {
		return err
	}
	to := net.UDPAddrFromAddrPort(p.Remote)
	if p.Local.Port() == u.nattPort {
		m := make([]byte, 0, 4+len(p.Data))
		m = append(m, nonESPMarker[:]...)
		m = append(m, p.Data...)
		_, err := b.natt.WriteToUDP(m, to)
		return err
	}
	_, err = b.ike.WriteToUDP(p.Data, to)
	return err
}

// SendKeepalive implements KeepaliveSender; local's port must be the NAT-T
// port: the mapping to keep open is the one ESP in UDP and IKE use.
func (u *UDP) SendKeepalive(local, remote netip.AddrPort) error {
	if local.Port() != u.nattPort {
		return fmt.Errorf("ike transport: keepalive from port %d, not the NAT-T port %d", local.Port(), u.nattPort)
	}
	b, err := u.pair(local.Addr())
	if err != nil {
		return err
	}
	_, err = b.natt.WriteToUDPAddrPort(keepalivePayload, remote)
	return err
}

// Close closes the sockets; Receive's channel closes once the readers end.
func (u *UDP) Close() error {
	var err error
	u.closeOnce.Do(func() {
		u.mu.Lock()
		u.closed = true
		err = u.closeAll()
		u.mu.Unlock()
		u.wg.Done() // ListenAddrs' hold
	})
	return err
}

// AddAddr opens the IKE and NAT-T sockets on one more local address, on
// the Conn's ports (live reload of local_addrs). An address it listens
// on already is no error.
func (u *UDP) AddAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() {
		return fmt.Errorf("ike transport: need a specific local address, got %v", addr)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return errors.New("ike transport: closed")
	}
	for _, b := range u.socks {
		if b.addr == addr {
			return nil
		}
	}
	b := boundPair{addr: addr}
	var err error
	if b.ike, err = listenFree(addr, u.ikePort); err != nil {
		return fmt.Errorf("ike transport: %w", err)
	}
	if b.natt, err = listenFree(addr, u.nattPort); err != nil {
		b.ike.Close()
		return fmt.Errorf("ike transport: %w", err)
	}
	u.socks = append(u.socks, b)
	u.wg.Add(2)
	go u.read(b.ike, netip.AddrPortFrom(addr, u.ikePort), false)
	go u.read(b.natt, netip.AddrPortFrom(addr, u.nattPort), true)
	return nil
}

// RemoveAddr closes the sockets of one local address; messages sent
// from it fail from now on.
func (u *UDP) RemoveAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i, b := range u.socks {
		if b.addr == addr {
			u.socks = append(u.socks[:i:i], u.socks[i+1:]...)
			return errors.Join(b.ike.Close(), b.natt.Close())
		}
	}
	return fmt.Errorf("ike transport: not listening on %v", addr)
}

func (u *UDP) closeAll() error {
	var errs []error
	for _, b := range u.socks {
		errs = append(errs, b.ike.Close(), b.natt.Close())
	}
	return errors.Join(errs...)
}
