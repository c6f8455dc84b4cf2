package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stats is a snapshot of a socket's counters and of where its UMEM's
// frames are. Every frame of a UMEM is in exactly one place, so while the
// worker is between calls
//
//	Frames == Free + Held + Lost + Σ(Filled + TxInFlight)
//
// summed over the open sockets sharing the UMEM (one socket when it has
// its own). Taken while the worker runs, the fields are each exact but not
// from one instant.
type Stats struct {
	// Traffic through Recv and Send.
	RxPackets, RxBytes uint64
	TxPackets, TxBytes uint64
	// TxRingFull counts frames Send refused for want of TX ring room (the
	// caller frees them); TxInvalid, accepted frames Send freed because
	// Off/Len did not fit the frame.
	TxRingFull, TxInvalid uint64
	// Fills counts frames posted on the fill ring; Completions, frames
	// reaped from the completion ring.
	Fills, Completions uint64
	// TxKicks and RxKicks count sendto and recvfrom wakeups made because
	// the kernel set need_wakeup; KickErrors, those that failed for a
	// reason other than a busy or short-of-memory kernel.
	TxKicks, RxKicks, KickErrors uint64
	// Polls counts poll(2) calls that waited on this socket (Poll, and
	// PollAny for each socket it was given): an idle worker's sleeps.
	// TxKicks + RxKicks + Polls over the packets is the syscalls per
	// packet.
	Polls uint64
	// BadFrames counts frames handed to Send or Free that the worker did
	// not hold (double frees, foreign frames) and descriptors from the
	// kernel that named no frame posted for receive; UMEM-wide.
	BadFrames uint64

	// Frame accounting. Frames, Free, Held and Lost are UMEM-wide: Held
	// is with the worker (between Recv/Alloc and Send/Free), Lost was
	// abandoned on the rings of closed sharing sockets. Filled (posted
	// for receive: on the fill ring, in the kernel, or on the RX ring)
	// and TxInFlight (on the TX or completion ring) are this socket's.
	Frames, Free, Held, Lost int
	Filled, TxInFlight       int
	// Ring occupancy now: FillRing and RxRing are part of Filled,
	// TxRing part of TxInFlight.
	FillRing, RxRing, TxRing int

	// ZeroCopy reports the mode the kernel chose; HugePages whether the
	// UMEM is on 2 MiB hugepages.
	ZeroCopy, HugePages bool

	// Kernel is the socket's XDP_STATISTICS.
	Kernel KernelStats
}

// KernelStats are the kernel's counters for one AF_XDP socket
// (struct xdp_statistics).
type KernelStats struct {
	// RxDropped: frames dropped for reasons other than the two below
	// (e.g. too big for the frame).
	RxDropped uint64
	// RxInvalidDescs and TxInvalidDescs: descriptors the kernel rejected.
	RxInvalidDescs, TxInvalidDescs uint64
	// RxRingFull: frames dropped because the RX ring was full.
	RxRingFull uint64
	// RxFillRingEmptyDescs: times the kernel found the fill ring empty.
	RxFillRingEmptyDescs uint64
	// TxRingEmptyDescs: times the kernel found the TX ring empty.
	TxRingEmptyDescs uint64
}

// Stats returns the socket's counters. It may run concurrently with the
// worker; it makes one getsockopt.
func (s *Socket) Stats() (Stats, error) {
	u := s.u
	if u == nil {
		return Stats{}, ErrClosed
	}
	st := Stats{
		RxPackets:   s.c.rxPackets.Load(),
		RxBytes:     s.c.rxBytes.Load(),
		TxPackets:   s.c.txPackets.Load(),
		TxBytes:     s.c.txBytes.Load(),
		TxRingFull:  s.c.txRingFull.Load(),
		TxInvalid:   s.c.txInvalid.Load(),
		Fills:       s.c.fills.Load(),
		Completions: s.c.completions.Load(),
		TxKicks:     s.c.txKicks.Load(),
		RxKicks:     s.c.rxKicks.Load(),
		KickErrors:  s.c.errs.Load(),
		Polls:       s.c.polls.Load(),
		BadFrames:   u.bad.Load(),
		Frames:      u.frames,
		Free:        int(u.nfree.Load()),
		Held:        int(u.held.Load()),
		Lost:        int(u.lost.Load()),
		Filled:      int(s.filled.Load()),
		TxInFlight:  int(s.txInFlight.Load()),
		// Read both counters from the shared pages: the worker's local
		// copies are not for other goroutines.
		FillRing:  occupancy(&s.fill.ring),
		RxRing:    occupancy(&s.rx.ring),
		TxRing:    occupancy(&s.tx.ring),
		ZeroCopy:  s.zeroCopy,
		HugePages: u.huge,
	}
	var ks unix.XDPStatistics
	if err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&ks), unsafe.Sizeof(ks)); err != nil {
		return st, fmt.Errorf("xsk: ifindex %d queue %d: XDP_STATISTICS: %w", s.ifindex, s.queue, err)
	}
	st.Kernel = KernelStats{
		RxDropped:            ks.Rx_dropped,
		RxInvalidDescs:       ks.Rx_invalid_descs,
		TxInvalidDescs:       ks.Tx_invalid_descs,
		RxRingFull:           ks.Rx_ring_full,
		RxFillRingEmptyDescs: ks.Rx_fill_ring_empty_descs,
		TxRingEmptyDescs:     ks.Tx_ring_empty_descs,
	}
	return st, nil
}

func occupancy(r *ring) int {
	return int(atomic.LoadUint32(r.prod) - atomic.LoadUint32(r.cons))
}
