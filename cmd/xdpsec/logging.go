package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/coreos/go-systemd/v22/daemon"

	xdaemon "github.com/xdpsec/xdpsec/internal/daemon"
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

// reloader is what a SIGHUP asks: the daemon's live reload.
type reloader interface {
	Reload(ctx context.Context, path string) (*xdaemon.ReloadResult, error)
}

// hangups serves SIGHUP until ctx is done: each one reloads the
// configuration file the daemon runs, as `xdpsec reload` does (Go's
// default for SIGHUP would end the process and every tunnel with it).
func hangups(ctx context.Context, sig <-chan os.Signal, d reloader, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			hangup(d, log)
		}
	}
}

// hangup is one SIGHUP: the daemon logs what changed; a file that does
// not load or needs a restart changes nothing and is logged here. The
// daemon's reload hooks (reloadHooks) tell systemd.
func hangup(d reloader, log *slog.Logger) {
	if _, err := d.Reload(context.Background(), ""); err != nil {
		log.Error("SIGHUP: reload failed", "err", err)
	}
}

// reloadHooks frame every reload, by SIGHUP or `xdpsec reload`, for
// systemd: the unit shows "reloading" from RELOADING=1 until READY=1,
// whose STATUS says how the reload went.
func reloadHooks(log *slog.Logger) xdaemon.ReloadHooks {
	return xdaemon.ReloadHooks{
		Begin: func() { notifyReloading(log) },
		End: func(res *xdaemon.ReloadResult, err error) {
			if err != nil {
				notify(log, daemon.SdNotifyReady, "STATUS=running; last reload failed: "+err.Error())
				return
			}
			notify(log, daemon.SdNotifyReady, "STATUS=running; reloaded: "+res.Reload.String())
		},
	}
}
