// Package fastpath is the data plane's engine: workers that move batches
// of packets from a Port through the ESP pipeline to another Port.
//
// Outbound (protected side → unprotected side):
//
//	RX batch → Ethernet/IP → SPD (PROTECT / BYPASS / DISCARD) → SA
//	→ sequence numbers (reserved once per SA per batch) → encap + seal
//	→ Ethernet → TX batch
//
// Inbound (unprotected side → protected side):
//
//	RX batch → Ethernet/IP → ESP or ESP-in-UDP → SA by SPI (lock-free)
//	→ replay pre-check → open → replay update → decap → selector check
//	→ Ethernet → TX batch
//
// The hot path allocates nothing, takes no locks, makes no syscalls and
// calls interfaces once per batch, not per packet. Each drop has its own
// counter; counters are kept in the worker and published once per batch.
//
// The directions live in outbound.go and inbound.go; the counters, and
// the one list of their names, in stats.go.
//
// A PROTECT policy without an SA drops its packets (no_sa); when the
// policy is a trap, the worker also raises an acquire through an Acquirer,
// rate-limited per policy, so the control plane negotiates the SA.
package fastpath

import "net/netip"

// Frame geometry. Every frame a Port hands out is FrameSize bytes, with
// the Ethernet frame starting at least Headroom bytes in, so that ESP
// encapsulation in place never has to move the payload.
const (
	FrameSize = 2048
	Headroom  = 256
	// Batch is the packets a worker moves per poll and port by default
	// (Config.Batch); MaxBatch the most it may be set to.
	Batch    = 64
	MaxBatch = 256
)

// Packet is one frame owned by the worker between Recv and Send/Free.
type Packet struct {
	// Frame is the whole frame buffer; its capacity bounds growth.
	Frame []byte
	// Off and Len locate the Ethernet frame inside Frame.
	Off, Len int
	// Addr is the port's own handle for the frame (a UMEM address).
	Addr uint64
}

// Data returns the Ethernet frame.
func (p *Packet) Data() []byte { return p.Frame[p.Off : p.Off+p.Len] }

// Port moves batches of frames. Implementations: the in-memory MemPort
// (tests, benchmarks) and AF_XDP sockets (package xsk). Methods are called
// once per batch by a single worker goroutine.
type Port interface {
	// Recv fills pkts with received frames and returns how many.
	Recv(pkts []Packet) int
	// Send queues frames for transmission and takes ownership of those
	// it accepted (the first n); the caller frees the rest.
	Send(pkts []Packet) (n int)
	// Free gives frames back unsent.
	Free(pkts []Packet)
	// Alloc fills pkts with empty frames to transmit on this port, for
	// when a packet crosses from another port's memory.
	Alloc(pkts []Packet) int
	// Shares reports whether this port can transmit frames received on
	// other (same memory), so packets cross without a copy.
	Shares(other Port) bool
}

// Hop is the Ethernet header a packet leaves with.
type Hop struct {
	Src, Dst [6]byte
}

// NextHop resolves the link-layer destination of a packet by its IP
// destination. The gateway's netlink-backed table and the tests' static
// tables implement it. It is called once per batch run of one destination
// (workers cache the last answer), never per packet.
type NextHop interface {
	Lookup(dst netip.Addr) (Hop, bool)
}

// StaticHop always answers with the same hop: a point-to-point link or a
// test.
type StaticHop Hop

// Lookup implements NextHop.
func (h StaticHop) Lookup(netip.Addr) (Hop, bool) { return Hop(h), true }
