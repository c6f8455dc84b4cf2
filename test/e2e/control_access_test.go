package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control/controltest"
)

// TestControlSocketAccess (issue 13): a gateway with control_group and
// control_admin_group set, driven with the real `xdpsec` CLI run under
// throwaway uids and gids (syscall.Credential; no account is created). A
// user outside both groups cannot use the socket at all; a control_group
// member can `show ike` but not `terminate`, and the tunnel stays up; a
// member of both groups can terminate it.
func TestControlSocketAccess(t *testing.T) {
	needLab(t)
	const readGID, adminGID = 61010, 61011
	l := newLab(t, "")
	a, b := l.ikeConfigs(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "start")
	f, err := os.OpenFile(a, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("control_group: 61010\ncontrol_admin_group: 61011\n")
	f.Close()
	l.start(t, "gB", b)
	l.start(t, "gA", a)
	sockA := l.sockPath("gA")
	waitIKE(t, sockA, 1, 10*time.Second)

	// The other users need a copy of the binary they can reach.
	dir := controltest.Open(t)
	cli := controltest.Copy(t, xdpsecBin, dir)
	as := func(uid, gid uint32, groups []uint32, args ...string) (string, error) {
		out, err := controltest.As(exec.Command(cli, append(args, "--socket", sockA)...), dir, uid, gid, groups).CombinedOutput()
		return string(out), err
	}

	// Outside both groups: refused.
	for _, args := range [][]string{{"show", "ike"}, {"terminate", "site"}} {
		if out, err := as(61001, 61001, nil, args...); err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("outsider: xdpsec %v: %v\n%s", args, err, out)
		}
	}
	// control_group: show, but no terminate.
	if out, err := as(61002, 61002, []uint32{readGID}, "show", "ike"); err != nil || !strings.Contains(out, "site: ESTABLISHED") {
		t.Errorf("control_group member: xdpsec show ike: %v\n%s", err, out)
	}
	if out, err := as(61002, 61002, []uint32{readGID}, "terminate", "site"); err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("control_group member: xdpsec terminate site: %v\n%s", err, out)
	}
	if sas := showIKE(t, sockA); len(sas) != 1 {
		t.Fatalf("after a refused terminate gA shows %d IKE SAs, want 1", len(sas))
	}
	// Both groups: terminate works.
	if out, err := as(61003, 61003, []uint32{readGID, adminGID}, "terminate", "site"); err != nil {
		t.Errorf("control_admin_group member: xdpsec terminate site: %v\n%s", err, out)
	}
	if sas := showIKE(t, sockA); len(sas) != 0 {
		t.Errorf("after the admin's terminate gA still shows %+v", sas)
	}
}
