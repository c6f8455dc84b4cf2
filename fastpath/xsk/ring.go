package xsk

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is the user-space half of one of the four single-producer,
// single-consumer rings the kernel shares with us. Producer and consumer
// are free-running 32-bit counters; the slot is counter & mask. We own one
// of the two counters and keep it in a local copy; the kernel's counter is
// read with an atomic load (acquire) once per batch, and ours is published
// with an atomic store (release) after the descriptors are written, which
// is the ordering the kernel's ring protocol requires.
type ring struct {
	mem   []byte // the mapping, for munmap
	prod  *uint32
	cons  *uint32
	flags *uint32
	mask  uint32
	size  uint32
	local uint32 // our counter: prod for fill/TX, cons for RX/completion
}

// needWakeup reports whether the kernel asked to be kicked
// (XDP_RING_NEED_WAKEUP) before it looks at this ring again.
func (r *ring) needWakeup() bool {
	return atomic.LoadUint32(r.flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// free is how many slots a producer ring has room for.
func (r *ring) free() uint32 {
	return r.size - (r.local - atomic.LoadUint32(r.cons))
}

// ready is how many entries a consumer ring holds for us.
func (r *ring) ready() uint32 {
	return atomic.LoadUint32(r.prod) - r.local
}

// publish makes our counter visible to the kernel.
func (r *ring) publishProd() { atomic.StoreUint32(r.prod, r.local) }
func (r *ring) publishCons() { atomic.StoreUint32(r.cons, r.local) }

// pending is how many entries on a producer ring the kernel has not
// consumed yet.
func (r *ring) pending() uint32 {
	return r.local - atomic.LoadUint32(r.cons)
}

// addrRing is a fill or completion ring: its descriptors are UMEM
// addresses.
type addrRing struct {
	ring
	descs []uint64
}

// descRing is an RX or TX ring: its descriptors are address, length and
// options.
type descRing struct {
	ring
	descs []unix.XDPDesc
}

// mapRing maps one ring of entries descriptors of descSize bytes at the
// page offset pgoff, laid out as off says.
func mapRing(fd int, pgoff int64, off *unix.XDPRingOffset, entries int, descSize uintptr) (ring, unsafe.Pointer, error) {
	size := int(off.Desc) + entries*int(descSize)
	mem, err := unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, nil, err
	}
	r := ring{
		mem:   mem,
		prod:  (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		cons:  (*uint32)(unsafe.Pointer(&mem[off.Consumer])),
		flags: (*uint32)(unsafe.Pointer(&mem[off.Flags])),
		mask:  uint32(entries - 1),
		size:  uint32(entries),
	}
	return r, unsafe.Pointer(&mem[off.Desc]), nil
}

func mapAddrRing(fd int, pgoff int64, off *unix.XDPRingOffset, entries int, producer bool) (addrRing, error) {
	r, p, err := mapRing(fd, pgoff, off, entries, unsafe.Sizeof(uint64(0)))
	if err != nil {
		return addrRing{}, err
	}
	r.local = startCounter(&r, producer)
	return addrRing{ring: r, descs: unsafe.Slice((*uint64)(p), entries)}, nil
}

func mapDescRing(fd int, pgoff int64, off *unix.XDPRingOffset, entries int, producer bool) (descRing, error) {
	r, p, err := mapRing(fd, pgoff, off, entries, unsafe.Sizeof(unix.XDPDesc{}))
	if err != nil {
		return descRing{}, err
	}
	r.local = startCounter(&r, producer)
	return descRing{ring: r, descs: unsafe.Slice((*unix.XDPDesc)(p), entries)}, nil
}

// startCounter reads our counter's initial value from the shared page (zero
// on a fresh ring, but reading it costs nothing and is exact).
func startCounter(r *ring, producer bool) uint32 {
	if producer {
		return atomic.LoadUint32(r.prod)
	}
	return atomic.LoadUint32(r.cons)
}

func (r *ring) unmap() error {
	if r.mem == nil {
		return nil
	}
	mem := r.mem
	*r = ring{}
	return unix.Munmap(mem)
}

// getsockopt is a raw getsockopt(2) for the struct-valued SOL_XDP options
// x/sys/unix has no typed helper for. It allocates nothing.
func getsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// setsockopt is the struct-valued twin of getsockopt.
func setsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt),
		uintptr(p), size, 0)
	if e != 0 {
		return e
	}
	return nil
}

func ringErr(what string, err error) error {
	return fmt.Errorf("%s ring: %w", what, err)
}
