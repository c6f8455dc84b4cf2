package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/doctor"
)

// doctorChecks runs `xdpsec doctor -o json` in node and returns the checks
// by name and whether it exited with a failure.
func (l *lab) doctorChecks(t *testing.T, node, cfg string) (map[string]doctor.Check, bool) {
	t.Helper()
	out, err := l.cmd(t.Context(), node, xdpsecBin, "doctor", "-c", cfg, "-o", "json").Output()
	var cs []doctor.Check
	if jerr := json.Unmarshal(out, &cs); jerr != nil {
		t.Fatalf("xdpsec doctor: %v, %v\n%s", err, jerr, out)
	}
	m := map[string]doctor.Check{}
	for _, c := range cs {
		m[c.Name] = c
		t.Logf("%-5s %-16s %s  %s", c.Status, c.Name, c.Detail, c.Fix)
	}
	return m, err != nil
}

// TestDoctor: on a lab gateway doctor's checks pass, and each deliberately
// broken setup (pin_path off bpffs, a queue count the NIC does not have,
// GRO on, a LAN MTU that cannot take ESP) is reported with its fix; doctor
// changes nothing.
func TestDoctor(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, _, _ := l.configs(t, tunnelOpts{})
	for _, cmd := range [][]string{{"ethtool", "-K", "lan0", "gro", "off"}, {"ethtool", "-K", "wan0", "gro", "off"}, {"ip", "link", "set", "lan0", "mtu", "1395"}} {
		if out, err := l.run("gA", 5*time.Second, cmd...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	want := func(m map[string]doctor.Check, name string, s doctor.Status, fix string) {
		t.Helper()
		c, ok := m[name]
		if !ok {
			t.Errorf("no check %q", name)
			return
		}
		if c.Status != s || !strings.Contains(c.Fix, fix) {
			t.Errorf("%s: %s (fix %q); want %s with a fix saying %q", name, c.Status, c.Fix, s, fix)
		}
	}
	m, failed := l.doctorChecks(t, "gA", a)
	if failed {
		t.Error("doctor failed on a good setup")
	}
	for _, name := range []string{"bpffs", "driver wan0", "driver lan0", "queues wan0", "queues lan0", "offloads lan0", "offloads wan0", "mtu", "leak v4", "leak v6", "kernel", "irq wan0", "af_xdp", "vlan wan0", "vlan lan0", "frame wan0", "frame lan0", "rss wan0"} {
		want(m, name, doctor.OK, "")
	}
	// The lab shares the host's clock: synchronised or not, the check is made.
	if c, ok := m["time"]; !ok || c.Status == doctor.Fail || c.Status == doctor.Warn && !strings.Contains(c.Fix, "set-ntp") {
		t.Errorf("time: %+v", c)
	}

	// Broken: GRO on, the LAN MTU at the WAN's (1600), two queues on one-queue
	// veths, pin_path on a directory that is not bpffs, wan_vlan with
	// receive VLAN offload on, and the lab's
	// unreachable route to site B replaced by one via gwB, which the
	// kernel would use in clear once the (detaching) daemon stops.
	for _, cmd := range [][]string{{"ethtool", "-K", "lan0", "gro", "on"}, {"ip", "link", "set", "lan0", "mtu", "1600"},
		{"ip", "route", "replace", "198.18.2.0/24", "via", "192.0.2.2", "dev", "wan0"}, {"ethtool", "-K", "wan0", "rxvlan", "on"}} {
		if out, err := l.run("gA", 5*time.Second, cmd...); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	rewriteConfig(t, a, "queues: 1,", "queues: 2, wan_vlan: 100,")
	rewriteConfig(t, a, "cpus: [", "cpus: [0, ")
	rewriteConfig(t, a, "pin_path: "+l.pinPath("gA"), "pin_path: "+l.dir+"/pins")
	m, failed = l.doctorChecks(t, "gA", a)
	if !failed {
		t.Error("doctor exited 0 with failing checks")
	}
	want(m, "bpffs", doctor.Fail, "mount -t bpf")
	want(m, "queues wan0", doctor.Fail, "ethtool -L wan0 combined 2")
	want(m, "offloads lan0", doctor.Warn, "ethtool -K lan0 gro off")
	want(m, "mtu", doctor.Warn, "ip link set lan0 mtu 1495")
	want(m, "leak v4", doctor.Warn, "ip daddr 198.18.2.0/24 drop")
	want(m, "leak v6", doctor.OK, "")
	want(m, "vlan wan0", doctor.Warn, "ethtool -K wan0 rxvlan off")
	want(m, "vlan lan0", doctor.OK, "")
	if att := l.xdpAttached(t, "gA"); len(att) > 0 {
		t.Errorf("doctor attached XDP on %v", att)
	}
	if out, _ := l.run("gA", 5*time.Second, "ethtool", "-l", "wan0"); strings.Contains(strings.SplitN(out, "Current", 2)[1], "RX:\t\t2") {
		t.Error("doctor changed wan0's channels")
	}
}
