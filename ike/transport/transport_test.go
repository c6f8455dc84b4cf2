package transport

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// pair opens the transport on loopback and a peer socket to talk to it;
// both close with the test.
func pair(t *testing.T) (*UDP, *net.UDPConn, netip.Addr) {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	u, err := Listen(lo, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	t.Cleanup(func() { u.Close() })
	peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return u, peer, lo
}

func TestNonESPMarker(t *testing.T) {
	u, peer, lo := pair(t)
	ikePort, nattPort := u.Ports()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	ike := bytes.Repeat([]byte{0xab}, 40)
	send := func(port uint16, b []byte) {
		if _, err := peer.WriteToUDPAddrPort(b, netip.AddrPortFrom(lo, port)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() Packet {
		select {
		case p := <-u.Receive():
			return p
		case <-time.After(2 * time.Second):
			t.Fatal("nothing received")
		}
		return Packet{}
	}
	// On 4500: ESP (non-zero SPI) and a NAT keepalive are not IKE; the
	// marked message arrives without its marker.
	send(nattPort, append([]byte{0, 0, 1, 0}, ike...))
	send(nattPort, []byte{0xff})
	send(nattPort, append([]byte{0, 0, 0, 0}, ike...))
	if p := recv(); !bytes.Equal(p.Data, ike) || p.Local.Port() != nattPort || p.Remote != peerAddr {
		t.Fatalf("got %x from %v on %v", p.Data, p.Remote, p.Local)
	}
	send(ikePort, ike)
	if p := recv(); !bytes.Equal(p.Data, ike) || p.Local.Port() != ikePort {
		t.Fatalf("got %x on %v", p.Data, p.Local)
	}
	// Sending from 4500 adds the marker; from 500 it does not.
	buf := make([]byte, 100)
	for _, tc := range []struct {
		port uint16
		want []byte
	}{{nattPort, append([]byte{0, 0, 0, 0}, ike...)}, {ikePort, ike}} {
		if err := u.Send(Packet{Data: ike, Local: netip.AddrPortFrom(lo, tc.port), Remote: peerAddr}); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], tc.want) || from.Port() != tc.port {
			t.Fatalf("from %v: %x (%v)", from, buf[:n], err)
		}
	}
	if _, err := Listen(netip.IPv4Unspecified(), 0, 0); err == nil {
		t.Fatal("unspecified address accepted")
	}
}

// TestDroppedCounted: with nobody reading Receive, datagrams beyond the
// channel's room are dropped, and counted.
func TestDroppedCounted(t *testing.T) {
	u, peer, lo := pair(t)
	ikePort, _ := u.Ports()
	room := cap(u.ch)
	for range room + 100 {
		peer.WriteToUDPAddrPort(make([]byte, 28), netip.AddrPortFrom(lo, ikePort))
		time.Sleep(20 * time.Microsecond) // keep within the socket buffer
	}
	deadline := time.Now().Add(5 * time.Second)
	for u.Dropped() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// All-zero datagrams look like SA-starting requests (responder SPI
	// zero): they get half the queue.
	if d := u.Dropped(); d == 0 || d > uint64(room/2+100) || u.InitShed() != d {
		t.Fatalf("Dropped() = %d, InitShed() = %d with %d datagrams for %d places", d, u.InitShed(), room+100, room)
	}
}

// TestInitFloodLeavesRoom: with the queue half full of SA-starting
// requests, more of them are shed but a message of an established SA
// (non-zero responder SPI) still gets in.
func TestInitFloodLeavesRoom(t *testing.T) {
	u, peer, lo := pair(t)
	ikePort, nattPort := u.Ports()
	room := cap(u.ch)
	for range room {
		peer.WriteToUDPAddrPort(make([]byte, 28), netip.AddrPortFrom(lo, ikePort))
		time.Sleep(20 * time.Microsecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for u.InitShed() < uint64(room/2)-10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := u.InitShed(); s < uint64(room/2)-10 {
		t.Fatalf("InitShed() = %d after %d SA-starting requests for %d places", s, room, room)
	}
	auth := make([]byte, 28)
	auth[15] = 7 // responder SPI
	auth[19] = 35
	peer.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, auth...), netip.AddrPortFrom(lo, nattPort))
	for {
		select {
		case p := <-u.Receive():
			if bytes.Equal(p.Data, auth) {
				return
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("the established SA's message was lost behind the flood (dropped %d, shed %d)", u.Dropped(), u.InitShed())
		}
	}
}

// TestSendKeepalive: a NAT-T keepalive is the single octet 0xFF from the
// NAT-T port with no non-ESP marker (RFC 3948 §2.3), and only that port
// may send one.
func TestSendKeepalive(t *testing.T) {
	u, peer, lo := pair(t)
	ikePort, nattPort := u.Ports()
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := u.SendKeepalive(netip.AddrPortFrom(lo, ikePort), to); err == nil {
		t.Fatal("keepalive from the IKE port was sent")
	}
	if err := u.SendKeepalive(netip.AddrPortFrom(lo, nattPort), to); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], []byte{0xff}) || from.Port() != nattPort {
		t.Fatalf("got % x from port %d, want ff from %d", buf[:n], from.Port(), nattPort)
	}
}
