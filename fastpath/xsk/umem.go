package xsk

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/xdpsec/xdpsec/fastpath"
	"golang.org/x/sys/unix"
)

// frameState is where a frame is. Every frame is in exactly one state; the
// ledger in umem checks each move, so a double free or a foreign frame is
// counted and refused instead of corrupting the free list.
type frameState uint8

const (
	stFree   frameState = iota + 1 // on the UMEM's free list
	stFill                         // posted on a fill ring, in the kernel, or on an RX ring
	stWorker                       // handed to the worker by Recv or Alloc
	stTx                           // on a TX ring or a completion ring
)

// umem is the frame memory one or more sockets share, with its free list
// and ledger. The hot-path methods are for a single goroutine (the worker
// driving every socket on this UMEM); the counters are atomic so Stats may
// read them from anywhere.
type umem struct {
	mem    []byte // mmap'd, so the GC never moves it and the kernel can pin it
	frames int
	state  []frameState
	free   []uint64 // stack of frame base addresses

	nfree atomic.Int64  // len(free), for Stats
	held  atomic.Int64  // frames with the worker
	lost  atomic.Int64  // frames abandoned in the rings of closed sharing sockets
	bad   atomic.Uint64 // frames handed back that were not the worker's

	huge bool // mem is on 2 MiB hugepages

	mu   sync.Mutex // guards refs; taken only by Open and Close
	refs int
}

// newUMEM maps n frames of anonymous memory, from 2 MiB hugepages when
// huge is set and the system has them free (a hugetlb mapping reserves its
// pages at mmap, so a shortage fails here, not at first touch), else from
// normal pages. fastpath.FrameSize is a power of two and divides the page
// size, so the aligned-chunk mode the kernel uses by default applies and
// no frame straddles a page.
func newUMEM(n int, huge bool) (*umem, error) {
	size := n * fastpath.FrameSize
	if huge && size%hugePageSize == 0 {
		mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE|unix.MAP_HUGETLB|unix.MAP_HUGE_2MB)
		if err == nil {
			u := initUMEM(mem, n)
			u.huge = true
			return u, nil
		}
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap umem of %d frames: %w", n, err)
	}
	return initUMEM(mem, n), nil
}

const hugePageSize = 2 << 20

// initUMEM builds the free list and ledger over mem.
func initUMEM(mem []byte, n int) *umem {
	u := &umem{mem: mem, frames: n, state: make([]frameState, n), free: make([]uint64, 0, n), refs: 1}
	// Pushed high to low so frame 0 comes out first: easier to read in a
	// debugger, and nothing depends on it.
	for i := n - 1; i >= 0; i-- {
		u.free = append(u.free, uint64(i)*fastpath.FrameSize)
		u.state[i] = stFree
	}
	u.nfree.Store(int64(n))
	return u
}

// frame returns frame base as a slice capped at the frame's end, so that
// an append in the worker can never run into the next frame.
func (u *umem) frame(base uint64) []byte {
	return u.mem[base : base+fastpath.FrameSize : base+fastpath.FrameSize]
}

// index returns the frame number of a UMEM address and whether it is in
// range.
func (u *umem) index(addr uint64) (uint64, bool) {
	i := addr / fastpath.FrameSize
	return i, i < uint64(u.frames)
}

// owned reports whether p is a frame of this UMEM that the worker holds:
// its address is a frame base in range, its Frame slice points at that
// frame, and the ledger says the worker has it.
func (u *umem) owned(p *fastpath.Packet) (uint64, bool) {
	i, ok := u.index(p.Addr)
	if !ok || p.Addr%fastpath.FrameSize != 0 || cap(p.Frame) != fastpath.FrameSize ||
		unsafe.SliceData(p.Frame) != &u.mem[p.Addr] || u.state[i] != stWorker {
		return 0, false
	}
	return i, true
}

// alloc hands out up to len(pkts) free frames to the worker with the data
// offset at fastpath.Headroom.
func (u *umem) alloc(pkts []fastpath.Packet) int {
	n := min(len(pkts), len(u.free))
	top := len(u.free) - n
	for i, base := range u.free[top:] {
		u.state[base/fastpath.FrameSize] = stWorker
		pkts[i] = fastpath.Packet{Frame: u.frame(base), Off: fastpath.Headroom, Addr: base}
	}
	u.free = u.free[:top]
	if n > 0 {
		u.nfree.Add(-int64(n))
		u.held.Add(int64(n))
	}
	return n
}

// release takes frames back from the worker. Frames the worker does not
// hold are counted and skipped.
func (u *umem) release(pkts []fastpath.Packet) {
	n := 0
	for k := range pkts {
		p := &pkts[k]
		i, ok := u.owned(p)
		if !ok {
			u.bad.Add(1)
			continue
		}
		u.state[i] = stFree
		u.free = append(u.free, p.Addr)
		p.Frame = nil // a stale slice in the worker must not alias a reused frame
		n++
	}
	if n > 0 {
		u.nfree.Add(int64(n))
		u.held.Add(-int64(n))
	}
}

// reclaim puts a frame the kernel gave back (a completion) on the free
// list. from is the state it must be in.
func (u *umem) reclaim(addr uint64, from frameState) bool {
	i, ok := u.index(addr)
	if !ok || u.state[i] != from {
		u.bad.Add(1)
		return false
	}
	u.state[i] = stFree
	u.free = append(u.free, addr&^(fastpath.FrameSize-1))
	return true
}

// rxPacket turns a descriptor the kernel put on an RX ring into a Packet,
// checking that it names a frame posted for receive and lies inside it.
func (u *umem) rxPacket(d *unix.XDPDesc, p *fastpath.Packet) bool {
	i, ok := u.index(d.Addr)
	if !ok || u.state[i] != stFill {
		u.bad.Add(1)
		return false
	}
	base := d.Addr &^ (fastpath.FrameSize - 1)
	off := int(d.Addr - base)
	if d.Len == 0 || uint64(off)+uint64(d.Len) > fastpath.FrameSize || d.Options != 0 {
		// Empty, past the frame, or a multi-buffer fragment (we never
		// ask for XDP_USE_SG): the frame goes straight back.
		u.state[i] = stFree
		u.free = append(u.free, base)
		u.nfree.Add(1)
		u.bad.Add(1)
		return false
	}
	u.state[i] = stWorker
	*p = fastpath.Packet{Frame: u.frame(base), Off: off, Len: int(d.Len), Addr: base}
	return true
}

// ref adds a socket to the UMEM; it fails once the last socket closed it.
func (u *umem) ref() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.refs == 0 {
		return false
	}
	u.refs++
	return true
}

// unref drops a socket and unmaps the memory with the last one. The kernel
// holds its own pin on the pages, so unmapping while a closed socket still
// sits in an XSKMAP is safe for the kernel.
func (u *umem) unref() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refs--
	if u.refs > 0 {
		return nil
	}
	mem := u.mem
	u.mem, u.free, u.state = nil, nil, nil
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("munmap umem: %w", err)
	}
	return nil
}
