package daemon

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
	"github.com/xdpsec/xdpsec/sad/store"
)

// TestIKETrapPolicyFlags: the policies of a start_action trap connection
// raise acquires and name their child; those of other connections only
// drop.
func TestIKETrapPolicyFlags(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "psk"), []byte("a-test-psk-of-enough-length"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := ikeTestConfig + `  - name: other
    local_addr: 192.0.2.1
    remote_addr: 192.0.2.3
    auth: {psk_file: psk}
    ike_proposals: [aes128gcm16-prfsha256-x25519]
    start_action: trap
    children:
      - name: lab
        local_ts: [198.18.1.0/24]
        remote_ts: [198.18.3.0/24]
        esp_proposals: [aes128gcm16]
`
	cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.buildTables(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dst  string
		trap bool
		ref  childRef
	}{
		{"198.18.2.5", false, childRef{"site", "net"}},
		{"198.18.3.5", true, childRef{"other", "lab"}},
	} {
		pol := lookup(d, "198.18.1.5", c.dst)
		if pol == nil || pol.Action != spd.Protect || pol.SA.Load() != nil {
			t.Fatalf("%s: policy %+v", c.dst, pol)
		}
		if pol.Acquire.Load() != c.trap {
			t.Errorf("%s: trap %v, want %v", c.dst, pol.Acquire.Load(), c.trap)
		}
		if ref, ok := d.ike.acquireRef(pol); !ok || ref != c.ref {
			t.Errorf("%s: acquire asks for %+v (%v), want %+v", c.dst, ref, ok, c.ref)
		}
	}
	// dpd_action trap on site with the selectors the peer narrowed: the
	// configured policy, which covers them and comes first in the SPD,
	// starts to acquire; nothing is added behind it to be shadowed.
	n := len(d.spd.Policies())
	if err := d.ike.InstallTrap(7, []sad.Selector{sel("198.18.1.0/25", "198.18.2.0/25")}); err != nil {
		t.Fatal(err)
	}
	pol := lookup(d, "198.18.1.5", "198.18.2.5")
	if !pol.Acquire.Load() {
		t.Errorf("dpd_action trap on narrowed selectors: the policy that catches their traffic (%s) does not acquire", pol.Name)
	}
	if ref, ok := d.ike.acquireRef(pol); !ok || ref != (childRef{"site", "net"}) {
		t.Errorf("narrowed trap asks for %+v (%v)", ref, ok)
	}
	if m := len(d.spd.Policies()); m != n {
		t.Errorf("%d policies after the trap, want %d (no shadowed copy)", m, n)
	}
	// A selector no configured trap covers gets a policy of its own.
	if err := d.ike.InstallTrap(8, []sad.Selector{sel("198.18.1.0/24", "198.18.9.0/24")}); err != nil {
		t.Fatal(err)
	}
	if pol := lookup(d, "198.18.1.5", "198.18.9.5"); pol == nil || pol.Action != spd.Protect || pol.SA.Load() != nil {
		t.Errorf("uncovered trap selector: policy %+v", pol)
	}
}

func TestCovers(t *testing.T) {
	any4 := sad.Selector{Src: netip.MustParsePrefix("0.0.0.0/0"), Dst: netip.MustParsePrefix("0.0.0.0/0")}
	for _, c := range []struct {
		outer, sel sad.Selector
		want       bool
	}{
		{sel("198.18.1.0/24", "198.18.2.0/24"), sel("198.18.1.0/24", "198.18.2.0/24"), true},
		{sel("198.18.1.0/24", "198.18.2.0/24"), sel("198.18.1.0/25", "198.18.2.128/25"), true},
		{sel("198.18.1.0/24", "198.18.2.0/24"), sel("198.18.1.0/23", "198.18.2.0/24"), false},
		{sel("198.18.1.0/24", "198.18.2.0/24"), sel("198.18.1.0/24", "198.18.3.0/24"), false},
		{sel("198.18.1.0/24", "198.18.2.0/24"), sel("2001:db8:a::/64", "2001:db8:b::/64"), false},
		{any4, sel("198.18.1.0/24", "198.18.3.0/24"), true},
		{sad.Selector{}, sel("2001:db8:a::/64", "2001:db8:b::/64"), true},
		{sad.Selector{Proto: 6}, sad.Selector{Proto: 17}, false},
		{sad.Selector{DstPorts: sad.PortRange{Lo: 1000, Hi: 2000}}, sad.Selector{DstPorts: sad.PortRange{Lo: 1500, Hi: 1500}}, true},
		{sad.Selector{DstPorts: sad.PortRange{Lo: 1000, Hi: 2000}}, sad.Selector{}, false},
	} {
		if got := store.Covers(c.outer, c.sel); got != c.want {
			t.Errorf("covers(%+v, %+v) = %v, want %v", c.outer, c.sel, got, c.want)
		}
	}
}

// udpFrame is an Ethernet + IPv4 + UDP frame from src to dst.
func udpFrame(src, dst string) []byte {
	b := make([]byte, packet.EthLen+20+8+32)
	binary.BigEndian.PutUint16(b[12:], packet.EtherIPv4)
	ip := b[packet.EthLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = 64, packet.ProtoUDP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], packet.IPv4HeaderChecksum(ip[:20]))
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], 9)
	binary.BigEndian.PutUint16(ip[24:], 8+32)
	return b
}

// TestIKEAcquireLoopback: gwA's connection is a trap. A worker on gwA's
// tables meets traffic for it: the packets are dropped (none leave), one
// acquire goes up, the IKE plane initiates, and once the Child SA is in
// the policy the traffic is sealed. After terminate the trap stays and the
// next packets bring the tunnel back.
func TestIKEAcquireLoopback(t *testing.T) {
	a, _ := loopbackPairWith(t, "trap", "acquire_interval: 50ms")
	if n := len(a.ike.engine.List()); n != 0 {
		t.Fatalf("a trap connection started by itself: %d IKE SAs", n)
	}
	pool := fastpath.NewMemPool(512)
	lan, wan := pool.Port(256), pool.Port(256)
	hop := fastpath.StaticHop{Src: [6]byte{2, 0, 0, 0, 0, 1}, Dst: [6]byte{2, 0, 0, 0, 0, 2}}
	w := fastpath.NewWorker(0, fastpath.Config{LAN: lan, WAN: wan, Inbound: a.inbound, SPD: a.spd,
		LANHop: hop, WANHop: hop, Acquire: a.ike.acq})
	f := udpFrame("198.18.1.5", "198.18.2.5")
	pol := lookup(a, "198.18.1.5", "198.18.2.5")
	if pol == nil || !pol.Acquire.Load() {
		t.Fatalf("trap policy %+v", pol)
	}
	// send offers a batch and reports how many frames left sealed; any
	// that left otherwise fails the test.
	send := func() int {
		for range 16 {
			lan.Inject(f)
		}
		w.Poll()
		n := 0
		wan.Drain(func(b []byte) {
			ip := b[packet.EthLen:]
			if ip[9] != packet.ProtoESP {
				t.Fatalf("a frame left unsealed: proto %d", ip[9])
			}
			n++
		})
		return n
	}
	up := func(what string) time.Duration {
		start := time.Now()
		deadline := start.Add(5 * time.Second)
		for send() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no tunnel within 5 s; acquires %v", what, a.ike.acquireCounters())
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	d1 := up("first packet")
	if drops := w.Stats().Drops[sad.ErrNoSA]; drops == 0 {
		t.Error("no packet was dropped for want of an SA before the tunnel")
	}
	c := a.ike.acquireCounters()
	if c["initiated"] != 1 || c["raised"] == 0 || c["failed"] != 0 || c["unknown_policy"] != 0 {
		t.Errorf("acquire counters %v, want one initiation", c)
	}
	if n := len(a.ike.engine.List()); n != 1 {
		t.Errorf("%d IKE SAs after the acquires, want 1", n)
	}
	t.Logf("first packet to tunnel up: %v", d1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := a.ike.terminate(ctx, "site"); err != nil || !strings.Contains(res, "terminated") {
		t.Fatalf("terminate: %q %v", res, err)
	}
	if pol.SA.Load() != nil || lookup(a, "198.18.1.5", "198.18.2.5") != pol {
		t.Fatal("the trap did not stay after terminate")
	}
	d2 := up("after terminate")
	if c := a.ike.acquireCounters(); c["initiated"] != 2 {
		t.Errorf("acquire counters %v, want a second initiation", c)
	}
	t.Logf("after terminate, packet to tunnel up: %v", d2)
}
