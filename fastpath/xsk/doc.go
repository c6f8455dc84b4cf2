// Package xsk gives the data-plane workers their ports onto the wire:
// AF_XDP sockets (Linux Documentation/networking/af_xdp.rst), one per
// (interface, queue), each implementing fastpath.Port. It implements no
// RFC; it is the transport under the ESP pipeline.
//
// # Why not asavie/xdp alone
//
// github.com/asavie/xdp shows the shape, but registers its UMEM with no
// headroom, binds without need_wakeup (and with process-wide flags),
// cannot share a UMEM between sockets, and makes a sendto on every
// transmit. This package is a thin layer of its own over
// golang.org/x/sys/unix that does those four things; attaching the XDP
// program stays with package bpf.
//
// # Memory and rings
//
// A UMEM is one mmap'd area cut into fastpath.FrameSize (2 KiB) frames,
// registered with XDP_UMEM_REG. Each socket has four single-producer,
// single-consumer rings shared with the kernel:
//
//	fill        we post empty frames       → kernel receives into them
//	rx          kernel posts received data → Recv hands them to the worker
//	tx          Send posts frames to send  → kernel transmits them
//	completion  kernel posts sent frames   → Recv/Send put them back on the free list
//
// A frame's life cycle, with every frame always in exactly one place:
//
//	free list ──refill──► fill ring ──kernel──► RX ring ──Recv──► worker
//	    ▲                                                         │  │
//	    ├────────────────────────── Free ◄────────────────────────┘  │
//	    │                                                            ▼ Send
//	    └──reap── completion ring ◄──kernel (sent)── TX ring ◄───────┘
//
// Alloc takes a frame straight from the free list to the worker, for a
// packet that crosses from another port's memory. A ledger (one byte per
// frame) records each frame's place and checks every move, so a double
// free or a frame from another UMEM is counted in Stats.BadFrames and
// refused instead of corrupting the free list; Stats reports the counts
// per place and the test suite checks that they add up after thousands of
// packets.
//
// The hot path batches everything: Recv reaps completions, takes up to a
// batch off the RX ring and tops up the fill ring once enough frames are
// missing, publishing each ring index once per call; Send writes a
// batch of descriptors and publishes once. Nothing allocates; the ring
// indices are read with atomic loads and published with atomic stores,
// the ordering the kernel's ring protocol needs.
//
// # Headroom
//
// The kernel places received data XDP_PACKET_HEADROOM (256) bytes plus the
// UMEM's registered headroom into a frame, and the RX descriptor's
// address points at the data. fastpath.Headroom is 256, so the UMEM
// headroom is the difference (zero) and received frames arrive with Off =
// fastpath.Headroom: room in front of the Ethernet header for the outer IP,
// UDP and ESP headers, so encapsulation in place never moves the payload.
// Packet.Frame is always the whole frame and Packet.Addr its base address;
// Send transmits Frame[Off:Off+Len], wherever the worker moved Off.
//
// # need_wakeup
//
// Sockets are bound with XDP_USE_NEED_WAKEUP: the kernel sets a flag on a
// ring when it will not look at it again unless woken. Send kicks with
// sendto only when the TX ring's flag is set, and Recv kicks with recvfrom
// only when it found nothing and the fill ring's flag is set; both count
// their kicks. Poll blocks in poll(2) for a worker whose queues are idle,
// and counts it (Stats.Polls): TxKicks + RxKicks + Polls over RxPackets is
// the syscalls per packet, which a test bounds under load in the veth lab.
//
// # Copy and zero-copy
//
// The kernel picks zero-copy where the driver supports it unless Options
// asks otherwise. veth has native XDP but no AF_XDP zero-copy (it lacks
// ndo_xsk_wakeup: a bind with XDP_ZEROCOPY fails with EOPNOTSUPP even with
// its native program attached, as TestVethZeroCopy records), so on veth
// the kernel copies each frame: on receive into our frame, on transmit
// inside the sendto, which sends a budget of frames per call; the socket
// asks for a budget of a whole TX ring (XDP_MAX_TX_SKB_BUDGET, on kernels
// that have it) and otherwise re-kicks until the ring is drained. In copy
// mode the TX ring's need_wakeup flag stays set, so every Send with
// frames makes one sendto. A veth that sends into an AF_XDP socket must
// have TX checksum offload off (ethtool -K DEV tx off), or the kernel's
// TCP and UDP checksums arrive unfinished.
//
// # Shared UMEM
//
// With Options.ShareWith a socket binds with XDP_SHARED_UMEM to another
// socket's UMEM on a different interface or queue, with fill and
// completion rings of its own. A gateway serving a protected and an
// unprotected interface on one queue then moves frames between them
// without a copy (Shares reports true); with separate UMEMs the worker
// crosses frames with Alloc and a copy (the AEAD's output is that copy).
// All sockets on one UMEM share a free list without locks, so one
// goroutine must drive them all — the queue's worker.
package xsk
