package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// serviceUID is the user the test runs the daemon as: nobody/nogroup,
// which exists on every Debian machine (the package's own user, xdpsec,
// is not made on a shared test machine).
const serviceUID = 65534

// unitCapabilities reads the packaged unit's AmbientCapabilities= (and
// checks CapabilityBoundingSet= is the same set), so the test runs the
// daemon with exactly what the unit grants.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(root, "scripts", "package", "xdpsec.service"))
	if err != nil {
		t.Fatal(err)
	}
	var ambient, bounding string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "AmbientCapabilities="); ok {
			ambient = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "CapabilityBoundingSet="); ok {
			bounding = v
		}
	}
	if ambient == "" || ambient != bounding {
		t.Fatalf("xdpsec.service: AmbientCapabilities=%q and CapabilityBoundingSet=%q must be the same, non-empty set", ambient, bounding)
	}
	return strings.Fields(ambient)
}

// setprivArgs runs a command as serviceUID with exactly caps (names as
// systemd writes them, CAP_NET_ADMIN) in its inheritable, ambient and
// bounding sets: what systemd does for User= with AmbientCapabilities=.
func setprivArgs(caps []string) []string {
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	id := fmt.Sprint(serviceUID)
	return []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set}
}

// serviceDir is what the unit's StateDirectory=, RuntimeDirectory= and
// ExecStartPre= give the daemon, in a directory of the test's own: the
// binary, the configuration and the PSK, a run directory for the control
// socket, state_dir and a pin directory on /sys/fs/bpf, all owned by
// serviceUID.
type serviceDir struct {
	dir, bin, cfgA, cfgB, sock, pins, notify string
}

func newServiceDir(t *testing.T, l *lab) *serviceDir {
	t.Helper()
	// Under /run, not /tmp: the sandbox below hides /tmp (PrivateTmp).
	dir, err := os.MkdirTemp("/run", "xdpsec-svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	genIKEConfig(t, l, dir)
	s := &serviceDir{dir: dir, bin: filepath.Join(dir, "xdpsec"), cfgA: filepath.Join(dir, "gw-a.yaml"), cfgB: filepath.Join(dir, "gw-b.yaml"),
		sock: filepath.Join(dir, "run", "gA.sock"), pins: "/sys/fs/bpf/" + l.prefix + "-gA-svc", notify: filepath.Join(dir, "notify")}
	t.Cleanup(func() { os.RemoveAll(s.pins) })
	bin, err := os.ReadFile(xdpsecBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.bin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(s.cfgA)
	if err != nil {
		t.Fatal(err)
	}
	cfg := regexp.MustCompile(`(?m)^control: .*$`).ReplaceAllString(string(body), "control: "+s.sock)
	cfg = regexp.MustCompile(`(?m)^pin_path: .*$`).ReplaceAllString(cfg, "pin_path: "+s.pins)
	// The socket goes to nogroup (mode 0660): the daemon's user may give
	// it only to a group it is in.
	cfg += fmt.Sprintf("control_group: %d\n", serviceUID)
	if err := os.WriteFile(s.cfgA, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "run"), filepath.Join(dir, "state-gA"), s.pins} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{s.cfgA, filepath.Join(dir, "psk"), filepath.Join(dir, "run"), filepath.Join(dir, "state-gA"), s.pins} {
		if err := os.Chown(f, serviceUID, serviceUID); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// sandboxScript approximates the unit's mount hardening in a mount
// namespace of its own, then runs its arguments: every mount read-only but
// /dev, /proc and /sys (ProtectSystem=strict) and the colon-separated
// writable paths in $1 (ReadWritePaths=), empty /tmp and /var/tmp
// (PrivateTmp=), empty read-only /home and /root (ProtectHome=). The
// remounts change this namespace's mounts only.
const sandboxScript = `set -e
rw=$1; shift
IFS=:
for p in $rw; do mount --bind "$p" "$p"; done
unset IFS
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
	case "$m" in /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) continue ;; esac
	case ":$rw:" in *":$m:"*) continue ;; esac
	mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
mount -t tmpfs -o ro tmpfs /home
mount -t tmpfs -o ro tmpfs /root
exec "$@"
`

// sandboxed is the command line that runs args in gwA's network namespace
// inside the sandbox, with only the service's own directories writable.
func (s *serviceDir) sandboxed(l *lab, args ...string) []string {
	rw := strings.Join([]string{filepath.Dir(s.sock), filepath.Join(s.dir, "state-gA")}, ":")
	return append([]string{"--net=" + l.ns("gA"), "--", "unshare", "--mount", "--propagation", "private", "sh", "-c", sandboxScript, "sandbox", rw}, args...)
}

// startService runs gwA's daemon in its namespace as serviceUID with caps
// only, in the sandbox, with $NOTIFY_SOCKET set as systemd would.
func (s *serviceDir) startService(t *testing.T, l *lab, caps []string) *gateway {
	t.Helper()
	cmd := exec.Command("nsenter", s.sandboxed(l, append(setprivArgs(caps), s.bin, "run", "-c", s.cfgA)...)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.notify)
	g := l.launch(t, "gA", s.dir, cmd)
	return g
}

// notifications is systemd's end of $NOTIFY_SOCKET.
func (s *serviceDir) listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := os.Chmod(s.notify, 0o777); err != nil { // the daemon is not root
		t.Fatal(err)
	}
	return c
}

func readNotify(t *testing.T, c *net.UnixConn, within time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(within))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message within %v: %v", within, err)
	}
	return string(buf[:n])
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	body, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestServiceCapabilities: gwA runs the way the packaged unit runs it - a
// user that is not root (nobody), only the unit's capabilities, its own
// directories the only writable ones (an approximation of the unit's
// ProtectSystem=strict, PrivateTmp and ProtectHome with a mount namespace:
// the test machines' PID 1 is not systemd) - and the IKE tunnel comes up
// and carries pings; it tells
// systemd READY=1 once up and STOPPING=1 on SIGTERM, and its control
// socket is 0660 for control_group. With any one of the unit's
// capabilities taken away it refuses to start, naming that capability.
func TestServiceCapabilities(t *testing.T) {
	needLab(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	caps := unitCapabilities(t)
	l := newLab(t, "")
	s := newServiceDir(t, l)
	notify := s.listenNotify(t)
	gB := l.start(t, "gB", s.cfgB)

	// The sandbox holds: its writable directories are, the rest is not.
	probe := "touch " + filepath.Join(s.dir, "state-gA", "probe") + " && ! touch " + filepath.Join(s.dir, "probe") +
		" 2>/dev/null && ! touch /var/lib/xdpsec-sandbox-probe 2>/dev/null && ! ls /tmp/* 2>/dev/null"
	if out, err := exec.Command("nsenter", s.sandboxed(l, "sh", "-c", probe)...).CombinedOutput(); err != nil {
		t.Fatalf("the sandbox does not hold (%s): %v\n%s", probe, err, out)
	}
	os.Remove(filepath.Join(s.dir, "state-gA", "probe"))

	// One capability fewer: no start, and the message names it.
	for i, c := range caps {
		fewer := append(append([]string{}, caps[:i]...), caps[i+1:]...)
		g := s.startService(t, l, fewer)
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("without %s gwA is still running after 10 s\n%s", c, g.logText())
		}
		if g.err == nil || !strings.Contains(g.logText(), "needs "+c+" (") {
			t.Errorf("without %s: exit %v, want a failure naming %q:\n%s", c, g.err, "needs "+c+" (", g.logText())
		}
	}
	// A failed start says so to systemd too.
	if got := readNotify(t, notify, time.Second); !strings.HasPrefix(got, "STATUS=start failed: ") {
		t.Errorf("sd_notify after a failed start: %q", got)
	}
	for drained := false; !drained; {
		notify.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := notify.Read(make([]byte, 4096))
		drained = err != nil
	}

	// The unit's set: up, READY=1, the tunnel works.
	gA := s.startService(t, l, caps)
	if got := readNotify(t, notify, 10*time.Second); !strings.HasPrefix(got, "READY=1") {
		t.Fatalf("first sd_notify message %q, want READY=1\n%s", got, gA.logText())
	}
	st := procStatus(t, gA.cmd.Process.Pid)
	if !strings.HasPrefix(st["Name"], "xdpsec") || strings.Fields(st["Uid"])[1] != fmt.Sprint(serviceUID) {
		t.Fatalf("the daemon's process: Name %q Uid %q, want xdpsec as %d", st["Name"], st["Uid"], serviceUID)
	}
	if st["CapEff"] != st["CapAmb"] || st["CapEff"] != st["CapBnd"] {
		t.Errorf("CapEff %s CapAmb %s CapBnd %s: want the unit's set in all three", st["CapEff"], st["CapAmb"], st["CapBnd"])
	}
	t.Logf("gwA: uid %s, CapEff %s (%s)", strings.Fields(st["Uid"])[1], st["CapEff"], strings.Join(caps, " "))
	if fi, err := os.Stat(s.sock); err != nil || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != serviceUID || fi.Sys().(*syscall.Stat_t).Uid != serviceUID {
		t.Errorf("control socket: %v %v, want mode 0660, owner and group %d", fi.Mode(), err, serviceUID)
	}
	waitIKE(t, s.sock, 1, 10*time.Second)
	waitIKE(t, l.sockPath("gB"), 1, 5*time.Second)
	l.warmUp(t, "hA", hostB4)
	for _, p := range [][2]string{{"hA", hostB4}, {"hB", hostA4}, {"hA", hostB6}} {
		if got := l.pingAll(p[0], p[1], 10); got != 10 {
			t.Errorf("ping %s -> %s through the non-root gwA: %d of 10 answered", p[0], p[1], got)
		}
	}
	if snap, err := control.Query(s.sock); err != nil || len(snap.SAs) < 2 {
		t.Errorf("show through the socket: %v, %d SAs", err, len(snap.SAs))
	}

	if err := gA.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("gwA's exit after SIGTERM: %v\n%s", err, gA.logText())
	}
	if got := readNotify(t, notify, time.Second); !strings.HasPrefix(got, "STOPPING=1") {
		t.Errorf("sd_notify on SIGTERM %q, want STOPPING=1", got)
	}
	l.stopClean(t, gB)
}
