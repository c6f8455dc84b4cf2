package xsk

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/internal/testlab"
	"golang.org/x/sys/unix"
)

func TestOptionsDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Options
		want Options // checked fields: frames, rings, FillFrames
		err  bool
	}{
		{name: "zero", in: Options{}, want: Options{NumFrames: 8192, FillSize: 4096, CompletionSize: 4096, RxSize: 4096, TxSize: 4096, FillFrames: 4096}},
		{name: "small umem", in: Options{NumFrames: 256}, want: Options{NumFrames: 256, FillSize: 4096, CompletionSize: 4096, RxSize: 4096, TxSize: 4096, FillFrames: 128}},
		{name: "one frame", in: Options{NumFrames: 1, FillSize: 1}, want: Options{NumFrames: 1, FillSize: 1, CompletionSize: 4096, RxSize: 4096, TxSize: 4096, FillFrames: 1}},
		{name: "explicit", in: Options{NumFrames: 1024, FillSize: 64, CompletionSize: 128, RxSize: 256, TxSize: 512, FillFrames: 60}, want: Options{NumFrames: 1024, FillSize: 64, CompletionSize: 128, RxSize: 256, TxSize: 512, FillFrames: 60}},
		{name: "ring not power of two", in: Options{RxSize: 1000}, err: true},
		{name: "ring negative", in: Options{TxSize: -2}, err: true},
		{name: "ring too big", in: Options{FillSize: 1 << 20}, err: true},
		{name: "frames negative", in: Options{NumFrames: -1}, err: true},
		{name: "frames too many", in: Options{NumFrames: 1<<20 + 1}, err: true},
		{name: "fill frames over ring", in: Options{FillSize: 64, FillFrames: 65}, err: true},
		{name: "fill frames over umem", in: Options{NumFrames: 32, FillSize: 64, FillFrames: 33}, err: true},
		{name: "unknown mode", in: Options{Mode: Mode(7)}, err: true},
		{name: "share with frames", in: Options{ShareWith: &Socket{u: &umem{frames: 8}}, NumFrames: 8}, err: true},
		{name: "share with mode", in: Options{ShareWith: &Socket{u: &umem{frames: 8}}, Mode: ModeCopy}, err: true},
		{name: "share with closed", in: Options{ShareWith: &Socket{}}, err: true},
		{name: "share", in: Options{ShareWith: &Socket{u: &umem{frames: 8}}}, want: Options{NumFrames: 8, FillSize: 4096, CompletionSize: 4096, RxSize: 4096, TxSize: 4096, FillFrames: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.withDefaults()
			if tt.err {
				if err == nil {
					t.Fatalf("withDefaults(%+v) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := [6]int{got.NumFrames, got.FillSize, got.CompletionSize, got.RxSize, got.TxSize, got.FillFrames}
			w := [6]int{tt.want.NumFrames, tt.want.FillSize, tt.want.CompletionSize, tt.want.RxSize, tt.want.TxSize, tt.want.FillFrames}
			if g != w {
				t.Errorf("frames, fill, completion, rx, tx, fill frames = %v, want %v", g, w)
			}
		})
	}
}

func TestBindFlags(t *testing.T) {
	tests := []struct {
		o    Options
		want uint16
	}{
		{Options{}, unix.XDP_USE_NEED_WAKEUP},
		{Options{Mode: ModeCopy}, unix.XDP_USE_NEED_WAKEUP | unix.XDP_COPY},
		{Options{Mode: ModeZeroCopy}, unix.XDP_USE_NEED_WAKEUP | unix.XDP_ZEROCOPY},
		{Options{ShareWith: &Socket{}}, unix.XDP_SHARED_UMEM},
	}
	for _, tt := range tests {
		if got := tt.o.bindFlags(); got != tt.want {
			t.Errorf("bindFlags(mode %v, shared %v) = %#x, want %#x", tt.o.Mode, tt.o.ShareWith != nil, got, tt.want)
		}
	}
}

func TestHeadroomGeometry(t *testing.T) {
	if rxOff < fastpath.Headroom {
		t.Fatalf("received data lands at %d, before fastpath.Headroom %d", rxOff, fastpath.Headroom)
	}
	if fastpath.FrameSize&(fastpath.FrameSize-1) != 0 || 4096%fastpath.FrameSize != 0 {
		t.Fatalf("FrameSize %d: the UMEM's aligned mode needs a power of two dividing the page", fastpath.FrameSize)
	}
}

// TestEcho receives UDP datagrams sent by the peer's kernel, checks them,
// and sends each back from the same frame with addresses and ports
// swapped and the payload changed (so the UDP checksum is recomputed); the
// peer's UDP socket must get every one.
func TestEcho(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	m := l.redirect(l.hA, p.ifA)
	s := l.open(l.hA, m, p.ifA, 0, Options{})
	conn := l.udp(l.hB, p.ipB)
	peer := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	const port = 7
	dst := netip.AddrPortFrom(p.ipA, port)

	const rounds, burst = 40, 32
	buf := make([]byte, 2048)
	for r := range rounds {
		want := make([][]byte, burst)
		for i := range want {
			want[i] = fmt.Appendf(nil, "xsk echo %03d/%02d %s", r, i, bytes.Repeat([]byte{'.'}, r*30))
			if _, err := conn.WriteToUDPAddrPort(want[i], dst); err != nil {
				t.Fatal(err)
			}
		}
		pkts, other := recvUDP(t, s, burst, port, 3*time.Second)
		if len(pkts) != burst {
			t.Fatalf("round %d: received %d of %d datagrams (%d other frames)", r, len(pkts), burst, other)
		}
		for i := range pkts {
			pk := &pkts[i]
			if pk.Off != fastpath.Headroom || len(pk.Frame) != fastpath.FrameSize || pk.Addr%fastpath.FrameSize != 0 {
				t.Fatalf("packet %d: Off %d, frame %d bytes, Addr %#x: want Off %d in a whole aligned frame",
					i, pk.Off, len(pk.Frame), pk.Addr, fastpath.Headroom)
			}
			f, payload, err := parseUDP(pk.Data())
			if err != nil {
				t.Fatalf("round %d packet %d: %v", r, i, err)
			}
			if f.src != peer || f.dst != dst || f.srcMAC.String() != p.macB.String() || f.dstMAC.String() != p.macA.String() {
				t.Fatalf("packet %d: %v %v → %v %v, want %v %v → %v %v", i, f.srcMAC, f.src, f.dstMAC, f.dst, p.macB, peer, p.macA, dst)
			}
			// One queue keeps order.
			if !bytes.Equal(payload, want[i]) {
				t.Fatalf("round %d packet %d: payload %q, want %q", r, i, payload, want[i])
			}
			for j := range payload {
				payload[j] ^= 0x20
			}
			echo := udpFlow{srcMAC: f.dstMAC, dstMAC: f.srcMAC, src: f.dst, dst: f.src}
			pk.Len = putUDP(pk.Frame[pk.Off:], echo, append([]byte(nil), payload...))
		}
		if n := s.Send(pkts); n != burst {
			t.Fatalf("Send took %d of %d", n, burst)
		}
		for i := range burst {
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("round %d: echo %d: %v", r, i, err)
			}
			w := bytes.Clone(want[i])
			for j := range w {
				w[j] ^= 0x20
			}
			if from != dst || !bytes.Equal(buf[:n], w) {
				t.Fatalf("round %d: echo %d from %v = %q, want %q from %v", r, i, from, buf[:n], w, dst)
			}
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxPackets != rounds*burst || st.RxPackets < rounds*burst || st.TxKicks == 0 || st.BadFrames != 0 {
		t.Errorf("stats: %+v", st)
	}
	if st.ZeroCopy {
		t.Errorf("veth bound in zero-copy mode; expected copy")
	}
	t.Logf("copy-mode tx budget %d", s.txBudget)
	t.Logf("rx %d tx %d kicks %d fills %d completions %d kernel %+v",
		st.RxPackets, st.TxPackets, st.TxKicks, st.Fills, st.Completions, st.Kernel)
}

// TestFrameAccounting pushes thousands of packets through a small UMEM
// and checks that every frame ends up accounted for: the counters add up
// to the UMEM, match the ledger, and nothing is with the worker.
func TestFrameAccounting(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	m := l.redirect(l.hA, p.ifA)
	o := Options{NumFrames: 256, FillSize: 64, CompletionSize: 64, RxSize: 64, TxSize: 64}
	s := l.open(l.hA, m, p.ifA, 0, o)
	conn := l.udp(l.hB, p.ipB)
	const port = 9
	dst := netip.AddrPortFrom(p.ipA, port)

	// Stats from another goroutine while the worker runs, as the metrics
	// endpoint will (the race detector watches).
	stop := make(chan struct{})
	statsDone := make(chan error)
	go func() {
		var err error
		for err == nil {
			select {
			case <-stop:
				statsDone <- nil
				return
			default:
			}
			_, err = s.Stats()
			time.Sleep(time.Millisecond)
		}
		statsDone <- err
	}()
	const total, burst = 4000, 40
	payload := make([]byte, 100)
	buf := make([]byte, 2048)
	var spare [burst]fastpath.Packet
	for sent := 0; sent < total; sent += burst {
		for range burst {
			if _, err := conn.WriteToUDPAddrPort(payload, dst); err != nil {
				t.Fatal(err)
			}
		}
		pkts, _ := recvUDP(t, s, burst, port, 3*time.Second)
		if len(pkts) != burst {
			t.Fatalf("after %d: received %d of %d", sent, len(pkts), burst)
		}
		// Half echo from their own frame, half from Alloc'd frames (the
		// received ones freed), to cover both ways frames reach TX.
		half := burst / 2
		if n := s.Alloc(spare[:half]); n != half {
			t.Fatalf("Alloc gave %d of %d", n, half)
		}
		for i := range pkts {
			f, _, err := parseUDP(pkts[i].Data())
			if err != nil {
				t.Fatal(err)
			}
			echo := udpFlow{srcMAC: f.dstMAC, dstMAC: f.srcMAC, src: f.dst, dst: f.src}
			if i < half {
				spare[i].Len = putUDP(spare[i].Frame[spare[i].Off:], echo, payload)
			} else {
				pkts[i].Len = putUDP(pkts[i].Frame[pkts[i].Off:], echo, payload)
			}
		}
		s.Free(pkts[:half])
		if n := s.Send(spare[:half]); n != half {
			t.Fatalf("Send took %d of %d", n, half)
		}
		if n := s.Send(pkts[half:]); n != burst-half {
			t.Fatalf("Send took %d of %d", n, burst-half)
		}
		for range burst {
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				t.Fatalf("after %d: echo: %v", sent, err)
			}
		}
	}
	close(stop)
	if err := <-statsDone; err != nil {
		t.Fatal(err)
	}
	// Copy mode completes inside the kick, so one Recv reaps everything.
	var none [1]fastpath.Packet
	for i := 0; i < 100 && s.txInFlight.Load() > 0; i++ {
		s.Recv(none[:])
		time.Sleep(time.Millisecond)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.Held != 0 || st.TxInFlight != 0 || st.Lost != 0 || st.BadFrames != 0 {
		t.Errorf("held %d, in flight %d, lost %d, bad %d: want all 0", st.Held, st.TxInFlight, st.Lost, st.BadFrames)
	}
	if sum := st.Free + st.Held + st.Filled + st.TxInFlight + st.Lost; sum != st.Frames || st.Frames != o.NumFrames {
		t.Errorf("free %d + held %d + filled %d + tx %d + lost %d = %d, want %d",
			st.Free, st.Held, st.Filled, st.TxInFlight, st.Lost, sum, o.NumFrames)
	}
	lg := ledger(s.u)
	if lg[stFree] != st.Free || lg[stFill] != st.Filled || lg[stTx] != st.TxInFlight || lg[stWorker] != st.Held {
		t.Errorf("ledger %v disagrees with counters %+v", lg, st)
	}
	if len(s.u.free) != st.Free {
		t.Errorf("free list holds %d, counter says %d", len(s.u.free), st.Free)
	}
	if st.TxPackets != total || st.Completions != total || st.RxPackets < total {
		t.Errorf("tx %d, completions %d, rx %d: want %d each", st.TxPackets, st.Completions, st.RxPackets, total)
	}
	if st.Fills < total {
		t.Errorf("fills %d: frames were not recycled through the fill ring", st.Fills)
	}
	if st.Filled > int(s.fillTarget) || st.Filled <= int(s.fillTarget-s.refillMin) {
		t.Errorf("filled %d, want within %d of %d", st.Filled, s.refillMin, s.fillTarget)
	}
}

// TestCross forwards datagrams received on one interface out of another,
// with a shared UMEM (the frame itself is sent) and with separate UMEMs
// (Alloc and copy), checking Shares and the accounting of both.
func TestCross(t *testing.T) {
	testlab.RequireXDPLab(t)
	for _, shared := range []bool{true, false} {
		t.Run(map[bool]string{true: "shared", false: "separate"}[shared], func(t *testing.T) {
			l := newLab(t, 2)
			p0, p1 := l.pairs[0], l.pairs[1]
			m0 := l.redirect(l.hA, p0.ifA)
			m1 := l.redirect(l.hA, p1.ifA)
			s0 := l.open(l.hA, m0, p0.ifA, 0, Options{NumFrames: 1024, FillSize: 256, CompletionSize: 256, RxSize: 256, TxSize: 256})
			o1 := Options{NumFrames: 1024, FillSize: 256, CompletionSize: 256, RxSize: 256, TxSize: 256}
			if shared {
				o1.NumFrames, o1.ShareWith = 0, s0
			}
			s1 := l.open(l.hA, m1, p1.ifA, 0, o1)
			if s0.Shares(s1) != shared || s1.Shares(s0) != shared || !s0.Shares(s0) {
				t.Fatalf("Shares: s0→s1 %v, s1→s0 %v, s0→s0 %v; want %v, %v, true",
					s0.Shares(s1), s1.Shares(s0), s0.Shares(s0), shared, shared)
			}
			if s0.Shares(fastpath.NewMemPool(1).Port(1)) || s0.Shares((*Socket)(nil)) {
				t.Fatal("a socket shares memory with a MemPort or a nil socket")
			}
			in0, out1 := l.udp(l.hB, p0.ipB), l.udp(l.hB, p1.ipB)
			const port = 4242
			to := netip.AddrPortFrom(p0.ipA, port)
			fwd := udpFlow{srcMAC: p1.macA, dstMAC: p1.macB,
				src: netip.AddrPortFrom(p1.ipA, port), dst: out1.LocalAddr().(*net.UDPAddr).AddrPort()}

			const total, burst = 512, 32
			var spare [burst]fastpath.Packet
			buf := make([]byte, 2048)
			for sent := 0; sent < total; sent += burst {
				for i := range burst {
					if _, err := in0.WriteToUDPAddrPort(fmt.Appendf(nil, "cross %d", sent+i), to); err != nil {
						t.Fatal(err)
					}
				}
				pkts, _ := recvUDP(t, s0, burst, port, 3*time.Second)
				if len(pkts) != burst {
					t.Fatalf("received %d of %d", len(pkts), burst)
				}
				out := pkts
				if !shared {
					if n := s1.Alloc(spare[:]); n != burst {
						t.Fatalf("Alloc gave %d of %d", n, burst)
					}
					out = spare[:]
				}
				for i := range pkts {
					_, payload, err := parseUDP(pkts[i].Data())
					if err != nil {
						t.Fatal(err)
					}
					payload = bytes.Clone(payload)
					out[i].Len = putUDP(out[i].Frame[out[i].Off:], fwd, payload)
				}
				if !shared {
					s0.Free(pkts)
				}
				if n := s1.Send(out); n != burst {
					t.Fatalf("Send took %d of %d", n, burst)
				}
				for i := range burst {
					out1.SetReadDeadline(time.Now().Add(3 * time.Second))
					n, _, err := out1.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("forwarded %d: %v", sent+i, err)
					}
					if want := fmt.Sprintf("cross %d", sent+i); string(buf[:n]) != want {
						t.Fatalf("forwarded %q, want %q", buf[:n], want)
					}
				}
			}
			var none [1]fastpath.Packet
			for i := 0; i < 100 && s1.txInFlight.Load() > 0; i++ {
				s1.Recv(none[:])
				time.Sleep(time.Millisecond)
			}
			st0, err0 := s0.Stats()
			st1, err1 := s1.Stats()
			if err := errors.Join(err0, err1); err != nil {
				t.Fatal(err)
			}
			if st0.TxPackets != 0 || st1.TxPackets != total || st1.Completions != total || st0.BadFrames+st1.BadFrames != 0 {
				t.Errorf("s0 %+v\ns1 %+v", st0, st1)
			}
			if shared {
				if st0.Frames != st1.Frames || st0.Free != st1.Free || st0.Held != 0 || st1.Held != 0 {
					t.Errorf("shared UMEM seen differently: s0 %+v s1 %+v", st0, st1)
				}
				if sum := st0.Free + st0.Held + st0.Lost + st0.Filled + st0.TxInFlight + st1.Filled + st1.TxInFlight; sum != st0.Frames {
					t.Errorf("shared UMEM: frames add up to %d, want %d (s0 %+v, s1 %+v)", sum, st0.Frames, st0, st1)
				}
			} else {
				for i, st := range []Stats{st0, st1} {
					if sum := st.Free + st.Held + st.Lost + st.Filled + st.TxInFlight; sum != st.Frames || st.Held != 0 {
						t.Errorf("s%d: frames add up to %d, want %d, held %d (%+v)", i, sum, st.Frames, st.Held, st)
					}
				}
			}
		})
	}
}

// TestSharedClose closes the two sockets of a shared UMEM in turn: the
// owner's going must leave the sharer working, and the memory must go
// with the last one.
func TestSharedClose(t *testing.T) {
	l := newLab(t, 2)
	var s0, s1 *Socket
	if err := l.hA.Do(func() (err error) {
		if s0, err = Open(l.pairs[0].ifA, 0, Options{NumFrames: 512, FillSize: 128}); err != nil {
			return err
		}
		if _, err := Open(l.pairs[0].ifA, 0, Options{ShareWith: s0}); err == nil {
			return errors.New("sharing with a socket of the same queue succeeded")
		}
		s1, err = Open(l.pairs[1].ifA, 0, Options{ShareWith: s0, FillSize: 128})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	u := s0.u
	if err := s0.Close(); err != nil {
		t.Fatal(err)
	}
	if u.mem == nil {
		t.Fatal("UMEM unmapped while a sharing socket is open")
	}
	var pk [4]fastpath.Packet
	if n := s1.Alloc(pk[:]); n != 4 {
		t.Fatalf("Alloc after the owner closed: %d", n)
	}
	pk[0].Frame[pk[0].Off] = 1 // the memory is still mapped
	s1.Free(pk[:])
	st, err := s1.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost != 128 || st.Free+st.Lost+st.Filled != st.Frames {
		t.Errorf("after the owner closed: %+v; want its 128 fill frames lost and the rest accounted", st)
	}
	if err := l.hA.Do(func() error {
		_, err := Open(l.pairs[1].ifA, 1, Options{ShareWith: s0})
		return err
	}); err == nil {
		t.Error("sharing with a closed socket succeeded")
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if u.mem != nil {
		t.Error("UMEM still mapped after the last socket closed")
	}
}

func TestClose(t *testing.T) {
	l := newLab(t, 1)
	var s *Socket
	if err := l.hA.Do(func() (err error) {
		s, err = Open(l.pairs[0].ifA, 0, Options{NumFrames: 64, FillSize: 32})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fd := s.FD()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("fd %d after Close: %v, want EBADF", fd, err)
	}
	var pk [4]fastpath.Packet
	if s.Recv(pk[:]) != 0 || s.Alloc(pk[:]) != 0 || s.Send(pk[:]) != 0 {
		t.Error("a closed socket moved frames")
	}
	s.Free(pk[:])
	if _, err := s.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close: %v", err)
	}
	if _, err := s.Poll(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	testlab.RequireXDPLab(t)
	tests := []struct {
		name           string
		ifindex, queue int
		o              Options
	}{
		{"no interface", 1 << 30, 0, Options{}},
		{"zero ifindex", 0, 0, Options{}},
		{"negative queue", 1, -1, Options{}},
		{"bad ring", 1, 0, Options{RxSize: 3}},
		{"zero-copy on loopback", 1, 0, Options{Mode: ModeZeroCopy}},
	}
	fds := openFDs(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.ifindex, tt.queue, tt.o)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
		})
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d open descriptors after failed Opens, %d before", n, fds)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	return len(ents)
}

// TestTxBudget sends more frames in one Send than copy mode transmits per
// sendto (the budget is cut back to the kernel's minimum), and checks that
// the kick loop and Recv's re-kick get them all out.
func TestTxBudget(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	s := l.open(l.hA, nil, p.ifA, 0, Options{NumFrames: 1024, FillSize: 64, TxSize: 512, CompletionSize: 512})
	budget := uint32(32)
	if err := setsockopt(s.fd, unix.XDP_MAX_TX_SKB_BUDGET, unsafe.Pointer(&budget), unsafe.Sizeof(budget)); err != nil {
		t.Logf("XDP_MAX_TX_SKB_BUDGET: %v (the kernel's default of 32 applies)", err)
	}
	const total = 400
	pkts := make([]fastpath.Packet, total)
	if n := s.Alloc(pkts); n != total {
		t.Fatalf("Alloc gave %d", n)
	}
	for i := range pkts {
		pkts[i].Len = copy(pkts[i].Frame[pkts[i].Off:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5, 59: 0})
	}
	if n := s.Send(pkts); n != total {
		t.Fatalf("Send took %d of %d", n, total)
	}
	var none [1]fastpath.Packet
	for i := 0; i < 50 && s.txInFlight.Load() > 0; i++ {
		s.Recv(none[:])
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Completions != total || st.TxInFlight != 0 || st.Kernel.TxInvalidDescs != 0 {
		t.Fatalf("completions %d, in flight %d, invalid %d: want %d, 0, 0", st.Completions, st.TxInFlight, st.Kernel.TxInvalidDescs, total)
	}
	if st.TxKicks < total/32 {
		t.Errorf("%d kicks for %d frames at 32 per kick", st.TxKicks, total)
	}
	t.Logf("%d frames in %d kicks", total, st.TxKicks)
}

// TestSendInvalid checks that Send frees, and counts, accepted frames
// whose Off/Len do not fit their frame.
func TestSendInvalid(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	s := l.open(l.hA, nil, p.ifA, 0, Options{NumFrames: 64, FillSize: 16})
	var pkts [4]fastpath.Packet
	if s.Alloc(pkts[:]) != 4 {
		t.Fatal("Alloc")
	}
	pkts[0].Len = 0
	pkts[1].Off, pkts[1].Len = -1, 60
	pkts[2].Off, pkts[2].Len = fastpath.FrameSize-10, 11
	pkts[3].Len = 60
	before, _ := s.Stats()
	if n := s.Send(pkts[:]); n != 4 {
		t.Fatalf("Send took %d", n)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxInvalid != 3 || st.TxPackets != 1 || st.Held != 0 || st.Free != before.Free+4-1 {
		t.Errorf("invalid %d tx %d held %d free %d→%d: want 3, 1, 0, +3", st.TxInvalid, st.TxPackets, st.Held, before.Free, st.Free)
	}
}

// TestPoll checks that Poll sleeps on an idle socket and wakes for a
// packet.
func TestPoll(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	m := l.redirect(l.hA, p.ifA)
	s := l.open(l.hA, m, p.ifA, 0, Options{NumFrames: 256})
	conn := l.udp(l.hB, p.ipB)

	start := time.Now()
	ready, err := s.Poll(30 * time.Millisecond)
	if err != nil || ready {
		t.Fatalf("idle Poll = %v, %v", ready, err)
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("idle Poll returned after %v, want about 30ms", d)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		conn.WriteToUDPAddrPort([]byte("wake"), netip.AddrPortFrom(p.ipA, 7))
	}()
	start = time.Now()
	if n, err := PollAny(5*time.Second, s); err != nil || n != 1 {
		t.Fatalf("PollAny = %d, %v", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Poll woke after %v", d)
	}
	if ready, err := s.Poll(0); err != nil || !ready {
		t.Fatalf("Poll with a frame waiting = %v, %v", ready, err)
	}
	pkts, _ := recvUDP(t, s, 1, 7, time.Second)
	if len(pkts) != 1 {
		t.Fatal("frame not received after Poll")
	}
	s.Free(pkts)
	if _, err := PollAny(0, make([]*Socket, MaxPoll+1)...); err == nil {
		t.Error("PollAny on too many sockets succeeded")
	}
}

// TestZeroAllocs checks that a warm socket's Recv, Send, Free, Alloc and
// Poll allocate nothing, with frames really moving both ways.
func TestZeroAllocs(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	m := l.redirect(l.hA, p.ifA)
	s := l.open(l.hA, m, p.ifA, 0, Options{NumFrames: 512, FillSize: 128})
	// A connected, non-blocking UDP socket in B written with write(2):
	// the net package would allocate on its own account.
	var bfd int
	if err := l.hB.Do(func() (err error) {
		if bfd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Connect(bfd, &unix.SockaddrInet4{Port: 7, Addr: p.ipA.As4()})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(bfd) })
	payload := []byte("allocs")
	// Junk frames out of A: broadcast with the local-experimental
	// EtherType, which B's kernel drops.
	junk := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 'X', 'S', 'K', 0, 0x0a, 0x88, 0xb5}
	junk = append(junk, make([]byte, 46)...)

	var rx, tx [8]fastpath.Packet
	var sock [2]*Socket
	sock[0] = s
	received := 0
	round := func() {
		for range 4 {
			unix.Write(bfd, payload)
		}
		got := 0
		for spin := 0; got < 4 && spin < 1000; spin++ {
			n := s.Recv(rx[:])
			if n == 0 {
				s.Poll(time.Millisecond)
				continue
			}
			got += n
			s.Free(rx[:n])
		}
		received += got
		n := s.Alloc(tx[:])
		for i := range tx[:n] {
			tx[i].Len = copy(tx[i].Frame[tx[i].Off:], junk)
		}
		if k := s.Send(tx[:n]); k < n {
			s.Free(tx[k:n])
		}
		PollAny(0, sock[:1]...)
	}
	for range 10 {
		round()
	}
	received = 0
	if a := testing.AllocsPerRun(200, round); a != 0 {
		t.Errorf("%v allocations per round, want 0", a)
	}
	if received < 4*200 {
		t.Errorf("received %d frames in 200 rounds of 4: the rounds did not exercise Recv", received)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TxPackets < 8*200 || st.BadFrames != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestLedgerRefusesForeignFrames checks Send and Free against frames the
// worker does not hold, without a kernel (a UMEM on the heap).
func TestLedgerRefusesForeignFrames(t *testing.T) {
	const n = 8
	u := initUMEM(make([]byte, n*fastpath.FrameSize), n)
	other := initUMEM(make([]byte, n*fastpath.FrameSize), n)
	var a, b [2]fastpath.Packet
	if u.alloc(a[:]) != 2 || other.alloc(b[:]) != 2 {
		t.Fatal("alloc")
	}
	first := a[0]
	tests := []struct {
		name string
		p    fastpath.Packet
	}{
		{"other umem's frame", b[0]},
		{"address past the umem", fastpath.Packet{Frame: a[1].Frame, Addr: n * fastpath.FrameSize}},
		{"unaligned address", fastpath.Packet{Frame: a[1].Frame, Addr: a[1].Addr + 1}},
		{"frame and address disagree", fastpath.Packet{Frame: a[1].Frame, Addr: a[0].Addr}},
		{"nil frame", fastpath.Packet{Addr: a[1].Addr}},
		{"free frame", fastpath.Packet{Frame: u.frame(u.free[0]), Addr: u.free[0]}},
	}
	for _, tt := range tests {
		bad := u.bad.Load()
		u.release([]fastpath.Packet{tt.p})
		if u.bad.Load() != bad+1 || int(u.nfree.Load()) != n-2 || len(u.free) != n-2 {
			t.Errorf("%s: release accepted it (bad %d, free %d)", tt.name, u.bad.Load()-bad, len(u.free))
		}
	}
	u.release(a[:1])
	if len(u.free) != n-1 || a[0].Frame != nil {
		t.Fatalf("valid release: free %d", len(u.free))
	}
	u.release([]fastpath.Packet{first}) // double free
	if len(u.free) != n-1 || u.bad.Load() != uint64(len(tests)+1) {
		t.Fatalf("double free accepted: free %d bad %d", len(u.free), u.bad.Load())
	}
}

// TestBusyPollOptions: out-of-range busy-poll settings are refused before
// any socket exists.
func TestBusyPollOptions(t *testing.T) {
	for _, o := range []Options{{BusyPollUsecs: -1}, {BusyPollBudget: -1}, {BusyPollBudget: maxBusyPollBudget + 1}, {BusyPollUsecs: maxBusyPollUsecs + 1}} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := (Options{BusyPollUsecs: 50, BusyPollBudget: 64, PreferBusyPoll: true}).withDefaults(); err != nil {
		t.Error(err)
	}
}

// hugePagesFree reads HugePages_Free from /proc/meminfo.
func hugePagesFree(tb testing.TB) int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "HugePages_Free:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestHugePagesAndBusyPoll: a UMEM asked on hugepages falls back to normal
// pages when none are free and is on hugepages once some are reserved;
// the busy-poll options reach the socket. (veth: no zero-copy, so the
// hugepage UMEM is exercised in copy mode only.)
func TestHugePagesAndBusyPoll(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	const frames = 4096 // 8 MiB: four 2 MiB pages
	need := frames * fastpath.FrameSize / hugePageSize
	if hugePagesFree(t) < need {
		// On B's end: the kernel lets go of a closed socket's queue
		// asynchronously, and A's queue 0 is bound again below.
		s := l.open(l.hB, nil, p.ifB, 0, Options{NumFrames: frames, HugePages: true})
		if s.HugePages() {
			t.Error("UMEM on hugepages with none free")
		}
		s.Close()
	}
	const nr = "/proc/sys/vm/nr_hugepages"
	old, err := os.ReadFile(nr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	if err := os.WriteFile(nr, []byte(strconv.Itoa(n+need)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(nr, old, 0) })
	s := l.open(l.hA, nil, p.ifA, 0, Options{NumFrames: frames, HugePages: true, BusyPollUsecs: 50, PreferBusyPoll: true, BusyPollBudget: 64})
	t.Logf("UMEM on hugepages: %v", s.HugePages())
	if free := hugePagesFree(t); !s.HugePages() && free >= need {
		t.Errorf("UMEM on normal pages with %d hugepages free", free)
	} else if !s.HugePages() {
		t.Logf("only %d hugepages could be reserved: the hugepage half is not checked", free)
	}
	for _, o := range []struct {
		name      string
		opt, want int
	}{{"SO_BUSY_POLL", unix.SO_BUSY_POLL, 50}, {"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1}} {
		// SO_BUSY_POLL_BUDGET cannot be read back (ENOPROTOOPT): that
		// Open set it without an error is the check.
		if v, err := unix.GetsockoptInt(s.FD(), unix.SOL_SOCKET, o.opt); err != nil || v != o.want {
			t.Errorf("%s: %d, %v; want %d", o.name, v, err, o.want)
		}
	}
	// The hugepage UMEM carries traffic like any other.
	pkts := make([]fastpath.Packet, 1)
	if s.Alloc(pkts) != 1 || len(pkts[0].Frame) != fastpath.FrameSize {
		t.Fatal("Alloc from the hugepage UMEM")
	}
	s.Free(pkts)
}

// TestSyscallsPerPacket: under steady load (an AF_XDP socket on the peer's
// end sending batches flat out), a loop shaped like the daemon's worker
// (Recv a batch, Send it back out, poll(2) only when nothing came) makes
// far fewer syscalls than it moves packets: sendto only when the TX ring
// asks for a kick (once per Send in copy mode), recvfrom only when the fill
// ring asks, poll(2) only when idle. The Polls counter counts the sleeps.
func TestSyscallsPerPacket(t *testing.T) {
	for _, batch := range []int{fastpath.Batch, fastpath.MaxBatch} {
		t.Run(strconv.Itoa(batch), func(t *testing.T) { syscallsPerPacket(t, batch) })
	}
}

func syscallsPerPacket(t *testing.T, batch int) {
	l := newLab(t, 1)
	p := l.pairs[0]
	m := l.redirect(l.hA, p.ifA)
	a := l.open(l.hA, m, p.ifA, 0, Options{})
	gen := l.open(l.hB, nil, p.ifB, 0, Options{})

	// A local experimental EtherType: B's kernel drops the frames A
	// sends back without answering them.
	proto := []byte{0x88, 0xb5}
	const total = 100_000
	done := make(chan struct{})
	genDone := make(chan int, 1)
	go func() {
		sent := 0
		pkts := make([]fastpath.Packet, fastpath.Batch)
		var none [1]fastpath.Packet
		for sent < total {
			select {
			case <-done:
				genDone <- sent
				return
			default:
			}
			gen.Recv(none[:]) // reaps completions
			n := gen.Alloc(pkts[:min(len(pkts), total-sent)])
			for i := range pkts[:n] {
				b := pkts[i].Frame[pkts[i].Off:]
				copy(b[0:6], p.macA)
				copy(b[6:12], p.macB)
				copy(b[12:14], proto)
				clear(b[14:60])
				pkts[i].Len = 60
			}
			k := gen.Send(pkts[:n])
			gen.Free(pkts[k:n])
			sent += k
			if n == 0 || k < n {
				time.Sleep(50 * time.Microsecond) // the ring or the UMEM is full: let the kernel catch up
			}
		}
		genDone <- sent
	}()

	// Run until the generator is done and the socket went idle.
	buf := make([]fastpath.Packet, batch)
	sent := -1
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if n := a.Recv(buf); n > 0 {
			k := a.Send(buf[:n])
			a.Free(buf[k:n])
			continue
		}
		if sent < 0 {
			select {
			case sent = <-genDone:
			default:
			}
		}
		ready, err := PollAny(5*time.Millisecond, a)
		if err != nil {
			t.Fatal(err)
		}
		if ready == 0 && sent >= 0 {
			break
		}
	}
	close(done)
	if sent < 0 {
		sent = <-genDone
	}
	st, err := a.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RxPackets < total/2 {
		t.Fatalf("received %d of %d sent", st.RxPackets, sent)
	}
	sys := st.TxKicks + st.RxKicks + st.Polls
	per := float64(sys) / float64(st.RxPackets)
	t.Logf("batch %d: %d packets received of %d sent, %d sendto + %d recvfrom + %d poll = %.4f syscalls per packet (%.0f packets per syscall); kernel %+v",
		batch, st.RxPackets, sent, st.TxKicks, st.RxKicks, st.Polls, per, 1/per, st.Kernel)
	// A syscall per packet would be 1; a kick per Send of a full batch is
	// 1/batch. The bound leaves room for a generator slower than the loop
	// (small batches) on a busy machine.
	if per > 0.25 {
		t.Errorf("%.3f syscalls per packet under load: want < 0.25", per)
	}
}

// TestVethZeroCopy records what veth does with XDP_ZEROCOPY: even with its
// native XDP program attached, bind refuses zero-copy with EOPNOTSUPP (veth
// has no ndo_xsk_wakeup, which the kernel requires of a zero-copy driver),
// copy mode binds, and ModeAuto lets the kernel settle on copy mode. This
// is the refusal the daemon's zerocopy: auto falls back on.
func TestVethZeroCopy(t *testing.T) {
	l := newLab(t, 1)
	p := l.pairs[0]
	l.redirect(l.hA, p.ifA)
	var err error
	if err = l.hA.Do(func() error {
		s, err := Open(p.ifA, 0, Options{Mode: ModeZeroCopy})
		if err == nil {
			s.Close()
		}
		return err
	}); err == nil {
		t.Fatal("veth bound zero-copy: update the package doc and README, which say it cannot")
	}
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("zero-copy on veth: %v, want EOPNOTSUPP", err)
	}
	t.Logf("zero-copy on veth with native XDP: %v", err)
	// Copy on A's end, auto on B's: the kernel lets go of a socket's
	// queue asynchronously, so A's queue 0 is not bound twice.
	for _, c := range []struct {
		m       Mode
		h       *testlab.Netns
		ifindex int
	}{{ModeCopy, l.hA, p.ifA}, {ModeAuto, l.hB, p.ifB}} {
		s := l.open(c.h, nil, c.ifindex, 0, Options{Mode: c.m})
		if s.ZeroCopy() {
			t.Errorf("mode %v on veth: bound zero-copy", c.m)
		}
		if st, err := s.Stats(); err != nil || st.ZeroCopy {
			t.Errorf("mode %v: Stats says zero-copy %v (%v)", c.m, st.ZeroCopy, err)
		}
	}
}
