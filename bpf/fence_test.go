package bpf

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// TestFence: an ARP request or a Neighbor Solicitation for a group
// address passes to the kernel while the address's time in the fence is
// ahead, and is dropped (CounterFenceDrop alone) once it has passed;
// addresses not in the fence, ARP replies and other targets pass as
// before, on every program.
func TestFence(t *testing.T) {
	o := loadForTest(t, Options{})
	arpFor := func(op byte, target netip.Addr) []byte {
		b := arpRequest()
		b[7] = op
		tg := target.As4()
		copy(b[24:28], tg[:])
		return ether(false, 0x0806, b)
	}
	grp4, grp6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:f::1")
	nsFor := func(target netip.Addr) []byte {
		return ether(false, 0x86dd, ipv6(58, peer6, solicitedNode(target), neighborSolicitation(target)))
	}
	pass := deltas{CounterPassOther: 1}
	drop := deltas{CounterFenceDrop: 1}
	for _, role := range []Role{RoleWAN, RoleLAN, RoleOneArm} {
		t.Run(role.String(), func(t *testing.T) {
			run := func(name string, frame []byte, want uint32, d deltas) {
				t.Helper()
				if d == nil { // an NS the program classifies as before: the verdict only
					ret, err := o.Program(role).Run(&ebpf.RunOptions{Data: frame})
					if err != nil {
						t.Fatal(err)
					}
					if ret != want {
						t.Errorf("%s: %s, want %s", name, verdictName(ret), verdictName(want))
					}
					return
				}
				runExact(t, o, role, name, frame, want, d)
			}
			for _, a := range []netip.Addr{grp4, grp6} {
				if err := o.Unfence(a); err != nil {
					t.Fatal(err)
				}
			}
			run("ARP request, no fence", arpFor(1, grp4), xdpPass, pass)
			run("NS, no fence", nsFor(grp6), xdpPass, nil)

			ahead := MonotonicNow() + int64(time.Hour)
			for _, a := range []netip.Addr{grp4, grp6} {
				if err := o.Fence(a, ahead); err != nil {
					t.Fatal(err)
				}
			}
			run("ARP request, lease ahead", arpFor(1, grp4), xdpPass, pass)
			run("NS, lease ahead", nsFor(grp6), xdpPass, nil)

			past := MonotonicNow() - 1
			for _, a := range []netip.Addr{grp4, grp6} {
				if err := o.Fence(a, past); err != nil {
					t.Fatal(err)
				}
			}
			run("ARP request, lease passed", arpFor(1, grp4), xdpDrop, drop)
			run("NS, lease passed", nsFor(grp6), xdpDrop, drop)
			run("ARP reply from the address", arpFor(2, grp4), xdpPass, pass)
			run("ARP request, another target", arpFor(1, netip.MustParseAddr("192.0.2.3")), xdpPass, pass)
			run("NS, another target", nsFor(netip.MustParseAddr("2001:db8:f::3")), xdpPass, nil)
			run("ARP request cut short", ether(false, 0x0806, arpFor(1, grp4)[14:14+20]), xdpPass, pass)
		})
	}
}
