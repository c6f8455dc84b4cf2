// Package bench holds the lab's tools (gen, cmd/xdpgen, dpdk/) and, in
// this test, runs the unit tests of the lab's report (scripts/benchlab:
// the table and the CPU accounting from fixture /proc files) under go
// test, so that `make test` runs them.
package bench

import (
	"os/exec"
	"testing"
)

func TestLabReport(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: scripts/benchlab's tests need it")
	}
	cmd := exec.Command(py, "-m", "unittest", "-v", "test_report")
	cmd.Dir = "../scripts/benchlab"
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("scripts/benchlab tests: %v", err)
	}
}
