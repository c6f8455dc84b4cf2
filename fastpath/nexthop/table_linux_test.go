package nexthop

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// lab is a router namespace R whose interface rA sits on a bridged LAN
// (namespace L) with a gateway G (198.18.0.2, 2001:db8:1::2) and a host H
// (198.18.0.3, 2001:db8:1::3). R routes everything else via G.
type lab struct {
	t                *testing.T
	r, g, h, l       string // namespace names
	ns               netns.NsHandle
	ifindex          int
	src, gwMAC, hMAC [6]byte
}

var (
	gw4 = netip.MustParseAddr("198.18.0.2")
	h4  = netip.MustParseAddr("198.18.0.3")
	h6  = netip.MustParseAddr("2001:db8:1::3")
)

func newLab(t *testing.T) *lab {
	t.Helper()
	testlab.RequireRoot(t, "network namespaces", "ip")
	p := "xnh" + testlab.Tag()
	lb := &lab{t: t, r: p + "r", g: p + "g", h: p + "h", l: p + "l",
		gwMAC: [6]byte{0x02, 0, 0, 0, 0, 0x02}, hMAC: [6]byte{0x02, 0, 0, 0, 0, 0x03}}
	nsR, nsG := testlab.NewNetns(t, lb.r, testlab.LoUp), testlab.NewNetns(t, lb.g, testlab.LoUp)
	nsH, nsL := testlab.NewNetns(t, lb.h, testlab.LoUp), testlab.NewNetns(t, lb.l, testlab.LoUp)
	nsL.Bridge(t, "br0")
	for i, x := range []struct {
		ns     *testlab.Netns
		dev    string
		mac    net.HardwareAddr
		v4, v6 string
	}{
		{nsR, "rA", nil, "198.18.0.1/24", "2001:db8:1::1/64"},
		{nsG, "g0", lb.gwMAC[:], "198.18.0.2/24", "2001:db8:1::2/64"},
		{nsH, "h0", lb.hMAC[:], "198.18.0.3/24", "2001:db8:1::3/64"},
	} {
		testlab.Veth(t, &testlab.End{NS: x.ns, Name: x.dev, MAC: x.mac, Addr: netip.MustParsePrefix(x.v4)},
			&testlab.End{NS: nsL, Name: fmt.Sprintf("p%d", i), Master: "br0"}, 0)
		x.ns.IP(t, "addr", "add", x.v6, "dev", x.dev, "nodad")
	}
	// Link-local addresses without DAD, for a route via a link-local
	// gateway (the usual IPv6 next hop).
	lb.ip("-n", lb.r, "addr", "add", "fe80::1/64", "dev", "rA", "nodad")
	lb.ip("-n", lb.g, "addr", "add", "fe80::2/64", "dev", "g0", "nodad")
	lb.ip("-n", lb.r, "-6", "route", "add", "2001:db8:9::/48", "via", "fe80::2", "dev", "rA")
	lb.ip("-n", lb.r, "route", "add", "default", "via", "198.18.0.2")
	lb.ip("-n", lb.r, "-6", "route", "add", "default", "via", "2001:db8:1::2")

	ns, err := netns.GetFromName(lb.r)
	if err != nil {
		t.Fatal(err)
	}
	lb.ns = ns
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("rA")
	if err != nil {
		t.Fatal(err)
	}
	lb.ifindex = link.Attrs().Index
	lb.src = [6]byte(link.Attrs().HardwareAddr)
	return lb
}

func (lb *lab) ip(args ...string) {
	lb.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		lb.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (lb *lab) sysctl(ns, kv string) {
	lb.t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", kv).CombinedOutput(); err != nil {
		lb.t.Fatalf("sysctl %s in %s: %v: %s", kv, ns, err, out)
	}
}

func (lb *lab) table(opts Options) *Table {
	lb.t.Helper()
	opts.NetNS = &lb.ns
	tb, err := New(lb.ifindex, opts)
	if err != nil {
		lb.t.Fatal(err)
	}
	lb.t.Cleanup(func() { tb.Close() })
	return tb
}

// settle bounds how long a resolution or a netlink event may take to
// reach the cache: milliseconds normally, but ARP/ND in namespaces on a
// loaded 2-core CI box has taken over a second.
const settle = 3 * time.Second

// eventually polls Lookup until it answers want, as a worker would.
func eventually(t *testing.T, tb *Table, dst netip.Addr, want fastpath.Hop, within time.Duration) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("Lookup(%v) answered after %v", dst, time.Since(start)) }()
	deadline := time.Now().Add(within)
	var got fastpath.Hop
	var ok bool
	for time.Now().Before(deadline) {
		if got, ok = tb.Lookup(dst); ok && got == want {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("Lookup(%v) = %v, %v after %v; want %v (stats %+v)", dst, got, ok, within, want, tb.Stats())
}

func TestTableResolves(t *testing.T) {
	lb := newLab(t)
	tb := lb.table(Options{})
	tests := []struct {
		name string
		dst  netip.Addr
		mac  [6]byte
	}{
		{"v4 on-link", h4, lb.hMAC},
		{"v4 gateway itself", gw4, lb.gwMAC},
		{"v4 off-link", netip.MustParseAddr("198.19.5.5"), lb.gwMAC},
		{"v6 on-link", h6, lb.hMAC},
		{"v6 off-link", netip.MustParseAddr("2001:db8:ffff::5"), lb.gwMAC},
		{"v6 via link-local gateway", netip.MustParseAddr("2001:db8:9::9"), lb.gwMAC},
		{"v6 link-local on-link", netip.MustParseAddr("fe80::2"), lb.gwMAC},
		{"v4 multicast", netip.MustParseAddr("224.0.0.251"), [6]byte{0x01, 0x00, 0x5e, 0, 0, 0xfb}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(t, tb, tt.dst, fastpath.Hop{Src: lb.src, Dst: tt.mac}, settle)
		})
	}
	st := tb.Stats()
	if st.Requests == 0 || st.Resolves == 0 || st.Events == 0 || st.Hits < uint64(len(tests)) || st.Entries < uint64(len(tests)) {
		t.Errorf("Stats = %+v: want requests, resolves, events, hits and entries", st)
	}
	a := netip.MustParseAddr("198.19.5.5")
	if n := testing.AllocsPerRun(1000, func() { tb.Lookup(a) }); n != 0 {
		t.Errorf("Lookup hit: %v allocations", n)
	}
}

func TestTableNotThisInterface(t *testing.T) {
	lb := newLab(t)
	// A second interface in R (a veth pair with both ends there).
	lb.ip("-n", lb.r, "link", "add", "x0", "type", "veth", "peer", "x1")
	lb.ip("-n", lb.r, "link", "set", "x0", "up")
	lb.ip("-n", lb.r, "link", "set", "x1", "up")
	lb.ip("-n", lb.r, "route", "add", "198.19.200.0/24", "dev", "x0")
	lb.ip("-n", lb.r, "route", "add", "blackhole", "198.19.201.0/24")
	// Misses remembered far longer than the test takes.
	tb := lb.table(Options{NegativeTTL: time.Minute})
	dsts := []string{"198.19.200.1", "198.19.201.1", "198.18.0.1", "127.0.0.1"}
	lookups := func() {
		t.Helper()
		for _, s := range dsts {
			dst := netip.MustParseAddr(s)
			for range 50 {
				if h, ok := tb.Lookup(dst); ok {
					t.Fatalf("Lookup(%v) = %v; it does not leave through rA", dst, h)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	lookups()
	// Each is remembered as a miss once the table has asked the kernel
	// (a Lookup before that asks again: on a loaded machine the first
	// answer can take longer than the 2 ms between Lookups) ...
	for end := time.Now().Add(settle); tb.Stats().Entries < uint64(len(dsts)); {
		if time.Now().After(end) {
			t.Fatalf("Stats = %+v: the misses were not remembered", tb.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	before := tb.Stats()
	if before.Requests < uint64(len(dsts)) || before.Hits != 0 {
		t.Fatalf("Stats = %+v: want a request for each and no hit", before)
	}
	// ... and from then on answered without asking.
	lookups()
	if st := tb.Stats(); st.Requests != before.Requests || st.Misses != before.Misses+200 || st.Hits != 0 {
		t.Errorf("Stats = %+v after %+v: want 200 more misses and no more requests", st, before)
	}
}

func TestTableNeighbourMACChange(t *testing.T) {
	lb := newLab(t)
	tb := lb.table(Options{})
	eventually(t, tb, h4, fastpath.Hop{Src: lb.src, Dst: lb.hMAC}, settle)
	eventually(t, tb, h6, fastpath.Hop{Src: lb.src, Dst: lb.hMAC}, settle)
	// H announces its new address (gratuitous ARP, unsolicited NA with the
	// override flag); R's kernel updates its entries and tells the table.
	lb.sysctl(lb.h, "net.ipv4.conf.h0.arp_notify=1")
	lb.sysctl(lb.h, "net.ipv6.conf.h0.ndisc_notify=1")
	lb.ip("-n", lb.h, "link", "set", "h0", "address", "02:00:00:00:00:33")
	newMAC := [6]byte{0x02, 0, 0, 0, 0, 0x33}
	eventually(t, tb, h4, fastpath.Hop{Src: lb.src, Dst: newMAC}, settle)
	eventually(t, tb, h6, fastpath.Hop{Src: lb.src, Dst: newMAC}, settle)

	// Our own MAC changes too: every answer's source follows.
	lb.ip("-n", lb.r, "link", "set", "rA", "address", "02:00:00:00:00:01")
	src := [6]byte{0x02, 0, 0, 0, 0, 0x01}
	eventually(t, tb, h4, fastpath.Hop{Src: src, Dst: newMAC}, settle)
}

func TestTableRouteChange(t *testing.T) {
	lb := newLab(t)
	tb := lb.table(Options{})
	d4 := netip.MustParseAddr("198.19.7.7")
	d6 := netip.MustParseAddr("2001:db8:7::7")
	viaG := fastpath.Hop{Src: lb.src, Dst: lb.gwMAC}
	viaH := fastpath.Hop{Src: lb.src, Dst: lb.hMAC}
	eventually(t, tb, d4, viaG, settle)
	eventually(t, tb, d6, viaG, settle)
	lb.ip("-n", lb.r, "route", "add", "198.19.7.0/24", "via", "198.18.0.3")
	lb.ip("-n", lb.r, "-6", "route", "add", "2001:db8:7::/48", "via", "2001:db8:1::3")
	eventually(t, tb, d4, viaH, settle)
	eventually(t, tb, d6, viaH, settle)
	lb.ip("-n", lb.r, "route", "del", "198.19.7.0/24")
	eventually(t, tb, d4, viaG, settle)
	// Take the default route away: the answer goes with it.
	lb.ip("-n", lb.r, "-6", "route", "del", "2001:db8:7::/48")
	lb.ip("-n", lb.r, "-6", "route", "del", "default")
	deadline := time.Now().Add(time.Second)
	for {
		if _, ok := tb.Lookup(d6); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lookup(%v) still answers after its route was deleted", d6)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTableCacheBound(t *testing.T) {
	lb := newLab(t)
	tb := lb.table(Options{MaxEntries: 256, QueueLen: 64})
	r := rand.New(rand.NewPCG(9, 9))
	for i := range 100_000 {
		var dst netip.Addr
		if i%2 == 0 {
			dst = netip.AddrFrom4([4]byte{198, 19, byte(r.Uint32()), byte(r.Uint32())})
		} else {
			b := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff}
			for j := 5; j < 16; j++ {
				b[j] = byte(r.Uint32())
			}
			dst = netip.AddrFrom16(b)
		}
		tb.Lookup(dst)
		if i%1000 == 0 {
			if n := tb.Stats().Entries; n > 256 {
				t.Fatalf("after %d destinations: %d entries, bound 256", i, n)
			}
			runtime.Gosched()
		}
	}
	time.Sleep(100 * time.Millisecond)
	st := tb.Stats()
	if st.Entries > 256 || st.Entries == 0 || st.QueueDrops == 0 {
		t.Errorf("Stats = %+v: want 1..256 entries and queue drops", st)
	}
}

func TestTableCloseLeavesNothing(t *testing.T) {
	lb := newLab(t)
	time.Sleep(10 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 3 {
		opts := Options{NetNS: &lb.ns}
		tb, err := New(lb.ifindex, opts)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, tb, gw4, fastpath.Hop{Src: lb.src, Dst: lb.gwMAC}, settle)
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tb.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	// A failed New must not leave anything either.
	if _, err := New(1<<20, Options{NetNS: &lb.ns}); err == nil {
		t.Error("New with a missing interface succeeded")
	}
	if _, err := New(0, Options{}); err == nil {
		t.Error("New with interface index 0 succeeded")
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(),
				buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTableCurrentNamespace calls New with no handle from a goroutine
// locked into the router's namespace.
func TestTableCurrentNamespace(t *testing.T) {
	lb := newLab(t)
	errc := make(chan error, 1)
	var tb *Table
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := netns.Set(lb.ns); err != nil {
			errc <- err
			return
		}
		var err error
		tb, err = New(lb.ifindex, Options{})
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	eventually(t, tb, h6, fastpath.Hop{Src: lb.src, Dst: lb.hMAC}, settle)
}

// TestTableConfirmsStaleNeighbours: the fast path's traffic bypasses the
// kernel, so a STALE neighbour in use would stay STALE; the table has the
// kernel probe it.
func TestTableConfirmsStaleNeighbours(t *testing.T) {
	lb := newLab(t)
	lb.sysctl(lb.r, "net.ipv4.neigh.rA.delay_first_probe_time=0")
	tb := lb.table(Options{ConfirmInterval: 50 * time.Millisecond})
	eventually(t, tb, h4, fastpath.Hop{Src: lb.src, Dst: lb.hMAC}, settle)
	lb.ip("-n", lb.r, "neigh", "change", "198.18.0.3", "dev", "rA", "lladdr", "02:00:00:00:00:03", "nud", "stale")
	state := func() string {
		out, err := exec.Command("ip", "-n", lb.r, "neigh", "show", "198.18.0.3", "dev", "rA").CombinedOutput()
		if err != nil {
			t.Fatalf("ip neigh show: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if s := state(); !strings.HasSuffix(s, "STALE") {
		t.Fatalf("neighbour is %q, want STALE", s)
	}
	deadline := time.Now().Add(time.Second)
	for strings.HasSuffix(state(), "STALE") {
		if time.Now().After(deadline) {
			t.Fatalf("neighbour still %q after 1s of use", state())
		}
		if _, ok := tb.Lookup(h4); !ok {
			t.Fatal("a STALE neighbour's answer was dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("neighbour now %q", state())
}
