package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// MaxFenced is the capacity of the cluster fence (xdpsec.c FENCE_MAX).
const MaxFenced = 256

// The cluster fence: for each tunnel group address this node holds, until
// when its kernel may answer ARP requests and Neighbor Solicitations for
// it. The programs drop those asking for an address whose time has passed
// (CounterFenceDrop); an address not in the fence is the kernel's as
// before. The daemon rewrites the time on each renewal of the group's
// lease; a daemon killed while the address is on the interface leaves its
// last time behind, and the pinned map and programs keep it in force.

// MonotonicNow is the clock of the fence's times (CLOCK_MONOTONIC, the
// programs' bpf_ktime_get_ns), in nanoseconds.
func MonotonicNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic("bpf: CLOCK_MONOTONIC: " + err.Error()) // never fails on Linux
	}
	return ts.Nano()
}

func fenceKey(addr netip.Addr) xdpsecFenceKey {
	return xdpsecFenceKey{Addr: netip.AddrFrom16(addr.As16()).As16()}
}

// Fence lets the kernel answer ARP / Neighbor Solicitations for addr until
// the MonotonicNow time until, and no longer.
func (o *Objects) Fence(addr netip.Addr, until int64) error {
	if !addr.IsValid() {
		return errors.New("bpf: fence: no address")
	}
	if err := o.objs.Fence.Put(fenceKey(addr), uint64(max(until, 0))); err != nil {
		return fmt.Errorf("bpf: fence %v: %w", addr, err)
	}
	return nil
}

// Unfence takes addr out of the fence (absent is fine).
func (o *Objects) Unfence(addr netip.Addr) error {
	if err := o.objs.Fence.Delete(fenceKey(addr)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: unfence %v: %w", addr, err)
	}
	return nil
}
