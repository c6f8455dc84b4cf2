package bpf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"github.com/xdpsec/xdpsec/internal/enum"
	"golang.org/x/sys/unix"
)

// Role says which entry point runs on an interface.
type Role int

const (
	RoleWAN    Role = iota // xdp_wan: the unprotected side (ESP)
	RoleLAN                // xdp_lan: the protected side (plaintext)
	RoleOneArm             // xdp_onearm: both on one interface
)

var roleNames = [...]string{RoleWAN: "wan", RoleLAN: "lan", RoleOneArm: "onearm"}

func (r Role) String() string { return enum.Name(r, roleNames[:], "role") }

// Attachment is the program attached to one interface through a bpf_link.
type Attachment struct {
	Ifindex int
	Role    Role
	// Mode is the hook actually in use: xdpconf.ModeNative or xdpconf.ModeGeneric.
	Mode xdpconf.AttachMode
	// Reused is true when a pinned attachment from an earlier run was
	// re-opened (and its program replaced) instead of a new one created.
	Reused bool

	link    link.Link
	pinFile string
	owner   *Objects
}

// Close releases the attachment handle. A pinned attachment stays in place;
// an unpinned one is detached by the kernel when its last handle goes.
func (a *Attachment) Close() error {
	if a.link == nil {
		return nil
	}
	err := a.link.Close()
	a.link = nil
	a.forget()
	if err != nil {
		return fmt.Errorf("bpf: close %s attachment on ifindex %d: %w", a.Role, a.Ifindex, err)
	}
	return nil
}

// Detach removes the program from the interface and its pin.
func (a *Attachment) Detach() error {
	if a.link == nil {
		return nil
	}
	var errs []error
	if err := a.link.Detach(); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("detach: %w", err))
	}
	if a.pinFile != "" {
		if err := a.link.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpin: %w", err))
		}
	}
	if err := a.link.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	a.link = nil
	a.forget()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf: detach %s from ifindex %d: %w", a.Role, a.Ifindex, err)
	}
	return nil
}

func (a *Attachment) forget() {
	o := a.owner
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, b := range o.attached {
		if b == a {
			o.attached = append(o.attached[:i], o.attached[i+1:]...)
			break
		}
	}
}

// AttachWAN attaches xdp_wan to the interface (in the calling thread's
// network namespace).
func (o *Objects) AttachWAN(ifindex int, mode xdpconf.AttachMode) (*Attachment, error) {
	return o.attach(RoleWAN, ifindex, mode)
}

// AttachLAN attaches xdp_lan to the interface.
func (o *Objects) AttachLAN(ifindex int, mode xdpconf.AttachMode) (*Attachment, error) {
	return o.attach(RoleLAN, ifindex, mode)
}

// AttachOneArm attaches xdp_onearm to the interface.
func (o *Objects) AttachOneArm(ifindex int, mode xdpconf.AttachMode) (*Attachment, error) {
	return o.attach(RoleOneArm, ifindex, mode)
}

// linkPinPrefix names pinned attachments; one per interface, whatever the
// role, because an interface has a single XDP hook per mode.
const linkPinPrefix = "link_if"

func (o *Objects) attach(role Role, ifindex int, mode xdpconf.AttachMode) (*Attachment, error) {
	prog := o.Program(role)
	if prog == nil {
		return nil, fmt.Errorf("bpf: attach: unknown role %d", int(role))
	}
	if ifindex < 1 {
		return nil, fmt.Errorf("bpf: attach %s: invalid ifindex %d", role, ifindex)
	}
	if mode != xdpconf.ModeAuto && mode != xdpconf.ModeNative && mode != xdpconf.ModeGeneric {
		return nil, fmt.Errorf("bpf: attach %s on ifindex %d: invalid mode %d", role, ifindex, int(mode))
	}
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("bpf: attach %s on ifindex %d: objects closed", role, ifindex)
	}

	a := &Attachment{Ifindex: ifindex, Role: role, owner: o}
	if o.pinPath != "" {
		a.pinFile = filepath.Join(o.pinPath, fmt.Sprintf("%s%d", linkPinPrefix, ifindex))
		ok, err := a.reopen(prog, mode)
		if err != nil {
			return nil, err
		}
		if ok {
			o.track(a)
			return a, nil
		}
	}

	l, used, err := attachXDP(prog, ifindex, mode)
	if err != nil {
		return nil, fmt.Errorf("bpf: attach %s on ifindex %d (%s): %w", role, ifindex, mode, err)
	}
	a.link, a.Mode = l, used
	if a.pinFile != "" {
		if err := l.Pin(a.pinFile); err != nil {
			l.Close()
			return nil, fmt.Errorf("bpf: pin %s attachment on ifindex %d: %w", role, ifindex, err)
		}
	}
	o.track(a)
	return a, nil
}

func (o *Objects) track(a *Attachment) {
	o.mu.Lock()
	o.attached = append(o.attached, a)
	o.mu.Unlock()
}

func attachXDP(prog *ebpf.Program, ifindex int, mode xdpconf.AttachMode) (link.Link, xdpconf.AttachMode, error) {
	if mode == xdpconf.ModeNative || mode == xdpconf.ModeAuto {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err == nil {
			return l, xdpconf.ModeNative, nil
		}
		if mode == xdpconf.ModeNative {
			return nil, 0, err
		}
		l, gerr := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
		if gerr != nil {
			return nil, 0, fmt.Errorf("native: %w; generic: %w", err, gerr)
		}
		return l, xdpconf.ModeGeneric, nil
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	if err != nil {
		return nil, 0, err
	}
	return l, xdpconf.ModeGeneric, nil
}

// reopen takes over an attachment pinned by an earlier run: it swaps in prog
// with BPF_LINK_UPDATE, so the interface is never without a program. It
// reports false when there is nothing (usable) to take over.
func (a *Attachment) reopen(prog *ebpf.Program, mode xdpconf.AttachMode) (bool, error) {
	l, err := link.LoadPinnedLink(a.pinFile, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bpf: open pinned attachment %s: %w", a.pinFile, err)
	}
	info, err := l.Info()
	if err != nil {
		l.Close()
		return false, fmt.Errorf("bpf: pinned attachment %s: %w", a.pinFile, err)
	}
	xi := info.XDP()
	if xi == nil || int(xi.Ifindex) != a.Ifindex {
		// The interface went away (the kernel then reports ifindex 0) or
		// the pin is not ours: drop it and attach afresh.
		errs := []error{l.Unpin(), l.Close()}
		if err := errors.Join(errs...); err != nil {
			return false, fmt.Errorf("bpf: remove defunct attachment %s: %w", a.pinFile, err)
		}
		return false, nil
	}
	cur, err := xdpModeOf(a.Ifindex)
	if err != nil {
		l.Close()
		return false, err
	}
	if mode != xdpconf.ModeAuto && mode != cur {
		l.Close()
		return false, fmt.Errorf("bpf: ifindex %d already has a pinned %s attachment (want %s); detach it first", a.Ifindex, cur, mode)
	}
	if err := l.Update(prog); err != nil {
		l.Close()
		return false, fmt.Errorf("bpf: replace program of pinned attachment on ifindex %d: %w", a.Ifindex, err)
	}
	a.link, a.Mode, a.Reused = l, cur, true
	return true, nil
}

// xdpModeOf asks rtnetlink which XDP hook holds a program on the interface.
// bpf_link_info does not say, and the answer must not be guessed: a restarted
// daemon reports it.
func xdpModeOf(ifindex int) (xdpconf.AttachMode, error) {
	nl, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return 0, fmt.Errorf("bpf: query ifindex %d: %w", ifindex, err)
	}
	x := nl.Attrs().Xdp
	if x == nil || !x.Attached {
		return 0, fmt.Errorf("bpf: ifindex %d reports no xdp program although a link is pinned", ifindex)
	}
	switch x.AttachMode {
	case xdpAttachedDrv:
		return xdpconf.ModeNative, nil
	case xdpAttachedSkb:
		return xdpconf.ModeGeneric, nil
	}
	return 0, fmt.Errorf("bpf: ifindex %d: unexpected xdp attach mode %d", ifindex, x.AttachMode)
}

// XDP_ATTACHED_* from include/uapi/linux/if_link.h.
const (
	xdpAttachedDrv = nl.XDP_ATTACHED_DRV
	xdpAttachedSkb = nl.XDP_ATTACHED_SKB
)

// DetachPinned removes everything Load and Attach* pinned under pinPath:
// every pinned attachment is detached from its interface (whoever still holds
// a handle), the maps are unpinned, and the directory is removed. A missing
// directory is not an error. It needs no loaded Objects, so an operator tool
// can clean up after a crashed daemon.
func DetachPinned(pinPath string) error {
	if pinPath == "" {
		return errors.New("bpf: detach pinned: empty pin path")
	}
	ents, err := os.ReadDir(pinPath)
	if errors.Is(err, fs.ErrNotExist) {
		// Missing because no bpffs is mounted here (`ip netns exec`):
		// the pins may well exist, out of sight.
		if _, fsType := nearestFS(pinPath); fsType == unix.SYSFS_MAGIC {
			return fmt.Errorf("bpf: detach pinned %s: %s", pinPath, bpffsHint(pinPath))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("bpf: detach pinned: %w", err)
	}
	maps := make(map[string]bool)
	for n := range (&Objects{}).mapsByName() {
		maps[n] = true
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(pinPath, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), linkPinPrefix):
			if err := detachPinnedLink(p); err != nil {
				errs = append(errs, err)
			}
		case maps[e.Name()]:
			// Unlinking a pin drops the filesystem's reference; the map
			// lives on while a program or process still uses it.
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("bpf: unpin map %s: %w", p, err))
			}
		}
	}
	if err := os.Remove(pinPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("bpf: remove pin path: %w", err))
	}
	return errors.Join(errs...)
}

func detachPinnedLink(p string) error {
	l, err := link.LoadPinnedLink(p, nil)
	if err != nil {
		// Not a link we can open: at least make sure the pin is gone.
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("bpf: open pinned attachment %s: %w (remove: %w)", p, err, rerr)
		}
		return nil
	}
	var errs []error
	// BPF_LINK_DETACH takes the program off the interface even if another
	// process still holds the link open.
	if err := l.Detach(); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("detach: %w", err))
	}
	if err := l.Unpin(); err != nil {
		errs = append(errs, fmt.Errorf("unpin: %w", err))
	}
	if err := l.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf: pinned attachment %s: %w", p, err)
	}
	return nil
}
