package xsk

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/internal/enum"
	"golang.org/x/sys/unix"
)

// Defaults for zero Options fields: 16 MiB of frames and a fill ring of
// 4096, which keeps a worker that another task held off its CPU from
// dropping at the fill ring (the A/B in bench/RESULTS.md, "AF_XDP
// levers": 4096/2048 dropped 0.1-2 % at the second gateway, these none).
const (
	DefaultNumFrames = 8192
	DefaultRingSize  = 4096
)

// Limits that keep a typo from pinning gigabytes of memory.
const (
	maxNumFrames = 1 << 20 // 2 GiB of 2 KiB frames
	maxRingSize  = 1 << 16
	// The kernel takes a budget up to U16_MAX; one past a ring is
	// pointless. A second of busy polling per call is already absurd.
	maxBusyPollBudget = maxRingSize
	maxBusyPollUsecs  = 1_000_000
)

// umemHeadroom is the headroom registered with the UMEM. The kernel always
// adds XDP_PACKET_HEADROOM (256) in front of received data on top of it, so
// only the part of fastpath.Headroom beyond that needs reserving here.
const umemHeadroom = max(fastpath.Headroom-unix.XDP_PACKET_HEADROOM, 0)

// rxOff is where the kernel places a received Ethernet frame in its frame,
// unless the XDP program moved the packet start with bpf_xdp_adjust_head.
const rxOff = umemHeadroom + unix.XDP_PACKET_HEADROOM

// Mode is how the kernel moves frames between the NIC and the UMEM.
type Mode int

const (
	// ModeAuto lets the kernel choose: zero-copy where the driver supports
	// it, copy otherwise (veth, and any driver without AF_XDP support).
	ModeAuto Mode = iota
	// ModeCopy forces copy mode (XDP_COPY).
	ModeCopy
	// ModeZeroCopy demands zero-copy (XDP_ZEROCOPY); Open fails where the
	// driver cannot do it.
	ModeZeroCopy
)

var modeNames = [...]string{ModeAuto: "auto", ModeCopy: "copy", ModeZeroCopy: "zero-copy"}

func (m Mode) String() string { return enum.Name(m, modeNames[:], "Mode") }

// Options configures Open. The zero value is a socket with its own UMEM of
// DefaultNumFrames frames, rings of DefaultRingSize entries, and the mode
// left to the kernel. Frames are always fastpath.FrameSize bytes.
type Options struct {
	// NumFrames is the number of frames in the UMEM (default 8192). It
	// must be 0 with ShareWith: the shared UMEM is already sized.
	NumFrames int
	// Ring sizes in descriptors; each a power of two (default 4096).
	FillSize, CompletionSize, RxSize, TxSize int
	// FillFrames is how many frames the socket keeps posted on its fill
	// ring for the kernel to receive into (default min(FillSize,
	// frames/2)). The rest of the UMEM stays free for Alloc and for frames
	// in flight. Sockets sharing a UMEM each post their own FillFrames,
	// so size the owner's NumFrames for all of them.
	FillFrames int
	// Mode selects copy or zero-copy. It must be ModeAuto with ShareWith:
	// the kernel makes a sharing socket inherit the owner's mode.
	Mode Mode
	// ShareWith, when set, binds the new socket with XDP_SHARED_UMEM to the
	// UMEM of that (open, bound) socket, which must be on another
	// interface or queue. Frames then cross between the two sockets
	// without a copy, and both must be driven by the same goroutine.
	ShareWith *Socket
	// HugePages maps a socket's own UMEM from 2 MiB hugepages when the
	// system has enough free (vm.nr_hugepages), else from normal pages;
	// Socket.HugePages says which. Fewer pages to pin and fewer TLB misses
	// on the frame memory the workers touch for every packet.
	HugePages bool
	// Busy polling (SO_BUSY_POLL, SO_PREFER_BUSY_POLL,
	// SO_BUSY_POLL_BUDGET on the socket): BusyPollUsecs > 0 lets the
	// socket's wakeup calls poll the NIC's queue for that long instead of
	// waiting for its interrupt; PreferBusyPoll asks the kernel to leave
	// the queue to those calls (with the device's napi_defer_hard_irqs and
	// gro_flush_timeout set); BusyPollBudget is the packets per poll (0:
	// the kernel's 8).
	BusyPollUsecs  int
	PreferBusyPoll bool
	BusyPollBudget int
}

// withDefaults checks o and fills in its zero fields. frames is the size
// of the UMEM the socket will use (its own or the shared one).
func (o Options) withDefaults() (Options, error) {
	if o.ShareWith != nil {
		if o.NumFrames != 0 {
			return o, errors.New("NumFrames must be 0 when sharing a UMEM")
		}
		if o.Mode != ModeAuto {
			return o, fmt.Errorf("mode %v: a socket sharing a UMEM inherits the owner's mode", o.Mode)
		}
		if o.ShareWith.u == nil {
			return o, errors.New("ShareWith socket is closed")
		}
		o.NumFrames = o.ShareWith.u.frames
	} else if o.NumFrames == 0 {
		o.NumFrames = DefaultNumFrames
	}
	if o.NumFrames < 1 || o.NumFrames > maxNumFrames {
		return o, fmt.Errorf("NumFrames %d: want 1..%d", o.NumFrames, maxNumFrames)
	}
	if o.Mode < ModeAuto || o.Mode > ModeZeroCopy {
		return o, fmt.Errorf("unknown mode %v", o.Mode)
	}
	for _, r := range []struct {
		name string
		v    *int
	}{
		{"FillSize", &o.FillSize},
		{"CompletionSize", &o.CompletionSize},
		{"RxSize", &o.RxSize},
		{"TxSize", &o.TxSize},
	} {
		if *r.v == 0 {
			*r.v = DefaultRingSize
		}
		if *r.v < 1 || *r.v > maxRingSize || bits.OnesCount(uint(*r.v)) != 1 {
			return o, fmt.Errorf("%s %d: want a power of two up to %d", r.name, *r.v, maxRingSize)
		}
	}
	if o.BusyPollUsecs < 0 || o.BusyPollUsecs > maxBusyPollUsecs || o.BusyPollBudget < 0 || o.BusyPollBudget > maxBusyPollBudget {
		return o, fmt.Errorf("busy poll %d µs, budget %d: want 0..%d µs and a budget of 0..%d", o.BusyPollUsecs, o.BusyPollBudget, maxBusyPollUsecs, maxBusyPollBudget)
	}
	if o.FillFrames == 0 {
		o.FillFrames = max(min(o.FillSize, o.NumFrames/2), 1)
	}
	if o.FillFrames < 1 || o.FillFrames > o.FillSize || o.FillFrames > o.NumFrames {
		return o, fmt.Errorf("FillFrames %d: want 1..min(FillSize %d, frames %d)",
			o.FillFrames, o.FillSize, o.NumFrames)
	}
	return o, nil
}

// bindFlags returns the sxdp_flags for bind(2).
func (o Options) bindFlags() uint16 {
	if o.ShareWith != nil {
		// The kernel refuses mode and wakeup flags on a sharing socket: it
		// copies them from the UMEM's owner.
		return unix.XDP_SHARED_UMEM
	}
	f := uint16(unix.XDP_USE_NEED_WAKEUP)
	switch o.Mode {
	case ModeCopy:
		f |= unix.XDP_COPY
	case ModeZeroCopy:
		f |= unix.XDP_ZEROCOPY
	}
	return f
}
