package control

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/xdpsec/xdpsec/internal/control/controltest"
)

// Throwaway ids for TestAccessByCredentials: no user or group with them is
// created; the kernel takes any number in a credential.
const (
	testReadGID  = 61010
	testAdminGID = 61011
)

// The client half of TestAccessByCredentials: the test binary re-run under
// another uid runs this, which does one request and prints its outcome.
func TestControlClientHelper(t *testing.T) {
	path, cmd := os.Getenv("XDPSEC_CONTROL_SOCKET"), os.Getenv("XDPSEC_CONTROL_COMMAND")
	if path == "" {
		t.Skip("helper process for TestAccessByCredentials")
	}
	var err error
	var res string
	if cmd == CommandSnapshot {
		var s *Snapshot
		if s, err = Query(path); err == nil {
			res = fmt.Sprintf("pid %d", s.PID)
		}
	} else {
		res, err = Do(path, cmd, "site")
	}
	if err != nil {
		fmt.Printf("RESULT ERR %v\n", err)
		return
	}
	fmt.Printf("RESULT OK %s\n", res)
}

// runAs runs the helper as uid/gid with the supplementary groups given and
// returns its RESULT line.
func runAs(t *testing.T, exe, dir, sock, command string, uid, gid uint32, groups []uint32) string {
	t.Helper()
	cmd := controltest.As(exec.Command(exe, "-test.run=^TestControlClientHelper$", "-test.v"), dir, uid, gid, groups)
	cmd.Env = append(os.Environ(), "XDPSEC_CONTROL_SOCKET="+sock, "XDPSEC_CONTROL_COMMAND="+command)
	out, err := cmd.CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(l, "RESULT "); ok {
			return r
		}
	}
	t.Fatalf("helper as uid %d: %v\n%s", uid, err, out)
	return ""
}

// TestAccessByCredentials (root): who may use the control socket, decided
// by the client's real credentials. Clients are the test binary re-run
// under throwaway uids and gids (syscall.Credential); no account is made.
// An outsider cannot connect; a control_group member may show but not
// terminate; a member of both groups, and root, may do both. With the
// socket's mode opened to everyone, the daemon's own check (SO_PEERCRED,
// SO_PEERGROUPS) still refuses the outsider and the reader's terminate.
func TestAccessByCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs clients under other uids")
	}
	// The clients must reach the socket and the binary.
	dir := controltest.Open(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	client := controltest.Copy(t, exe, dir)
	sock := filepath.Join(dir, "run", "ctl.sock")
	s, err := Listen(sock, Access{ReadGID: testReadGID, AdminGID: testAdminGID}, sample, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Handle(CommandTerminate, func(ctx context.Context, name string) (string, error) { return "terminated " + name, nil })

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || st.Gid != testReadGID || st.Uid != 0 {
		t.Errorf("socket mode %04o owner %d:%d, want 0660 0:%d", fi.Mode().Perm(), st.Uid, st.Gid, testReadGID)
	}

	type who struct {
		name   string
		uid    uint32
		gid    uint32
		groups []uint32
	}
	var (
		outsider = who{"outsider", 61001, 61001, nil}
		reader   = who{"control_group member", 61002, 61002, []uint32{testReadGID}}
		primary  = who{"control_group as primary group", 61003, testReadGID, nil}
		admin    = who{"member of both groups", 61004, 61004, []uint32{testReadGID, testAdminGID}}
		root     = who{"root", 0, 0, nil}
	)
	check := func(w who, command, want string) {
		t.Helper()
		if got := runAs(t, client, dir, sock, command, w.uid, w.gid, w.groups); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %s = %q, want %q…", w.name, command, got, want)
		}
	}
	for _, c := range []struct {
		w               who
		show, terminate string
	}{
		{outsider, "ERR control: " + sock + ": permission denied", "ERR control: " + sock + ": permission denied"},
		{reader, "OK pid 42", "ERR terminate site: permission denied: terminate changes state"},
		{primary, "OK pid 42", "ERR terminate site: permission denied: terminate changes state"},
		{admin, "OK pid 42", "OK terminated site"},
		{root, "OK pid 42", "OK terminated site"},
	} {
		check(c.w, CommandSnapshot, c.show)
		check(c.w, CommandTerminate, c.terminate)
	}

	// The file's mode is one layer; the credentials are the other. Open
	// the socket to everyone and the daemon still refuses.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	check(outsider, CommandSnapshot, "ERR control: daemon: permission denied: uid 61001 is not root")
	check(outsider, CommandTerminate, "ERR terminate site: permission denied: uid 61001 is not root")
	check(reader, CommandTerminate, "ERR terminate site: permission denied: terminate changes state")
	check(admin, CommandTerminate, "OK terminated site")
}

// TestListenRefusesForeignDir: a socket directory another user owns, or
// one group or others may write, is refused: its owner could swap the
// socket for theirs.
func TestListenRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o1777)
	if _, err := Listen(filepath.Join(open, "x.sock"), Access{}, sample, quiet()); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable directory: %v", err)
	}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(dir, "foreign")
		os.Mkdir(foreign, 0o755)
		if err := os.Chown(foreign, 61001, 61001); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(filepath.Join(foreign, "x.sock"), Access{}, sample, quiet()); err == nil || !strings.Contains(err.Error(), "belongs to uid 61001") {
			t.Errorf("directory of another user: %v", err)
		}
	}
	// A fresh directory is made 0755 and the socket 0600 at once.
	s, err := Listen(filepath.Join(dir, "mine", "x.sock"), Access{}, sample, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, _ := os.Stat(filepath.Join(dir, "mine", "x.sock"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %04o, want 0600", fi.Mode().Perm())
	}
}
