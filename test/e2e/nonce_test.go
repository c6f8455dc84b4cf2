package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/seqstate"
)

// TestStaticNonceUnique: gwA runs a static AES-GCM SA with the default
// configuration (no pin_path, no state_dir, no on_stop) while hostA sends
// and the WAN is captured, through everything that used to make a static
// SA send a sequence number (its nonce) twice: kill -9 mid-traffic, a
// clean stop, a simulated reboot (the volatile state under /run and the
// bpffs pins gone), the SA renamed in the configuration, and a start with
// the state directory unwritable, which must be refused with its reason.
// tshark then finds no (SPI, sequence number) pair twice in the capture,
// and no plaintext: the default configuration fails closed across kill -9
// and SIGTERM.
func TestStaticNonceUnique(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b, keys := l.configs(t, tunnelOpts{})
	// gwA with the defaults: the lines the harness adds for labs go.
	y, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ln := range strings.Split(string(y), "\n") {
		if strings.HasPrefix(ln, "pin_path:") || strings.HasPrefix(ln, "on_stop:") || strings.HasPrefix(ln, "state_dir:") {
			continue
		}
		lines = append(lines, ln)
	}
	def := filepath.Join(l.dir, "gA-default.yaml")
	if err := os.WriteFile(def, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	stateDir := config.DefaultStateDir
	_, statErr := os.Stat(stateDir)
	fp := seqstate.Fingerprint(keys.ab, nil)
	t.Cleanup(func() {
		os.Remove(filepath.Join(stateDir, fp+".seq"))
		os.Remove(filepath.Join(stateDir, fp+".lock"))
		if statErr != nil {
			os.Remove(stateDir) // only if this test made it, and it is empty
		}
	})
	newKeys(t, def)
	if _, err := os.Stat(filepath.Join(stateDir, fp+".seq")); err != nil {
		t.Fatalf("newkeys left no mark in the default state_dir: %v", err)
	}

	gA := l.start(t, "gA", def)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)
	l.warmUp(t, "hA", hostB6)
	// Real routes in gwA's kernel: only the XDP program stands between
	// hostA's packets and the WAN.
	l.routeFarSite(t, true)
	defer l.routeFarSite(t, false)
	c := l.capture(t, "wan", "a0", 128)
	traffic := func(what string) {
		t.Helper()
		l.warmUp(t, "hA", hostB4)
		r := l.iperf(t, hostB4, "-u", "-t", "2", "-b", "100M", "-l", "500")
		if r.End.Sum.Packets == 0 {
			t.Errorf("%s: iperf3 UDP sent nothing", what)
		}
		t.Logf("%s: iperf3 UDP %d packets, %.1f%% lost", what, r.End.Sum.Packets, r.End.Sum.LostPercent)
	}
	failClosed := func(what string) {
		t.Helper()
		if att := l.xdpAttached(t, "gA"); len(att) != 2 {
			t.Errorf("%s: XDP attached on %v, want lan0 and wan0 (fail closed with the default pin_path)", what, att)
		}
	}
	traffic("first run")

	// kill -9 while sending: the marks on disk cover every number used.
	wait := l.pingThrough(t, "0.005", 4)
	time.Sleep(500 * time.Millisecond)
	gA.stop(t, syscall.SIGKILL)
	time.Sleep(time.Second)
	failClosed("after kill -9")
	gA = l.start(t, "gA", def)
	wait()
	traffic("after kill -9")

	// SIGTERM: the default on_stop keeps the programs attached.
	wait = l.pingThrough(t, "0.005", 4)
	time.Sleep(500 * time.Millisecond)
	if err := gA.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: exit %v\n%s", err, gA.logText())
	}
	time.Sleep(time.Second)
	failClosed("after SIGTERM")
	gA = l.start(t, "gA", def)
	wait()
	traffic("after SIGTERM")

	// A reboot: /run and bpffs are empty, and nothing is routed until
	// the daemon is up (a late TCP retransmission from hostA would
	// otherwise find gwA's kernel routing with no program attached).
	gA.stop(t, syscall.SIGKILL)
	l.routeFarSite(t, false)
	os.Remove(strings.TrimSuffix(l.sockPath("gA"), ".sock") + ".seq") // where state_file used to default to
	os.Remove(l.sockPath("gA"))
	cleanupPins(l.pinPath("gA"))
	time.Sleep(200 * time.Millisecond)
	if att := l.xdpAttached(t, "gA"); len(att) != 0 {
		t.Errorf("the simulated reboot left XDP attached on %v", att)
	}
	gA = l.start(t, "gA", def)
	l.routeFarSite(t, true)
	traffic("after a reboot")

	// The SA renamed: the mark follows the key.
	renamed := filepath.Join(l.dir, "gA-renamed.yaml")
	ry := bytes.Replace([]byte(strings.Join(lines, "\n")), []byte("  - name: out\n"), []byte("  - name: to-site-b\n"), 1)
	ry = bytes.ReplaceAll(ry, []byte("sa: out}"), []byte("sa: to-site-b}"))
	if err := os.WriteFile(renamed, ry, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gA.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: exit %v", err)
	}
	gA = l.start(t, "gA", renamed)
	if _, ok := gA.showSAs(t)["out"]; !ok {
		t.Fatal("renamed SA not shown")
	}
	traffic("renamed")

	// The state directory read-only (in a mount namespace of the
	// daemon's own): refused, with the reason and the remedy.
	gA.stop(t, syscall.SIGKILL)
	time.Sleep(time.Second) // as after the first kill: the kernel lets go of the dead one's sockets
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ro := l.cmd(ctx, "gA", "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" run -c "$3"`, "sh", stateDir, xdpsecBin, renamed)
	out, err := ro.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("with state_dir read-only the daemon did not refuse to start: %v\n%s", err, out)
	}
	for _, want := range []string{"refusing to start", "not writable", "set state_dir to a writable directory"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("refusal lacks %q:\n%s", want, out)
		}
	}
	failClosed("after the refused start")
	gA = l.start(t, "gA", renamed)
	traffic("after the refused start")

	pcap := c.stop()
	if n := noLeak(t, pcap); n < 10000 {
		t.Errorf("only %d ESP frames captured", n)
	}
	seen := map[string]int{}
	dups, fromA := 0, 0
	for _, ln := range tshark(t, pcap, nil, "-Y", "esp and not icmp and not icmpv6", "-T", "fields", "-e", "esp.spi", "-e", "esp.sequence") {
		if f := strings.Fields(ln); len(f) > 0 && strings.HasSuffix(f[0], "1001") {
			fromA++
		}
		if seen[ln]++; seen[ln] == 2 {
			dups++
			if dups <= 5 {
				t.Errorf("(SPI, sequence number) sent twice: %q", ln)
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d (SPI, sequence number) pairs sent more than once: the nonce was reused", dups)
	}
	if fromA < 10000 {
		t.Errorf("only %d ESP frames from gwA", fromA)
	}
	t.Logf("%d ESP frames from gwA over six runs, %d (SPI, sequence) pairs seen twice", fromA, dups)
	if r := gB.showSAs(t)["in"].Drops["replay"]; r != 0 {
		t.Errorf("gwB dropped %d of gwA's packets as replays", r)
	}
	gA.stop(t, syscall.SIGKILL)
	cleanupPins(l.pinPath("gA"))
}
