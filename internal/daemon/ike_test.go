package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
	"github.com/xdpsec/xdpsec/sad/store"
)

const ikeTestConfig = `interfaces: {lan: lo, wan: lo}
default_action: discard
policies:
  - {name: mgmt, dst: 203.0.113.0/24, action: bypass}
connections:
  - name: site
    local_addr: 192.0.2.1
    remote_addr: 192.0.2.2
    auth: {psk_file: psk}
    ike_proposals: [aes128gcm16-prfsha256-x25519]
    children:
      - name: net
        local_ts: [198.18.1.0/24, 2001:db8:a::/64]
        remote_ts: [198.18.2.0/24, 2001:db8:b::/64]
        esp_proposals: [aes128gcm16]
`

// ikeTestDaemon builds a daemon's tables (no XDP, no sockets) with one
// connection, and its Installer.
func ikeTestDaemon(t *testing.T) (*Daemon, *ikePlane) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "psk"), []byte("a-test-psk-of-enough-length"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(ikeTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.buildTables(); err != nil {
		t.Fatal(err)
	}
	if d.ike == nil {
		t.Fatal("no IKE plane for a configuration with connections")
	}
	return d, d.ike
}

func childSA(spi uint32, dir sad.Direction, reqID uint32) sad.Config {
	return sad.Config{
		SPI: spi, Dir: dir, Mode: sad.Tunnel, ReqID: reqID, Name: "site/net",
		Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
		Suite: sad.AESGCM128, Key: make([]byte, 20),
	}
}

func sel(src, dst string) sad.Selector {
	return sad.Selector{Src: netip.MustParsePrefix(src), Dst: netip.MustParsePrefix(dst), SrcPorts: sad.PortRange{Hi: 0xffff}, DstPorts: sad.PortRange{Hi: 0xffff}}
}

func lookup(d *Daemon, src, dst string) *spd.Policy {
	k := packet.FlowKey{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: 6, SrcPort: 1000, DstPort: 443}
	return d.spd.Lookup(&k)
}

func TestIKETrapsFailClosed(t *testing.T) {
	d, _ := ikeTestDaemon(t)
	// The connection's selectors are PROTECT policies with no SA: the
	// worker drops their traffic until a Child SA is installed.
	for _, f := range [][2]string{{"198.18.1.5", "198.18.2.5"}, {"2001:db8:a::5", "2001:db8:b::5"}} {
		p := lookup(d, f[0], f[1])
		if p == nil || p.Action != spd.Protect || p.SA.Load() != nil {
			t.Errorf("%s -> %s: policy %+v, want PROTECT without an SA", f[0], f[1], p)
		}
	}
	if p := lookup(d, "198.18.1.5", "203.0.113.1"); p == nil || p.Action != spd.Bypass {
		t.Errorf("the file's own policy lost: %+v", p)
	}
	// The XDP mirror sends the protected prefix to user space (divert:
	// the policy also names a source, which the LPM map cannot).
	found := false
	m := d.spd.MirrorWithDefault(spd.Discard)
	for _, e := range m {
		if e.Prefix == netip.MustParsePrefix("198.18.2.0/24") {
			found = e.Action == spd.MirrorProtect || e.Action == spd.MirrorDivert
		}
	}
	if !found {
		t.Errorf("mirror does not send 198.18.2.0/24 to user space: %+v", m)
	}
}

func TestIKEInstaller(t *testing.T) {
	d, p := ikeTestDaemon(t)
	nPol := d.spd.Len()
	full := []sad.Selector{sel("198.18.1.0/24", "198.18.2.0/24"), sel("2001:db8:a::/64", "2001:db8:b::/64")}

	if err := p.InstallInbound(childSA(0x1111, sad.Inbound, 1)); err != nil {
		t.Fatal(err)
	}
	if d.inbound.Lookup(0x1111) == nil {
		t.Fatal("inbound SA not in the table")
	}
	if err := p.InstallInbound(childSA(0x1111, sad.Inbound, 1)); err == nil {
		t.Error("a second inbound SA with the same SPI accepted")
	}
	if err := p.InstallOutbound(childSA(0x2222, sad.Outbound, 1), full); err != nil {
		t.Fatal(err)
	}
	if d.spd.Len() != nPol {
		t.Errorf("the first SA added policies (%d -> %d) instead of binding the traps", nPol, d.spd.Len())
	}
	pol := lookup(d, "198.18.1.5", "198.18.2.5")
	if sa := pol.SA.Load(); sa == nil || sa.SPI != 0x2222 {
		t.Fatalf("policy not bound to the new SA: %v", sa)
	}
	if sa := lookup(d, "2001:db8:a::5", "2001:db8:b::5").SA.Load(); sa == nil || sa.SPI != 0x2222 {
		t.Fatalf("v6 policy not bound: %v", sa)
	}

	// Rekey, make-before-break: the new outbound SA takes the policy at
	// once; deleting the old one leaves it alone.
	if err := p.InstallInbound(childSA(0x3333, sad.Inbound, 1)); err != nil {
		t.Fatal(err)
	}
	if err := p.InstallOutbound(childSA(0x4444, sad.Outbound, 1), full); err != nil {
		t.Fatal(err)
	}
	if sa := pol.SA.Load(); sa == nil || sa.SPI != 0x4444 {
		t.Fatalf("rekey did not repoint the policy: %v", sa)
	}
	old := p.d.store.Lookup(store.Key{SPI: 0x2222, Dir: sad.Outbound, Origin: store.Negotiated})
	if err := p.Delete(0x2222, sad.Outbound); err != nil {
		t.Fatal(err)
	}
	if sa := pol.SA.Load(); sa == nil || sa.SPI != 0x4444 {
		t.Fatalf("deleting the old SA unhooked the new one: %v", sa)
	}
	if !old.Dead() || old.Usable() {
		t.Error("deleted SA not killed")
	}
	if err := p.Delete(0x1111, sad.Inbound); err != nil {
		t.Fatal(err)
	}
	if d.inbound.Lookup(0x1111) != nil || d.inbound.Lookup(0x3333) == nil {
		t.Error("inbound table wrong after deleting the old inbound SA")
	}
	if err := p.Delete(0x1111, sad.Inbound); err == nil {
		t.Error("deleting an unknown SA succeeded")
	}

	// The last outbound SA goes: the policy stays and drops (fail closed).
	if err := p.Delete(0x4444, sad.Outbound); err != nil {
		t.Fatal(err)
	}
	if p := lookup(d, "198.18.1.5", "198.18.2.5"); p == nil || p.Action != spd.Protect || p.SA.Load() != nil {
		t.Errorf("after the last delete: %+v, want PROTECT without an SA", p)
	}
	// Keys are wiped on the next tick, when no worker holds the SAs.
	if p.d.store.Retired() != 3 {
		t.Errorf("%d SAs retired, want 3", p.d.store.Retired())
	}
}

func TestIKEInstallerNarrowed(t *testing.T) {
	d, p := ikeTestDaemon(t)
	nPol := d.spd.Len()
	// The responder narrowed the child to one host: a new policy, first
	// in order, takes that traffic; the rest still meets the trap.
	narrow := []sad.Selector{sel("198.18.1.0/24", "198.18.2.7/32")}
	if err := p.InstallOutbound(childSA(0x5555, sad.Outbound, 7), narrow); err != nil {
		t.Fatal(err)
	}
	if d.spd.Len() != nPol+1 {
		t.Fatalf("policies %d, want %d", d.spd.Len(), nPol+1)
	}
	if sa := lookup(d, "198.18.1.5", "198.18.2.7").SA.Load(); sa == nil || sa.SPI != 0x5555 {
		t.Errorf("narrowed flow not on the SA: %v", sa)
	}
	if sa := lookup(d, "198.18.1.5", "198.18.2.8").SA.Load(); sa != nil {
		t.Errorf("flow outside the narrowed selector on SA %v", sa)
	}
	if err := p.Delete(0x5555, sad.Outbound); err != nil {
		t.Fatal(err)
	}
	if d.spd.Len() != nPol {
		t.Errorf("narrowed policy not removed: %d policies", d.spd.Len())
	}
	if pol := lookup(d, "198.18.1.5", "198.18.2.7"); pol == nil || pol.Action != spd.Protect || pol.SA.Load() != nil {
		t.Errorf("after delete the flow meets %+v, want the trap", pol)
	}
}

func TestIKECloseWipes(t *testing.T) {
	_, p := ikeTestDaemon(t)
	if err := p.InstallInbound(childSA(0x1111, sad.Inbound, 1)); err != nil {
		t.Fatal(err)
	}
	sa := p.d.store.Lookup(store.Key{SPI: 0x1111, Dir: sad.Inbound, Origin: store.Negotiated})
	p.Delete(0x1111, sad.Inbound)
	if !strings.Contains(sa.String(), "00001111") {
		t.Errorf("sa name %q", sa)
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	if p.d.store.Retired() != 0 {
		t.Error("close left SAs unwiped")
	}
}

func TestOutboundSelectors(t *testing.T) {
	_, p := ikeTestDaemon(t)
	if len(p.traps) != 2 {
		t.Fatalf("traps %d, want 2 (v4 and v6 pairs; mixed families dropped)", len(p.traps))
	}
	for _, tr := range p.traps {
		if tr.Policy.Selector.Src.Addr().Is4() != tr.Policy.Selector.Dst.Addr().Is4() {
			t.Errorf("mixed-family trap %+v", tr.Policy.Selector)
		}
	}
	if !store.SameSelector(sel("198.18.1.0/24", "198.18.2.0/24"), sad.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.18.2.0/24")}) {
		t.Error("0-65535 ports not the same as any")
	}
	if store.SameSelector(sel("198.18.1.0/24", "198.18.2.0/24"), sel("198.18.1.0/24", "198.18.3.0/24")) {
		t.Error("different selectors compared equal")
	}
}

// loopbackPair builds two daemons' tables (no XDP) whose connections point
// at each other on 127.0.0.1 and 127.0.0.2, with a child whose soft byte
// lifetime is tiny, and starts their IKE planes on free high ports.
func loopbackPair(t *testing.T) (a, b *Daemon) {
	t.Helper()
	return loopbackPairWith(t, "none", "")
}

// loopbackPairWith is loopbackPair with gwA's start_action and extra
// top-level configuration lines for both.
func loopbackPairWith(t *testing.T, startA, extra string) (a, b *Daemon) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "psk"), []byte("a-test-psk-of-enough-length"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := func(name, local, remote, lnet, rnet, start string) *Daemon {
		y := fmt.Sprintf(`interfaces: {lan: lo, wan: lo}
key_log: keys-%[1]s
%[7]s
connections:
  - name: site
    local_addr: %[2]s
    remote_addr: %[3]s
    auth: {psk_file: psk}
    ike_proposals: [aes128gcm16-prfsha256-x25519]
    start_action: %[6]s
    children:
      - name: net
        local_ts: [%[4]s]
        remote_ts: [%[5]s]
        esp_proposals: [aes256gcm16]
        lifetime: {soft: {bytes: 1000}}
`, name, local, remote, lnet, rnet, start, extra)
		cfg, err := config.Parse(filepath.Join(dir, name+".yaml"), []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := d.buildTables(); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a = gw("a", "127.0.0.1", "127.0.0.2", "198.18.1.0/24", "198.18.2.0/24", startA)
	b = gw("b", "127.0.0.2", "127.0.0.1", "198.18.2.0/24", "198.18.1.0/24", "none")
	startPlanes(t, a, b)
	return a, b
}

// startPlanes starts two daemons' IKE planes, a's then b's, on a port
// pair free on both, and closes them when the test ends.
func startPlanes(t *testing.T, a, b *Daemon) {
	t.Helper()
	// Both ends use the same port pair on their own address, as 500 and
	// 4500 would be; find a pair free on both.
	for try := 0; ; try++ {
		port := uint16(20000 + mrand.IntN(20000))
		for _, d := range []*Daemon{a, b} {
			d.ike.ikePort, d.ike.nattPort = port, port+1
		}
		errA := a.ike.start()
		if errA == nil {
			if errB := b.ike.start(); errB == nil {
				break
			} else {
				a.ike.close()
				a.ike.engine, a.ike.conn, a.ike.keyLogs = nil, nil, nil
				errA = errB
			}
		}
		if try == 20 {
			t.Fatalf("no free port pair: %v", errA)
		}
	}
	t.Cleanup(func() {
		a.ike.close()
		b.ike.close()
	})
}

// TestIKEPlaneLoopback negotiates a tunnel between two IKE planes over the
// loopback interface and checks what they install: inbound SAs in the
// tables, the traps bound to the outbound SAs, the key log written; then a
// data-plane byte limit makes tick report a soft expiry, the engine rekeys
// make-before-break and the policy moves to the new SA; terminate leaves
// the traps without SAs.
func TestIKEPlaneLoopback(t *testing.T) {
	a, b := loopbackPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if res, err := a.ike.initiate(ctx, "site"); err != nil || !strings.Contains(res, "established") {
		t.Fatalf("initiate: %q %v", res, err)
	}
	if _, err := a.ike.initiate(ctx, "nosuch"); err == nil {
		t.Error("initiate of an unknown connection succeeded")
	}
	polA := lookup(a, "198.18.1.5", "198.18.2.5")
	outA := polA.SA.Load()
	if outA == nil {
		t.Fatal("gwA's policy has no SA after IKE_AUTH")
	}
	// The responder installs its outbound half on the same exchange.
	deadline := time.Now().Add(2 * time.Second)
	for lookup(b, "198.18.2.5", "198.18.1.5").SA.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("gwB's policy has no SA")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if b.inbound.Lookup(outA.SPI) == nil {
		t.Errorf("gwB has no inbound SA %08x for gwA's outbound", outA.SPI)
	}
	if outA.Crypto.Suite != sad.AESGCM256 {
		t.Errorf("negotiated suite %v, want aes256gcm16", outA.Crypto.Suite)
	}
	list := a.ike.list()
	if len(list) != 1 || list[0].State != "ESTABLISHED" || len(list[0].Children) != 1 ||
		list[0].Children[0].SPIOut != outA.SPI || list[0].Children[0].State != "INSTALLED" || list[0].Children[0].Installed.IsZero() {
		t.Errorf("list: %+v", list)
	}
	if snap := a.Snapshot(); len(snap.IKE) != 1 || len(snap.SAs) != 2 {
		t.Errorf("snapshot: %d IKE SAs, %d SAs; want 1 and 2", len(snap.IKE), len(snap.SAs))
	} else if _, ok := snap.IKEFragments["reassembled"]; !ok {
		t.Errorf("snapshot lacks the IKE fragment counters: %v", snap.IKEFragments)
	}
	rows, err := os.ReadFile(filepath.Join(filepath.Dir(a.cfg.File), "keys-a", "esp_sa"))
	if err != nil || !strings.Contains(string(rows), fmt.Sprintf("0x%08x", outA.SPI)) {
		t.Errorf("key log lacks SA %08x: %v\n%s", outA.SPI, err, rows)
	}

	// The data plane counts past the soft byte limit: the next tick tells
	// the engine, which rekeys; the policy moves to the new SA and the old
	// one is deleted.
	outA.Account(1, 2000)
	if !outA.NeedsRekey() {
		t.Fatal("soft byte limit not flagged")
	}
	a.ike.tick()
	deadline = time.Now().Add(5 * time.Second)
	for {
		if sa := polA.SA.Load(); sa != nil && sa != outA && outA.Dead() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rekey after a soft expiry: policy on %v, old SA dead %v", polA.SA.Load(), outA.Dead())
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.ike.tick() // wipes the retired SAs (no workers in this test)

	if res, err := a.ike.terminate(ctx, "site"); err != nil || !strings.Contains(res, "terminated") {
		t.Fatalf("terminate: %q %v", res, err)
	}
	if sa := polA.SA.Load(); sa != nil {
		t.Errorf("after terminate the policy still has SA %v", sa)
	}
	if pol := lookup(a, "198.18.1.5", "198.18.2.5"); pol != polA || pol.Action != spd.Protect {
		t.Errorf("after terminate the trap is gone: %+v", pol)
	}
	if n := a.inbound.Len(); n != 0 {
		t.Errorf("after terminate %d inbound SAs remain", n)
	}
}

// TestIKESeqNearLimitRekeys: an outbound SA whose sequence numbers near
// their limit (2^32-1 without ESN, RFC 4303 §3.3.3) is rekeyed before the
// data plane has to refuse to send on it. A stand-in worker takes one
// sequence number per packet from whatever SA the policy holds, starting
// just short of sad's soft mark; tick (the daemon's lifetime loop, run
// faster here) must carry the flag to the engine, and the policy must move
// to a new SA while the old one still had numbers left. No time, byte or
// packet lifetime is involved: the worker accounts nothing.
func TestIKESeqNearLimitRekeys(t *testing.T) {
	a, _ := loopbackPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.ike.initiate(ctx, "site"); err != nil {
		t.Fatal(err)
	}
	pol := lookup(a, "198.18.1.5", "198.18.2.5")
	old := pol.SA.Load()
	if old == nil || old.ESN {
		t.Fatalf("want a non-ESN outbound SA, have %v", old)
	}
	const limit = 1<<32 - 1
	start := uint64(limit - limit/16 - 50)
	old.SetSeq(start)
	a.ike.tick()
	if pol.SA.Load() != old || old.NeedsRekey() {
		t.Fatal("rekeyed before the sequence numbers came near their limit")
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	var refused, sent atomic.Int64
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if sa := pol.SA.Load(); sa != nil && sa.Usable() {
				if _, got := sa.ReserveSeq(1); got == 0 {
					refused.Add(1)
				} else {
					sent.Add(1)
				}
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for pol.SA.Load() == old {
		if time.Now().After(deadline) {
			close(stop)
			<-done
			t.Fatalf("no rekey: the old SA is at sequence number %d (soft mark crossed: %v)", old.Seq(), old.NeedsRekey())
		}
		a.ike.tick()
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	<-done
	if old.Seq() <= start+50 {
		t.Errorf("the rekey came before the soft mark: old SA at %d, mark at %d", old.Seq(), start+50)
	}
	if old.SeqExhausted() || refused.Load() > 0 || old.Seq() >= limit {
		t.Errorf("the old SA ran out (seq %d, exhausted %v) and %d packets were refused", old.Seq(), old.SeqExhausted(), refused.Load())
	}
	if n := pol.SA.Load(); n == nil || n.Seq() >= limit/2 {
		t.Errorf("the new SA does not start its sequence numbers afresh: %v", n)
	}
	t.Logf("old SA rekeyed at sequence number %d (limit %d), %d packets sent across the switch", old.Seq(), uint64(limit), sent.Load())
}

// TestIKERekeyAction: the control socket's rekey action rekeys a child's
// Child SA ("site/net": the policy moves to a new SA) or the IKE SA
// ("site": new SPIs, the Child SA stays), and refuses unknown names.
func TestIKERekeyAction(t *testing.T) {
	a, _ := loopbackPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.ike.initiate(ctx, "site"); err != nil {
		t.Fatal(err)
	}
	pol := lookup(a, "198.18.1.5", "198.18.2.5")
	old := pol.SA.Load()
	if res, err := a.ike.rekey(ctx, "site/net"); err != nil || !strings.Contains(res, "Child SA site/net rekeyed") {
		t.Fatalf("rekey site/net: %q %v", res, err)
	}
	if n := pol.SA.Load(); n == nil || n == old {
		t.Errorf("after a Child SA rekey the policy still uses %v", n)
	}
	// The old Child SA goes with its Delete exchange (after the rekey's
	// short delete delay).
	var before []control.IKESA
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if before = a.ike.list(); len(before) == 1 && len(before[0].Children) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rekeyed Child SA stays: %+v", before)
		}
	}
	if res, err := a.ike.rekey(ctx, "site"); err != nil || !strings.Contains(res, "IKE SA of site rekeyed") {
		t.Fatalf("rekey site: %q %v", res, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := a.ike.list()
		if len(after) == 1 && after[0].SPIi != before[0].SPIi && len(after[0].Children) == 1 &&
			after[0].Children[0].SPIIn == before[0].Children[0].SPIIn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an IKE rekey: %+v (before %+v)", after, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"nosuch", "site/nochild", "nosuch/net"} {
		if res, err := a.ike.rekey(ctx, name); err == nil {
			t.Errorf("rekey %q succeeded: %q", name, res)
		}
	}
}

// TestIKERetireWaitsForWorkers: a deleted SA's keys are wiped only once
// every worker has passed a poll since the delete (its epoch), however
// many ticks go by; a worker parked in poll(2) holds nothing up.
func TestIKERetireWaitsForWorkers(t *testing.T) {
	d, p := ikeTestDaemon(t)
	busy, parked := d.store.Grace().Register(), d.store.Grace().Register()
	busy.Quiesce()
	cfg := childSA(0x1111, sad.Inbound, 1)
	cfg.Key = []byte("0123456789abcdefSALT")
	if err := p.InstallInbound(cfg); err != nil {
		t.Fatal(err)
	}
	sa := d.inbound.Lookup(0x1111)
	if err := p.Delete(0x1111, sad.Inbound); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		p.tick()
		if sa.Crypto.Salt == [4]byte{} {
			t.Fatal("keys wiped while a worker's poll may still hold the SA")
		}
	}
	busy.Quiesce()
	p.tick()
	if sa.Crypto.Salt != [4]byte{} || d.store.Retired() != 0 {
		t.Fatal("keys not wiped after every worker passed")
	}
	parked.Offline()
}
