package nic

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// A /proc/interrupts in the shape the drivers write it (taken from the
// names ice, i40e, igb, virtio-net and mlx5 give their vectors).
const interrupts = `           CPU0       CPU1       CPU2       CPU3
  0:         22          0          0          0   IO-APIC   2-edge      timer
 28:          0          0          0          0 PCI-MSIX-0000:00:01.0   0-edge      virtio0-config
 29:        120          0          0          0 PCI-MSIX-0000:00:01.0   1-edge      virtio0-input.0
 30:          0          0          0          0 PCI-MSIX-0000:00:01.0   2-edge      virtio0-output.0
 31:          0        300          0          0 PCI-MSIX-0000:00:01.0   3-edge      virtio0-input.1
 40:          0          0          0          0 IR-PCI-MSIX-0000:3b:00.0   0-edge      ice-0000:3b:00.0:misc
 41:          5          0          0          0 IR-PCI-MSIX-0000:3b:00.0   1-edge      ice-eth1-TxRx-0
 42:          0          5          0          0 IR-PCI-MSIX-0000:3b:00.0   2-edge      ice-eth1-TxRx-1
 43:          0          0          5          0 IR-PCI-MSIX-0000:3b:00.0   3-edge      ice-eth10-TxRx-2
 50:          0          0          0          5 IR-PCI-MSIX-0000:5e:00.0   1-edge      eth2-rx-0
 51:          0          0          0          5 IR-PCI-MSIX-0000:5e:00.0   2-edge      eth2-tx-0
 52:          0          0          0          5 IR-PCI-MSIX-0000:5e:00.0   3-edge      eth2-rx-1
 60:          0          0          0          5 IR-PCI-MSIX-0000:af:00.0   0-edge      mlx5_async0@pci:0000:af:00.0
 61:          0          0          0          5 IR-PCI-MSIX-0000:af:00.0   1-edge      mlx5_comp0@pci:0000:af:00.0
 62:          0          0          0          5 IR-PCI-MSIX-0000:af:00.0   2-edge      mlx5_comp1@pci:0000:af:00.0
 63:          0          0          0          5 IR-PCI-MSIX-0000:b0:00.0   1-edge      mlx5_comp0@pci:0000:b0:00.0
NMI:          0          0          0          0   Non-maskable interrupts
ERR:          0
`

func TestParseInterrupts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		aliases []string
		want    map[int]int
	}{
		{"virtio-net by its virtio name", []string{"ens3", "virtio0"}, map[int]int{0: 29, 1: 31}},
		{"ice, not eth10", []string{"eth1"}, map[int]int{0: 41, 1: 42}},
		{"eth10 alone", []string{"eth10"}, map[int]int{2: 43}},
		{"igb rx, not tx", []string{"eth2"}, map[int]int{0: 50, 1: 52}},
		{"mlx5 by PCI address", []string{"enp175s0", "0000:af:00.0"}, map[int]int{0: 61, 1: 62}},
		{"veth: none", []string{"wan0"}, map[int]int{}},
		{"no aliases", nil, map[int]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseInterrupts(strings.NewReader(interrupts), tc.aliases)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{"0\n", []int{0}, false},
		{"0-3", []int{0, 1, 2, 3}, false},
		{"0-1,8,10-11", []int{0, 1, 8, 10, 11}, false},
		{"", nil, false},
		{"3-1", nil, true},
		{"a", nil, true},
		{"-1", nil, true},
		{"0-99999", nil, true},
		{"1,", nil, true},
	} {
		got, err := ParseCPUList(tc.in)
		if (err != nil) != tc.err || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestAssignCPUs(t *testing.T) {
	irq := func(cpus ...int) QueueCPU { return QueueCPU{IRQ: 1, CPUs: cpus} }
	none := QueueCPU{IRQ: -1}
	for _, tc := range []struct {
		name   string
		n      int
		queues []QueueCPU
		online []int
		want   []int
		bad    []int // Disagreements of want with queues
	}{
		{"veth spreads", 4, []QueueCPU{none, none, none, none}, []int{0, 1}, []int{0, 1, 0, 1}, nil},
		{"irq affinity", 3, []QueueCPU{irq(2), irq(3, 4), irq(0)}, []int{0, 1, 2, 3, 4}, []int{2, 3, 0}, nil},
		{"mixed", 2, []QueueCPU{irq(5), none}, []int{0, 1}, []int{5, 1}, nil},
		{"nothing known", 2, nil, nil, []int{-1, -1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AssignCPUs(tc.n, tc.queues, tc.online)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("AssignCPUs = %v, want %v", got, tc.want)
			}
			if bad := Disagreements(got, tc.queues); !reflect.DeepEqual(bad, tc.bad) {
				t.Errorf("Disagreements = %v, want %v", bad, tc.bad)
			}
		})
	}
	// Explicit CPUs against IRQs elsewhere.
	q := []QueueCPU{{IRQ: 1, CPUs: []int{0}}, {IRQ: 2, CPUs: []int{1, 2}}, none}
	if bad := Disagreements([]int{0, 3, 7}, q); !reflect.DeepEqual(bad, []int{1}) {
		t.Errorf("Disagreements = %v, want [1]", bad)
	}
}

func TestSysfsRXQueues(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "eth0")
	for _, d := range []string{"rx-0", "rx-1", "rx-2", "tx-0", "tx-1", "rx-x"} {
		if err := os.MkdirAll(filepath.Join(dev, "queues", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dev, "ifindex"), []byte("7\n"), 0o644)
	if n, err := sysfsRXQueues(root, "eth0", 7); err != nil || n != 3 {
		t.Errorf("sysfsRXQueues = %d, %v; want 3", n, err)
	}
	// Another namespace's eth0 (sysfs not remounted): not counted.
	if n, err := sysfsRXQueues(root, "eth0", 8); err == nil {
		t.Errorf("ifindex 8 against sysfs's 7: got %d, want an error", n)
	}
	if _, err := sysfsRXQueues(root, "eth9", 7); err == nil {
		t.Error("missing device: no error")
	}
}

func FuzzParseInterrupts(f *testing.F) {
	f.Add(interrupts, "eth1")
	f.Add(" 5: 1 x y mlx5_comp1@pci:a\n", "a")
	f.Fuzz(func(t *testing.T, text, alias string) {
		for q, irq := range ParseInterrupts(strings.NewReader(text), []string{alias}) {
			if q < 0 || irq < 0 {
				t.Fatalf("queue %d irq %d", q, irq)
			}
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	f.Add("0-3,8")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err != nil {
			return
		}
		for _, c := range cpus {
			if c < 0 || c > maxCPU {
				t.Fatalf("%q: cpu %d", s, c)
			}
		}
	})
}

// TestRXFHLayout: ETHTOOL_SRXFH reads cmd, flow_type and a 64-bit data
// at offset 8 (the original struct ethtool_rxnfc), and "sdfn" is the
// addresses and the first four bytes after the IP header: the SPI.
func TestRXFHLayout(t *testing.T) {
	var r rxfh
	if unsafe.Sizeof(r) != 16 || unsafe.Offsetof(r.data) != 8 {
		t.Fatalf("rxfh: size %d, data at %d", unsafe.Sizeof(r), unsafe.Offsetof(r.data))
	}
	if ESPSPIHash != 0xf0 {
		t.Errorf("sdfn = %#x, want 0xf0 (RXH_IP_SRC|RXH_IP_DST|RXH_L4_B_0_1|RXH_L4_B_2_3)", ESPSPIHash)
	}
}
