package e2e

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pinger is a ping that runs in the background and records when each
// answer arrived (ping -D prints the time of each).
type pinger struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	sent   int
	got    []time.Time
}

var pingLineRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+)`)

// startPinger pings dst from node every interval until stop.
func (l *lab) startPinger(t *testing.T, node, dst string, interval time.Duration) *pinger {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pinger{cancel: cancel, done: make(chan struct{})}
	p.cmd = l.cmd(ctx, node, "ping", "-D", "-n", "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), "-W", "1", dst)
	p.cmd.Cancel = func() error { return p.cmd.Process.Signal(os.Interrupt) }
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := pingLineRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			frac := m[2] + strings.Repeat("0", 9)
			ns, _ := strconv.ParseInt(frac[:9], 10, 64)
			seq, _ := strconv.Atoi(m[3])
			p.mu.Lock()
			p.got = append(p.got, time.Unix(sec, ns))
			p.sent = max(p.sent, seq)
			p.mu.Unlock()
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *pinger) stop() {
	p.cancel()
	<-p.done
	p.cmd.Wait()
}

// replies returns the answers' arrival times so far.
func (p *pinger) replies() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.got...)
}

// firstAfter waits until an answer arrives after t0 and returns it.
func (p *pinger) firstAfter(t *testing.T, t0 time.Time, within time.Duration, what string) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, r := range p.replies() {
			if r.After(t0) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no echo answered within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastBefore is the last answer before t0.
func (p *pinger) lastBefore(t0 time.Time) time.Time {
	var last time.Time
	for _, r := range p.replies() {
		if r.Before(t0) {
			last = r
		}
	}
	return last
}

// restartCycle waits a second, stops a daemon, leaves it down for a
// second, starts it again and checks that the pinger's echoes come back
// within the limit; settled then checks both ends' SAs.
func restartCycle(t *testing.T, ping *pinger, what string, within time.Duration, stop, start, settled func()) {
	t.Helper()
	time.Sleep(time.Second)
	killed := time.Now()
	stop()
	time.Sleep(time.Second)
	restarted := time.Now()
	start()
	answering := time.Now()
	back := ping.firstAfter(t, restarted, within, what)
	settled()
	t.Logf("%s: tunnel back %v after the restart (daemon answering after %v); echoes lost for %v",
		what, back.Sub(restarted).Round(time.Millisecond), answering.Sub(restarted).Round(time.Millisecond),
		back.Sub(ping.lastBefore(killed)).Round(time.Millisecond))
}

// restartConfigs are the lab's IKE configurations for the restart test:
// gwA initiates at start, checks liveness every second and restarts the
// connection when gwB stops answering (dpd_action restart), with a short
// retransmission schedule so that takes about three seconds, and
// initiates again when gwB deletes the SAs (close_action start, as gwB
// does when it shuts down); gwB waits.
func (l *lab) restartConfigs(t *testing.T) (string, string) {
	t.Helper()
	a, b := l.ikeConfigs(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "start")
	y, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	s := string(y)
	for _, r := range [][2]string{
		{"dpd_delay: 10s", "dpd_delay: 1s"},
		{"dpd_action: clear", "dpd_action: restart\n    close_action: start"},
		{"connections:\n", "retransmit: {timeout: 250ms, base: 1.5, tries: 3}\nconnections:\n"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("gw-a.yaml lacks %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	if err := os.WriteFile(a, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestIKERestart: hostA pings hostB through an IKE tunnel every 20 ms
// while the gateways' daemons are killed and restarted, the WAN captured
// throughout. gwA (the initiator) killed with SIGKILL: its pinned XDP
// program keeps dropping; restarted, it initiates with INITIAL_CONTACT and
// gwB replaces its stale SAs. gwA stopped with SIGTERM: it deletes the SAs
// with gwB first, and comes back the same way. gwB (the responder) killed:
// gwA keeps sending on SAs gwB no longer has until its DPD finds gwB
// silent and restarts the connection. gwB stopped with SIGTERM: it
// deletes the SAs, and gwA's close action initiates until gwB answers. Each time the tunnel must carry the
// echoes again within a few seconds of the restart, each side must hold
// exactly one IKE SA, and not one plaintext packet may cross the WAN.
func TestIKERestart(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b := l.restartConfigs(t)
	capAll := l.capture(t, "wan", "a0", 0)
	gB := l.start(t, "gB", b)
	gA := l.start(t, "gA", a)
	sockA, sockB := l.sockPath("gA"), l.sockPath("gB")
	waitIKE(t, sockA, 1, 10*time.Second)
	waitIKE(t, sockB, 1, 5*time.Second)
	l.warmUp(t, "hA", hostB4)
	ping := l.startPinger(t, "hA", hostB4, 20*time.Millisecond)
	ping.firstAfter(t, time.Now(), 5*time.Second, "before the restarts")
	// While gwB's ESP comes back every 20 ms, gwA (DPD every second) has
	// no reason to check gwB's liveness (RFC 7296 §2.4): no INFORMATIONAL.
	capQuiet := l.capture(t, "wan", "a0", 0)
	time.Sleep(3500 * time.Millisecond)
	quiet := capQuiet.stop()
	if n := len(tshark(t, quiet, nil, "-Y", "isakmp.exchangetype == 37")); n != 0 {
		t.Errorf("%d INFORMATIONAL messages in 3.5 s of ESP both ways: DPD checks while the peer's ESP flows", n)
	}
	if n := len(tshark(t, quiet, nil, "-Y", "esp")); n < 100 {
		t.Errorf("only %d ESP frames in 3.5 s of pings", n)
	}

	// cycle stops node's daemon with sig, leaves it down for a second,
	// starts it again and reports how soon the echoes came back.
	cycle := func(g **gateway, node, cfg string, sig syscall.Signal, within time.Duration) {
		t.Helper()
		restartCycle(t, ping, node+" "+sig.String(), within,
			func() { (*g).stop(t, sig) },
			func() { *g = l.start(t, node, cfg) },
			func() {
				waitIKE(t, sockA, 1, 5*time.Second)
				waitIKE(t, sockB, 1, 5*time.Second)
			})
	}
	cycle(&gA, "gA", a, syscall.SIGKILL, 5*time.Second)
	cycle(&gA, "gA", a, syscall.SIGTERM, 5*time.Second)
	// gwA's DPD: 1 s of silence, then 250 ms × 1.5^n over three tries.
	cycle(&gB, "gB", b, syscall.SIGKILL, 8*time.Second)
	// gwB says goodbye: gwA's close action initiates until gwB is back.
	cycle(&gB, "gB", b, syscall.SIGTERM, 5*time.Second)

	time.Sleep(time.Second)
	ping.stop()
	if n := len(ping.replies()); n < 100 {
		t.Errorf("only %d echoes answered in all", n)
	}
	pcap := capAll.stop()
	ikeNoLeak(t, pcap)
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// TestIKERestartStrongSwan is TestIKERestart with strongSwan 5.9.8's
// charon as gwB (responder, ESP-in-UDP): killed and restarted xdpsec
// initiates with INITIAL_CONTACT and charon replaces its stale IKE SA
// (its uniqueids default); killed and restarted charon has lost the SAs
// xdpsec still sends on, and xdpsec's DPD restarts the connection;
// stopped with SIGTERM it deletes them, and xdpsec's close action starts
// again.
func TestIKERestartStrongSwan(t *testing.T) {
	needLab(t)
	needCharon(t)
	const ikeP, espP = "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519" // restartConfigs' proposals
	l := newLab(t, "")
	a, _ := l.restartConfigs(t)
	capAll := l.capture(t, "wan", "a0", 0)
	ch := l.startCharon(t, ikeP, espP)
	gA := l.start(t, "gA", a)
	sockA := l.sockPath("gA")
	waitIKE(t, sockA, 1, 10*time.Second)
	l.warmUp(t, "hA", hostB4)
	ping := l.startPinger(t, "hA", hostB4, 20*time.Millisecond)
	ping.firstAfter(t, time.Now(), 5*time.Second, "before the restarts")
	// charonSAs counts charon's IKE SAs (one line per IKE SA).
	charonSAs := func() int {
		n := 0
		for _, line := range strings.Split(ch.swanctl(t, "--list-sas"), "\n") {
			if strings.HasPrefix(line, "site: #") {
				n++
			}
		}
		return n
	}
	settled := func() {
		waitIKE(t, sockA, 1, 5*time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for n := charonSAs(); n != 1; n = charonSAs() {
			if time.Now().After(deadline) {
				t.Fatalf("charon holds %d IKE SAs, want 1 (stale ones replaced):\n%s", n, ch.swanctl(t, "--list-sas"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	restartCycle(t, ping, "gA SIGKILL (charon peer)", 5*time.Second,
		func() { gA.stop(t, syscall.SIGKILL) },
		func() { gA = l.start(t, "gA", a) },
		settled)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		// SIGKILL: gwA's DPD finds charon gone; SIGTERM: charon deletes
		// the SAs and gwA's close action initiates until it is back.
		restartCycle(t, ping, "charon "+sig.String(), 8*time.Second,
			func() { ch.stop(t, sig) },
			func() { ch = l.startCharon(t, ikeP, espP) },
			settled)
	}

	time.Sleep(time.Second)
	ping.stop()
	pcap := capAll.stop()
	ikeNoLeak(t, pcap)
	l.stopClean(t, gA)
}

// stop signals charon and waits until it is gone (swantest.Charon.Stop).
func (c *charon) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	c.Stop(t, sig)
}
