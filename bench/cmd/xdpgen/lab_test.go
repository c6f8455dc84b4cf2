package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/bench/gen"
)

func sh(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCommandRun drives the whole command, as a lab script would: run
// mode across two namespaces, MACs and the destination found by itself
// (the neighbour entry is resolved by ARP while nothing else runs), JSON
// out, and no loss at a modest rate.
func TestCommandRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for network namespaces, veth pairs, XDP programs and AF_XDP sockets")
	}
	for _, tool := range []string{"ip", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: needs %s: %v", tool, err)
		}
	}
	tag := fmt.Sprint(os.Getpid() % 100000)
	nsA, nsB, ifA, ifB := "xc"+tag+"a", "xc"+tag+"b", "xc"+tag+"a0", "xc"+tag+"b0"
	for _, ns := range []string{nsA, nsB} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	sh(t, "ip", "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	for _, s := range [][3]string{{nsA, ifA, "198.18.0.1/24"}, {nsB, ifB, "198.18.0.2/24"}} {
		sh(t, "ip", "-n", s[0], "addr", "add", s[2], "dev", s[1])
		sh(t, "ip", "-n", s[0], "link", "set", s[1], "up")
		sh(t, "ip", "netns", "exec", s[0], "ethtool", "-K", s[1], "tx", "off")
	}
	var out strings.Builder
	args := []string{"run", "--tx-if", ifA, "--rx-if", ifB, "--tx-netns", nsA, "--rx-netns", nsB,
		"--count", "10000", "--rate", "50k", "--flows", "10", "--size", "imix", "--verify", "--idle", "300ms",
		"--progress=false", "-o", "json"}
	var errb strings.Builder
	if rc := run(args, &out, io.MultiWriter(&errb)); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	var sum gen.Summary
	if err := json.Unmarshal([]byte(out.String()), &sum); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if sum.Tx == nil || sum.Rx == nil || sum.Missing == nil {
		t.Fatalf("incomplete summary: %s", out.String())
	}
	t.Logf("tx %s, rx %s", gen.PPS(sum.Tx.PPS), gen.PPS(sum.Rx.PPS))
	if sum.Tx.Packets != 10000 || sum.Rx.Tagged != 10000 || sum.Rx.Lost != 0 || sum.Rx.BadChecksum != 0 ||
		sum.Rx.Flows != 10 || *sum.Missing != 0 {
		t.Fatalf("%s", out.String())
	}
}
