package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	xdaemon "github.com/xdpsec/xdpsec/internal/daemon"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		format string
		want   func(line string) bool
	}{
		{"text", func(l string) bool { return strings.Contains(l, `level=WARN msg="a b" sa=out n=3`) }},
		{"json", func(l string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(l), &m) == nil && m["level"] == "WARN" && m["msg"] == "a b" && m["sa"] == "out" && m["n"] == 3.0
		}},
	} {
		var buf bytes.Buffer
		log := newLogger(&buf, tc.format, slog.LevelWarn)
		log.Info("hidden")
		log.Warn("a b", "sa", "out", "n", 3)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 1 || !tc.want(lines[0]) {
			t.Errorf("%s: %q", tc.format, buf.String())
		}
	}
}

// fakeReloader stands for the daemon: it counts reloads and fails the
// ones err says.
type fakeReloader struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (f *fakeReloader) Reload(context.Context, string) (*xdaemon.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return &xdaemon.ReloadResult{Reload: &config.Reload{Unchanged: []string{"site"}}}, nil
}

func (f *fakeReloader) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// TestHangup: each SIGHUP is a live reload of the daemon (not only
// log_level, as before), a failed one is logged, and the process lives on.
func TestHangup(t *testing.T) {
	var level slog.LevelVar
	var buf syncBuffer
	log := newLogger(&buf, "text", &level)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	d := &fakeReloader{}
	go func() { hangups(ctx, hup, d, log); close(stopped) }()
	hup <- syscall.SIGHUP
	for deadline := time.Now().Add(5 * time.Second); d.count() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
	}
	d.mu.Lock()
	d.err = errors.New("gw.yaml:7: log_level: \"loud\" is not debug, info, warn or error")
	d.mu.Unlock()
	hup <- syscall.SIGHUP
	waitFor(t, &buf, "SIGHUP: reload failed")
	if !strings.Contains(buf.String(), "gw.yaml:7: log_level") || d.count() != 2 {
		t.Errorf("a bad file: %d reloads, log\n%s", d.count(), buf.String())
	}
	cancel()
	<-stopped
}

func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(b.String(), s); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, b.String())
		}
	}
}

// syncBuffer is a bytes.Buffer the handler goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
