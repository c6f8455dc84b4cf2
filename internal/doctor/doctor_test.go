package doctor

import (
	"errors"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/nic"
	"golang.org/x/sys/unix"
)

// TestChecks: each check's outcome for a good and a broken input, and a
// fix command wherever the outcome is not ok.
func TestChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Check
		want Status
		fix  string // a substring of Fix
	}{
		{"bpffs ok", bpffsCheck("/sys/fs/bpf", true, true), OK, ""},
		{"bpffs missing, pinned", bpffsCheck("/tmp", true, false), Fail, "mount -t bpf"},
		{"bpffs missing, unpinned", bpffsCheck("/sys/fs/bpf", false, false), Warn, "mount -t bpf"},
		{"memlock unlimited", memlockCheck(unix.RLIM_INFINITY, false), OK, ""},
		{"memlock root", memlockCheck(64<<10, true), OK, ""},
		{"memlock user", memlockCheck(64<<10, false), Warn, "LimitMEMLOCK"},
		{"veth", driverCheck("wan0", "veth", nil), OK, ""},
		{"unknown driver", driverCheck("wan0", "r8169", nil), Warn, "native XDP"},
		{"no driver info", driverCheck("wan0", "", errors.New("x")), Warn, ""},
		{"queues auto", queueCheck("wan0", config.QueuesAuto, false, 8, nil), OK, ""},
		{"queues equal", queueCheck("wan0", 4, false, 4, nil), OK, ""},
		{"queues fewer", queueCheck("wan0", 1, false, 4, nil), Fail, "ethtool -L wan0 combined 1"},
		{"queues set_channels", queueCheck("wan0", 1, true, 4, nil), Warn, ""},
		{"offloads off", offloadCheck("lan0", false, false, nil), OK, ""},
		{"gro on", offloadCheck("lan0", true, false, nil), Warn, "ethtool -K lan0 gro off"},
		{"lro on", offloadCheck("lan0", false, true, nil), Warn, "lro off"},
		{"mtu fits", mtuCheck("lan0", "wan0", 1395, 1500, false), OK, ""},
		{"mtu too small", mtuCheck("lan0", "wan0", 1500, 1500, false), Warn, "ip link set lan0 mtu 1395"},
		{"mtu one-arm", mtuCheck("wan0", "wan0", 1500, 1500, true), OK, ""},
		{"rp_filter loose", rpFilterCheck("wan0", "2", "0"), OK, ""},
		{"rp_filter strict", rpFilterCheck("wan0", "0", "1"), Warn, "rp_filter=2"},
		{"forwarding off", forwardingCheck("0", false), OK, ""},
		{"forwarding, kept programs", forwardingCheck("1", true), OK, ""},
		{"forwarding, detach", forwardingCheck("1", false), Warn, "on_stop: keep"},
		{"no route", leakCheck("v4", "198.18.2.0/24", "", "1", false), OK, ""},
		{"route, forwarding off", leakCheck("v4", "198.18.2.0/24", "wan0", "0", false), OK, ""},
		{"route, kept programs", leakCheck("v4", "198.18.2.0/24", "wan0", "1", true), OK, ""},
		{"route leaks", leakCheck("v4", "198.18.2.0/24", "wan0", "1", false), Warn, "ip daddr 198.18.2.0/24 drop"},
		{"kernel 6.18", kernelVersionCheck("6.18.0-1-amd64"), OK, ""},
		{"kernel 5.4", kernelVersionCheck("5.4.0"), Warn, "5.10"},
		{"kernel 4.19", kernelVersionCheck("4.19.0"), Fail, "5.10"},
		{"kernel garbage", kernelVersionCheck("x"), Warn, ""},
		{"irq none", irqCheck("wan0", nil, false, []nic.QueueCPU{{IRQ: -1}}), OK, ""},
		{"irq auto", irqCheck("wan0", nil, true, []nic.QueueCPU{{IRQ: 5, CPUs: []int{3}}}), OK, ""},
		{"irq unpinned", irqCheck("wan0", nil, false, []nic.QueueCPU{{IRQ: 5, CPUs: []int{3}}}), Warn, "cpus: auto"},
		{"irq agrees", irqCheck("wan0", []int{3}, false, []nic.QueueCPU{{IRQ: 5, CPUs: []int{3}}}), OK, ""},
		{"irq disagrees", irqCheck("wan0", []int{0, 1}, false, []nic.QueueCPU{{IRQ: 5, CPUs: []int{0}}, {IRQ: 6, CPUs: []int{2}}}), Warn, "echo 1 > /proc/irq/6/smp_affinity_list"},
		{"frame 1500", frameCheck("wan0", 1500, 0), OK, ""},
		{"frame 1778", frameCheck("wan0", 1778, 0), OK, ""},
		{"frame 1778 tagged", frameCheck("wan0", 1778, 10), Fail, "ip link set wan0 mtu 1774"},
		{"frame jumbo", frameCheck("wan0", 9000, 0), Fail, "ip link set wan0 mtu 1778"},
		{"rss one queue", rssCheck("wan0", 1, 0, nil), OK, ""},
		{"rss unreported", rssCheck("wan0", 4, 0, unix.EOPNOTSUPP), OK, ""},
		{"rss with spi", rssCheck("wan0", 4, 0xf0, nil), OK, ""},
		{"rss without spi", rssCheck("wan0", 4, 0x30, nil), Warn, "ethtool -N wan0 rx-flow-hash esp4 sdfn"},
		{"af_xdp ok", afxdpCheck(nil, nil, nil), OK, ""},
		{"af_xdp no sockets", afxdpCheck(nil, nil, unix.EAFNOSUPPORT), Fail, "CONFIG_XDP_SOCKETS"},
		{"af_xdp not root", afxdpCheck(unix.EPERM, unix.EPERM, nil), Fail, "run as root"},
		{"time synced", timeCheck(0, 0, 16000), OK, ""},
		{"time error", timeCheck(timeError, 0, 16000000), Warn, "timedatectl set-ntp true"},
		{"time unsync", timeCheck(0, staUnsync, 0), Warn, "chronyd"},
		{"untagged", vlanCheck("wan0", 0, true, nil), OK, ""},
		{"vlan, offload off", vlanCheck("wan0", 100, false, nil), OK, ""},
		{"vlan stripped", vlanCheck("wan0", 100, true, nil), Warn, "ethtool -K wan0 rxvlan off"},
		{"vlan unreadable", vlanCheck("wan0", 100, false, errors.New("x")), Warn, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.c.Status != tc.want {
				t.Errorf("status %s, want %s: %+v", tc.c.Status, tc.want, tc.c)
			}
			if tc.want != OK && !strings.Contains(tc.c.Fix, tc.fix) {
				t.Errorf("fix %q does not say %q", tc.c.Fix, tc.fix)
			}
			if tc.c.Status != OK && tc.c.Status != Warn && tc.c.Status != Fail {
				t.Errorf("status %q", tc.c.Status)
			}
		})
	}
	if got := cpuCheck("x", false, false, false); got[0].Status != Warn || got[0].Fix == "" {
		t.Errorf("no AES-NI: %+v", got[0])
	}
	if !Failed([]Check{{Status: OK}, {Status: Fail}}) || Failed([]Check{{Status: Warn}}) {
		t.Error("Failed")
	}
}
