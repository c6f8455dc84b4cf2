package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"golang.org/x/sys/unix"
)

func progID(t testing.TB, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("kernel did not report a program ID")
	}
	return uint32(id)
}

func assertAttached(t testing.TB, ns *testNetns, ifindex int, wantProg uint32, wantMode uint32) {
	t.Helper()
	attached, id, mode := ns.xdpState(t, ifindex)
	if !attached || id != wantProg || mode != wantMode {
		t.Fatalf("xdp on ifindex %d: attached=%v prog=%d mode=%d, want prog %d mode %d", ifindex, attached, id, mode, wantProg, wantMode)
	}
}

func assertDetached(t testing.TB, ns *testNetns, ifindex int, dev string) {
	t.Helper()
	if attached, id, _ := ns.xdpState(t, ifindex); attached || id != 0 {
		t.Fatalf("xdp still attached to %s (prog %d)", dev, id)
	}
	if out := ns.ipLinkShow(t, dev); strings.Contains(out, "prog/xdp") {
		t.Fatalf("ip link still shows an xdp program:\n%s", out)
	}
}

// TestPinnedAttachmentLifecycle: native attach on a veth, survival of the
// attachment and the maps when the Go objects go away, take-over by a second
// Load (with a role change, swapped in atomically), and a Detach that leaves
// nothing behind.
func TestPinnedAttachmentLifecycle(t *testing.T) {
	ns := newTestNetns(t)
	pin := newPinPath(t)

	o1, err := Load(Options{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	var a1 *Attachment
	ns.do(t, func() { a1, err = o1.AttachWAN(ns.veth0, xdpconf.ModeNative) })
	if err != nil {
		o1.Close()
		t.Fatalf("AttachWAN native on veth: %v", err)
	}
	if a1.Mode != xdpconf.ModeNative || a1.Reused || a1.Role != RoleWAN {
		t.Errorf("attachment %+v, want fresh native wan", a1)
	}
	wanID := progID(t, o1.Program(RoleWAN))
	assertAttached(t, ns, ns.veth0, wanID, nl.XDP_ATTACHED_DRV)
	if out := ns.ipLinkShow(t, "veth0"); !strings.Contains(out, fmt.Sprintf("prog/xdp id %d", wanID)) {
		t.Errorf("ip link does not show prog %d:\n%s", wanID, out)
	}
	if err := o1.SetSPILive(spiKnown, true); err != nil {
		t.Fatal(err)
	}
	if err := o1.SetNATTPort(4501); err != nil {
		t.Fatal(err)
	}
	// Closing every handle is what the kernel sees when the daemon dies.
	if err := o1.Close(); err != nil {
		t.Fatal(err)
	}
	assertAttached(t, ns, ns.veth0, wanID, nl.XDP_ATTACHED_DRV)

	o2, err := Load(Options{PinPath: pin})
	if err != nil {
		t.Fatalf("second Load on the same pin path: %v", err)
	}
	defer o2.Close()
	if port, _, err := o2.Config(); err != nil || port != 4501 {
		t.Errorf("pinned config: nat-t port %d (%v), want 4501 kept", port, err)
	}
	// The pinned live_spis map came back with its content.
	runCase(t, o2, o2.Program(RoleWAN), verdictCase{"pinned spi", ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 32), v4opts{})), xdpDrop, deltas{CounterESPRedirect: 1, CounterXSKMissing: 1}})

	var a2 *Attachment
	ns.do(t, func() { a2, err = o2.AttachLAN(ns.veth0, xdpconf.ModeAuto) })
	if err != nil {
		t.Fatalf("re-attach: %v", err)
	}
	if !a2.Reused || a2.Mode != xdpconf.ModeNative || a2.Role != RoleLAN {
		t.Errorf("attachment %+v, want reused native lan", a2)
	}
	assertAttached(t, ns, ns.veth0, progID(t, o2.Program(RoleLAN)), nl.XDP_ATTACHED_DRV)

	ns.do(t, func() { _, err = o2.AttachLAN(ns.veth0, xdpconf.ModeGeneric) })
	if err == nil {
		t.Error("re-attach in generic mode over a native attachment succeeded, want an error")
	}

	if err := o2.Detach(); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	assertDetached(t, ns, ns.veth0, "veth0")
	if _, err := os.Stat(pin); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pin path still there after Detach: %v", err)
	}
}

// TestUnpinnedAttachmentEndsWithProcess documents the fail-open case that
// PinPath exists to avoid: without pins the attachment dies with its handle.
func TestUnpinnedAttachmentEndsWithProcess(t *testing.T) {
	ns := newTestNetns(t)
	o := loadForTest(t, Options{})
	var err error
	ns.do(t, func() { _, err = o.AttachLAN(ns.veth0, xdpconf.ModeAuto) })
	if err != nil {
		t.Fatal(err)
	}
	assertAttached(t, ns, ns.veth0, progID(t, o.Program(RoleLAN)), nl.XDP_ATTACHED_DRV)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, ns, ns.veth0, "veth0")
}

// TestAutoModeFallsBackToGeneric uses the namespace's loopback device, which
// has no native XDP (and, unlike a dummy device, needs no module).
func TestAutoModeFallsBackToGeneric(t *testing.T) {
	ns := newTestNetns(t)
	lo := ns.ifindex(t, "lo")
	o := loadForTest(t, Options{})

	var err error
	ns.do(t, func() { _, err = o.AttachOneArm(lo, xdpconf.ModeNative) })
	if err == nil {
		t.Fatal("native attach on loopback succeeded")
	}
	var a *Attachment
	ns.do(t, func() { a, err = o.AttachOneArm(lo, xdpconf.ModeAuto) })
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode != xdpconf.ModeGeneric {
		t.Errorf("auto picked %s, want generic", a.Mode)
	}
	assertAttached(t, ns, lo, progID(t, o.Program(RoleOneArm)), nl.XDP_ATTACHED_SKB)
	if out := ns.ipLinkShow(t, "lo"); !strings.Contains(out, "xdpgeneric") {
		t.Errorf("ip link does not show xdpgeneric:\n%s", out)
	}
	if err := a.Detach(); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, ns, lo, "lo")
}

const (
	helperPinEnv   = "XDPSEC_BPF_TEST_HELPER_PIN"
	helperNetnsEnv = "XDPSEC_BPF_TEST_HELPER_NETNS"
	helperReady    = "XDPSEC-HELPER-READY"
)

// TestHelperDaemon is not a test: TestKilledDaemonStaysFailClosed runs the
// test binary again with this test selected, as a stand-in daemon to kill.
func TestHelperDaemon(t *testing.T) {
	pin := os.Getenv(helperPinEnv)
	if pin == "" {
		t.Skip("child process of TestKilledDaemonStaysFailClosed only")
	}
	runtime.LockOSThread()
	h, err := netns.GetFromName(os.Getenv(helperNetnsEnv))
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName("veth0")
	if err != nil {
		t.Fatal(err)
	}
	o, err := Load(Options{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.SyncSPD([]SPDEntry{{netip.MustParsePrefix("0.0.0.0/0"), ActionProtect}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.AttachLAN(l.Attrs().Index, xdpconf.ModeNative); err != nil {
		t.Fatal(err)
	}
	fmt.Println(helperReady)
	time.Sleep(time.Minute) // the parent kills us long before
}

// TestKilledDaemonStaysFailClosed kills (SIGKILL) a process that loaded,
// pinned and attached the LAN program with 0.0.0.0/0 PROTECT, then sends a
// real frame into the interface: the program must still be attached and
// drop it (no socket any more), and Detach must remove everything.
func TestKilledDaemonStaysFailClosed(t *testing.T) {
	ns := newTestNetns(t)
	pin := newPinPath(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDaemon$", "-test.v")
	cmd.Env = append(os.Environ(), helperPinEnv+"="+pin, helperNetnsEnv+"="+ns.name)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.TrimSpace(sc.Text()) == helperReady {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("helper exited before attaching:\n%s", out.String())
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper did not attach within 30s")
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	attached, _, mode := ns.xdpState(t, ns.veth0)
	if !attached || mode != nl.XDP_ATTACHED_DRV {
		t.Fatalf("after SIGKILL: attached=%v mode=%d, want the native program still attached", attached, mode)
	}

	o, err := Load(Options{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	before, err := o.CounterValues()
	if err != nil {
		t.Fatal(err)
	}
	var send func([]byte)
	ns.do(t, func() { send = packetSender(t, ns.veth1) })
	send(ether(false, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("198.51.100.7"), udp(40000, 53, []byte("secret")), v4opts{})))
	want := deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}
	waitCounters(t, o, before, want)

	if err := o.Detach(); err != nil {
		t.Fatal(err)
	}
	assertDetached(t, ns, ns.veth0, "veth0")
	if _, err := os.Stat(pin); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pin path still there after Detach: %v", err)
	}
}

// packetSender opens an AF_PACKET socket that writes whole Ethernet frames
// out of ifindex (in the calling thread's namespace).
func packetSender(t testing.TB, ifindex int) func([]byte) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	sa := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
	return func(frame []byte) {
		t.Helper()
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			t.Fatalf("send frame: %v", err)
		}
	}
}

// waitCounters waits until the counters moved by exactly want since before
// (frames on a real interface are processed asynchronously).
func waitCounters(t testing.TB, o *Objects, before CounterValues, want deltas) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		now, err := o.CounterValues()
		if err != nil {
			t.Fatal(err)
		}
		var diff []string
		for i := range now {
			if got, w := now[i]-before[i], want[Counter(i)]; got != w {
				diff = append(diff, fmt.Sprintf("%s moved %d, want %d", Counter(i), got, w))
			}
		}
		if len(diff) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters: %s", strings.Join(diff, "; "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplaceIncompatiblePinnedMap simulates an upgrade that changed one map
// definition: a plain Load refuses the old pin, ReplaceIncompatible swaps in
// a new map for it and keeps the compatible ones with their content.
func TestReplaceIncompatiblePinnedMap(t *testing.T) {
	requireRoot(t)
	pin := newPinPath(t)
	o1, err := Load(Options{PinPath: pin})
	if err != nil {
		t.Fatal(err)
	}
	if err := o1.SetSPILive(spiKnown, true); err != nil {
		t.Fatal(err)
	}
	o1.Close()

	countersPin := filepath.Join(pin, "counters")
	if err := os.Remove(countersPin); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(countersPin); err != nil {
		t.Fatal(err)
	}
	old.Close()

	if o, err := Load(Options{PinPath: pin}); !errors.Is(err, ebpf.ErrMapIncompatible) {
		if o != nil {
			o.Close()
		}
		t.Fatalf("Load over an incompatible pin: %v, want ErrMapIncompatible", err)
	}
	o2, err := Load(Options{PinPath: pin, ReplaceIncompatible: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	m, err := ebpf.LoadPinnedMap(countersPin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.MaxEntries() != uint32(NumCounters) {
		t.Errorf("pinned counters has %d entries, want %d", m.MaxEntries(), NumCounters)
	}
	if _, err := o2.CounterValues(); err != nil {
		t.Error(err)
	}
	var v uint8
	if err := o2.objs.LiveSpis.Lookup(spiKey(spiKnown), &v); err != nil || v != 1 {
		t.Errorf("compatible live_spis lost its content: %v", err)
	}
}
