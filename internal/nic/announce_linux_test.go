package nic

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// TestMoveAddress: an address is added (IPv6 without DAD: not tentative),
// announced through the packet socket, and removed, in a namespace of its
// own; tshark decodes what a neighbour received as a gratuitous ARP and an
// unsolicited Neighbor Advertisement with the Override flag, and the
// neighbour's kernel, which had the addresses at another MAC, now has
// them at the announcer's.
func TestMoveAddress(t *testing.T) {
	testlab.RequireRoot(t, "network namespaces and packet sockets", "ip", "tcpdump", "tshark", "nsenter")
	tag := testlab.Tag()
	a := testlab.NewNetns(t, "na"+tag, testlab.LoUp)
	b := testlab.NewNetns(t, "nb"+tag, testlab.LoUp)
	macA, _ := net.ParseMAC("02:00:00:00:0a:01")
	ea := &testlab.End{NS: a, Name: "e0", MAC: macA, Addr: netip.MustParsePrefix("192.0.2.11/24")}
	eb := &testlab.End{NS: b, Name: "e0", MAC: net.HardwareAddr{2, 0, 0, 0, 0x0b, 1}, Addr: netip.MustParsePrefix("192.0.2.2/24")}
	testlab.Veth(t, ea, eb, 0)
	// Both link-local addresses past DAD: a new link's IPv6 is ready.
	for _, n := range []*testlab.Netns{a, b} {
		deadline := time.Now().Add(5 * time.Second)
		for strings.Contains(n.IP(t, "-6", "addr", "show", "dev", "e0"), "tentative") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	v4, v6 := netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:f::1/64")
	// b had the addresses at another node's MAC.
	for _, p := range []netip.Prefix{v4, v6} {
		b.IP(t, "neigh", "replace", p.Addr().String(), "lladdr", "02:00:00:00:0c:01", "dev", "e0", "nud", "stale")
	}
	pcap := filepath.Join(t.TempDir(), "b.pcap")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dump := b.Command(ctx, "tcpdump", "-i", "e0", "-n", "-U", "--immediate-mode", "-Z", "root", "-w", pcap, "arp or icmp6")
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // tcpdump listens

	err := a.Do(func() error {
		for _, p := range []netip.Prefix{v4, v6} {
			if err := AddAddr(ea.Ifindex, p, 0); err != nil {
				return err
			}
			if err := AddAddr(ea.Ifindex, p, 0); err != nil { // already there: fine
				return err
			}
		}
		return Announce(ea.Ifindex, [6]byte(macA), []netip.Addr{v4.Addr(), v6.Addr()})
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Do(func() error {
		for _, p := range []netip.Prefix{v4, v6} {
			if ok, err := HasAddr(ea.Ifindex, p); !ok || err != nil {
				t.Errorf("%v not on the interface after AddAddr: %v", p, err)
			}
		}
		as, err := netlink.AddrList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ea.Ifindex}}, netlink.FAMILY_V6)
		for _, ad := range as {
			if ad.IP.Equal(v6.Addr().AsSlice()) && ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				t.Errorf("%v is tentative (flags %#x): DAD was not skipped", v6, ad.Flags)
			}
		}
		return err
	})
	time.Sleep(300 * time.Millisecond)
	cancel()
	dump.Wait()

	for _, p := range []netip.Prefix{v4, v6} {
		out := b.Run(t, "ip", "neigh", "show", p.Addr().String(), "dev", "e0")
		if !strings.Contains(out, macA.String()) {
			t.Errorf("b's neighbour entry for %v after the announcement: %q, want lladdr %s\n%s", p.Addr(), out, macA,
				b.Run(t, "nstat", "-az", "Icmp6InNeighborAdvertisements", "Icmp6InErrors"))
		}
	}
	out, err := exec.Command("tshark", "-n", "-r", pcap, "-T", "fields", "-e", "eth.src", "-e", "arp.isgratuitous",
		"-e", "arp.src.proto_ipv4", "-e", "icmpv6.type", "-e", "icmpv6.nd.na.flag.o", "-e", "icmpv6.nd.na.flag.s",
		"-e", "icmpv6.nd.na.target_address", "-e", "icmpv6.opt.linkaddr", "-e", "icmpv6.checksum.status").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var garp, na bool
	for _, ln := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(ln, "\t")
		if len(f) < 9 || f[0] != macA.String() {
			continue
		}
		switch {
		case f[1] == "1" && f[2] == "192.0.2.1":
			garp = true
		case f[3] == "136" && f[4] == "1" && f[5] == "0" && f[6] == "2001:db8:f::1" && f[7] == macA.String() && f[8] == "1":
			na = true // checksum status 1: good
		}
	}
	if !garp || !na {
		t.Errorf("capture: gratuitous ARP %v, unsolicited NA with O set %v; tshark:\n%s", garp, na, out)
	}

	a.Do(func() error {
		for _, p := range []netip.Prefix{v4, v6} {
			if err := DelAddr(ea.Ifindex, p); err != nil {
				t.Error(err)
			}
			if err := DelAddr(ea.Ifindex, p); err != nil { // gone already: fine
				t.Error(err)
			}
			if ok, _ := HasAddr(ea.Ifindex, p); ok {
				t.Errorf("%v still on the interface after DelAddr", p)
			}
		}
		// The node's own address stays.
		if ok, _ := HasAddr(ea.Ifindex, ea.Addr); !ok {
			t.Errorf("removing the moved address took %v too", ea.Addr)
		}
		// With a lifetime, the kernel removes the address by itself.
		if err := AddAddr(ea.Ifindex, v4, time.Second); err != nil {
			t.Error(err)
		}
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			if ok, _ := HasAddr(ea.Ifindex, v4); !ok {
				t.Logf("%v added with a 1 s lifetime gone after %v", v4, time.Since(start).Round(100*time.Millisecond))
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("%v added with a 1 s lifetime still there after 5 s", v4)
		return nil
	})
}
