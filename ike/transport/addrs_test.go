package transport

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestSeveralAddrsReplyFromDestination: one Conn on two IPv4 loopback
// addresses and ::1 reports the address each message came to, on both
// ports, and a reply sent from that address leaves from it (the peer sees
// its request's destination as the reply's source), marker rules included.
func TestSeveralAddrsReplyFromDestination(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")}
	u, err := ListenAddrs(addrs, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	defer u.Close()
	ikePort, nattPort := u.Ports()
	if got := u.Addrs(); len(got) != 3 {
		t.Fatalf("Addrs() = %v", got)
	}
	msg := bytes.Repeat([]byte{0xcd}, 40)
	buf := make([]byte, 100)
	for _, local := range addrs {
		network := "udp4"
		if local.Is6() {
			network = "udp6"
		}
		peer, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
		if err != nil {
			t.Skipf("peer on %v: %v", local, err)
		}
		defer peer.Close()
		for _, port := range []uint16{ikePort, nattPort} {
			out := msg
			if port == nattPort {
				out = append([]byte{0, 0, 0, 0}, msg...)
			}
			if _, err := peer.WriteToUDPAddrPort(out, netip.AddrPortFrom(local, port)); err != nil {
				t.Fatal(err)
			}
			var p Packet
			select {
			case p = <-u.Receive():
			case <-time.After(2 * time.Second):
				t.Fatalf("nothing received on %v:%d", local, port)
			}
			if p.Local != netip.AddrPortFrom(local, port) || !bytes.Equal(p.Data, msg) {
				t.Fatalf("sent to %v:%d, got %x on %v", local, port, p.Data, p.Local)
			}
			// Reply the way the engine does: from the packet's Local.
			if err := u.Send(Packet{Data: msg, Local: p.Local, Remote: p.Remote}); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, from, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil || from.Addr().Unmap() != local || from.Port() != port || !bytes.Equal(buf[:n], out) {
				t.Fatalf("reply to a request to %v:%d came from %v: %x (%v)", local, port, from, buf[:n], err)
			}
		}
	}
	// An address the Conn does not listen on cannot be sent from.
	if err := u.Send(Packet{Data: msg, Local: netip.MustParseAddrPort("127.0.0.3:500"), Remote: netip.MustParseAddrPort("127.0.0.1:9")}); err == nil {
		t.Fatal("send from an address not listened on succeeded")
	}
}

// TestListenAddressNotYetPresent: like strongSwan's local_addrs, an
// address the machine does not have does not stop the Conn (IP_FREEBIND):
// the daemon warns, and the address serves once configured.
func TestListenAddressNotYetPresent(t *testing.T) {
	absent := netip.MustParseAddr("192.0.2.199") // TEST-NET-1, not on this host
	u, err := ListenAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.1"), absent}, 0, 0)
	if err != nil {
		t.Fatalf("listen with an absent address: %v", err)
	}
	defer u.Close()
	if got := u.Addrs(); len(got) != 2 || got[1] != absent {
		t.Fatalf("Addrs() = %v", got)
	}
	if _, err := ListenAddrs(nil, 0, 0); err == nil {
		t.Fatal("no addresses accepted")
	}
	if _, err := ListenAddrs([]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Unspecified()}, 0, 0); err == nil {
		t.Fatal("unspecified address accepted")
	}
}

// TestAddRemoveAddr: a live reload of local_addrs opens the sockets of a
// new address on the Conn's ports (it receives and sends from then on)
// and closes those of an address no connection names (sending from it
// fails); Receive's channel still closes on Close.
func TestAddRemoveAddr(t *testing.T) {
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	u, err := ListenAddrs([]netip.Addr{a1}, 0, 0)
	if err != nil {
		t.Skipf("loopback: %v", err)
	}
	ikePort, _ := u.Ports()
	if err := u.AddAddr(a2); err != nil {
		t.Fatal(err)
	}
	if err := u.AddAddr(a2); err != nil {
		t.Errorf("adding an address twice: %v", err)
	}
	if got := u.Addrs(); len(got) != 2 || got[1] != a2 {
		t.Fatalf("Addrs() = %v", got)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	msg := bytes.Repeat([]byte{0xab}, 40)
	if _, err := peer.WriteToUDPAddrPort(msg, netip.AddrPortFrom(a2, ikePort)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-u.Receive():
		if p.Local != netip.AddrPortFrom(a2, ikePort) {
			t.Errorf("received on %v", p.Local)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("nothing received on the added address")
	}
	to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := u.Send(Packet{Data: msg, Local: netip.AddrPortFrom(a2, ikePort), Remote: to}); err != nil {
		t.Errorf("send from the added address: %v", err)
	}
	if err := u.RemoveAddr(a2); err != nil {
		t.Fatal(err)
	}
	if err := u.Send(Packet{Data: msg, Local: netip.AddrPortFrom(a2, ikePort), Remote: to}); err == nil {
		t.Error("send from a removed address succeeded")
	}
	if err := u.RemoveAddr(a2); err == nil {
		t.Error("removing an address twice succeeded")
	}
	u.Close()
	if err := u.AddAddr(a2); err == nil {
		t.Error("AddAddr after Close succeeded")
	}
	select {
	case _, ok := <-u.Receive():
		for ok {
			_, ok = <-u.Receive()
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Receive's channel did not close")
	}
}
