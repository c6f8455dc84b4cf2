package e2e

import (
	"bufio"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// snapshot queries the daemon at sock.
func snapshot(t *testing.T, sock string) *control.Snapshot {
	t.Helper()
	s, err := control.Query(sock)
	if err != nil {
		t.Fatalf("query %s: %v", sock, err)
	}
	return s
}

var icmpSeqRE = regexp.MustCompile(`icmp_seq=(\d+)`)

// firstReply pings dst from node every interval, count times, and returns
// the sequence number (from 1) of the first echo answered, or 0.
func (l *lab) firstReply(t *testing.T, node, dst string, count int, interval time.Duration) (first, answered int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*interval+10*time.Second)
	defer cancel()
	cmd := l.cmd(ctx, node, "ping", "-n", "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64),
		"-c", strconv.Itoa(count), "-W", "2", dst)
	out, _ := cmd.CombinedOutput()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := icmpSeqRE.FindStringSubmatch(sc.Text())
		if m == nil || !strings.Contains(sc.Text(), "bytes from") {
			continue
		}
		answered++
		if n, _ := strconv.Atoi(m[1]); first == 0 || n < first {
			first = n
		}
	}
	return first, answered
}

// trapUp pings from hostA until the trap brings the tunnel up and
// returns the time from the first packet to the first answer; it checks
// that gwA's acquires initiated exactly once more than before.
func (l *lab) trapUp(t *testing.T, sockA, sockB string, what string) time.Duration {
	t.Helper()
	before := snapshot(t, sockA).Acquires["initiated"]
	const interval, count = 10 * time.Millisecond, 150
	first, answered := l.firstReply(t, "hA", hostB4, count, interval)
	if first == 0 {
		t.Fatalf("%s: no echo answered in %d pings through the trap\n%s", what, count, l.diagnose())
	}
	up := time.Duration(first-1) * interval
	t.Logf("%s: first packet to tunnel up: %v (echo %d of %d the first answered; %d answered)", what, up, first, count, answered)
	if first == 1 {
		t.Errorf("%s: the very first echo was answered: the tunnel was up before the trap fired", what)
	}
	if answered < count-first-10 {
		t.Errorf("%s: only %d of the %d echoes after the tunnel came up were answered", what, answered, count-first+1)
	}
	waitIKE(t, sockA, 1, 5*time.Second)
	waitIKE(t, sockB, 1, 5*time.Second)
	if got := snapshot(t, sockA).Acquires["initiated"]; got != before+1 {
		t.Errorf("%s: acquires initiated %d times, want once (coalesced otherwise)", what, got-before)
	}
	return up
}

// TestIKETrap runs two xdpsec gateways; gwA's connection is start_action
// trap. Nothing is negotiated until hostA sends: the first packets are
// dropped at gwA (counted as no_sa), one acquire starts IKE, and the
// tunnel carries the rest. After the Child SAs are deleted (terminate on
// either side) the trap stays and the next packets bring the tunnel back;
// so do they after gwA's daemon was killed and restarted.
// The WAN capture holds no plaintext throughout, and every ESP frame
// decrypts with xdpsec's key log.
func TestIKETrap(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b := l.ikeConfigs(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "trap")
	capAll := l.capture(t, "wan", "a0", 0)
	gB := l.start(t, "gB", b)
	gA := l.start(t, "gA", a)
	sockA, sockB := l.sockPath("gA"), l.sockPath("gB")
	time.Sleep(500 * time.Millisecond)
	if sas := showIKE(t, sockA); len(sas) != 0 {
		t.Fatalf("a trap connection negotiated with no traffic: %+v", sas)
	}
	traps := 0
	for _, p := range snapshot(t, sockA).Policies {
		if p.Trap {
			traps++
		}
	}
	if traps != 2 {
		t.Errorf("gwA shows %d trap policies, want 2 (IPv4 and IPv6)", traps)
	}
	noSA := gA.showStats(t).workerDrop("no_sa")

	d := l.trapUp(t, sockA, sockB, "first traffic")
	if got := gA.showStats(t).workerDrop("no_sa"); got == noSA {
		t.Error("gwA dropped no packet for want of an SA before the tunnel came up")
	}
	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hB", hostA4}, {"hA", hostB6}})

	// Deleted by gwA: the trap stays, traffic brings the tunnel back.
	ikeAction(t, sockA, "terminate", "site")
	waitIKE(t, sockA, 0, 5*time.Second)
	waitIKE(t, sockB, 0, 5*time.Second)
	d2 := l.trapUp(t, sockA, sockB, "after terminate on gwA")

	// Deleted by the peer: the same.
	ikeAction(t, sockB, "terminate", "site")
	waitIKE(t, sockA, 0, 5*time.Second)
	waitIKE(t, sockB, 0, 5*time.Second)
	d3 := l.trapUp(t, sockA, sockB, "after terminate on gwB")

	acq := snapshot(t, sockA).Acquires
	t.Logf("gwA acquires: %v", acq)
	if acq["failed"] != 0 || acq["unknown_policy"] != 0 || acq["initiated"] != 3 {
		t.Errorf("acquire counters %v, want 3 initiations and no failures", acq)
	}

	// gwA killed and restarted: the traps are back, the next packets
	// negotiate (with INITIAL_CONTACT, so gwB drops its stale IKE SA).
	gA.stop(t, syscall.SIGKILL)
	gA = l.start(t, "gA", a)
	if sas := showIKE(t, sockA); len(sas) != 0 {
		t.Fatalf("the restarted trap connection negotiated with no traffic: %+v", sas)
	}
	d4 := l.trapUp(t, sockA, sockB, "after gwA restarted")
	pcap := capAll.stop()
	ikeNoLeak(t, pcap)
	if good := decryptWithKeyLog(t, pcap, keyLogUAT(t, filepath.Join(l.dir, "keylog-a"))); good < 100 {
		t.Errorf("only %d ESP frames verified", good)
	}
	t.Logf("trap to tunnel up: %v, %v, %v, %v", d, d2, d3, d4)
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}
