package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// The systemd readiness protocol (sd_notify(3)) for the packaged unit's
// Type=notify: READY=1 once the gateway is up (XDP attached, sockets
// open, IKE listening), RELOADING=1 ... READY=1 around a SIGHUP, STOPPING=1
// when a stop begins. go-systemd's daemon package does the one datagram
// to $NOTIFY_SOCKET, abstract socket names included, in pure Go; it is
// the implementation etcd, Kubernetes and podman use, so we do not keep
// our own. Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op.

// notify sends the states to systemd; a failure only logs, since the
// gateway works the same whether systemd heard or not.
func notify(log *slog.Logger, states ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		log.Warn("sd_notify", "state", strings.Join(states, " "), "err", err)
	}
}

// notifyReloading is RELOADING=1 with the CLOCK_MONOTONIC time systemd
// 253's Type=notify-reload asks for (older systemd ignores it).
func notifyReloading(log *slog.Logger) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	notify(log, daemon.SdNotifyReloading, fmt.Sprintf("MONOTONIC_USEC=%d", ts.Nano()/1000))
}
