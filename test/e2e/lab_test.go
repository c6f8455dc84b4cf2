// Package e2e runs the xdpsec binary as two real gateways in network
// namespaces (scripts/lab.sh: hostA — gwA — WAN — gwB — hostB) and checks
// what crosses the wire: ping and iperf3 through the tunnel in raw ESP
// (RFC 4303) and ESP-in-UDP (RFC 3948), no plaintext on the WAN, every ESP
// packet decrypted by tshark with good ICVs, and the drops the SA counters
// must show for key mismatches, replays (RFC 4303 §3.4.3), unknown SPIs,
// truncated and forged packets; a daemon killed with SIGKILL must leak
// nothing and a restarted one must carry traffic again; SIGTERM must leave
// nothing attached.
//
// The tests need root, iproute2, ethtool, nsenter, ping, tcpdump, tshark
// and iperf3; without them they skip and say why.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

var (
	xdpsecBin string // built once in TestMain
	labScript string
	skipWhy   string // why the namespace tests cannot run here
	buildErr  error
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	labScript = filepath.Join(root, "scripts", "lab.sh")
	tmp, err := os.MkdirTemp("", "xdpsec-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	xdpsecBin = filepath.Join(tmp, "xdpsec")
	build := exec.Command("go", "build", "-o", xdpsecBin, "./cmd/xdpsec")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build: %v\n%s", err, out)
	}
	skipWhy = labPrerequisites()
	return m.Run()
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the xdpsec module")
	}
	return filepath.Dir(mod), nil
}

func labPrerequisites() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, XDP, AF_XDP)"
	}
	var missing []string
	for _, tool := range []string{"ip", "ethtool", "nsenter", "ping", "tcpdump", "tshark", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return "missing tools: " + strings.Join(missing, ", ") + " (scripts/install-deps.sh installs them; ping is Debian's iputils-ping)"
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		return "no bpf filesystem on /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)"
	}
	return ""
}

func needBinary(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func needLab(t *testing.T) {
	t.Helper()
	needBinary(t)
	if skipWhy != "" {
		t.Skip("e2e lab: " + skipWhy)
	}
}

// lab is one scripts/lab.sh topology with a unique prefix.
type lab struct {
	t      *testing.T
	prefix string
	dir    string
}

// newLab brings a lab up; variant is "", "onearm" or "trunk" (see lab.sh).
func newLab(t *testing.T, variant string) *lab {
	return newLabQueues(t, variant, 1)
}

// newLabQueues brings up a lab whose veths have queues queues each.
func newLabQueues(t *testing.T, variant string, queues int) *lab {
	t.Helper()
	return newLabMTU(t, variant, queues, 0)
}

// newLabMTU brings up a lab whose WAN has MTU wanMTU (0: lab.sh's 1600).
func newLabMTU(t *testing.T, variant string, queues, wanMTU int) *lab {
	t.Helper()
	l := &lab{t: t, prefix: "e" + testlab.Tag(), dir: t.TempDir()}
	args := []string{"up", l.prefix}
	if variant != "" {
		args = append(args, variant)
	}
	up := exec.Command(labScript, args...)
	up.Env = append(os.Environ(), fmt.Sprintf("LAB_QUEUES=%d", queues))
	if wanMTU > 0 {
		up.Env = append(up.Env, fmt.Sprintf("LAB_WAN_MTU=%d", wanMTU))
	}
	if out, err := up.CombinedOutput(); err != nil {
		exec.Command(labScript, "down", l.prefix).Run()
		t.Fatalf("lab.sh up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(labScript, "down", l.prefix).CombinedOutput(); err != nil {
			t.Errorf("lab.sh down: %v\n%s", err, out)
		}
		// What a test's killed daemon left: pins and its control socket.
		for _, g := range []string{"gA", "gB"} {
			cleanupPins(l.pinPath(g))
			os.Remove(l.sockPath(g))
			// The default state_file beside the socket (the IKE
			// configurations name none): litter after the run.
			os.Remove(strings.TrimSuffix(l.sockPath(g), ".sock") + ".seq")
		}
	})
	return l
}

// cleanupPins removes what a daemon the test killed left pinned: with the
// namespaces gone the attachments are defunct, only the pins remain.
func cleanupPins(path string) {
	os.RemoveAll(path)
}

func (l *lab) ns(node string) string       { return l.netns(node).Path() }
func (l *lab) pinPath(node string) string  { return "/sys/fs/bpf/xdpsec/" + l.prefix + "-" + node }
func (l *lab) sockPath(node string) string { return "/run/xdpsec/" + l.prefix + "-" + node + ".sock" }

// netns is node's network namespace, which lab.sh made.
func (l *lab) netns(node string) *testlab.Netns { return &testlab.Netns{Name: l.prefix + "-" + node} }

// cmd makes a command that runs in node's network namespace.
func (l *lab) cmd(ctx context.Context, node string, args ...string) *exec.Cmd {
	return l.netns(node).Command(ctx, args...)
}

// run runs a command in node and returns its combined output.
func (l *lab) run(node string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := l.cmd(ctx, node, args...).CombinedOutput()
	return string(out), err
}

var receivedRE = regexp.MustCompile(`(\d+) received`)

// ping sends count echo requests from node to dst and returns how many
// were answered.
func (l *lab) ping(node, dst string, count int) int {
	out, _ := l.run(node, time.Duration(count)*time.Second+5*time.Second,
		"ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", dst)
	m := receivedRE.FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// pingAll is ping for a check that every echo comes back: a shared
// 2-core machine can lose an echo to scheduling now and then, so a short
// run is tried once more before it counts as a failure. A broken tunnel
// fails both tries.
func (l *lab) pingAll(node, dst string, count int) int {
	if n := l.ping(node, dst, count); n == count {
		return n
	}
	return l.ping(node, dst, count)
}

// warmUp pings until an answer comes back (the gateways' next-hop tables
// resolve on the first packets, which they drop and count), at most 10 s.
func (l *lab) warmUp(t *testing.T, node, dst string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if l.ping(node, dst, 1) == 1 {
			return
		}
	}
	t.Fatalf("no ping answer from %s to %s within 10 s\n%s", node, dst, l.diagnose())
}

// diagnose describes the running gateways' counters, for failure messages.
func (l *lab) diagnose() string { return l.diagnoseNodes("gA", "gB") }

// diagnoseNodes describes the named gateways' counters.
func (l *lab) diagnoseNodes(nodes ...string) string {
	var b strings.Builder
	for _, g := range nodes {
		s, err := control.Query(l.sockPath(g))
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", g, err)
			continue
		}
		d, _ := json.Marshal(struct {
			Workers  []control.Worker
			XDP      map[string]map[string]uint64
			NextHops map[string]map[string]uint64
			SAs      []control.SA
		}{s.Workers, s.XDP, s.NextHops, s.SAs})
		fmt.Fprintf(&b, "%s: %s\n", g, d)
	}
	return b.String()
}

// gateway is one running xdpsec daemon.
type gateway struct {
	l    *lab
	node string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs `xdpsec run -c cfg` in node and waits until its control
// socket answers.
func (l *lab) start(t *testing.T, node, cfg string) *gateway {
	t.Helper()
	g := l.launch(t, node, l.dir, exec.Command("nsenter", "--net="+l.ns(node), "--", xdpsecBin, "run", "-c", cfg))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-g.done:
			t.Fatalf("xdpsec in %s exited: %v\n%s", node, g.err, g.logText())
		default:
		}
		if _, err := control.Query(l.sockPath(node)); err == nil {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("xdpsec in %s: control socket not answering after 10 s\n%s", node, g.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// launch starts cmd as node's daemon with its output in a log file in
// dir, and stops it (SIGTERM) when the test ends.
func (l *lab) launch(t *testing.T, node, dir string, cmd *exec.Cmd) *gateway {
	t.Helper()
	g := &gateway{l: l, node: node, log: filepath.Join(dir, fmt.Sprintf("%s-%d.log", node, time.Now().UnixNano())), done: make(chan struct{}), cmd: cmd}
	logf, err := os.Create(g.log)
	if err != nil {
		t.Fatal(err)
	}
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		g.err = g.cmd.Wait()
		logf.Close()
		close(g.done)
	}()
	t.Cleanup(func() { g.stop(t, syscall.SIGTERM) })
	return g
}

func (g *gateway) logText() string {
	b, _ := os.ReadFile(g.log)
	return string(b)
}

// stop signals the daemon and waits for it; it reports the exit error.
func (g *gateway) stop(t *testing.T, sig syscall.Signal) error {
	select {
	case <-g.done:
		return g.err
	default:
	}
	g.cmd.Process.Signal(sig)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		t.Errorf("xdpsec in %s did not stop within 10 s of %v\n%s", g.node, sig, g.logText())
	}
	return g.err
}

// showSAs runs `xdpsec show sa -o json` against the daemon.
func (g *gateway) showSAs(t *testing.T) map[string]control.SA {
	t.Helper()
	out, err := exec.Command(xdpsecBin, "show", "sa", "-o", "json", "--socket", g.l.sockPath(g.node)).Output()
	if err != nil {
		t.Fatalf("xdpsec show sa: %v", err)
	}
	var sas []control.SA
	if err := json.Unmarshal(out, &sas); err != nil {
		t.Fatalf("xdpsec show sa -o json: %v\n%s", err, out)
	}
	m := map[string]control.SA{}
	for _, sa := range sas {
		m[sa.Dir] = sa
	}
	return m
}

type stats struct {
	Workers []control.Worker             `json:"workers"`
	XDP     map[string]map[string]uint64 `json:"xdp"`
	IKE     map[string]uint64            `json:"ike"`
}

func (g *gateway) showStats(t *testing.T) stats {
	t.Helper()
	out, err := exec.Command(xdpsecBin, "show", "stats", "-o", "json", "--socket", g.l.sockPath(g.node)).Output()
	if err != nil {
		t.Fatalf("xdpsec show stats: %v", err)
	}
	var s stats
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("xdpsec show stats -o json: %v\n%s", err, out)
	}
	return s
}

func (s stats) workerDrop(reason string) uint64 {
	var n uint64
	for _, w := range s.Workers {
		n += w.Drops[reason]
	}
	return n
}

// xdpAttached lists the interfaces of node that have an XDP program.
func (l *lab) xdpAttached(t *testing.T, node string) []string {
	t.Helper()
	out, err := l.run(node, 5*time.Second, "ip", "-o", "-d", "link", "show")
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	var with []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "prog/xdp") {
			with = append(with, strings.Fields(line)[1])
		}
	}
	return with
}

// capture is a tcpdump writing a pcap file.
type capture struct {
	cmd  *exec.Cmd
	file string
	done chan struct{}
}

// capture starts tcpdump on dev in node, keeping snap bytes of each frame
// (0: all of it), and returns once it listens.
func (l *lab) capture(t *testing.T, node, dev string, snap int) *capture {
	t.Helper()
	return l.captureFilter(t, node, dev, snap)
}

// captureFilter is capture keeping only the frames a tcpdump filter
// expression (its words in filter) selects.
func (l *lab) captureFilter(t *testing.T, node, dev string, snap int, filter ...string) *capture {
	t.Helper()
	c := &capture{file: filepath.Join(l.dir, fmt.Sprintf("%s-%s-%d.pcap", node, dev, time.Now().UnixNano())), done: make(chan struct{})}
	// -Z root: Debian's tcpdump drops to its own user, which cannot
	// write into the test's directory. --immediate-mode and -U: every
	// frame is written as it comes; otherwise frames wait in a ring block
	// that tcpdump drops when it is interrupted.
	// -B 8192: an 8 MiB kernel buffer, so that a loaded machine's tcpdump
	// does not drop frames (a takeover test checks every IKE request on
	// the WAN has its response).
	c.cmd = l.cmd(context.Background(), node, append([]string{"tcpdump", "-i", dev, "-n", "-s", strconv.Itoa(snap), "-B", "8192", "-U", "--immediate-mode", "-Z", "root", "-w", c.file}, filter...)...)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	go func() { c.cmd.Wait(); close(c.done) }()
	select {
	case <-ready:
	case <-c.done:
		t.Fatal("tcpdump exited before capturing")
	case <-time.After(5 * time.Second):
		t.Fatal("tcpdump not ready after 5 s")
	}
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *capture) stop() string {
	select {
	case <-c.done:
		return c.file
	default:
	}
	time.Sleep(100 * time.Millisecond) // let the last frames in
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	return c.file
}

// decryptFrames bounds the frames tshark decrypts from one capture. An
// iperf3 run leaves tens of thousands of ESP frames; checking each took
// seconds here but ran past the minute on a loaded CI machine. The first
// frames hold the pings and the start of each iperf3 flow, both ways.
// The cut splits no packet: -c counts whole pcap records.
const decryptFrames = 6000

// verifyESP has tshark decrypt the ESP packets among the first
// decryptFrames frames of a capture with the SA table uat and checks every
// ICV is good; it returns the good ones. Only whole ESP packets count (see
// judgeESP); a packet that fails is reported with what tshark sees in it.
func verifyESP(t *testing.T, pcap string, uat []string) (good, n int) {
	t.Helper()
	lines := tshark(t, pcap, uat, "-c", strconv.Itoa(decryptFrames), "-Y", "esp", "-T", "fields", "-E", "occurrence=l",
		"-e", "esp.icv_good", "-e", "esp.icv_bad", "-e", "frame.number", "-e", "frame.len", "-e", "frame.cap_len",
		"-e", "frame.protocols", "-e", "esp.spi", "-e", "esp.sequence")
	good, notPackets, bad := judgeESP(lines)
	if good+len(bad) == 0 {
		t.Fatal("no ESP in the capture to decrypt")
	}
	for _, line := range bad {
		t.Errorf("tshark: ESP packet not verified (icv_good, icv_bad, frame, len, captured, protocols, spi, seq): %q", line)
	}
	if len(notPackets) > 0 {
		t.Logf("tshark: not whole ESP packets, not counted: %v", notPackets)
	}
	return good, good + len(bad)
}

// judgeESP sorts verifyESP's tshark lines (-Y esp, its fields) into ESP
// packets with a good ICV, frames that show ESP but hold no whole ESP
// packet, by why, and every other line: an ESP packet whose ICV is bad or
// could not be checked, which fails the test. A frame holds no whole ESP
// packet when the capture kept less than the frame (its captured length
// is short of its length), or when the ESP is the start of a packet
// quoted in an ICMP error (tshark matches "esp" inside the quote, which
// ends long before the ICV). Reading a failure: icv_bad 1 is a wrong ICV
// on a whole packet; neither set means tshark did not check it — no SA
// row for its addresses and SPI, or fewer octets than its IP header
// claims.
func judgeESP(lines []string) (good int, notPackets map[string]int, bad []string) {
	notPackets = map[string]int{}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 8 {
			bad = append(bad, line)
			continue
		}
		// Only an ICMP header outside the ESP one makes a quote: ESP
		// carrying a ping has ":esp:ip:icmp:" and is a whole packet.
		outer := ":" + f[5] + ":"
		if i := strings.Index(outer, ":esp:"); i >= 0 {
			outer = outer[:i+1]
		}
		switch {
		case strings.Contains(outer, ":icmp:") || strings.Contains(outer, ":icmpv6:"):
			notPackets["quoted in an ICMP error"]++
		case f[3] != f[4]:
			notPackets["captured short"]++
		case f[0] == "1" && f[1] != "1":
			good++
		default:
			bad = append(bad, line)
		}
	}
	return good, notPackets, bad
}

var heuristics struct {
	once sync.Once
	args []string
}

// heuristicsOff is tshark's flags turning off every protocol that tries
// TCP or UDP payloads heuristically. When decrypting, tshark dissects the
// ESP payload before it adds the ICV fields, and a heuristic that takes
// the inner TCP payload for its protocol (Thrift, say) and then throws on
// it leaves a whole, well-sealed packet with neither esp.icv_good nor
// esp.icv_bad (seen 1 frame in 6000 now and then). The layers the check
// reads are never turned off.
func heuristicsOff(t *testing.T) []string {
	t.Helper()
	keep := map[string]bool{"eth": true, "ethertype": true, "ip": true, "ipv6": true, "icmp": true, "icmpv6": true,
		"tcp": true, "udp": true, "esp": true, "udpencap": true, "data": true}
	heuristics.once.Do(func() {
		out, err := exec.Command("tshark", "-G", "heuristic-decodes").Output()
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, ln := range strings.Split(string(out), "\n") {
			f := strings.Split(ln, "\t")
			if len(f) < 2 || f[0] != "tcp" && f[0] != "udp" || keep[f[1]] || seen[f[1]] {
				continue
			}
			seen[f[1]] = true
			heuristics.args = append(heuristics.args, "--disable-protocol", f[1])
		}
	})
	if len(heuristics.args) == 0 {
		t.Fatal("tshark -G heuristic-decodes listed no TCP or UDP heuristics")
	}
	return heuristics.args
}

// tshark runs tshark on a capture with the given ESP SA table (none: no
// decryption) and returns its output lines.
func tshark(t *testing.T, file string, uat []string, args ...string) []string {
	t.Helper()
	conf := t.TempDir()
	prefs := "esp.enable_encryption_decode: FALSE\n"
	if len(uat) > 0 {
		// Decryption is the slow part: the inner TCP is neither
		// reassembled nor analysed, only the ESP layer is checked.
		prefs = "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\nesp.do_esp_sequence_analysis: FALSE\n" +
			"tcp.desegment_tcp_streams: FALSE\ntcp.analyze_sequence_numbers: FALSE\n"
		if err := os.WriteFile(filepath.Join(conf, "esp_sa"), []byte(strings.Join(uat, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(conf, "preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	if len(uat) > 0 {
		args = append(heuristicsOff(t), args...)
	}
	// A bound for a hung tshark, not a speed check: the nonce test's
	// whole-capture pass reads ~600k frames (8 s here, several times that
	// on a loaded CI machine); slow calls are logged below.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tshark", append([]string{"-n", "-r", file}, args...)...)
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf, "HOME="+conf)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("tshark %v took %v", args, d.Round(time.Millisecond))
	}
	s := strings.TrimRight(string(out), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// inNetns runs f on a thread that has entered node's network namespace
// (see testlab.Netns.Do).
func (l *lab) inNetns(node string, f func() error) error {
	return l.netns(node).Do(f)
}

// pingPairs warms each (from node, to address) pair up and expects n of n
// pings answered.
func (l *lab) pingPairs(t *testing.T, n int, pairs [][2]string) {
	t.Helper()
	for _, p := range pairs {
		l.warmUp(t, p[0], p[1])
		if got := l.pingAll(p[0], p[1], n); got != n {
			t.Errorf("ping %s -> %s: %d of %d answered\n%s", p[0], p[1], got, n, l.diagnose())
		}
	}
}

// iperfTCP runs iperf3 TCP for a second from hostA to hostB at the
// 300 Mbit/s cap, and back too when both; anything that moves nothing is
// an error, and the rates are logged under what.
func (l *lab) iperfTCP(t *testing.T, what string, both bool) {
	t.Helper()
	up := l.iperf(t, hostB4, "-t", "1", "-b", "300M")
	if up.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 %s A->B moved nothing: %+v", what, up)
	}
	t.Logf("iperf3 TCP %s A->B: %.0f Mbit/s", what, up.End.SumReceived.BitsPerSecond/1e6)
	if !both {
		return
	}
	down := l.iperf(t, hostB4, "-t", "1", "-R", "-b", "300M")
	if down.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 %s B->A moved nothing: %+v", what, down)
	}
	t.Logf("iperf3 TCP %s B->A: %.0f Mbit/s", what, down.End.SumReceived.BitsPerSecond/1e6)
}
