package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// testNetns is a network namespace with a veth pair (veth0 <-> veth1, both
// up), created for one test and deleted after it.
type testNetns struct {
	*testlab.Netns
	name  string
	nl    *netlink.Handle
	veth0 int // ifindex inside the namespace
	veth1 int
}

var nsSeq atomic.Int32

func newTestNetns(t testing.TB) *testNetns {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip to create a network namespace")
	}
	// No IPv6 in the namespace: DAD and router solicitations would cross
	// the veth and make counter checks racy.
	n := testlab.NewNetns(t, "xdpsec-bpf-"+testlab.Tag(), testlab.NoIPv6)
	veth0, veth1 := &testlab.End{NS: n, Name: "veth0"}, &testlab.End{NS: n, Name: "veth1"}
	testlab.Veth(t, veth0, veth1, 0)

	h, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatalf("open netns %s: %v", n.Name, err)
	}
	t.Cleanup(func() { h.Close() })
	nlh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatalf("netlink in %s: %v", n.Name, err)
	}
	t.Cleanup(nlh.Close)
	return &testNetns{Netns: n, name: n.Name, nl: nlh, veth0: veth0.Ifindex, veth1: veth1.Ifindex}
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
	return ns.IP(t, "-d", "link", "show", "dev", dev)
}

// do runs fn on a thread switched into the namespace. Interface indexes in
// bpf_link creation, AF_XDP bind and BPF_PROG_TEST_RUN's ingress_ifindex are
// resolved in the calling thread's namespace.
func (ns *testNetns) do(t testing.TB, fn func()) {
	t.Helper()
	ns.InTest(t, fn)
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
