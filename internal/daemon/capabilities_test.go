package daemon

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/config"
)

func capSet(bits ...int) uint64 {
	var s uint64
	for _, b := range bits {
		s |= 1 << uint(b)
	}
	return s
}

// TestMissingCapabilities: the unit's set is enough; each capability
// dropped in turn is named with what needs it; root's CAP_SYS_ADMIN and
// configurations that need no low port or no locked memory ask for less.
func TestMissingCapabilities(t *testing.T) {
	static := &config.Config{Metrics: "127.0.0.1:9301"}
	ike := &config.Config{NATTPort: 4500, Metrics: "127.0.0.1:9301"}
	ike.IKE.Connections = make([]config.Connection, 1)
	lowMetrics := &config.Config{Metrics: "[::1]:443"}
	all := capSet(unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_IPC_LOCK, unix.CAP_NET_BIND_SERVICE)
	env := func(set uint64) capEnv { return capEnv{effective: set, unprivPortStart: 1024} }
	for _, tc := range []struct {
		name string
		cfg  *config.Config
		env  capEnv
		want []string // substrings, in order; nil: nothing missing
	}{
		{"unit's set, ike", ike, env(all), nil},
		{"root", ike, env(capSet(unix.CAP_SYS_ADMIN)), nil},
		{"no net_admin", ike, env(all &^ capSet(unix.CAP_NET_ADMIN)), []string{"CAP_NET_ADMIN (attaching the XDP programs"}},
		{"no net_raw", ike, env(all &^ capSet(unix.CAP_NET_RAW)), []string{"CAP_NET_RAW (opening the AF_XDP sockets"}},
		{"no bpf", ike, env(all &^ capSet(unix.CAP_BPF)), []string{"CAP_BPF (loading the XDP program"}},
		{"no perfmon", ike, env(all &^ capSet(unix.CAP_PERFMON)), []string{"CAP_PERFMON (loading the XDP program: the verifier"}},
		{"no ipc_lock", ike, env(all &^ capSet(unix.CAP_IPC_LOCK)), []string{"CAP_IPC_LOCK (locking"}},
		{"no ipc_lock, memlock unlimited", ike, capEnv{effective: all &^ capSet(unix.CAP_IPC_LOCK), memlockUnlimited: true, unprivPortStart: 1024}, nil},
		{"no bind, ike", ike, env(all &^ capSet(unix.CAP_NET_BIND_SERVICE)), []string{"CAP_NET_BIND_SERVICE (binding IKE port 500)"}},
		{"no bind, ike, ports opened by sysctl", ike, capEnv{effective: all &^ capSet(unix.CAP_NET_BIND_SERVICE), unprivPortStart: 0}, nil},
		{"no bind, static SAs", static, env(all &^ capSet(unix.CAP_NET_BIND_SERVICE)), nil},
		{"no bind, metrics on 443", lowMetrics, env(all &^ capSet(unix.CAP_NET_BIND_SERVICE)), []string{"CAP_NET_BIND_SERVICE (binding metrics port 443)"}},
		{"none", ike, env(0), []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_PERFMON", "CAP_IPC_LOCK", "CAP_NET_BIND_SERVICE (binding IKE port 500)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(missingCapabilities(tc.cfg, tc.env), ", ")
			if tc.want == nil {
				if got != "" {
					t.Fatalf("missing %q, want nothing", got)
				}
				return
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("missing %q, want it to name %q (in order %q)", got, w, tc.want)
				}
				rest = rest[i+len(w):]
			}
			if n := strings.Count(got, "CAP_"); n != len(tc.want) {
				t.Errorf("missing %q: %d capabilities, want %d", got, n, len(tc.want))
			}
		})
	}
}
