package gen

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// dropCounter is an XDP program on the sink's veth that counts every
// frame in a per-CPU counter and drops it: the cheapest possible far
// side, so the comparison measures the generators, not the sink.
type dropCounter struct {
	m *ebpf.Map
}

func attachDropCounter(tb testing.TB, ns, ifname string) *dropCounter {
	tb.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "xdpgen_cnt", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		tb.Fatalf("counter map: %v", err)
	}
	tb.Cleanup(func() { m.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdpgen_drop", Type: ebpf.XDP, License: "Dual MIT/GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word), // key 0
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			// Per-CPU value: no other CPU writes it, a plain add is safe.
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("out"), // XDP_DROP
			asm.Return(),
		},
	})
	if err != nil {
		tb.Fatalf("drop program: %v", err)
	}
	tb.Cleanup(func() { prog.Close() })
	var lk link.Link
	if err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: link.XDPDriverMode})
		return err
	}); err != nil {
		tb.Fatalf("attach drop program: %v", err)
	}
	tb.Cleanup(func() { lk.Close() })
	return &dropCounter{m: m}
}

func (d *dropCounter) count(tb testing.TB) uint64 {
	tb.Helper()
	var vals []uint64
	if err := d.m.Lookup(uint32(0), &vals); err != nil {
		tb.Fatalf("read counter: %v", err)
	}
	var n uint64
	for _, v := range vals {
		n += v
	}
	return n
}

// measure counts what reaches the sink in window, after warm-up.
func (d *dropCounter) measure(tb testing.TB, warm, window time.Duration) float64 {
	time.Sleep(warm)
	a := d.count(tb)
	t0 := time.Now()
	time.Sleep(window)
	b := d.count(tb)
	return float64(b-a) / time.Since(t0).Seconds()
}

// BenchmarkCompareTrafgen sends 64-byte UDP frames over one veth with
// netsniff-ng's trafgen (one CPU) and with the generator (one thread on
// the same CPU), counting at the far side with an XDP_DROP program, two
// rounds of about 1.3 s each per tool.
//
// It is a benchmark, not a test: speeds are measured by `make bench`
// (scripts/bench.sh), never asserted by timed tests. It reports both
// rates and their ratio as metrics; one iteration does the whole
// comparison, so run it with -benchtime=1x.
func BenchmarkCompareTrafgen(b *testing.B) {
	testlab.RequireXDPLab(b)
	trafgen, err := exec.LookPath("trafgen")
	if err != nil {
		b.Skipf("skipping: needs netsniff-ng's trafgen: %v", err)
	}
	l := newGenLab(b)
	d := attachDropCounter(b, l.nsB, l.ifB)
	warm, window, rounds := 300*time.Millisecond, time.Second, 2
	// trafgen: 14 + 20 + 8 + 22 bytes of payload = 64.
	conf := filepath.Join(b.TempDir(), "udp64.cfg")
	cfg := fmt.Sprintf("{ eth(da=%s, sa=%s), ipv4(saddr=%s, daddr=%s, ttl=64), udp(sp=10000, dp=9), fill(0x00, 22) }\n",
		l.macB, l.macA, l.ipA, l.ipB)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	var tgPPS, genPPS float64
	for i := 0; i < b.N; i++ {
		// The tools take turns and each keeps its best round, so a burst
		// of load from elsewhere on the machine does not decide it.
		for n := 0; n < rounds; n++ {
			tgPPS = max(tgPPS, runTrafgen(b, l, d, trafgen, conf, warm, window))
			time.Sleep(100 * time.Millisecond)
			genPPS = max(genPPS, runXdpgen(b, l, d, warm, window))
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.ReportMetric(tgPPS, "trafgen-pps")
	b.ReportMetric(genPPS, "xdpgen-pps")
	b.ReportMetric(genPPS/tgPPS, "xdpgen/trafgen")
	b.Logf("64-byte UDP over veth, counted by XDP_DROP at the peer: trafgen (1 CPU) %s, xdpgen (1 thread) %s, ratio %.2f",
		PPS(tgPPS), PPS(genPPS), genPPS/tgPPS)
}

func runTrafgen(t testing.TB, l *genLab, d *dropCounter, trafgen, conf string, warm, window time.Duration) float64 {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.nsA, trafgen, "--dev", l.ifA, "--conf", conf, "--cpus", "1", "--no-sock-mem")
	out, err := os.CreateTemp(t.TempDir(), "trafgen")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	// trafgen forks a worker per CPU: give it a process group of its own
	// so the interrupt (and, failing that, the kill) reaches the worker.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	pps := d.measure(t, warm, window)
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	if pps == 0 {
		log, _ := os.ReadFile(out.Name())
		t.Fatalf("trafgen delivered nothing:\n%s", log)
	}
	return pps
}

// runXdpgen sends the same frame, one flow, as fast as it goes.
func runXdpgen(t testing.TB, l *genLab, d *dropCounter, warm, window time.Duration) float64 {
	t.Helper()
	var s *Sender
	txDone := make(chan error, 1)
	opened := make(chan error, 1)
	go func() {
		txDone <- InNetns(l.nsA, func() error {
			// CPU 0, where trafgen --cpus 1 runs its worker (unpinned
			// where a cpuset forbids it: the numbers only get noisier).
			if err := PinThread(0); err != nil {
				t.Logf("running unpinned: %v", err)
			}
			ifi, err := net.InterfaceByName(l.ifA)
			if err != nil {
				opened <- err
				return err
			}
			g, err := NewGenerator(Config{SrcMAC: l.macA, DstMAC: l.macB, Src: l.ipA, Dst: l.ipB,
				SrcPort: 10000, DstPort: 9, Flows: 1, Sizes: []int{64}})
			if err == nil {
				s, err = OpenSender(g, TxOptions{Ifindex: ifi.Index, Batch: 256, Duration: warm + window + time.Second})
			}
			opened <- err
			if err != nil {
				return err
			}
			defer s.Close()
			return s.Run()
		})
	}()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	pps := d.measure(t, warm, window)
	s.Stop()
	if err := <-txDone; err != nil {
		t.Fatal(err)
	}
	return pps
}
