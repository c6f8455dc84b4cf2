package xsk

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/xdpsec/xdpsec/fastpath"
	"golang.org/x/sys/unix"
)

// ErrClosed is returned by methods of a closed Socket.
var ErrClosed = errors.New("xsk: socket closed")

// maxKicks bounds the sendto calls one kick may make when the kernel stops
// early (copy mode sends a budget of frames per call, then says EAGAIN).
const maxKicks = 4

// Socket is an AF_XDP socket bound to one queue of one interface, with its
// four rings and a UMEM of its own or shared with other sockets. It
// implements fastpath.Port. Recv, Send, Free, Alloc and Poll are for one
// goroutine (the queue's worker), which must also drive every other socket
// sharing the UMEM; Stats may be called from any goroutine.
type Socket struct {
	fd             int
	ifindex, queue int
	u              *umem // nil once closed
	shared         bool  // bound with XDP_SHARED_UMEM to another socket's UMEM
	zeroCopy       bool
	txBudget       uint32 // frames per copy-mode sendto, when the kernel took our setting

	fill, comp addrRing
	rx, tx     descRing

	fillTarget int64 // frames to keep posted on the fill ring
	refillMin  int64 // refill once at least this many are missing

	// Frame accounting of this socket, atomic so Stats can read it.
	filled     atomic.Int64 // posted for receive and not yet taken off the RX ring
	txInFlight atomic.Int64 // put on the TX ring and not yet reaped from completion

	c counters

	pfd [1]unix.PollFd
	ts  unix.Timespec
}

type counters struct {
	rxPackets, rxBytes     atomic.Uint64
	txPackets, txBytes     atomic.Uint64
	txRingFull, txInvalid  atomic.Uint64
	fills, completions     atomic.Uint64
	txKicks, rxKicks, errs atomic.Uint64
	polls                  atomic.Uint64
}

var _ fastpath.Port = (*Socket)(nil)

// Open creates an AF_XDP socket on queue of the interface ifindex, maps its
// rings, binds it with need_wakeup, and posts FillFrames frames on its fill
// ring. Steering packets to it (putting FD in an XSKMAP) is the caller's
// job. It needs CAP_NET_RAW and CAP_BPF or root, and must run in the
// network namespace of the interface.
func Open(ifindex, queue int, opts Options) (*Socket, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("xsk: ifindex %d: want > 0", ifindex)
	}
	if queue < 0 {
		return nil, fmt.Errorf("xsk: queue %d: want >= 0", queue)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("xsk: ifindex %d queue %d: %w", ifindex, queue, err)
	}
	s, err := open(ifindex, queue, o)
	if err != nil {
		return nil, fmt.Errorf("xsk: ifindex %d queue %d: %w", ifindex, queue, err)
	}
	return s, nil
}

func open(ifindex, queue int, o Options) (_ *Socket, err error) {
	s := &Socket{fd: -1, ifindex: ifindex, queue: queue}
	if owner := o.ShareWith; owner != nil {
		if owner.ifindex == ifindex && owner.queue == queue {
			// Same queue would mean sharing the owner's fill and
			// completion rings between two sockets; the gateway runs one
			// socket per queue, so that is not supported here.
			return nil, errors.New("sharing a UMEM with a socket on the same queue is not supported")
		}
		if owner.u == nil || !owner.u.ref() {
			return nil, errors.New("ShareWith socket is closed")
		}
		s.u, s.shared = owner.u, true
	} else {
		if s.u, err = newUMEM(o.NumFrames, o.HugePages); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			s.Close() // undoes whatever was set up; the first error is the one to report
		}
	}()

	if s.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("socket(AF_XDP): %w", err)
	}
	for _, b := range []struct {
		name   string
		opt, v int
	}{
		{"SO_BUSY_POLL", unix.SO_BUSY_POLL, o.BusyPollUsecs},
		{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, b2i(o.PreferBusyPoll)},
		{"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, o.BusyPollBudget},
	} {
		if b.v == 0 {
			continue
		}
		if err = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, b.opt, b.v); err != nil {
			return nil, fmt.Errorf("%s %d: %w", b.name, b.v, err)
		}
	}
	if !s.shared {
		reg := unix.XDPUmemReg{
			Addr:     uint64(uintptr(unsafe.Pointer(&s.u.mem[0]))),
			Len:      uint64(len(s.u.mem)),
			Size:     fastpath.FrameSize,
			Headroom: umemHeadroom,
		}
		if err = setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
			return nil, fmt.Errorf("XDP_UMEM_REG (%d frames): %w", s.u.frames, err)
		}
	}
	// A socket sharing a UMEM on another interface or queue still needs
	// its own fill and completion rings: those belong to a (device, queue).
	for _, r := range []struct {
		name string
		opt  int
		n    int
	}{
		{"fill", unix.XDP_UMEM_FILL_RING, o.FillSize},
		{"completion", unix.XDP_UMEM_COMPLETION_RING, o.CompletionSize},
		{"rx", unix.XDP_RX_RING, o.RxSize},
		{"tx", unix.XDP_TX_RING, o.TxSize},
	} {
		if err = unix.SetsockoptInt(s.fd, unix.SOL_XDP, r.opt, r.n); err != nil {
			return nil, ringErr(r.name, fmt.Errorf("size %d: %w", r.n, err))
		}
	}
	var off unix.XDPMmapOffsets
	if err = getsockopt(s.fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, fmt.Errorf("XDP_MMAP_OFFSETS: %w", err)
	}
	if s.fill, err = mapAddrRing(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, &off.Fr, o.FillSize, true); err != nil {
		return nil, ringErr("fill", err)
	}
	if s.comp, err = mapAddrRing(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, &off.Cr, o.CompletionSize, false); err != nil {
		return nil, ringErr("completion", err)
	}
	if s.rx, err = mapDescRing(s.fd, unix.XDP_PGOFF_RX_RING, &off.Rx, o.RxSize, false); err != nil {
		return nil, ringErr("rx", err)
	}
	if s.tx, err = mapDescRing(s.fd, unix.XDP_PGOFF_TX_RING, &off.Tx, o.TxSize, true); err != nil {
		return nil, ringErr("tx", err)
	}

	sa := &unix.SockaddrXDP{Flags: o.bindFlags(), Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if s.shared {
		sa.SharedUmemFD = uint32(o.ShareWith.fd)
	}
	if err = unix.Bind(s.fd, sa); err != nil {
		return nil, fmt.Errorf("bind (mode %v, flags %#x): %w", o.Mode, sa.Flags, err)
	}

	// Copy mode transmits a budget of frames per sendto (32 by default)
	// and leaves the rest for the next kick; a budget of a whole ring
	// lets one kick drain a batch. Older kernels lack the option, and
	// then the kick loop and Recv's re-kick cover the remainder.
	budget := uint32(o.TxSize)
	if setsockopt(s.fd, unix.XDP_MAX_TX_SKB_BUDGET, unsafe.Pointer(&budget), unsafe.Sizeof(budget)) == nil {
		s.txBudget = budget
	}

	var xo uint32 // struct xdp_options
	if err = getsockopt(s.fd, unix.XDP_OPTIONS, unsafe.Pointer(&xo), unsafe.Sizeof(xo)); err != nil {
		return nil, fmt.Errorf("XDP_OPTIONS: %w", err)
	}
	s.zeroCopy = xo&unix.XDP_OPTIONS_ZEROCOPY != 0

	s.fillTarget = int64(o.FillFrames)
	s.refillMin = max(min(int64(fastpath.Batch), s.fillTarget/4), 1)
	s.refill(true)
	return s, nil
}

// FD is the socket's descriptor, to put in an XSKMAP.
func (s *Socket) FD() int { return s.fd }

// Ifindex is the interface the socket is bound to.
func (s *Socket) Ifindex() int { return s.ifindex }

// Queue is the queue the socket is bound to.
func (s *Socket) Queue() int { return s.queue }

// ZeroCopy reports whether the kernel bound the socket in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// HugePages reports whether the socket's UMEM is on hugepages.
func (s *Socket) HugePages() bool { return s.u != nil && s.u.huge }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close unbinds the socket and unmaps its rings; the UMEM is unmapped with
// the last socket using it. Frames the worker still holds must not be
// touched afterwards. Frames posted on a closed sharing socket's rings are
// lost to the other sockets of the UMEM (counted in Stats.Lost): the
// kernel may still hold them, so close sharing sockets together. Close is
// idempotent.
func (s *Socket) Close() error {
	u := s.u
	if u == nil {
		return nil
	}
	s.u = nil
	var errs []error
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	}
	for _, r := range []*ring{&s.fill.ring, &s.comp.ring, &s.rx.ring, &s.tx.ring} {
		if err := r.unmap(); err != nil {
			errs = append(errs, fmt.Errorf("munmap ring: %w", err))
		}
	}
	s.fill.descs, s.comp.descs, s.rx.descs, s.tx.descs = nil, nil, nil, nil
	u.lost.Add(s.filled.Load() + s.txInFlight.Load())
	if err := u.unref(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xsk: ifindex %d queue %d: %w", s.ifindex, s.queue, err)
	}
	return nil
}

// Recv implements fastpath.Port. It first reaps finished transmissions,
// then takes up to len(pkts) received frames (Off is where the kernel put
// the Ethernet frame: fastpath.Headroom unless the XDP program moved it),
// then tops the fill ring up in one batch.
func (s *Socket) Recv(pkts []fastpath.Packet) int {
	u := s.u
	if u == nil {
		return 0
	}
	s.reap()
	rx := &s.rx
	n := min(rx.ready(), uint32(len(pkts)))
	got := 0
	var bytes uint64
	for range n {
		d := &rx.descs[rx.local&rx.mask]
		rx.local++
		if u.rxPacket(d, &pkts[got]) {
			bytes += uint64(d.Len)
			got++
		}
	}
	if n > 0 {
		rx.publishCons()
		s.filled.Add(-int64(n))
		if got > 0 {
			u.held.Add(int64(got))
			s.c.rxPackets.Add(uint64(got))
			s.c.rxBytes.Add(bytes)
		}
	}
	s.refill(false)
	if got == 0 && s.fill.needWakeup() {
		// A zero-copy driver that ran dry of fill descriptors waits to be
		// told that more are there.
		s.kickRx()
	}
	if s.tx.pending() > 0 && s.tx.needWakeup() {
		// Frames an earlier kick left on the TX ring (copy mode's
		// per-call budget, a busy device) go now.
		s.kickTx()
	}
	return got
}

// Send implements fastpath.Port. It accepts as many frames as the TX ring
// has room for, puts them on it as they are (Frame[Off:Off+Len]), and
// kicks the kernel with sendto only when the ring's need_wakeup flag asks
// for it. Accepted frames with an impossible Off/Len are freed and
// counted; frames that are not this UMEM's (or not the worker's) are
// counted and ignored.
func (s *Socket) Send(pkts []fastpath.Packet) int {
	u := s.u
	if u == nil || len(pkts) == 0 {
		return 0
	}
	s.reap()
	tx := &s.tx
	n := min(len(pkts), int(tx.free()))
	if n < len(pkts) {
		s.c.txRingFull.Add(uint64(len(pkts) - n))
	}
	queued, dropped := 0, 0
	var bytes uint64
	for k := range pkts[:n] {
		p := &pkts[k]
		i, ok := u.owned(p)
		if !ok {
			u.bad.Add(1)
			continue
		}
		if p.Off < 0 || p.Len <= 0 || p.Len > fastpath.FrameSize-p.Off {
			u.state[i] = stFree
			u.free = append(u.free, p.Addr)
			p.Frame = nil
			dropped++
			continue
		}
		d := &tx.descs[tx.local&tx.mask]
		d.Addr = p.Addr + uint64(p.Off)
		d.Len = uint32(p.Len)
		d.Options = 0
		tx.local++
		u.state[i] = stTx
		p.Frame = nil // the frame is the kernel's until it completes
		queued++
		bytes += uint64(p.Len)
	}
	if dropped > 0 {
		s.c.txInvalid.Add(uint64(dropped))
		u.nfree.Add(int64(dropped))
	}
	if queued+dropped > 0 {
		u.held.Add(-int64(queued + dropped))
	}
	if queued > 0 {
		tx.publishProd()
		s.txInFlight.Add(int64(queued))
		s.c.txPackets.Add(uint64(queued))
		s.c.txBytes.Add(bytes)
		if tx.needWakeup() {
			s.kickTx()
		}
	}
	return n
}

// Free implements fastpath.Port. Frames of any socket sharing this UMEM
// may be freed here.
func (s *Socket) Free(pkts []fastpath.Packet) {
	if s.u != nil {
		s.u.release(pkts)
	}
}

// Alloc implements fastpath.Port: it hands out free frames with Off at
// fastpath.Headroom and Len 0.
func (s *Socket) Alloc(pkts []fastpath.Packet) int {
	if s.u == nil {
		return 0
	}
	return s.u.alloc(pkts)
}

// Shares implements fastpath.Port: sockets on one UMEM transmit each
// other's frames without a copy.
func (s *Socket) Shares(other fastpath.Port) bool {
	o, ok := other.(*Socket)
	return ok && o != nil && s.u != nil && o.u == s.u
}

// reap takes finished transmissions off the completion ring and frees
// their frames.
func (s *Socket) reap() {
	c := &s.comp
	n := c.ready()
	if n == 0 {
		return
	}
	u := s.u
	freed := 0
	for range n {
		if u.reclaim(c.descs[c.local&c.mask], stTx) {
			freed++
		}
		c.local++
	}
	c.publishCons()
	s.txInFlight.Add(-int64(n))
	u.nfree.Add(int64(freed))
	s.c.completions.Add(uint64(n))
}

// refill tops the fill ring up to fillTarget from the free list, once at
// least refillMin frames are missing (or always, with force), so the
// producer index is published once per batch, not per frame.
func (s *Socket) refill(force bool) {
	want := s.fillTarget - s.filled.Load()
	if want <= 0 || (!force && want < s.refillMin) {
		return
	}
	u := s.u
	f := &s.fill
	n := min(want, int64(f.free()), int64(len(u.free)))
	if n <= 0 {
		return
	}
	top := len(u.free) - int(n)
	for _, base := range u.free[top:] {
		f.descs[f.local&f.mask] = base
		f.local++
		u.state[base/fastpath.FrameSize] = stFill
	}
	u.free = u.free[:top]
	f.publishProd()
	s.filled.Add(n)
	u.nfree.Add(-n)
	s.c.fills.Add(uint64(n))
}

// kickTx asks the kernel to transmit what is on the TX ring. In copy mode
// the work happens inside this sendto; a partial send says EAGAIN, and we
// reap completions (whose ring may be what stopped it) and go again, a
// bounded number of times.
func (s *Socket) kickTx() {
	for range maxKicks {
		s.c.txKicks.Add(1)
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return
		case unix.EAGAIN, unix.EBUSY, unix.EINTR:
			s.reap()
			if s.tx.pending() == 0 {
				return
			}
		case unix.ENOBUFS:
			// The kernel is short of memory for the copy; the frames stay
			// on the ring for the next kick.
			return
		default:
			s.c.errs.Add(1)
			return
		}
	}
}

// kickRx wakes a driver waiting for fill descriptors.
func (s *Socket) kickRx() {
	s.c.rxKicks.Add(1)
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	if e != 0 && e != unix.EAGAIN && e != unix.EINTR && e != unix.EBUSY {
		s.c.errs.Add(1)
	}
}
