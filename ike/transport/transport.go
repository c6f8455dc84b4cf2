// Package transport carries IKEv2 messages over UDP: port 500, and port 4500
// where every IKE message starts with the four-octet zero non-ESP marker
// (RFC 7296 §2.23, RFC 3948 §2.2). Datagrams on 4500 that do not start with
// the marker are ESP or NAT keepalives (RFC 3948 §2.3) and are the data
// plane's business; this package drops them.
package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
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

// UDP is a Conn over two UDP sockets bound to one local address.
type UDP struct {
	addr      netip.Addr
	ike, natt *net.UDPConn
	ikePort   uint16
	nattPort  uint16
	ch        chan Packet
	dropped   atomic.Uint64 // datagrams dropped because the engine was behind
	initShed  atomic.Uint64 // of those, SA-starting requests shed at half a queue
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Listen opens the IKE and NAT-T sockets on addr. Ports 500 and 4500 are
// the standard ones; tests pass high ports. A zero port picks a free one.
// addr must be a specific address, not the unspecified one: NAT detection
// hashes the address a message arrived on.
func Listen(addr netip.Addr, ikePort, nattPort uint16) (*UDP, error) {
	if !addr.IsValid() || addr.IsUnspecified() {
		return nil, fmt.Errorf("ike transport: need a specific local address, got %v", addr)
	}
	u := &UDP{addr: addr, ch: make(chan Packet, 256)}
	var err error
	if u.ike, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, ikePort))); err != nil {
		return nil, fmt.Errorf("ike transport: %w", err)
	}
	if u.natt, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, nattPort))); err != nil {
		u.ike.Close()
		return nil, fmt.Errorf("ike transport: %w", err)
	}
	u.ikePort = u.ike.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	u.nattPort = u.natt.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	u.wg.Add(2)
	go u.read(u.ike, u.ikePort, false)
	go u.read(u.natt, u.nattPort, true)
	go func() { u.wg.Wait(); close(u.ch) }()
	return u, nil
}

func (u *UDP) read(c *net.UDPConn, port uint16, marker bool) {
	defer u.wg.Done()
	local := netip.AddrPortFrom(u.addr, port)
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

// Send implements Conn.
func (u *UDP) Send(p Packet) error {
	to := net.UDPAddrFromAddrPort(p.Remote)
	if p.Local.Port() == u.nattPort {
		b := make([]byte, 0, 4+len(p.Data))
		b = append(b, nonESPMarker[:]...)
		b = append(b, p.Data...)
		_, err := u.natt.WriteToUDP(b, to)
		return err
	}
	_, err := u.ike.WriteToUDP(p.Data, to)
	return err
}

// SendKeepalive implements KeepaliveSender; local's address is the one
// the Conn is bound to, so only its port matters, and it must be the NAT-T
// port: the mapping to keep open is the one ESP in UDP and IKE use.
func (u *UDP) SendKeepalive(local, remote netip.AddrPort) error {
	if local.Port() != u.nattPort {
		return fmt.Errorf("ike transport: keepalive from port %d, not the NAT-T port %d", local.Port(), u.nattPort)
	}
	_, err := u.natt.WriteToUDPAddrPort(keepalivePayload, remote)
	return err
}

// Close closes both sockets; Receive's channel closes once the readers end.
func (u *UDP) Close() error {
	var err error
	u.closeOnce.Do(func() {
		err = errors.Join(u.ike.Close(), u.natt.Close())
	})
	return err
}
