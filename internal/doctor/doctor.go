// Package doctor inspects the host as a configuration would use it and
// reports, per check, ok, warn or fail with the command that fixes it. It
// changes nothing.
package doctor

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/klauspost/cpuid/v2"
	"github.com/vishvananda/netlink"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/nic"
	"github.com/xdpsec/xdpsec/sad/spd"
	"golang.org/x/sys/unix"
)

// Status is a check's outcome.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is one finding.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// ESPOverhead is the most tunnel-mode ESP adds to an inner packet: an
// IPv6 outer header (40), UDP encapsulation (8), the ESP header (8), an IV
// (16 for CBC; 8 for GCM), padding to the block and the trailer (up to
// 17) and the ICV (16).
const ESPOverhead = 40 + 8 + 8 + 16 + 17 + 16

// Run makes every check for cfg on this host (in the caller's network
// namespace).
func Run(cfg *config.Config) []Check {
	var cs []Check
	cs = append(cs, bpffs(cfg.PinPath))
	cs = append(cs, memlock())
	cs = append(cs, cpuFeatures()...)
	ifs := []string{cfg.WAN}
	if !cfg.OneArm() {
		ifs = append(ifs, cfg.LAN)
	}
	mtus := map[string]int{}
	for _, name := range ifs {
		ifc, err := netInterface(name)
		if err != nil {
			cs = append(cs, Check{Name: "interface " + name, Status: Fail, Detail: err.Error(), Fix: "ip link show; set interfaces.lan/wan"})
			continue
		}
		mtus[name] = ifc.mtu
		drv, err := nic.Driver(name)
		cs = append(cs, driverCheck(name, drv, err))
		n, err := nic.RXQueues(name, ifc.index)
		cs = append(cs, queueCheck(name, cfg.Queues, cfg.SetChannels, n, err))
		if name == cfg.WAN {
			fields, ferr := nic.ESPHash(name, nic.ESPv4Flow)
			cs = append(cs, rssCheck(name, n, fields, ferr))
		}
		gro, lro, err := nic.Offloads(name)
		cs = append(cs, offloadCheck(name, gro, lro, err))
		vlan := cfg.WANVLAN
		if name == cfg.LAN && !cfg.OneArm() {
			vlan = cfg.LANVLAN
		}
		rxvlan, err := nic.RXVLANOffload(name)
		cs = append(cs, vlanCheck(name, vlan, rxvlan, err))
		cs = append(cs, frameCheck(name, ifc.mtu, vlan))
		cs = append(cs, rpFilterCheck(name, sysctl("net/ipv4/conf/"+name+"/rp_filter"), sysctl("net/ipv4/conf/all/rp_filter")))
	}
	if len(mtus) == len(ifs) {
		cs = append(cs, mtuCheck(cfg.LAN, cfg.WAN, mtus[cfg.LAN], mtus[cfg.WAN], cfg.OneArm()))
	}
	fwd, keeps := sysctl("net/ipv4/ip_forward"), cfg.PinPath != "" && !cfg.DetachOnStop
	cs = append(cs, forwardingCheck(fwd, keeps))
	for _, p := range cfg.Policies {
		if p.Action != spd.Protect || !p.Selector.Dst.IsValid() {
			continue
		}
		oif := ""
		dst := p.Selector.Dst.Addr()
		if routes, err := netlink.RouteGet(dst.AsSlice()); err == nil && len(routes) > 0 && routes[0].Type != unix.RTN_UNREACHABLE && routes[0].Type != unix.RTN_BLACKHOLE {
			if l, err := netlink.LinkByIndex(routes[0].LinkIndex); err == nil {
				oif = l.Attrs().Name
			}
		}
		f := fwd
		if dst.Is6() && !dst.Is4In6() {
			f = sysctl("net/ipv6/conf/all/forwarding")
		}
		cs = append(cs, leakCheck(p.Name, p.Selector.Dst.String(), oif, f, keeps))
	}
	cs = append(cs, kernelCheck(), afxdp(), timeSync())
	cs = append(cs, irqChecks(cfg, ifs)...)
	return cs
}

// leakCheck: a PROTECT policy's destination that the kernel would route
// (forwarding on for its family) goes out in clear whenever no XDP program holds the
// interfaces, unless the pinned programs stay attached.
func leakCheck(policy, dst, oif, fwd string, keeps bool) Check {
	c := Check{Name: "leak " + policy, Status: OK}
	switch {
	case oif == "":
		c.Detail = dst + ": no route, nothing to leak"
	case fwd != "1":
		c.Detail = dst + " routes via " + oif + ", but forwarding is off"
	case keeps:
		c.Detail = dst + " routes via " + oif + "; the pinned programs stay attached when the daemon stops"
	default:
		c.Status = Warn
		c.Detail = dst + " routes via " + oif + " with forwarding on: in clear whenever the daemon is down (on_stop: detach or no pin_path)"
		c.Fix = "set pin_path and on_stop: keep, or nft add rule inet filter forward ip daddr " + dst + " drop"
	}
	return c
}

// kernelCheck: AF_XDP with need_wakeup and shared UMEMs across devices,
// which the sockets use, needs 5.4; 5.10 is the oldest tested.
func kernelCheck() Check {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Check{Name: "kernel", Status: Warn, Detail: err.Error()}
	}
	return kernelVersionCheck(unix.ByteSliceToString(u.Release[:]))
}

func kernelVersionCheck(release string) Check {
	c := Check{Name: "kernel", Status: OK, Detail: release}
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		c.Status, c.Detail = Warn, release+": version not understood"
		return c
	}
	switch {
	case major < 5 || major == 5 && minor < 4:
		c.Status, c.Detail, c.Fix = Fail, release+": AF_XDP need_wakeup needs 5.4", "a 5.10 or later kernel"
	case major == 5 && minor < 10:
		c.Status, c.Detail, c.Fix = Warn, release+": untested before 5.10", "a 5.10 or later kernel"
	}
	return c
}

// irqChecks compares each queue's interrupt affinity with the worker CPUs
// the configuration gives.
func irqChecks(cfg *config.Config, ifs []string) []Check {
	var cs []Check
	for _, name := range ifs {
		n := cfg.Queues
		if n == config.QueuesAuto {
			n = len(cfg.CPUs)
			if c, err := nic.GetChannels(name); err == nil {
				n = c.RXQueues()
			}
		}
		cs = append(cs, irqCheck(name, cfg.CPUs, cfg.CPUsAuto, nic.QueueCPUs(name, n)))
	}
	return cs
}

func irqCheck(name string, cpus []int, auto bool, queues []nic.QueueCPU) Check {
	c := Check{Name: "irq " + name, Status: OK}
	irqs := 0
	for _, q := range queues {
		if q.IRQ >= 0 {
			irqs++
		}
	}
	switch {
	case irqs == 0:
		c.Detail = "no queue interrupts (veth, or a driver whose vector names are not known)"
	case auto:
		c.Detail = fmt.Sprintf("%d queue interrupts; cpus: auto puts each worker on its queue's CPU", irqs)
	case len(cpus) == 0:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%d queue interrupts, workers not pinned", irqs)
		c.Fix = "cpus: auto"
	default:
		bad := nic.Disagreements(cpus, queues)
		if len(bad) == 0 {
			c.Detail = "every worker on its queue's interrupt CPU"
			break
		}
		c.Status = Warn
		q := bad[0]
		c.Detail = fmt.Sprintf("queues %v: interrupt and worker on different CPUs", bad)
		c.Fix = fmt.Sprintf("echo %d > /proc/irq/%d/smp_affinity_list (and the others), or cpus: auto", cpus[q], queues[q].IRQ)
	}
	return c
}

// Failed says whether any check failed.
func Failed(cs []Check) bool {
	for _, c := range cs {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

type ifInfo struct{ index, mtu int }

func netInterface(name string) (ifInfo, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return ifInfo{}, err
	}
	return ifInfo{ifc.Index, ifc.MTU}, nil
}

// bpffs: the pin path (or /sys/fs/bpf) must be on a BPF filesystem, or
// the program cannot outlive the daemon and fail closed.
func bpffs(pin string) Check {
	dir := pin
	if dir == "" {
		dir = "/sys/fs/bpf"
	}
	// The nearest directory that exists: the daemon makes the rest.
	for {
		if _, err := os.Stat(dir); err == nil || dir == "/" || dir == "." {
			break
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	err := unix.Statfs(dir, &st)
	return bpffsCheck(dir, pin != "", err == nil && st.Type == unix.BPF_FS_MAGIC)
}

func bpffsCheck(dir string, pinned, isBPF bool) Check {
	c := Check{Name: "bpffs", Status: OK, Detail: dir + " is a BPF filesystem"}
	if isBPF {
		return c
	}
	c.Detail, c.Fix = dir+" is not a BPF filesystem", "mount -t bpf bpf /sys/fs/bpf"
	c.Status = Warn
	if pinned {
		c.Status = Fail
		c.Detail += ": pin_path cannot hold the programs"
		c.Fix += " (and keep pin_path under it)"
	}
	return c
}

func memlock() Check {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r); err != nil {
		return Check{Name: "memlock", Status: Warn, Detail: err.Error()}
	}
	return memlockCheck(r.Cur, os.Geteuid() == 0)
}

// memlockCheck: each AF_XDP UMEM is locked memory (several MiB a socket);
// root has CAP_IPC_LOCK, anyone else needs the limit raised.
func memlockCheck(cur uint64, root bool) Check {
	c := Check{Name: "memlock", Status: OK}
	switch {
	case cur == unix.RLIM_INFINITY:
		c.Detail = "unlimited"
	case root:
		c.Detail = fmt.Sprintf("%d KiB, but root locks memory regardless (CAP_IPC_LOCK)", cur>>10)
	default:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%d KiB: the UMEMs will not fit", cur>>10)
		c.Fix = "ulimit -l unlimited (systemd: LimitMEMLOCK=infinity)"
	}
	return c
}

func cpuFeatures() []Check {
	if runtime.GOARCH != "amd64" {
		return []Check{{Name: "cpu", Status: OK, Detail: runtime.GOARCH + ": AES via the standard library"}}
	}
	c := cpuid.CPU
	return cpuCheck(c.BrandName, c.Supports(cpuid.AESNI), c.Supports(cpuid.VAES, cpuid.VPCLMULQDQ), c.Supports(cpuid.AVX512F))
}

func cpuCheck(brand string, aesni, vaes, avx512 bool) []Check {
	c := Check{Name: "cpu aes", Status: OK, Detail: brand + ": AES-NI"}
	if !aesni {
		c.Status, c.Detail = Warn, brand+": no AES-NI, AES-GCM runs in software"
		c.Fix = "use chacha20poly1305 proposals, or a CPU with AES-NI"
	}
	v := Check{Name: "cpu vaes", Status: OK, Detail: fmt.Sprintf("VAES+VPCLMULQDQ %v, AVX-512 %v", vaes, avx512)}
	if !vaes {
		v.Detail += ": the vector AES-GCM path is off (2-3x slower on ESP-sized packets)"
	}
	return []Check{c, v}
}

// Drivers with native XDP; AF_XDP zero-copy is noted where they have it.
var nativeXDP = map[string]bool{
	"ice": true, "i40e": true, "ixgbe": true, "ixgbevf": true, "igb": true, "igc": true,
	"mlx5_core": true, "mlx4_en": true, "virtio_net": true, "veth": true, "bnxt_en": true,
	"ena": true, "nfp": true, "qede": true, "tun": true, "sfc": true, "stmmac": true, "fec": true,
	"netdevsim": true, "tsnep": true, "mvneta": true, "mvpp2": true, "gve": true, "idpf": true,
}

var zeroCopy = map[string]bool{
	"ice": true, "i40e": true, "ixgbe": true, "igb": true, "igc": true, "mlx5_core": true,
	"virtio_net": true, "bnxt_en": true, "stmmac": true, "gve": true, "idpf": true, "tsnep": true,
}

func driverCheck(name, drv string, err error) Check {
	c := Check{Name: "driver " + name, Status: OK}
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, err.Error()
	case nativeXDP[drv] && zeroCopy[drv]:
		c.Detail = drv + ": native XDP and AF_XDP zero-copy"
	case nativeXDP[drv]:
		c.Detail = drv + ": native XDP, AF_XDP copy mode"
	default:
		c.Status = Warn
		c.Detail = drv + ": no native XDP known: generic XDP (slow, every packet becomes an skb first)"
		c.Fix = "use a NIC whose driver has native XDP (ice, i40e, ixgbe, mlx5_core, virtio_net, ...)"
	}
	return c
}

func queueCheck(name string, want int, setChannels bool, have int, err error) Check {
	c := Check{Name: "queues " + name, Status: OK}
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, err.Error()
	case want == config.QueuesAuto:
		c.Detail = fmt.Sprintf("%d RX queues, all served (queues: auto)", have)
	case want == have:
		c.Detail = fmt.Sprintf("%d RX queues, queues: %d", have, want)
	case setChannels:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%d RX queues; the daemon will set %d (set_channels)", have, want)
	default:
		c.Status = Fail
		c.Detail = fmt.Sprintf("%d RX queues, but queues: %d: the daemon refuses to start", have, want)
		c.Fix = fmt.Sprintf("ethtool -L %s combined %d (rx %d on veth), or queues: auto", name, want, want)
	}
	return c
}

func offloadCheck(name string, gro, lro bool, err error) Check {
	c := Check{Name: "offloads " + name, Status: OK, Detail: "GRO and LRO off"}
	switch {
	case err != nil:
		c.Status, c.Detail = Warn, err.Error()
	case gro || lro:
		c.Status = Warn
		c.Detail = fmt.Sprintf("GRO %v, LRO %v: merged frames reach XDP as one (or native XDP is refused)", gro, lro)
		c.Fix = "ethtool -K " + name + " gro off lro off"
	}
	return c
}

func mtuCheck(lan, wan string, lanMTU, wanMTU int, oneArm bool) Check {
	c := Check{Name: "mtu", Status: OK}
	inner := wanMTU - ESPOverhead
	switch {
	case oneArm:
		c.Detail = fmt.Sprintf("one-arm on %s (MTU %d): protected hosts need MTU <= %d (or MSS clamping)", wan, wanMTU, inner)
	case lanMTU <= inner:
		c.Detail = fmt.Sprintf("%s %d + ESP %d fits %s %d", lan, lanMTU, ESPOverhead, wan, wanMTU)
	default:
		c.Status = Warn
		c.Detail = fmt.Sprintf("%s MTU %d + ESP overhead %d > %s MTU %d: full-size packets become too big to seal", lan, lanMTU, ESPOverhead, wan, wanMTU)
		c.Fix = fmt.Sprintf("ip link set %s mtu %d (or ip link set %s mtu %d)", lan, inner, wan, lanMTU+ESPOverhead)
	}
	return c
}

func sysctl(path string) string {
	b, err := os.ReadFile("/proc/sys/" + path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// rpFilterCheck: strict reverse-path filtering (1) drops IKE and ESP a
// peer sends over an asymmetric path; the effective value is the larger.
func rpFilterCheck(name, dev, all string) Check {
	c := Check{Name: "rp_filter " + name, Status: OK, Detail: fmt.Sprintf("%s (all %s)", dev, all)}
	if dev == "1" || all == "1" {
		c.Status = Warn
		c.Detail += ": strict, drops packets whose return route is another interface"
		c.Fix = fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2 net.ipv4.conf.all.rp_filter=2", name)
	}
	return c
}

// forwardingCheck: with IPv4 forwarding on, the kernel routes PROTECT
// traffic in clear whenever no XDP program holds the interfaces: a
// stopped daemon must leave its pinned programs attached (on_stop: keep).
func forwardingCheck(fwd string, keepsPrograms bool) Check {
	c := Check{Name: "forwarding", Status: OK, Detail: "net.ipv4.ip_forward=" + fwd}
	switch {
	case fwd == "1" && keepsPrograms:
		c.Detail += ": pinned programs stay attached when the daemon stops (fail closed)"
	case fwd == "1":
		c.Status = Warn
		c.Detail += ", and without pin_path (or with on_stop: detach) a stopped daemon lets the kernel route PROTECT traffic in clear"
		c.Fix = "set pin_path and on_stop: keep, or add a DROP rule for the protected subnets in nftables"
	}
	return c
}
