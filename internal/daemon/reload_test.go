package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// reloadConn is one connection of reloadGW: its name, the third octet
// of its two /24s (n on gwA's side, n+1 on gwB's), gwA's ESP proposals
// and start action.
type reloadConn struct {
	name  string
	n     int
	esp   string
	start string
}

// reloadYAML is a gateway's file with conns; a is gwA (127.0.0.1) or
// gwB (127.0.0.2, which accepts both ESP proposals the test uses).
func reloadYAML(a bool, extra string, conns ...reloadConn) string {
	local, remote, lid, rid := "127.0.0.1", "127.0.0.2", "a", "b"
	if !a {
		local, remote, lid, rid = remote, local, rid, lid
	}
	var b strings.Builder
	fmt.Fprintf(&b, "interfaces: {lan: lo, wan: lo}\n%sconnections:\n", extra)
	for _, c := range conns {
		ln, rn, esp, start := c.n, c.n+1, c.esp, c.start
		if !a {
			ln, rn, esp, start = rn, ln, "aes128gcm16, aes256gcm16", "none"
		}
		fmt.Fprintf(&b, `  - name: %[1]s
    local_addr: %[2]s
    remote_addr: %[3]s
    local_id: %[4]s-%[1]s.lab
    remote_id: %[5]s-%[1]s.lab
    auth: {psk_file: psk}
    ike_proposals: [aes128gcm16-prfsha256-x25519]
    start_action: %[9]s
    children:
      - name: net
        local_ts: [198.18.%[6]d.0/24]
        remote_ts: [198.18.%[7]d.0/24]
        esp_proposals: [%[8]s]
`, c.name, local, remote, lid, rid, ln, rn, esp, start)
	}
	return b.String()
}

// reloadPair starts two daemons' IKE planes (no data plane) over the
// loopback with the files written to disk, as Reload reads them.
func reloadPair(t *testing.T, conns ...reloadConn) (a, b *Daemon) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "psk"), []byte("a-test-psk-of-enough-length"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := func(isA bool) *Daemon {
		name := "b.yaml"
		if isA {
			name = "a.yaml"
		}
		return reloadDaemon(t, filepath.Join(dir, name), reloadYAML(isA, "", conns...))
	}
	// gwB first: gwA's start_action start then meets a listening peer.
	b, a = gw(false), gw(true)
	startPlanes(t, b, a)
	return a, b
}

// ikeByName is the daemon's established IKE SAs by connection.
func ikeByName(d *Daemon) map[string]control.IKESA {
	m := map[string]control.IKESA{}
	for _, sa := range d.ike.list() {
		if sa.State == "ESTABLISHED" && len(sa.Children) > 0 && sa.Children[0].State == "INSTALLED" {
			m[sa.Connection] = sa
		}
	}
	return m
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestReloadApply: a reload that adds a connection, removes one, changes
// one's ESP proposal and leaves one alone applies exactly that: the
// untouched tunnel keeps its IKE SA, Child SAs, policy and SA objects;
// the removed one is deleted on the peer too and leaves no SA or policy;
// the added one comes up (start_action start); the changed one rekeys to
// the new proposal. A broken file and a restart-only change then change
// nothing and say file:line: field.
func TestReloadApply(t *testing.T) {
	a, b := reloadPair(t,
		reloadConn{"keep", 1, "aes128gcm16", "start"},
		reloadConn{"gone", 3, "aes128gcm16", "start"},
		reloadConn{"prop", 5, "aes128gcm16", "start"})
	waitFor(t, "three tunnels", func() bool { return len(ikeByName(a)) == 3 && len(ikeByName(b)) == 3 })
	before := ikeByName(a)["keep"]
	keepPol := lookup(a, "198.18.1.5", "198.18.2.5")
	keepSA := keepPol.SA.Load()
	gonePol := lookup(a, "198.18.3.5", "198.18.4.5")
	goneSA := gonePol.SA.Load()
	if keepSA == nil || goneSA == nil {
		t.Fatal("policies without SAs")
	}

	write := func(s string) { t.Helper(); writeConfig(t, a.cfg.File, s) }
	write(reloadYAML(true, "log_level: debug\n",
		reloadConn{"keep", 1, "aes128gcm16", "start"},
		reloadConn{"prop", 5, "aes256gcm16", "start"},
		reloadConn{"added", 7, "aes128gcm16", "start"}))
	// gwB learns the added connection by a reload too.
	if err := os.WriteFile(b.cfg.File, []byte(reloadYAML(false, "",
		reloadConn{"keep", 1, "", ""}, reloadConn{"gone", 3, "", ""}, reloadConn{"prop", 5, "", ""}, reloadConn{"added", 7, "", ""})), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Reload(context.Background(), ""); err != nil || !slices.Equal(res.Added, []string{"added"}) {
		t.Fatalf("gwB reload: %v %+v", err, res)
	}
	var level slog.LevelVar
	a.SetLevelVar(&level)
	res, err := a.Reload(context.Background(), a.cfg.File)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	t.Logf("reload: %s in %v", res.Reload, res.Took)
	if !slices.Equal(res.Added, []string{"added"}) || !slices.Equal(res.Removed, []string{"gone"}) ||
		!slices.Equal(res.Changed, []string{"prop"}) || !slices.Equal(res.Unchanged, []string{"keep"}) || len(res.Restarted) != 0 {
		t.Errorf("reload says %s", res.Reload)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reloading log_level: debug", level.Level())
	}
	// Untouched: the same IKE SA, Child SA, policy object and SA object.
	after := ikeByName(a)["keep"]
	if after.SPIi != before.SPIi || after.Children[0].SPIIn != before.Children[0].SPIIn || after.Children[0].SPIOut != before.Children[0].SPIOut {
		t.Errorf("the unchanged tunnel was touched: %+v -> %+v", before, after)
	}
	if p := lookup(a, "198.18.1.5", "198.18.2.5"); p != keepPol || p.SA.Load() != keepSA || keepSA.Dead() {
		t.Errorf("the unchanged tunnel's policy or SA changed")
	}
	// Removed: gone on both ends, its SAs dead, its traffic dropped.
	waitFor(t, "the peer to delete the removed tunnel", func() bool { _, ok := ikeByName(b)["gone"]; return !ok })
	if _, ok := ikeByName(a)["gone"]; ok {
		t.Error("the removed connection still has an IKE SA")
	}
	if !goneSA.Dead() || a.inbound.Lookup(goneSA.SPI) != nil {
		t.Errorf("the removed tunnel's SAs are still in use")
	}
	if p := lookup(a, "198.18.3.5", "198.18.4.5"); p != nil && p.Action != spd.Discard {
		t.Errorf("the removed tunnel's traffic meets %s %v, want nothing (default discard)", p.Name, p.Action)
	}
	if slices.Contains(a.ike.engine.Connections(), "gone") {
		t.Error("the engine still has the removed connection")
	}
	// Added: comes up by itself.
	waitFor(t, "the added tunnel", func() bool { _, ok := ikeByName(a)["added"]; return ok })
	if p := lookup(a, "198.18.7.5", "198.18.8.5"); p == nil || p.SA.Load() == nil {
		t.Error("the added tunnel's policy has no SA")
	}
	// Changed: the old proposal until the rekey, the new one after.
	if got := ikeByName(a)["prop"].Children[0].Proposal; !strings.Contains(got, "aes128gcm16") {
		t.Errorf("the changed tunnel's proposal before the rekey: %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.ike.rekey(ctx, "prop/net"); err != nil {
		t.Fatalf("rekey: %v", err)
	}
	waitFor(t, "the new proposal", func() bool {
		for _, sa := range a.ike.list() {
			if sa.Connection == "prop" {
				return len(sa.Children) == 1 && strings.Contains(sa.Children[0].Proposal, "aes256gcm16")
			}
		}
		return false
	})
	if sa := lookup(a, "198.18.5.5", "198.18.6.5").SA.Load(); sa == nil || sa.Crypto.Suite != sad.AESGCM256 {
		t.Errorf("the changed tunnel's outbound SA: %v", sa)
	}

	// A broken file, then a restart-only change: nothing changes.
	snap := func() string { return fmt.Sprint(ikeByName(a), a.store.Gen()) }
	was := snap()
	good, _ := os.ReadFile(a.cfg.File)
	for _, tc := range []struct {
		name, text, want string
	}{
		{"bad value", strings.Replace(string(good), "esp_proposals: [aes256gcm16]", "esp_proposals: [aes999gcm16]", 1), "a.yaml:"},
		{"unknown field", strings.Replace(string(good), "    start_action: start\n", "    start_action: start\n    rekey_tim: 1h\n", 1), "connections[0].rekey_tim"},
		{"restart only", strings.Replace(string(good), "wan: lo}", "wan: eth9}", 1), "a.yaml:1: interfaces.wan: changed (lo -> eth9)"},
	} {
		write(tc.text)
		_, err := a.Reload(context.Background(), "")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing changed") {
			t.Errorf("%s: reload error %v, want one with %q", tc.name, err, tc.want)
		}
		if now := snap(); now != was {
			t.Errorf("%s: state changed:\n%s\n%s", tc.name, was, now)
		}
	}
	write(string(good))
	if res, err := a.Reload(context.Background(), ""); err != nil || !res.Empty() {
		t.Errorf("reloading the same file: %v %v", err, res)
	}
	if _, err := a.Reload(context.Background(), filepath.Join(t.TempDir(), "other.yaml")); err == nil {
		t.Error("reload of another file than the daemon's accepted")
	}
	link := filepath.Join(t.TempDir(), "link.yaml")
	if err := os.Symlink(a.cfg.File, link); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reload(context.Background(), link); err != nil {
		t.Errorf("reload through a link to the daemon's file: %v", err)
	}

	// Changed traffic selectors: the connection is set up again with
	// them (both ends reload; gwB's reload deletes the old IKE SA).
	for _, d := range []*Daemon{b, a} {
		text, _ := os.ReadFile(d.cfg.File)
		if err := os.WriteFile(d.cfg.File, []byte(strings.Replace(string(text), "198.18.8.0/24", "198.18.9.0/24", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if res, err := d.Reload(context.Background(), ""); err != nil || !slices.Equal(res.Restarted, []string{"added"}) {
			t.Fatalf("reload with new selectors: %v %v", err, res)
		}
	}
	waitFor(t, "the re-established tunnel", func() bool {
		p := lookup(a, "198.18.7.5", "198.18.9.5")
		return p != nil && p.SA.Load() != nil
	})
	if p := lookup(a, "198.18.7.5", "198.18.8.5"); p != nil && p.Action != spd.Discard {
		t.Errorf("the old selectors still meet %s", p.Name)
	}
	if after := ikeByName(a)["keep"]; after.SPIi != before.SPIi || after.Children[0].SPIOut != before.Children[0].SPIOut {
		t.Errorf("the unchanged tunnel was touched by the second reload")
	}

	// A connection on another local address: the IKE sockets follow.
	text, _ := os.ReadFile(a.cfg.File)
	extra := strings.NewReplacer("name: keep", "name: extra", "local_addr: 127.0.0.1", "local_addr: 127.0.0.3",
		"start_action: start", "start_action: none", "198.18.1.", "198.18.11.", "198.18.2.", "198.18.12.").Replace(reloadYAML(true, "", reloadConn{"keep", 1, "aes128gcm16", "start"}))
	extra = extra[strings.Index(extra, "  - name: extra"):]
	writeConfig(t, a.cfg.File, string(text)+extra)
	if res, err := a.Reload(context.Background(), ""); err != nil || !slices.Equal(res.Added, []string{"extra"}) {
		t.Fatalf("reload with a new local address: %v %v", err, res)
	}
	if got := a.ike.conn.Addrs(); !slices.Contains(got, netip.MustParseAddr("127.0.0.3")) {
		t.Errorf("IKE listens on %v after a connection on 127.0.0.3 was added", got)
	}
	writeConfig(t, a.cfg.File, string(text))
	if res, err := a.Reload(context.Background(), ""); err != nil || !slices.Equal(res.Removed, []string{"extra"}) {
		t.Fatalf("reload without it: %v %v", err, res)
	}
	if got := a.ike.conn.Addrs(); slices.Contains(got, netip.MustParseAddr("127.0.0.3")) || len(got) != 1 {
		t.Errorf("IKE listens on %v after the connection on 127.0.0.3 went", got)
	}
}

// reloadStaticYAML is a static-only gateway: one inbound SA (key k),
// an outbound SA with its policy, extra lines appended.
func reloadStaticYAML(inKey, extra string) string {
	return `interfaces: {lan: lo, wan: lo}
sas:
  - {name: in1, spi: 0x2001, dir: in, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16, key: ` + inKey + `}
  - {name: out1, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16, key: 0x100102030405060708090a0b0c0d0e0f10111213}
` + extra + `policies:
  - {name: p1, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: out1}
  - {name: mgmt, dst: 203.0.113.0/24, action: bypass}
`
}

// TestReloadStatic: static SAs and policies through the SA store. A
// changed inbound key replaces the SA under the same SPI (the old one
// retires), an added inbound SA is looked up from then on, a removed one
// is not; a changed policy is a new object while an unchanged one, and
// the outbound SA it points at, stay the same; a new outbound key needs
// its sequence-number mark (xdpsec newkeys), as at start. The reload
// hooks frame each reload; the metrics endpoint moves.
func TestReloadStatic(t *testing.T) {
	const k1, k2 = "0x000102030405060708090a0b0c0d0e0f10111213", "0x0f0102030405060708090a0b0c0d0e0f10111213"
	file := filepath.Join(t.TempDir(), "gw.yaml")
	write := func(s string) { t.Helper(); writeConfig(t, file, s) }
	state := "state_dir: " + t.TempDir() + "\n"
	d := reloadDaemon(t, file, reloadStaticYAML(k1, "")+state)
	t.Cleanup(func() { d.store.Close() })
	var begun, ended int
	d.SetReloadHooks(ReloadHooks{Begin: func() { begun++ }, End: func(*ReloadResult, error) { ended++ }})
	in1 := d.inbound.Lookup(0x2001)
	p1 := lookup(d, "198.18.1.5", "198.18.2.5")
	out1 := p1.SA.Load()
	mgmt := lookup(d, "198.18.1.5", "203.0.113.5")

	// A free port for the metrics endpoint to move to.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := probe.Addr().String()
	probe.Close()
	write(strings.Replace(reloadStaticYAML(k2, "  - {name: in2, spi: 0x2002, dir: in, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16, key: 0x200102030405060708090a0b0c0d0e0f10111213}\n"),
		"dst: 203.0.113.0/24, action: bypass", "dst: 203.0.113.0/25, action: bypass", 1) + "metrics: " + metrics + "\n" + state)
	res, err := d.Reload(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.swapMetrics(nil) })
	if !slices.Equal(res.SAsChanged, []string{"in1"}) || !slices.Equal(res.SAsAdded, []string{"in2"}) || !res.Policies || !res.Metrics {
		t.Errorf("reload says %s", res.Reload)
	}
	if sa := d.inbound.Lookup(0x2001); sa == nil || sa == in1 || !in1.Dead() {
		t.Errorf("the changed inbound SA: now %v, old dead %v", sa, in1.Dead())
	}
	if d.inbound.Lookup(0x2002) == nil {
		t.Error("the added inbound SA is not in the table")
	}
	if p := lookup(d, "198.18.1.5", "198.18.2.5"); p != p1 || p.SA.Load() != out1 || out1.Dead() {
		t.Error("the unchanged policy or its outbound SA changed")
	}
	if p := lookup(d, "198.18.1.5", "203.0.113.5"); p == mgmt || p == nil || p.Selector.Dst.Bits() != 25 {
		t.Errorf("the changed policy: %+v", p)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("the metrics endpoint did not move: %v", err)
	}
	resp.Body.Close()

	// Removed: in2 goes.
	base := strings.Replace(reloadStaticYAML(k2, ""), "dst: 203.0.113.0/24, action: bypass", "dst: 203.0.113.0/25, action: bypass", 1) + "metrics: " + metrics + "\n" + state
	write(base)
	if res, err := d.Reload(context.Background(), ""); err != nil || !slices.Equal(res.SAsRemoved, []string{"in2"}) {
		t.Errorf("reload: %v %v", err, res)
	}
	if d.inbound.Lookup(0x2002) != nil {
		t.Error("the removed inbound SA is still in the table")
	}
	// A new outbound key: refused while state_dir has no mark for it
	// (nothing changes), taken once `xdpsec newkeys` declared it: the
	// policy moves to the new SA, whose sequence numbers are reserved
	// durably before it may send.
	gen := d.store.Gen()
	newOut := strings.Replace(base, "key: 0x1001", "key: 0x1101", 1)
	write(newOut)
	if _, err := d.Reload(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "xdpsec newkeys") {
		t.Errorf("an undeclared outbound static key: %v", err)
	}
	if d.store.Gen() != gen || p1.SA.Load() != out1 {
		t.Error("a refused reload changed the store")
	}
	next, err := config.Check(file)
	if err != nil {
		t.Fatal(err)
	}
	if declared, _, err := DeclareNewKeys(next); err != nil || len(declared) != 1 {
		t.Fatalf("newkeys: %v %v", declared, err)
	}
	next.Wipe()
	res, err = d.Reload(context.Background(), "")
	if err != nil || !slices.Equal(res.SAsChanged, []string{"out1"}) {
		t.Fatalf("reload of a declared outbound key: %v %v", err, res)
	}
	t.Cleanup(func() {
		d.seqStop()
		<-d.seqDone
		d.seqStore.Close()
	})
	p := lookup(d, "198.18.1.5", "198.18.2.5")
	if sa := p.SA.Load(); sa == nil || sa == out1 || sa.SPI != 0x1001 || !out1.Dead() || sa.SeqLimit() == 0 {
		t.Errorf("the changed outbound SA: %v (old dead %v)", sa, out1.Dead())
	}
	if begun != 4 || ended != 4 {
		t.Errorf("reload hooks: %d begun, %d ended; want 4 and 4", begun, ended)
	}
}

func writeConfig(t *testing.T, file, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadDaemon writes text to file and builds a daemon's tables from it
// as Start does (no data plane, no IKE plane started).
func reloadDaemon(t *testing.T, file, text string) *Daemon {
	t.Helper()
	writeConfig(t, file, text)
	cfg, err := config.Check(file)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d.saPrints = cfg.SAFingerprints()
	if err := d.buildTables(); err != nil {
		t.Fatal(err)
	}
	return d
}
