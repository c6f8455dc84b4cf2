package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/config"
)

// The start-up failures a newcomer meets, each with what to do about it.
// A hint is added where the error is made, so the one log line that ends
// the daemon says what is wrong and what to do. (The bpf file system's
// absence under `ip netns exec` is explained by package bpf itself.)

// hinted returns err followed by "; " and the hint, or err alone when
// there is no hint.
func hinted(err error, hint string) error {
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w; %s", err, hint)
}

// interfaceHint: the configured interface is not in the daemon's network
// namespace.
func interfaceHint(err error) string {
	var op *net.OpError
	if !errors.As(err, &op) || op.Err == nil || !strings.Contains(op.Err.Error(), "no such network interface") {
		return ""
	}
	return "there is no such interface in this network namespace (`ip link` lists the ones here): " +
		"fix interfaces: in the configuration, or start the daemon in the namespace that has it (nsenter --net=/run/netns/NAME xdpsec run ...)"
}

// listenHint: another process holds the address the metrics endpoint
// (what "metrics") or IKE (what "ike") listens on.
func listenHint(what string, err error) string {
	if !errors.Is(err, unix.EADDRINUSE) {
		return ""
	}
	var op *net.OpError
	port := ""
	if errors.As(err, &op) && op.Addr != nil {
		if _, p, e := net.SplitHostPort(op.Addr.String()); e == nil {
			port = p
		}
	}
	switch what {
	case "metrics":
		return fmt.Sprintf("another process listens on that address (`ss -ltnp 'sport = :%s'` names it): stop it, or set metrics: to a free host:port", port)
	case "ike":
		return fmt.Sprintf("another process holds UDP port %s (`ss -lunp 'sport = :%s'` names it); usually another IKE daemon such as strongSwan's charon: "+
			"stop it (systemctl stop strongswan strongswan-starter) before starting xdpsec", port, port)
	}
	return ""
}

// attachHint: another XDP program is attached to the interface.
func attachHint(ifname string, err error) string {
	if !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EEXIST) {
		return ""
	}
	return fmt.Sprintf("another XDP program is attached to %[1]s (`ip link show dev %[1]s`): if nothing needs it, remove it (ip link set dev %[1]s xdp off); "+
		"if an xdpsec with another configuration left it, `xdpsec run --cleanup -c THAT_FILE`", ifname)
}

// privilegeHint: not root, and the kernel said no.
func privilegeHint(err error, euid int) string {
	if euid == 0 || !errors.Is(err, fs.ErrPermission) {
		return ""
	}
	return "xdpsec run needs root: it loads and pins XDP programs, opens AF_XDP sockets and binds IKE's ports (run it with sudo, or as root); " +
		"a non-root daemon (the packaged unit's user xdpsec) also needs to own pin_path's directory, state_dir and the control socket's directory"
}

// controlHint: the control socket cannot be made where the configuration
// puts it.
func controlHint(err error) string {
	var pe *fs.PathError
	var op *net.OpError
	if !errors.As(err, &pe) && !(errors.As(err, &op) && op.Net == "unix") {
		return ""
	}
	return "the control socket cannot be created there: set control: to a path in a writable directory (the default is " + config.DefaultControl + ")"
}

// startHint is Start's catch-all for failures that may come from any step.
func startHint(err error) error {
	if err == nil || strings.Contains(err.Error(), "needs root") {
		return err
	}
	return hinted(err, privilegeHint(err, os.Geteuid()))
}
