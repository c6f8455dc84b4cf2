package testlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// Setup selects the optional parts of a namespace or a veth pair.
type Setup uint

const (
	// NoIPv6 turns IPv6 off in a namespace: router solicitations, MLD
	// reports and DAD would otherwise cross its links and reach the
	// sockets and counters a test checks.
	NoIPv6 Setup = 1 << iota
	// LoUp brings a namespace's loopback up.
	LoUp
	// StaticNeigh gives each end of a veth pair its peer's address as a
	// permanent neighbour (both ends need a MAC and an address): an XDP
	// program that takes every frame also takes ARP.
	StaticNeigh
	// TxOff turns transmit checksum offload off on both ends: a frame an
	// AF_XDP socket takes never reaches the offload that would finish it.
	TxOff
)

// Netns is a named network namespace (`ip netns`, /run/netns/Name).
type Netns struct {
	Name string
}

// NewNetns creates the namespace name, deleted when tb ends.
func NewNetns(tb testing.TB, name string, setup Setup) *Netns {
	tb.Helper()
	n := &Netns{Name: name}
	Run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	if setup&NoIPv6 != 0 {
		n.Run(tb, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	if setup&LoUp != 0 {
		n.IP(tb, "link", "set", "lo", "up")
	}
	return n
}

// Path is the namespace's file, for nsenter --net and setns.
func (n *Netns) Path() string { return "/run/netns/" + n.Name }

// IP runs `ip -n Name args...`; a failure fails tb.
func (n *Netns) IP(tb testing.TB, args ...string) string {
	tb.Helper()
	return Run(tb, append([]string{"ip", "-n", n.Name}, args...)...)
}

// Run runs a command inside the namespace; a failure fails tb.
func (n *Netns) Run(tb testing.TB, args ...string) string {
	tb.Helper()
	return Run(tb, append([]string{"ip", "netns", "exec", n.Name}, args...)...)
}

// Command makes a command that runs inside the namespace.
func (n *Netns) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path(), "--"}, args...)...)
}

// Do runs f on a thread that has entered the namespace (sockets, XDP
// attachments and interface indexes belong to the namespace of the thread
// that makes them) and returns f's error. f runs on a goroutine of its
// own, so it must not call tb.Fatal. The thread goes back to the scheduler
// only once it is back in its own namespace; if it cannot come back, the
// goroutine exits still locked and the runtime retires the thread. (A
// thread left in a lab namespace would be worse than wrong sockets: were
// it the main thread, `ip netns pids` would list the test process and
// whatever deletes the lab would kill it.)
func (n *Netns) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(n.Path())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("back from %s: %w", n.Name, err)
			return // still locked: the thread goes with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Ifindex is the index of the interface name inside the namespace.
func (n *Netns) Ifindex(name string) (int, error) {
	var idx int
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = ifi.Index
		return nil
	})
	return idx, err
}

// End is one end of a veth pair. Veth fills in Ifindex.
type End struct {
	NS      *Netns
	Name    string
	MAC     net.HardwareAddr // nil: the kernel's random one
	Addr    netip.Prefix     // zero: no address
	MTU     int              // 0: the default
	Master  string           // a bridge in NS to enslave the end to ("": none)
	Ifindex int
}

// Veth creates a veth pair between a and b (which may share a namespace),
// gives each end its MAC, address and MTU, brings both up, and applies
// the StaticNeigh and TxOff parts of setup. The pair goes with its
// namespaces.
func Veth(tb testing.TB, a, b *End, setup Setup) {
	tb.Helper()
	args := []string{"ip", "link", "add", a.Name, "netns", a.NS.Name}
	if a.MAC != nil {
		args = append(args, "address", a.MAC.String())
	}
	args = append(args, "type", "veth", "peer", "name", b.Name, "netns", b.NS.Name)
	if b.MAC != nil {
		args = append(args, "address", b.MAC.String())
	}
	Run(tb, args...)
	for _, s := range []struct{ end, peer *End }{{a, b}, {b, a}} {
		e := s.end
		if e.Addr.IsValid() {
			e.NS.IP(tb, "addr", "add", e.Addr.String(), "dev", e.Name)
		}
		if e.MTU > 0 {
			e.NS.IP(tb, "link", "set", e.Name, "mtu", strconv.Itoa(e.MTU))
		}
		if e.Master != "" {
			e.NS.IP(tb, "link", "set", e.Name, "master", e.Master)
		}
		e.NS.IP(tb, "link", "set", e.Name, "up")
		if setup&StaticNeigh != 0 {
			e.NS.IP(tb, "neigh", "replace", s.peer.Addr.Addr().String(), "lladdr", s.peer.MAC.String(),
				"dev", e.Name, "nud", "permanent")
		}
		if setup&TxOff != 0 {
			e.NS.Run(tb, "ethtool", "-K", e.Name, "tx", "off")
		}
	}
	var err error
	if a.Ifindex, err = a.NS.Ifindex(a.Name); err != nil {
		tb.Fatal(err)
	}
	if b.Ifindex, err = b.NS.Ifindex(b.Name); err != nil {
		tb.Fatal(err)
	}
}

// Bridge creates a bridge in the namespace and brings it up. Multicast
// snooping is off, so IPv6 neighbour discovery reaches every port at once.
func (n *Netns) Bridge(tb testing.TB, name string) {
	tb.Helper()
	n.IP(tb, "link", "add", name, "type", "bridge", "mcast_snooping", "0")
	n.IP(tb, "link", "set", name, "up")
}

// Route adds a route inside the namespace: `ip -n Name route add args...`.
func (n *Netns) Route(tb testing.TB, args ...string) {
	tb.Helper()
	n.IP(tb, append([]string{"route", "add"}, args...)...)
}

// InTest runs fn on the calling goroutine, its thread locked and moved
// into the namespace, so that fn may call tb.Fatal. A thread that cannot
// go back stays locked, so the runtime retires it instead of reusing it
// in the wrong namespace.
func (n *Netns) InTest(tb testing.TB, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	target, err := os.Open(n.Path())
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("open netns %s: %v", n.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("enter %s: %v", n.Name, err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	fn()
}
