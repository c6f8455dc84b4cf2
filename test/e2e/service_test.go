package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUP: a SIGHUP does not end the daemon (Go's default would, and
// every tunnel with it): the tunnel keeps carrying traffic, the daemon
// reloads the file live (here a changed log_level) and logs one line
// saying what changed.
// gwA logs in JSON (log_format: json): every line of its log is an object.
func TestSIGHUP(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b, _ := l.configs(t, tunnelOpts{})
	appendTo(t, a, "log_format: json\nlog_level: info\n")
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)

	// A changed log_level applies; the static tunnel is not touched.
	body, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a, []byte(strings.Replace(string(body), "log_level: info", "log_level: debug", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	before := gA.showSAs(t)["out"].Packets
	if err := gA.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(gA.logText(), "configuration reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no SIGHUP line in gwA's log:\n%s", gA.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := l.pingAll("hA", hostB4, 10); got != 10 {
		t.Errorf("after SIGHUP %d of 10 pings answered\n%s", got, l.diagnose())
	}
	select {
	case <-gA.done:
		t.Fatalf("xdpsec ended on SIGHUP: %v\n%s", gA.err, gA.logText())
	default:
	}
	if after := gA.showSAs(t)["out"].Packets; after < before+10 {
		t.Errorf("SA out sealed %d packets after the SIGHUP, want at least 10", after-before)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)

	hup := 0
	for _, line := range strings.Split(strings.TrimSpace(gA.logText()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log_format: json, but a line is not JSON: %q", line)
			continue
		}
		if msg, _ := m["msg"].(string); msg == "configuration reloaded" {
			hup++
			if ch, _ := m["changes"].(string); !strings.Contains(ch, "also changed: log_level") || m["level"] != "INFO" {
				t.Errorf("reload line: %v", m)
			}
		}
	}
	if hup != 1 {
		t.Errorf("%d reload lines, want 1", hup)
	}
}

// TestStartErrors: the start-up failures a newcomer meets end the daemon
// at once with what to do, not only what failed.
func TestStartErrors(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, _, _ := l.configs(t, tunnelOpts{})
	body, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name, from, to string) string {
		p := strings.TrimSuffix(a, ".yaml") + "-" + name + ".yaml"
		if err := os.WriteFile(p, []byte(strings.Replace(string(body), from, to, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// failsWith runs args to the end and expects exit status 1 and each
	// of want in the output.
	failsWith := func(t *testing.T, cmd *exec.Cmd, want ...string) {
		t.Helper()
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%v: %v, want exit status 1\n%s", cmd.Args, err, out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%v: output lacks %q:\n%s", cmd.Args, w, out)
			}
		}
	}
	netnsExec := func(args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", l.prefix + "-gA", xdpsecBin}, args...)...)
	}

	t.Run("ip netns exec", func(t *testing.T) {
		// It remounts /sys, and the new one has no bpf filesystem.
		failsWith(t, netnsExec("run", "-c", a), "no bpf filesystem is mounted at /sys/fs/bpf",
			"`ip netns exec` remounts /sys", "nsenter --net=/run/netns/NAME", "mount -t bpf bpf /sys/fs/bpf")
		// --cleanup must not say "done" while the pins are out of sight.
		failsWith(t, netnsExec("run", "--cleanup", "-c", a), "nsenter --net=/run/netns/NAME")
	})
	t.Run("no such interface", func(t *testing.T) {
		failsWith(t, l.cmd(t.Context(), "gA", xdpsecBin, "run", "-c", variant("noif", "lan: lan0", "lan: nope0")),
			"interfaces.lan", "nope0", "no such interface in this network namespace", "nsenter --net=")
	})
	t.Run("metrics address in use", func(t *testing.T) {
		var ln net.Listener
		if err := l.inNetns("gA", func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:9301"); return err }); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		failsWith(t, l.cmd(t.Context(), "gA", xdpsecBin, "run", "-c", a),
			"metrics: listen tcp 127.0.0.1:9301", "another process listens on that address", "ss -ltnp 'sport = :9301'")
		// The program stays attached, failing closed, until --cleanup.
		if out, err := l.run("gA", 10*time.Second, xdpsecBin, "run", "--cleanup", "-c", a); err != nil {
			t.Errorf("--cleanup: %v\n%s", err, out)
		}
	})
	if att := l.xdpAttached(t, "gA"); len(att) > 0 {
		t.Errorf("XDP left attached on %v", att)
	}
}

func appendTo(t *testing.T, file, s string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
