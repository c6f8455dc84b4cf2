package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/config"
)

// The capabilities `xdpsec run` needs, found by starting the lab gateway
// as a non-root user with each one dropped in turn (kernel 6.18; README,
// "Running as a service"). Root has them all; the packaged systemd unit
// grants exactly these. The check runs before anything is touched, so a
// missing one is named with what needs it instead of surfacing later as
// a bare EPERM (or, for CAP_IPC_LOCK, ENOBUFS).

// capNeed is one capability and why the daemon needs it.
type capNeed struct {
	bit  int
	name string
	why  string
}

var (
	capNetAdmin = capNeed{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN",
		"attaching the XDP programs and creating their AF_XDP socket map"}
	capNetRaw = capNeed{unix.CAP_NET_RAW, "CAP_NET_RAW",
		"opening the AF_XDP sockets and the raw ICMP socket for path MTU reports"}
	capBPF = capNeed{unix.CAP_BPF, "CAP_BPF",
		"loading the XDP program and creating its maps"}
	capPerfmon = capNeed{unix.CAP_PERFMON, "CAP_PERFMON",
		"loading the XDP program: the verifier allows its pointer arithmetic only with it"}
	capIPCLock = capNeed{unix.CAP_IPC_LOCK, "CAP_IPC_LOCK",
		"locking the AF_XDP sockets' packet memory (UMEM) beyond RLIMIT_MEMLOCK; LimitMEMLOCK=infinity also does"}
	capNetBindService = capNeed{unix.CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE",
		"binding a port below net.ipv4.ip_unprivileged_port_start"}
)

// ServiceCapabilities are the capabilities the packaged unit grants, in
// its order: everything `xdpsec run` may need.
func ServiceCapabilities() []string {
	var names []string
	for _, c := range []capNeed{capNetAdmin, capNetRaw, capBPF, capPerfmon, capIPCLock, capNetBindService} {
		names = append(names, c.name)
	}
	return names
}

// capEnv is what decides the check besides the configuration.
type capEnv struct {
	effective        uint64 // the effective set, bit n = capability n
	memlockUnlimited bool   // RLIMIT_MEMLOCK is infinite: no CAP_IPC_LOCK needed
	unprivPortStart  int    // net.ipv4.ip_unprivileged_port_start
}

func has(set uint64, bit int) bool { return set&(1<<uint(bit)) != 0 }

// missingCapabilities lists what cfg needs that env lacks, each with the
// reason ("CAP_BPF (loading the XDP program ...)").
func missingCapabilities(cfg *config.Config, env capEnv) []string {
	// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (and is all
	// there is on kernels before 5.8): whoever has it is not checked.
	if has(env.effective, unix.CAP_SYS_ADMIN) {
		return nil
	}
	need := []capNeed{capNetAdmin, capNetRaw, capBPF, capPerfmon}
	if !env.memlockUnlimited {
		need = append(need, capIPCLock)
	}
	var ports []string
	low := func(what string, port int) {
		if port > 0 && port < env.unprivPortStart {
			ports = append(ports, fmt.Sprintf("%s port %d", what, port))
		}
	}
	if len(cfg.IKE.Connections) > 0 {
		low("IKE", 500)
		low("IKE NAT-T", int(cfg.NATTPort))
	}
	if cfg.Metrics != "" {
		if _, p, err := net.SplitHostPort(cfg.Metrics); err == nil {
			n, _ := strconv.Atoi(p)
			low("metrics", n)
		}
	}
	var miss []string
	for _, c := range need {
		if !has(env.effective, c.bit) {
			miss = append(miss, fmt.Sprintf("%s (%s)", c.name, c.why))
		}
	}
	if len(ports) > 0 && !has(env.effective, capNetBindService.bit) {
		miss = append(miss, fmt.Sprintf("%s (binding %s)", capNetBindService.name, strings.Join(ports, ", ")))
	}
	return miss
}

// checkCapabilities fails when the process lacks a capability the
// configuration needs, naming each one and what it is for.
func checkCapabilities(cfg *config.Config) error {
	env, err := currentCapEnv()
	if err != nil {
		return nil // cannot tell: let the operations themselves say
	}
	miss := missingCapabilities(cfg, env)
	if len(miss) == 0 {
		return nil
	}
	return fmt.Errorf("xdpsec run needs %s: run it as root, or grant them (the packaged systemd unit's AmbientCapabilities=%s; setpriv --ambient-caps)",
		strings.Join(miss, ", "), strings.Join(ServiceCapabilities(), " "))
}

func currentCapEnv() (capEnv, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return capEnv{}, fmt.Errorf("capget: %w", err)
	}
	env := capEnv{effective: uint64(data[0].Effective) | uint64(data[1].Effective)<<32, unprivPortStart: 1024}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl) == nil && rl.Cur == unix.RLIM_INFINITY {
		env.memlockUnlimited = true
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			env.unprivPortStart = n
		}
	}
	return env, nil
}
