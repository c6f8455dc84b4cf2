package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

const hupConfig = `interfaces: {lan: lan0, wan: wan0}
sas:
  - {name: ab, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16,
     key: 0x000102030405060708090a0b0c0d0e0f10111213}
policies:
  - {name: p, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: ab}
`

// TestHangup: SIGHUP re-reads log_level, says the rest needs a restart,
// and a file that does not load changes nothing; the process lives on.
func TestHangup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gw.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(hupConfig + "log_level: debug\n")
	var level slog.LevelVar
	var buf syncBuffer
	log := newLogger(&buf, "text", &level)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	stopped := make(chan struct{})
	go func() { hangups(ctx, hup, file, &level, log); close(stopped) }()
	hup <- syscall.SIGHUP
	waitFor(t, &buf, "not implemented in this version")
	if level.Level() != slog.LevelDebug {
		t.Errorf("level %v after SIGHUP, want debug", level.Level())
	}
	write(hupConfig + "log_level: loud\n")
	hup <- syscall.SIGHUP
	waitFor(t, &buf, "configuration not re-read")
	if !strings.Contains(buf.String(), "gw.yaml:7: log_level") || level.Level() != slog.LevelDebug {
		t.Errorf("a bad file: level %v, log\n%s", level.Level(), buf.String())
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
