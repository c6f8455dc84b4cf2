package nic

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Queue vector names drivers give their interrupts, per RX queue n, and the
// word before n that marks a receive (or combined) vector:
//
//	ice, i40e, ixgbe, igb: ice-eth0-TxRx-3, eth0-TxRx-3, eth0-rx-3
//	virtio-net:            virtio0-input.3 (the device's virtio name)
//	bnxt, qede:            eth0-TxRx-3, eth0-fp-3
//
// mlx5 names its vectors mlx5_comp3@pci:…, after the PCI device and not the
// interface; those are found through the device's PCI address (the alias).
var rxWords = map[string]bool{"txrx": true, "rx": true, "input": true, "fp": true, "comp": true, "combined": true}

// ParseInterrupts reads /proc/interrupts and returns the IRQ of each RX
// queue of a device known by any of aliases (its interface name, its
// virtio or PCI device name). Lines it does not understand are skipped.
func ParseInterrupts(r io.Reader, aliases []string) map[int]int {
	irqs := map[int]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		num, ok := strings.CutSuffix(f[0], ":")
		if !ok {
			continue
		}
		irq, err := strconv.Atoi(num)
		if err != nil || irq < 0 {
			continue
		}
		if q, ok := queueOf(f[len(f)-1], aliases); ok {
			if _, dup := irqs[q]; !dup {
				irqs[q] = irq
			}
		}
	}
	return irqs
}

// queueOf says which RX queue an interrupt named name serves, if it is one
// of a device in aliases.
func queueOf(name string, aliases []string) (int, bool) {
	// mlx5_comp3@pci:0000:3b:00.0: the part after @ names the device.
	base, dev, hasAt := strings.Cut(name, "@")
	if hasAt {
		dev = strings.TrimPrefix(dev, "pci:")
	}
	i := len(base)
	for i > 0 && base[i-1] >= '0' && base[i-1] <= '9' {
		i--
	}
	if i == len(base) || len(base)-i > 5 {
		return 0, false
	}
	q, _ := strconv.Atoi(base[i:])
	rest := base[:i]
	// The word before the number: "TxRx-", "input.", "mlx5_comp".
	rest = strings.TrimRight(rest, "-._")
	j := strings.LastIndexAny(rest, "-._")
	word, owner := rest[j+1:], rest[:max(j, 0)]
	if !rxWords[strings.ToLower(word)] {
		return 0, false
	}
	for _, a := range aliases {
		if a == "" {
			continue
		}
		if hasAt && dev == a {
			return q, true
		}
		if !hasAt && hasComponent(owner, a) {
			return q, true
		}
	}
	return 0, false
}

// hasComponent: a occurs in s bounded by its ends or by '-', '.', '_', so
// that eth1 does not match eth10-TxRx-0.
func hasComponent(s, a string) bool {
	for off := 0; ; {
		k := strings.Index(s[off:], a)
		if k < 0 {
			return false
		}
		k += off
		end := k + len(a)
		if (k == 0 || strings.IndexByte("-._", s[k-1]) >= 0) && (end == len(s) || strings.IndexByte("-._", s[end]) >= 0) {
			return true
		}
		off = k + 1
	}
}

// ParseCPUList parses the kernel's CPU list format ("0-3,8,10-11").
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a > maxCPU {
			return nil, fmt.Errorf("cpu list %q: bad %q", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > maxCPU {
				return nil, fmt.Errorf("cpu list %q: bad %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// maxCPU bounds what ParseCPUList accepts (the kernel's NR_CPUS limit).
const maxCPU = 8191

// QueueCPU is one RX queue's interrupt and where it runs.
type QueueCPU struct {
	IRQ  int   // -1: no interrupt found for the queue (veth, an unknown driver)
	CPUs []int // the CPUs the interrupt is affined to
}

// QueueCPUs finds, for queues 0..n-1 of the interface name, the interrupt
// and its CPUs.
func QueueCPUs(name string, n int) []QueueCPU {
	aliases := []string{name}
	// virtio-net names vectors after the virtio device, mlx5 after the
	// PCI device: the interface's device link names both.
	if dev, err := filepath.EvalSymlinks("/sys/class/net/" + name + "/device"); err == nil {
		aliases = append(aliases, filepath.Base(dev))
	}
	var irqs map[int]int
	if f, err := os.Open("/proc/interrupts"); err == nil {
		irqs = ParseInterrupts(f, aliases)
		f.Close()
	}
	out := make([]QueueCPU, n)
	for q := range out {
		out[q].IRQ = -1
		irq, ok := irqs[q]
		if !ok {
			continue
		}
		out[q].IRQ = irq
		for _, file := range []string{"effective_affinity_list", "smp_affinity_list"} {
			b, err := os.ReadFile(fmt.Sprintf("/proc/irq/%d/%s", irq, file))
			if err != nil {
				continue
			}
			if cpus, err := ParseCPUList(string(b)); err == nil && len(cpus) > 0 {
				out[q].CPUs = cpus
				break
			}
		}
	}
	return out
}

// OnlineCPUs lists the online CPUs (/sys/devices/system/cpu/online).
func OnlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return ParseCPUList(string(b))
}
