package bpf

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"unsafe"

	"github.com/asavie/xdp"
	"github.com/cilium/ebpf"
	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"golang.org/x/sys/unix"
)

// xdpMD is struct xdp_md as BPF_PROG_TEST_RUN takes it in ctx_in: data and
// data_meta must be 0 and data_end the frame length; ingress_ifindex and
// rx_queue_index select the receive queue the program sees.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// rawXSK makes a minimal AF_XDP socket bound to the queue, with rings but
// without mapping them into our address space, so that closing the fd really
// releases the socket. (asavie/xdp v0.3.3's Socket.Close leaves the ring
// mappings in place; they hold the socket open until the process exits.)
func rawXSK(t testing.TB, ifindex, queue int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("AF_XDP socket: %v", err)
	}
	umem, err := unix.Mmap(-1, 0, 64*2048, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("umem: %v", err)
	}
	t.Cleanup(func() { unix.Munmap(umem) })
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))), Len: uint64(len(umem)), Size: 2048}
	if _, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); errno != 0 {
		unix.Close(fd)
		t.Fatalf("XDP_UMEM_REG: %v", errno)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, 32); err != nil {
			unix.Close(fd)
			t.Fatalf("ring option %d: %v", opt, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrXDP{Ifindex: uint32(ifindex), QueueID: uint32(queue)}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind AF_XDP to ifindex %d queue %d: %v", ifindex, queue, err)
	}
	return fd
}

func newXSK(t testing.TB, ifindex, queue int) *xdp.Socket {
	t.Helper()
	xsk, err := xdp.NewSocket(ifindex, queue, &xdp.SocketOptions{
		NumFrames: 64, FrameSize: 2048,
		FillRingNumDescs: 32, CompletionRingNumDescs: 32,
		RxRingNumDescs: 32, TxRingNumDescs: 32,
	})
	if err != nil {
		t.Fatalf("AF_XDP socket on ifindex %d queue %d: %v", ifindex, queue, err)
	}
	return xsk
}

// TestTestRunWithRegisteredXSK: with a socket in the XSKMAP slot of the
// queue, BPF_PROG_TEST_RUN reports XDP_REDIRECT (it does not deliver the
// frame); without one, the XDP_DROP fallback. Closing the socket empties the
// slot by itself, which is what keeps a dead daemon fail-closed.
func TestTestRunWithRegisteredXSK(t *testing.T) {
	ns := newTestNetns(t)
	o := loadForTest(t, Options{})
	setupState(t, o)
	espFrame := ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 64), v4opts{}))
	lanFrame := ether(false, etherTypeIPv6, ipv6(protoUDP, host6, netip.MustParseAddr("2001:db8:1::9"), udp(1, 2, nil)))

	ns.do(t, func() {
		runOn := func(name string, r Role, frame []byte, want uint32, d deltas) {
			t.Run(name, func(t *testing.T) {
				before, err := o.CounterValues()
				if err != nil {
					t.Fatal(err)
				}
				ret, err := o.Program(r).Run(&ebpf.RunOptions{
					Data:    frame,
					Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ns.veth0)},
				})
				if err != nil {
					t.Fatalf("test run: %v", err)
				}
				if ret != want {
					t.Errorf("verdict %s, want %s", verdictName(ret), verdictName(want))
				}
				after, err := o.CounterValues()
				if err != nil {
					t.Fatal(err)
				}
				for i := range after {
					if got := after[i] - before[i]; got != d[Counter(i)] {
						t.Errorf("counter %s moved by %d, want %d", Counter(i), got, d[Counter(i)])
					}
				}
			})
		}

		fd := rawXSK(t, ns.veth0, 0)
		if err := o.RegisterXSK(0, fd); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		runOn("esp known spi", RoleWAN, espFrame, xdpRedirect, deltas{CounterESPRedirect: 1})
		runOn("lan protect", RoleLAN, lanFrame, xdpRedirect, deltas{CounterLANProtectRedirect: 1})
		runOn("onearm protect", RoleOneArm, lanFrame, xdpRedirect, deltas{CounterLANProtectRedirect: 1})

		if err := o.UnregisterXSK(0); err != nil {
			t.Fatal(err)
		}
		runOn("unregistered", RoleWAN, espFrame, xdpDrop, deltas{CounterESPRedirect: 1, CounterXSKMissing: 1})

		if err := o.RegisterXSK(0, fd); err != nil {
			t.Fatal(err)
		}
		runOn("registered again", RoleLAN, lanFrame, xdpRedirect, deltas{CounterLANProtectRedirect: 1})
		unix.Close(fd)
		runOn("socket closed", RoleLAN, lanFrame, xdpDrop, deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1})
	})

	for _, q := range []int{-1, xdpconf.MaxQueues} {
		if err := o.RegisterXSK(q, 3); err == nil {
			t.Errorf("RegisterXSK(%d) accepted", q)
		}
	}
}

// TestXSKReceivesSteeredFrames sends real frames into a veth with xdp_wan
// attached natively and an AF_XDP socket on queue 0: the live-SPI ESP frame
// arrives on the socket byte for byte, the unknown SPI does not, IKE goes to
// the kernel.
func TestXSKReceivesSteeredFrames(t *testing.T) {
	ns := newTestNetns(t)
	o := loadForTest(t, Options{})
	setupState(t, o)

	var (
		xsk  *xdp.Socket
		send func([]byte)
		err  error
	)
	ns.do(t, func() {
		if _, err = o.AttachWAN(ns.veth0, xdpconf.ModeNative); err != nil {
			return
		}
		xsk = newXSK(t, ns.veth0, 0)
		send = packetSender(t, ns.veth1)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer xsk.Close()
	xsk.Fill(xsk.GetDescs(xsk.NumFreeFillSlots()))
	if err := o.RegisterXSK(0, xsk.FD()); err != nil {
		t.Fatal(err)
	}

	before, err := o.CounterValues()
	if err != nil {
		t.Fatal(err)
	}
	unknown := ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiUnknown, 9, 64), v4opts{}))
	ike := ether(false, etherTypeIPv4, ipv4(protoUDP, peer4, gw4, udp(500, 500, ikeHeader()), v4opts{}))
	known := ether(false, etherTypeIPv4, ipv4(protoUDP, peer4, gw4, udp(4500, 4500, esp(spiKnown, 42, 80)), v4opts{}))
	send(unknown)
	send(ike)
	send(known)

	var got [][]byte
	deadline := time.Now().Add(3 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		n, _, err := xsk.Poll(100)
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		for _, d := range xsk.Receive(n) {
			got = append(got, bytes.Clone(xsk.GetFrame(d)))
		}
	}
	waitCounters(t, o, before, deltas{CounterESPUnknownSPI: 1, CounterPassIKE: 1, CounterESPUDPRedirect: 1})
	// Anything else would have arrived by now: the counters say all three
	// frames were processed.
	n, _, err := xsk.Poll(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range xsk.Receive(n) {
		got = append(got, bytes.Clone(xsk.GetFrame(d)))
	}
	if len(got) != 1 || !bytes.Equal(got[0], known) {
		t.Fatalf("socket received %d frames %x, want only the live-SPI ESP-in-UDP frame %x", len(got), got, known)
	}
}
