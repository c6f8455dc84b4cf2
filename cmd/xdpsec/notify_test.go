package main

import (
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	xdaemon "github.com/xdpsec/xdpsec/internal/daemon"
)

// TestHangupNotifies: under systemd (NOTIFY_SOCKET set) a reload (SIGHUP
// or `xdpsec reload`: the daemon calls these hooks around both) is
// framed by RELOADING=1 (with MONOTONIC_USEC) and READY=1, so `systemctl
// reload` waits for it and the unit never looks stuck; a file that does
// not load still ends with READY=1.
func TestHangupNotifies(t *testing.T) {
	dir := t.TempDir()
	sockPath := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sockPath)
	var level slog.LevelVar
	log := newLogger(&syncBuffer{}, "text", &level)
	read := func() string {
		t.Helper()
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	hooks := reloadHooks(log)
	for _, fail := range []error{nil, errors.New("gw.yaml:7: log_level: bad")} {
		hooks.Begin()
		var res *xdaemon.ReloadResult
		if fail == nil {
			res = &xdaemon.ReloadResult{Reload: &config.Reload{}}
		}
		hooks.End(res, fail)
		if got := read(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
			t.Errorf("first notification %q, want RELOADING=1 with MONOTONIC_USEC", got)
		}
		if got := read(); !strings.HasPrefix(got, "READY=1") {
			t.Errorf("second notification %q, want READY=1", got)
		}
	}
}
