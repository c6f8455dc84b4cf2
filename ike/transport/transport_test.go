package transport

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestNonESPMarker(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	u, err := Listen(lo, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	defer u.Close()
	ikePort, nattPort := u.Ports()
	peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
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
	lo := netip.MustParseAddr("127.0.0.1")
	u, err := Listen(lo, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	defer u.Close()
	ikePort, _ := u.Ports()
	peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	room := cap(u.ch)
	for range room + 100 {
		peer.WriteToUDPAddrPort(make([]byte, 28), netip.AddrPortFrom(lo, ikePort))
		time.Sleep(20 * time.Microsecond) // keep within the socket buffer
	}
	deadline := time.Now().Add(5 * time.Second)
	for u.Dropped() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d := u.Dropped(); d == 0 || d > 100 {
		t.Fatalf("Dropped() = %d with %d datagrams for %d places", d, room+100, room)
	}
}
