package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"golang.org/x/sys/unix"
)

// Limits fixed by the map definitions in xdpsec.c.
const (
	// MaxLiveSPIs is the capacity of the live-SPI map.
	MaxLiveSPIs = 1 << 20
	// DefaultNATTPort is the NAT-traversal port that carries ESP-in-UDP and IKE
	// with the non-ESP marker (RFC 7296 section 2.23, RFC 3948 section 2.1).
	DefaultNATTPort = 4500
	// ikePort is UDP 500 (RFC 7296 section 2), always passed to the kernel.
	ikePort = 500
)

// Flags tune the program at run time (struct config.flags).
type Flags uint32

// FlagRedirectUnknownSPI sends ESP with an unknown SPI to the XSK instead of
// dropping it in XDP, so user space can audit it or answer INVALID_SPI
// (RFC 7296 section 1.5). It is still counted as CounterESPUnknownSPI.
const FlagRedirectUnknownSPI Flags = 1 << 0

const knownFlags = FlagRedirectUnknownSPI

// Options configure Load.
type Options struct {
	// PinPath is a directory on a bpf filesystem (e.g. /sys/fs/bpf/xdpsec).
	// When set, the maps are pinned there (and re-used if already pinned by
	// an earlier run), and attachments are pinned there too so the program
	// stays attached - and keeps failing closed - if the process dies.
	// One daemon instance per PinPath. Empty: nothing outlives the process.
	PinPath string
	// ReplaceIncompatible: when a map pinned under PinPath has another shape
	// than this build's (an upgrade changed a map definition), create the
	// map afresh and move the pin to it instead of failing. Its content is
	// lost, so sync the SPIs and the SPD before attaching: the attach swaps
	// the program (and with it the maps it uses) atomically.
	ReplaceIncompatible bool
}

// Objects are the loaded programs and maps.
type Objects struct {
	objs    xdpsecObjects
	pinPath string

	mu       sync.Mutex
	attached []*Attachment
	closed   bool
}

// bpffsMagic is BPF_FS_MAGIC from include/uapi/linux/magic.h.
const bpffsMagic = 0xcafe4a11

// Load loads the XDP programs and creates (or, with a PinPath, re-opens) the
// maps. The NAT-T port defaults to DefaultNATTPort unless a pinned config
// already holds one.
func Load(opts Options) (*Objects, error) {
	spec, err := loadXdpsec()
	if err != nil {
		return nil, fmt.Errorf("bpf: parse embedded object: %w", err)
	}
	var copts ebpf.CollectionOptions
	if opts.PinPath != "" {
		if err := preparePinPath(opts.PinPath); err != nil {
			return nil, err
		}
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinByName
		}
		copts.Maps.PinPath = opts.PinPath
	}
	var replace []string
	if opts.PinPath != "" && opts.ReplaceIncompatible {
		if replace, err = unpinIncompatible(spec, opts.PinPath); err != nil {
			return nil, err
		}
	}
	o := &Objects{pinPath: opts.PinPath}
	if err := spec.LoadAndAssign(&o.objs, &copts); err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("bpf: maps pinned under %s come from an incompatible build (set ReplaceIncompatible, or detach first): %w", opts.PinPath, err)
		}
		return nil, fmt.Errorf("bpf: load xdpsec objects: %w", err)
	}
	for _, name := range replace {
		p := filepath.Join(opts.PinPath, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			o.objs.Close()
			return nil, fmt.Errorf("bpf: replace pinned map %s: %w", name, err)
		}
		if err := o.mapsByName()[name].Pin(p); err != nil {
			o.objs.Close()
			return nil, fmt.Errorf("bpf: replace pinned map %s: %w", name, err)
		}
	}
	cfg, err := o.config()
	if err == nil && cfg.NattPort == 0 {
		cfg.NattPort = DefaultNATTPort
		err = o.setConfig(cfg)
	}
	if err != nil {
		o.objs.Close()
		return nil, err
	}
	return o, nil
}

// unpinIncompatible marks the maps whose pins under dir do not fit spec as
// not to be pinned by the load (so it creates them), and returns their names
// for the caller to re-pin afterwards.
func unpinIncompatible(spec *ebpf.CollectionSpec, dir string) ([]string, error) {
	var replace []string
	for name, ms := range spec.Maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("bpf: open pinned map %s: %w", name, err)
		}
		cerr := ms.Compatible(m)
		m.Close()
		if errors.Is(cerr, ebpf.ErrMapIncompatible) {
			ms.Pinning = ebpf.PinNone
			replace = append(replace, name)
		} else if cerr != nil {
			return nil, fmt.Errorf("bpf: check pinned map %s: %w", name, cerr)
		}
	}
	return replace, nil
}

func (o *Objects) mapsByName() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		xdpsecMapConfig: o.objs.Config, xdpsecMapCounters: o.objs.Counters,
		xdpsecMapLiveSpis: o.objs.LiveSpis, xdpsecMapSpdV4: o.objs.SpdV4,
		xdpsecMapSpdV6: o.objs.SpdV6, xdpsecMapXsks: o.objs.Xsks,
		xdpsecMapInV4: o.objs.InV4, xdpsecMapInV6: o.objs.InV6, xdpsecMapInRules: o.objs.InRules,
		xdpsecMapNattFrags: o.objs.NattFrags, xdpsecMapFence: o.objs.Fence,
	}
}

func preparePinPath(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if hint := bpffsHint(dir); hint != "" {
			return fmt.Errorf("bpf: pin path %s: %s", dir, hint)
		}
		return fmt.Errorf("bpf: pin path: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("bpf: pin path %s: %w", dir, err)
	}
	if uint32(st.Type) != bpffsMagic {
		return fmt.Errorf("bpf: pin path %s: %s", dir, bpffsHint(dir))
	}
	return nil
}

// bpffsHint says, for a pin path that cannot be made or used, what is
// wrong and what to do, judged by the file system of its nearest existing
// ancestor; "" when that is a bpf file system (the failure is something
// else). The common case: `ip netns exec` remounts /sys for the namespace,
// and the new /sys has an empty /sys/fs/bpf on which nothing can be made.
func bpffsHint(dir string) string {
	p, fsType := nearestFS(dir)
	if fsType == 0 || fsType == bpffsMagic {
		return ""
	}
	const mount = "mount -t bpf bpf /sys/fs/bpf"
	if fsType == unix.SYSFS_MAGIC {
		return fmt.Sprintf("no bpf filesystem is mounted at %s (it is plain sysfs: `ip netns exec` remounts /sys without one); "+
			"run xdpsec with `nsenter --net=/run/netns/NAME xdpsec ...` instead, which keeps the host's mounts, or mount one (%s)", p, mount)
	}
	return fmt.Sprintf("%s is not on a bpf filesystem; set pin_path under one (%s, then e.g. /sys/fs/bpf/xdpsec/NAME)", p, mount)
}

// nearestFS returns dir's nearest existing ancestor (dir itself if it
// exists) and the magic number of its file system; 0 if unknown.
func nearestFS(dir string) (string, uint32) {
	p := filepath.Clean(dir)
	for {
		if _, err := os.Stat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		p = filepath.Dir(p)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return p, 0
	}
	return p, uint32(st.Type)
}

// PinPath returns the bpffs directory the objects are pinned under, or "".
func (o *Objects) PinPath() string { return o.pinPath }

// Close releases this process's handles on the programs, maps and
// attachments. Pinned maps and pinned attachments stay: the program keeps
// running (and failing closed) until Detach.
func (o *Objects) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	attached := o.attached
	o.attached = nil
	o.mu.Unlock()

	var errs []error
	for _, a := range attached {
		errs = append(errs, a.Close())
	}
	if err := o.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("bpf: close objects: %w", err))
	}
	return errors.Join(errs...)
}

// Detach detaches the program from every interface this Objects attached it
// to and, with a PinPath, from every attachment pinned there (including those
// of an earlier run), unpins all maps and removes the PinPath directory.
// Then it closes o. Use it for an orderly shutdown: afterwards the kernel
// routes all traffic itself.
func (o *Objects) Detach() error {
	o.mu.Lock()
	attached := o.attached
	o.attached = nil
	o.mu.Unlock()

	var errs []error
	for _, a := range attached {
		errs = append(errs, a.Detach())
	}
	if o.pinPath != "" {
		errs = append(errs, DetachPinned(o.pinPath))
	}
	errs = append(errs, o.Close())
	return errors.Join(errs...)
}

// Program returns the loaded program for a role, e.g. for BPF_PROG_TEST_RUN
// or to read its ID.
func (o *Objects) Program(r Role) *ebpf.Program {
	switch r {
	case RoleWAN:
		return o.objs.XdpWan
	case RoleLAN:
		return o.objs.XdpLan
	case RoleOneArm:
		return o.objs.XdpOnearm
	}
	return nil
}

// XSKMap returns the XSKMAP, for AF_XDP libraries that register sockets
// themselves.
func (o *Objects) XSKMap() *ebpf.Map { return o.objs.Xsks }

// RegisterXSK makes queue's traffic that the program steers go to the AF_XDP
// socket fd (bound to that queue of the interface). The kernel removes the
// entry by itself when the socket is closed.
func (o *Objects) RegisterXSK(queue int, fd int) error {
	if queue < 0 || queue >= xdpconf.MaxQueues {
		return fmt.Errorf("bpf: register xsk: queue %d out of range [0,%d)", queue, xdpconf.MaxQueues)
	}
	if fd < 0 {
		return fmt.Errorf("bpf: register xsk queue %d: invalid fd %d", queue, fd)
	}
	if err := o.objs.Xsks.Put(uint32(queue), uint32(fd)); err != nil {
		return fmt.Errorf("bpf: register xsk queue %d: %w", queue, err)
	}
	return nil
}

// UnregisterXSK removes queue's socket: steered traffic on it is dropped.
func (o *Objects) UnregisterXSK(queue int) error {
	if queue < 0 || queue >= xdpconf.MaxQueues {
		return fmt.Errorf("bpf: unregister xsk: queue %d out of range [0,%d)", queue, xdpconf.MaxQueues)
	}
	err := o.objs.Xsks.Delete(uint32(queue))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: unregister xsk queue %d: %w", queue, err)
	}
	return nil
}

// spiKey is the live_spis key: the SPI's four bytes in wire order, exactly as
// the program reads them from the packet.
func spiKey(spi uint32) [4]byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], spi)
	return k
}

// SetSPILive adds (live) or removes an inbound SPI from the set the program
// lets through to the XSK. spi is the numeric SPI (as in "SPI 0x0000c1a5").
func (o *Objects) SetSPILive(spi uint32, live bool) error {
	k := spiKey(spi)
	if live {
		if err := o.objs.LiveSpis.Put(k, uint8(1)); err != nil {
			return fmt.Errorf("bpf: spi %08x live: %w", spi, err)
		}
		return nil
	}
	if err := o.objs.LiveSpis.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("bpf: spi %08x dead: %w", spi, err)
	}
	return nil
}

// SyncSPIs makes the live-SPI set exactly spis: it adds the missing ones
// first, then removes the stale ones. A restarted daemon calls it with its
// (possibly empty) SA set, since SPIs pinned by a previous run have no keys.
func (o *Objects) SyncSPIs(spis []uint32) error {
	if len(spis) > MaxLiveSPIs {
		return fmt.Errorf("bpf: sync spis: %d SPIs exceed the map's %d entries", len(spis), MaxLiveSPIs)
	}
	m := o.objs.LiveSpis
	want := make(map[[4]byte]struct{}, len(spis))
	keys := make([][4]byte, 0, len(spis))
	for _, spi := range spis {
		k := spiKey(spi)
		if _, dup := want[k]; dup {
			continue
		}
		want[k] = struct{}{}
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		vals := make([]uint8, len(keys))
		for i := range vals {
			vals[i] = 1
		}
		if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
			if !errors.Is(err, ebpf.ErrNotSupported) {
				return fmt.Errorf("bpf: sync spis: add %d: %w", len(keys), err)
			}
			for _, k := range keys {
				if err := m.Put(k, uint8(1)); err != nil {
					return fmt.Errorf("bpf: sync spis: add %x: %w", k, err)
				}
			}
		}
	}

	var (
		k     [4]byte
		v     uint8
		stale [][4]byte
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("bpf: sync spis: iterate: %w", err)
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("bpf: sync spis: remove %x: %w", k, err)
		}
	}
	return nil
}

// SyncSPD makes the SPD mirror hold exactly entries. New and changed prefixes
// are written before stale ones are removed, so a prefix present in both the
// old and the new set is never missing.
func (o *Objects) SyncSPD(entries []SPDEntry) error {
	v4, v6, err := spdKeys(entries)
	if err != nil {
		return fmt.Errorf("bpf: sync spd: %w", err)
	}
	if err := syncTrie(o.objs.SpdV4, v4); err != nil {
		return fmt.Errorf("bpf: sync spd v4: %w", err)
	}
	if err := syncTrie(o.objs.SpdV6, v6); err != nil {
		return fmt.Errorf("bpf: sync spd v6: %w", err)
	}
	return nil
}

type config = xdpsecConfig

func (o *Objects) config() (config, error) {
	var c config
	if err := o.objs.Config.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("bpf: read config: %w", err)
	}
	return c, nil
}

func (o *Objects) setConfig(c config) error {
	if err := o.objs.Config.Put(uint32(0), c); err != nil {
		return fmt.Errorf("bpf: write config: %w", err)
	}
	return nil
}

// SetNATTPort sets the UDP destination port on which ESP-in-UDP is expected
// (DefaultNATTPort unless configured otherwise). Port 500 is IKE's and 0 is
// not a port.
func (o *Objects) SetNATTPort(port uint16) error {
	if port == 0 || port == ikePort {
		return fmt.Errorf("bpf: nat-t port %d not allowed", port)
	}
	c, err := o.config()
	if err != nil {
		return err
	}
	c.NattPort = port
	return o.setConfig(c)
}

// SetVLAN sets the 802.1Q VLAN (1..4094) whose frames the program
// classifies; 0 means untagged frames. Frames of other VLANs go to the
// kernel, counted as CounterVLANOtherPass.
func (o *Objects) SetVLAN(vid uint16) error {
	if vid > 4094 {
		return fmt.Errorf("bpf: vlan %d out of range", vid)
	}
	c, err := o.config()
	if err != nil {
		return err
	}
	c.Vid = vid
	return o.setConfig(c)
}

// SetTrunk makes the one-arm program treat its port as a trunk whose
// frames tagged lanVID (0: untagged) are the protected side and whose
// frames of the SetVLAN VLAN are the outside: each tag meets only its own
// side's rules. on false turns it off (one VLAN, as before). The LAN and
// WAN programs ignore it.
func (o *Objects) SetTrunk(on bool, lanVID uint16) error {
	if lanVID > 4094 {
		return fmt.Errorf("bpf: vlan %d out of range", lanVID)
	}
	c, err := o.config()
	if err != nil {
		return err
	}
	c.Trunk, c.LanVid = 0, 0
	if on {
		c.Trunk, c.LanVid = 1, lanVID
	}
	return o.setConfig(c)
}

// SetServiceVLAN sets the 802.1ad service tags (Q-in-Q, TPID 0x88a8;
// 1..4094, 0: none) outside the program's SetVLAN VLAN and outside the
// trunk's LAN VLAN: a frame is the side's when both its tags match.
func (o *Objects) SetServiceVLAN(svid, lanSVID uint16) error {
	if svid > 4094 || lanSVID > 4094 {
		return fmt.Errorf("bpf: service vlan %d/%d out of range", svid, lanSVID)
	}
	c, err := o.config()
	if err != nil {
		return err
	}
	c.Svid, c.LanSvid = svid, lanSVID
	return o.setConfig(c)
}

// SetFlags replaces the program's run-time flags.
func (o *Objects) SetFlags(f Flags) error {
	if f&^knownFlags != 0 {
		return fmt.Errorf("bpf: unknown flags %#x", uint32(f&^knownFlags))
	}
	c, err := o.config()
	if err != nil {
		return err
	}
	c.Flags = uint32(f)
	return o.setConfig(c)
}

// Config returns the NAT-T port and flags the program currently uses.
func (o *Objects) Config() (nattPort uint16, flags Flags, err error) {
	c, err := o.config()
	if err != nil {
		return 0, 0, err
	}
	return c.NattPort, Flags(c.Flags), nil
}
