// Package controltest helps tests run control-socket clients as other
// users: a directory any user can enter, holding a copy of a binary any
// user can run, and commands under throwaway credentials (a uid and gids
// no account has; the kernel takes any number, so nothing is created).
// Running a command as another user needs root.
package controltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Open returns a fresh directory that every user may enter (TempDir's are
// 0700), removed when the test ends.
func Open(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "xdpsec-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Copy puts a copy of the executable exe, runnable by every user, in dir
// and returns its path.
func Copy(t testing.TB, exe, dir string) string {
	t.Helper()
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(exe))
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// As makes cmd run as uid and gid with the supplementary groups given,
// in dir.
func As(cmd *exec.Cmd, dir string, uid, gid uint32, groups []uint32) *exec.Cmd {
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	return cmd
}
