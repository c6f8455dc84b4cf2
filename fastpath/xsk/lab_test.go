package xsk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// The lab: two network namespaces, A (where the AF_XDP sockets live) and
// B (the peer), joined by veth pairs with static neighbours, since a
// redirect-everything XDP program on A's side swallows ARP.

type lab struct {
	tb     testing.TB
	hA, hB *testlab.Netns
	pairs  []vethPair
}

type vethPair struct {
	a, b       string // interface names, in A and in B
	ifA, ifB   int
	macA, macB net.HardwareAddr
	ipA, ipB   netip.Addr
}

// newLab builds the namespaces and n veth pairs; pair i is 198.18.i.1 (A)
// to 198.18.i.2 (B). Everything goes away in Cleanup.
func newLab(tb testing.TB, n int) *lab {
	tb.Helper()
	testlab.RequireXDPLab(tb)
	tag := testlab.Tag()
	// No IPv6: router solicitations and MLD reports would be noise on
	// the sockets.
	l := &lab{tb: tb,
		hA: testlab.NewNetns(tb, "xsk"+tag+"a", testlab.NoIPv6|testlab.LoUp),
		hB: testlab.NewNetns(tb, "xsk"+tag+"b", testlab.NoIPv6|testlab.LoUp)}
	for i := range n {
		a := &testlab.End{NS: l.hA, Name: fmt.Sprintf("xk%sa%d", tag, i),
			MAC:  net.HardwareAddr{0x02, 'X', 'S', 'K', byte(i), 0x0a},
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 1}), 24)}
		b := &testlab.End{NS: l.hB, Name: fmt.Sprintf("xk%sb%d", tag, i),
			MAC:  net.HardwareAddr{0x02, 'X', 'S', 'K', byte(i), 0x0b},
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 2}), 24)}
		testlab.Veth(tb, a, b, testlab.StaticNeigh|testlab.TxOff)
		l.pairs = append(l.pairs, vethPair{a: a.Name, b: b.Name, ifA: a.Ifindex, ifB: b.Ifindex,
			macA: a.MAC, macB: b.MAC, ipA: a.Addr.Addr(), ipB: b.Addr.Addr()})
	}
	return l
}

// redirect attaches, in native mode, a program that sends every frame to
// the XSKMAP entry of its receive queue (and passes it to the kernel when
// the queue has no socket). It returns the map.
func (l *lab) redirect(h *testlab.Netns, ifindex int) *ebpf.Map {
	l.tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		l.tb.Fatalf("xskmap: %v", err)
	}
	l.tb.Cleanup(func() { m.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xsk_redirect",
		Type:    ebpf.XDP,
		License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // ctx->rx_queue_index
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the entry is empty
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		l.tb.Fatalf("redirect program: %v", err)
	}
	l.tb.Cleanup(func() { prog.Close() })
	var lk link.Link
	if err := h.Do(func() (err error) {
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	}); err != nil {
		l.tb.Fatalf("attach XDP to ifindex %d: %v", ifindex, err)
	}
	l.tb.Cleanup(func() { lk.Close() })
	return m
}

// open opens a socket in namespace h and registers it in m for its queue.
func (l *lab) open(h *testlab.Netns, m *ebpf.Map, ifindex, queue int, o Options) *Socket {
	l.tb.Helper()
	var s *Socket
	if err := h.Do(func() (err error) {
		s, err = Open(ifindex, queue, o)
		return err
	}); err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			l.tb.Error(err)
		}
	})
	if m != nil {
		if err := m.Put(uint32(queue), uint32(s.FD())); err != nil {
			l.tb.Fatalf("xskmap put: %v", err)
		}
	}
	return s
}

// udp opens a UDP socket in namespace h bound to ip on an ephemeral port.
func (l *lab) udp(h *testlab.Netns, ip netip.Addr) *net.UDPConn {
	l.tb.Helper()
	var c *net.UDPConn
	if err := h.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		return err
	}); err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() { c.Close() })
	return c
}

// Frame building and checking, on the package's one header parser and
// checksum routine.

const udpHdrs = packet.EthLen + packet.IPv4MinLen + packet.UDPLen

type udpFlow struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
}

// putUDP writes an Ethernet/IPv4/UDP frame carrying payload at b and
// returns its length.
func putUDP(b []byte, f udpFlow, payload []byte) int {
	n := udpHdrs + len(payload)
	copy(b[0:6], f.dstMAC)
	copy(b[6:12], f.srcMAC)
	binary.BigEndian.PutUint16(b[12:], packet.EtherIPv4)
	ip := b[packet.EthLen:n]
	clear(ip[:packet.IPv4MinLen])
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64
	ip[9] = packet.ProtoUDP
	s4, d4 := f.src.Addr().As4(), f.dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], packet.IPv4HeaderChecksum(ip[:packet.IPv4MinLen]))
	u := ip[packet.IPv4MinLen:]
	binary.BigEndian.PutUint16(u[0:], f.src.Port())
	binary.BigEndian.PutUint16(u[2:], f.dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	binary.BigEndian.PutUint16(u[6:], 0)
	copy(u[packet.UDPLen:], payload)
	cs := packet.Checksum(u, packet.PseudoSum(s4[:], d4[:], packet.ProtoUDP, len(u)))
	if cs == 0 {
		cs = 0xffff // RFC 768: zero means "no checksum"
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return n
}

// parseUDP reads an Ethernet/IPv4/UDP frame, checking both checksums.
func parseUDP(b []byte) (f udpFlow, payload []byte, err error) {
	if len(b) < udpHdrs || binary.BigEndian.Uint16(b[12:]) != packet.EtherIPv4 {
		return f, nil, errors.New("not IPv4 over Ethernet")
	}
	f.dstMAC, f.srcMAC = net.HardwareAddr(b[0:6]), net.HardwareAddr(b[6:12])
	ipb := b[packet.EthLen:]
	ip, ok := packet.ParseIP(ipb)
	if !ok || ip.V6 || ip.Proto != packet.ProtoUDP || ip.Fragment {
		return f, nil, errors.New("not an unfragmented UDP/IPv4 packet")
	}
	if packet.Checksum(ipb[:ip.HdrLen], 0) != 0 {
		return f, nil, errors.New("bad IPv4 header checksum")
	}
	u := ipb[ip.HdrLen:ip.TotalLen]
	if len(u) < packet.UDPLen || int(binary.BigEndian.Uint16(u[4:])) != len(u) {
		return f, nil, errors.New("bad UDP length")
	}
	src, _ := netip.AddrFromSlice(ipb[12:16])
	dst, _ := netip.AddrFromSlice(ipb[16:20])
	if packet.Checksum(u, packet.PseudoSum(ipb[12:16], ipb[16:20], packet.ProtoUDP, len(u))) != 0 {
		return f, nil, fmt.Errorf("bad UDP checksum %#04x (is tx offload off on the sender?)",
			binary.BigEndian.Uint16(u[6:]))
	}
	f.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(u[0:]))
	f.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(u[2:]))
	return f, u[packet.UDPLen:], nil
}

// recvUDP receives from s until it holds want UDP packets for port, or the
// timeout passes. Other frames are freed and counted.
func recvUDP(tb testing.TB, s *Socket, want int, port uint16, timeout time.Duration) (got []fastpath.Packet, other int) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var buf [fastpath.Batch]fastpath.Packet
	for len(got) < want && time.Now().Before(deadline) {
		n := s.Recv(buf[:min(want-len(got), len(buf))])
		if n == 0 {
			if _, err := s.Poll(20 * time.Millisecond); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		for i := range buf[:n] {
			f, _, err := parseUDP(buf[i].Data())
			if err == nil && f.dst.Port() == port {
				got = append(got, buf[i])
				continue
			}
			other++
			s.Free(buf[i : i+1])
		}
	}
	return got, other
}

// ledger counts the frames of u in each state.
func ledger(u *umem) map[frameState]int {
	m := map[frameState]int{}
	for _, st := range u.state {
		m[st]++
	}
	return m
}
