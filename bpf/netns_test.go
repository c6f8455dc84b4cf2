package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNetns is a network namespace with a veth pair (veth0 <-> veth1, both
// up), created for one test and deleted after it.
type testNetns struct {
	name   string
	handle netns.NsHandle
	nl     *netlink.Handle
	veth0  int // ifindex inside the namespace
	veth1  int
}

var nsSeq atomic.Int32

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newTestNetns(t testing.TB) *testNetns {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to create a network namespace")
	}
	name := fmt.Sprintf("xdpsec-bpf-%d-%d", os.Getpid(), nsSeq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	// No IPv6 in the namespace: DAD and router solicitations would cross
	// the veth and make counter checks racy.
	run(t, "ip", "netns", "exec", name, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	run(t, "ip", "-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	run(t, "ip", "-n", name, "link", "set", "veth0", "up")
	run(t, "ip", "-n", name, "link", "set", "veth1", "up")

	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	nlh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink in %s: %v", name, err)
	}
	t.Cleanup(nlh.Close)
	ns := &testNetns{name: name, handle: h, nl: nlh}
	ns.veth0 = ns.ifindex(t, "veth0")
	ns.veth1 = ns.ifindex(t, "veth1")
	return ns
}

func (ns *testNetns) ifindex(t testing.TB, name string) int {
	t.Helper()
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, ns.name, err)
	}
	return l.Attrs().Index
}

// xdpState reports, through rtnetlink, whether an XDP program is attached to
// the interface, its ID and mode.
func (ns *testNetns) xdpState(t testing.TB, ifindex int) (attached bool, progID uint32, mode uint32) {
	t.Helper()
	l, err := ns.nl.LinkByIndex(ifindex)
	if err != nil {
		t.Fatalf("ifindex %d in %s: %v", ifindex, ns.name, err)
	}
	x := l.Attrs().Xdp
	if x == nil {
		return false, 0, 0
	}
	return x.Attached, x.ProgId, x.AttachMode
}

// ipLinkShow is what an operator would look at.
func (ns *testNetns) ipLinkShow(t testing.TB, dev string) string {
	t.Helper()
	return run(t, "ip", "-n", ns.name, "-d", "link", "show", "dev", dev)
}

// do runs fn on a thread switched into the namespace. Interface indexes in
// bpf_link creation, AF_XDP bind and BPF_PROG_TEST_RUN's ingress_ifindex are
// resolved in the calling thread's namespace.
func (ns *testNetns) do(t testing.TB, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns.handle); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter %s: %v", ns.name, err)
	}
	defer func() {
		// A thread that cannot go back stays locked, so the runtime
		// retires it instead of reusing it in the wrong namespace.
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	fn()
}

// newPinPath returns a fresh directory name on bpffs, removed after the test.
func newPinPath(t testing.TB) string {
	t.Helper()
	const root = "/sys/fs/bpf"
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Skipf("needs bpffs mounted at %s", root)
	}
	p := filepath.Join(root, fmt.Sprintf("xdpsec-test-%d-%d", os.Getpid(), nsSeq.Add(1)))
	if err := preparePinPath(p); err != nil {
		os.Remove(p)
		t.Skipf("bpffs not usable at %s: %v", root, err)
	}
	t.Cleanup(func() { DetachPinned(p) })
	return p
}
