package main

import (
	"encoding/json"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/bench/gen"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// TestCommandRun drives the whole command, as a lab script would: run
// mode across two namespaces, MACs and the destination found by itself
// (the neighbour entry is resolved by ARP while nothing else runs), JSON
// out, and no loss at a modest rate.
func TestCommandRun(t *testing.T) {
	testlab.RequireXDPLab(t)
	tag := testlab.Tag()
	a := &testlab.End{NS: testlab.NewNetns(t, "xc"+tag+"a", testlab.NoIPv6), Name: "xc" + tag + "a0",
		Addr: netip.MustParsePrefix("198.18.0.1/24")}
	b := &testlab.End{NS: testlab.NewNetns(t, "xc"+tag+"b", testlab.NoIPv6), Name: "xc" + tag + "b0",
		Addr: netip.MustParsePrefix("198.18.0.2/24")}
	testlab.Veth(t, a, b, testlab.TxOff)
	nsA, nsB, ifA, ifB := a.NS.Name, b.NS.Name, a.Name, b.Name
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
