package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/xdpsec/xdpsec/internal/config"
)

// newLogger writes to w in the configuration's log_format: logfmt
// ("text") or one JSON object per line ("json"), so a journal or a log
// shipper keeps the fields apart.
func newLogger(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseLevel reads log_level's words; the configuration has checked them.
func parseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// hangups serves SIGHUP until ctx is done. Go's default for SIGHUP ends
// the process, which would drop every tunnel; live reload does not exist
// yet, so a SIGHUP re-reads the file, applies only log_level and says
// that everything else needs a restart. A file that does not load
// changes nothing.
func hangups(ctx context.Context, sig <-chan os.Signal, file string, level *slog.LevelVar, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			hangup(file, level, log)
		}
	}
}

func hangup(file string, level *slog.LevelVar, log *slog.Logger) {
	// systemd shows the unit "reloading" until READY=1 again.
	notifyReloading(log)
	defer notify(log, daemon.SdNotifyReady, "STATUS=running")
	cfg, err := config.Load(file)
	if err != nil {
		log.Error("SIGHUP: configuration not re-read, nothing changed", "err", err)
		return
	}
	cfg.Wipe()
	level.Set(parseLevel(cfg.LogLevel))
	log.Warn("SIGHUP: log_level re-read; reloading anything else is not implemented in this version: restart to apply other changes",
		"config", file, "log_level", cfg.LogLevel)
}
