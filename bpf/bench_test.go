package bpf

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// BenchmarkXDP measures the program per packet inside the kernel
// (BPF_PROG_TEST_RUN with repeat), beside a baseline program that only
// returns XDP_PASS, so the difference is the classification itself.
// Run with -benchtime=200ms on shared machines.
func BenchmarkXDP(b *testing.B) {
	o := loadForTest(b, Options{})
	setupState(b, o)
	baseline := passProgram(b)

	espFrame := ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 1400), v4opts{}))
	benchRuns(b, []benchRun{
		{"baseline-pass", baseline, espFrame},
		{"wan-esp-live", o.Program(RoleWAN), espFrame},
		{"wan-espinudp-live", o.Program(RoleWAN), ether(true, etherTypeIPv6, ipv6(protoUDP, peer6, gw6, udp(4500, 4500, esp(spiKnown, 1, 1400))))},
		{"wan-esp-unknown", o.Program(RoleWAN), ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiUnknown, 1, 1400), v4opts{}))},
		{"lan-v4-protect", o.Program(RoleLAN), ether(false, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("198.51.100.7"), udp(1, 2, make([]byte, 1400)), v4opts{}))},
		{"lan-v6-bypass", o.Program(RoleLAN), ether(false, etherTypeIPv6, ipv6(protoUDP, host6, netip.MustParseAddr("2001:db8:9::1"), udp(1, 2, make([]byte, 1400))))},
		{"onearm-esp-live", o.Program(RoleOneArm), espFrame},
	})
}

// passProgram is the baseline: an XDP program that only returns XDP_PASS.
func passProgram(b *testing.B) *ebpf.Program {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "Dual MIT/GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

type benchRun struct {
	name  string
	prog  *ebpf.Program
	frame []byte
}

// benchRuns reports each program's kernel time per packet on its frame.
func benchRuns(b *testing.B, runs []benchRun) {
	for _, c := range runs {
		b.Run(c.name, func(b *testing.B) {
			var total float64
			n := 0
			for b.Loop() {
				_, d, err := c.prog.Benchmark(c.frame, 1000, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += float64(d.Nanoseconds())
				n++
			}
			b.ReportMetric(total/float64(n), "kernel-ns/pkt")
		})
	}
}
