package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/internal/swantest"
)

// Live reload (issue 10, item 2) against strongSwan: tunnels are told
// apart by their identities and by the UDP port of their traffic
// selectors, so four of them share the lab's two gateways and hosts.

// reloadTunnel is one connection tN: its flow goes from hostA to
// hostB4:5000+N inside it.
type reloadTunnel struct {
	n   int
	esp string // xdpsec's ESP proposals
}

func (rt reloadTunnel) name() string { return fmt.Sprintf("t%d", rt.n) }
func (rt reloadTunnel) port() int    { return 5000 + rt.n }

// reloadGwA is gwA's file: the lab's header (gen-ike-config.sh's) and the
// tunnels, each started by xdpsec.
func reloadGwA(t *testing.T, header string, tunnels ...reloadTunnel) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("connections:\n")
	for _, rt := range tunnels {
		fmt.Fprintf(&b, `  - name: %[1]s
    local_addr: %[2]s
    remote_addr: %[3]s
    local_id: gw-a-%[1]s.lab
    remote_id: gw-b-%[1]s.lab
    auth: {psk_file: psk}
    ike_proposals: [aes256gcm16-prfsha384-x25519]
    start_action: start
    children:
      - name: net
        local_ts: ["198.18.1.0/24[udp]"]
        remote_ts: ["198.18.2.0/24[udp/%[4]d]"]
        esp_proposals: [%[5]s]
`, rt.name(), gwA4, gwB4, rt.port(), rt.esp)
	}
	return b.String()
}

// reloadCharonConf is charon's swanctl.conf for tunnels 1 to n: each
// accepts aes128gcm16 and aes256gcm16 (charon as responder takes the
// one xdpsec offers).
func reloadCharonConf(psk string, n int) string {
	var conns, secrets strings.Builder
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("t%d", i)
		fmt.Fprintf(&conns, `	%[1]s {
		local_addrs = %[2]s
		remote_addrs = %[3]s
		proposals = aes256gcm16-prfsha384-x25519
		local {
			auth = psk
			id = gw-b-%[1]s.lab
		}
		remote {
			auth = psk
			id = gw-a-%[1]s.lab
		}
		children {
			net {
				local_ts = 198.18.2.0/24[udp/%[4]d]
				remote_ts = 198.18.1.0/24[udp]
				esp_proposals = aes128gcm16,aes256gcm16
			}
		}
	}
`, name, gwB4, gwA4, 5000+i)
		fmt.Fprintf(&secrets, "\tike-%[1]s {\n\t\tid-a = gw-a-%[1]s.lab\n\t\tid-b = gw-b-%[1]s.lab\n\t\tsecret = \"%[2]s\"\n\t}\n", name, psk)
	}
	return "connections {\n" + conns.String() + "}\nsecrets {\n" + secrets.String() + "}\n"
}

// reloadLab is a lab with xdpsec as gwA (tunnels given) and charon as gwB
// (tunnels t1..t4 loaded), every tunnel of gwA's file up.
func reloadLab(t *testing.T, tunnels ...reloadTunnel) (l *lab, gA *gateway, ch *charon, file, header string) {
	t.Helper()
	needLab(t)
	needCharon(t)
	l = newLab(t, "")
	a, _ := l.ikeConfigs(t, "aes256gcm16-prfsha384-x25519", "aes128gcm16", "start")
	gen, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	header = string(gen[:strings.Index(string(gen), "connections:")])
	header = strings.Replace(header, "metrics: 127.0.0.1:9301\n", "", 1)
	psk, err := os.ReadFile(filepath.Join(l.dir, "psk"))
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(l.dir, "reload-a.yaml")
	if err := os.WriteFile(file, []byte(reloadGwA(t, header, tunnels...)), 0o600); err != nil {
		t.Fatal(err)
	}
	ch = &charon{l: l, dir: filepath.Join(l.dir, "charon")}
	ch.Charon = swantest.StartCharon(t, l.netns("gB"), swantest.CharonConfig{
		Dir:      ch.dir,
		Settings: []string{"retransmit_tries = 3", "retransmit_timeout = 1.0"},
		Swanctl:  reloadCharonConf(strings.TrimSpace(string(psk)), 4),
	})
	gA = l.start(t, "gA", file)
	waitIKE(t, l.sockPath("gA"), len(tunnels), 15*time.Second)
	return l, gA, ch, file, header
}

// ikeOf is the established IKE SA of connection name, if any.
func ikeOf(sas []control.IKESA, name string) (control.IKESA, bool) {
	for _, sa := range sas {
		if sa.Connection == name && sa.State == "ESTABLISHED" {
			return sa, true
		}
	}
	return control.IKESA{}, false
}

// xdpsecReload runs `xdpsec reload` with args and returns its output and
// exit error.
func xdpsecReload(args ...string) (string, error) {
	out, err := exec.Command(xdpsecBin, append([]string{"reload"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestReloadUnderTraffic: three tunnels carry numbered UDP flows; a
// reload adds a fourth, removes one, changes the ESP proposal of one and
// leaves one alone. The untouched tunnel loses no datagram and keeps its
// SAs; strongSwan gets the removed one's Delete and its flow stops (fail
// closed: dropped, never sent in clear); the added one comes up and
// carries its flow; the changed one uses the new proposal after `xdpsec
// rekey`. Nothing leaves the WAN in clear.
func TestReloadUnderTraffic(t *testing.T) {
	t1, t2, t3 := reloadTunnel{1, "aes128gcm16"}, reloadTunnel{2, "aes128gcm16"}, reloadTunnel{3, "aes128gcm16"}
	l, gA, ch, file, header := reloadLab(t, t1, t2, t3)
	sock := l.sockPath("gA")
	capWAN := l.capture(t, "wan", "a0", 128)
	// The first datagrams of a path may meet unresolved neighbours: a
	// short flow in each tunnel first, then the counted ones, of which
	// the untouched tunnel's must lose none at all.
	warm := func(rt reloadTunnel) {
		f := l.startFlow(t, rt.name()+"-warm-up", "hA", "hB", "udp4", hostB4, rt.port())
		time.Sleep(300 * time.Millisecond)
		f.finish()
	}
	for _, rt := range []reloadTunnel{t1, t2, t3} {
		warm(rt)
	}
	flows := map[int]*flow{}
	for _, rt := range []reloadTunnel{t1, t2, t3} {
		flows[rt.n] = l.startFlow(t, rt.name(), "hA", "hB", "udp4", hostB4, rt.port())
	}
	time.Sleep(time.Second)
	before := showIKE(t, sock)
	keep, _ := ikeOf(before, "t1")

	// The reload: t4 added, t2 removed, t3 to aes256gcm16, t1 as it was.
	t4, t3new := reloadTunnel{4, "aes128gcm16"}, reloadTunnel{3, "aes256gcm16"}
	if err := os.WriteFile(file, []byte(reloadGwA(t, header, t1, t3new, t4)), 0o600); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	out, err := xdpsecReload("-c", file)
	took := time.Since(began)
	if err != nil {
		t.Fatalf("xdpsec reload: %v\n%s\n%s", err, out, gA.logText())
	}
	t.Logf("xdpsec reload (%v, the client included): %s", took.Round(time.Millisecond), out)
	for _, want := range []string{"1 added, 1 removed, 1 changed, 1 unchanged", "added: t4", "removed: t2", "changed: t3", "unchanged: t1"} {
		if !strings.Contains(out, want) {
			t.Errorf("xdpsec reload's output lacks %q", want)
		}
	}
	if n := countLog(gA.log, "configuration reloaded"); n != 1 {
		t.Errorf("%d reload log lines, want 1", n)
	}
	recv2 := func() uint64 { flows[2].mu.Lock(); defer flows[2].mu.Unlock(); return flows[2].recv }

	// Removed: strongSwan saw the Delete, and lists no t2.
	charonLog := filepath.Join(ch.dir, "charon.log")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(charonLog)
		list := ch.swanctl(t, "--list-sas")
		if strings.Contains(string(b), "received DELETE for IKE_SA t2") && !regexp.MustCompile(`(?m)^t2: `).MatchString(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("charon did not see t2 deleted:\n%s", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("charon saw t2's Delete and lists no t2 %v after the reload began (polled every 100 ms)", time.Since(began).Round(time.Millisecond))
	if _, ok := ikeOf(showIKE(t, sock), "t2"); ok {
		t.Error("xdpsec still has t2's IKE SA")
	}
	time.Sleep(300 * time.Millisecond)
	r2 := recv2()
	// Added: t4 comes up by itself (start_action start) and carries a flow.
	sas := waitIKE(t, sock, 3, 10*time.Second)
	if _, ok := ikeOf(sas, "t4"); !ok {
		t.Fatalf("t4 not up: %+v", sas)
	}
	if sa, _ := ikeOf(sas, "t4"); !sa.Established.IsZero() {
		t.Logf("t4 established %v after the reload began", sa.Established.Sub(began).Round(time.Millisecond))
	}
	warm(t4)
	flows[4] = l.startFlow(t, "t4", "hA", "hB", "udp4", hostB4, t4.port())
	// Changed: the old proposal until the rekey, the new one after.
	if sa, _ := ikeOf(sas, "t3"); len(sa.Children) == 0 || !strings.HasPrefix(sa.Children[0].Proposal, "aes128gcm16") {
		t.Errorf("t3 before its rekey: %+v", sa)
	}
	rekeyed := time.Now()
	if err := xdpsecRekey(sock, "t3", "net"); err != nil {
		t.Fatalf("xdpsec rekey t3 net: %v", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		sa, _ := ikeOf(showIKE(t, sock), "t3")
		if len(sa.Children) == 1 && strings.HasPrefix(sa.Children[0].Proposal, "aes256gcm16") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("t3 does not use aes256gcm16 after its rekey: %+v", sa)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("t3 on aes256gcm16 %v after `xdpsec rekey t3 net`", time.Since(rekeyed).Round(time.Millisecond))
	if list := ch.swanctl(t, "--list-sas", "--ike", "t3"); !strings.Contains(list, "AES_GCM_16-256") {
		t.Errorf("charon's t3 Child SA is not AES_GCM_16-256:\n%s", list)
	}
	time.Sleep(2 * time.Second)

	// The untouched tunnel: the same SAs, not one datagram lost.
	if sa, ok := ikeOf(showIKE(t, sock), "t1"); !ok || sa.SPIi != keep.SPIi || sa.Children[0].SPIIn != keep.Children[0].SPIIn || sa.Children[0].SPIOut != keep.Children[0].SPIOut {
		t.Errorf("t1 was touched by the reload: %+v -> %+v", keep, sa)
	}
	if n := recv2() - r2; n != 0 {
		t.Errorf("t2's flow still delivered %d datagrams after its removal", n)
	}
	for _, n := range []int{1, 2, 3, 4} {
		sent, recv, dups, missing := flows[n].finish()
		t.Logf("t%d: %d sent, %d received, %d duplicates, %d missing", n, sent, recv, dups, len(missing))
		switch n {
		case 1:
			if len(missing) > 0 || recv == 0 {
				t.Errorf("the untouched tunnel lost %d of %d datagrams across the reload, e.g. %v", len(missing), sent, missing[:min(10, len(missing))])
			}
		case 3:
			// Its rekey is make-before-break: nothing lost either.
			if len(missing) > 0 {
				t.Errorf("the changed tunnel lost %d datagrams across the reload and its rekey, e.g. %v", len(missing), missing[:min(10, len(missing))])
			}
		case 4:
			if recv < sent/2 {
				t.Errorf("the added tunnel carried %d of %d datagrams", recv, sent)
			}
		}
	}
	ikeNoLeak(t, capWAN.stop())
	l.stopClean(t, gA)
}

// TestReloadBrokenFile: a file that does not load, or needs a restart,
// changes nothing (the same SAs and SPIs before and after), whether the
// reload comes from `xdpsec reload` (the client's check or the daemon's)
// or SIGHUP, and each says file:line: field and exits 1. A good file then
// reloads by SIGHUP as by `xdpsec reload`.
func TestReloadBrokenFile(t *testing.T) {
	t1 := reloadTunnel{1, "aes128gcm16"}
	l, gA, _, file, header := reloadLab(t, t1)
	sock := l.sockPath("gA")
	state := func() string {
		var b strings.Builder
		for _, sa := range showIKE(t, sock) {
			fmt.Fprintf(&b, "%s %s %s %s|", sa.Connection, sa.State, sa.SPIi, sa.SPIr)
			for _, c := range sa.Children {
				fmt.Fprintf(&b, "%08x/%08x %s|", c.SPIIn, c.SPIOut, c.Proposal)
			}
		}
		for _, sa := range showAllSAs(t, sock) {
			fmt.Fprintf(&b, "%08x %s|", sa.SPI, sa.Dir)
		}
		return b.String()
	}
	was := state()
	good := reloadGwA(t, header, t1)
	lines := strings.Split(good, "\n")
	line := 0
	for i, s := range lines {
		if strings.Contains(s, "esp_proposals") {
			line = i + 1
		}
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"bad proposal", strings.Replace(good, "esp_proposals: [aes128gcm16]", "esp_proposals: [aes999gcm16]", 1),
			fmt.Sprintf("reload-a.yaml:%d: connections[0].children[0].esp_proposals", line)},
		{"restart only", strings.Replace(good, "queues: 1", "queues: 2", 1), "reload-a.yaml:2: interfaces.queues: changed (1 -> 2)"},
	} {
		if err := os.WriteFile(file, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		// The daemon's check (the client cannot read the file first).
		out, err := xdpsecReload("--socket", sock)
		if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "nothing changed") {
			t.Errorf("%s: xdpsec reload --socket: %v\n%s\nwant %q", tc.name, err, out, tc.want)
		}
		// -c: the same validation, in the client or the daemon.
		out, err = xdpsecReload("-c", file)
		if err == nil || !strings.Contains(out, strings.Split(tc.want, ": changed")[0]) {
			t.Errorf("%s: xdpsec reload -c: %v\n%s\nwant %q", tc.name, err, out, tc.want)
		}
		n := countLog(gA.log, "SIGHUP: reload failed")
		gA.cmd.Process.Signal(syscall.SIGHUP)
		for deadline := time.Now().Add(5 * time.Second); countLog(gA.log, "SIGHUP: reload failed") == n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no failed reload logged after SIGHUP\n%s", tc.name, gA.logText())
			}
		}
		if !strings.Contains(gA.logText(), tc.want) {
			t.Errorf("%s: the SIGHUP's log lacks %q", tc.name, tc.want)
		}
		if now := state(); now != was {
			t.Errorf("%s: the state changed:\n%s\n%s", tc.name, was, now)
		}
	}
	// A good change by SIGHUP: the connection's lifetime (applies live,
	// its SAs stay), and the daemon still runs.
	changed := strings.Replace(good, "    start_action: start\n", "    start_action: start\n    rekey_time: 2h\n", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	gA.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); countLog(gA.log, "configuration reloaded") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged after SIGHUP\n%s", gA.logText())
		}
	}
	if !strings.Contains(gA.logText(), "changed: t1") {
		t.Errorf("SIGHUP's reload did not report t1 changed:\n%s", gA.logText())
	}
	if now := state(); now != was {
		t.Errorf("a live change touched the tunnel:\n%s\n%s", was, now)
	}
	if out, err := xdpsecReload("-c", file); err != nil || !strings.Contains(out, "0 changed, 1 unchanged") {
		t.Errorf("xdpsec reload of the file SIGHUP applied: %v %s", err, out)
	}
	l.stopClean(t, gA)
}

// TestReloadStaticKeys: static SAs rotated live on both gateways, new
// keys and new SPIs (declared with `xdpsec newkeys` first): after both
// reloads the tunnel carries traffic on the new SAs only — the new
// inbound SPIs are live in the XDP programs, the policies point at the
// new outbound SAs, the old SAs are gone — and neither daemon restarted.
func TestReloadStaticKeys(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b, k := l.configs(t, tunnelOpts{})
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)
	const newAB, newBA = 0x5001, 0x6001
	key := func() string {
		b := make([]byte, len(k.ab))
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	ab, ba := key(), key()
	rotate := strings.NewReplacer(
		hex.EncodeToString(k.ab), ab, hex.EncodeToString(k.ba), ba,
		fmt.Sprintf("spi: 0x%x\n", spiAB), fmt.Sprintf("spi: 0x%x\n", newAB),
		fmt.Sprintf("spi: 0x%x\n", spiBA), fmt.Sprintf("spi: 0x%x\n", newBA))
	for _, file := range []string{b, a} {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(rotate.Replace(string(body))), 0o600); err != nil {
			t.Fatal(err)
		}
		newKeys(t, file)
		out, err := xdpsecReload("-c", file)
		if err != nil || !strings.Contains(out, "static SAs: 0 added, 0 removed, 2 changed; sa changed: out,in") {
			t.Fatalf("xdpsec reload -c %s: %v\n%s", filepath.Base(file), err, out)
		}
		t.Log(out)
	}
	if got := l.pingAll("hA", hostB4, 10); got != 10 {
		t.Errorf("after the rotation %d of 10 pings answered\n%s", got, l.diagnose())
	}
	sas := gA.showSAs(t)
	if sas["out"].SPI != newAB || sas["in"].SPI != newBA || sas["out"].Packets < 10 || sas["in"].Packets < 10 {
		t.Errorf("gwA's SAs after the rotation: out %+v, in %+v", sas["out"], sas["in"])
	}
	if n := len(showAllSAs(t, l.sockPath("gA"))); n != 2 {
		t.Errorf("gwA has %d SAs, want the 2 new ones", n)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}
