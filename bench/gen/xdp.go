package gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// InNetns runs f on a fresh OS thread locked to its goroutine and moved
// into the named network namespace (the caller's namespace when name is
// empty), and returns f's error. The thread is never handed back to the
// scheduler: when f returns, the goroutine exits still locked and the
// runtime ends the thread, so no other goroutine inherits the namespace.
func InNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: see above.
		if name != "" {
			h, err := netns.GetFromName(name)
			if err != nil {
				errc <- fmt.Errorf("netns %s: %w", name, err)
				return
			}
			err = netns.Set(h)
			h.Close()
			if err != nil {
				errc <- fmt.Errorf("enter netns %s: %w", name, err)
				return
			}
		}
		errc <- f()
	}()
	return <-errc
}

// arpNative is EtherType 0x0806 as a 16-bit load from the wire reads it
// on this machine.
var arpNative = int32(binary.NativeEndian.Uint16([]byte{0x08, 0x06}))

// Redirect is an XDP program on one interface that sends every frame but
// ARP to the AF_XDP socket registered for its receive queue, and passes
// ARP, and frames of queues without a socket, to the kernel.
type Redirect struct {
	xsks *ebpf.Map
	prog *ebpf.Program
	lk   link.Link
}

// AttachRedirect loads the program and attaches it to ifindex in the
// current thread's namespace: in native (driver) mode where the driver
// has it, in generic mode otherwise.
func AttachRedirect(ifindex int) (_ *Redirect, err error) {
	r := &Redirect{}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	r.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "xdpgen_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 256})
	if err != nil {
		return nil, fmt.Errorf("xskmap: %w", err)
	}
	r.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "xdpgen_redir",
		Type:    ebpf.XDP,
		License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			// ARP goes to the kernel, so the host keeps answering for
			// its address and the sender's neighbour entry can resolve
			// while the sink runs.
			asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // ctx->data
			asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // ctx->data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 14),
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
			asm.LoadMem(asm.R4, asm.R2, 12, asm.Half),
			asm.JEq.Imm(asm.R4, arpNative, "pass"),
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word), // ctx->rx_queue_index
			asm.LoadMapPtr(asm.R1, r.xsks.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the queue has no socket
			asm.FnRedirectMap.Call(),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load redirect program: %w", err)
	}
	r.lk, err = link.AttachXDP(link.XDPOptions{Program: r.prog, Interface: ifindex, Flags: link.XDPDriverMode})
	if err != nil {
		var gerr error
		r.lk, gerr = link.AttachXDP(link.XDPOptions{Program: r.prog, Interface: ifindex, Flags: link.XDPGenericMode})
		if gerr != nil {
			return nil, fmt.Errorf("attach XDP to ifindex %d: driver mode: %v; generic mode: %w", ifindex, err, gerr)
		}
	}
	return r, nil
}

// Register steers queue's frames to the socket descriptor fd.
func (r *Redirect) Register(queue, fd int) error {
	if err := r.xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("xskmap queue %d: %w", queue, err)
	}
	return nil
}

// Close detaches and unloads the program.
func (r *Redirect) Close() error {
	var errs []error
	if r.lk != nil {
		errs = append(errs, r.lk.Close())
	}
	if r.prog != nil {
		errs = append(errs, r.prog.Close())
	}
	if r.xsks != nil {
		errs = append(errs, r.xsks.Close())
	}
	return errors.Join(errs...)
}

// Hop is what an interface needs to address a destination: the
// interface's index and MAC, a source address, and the next hop's MAC.
type Hop struct {
	Ifindex int
	SrcMAC  net.HardwareAddr
	DstMAC  net.HardwareAddr
	Src     netip.Addr
}

// ResolveHop looks up, in the current thread's namespace, ifname's MAC
// and (when src is not valid) its first address of dst's family, and
// (when wantDst) the MAC of dst's next hop from the neighbour table. A
// missing neighbour is resolved by the kernel: a datagram to the discard
// port makes it ask, and the table is read again for up to timeout.
func ResolveHop(ifname string, src, dst netip.Addr, wantDst bool, timeout time.Duration) (Hop, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return Hop{}, fmt.Errorf("interface %s: %w", ifname, err)
	}
	a := l.Attrs()
	h := Hop{Ifindex: a.Index, SrcMAC: a.HardwareAddr, Src: src}
	fam := unix.AF_INET
	if dst.Is6() && !dst.Is4In6() {
		fam = unix.AF_INET6
	}
	if !h.Src.IsValid() {
		addrs, err := netlink.AddrList(l, fam)
		if err != nil {
			return h, fmt.Errorf("addresses of %s: %w", ifname, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if ok && !ip.IsLinkLocalUnicast() {
				h.Src = ip.Unmap()
				break
			}
		}
		if !h.Src.IsValid() {
			return h, fmt.Errorf("%s has no address of %v's family: give --src", ifname, dst)
		}
	}
	if !wantDst {
		return h, nil
	}
	// The next hop is the route's gateway when it has one.
	next := dst
	if routes, err := netlink.RouteGet(dst.AsSlice()); err == nil && len(routes) > 0 && routes[0].Gw != nil {
		if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok {
			next = gw.Unmap()
		}
	}
	deadline := time.Now().Add(timeout)
	for poked := false; ; {
		neighs, err := netlink.NeighList(a.Index, fam)
		if err != nil {
			return h, fmt.Errorf("neighbours of %s: %w", ifname, err)
		}
		for _, n := range neighs {
			ip, ok := netip.AddrFromSlice(n.IP)
			if ok && ip.Unmap() == next && len(n.HardwareAddr) == 6 &&
				n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) == 0 {
				h.DstMAC = n.HardwareAddr
				return h, nil
			}
		}
		if time.Now().After(deadline) {
			return h, fmt.Errorf("no neighbour entry for %v on %s: give --dst-mac", next, ifname)
		}
		if !poked {
			poked = true
			if c, err := net.Dial("udp", netip.AddrPortFrom(next, 9).String()); err == nil {
				_, _ = c.Write([]byte{0})
				c.Close()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PinThread locks the calling goroutine to its OS thread (for good: see
// InNetns) and binds that thread to cpu, so a sender shares its core only
// with the softirq work it causes, as trafgen's per-CPU workers do.
func PinThread(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", cpu, err)
	}
	return nil
}
