package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/swantest"
)

// The strongSwan cluster lab: claddr's cluster lab (three xdpsec nodes,
// embedded etcd, group addresses 192.0.2.1 and 198.18.1.1) whose group g1
// carries a negotiated connection "site" instead of static SAs, and whose
// peer gP is strongSwan 5.9.8's charon (kernel-libipsec, so ESP-in-UDP)
// instead of an xdpsec gateway; hB sits behind charon.
const (
	swanConn  = "site"
	swanChild = "net"
)

var (
	reSwanIKESPIs = regexp.MustCompile(`(?m)^site: #\d+, ESTABLISHED, IKEv2, ([0-9a-f]{16})_i\*? ([0-9a-f]{16})_r`)
	reSwanChild   = regexp.MustCompile(`(?m)^\s+net: #\d+, reqid \d+, INSTALLED, [^\n]*\n[^\n]*\n\s+in\s+([0-9a-f]{8})[^\n]*\n\s+out\s+([0-9a-f]{8})`)
)

// swanSAs is what `swanctl --list-sas` shows of the connection: the IKE
// SA's SPIs and the installed Child SAs' (in, out) SPIs.
type swanSAs struct {
	ike      [2]string
	children [][2]string
}

func parseSwanSAs(list string) swanSAs {
	var s swanSAs
	if m := reSwanIKESPIs.FindStringSubmatch(list); m != nil {
		s.ike = [2]string{m[1], m[2]}
	}
	for _, m := range reSwanChild.FindAllStringSubmatch(list, -1) {
		s.children = append(s.children, [2]string{m[1], m[2]})
	}
	return s
}

// newClusterSwanLab is the cluster lab with the negotiated group and
// charon in gP (not started yet: startCharon); groupNodes is the group's
// nodes: map.
func newClusterSwanLab(t *testing.T, groupNodes string) (*clusterLab, string) {
	t.Helper()
	c := newClusterLab(t)
	pskb := make([]byte, 32)
	rand.Read(pskb)
	psk := hex.EncodeToString(pskb)
	pskFile := filepath.Join(c.dir, "psk")
	if err := os.WriteFile(pskFile, []byte(psk), 0o600); err != nil {
		t.Fatal(err)
	}
	var members []string
	for i := 1; i <= clNodes; i++ {
		members = append(members, fmt.Sprintf("%s: \"http://198.51.100.%d:2380\"", clNode(i), 10+i))
	}
	for i := 1; i <= clNodes; i++ {
		n := clNode(i)
		y := fmt.Sprintf(`# cluster lab %[1]s, negotiated group
interfaces: {lan: lan0, wan: wan0, queues: 1, xdp_mode: auto, cpus: []}
default_action: discard
pin_path: %[2]s
on_stop: detach
control: %[3]s
state_dir: %[4]s
connections:
  - name: %[5]s
    local_addr: %[6]s
    remote_addr: %[7]s
    local_id: gw-a.lab
    remote_id: gw-b.lab
    auth: {psk_file: %[8]s}
    ike_proposals: [aes256gcm16-prfsha384-ecp384]
    start_action: none
    dpd_delay: 2s
    dpd_action: clear
    children:
      - name: %[9]s
        local_ts: [198.18.1.0/24]
        remote_ts: [198.18.2.0/24]
        mode: tunnel
        esp_proposals: [aes128gcm16]
cluster:
  name: lab
  node: %[1]s
  key_file: %[10]s
  etcd:
    embedded:
      data_dir: %[11]s
      peer_url: http://198.51.100.%[12]d:2380
      client_url: http://127.0.0.1:2379
      members: {%[13]s}
  groups:
    - name: g1
      connections: [%[5]s]
      wan: %[6]s/24
      lan: %[14]s/24
      nodes: %[15]s
`, n, c.pinPath(n), c.sockPath(n), filepath.Join(c.dir, n+"-state"), swanConn, clGroupWAN, clPeerWAN, pskFile, swanChild,
			filepath.Join(c.dir, "cluster.key"), filepath.Join(c.dir, n+"-etcd"), 10+i, strings.Join(members, ", "), clGroupLAN, groupNodes)
		if err := os.WriteFile(c.cfgs[n], []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c, psk
}

// swanClusterConf is charon's connection to the group: it initiates, DPD
// every second of silence.
func swanClusterConf(psk string) string {
	return fmt.Sprintf(`connections {
	site {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		proposals = aes256gcm16-prfsha384-ecp384
		dpd_delay = 1s
		local {
			auth = psk
			id = gw-b.lab
		}
		remote {
			auth = psk
			id = gw-a.lab
		}
		children {
			net {
				local_ts = 198.18.2.0/24
				remote_ts = 198.18.1.0/24
				esp_proposals = aes128gcm16
			}
		}
	}
}
secrets {
	ike-site {
		id-a = gw-b.lab
		id-b = gw-a.lab
		secret = "%[3]s"
	}
}
`, clPeerWAN, clGroupWAN, psk)
}

// swanFlows is clusterLab.flows with a pause: while paused nothing is
// sent either way (so that DPD, which waits for silence, can run).
type swanFlows struct {
	ab, ba *udpFlow
	paused atomic.Bool
	wait   func()
}

func (c *clusterLab) swanFlows(t *testing.T, interval time.Duration, stop chan struct{}) *swanFlows {
	t.Helper()
	f := &swanFlows{}
	f.ab, f.ba, f.wait = c.startFlows(t, interval, stop, &f.paused, "hA", clHostA, "hB", clHostB)
	return f
}

// delivered is how many distinct datagrams each way have arrived.
func (f *swanFlows) delivered() (ab, ba int) {
	f.ab.mu.Lock()
	ab = len(f.ab.got)
	f.ab.mu.Unlock()
	f.ba.mu.Lock()
	ba = len(f.ba.got)
	f.ba.mu.Unlock()
	return ab, ba
}

// passing waits until at least 100 more datagrams each way arrived (at 1
// a millisecond: 0.1 s), at most within; else the test fails.
func (f *swanFlows) passing(t *testing.T, what string, within time.Duration) {
	t.Helper()
	ab0, ba0 := f.delivered()
	deadline := time.Now().Add(within)
	for {
		ab, ba := f.delivered()
		if ab >= ab0+100 && ba >= ba0+100 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s: the tunnel does not pass traffic (%d and %d more datagrams delivered in %v)", what, ab-ab0, ba-ba0, within)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ikeMsg is one IKEv2 message on the WAN.
type ikeMsg struct {
	at         float64
	src        string
	spis       string // SPIi/SPIr
	exch       int
	response   bool
	initiator  bool // sent by the IKE SA's original initiator
	messageID  uint32
	frameIndex int
}

// ikeMessages lists the IKEv2 messages of a capture (UDP 500 and 4500).
func ikeMessages(t *testing.T, pcap string) []ikeMsg {
	t.Helper()
	var ms []ikeMsg
	for i, ln := range tshark(t, pcap, nil, "-Y", "isakmp", "-T", "fields", "-e", "frame.time_epoch", "-e", "ip.src",
		"-e", "isakmp.ispi", "-e", "isakmp.rspi", "-e", "isakmp.exchangetype", "-e", "isakmp.flag_r", "-e", "isakmp.flag_i", "-e", "isakmp.messageid") {
		f := strings.Split(ln, "\t")
		if len(f) != 8 {
			continue
		}
		at, _ := strconv.ParseFloat(f[0], 64)
		exch, _ := strconv.Atoi(f[4])
		mid, _ := strconv.ParseUint(f[7], 0, 32)
		ms = append(ms, ikeMsg{at: at, src: f[1], spis: f[2] + "/" + f[3], exch: exch, response: isSet(f[5]), initiator: isSet(f[6]),
			messageID: uint32(mid), frameIndex: i})
	}
	return ms
}

// checkMessageIDs checks, per IKE SA and requester, that the requests'
// message IDs after `from` go up one at a time (a retransmission repeats
// the last) and that each request got a response with its ID. It returns
// the requests seen.
func checkMessageIDs(t *testing.T, ms []ikeMsg, from float64) (requests int) {
	t.Helper()
	type key struct{ spis, src string }
	last := map[key]uint32{}
	seenReq := map[key]bool{}
	open := map[key]map[uint32]bool{}
	answered := map[key]map[uint32]bool{}
	// The IKE SA's SPIr is 0 in IKE_SA_INIT's request only; key by the
	// SPI pair, skipping IKE_SA_INIT (exchange 34).
	for _, m := range ms {
		if m.exch == 34 {
			continue
		}
		if m.at < from {
			// Before: only the requester's position matters.
			k := key{m.spis, m.src}
			if !m.response {
				last[k], seenReq[k] = m.messageID, true
			}
			continue
		}
		if m.response {
			// The response goes back to the requester: the other address.
			for k, o := range open {
				if k.spis == m.spis && k.src != m.src && o[m.messageID] {
					delete(o, m.messageID)
					answered[k][m.messageID] = true
				}
			}
			continue
		}
		k := key{m.spis, m.src}
		if answered[k] == nil {
			answered[k] = map[uint32]bool{}
		}
		if answered[k][m.messageID] {
			t.Errorf("IKE SA %s: %s sent request message ID %d again after its response (frame %d)", m.spis, m.src, m.messageID, m.frameIndex+1)
			continue
		}
		if seenReq[k] && m.messageID != last[k] && m.messageID != last[k]+1 {
			t.Errorf("IKE SA %s: %s sent request message ID %d after %d (exchange %d)", m.spis, m.src, m.messageID, last[k], m.exch)
		}
		if !seenReq[k] || m.messageID != last[k] {
			requests++
		}
		last[k], seenReq[k] = m.messageID, true
		if open[k] == nil {
			open[k] = map[uint32]bool{}
		}
		open[k][m.messageID] = true
	}
	for k, o := range open {
		for id := range o {
			t.Errorf("IKE SA %s: %s's request with message ID %d never answered on the WAN", k.spis, k.src, id)
		}
	}
	return requests
}

// TestClusterSwanTakeover: three real xdpsec processes (embedded etcd)
// carry a tunnel group whose connection strongSwan 5.9.8's charon
// negotiated (IKEv2, PSK, ESP-in-UDP) with the group's owner; hA and hB
// exchange numbered UDP datagrams at about 1,000 a second each way. The
// owner is killed with SIGKILL. Another node takes the group over and
// continues the same IKE SA: charon's `swanctl --list-sas` shows the same
// IKE and Child SA SPIs, and no IKE_SA_INIT crosses the WAN after the
// kill. The captures give the takeover time; no (SPI, sequence number)
// appears twice on the WAN, no datagram is delivered twice, no plaintext
// crosses the WAN. Right after the takeover charon rekeys the Child SA
// and the IKE SA, the new owner does both too, and charon's DPD (and
// ours) is answered, every request with its right message ID; the tunnel
// passes traffic after each. The kill comes at three moments:
//   - traffic: under the flows, nothing else going on;
//   - dpd-in-flight: the flows paused, as charon has just sent a DPD
//     request (the old owner answered it or not; the standby did not hear
//     of it: etcd gets message-ID-only changes at most every 500 ms);
//   - after-rekey: under the flows, right after the owner rekeyed the
//     Child SA and then the IKE SA (new SAs, new records in etcd).
func TestClusterSwanTakeover(t *testing.T) {
	needLab(t)
	needCharon(t)
	// two-nodes: the group on n1 and n2 only, n3 the third etcd member
	// and nothing else (the witness a 2-node cluster needs for a quorum).
	for _, mode := range []string{"traffic", "dpd-in-flight", "after-rekey", "two-nodes"} {
		t.Run(mode, func(t *testing.T) { swanTakeover(t, mode) })
	}
}

func swanTakeover(t *testing.T, mode string) {
	groupNodes, members := "{n1: 100, n2: 50, n3: 10}", []string{"n1", "n2", "n3"}
	if mode == "two-nodes" {
		groupNodes, members = "{n1: 100, n2: 50}", []string{"n1", "n2"}
	}
	c, psk := newClusterSwanLab(t, groupNodes)
	wan := c.capture(t, "sw", "bw", 200)
	lan := c.captureFilter(t, "sw", "bl", 128, "udp", "port", strconv.Itoa(clFlowPort))
	c.startNodes(t, "n1", "n2", "n3")
	t.Cleanup(func() {
		// A daemon built with GOFLAGS=-race reports races on its output.
		for _, n := range []string{"n1", "n2", "n3"} {
			if log := c.gws[n].logText(); strings.Contains(log, "WARNING: DATA RACE") {
				t.Errorf("%s reported a data race:\n%s", n, log[strings.Index(log, "WARNING: DATA RACE"):])
			}
		}
		if t.Failed() {
			for _, n := range []string{"n1", "n2", "n3"} {
				t.Logf("--- log of %s\n%s", n, c.gws[n].logText())
			}
		}
	})
	owner := c.waitOwner(t, 20*time.Second)
	t.Logf("group g1 owned by %s", owner)
	ch := swantest.StartCharon(t, c.netns("gP"), swantest.CharonConfig{
		Dir: filepath.Join(c.dir, "charon"),
		Settings: []string{"retransmit_tries = 3", "retransmit_timeout = 1.0",
			// A second log with times, for the diagnosis of a failure.
			"filelog {\n\t\ttimed {\n\t\t\tpath = " + filepath.Join(c.dir, "charon", "charon-timed.log") +
				"\n\t\t\ttime_format = %T\n\t\t\ttime_add_ms = yes\n\t\t\tflush_line = yes\n\t\t\tdefault = 1\n\t\t\tike = 2\n\t\t}\n\t}"},
		Swanctl: swanClusterConf(psk),
		Stop:    3 * time.Second,
	})
	charonLog := func() string { b, _ := os.ReadFile(filepath.Join(ch.Dir, "charon.log")); return string(b) }
	ch.Swanctl(t, "--initiate", "--child", swanChild, "--timeout", "10")
	sas := waitIKE(t, c.sockPath(owner), 1, 10*time.Second)
	// Every standby holds the IKE SA (passive) before the kill.
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range members {
		if n == owner {
			continue
		}
		for {
			s := showIKE(t, c.sockPath(n))
			if len(s) == 1 && s[0].SPIi == sas[0].SPIi && len(s[0].Children) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("standby %s does not hold the IKE SA %s: %+v", n, sas[0].SPIi, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.warmUp(t, "hA", clHostB)
	before := parseSwanSAs(ch.Swanctl(t, "--list-sas", "--ike", swanConn))
	if before.ike[0] == "" || len(before.children) != 1 {
		t.Fatalf("swanctl --list-sas before the kill: %+v", before)
	}
	t.Logf("charon's SAs before the kill: IKE %s_i %s_r, Child in %s out %s", before.ike[0], before.ike[1], before.children[0][0], before.children[0][1])

	stop := make(chan struct{})
	fl := c.swanFlows(t, time.Millisecond, stop)
	time.Sleep(2 * time.Second)
	switch mode {
	case "dpd-in-flight":
		fl.paused.Store(true)
		n0 := strings.Count(charonLog(), "sending DPD request")
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(charonLog(), "sending DPD request") == n0 {
			if time.Now().After(deadline) {
				t.Fatal("charon sent no DPD within 5 s of silence")
			}
			time.Sleep(2 * time.Millisecond)
		}
	case "after-rekey":
		// The Child SA, then the IKE SA (the Child SA moves to the new
		// one), and the kill as soon as the owner says so: its writes to
		// etcd may be under way.
		if err := xdpsecRekey(c.sockPath(owner), swanConn, swanChild); err != nil {
			t.Fatal(err)
		}
		fl.passing(t, "the Child SA rekey before the kill", 3*time.Second)
		if err := xdpsecRekey(c.sockPath(owner), swanConn); err != nil {
			t.Fatal(err)
		}
		all := showIKE(t, c.sockPath(owner))
		sas = nil
		for _, sa := range all {
			if len(sa.Children) > 0 { // not the old one, on its way out
				sas = append(sas, sa)
			}
		}
		if len(sas) != 1 {
			t.Fatalf("%s's IKE SAs right after its IKE SA rekey: %+v", owner, all)
		}
	}
	killAt := time.Now()
	c.gws[owner].stop(t, syscall.SIGKILL)
	fl.paused.Store(false)
	if mode == "after-rekey" {
		before = parseSwanSAs(ch.Swanctl(t, "--list-sas", "--ike", swanConn))
		t.Logf("charon's SAs after %s's rekeys: IKE %s_i %s_r, Child %v (%s's: %s_i)", owner, before.ike[0], before.ike[1], before.children,
			owner, sas[0].SPIi)
	}
	next := c.waitOwner(t, 10*time.Second)
	if next == owner {
		t.Fatalf("%s still owns the group after its kill -9", owner)
	}
	if !slices.Contains(members, next) {
		t.Fatalf("%s took the group, which allows only %v", next, members)
	}
	t.Logf("%s killed, %s owns the group", owner, next)
	sock := c.sockPath(next)
	fl.passing(t, "the takeover", 5*time.Second)
	after := parseSwanSAs(ch.Swanctl(t, "--list-sas", "--ike", swanConn))
	t.Logf("charon's SAs after the takeover: IKE %s_i %s_r, Child %v", after.ike[0], after.ike[1], after.children)
	if after.ike != before.ike || len(after.children) != 1 || after.children[0] != before.children[0] {
		t.Errorf("charon's SAs changed at the takeover: before %+v, after %+v", before, after)
	}
	if s := waitIKE(t, sock, 1, 5*time.Second); len(sas) != 1 || len(sas[0].Children) != 1 || s[0].SPIi != sas[0].SPIi || s[0].Children[0].SPIIn != sas[0].Children[0].SPIIn {
		t.Errorf("%s's IKE SA after the takeover: %+v, was %+v", next, s[0], sas[0])
	}

	// DPD waits for silence: pause the flows until charon's DPD (1 s of
	// silence) has run twice, then check the tunnel again. The message
	// IDs are checked on the wire at the end too.
	var pausedAt time.Time // the first pause after the kill
	dpd := func(when string) {
		t.Helper()
		if pausedAt.IsZero() {
			pausedAt = time.Now()
		}
		logLen := len(charonLog())
		fl.paused.Store(true)
		deadline := time.Now().Add(6 * time.Second)
		for strings.Count(charonLog()[logLen:], "sending DPD request") < 2 {
			if time.Now().After(deadline) {
				t.Errorf("%s: charon sent no two DPDs within 6 s of silence:\n%s", when, charonLog()[logLen:])
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		dpdLog := charonLog()[logLen:]
		t.Logf("%s: charon's DPD exchanges in the silence:\n%s", when, grepLog(dpdLog, "INFORMATIONAL"))
		if n := len(regexp.MustCompile(`parsed INFORMATIONAL response \d+ \[ \]`).FindAllString(dpdLog, -1)); n < 2 {
			t.Errorf("%s: charon parsed %d empty INFORMATIONAL responses (DPD answers) in the silence, want 2", when, n)
		}
		fl.paused.Store(false)
		fl.passing(t, "DPD "+when, 3*time.Second)
	}
	dpd("right after the takeover")

	// Rekeys right after the takeover, from charon and from the new owner.
	childIn := func() string {
		s := parseSwanSAs(ch.Swanctl(t, "--list-sas", "--ike", swanConn))
		if len(s.children) != 1 {
			return ""
		}
		return s.children[0][0]
	}
	ikeSPIs := func() [2]string { return parseSwanSAs(ch.Swanctl(t, "--list-sas", "--ike", swanConn)).ike }
	waitChange := func(what string, get func() string, old string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if v := get(); v != "" && v != old {
				t.Logf("%s: %s -> %s %v after the kill", what, old, v, time.Since(killAt).Round(time.Millisecond))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not done within 10 s (still %s)\n%s", what, old, ch.Swanctl(t, "--list-sas"))
			}
			time.Sleep(50 * time.Millisecond)
		}
		fl.passing(t, what, 3*time.Second)
	}
	// The new owner's workers' drops over the rekeys: a new outbound
	// Child SA must not drop packets for want of reserved sequence
	// numbers (its first block is reserved before traffic moves to it).
	drops := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, w := range c.gws[next].showStats(t).Workers {
			for r, n := range w.Drops {
				m[r] += n
			}
		}
		return m
	}
	drops0 := drops()
	old := childIn()
	ch.Swanctl(t, "--rekey", "--child", swanChild)
	waitChange("Child SA rekey from charon", childIn, old)
	old = ikeSPIs()[0]
	ch.Swanctl(t, "--rekey", "--ike", swanConn)
	waitChange("IKE SA rekey from charon", func() string { return ikeSPIs()[0] }, old)
	old = childIn()
	if err := xdpsecRekey(sock, swanConn, swanChild); err != nil {
		t.Fatal(err)
	}
	waitChange("Child SA rekey from "+next, childIn, old)
	old = ikeSPIs()[0]
	if err := xdpsecRekey(sock, swanConn); err != nil {
		t.Fatal(err)
	}
	waitChange("IKE SA rekey from "+next, func() string { return ikeSPIs()[0] }, old)
	d := drops()
	for r, n := range d {
		if n -= drops0[r]; n > 0 {
			t.Logf("%s's workers dropped %d packets (%s) during the four rekeys", next, n, r)
		}
	}
	if n := d["seq_unreserved"] - drops0["seq_unreserved"]; n > 0 {
		t.Errorf("%s dropped %d packets during the rekeys for want of reserved sequence numbers", next, n)
	}

	dpd("after the rekeys")
	close(stop)
	fl.wait()
	wanPcap, lanPcap := wan.stop(), lan.stop()
	clog := charonLog()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		keep := filepath.Join(os.TempDir(), "clswan-"+strings.ReplaceAll(t.Name(), "/", "-")+"-"+time.Now().Format("150405"))
		if os.MkdirAll(keep, 0o755) == nil {
			for _, f := range []string{wanPcap, lanPcap, filepath.Join(ch.Dir, "charon.log"), filepath.Join(ch.Dir, "charon-timed.log")} {
				if b, err := os.ReadFile(f); err == nil {
					os.WriteFile(filepath.Join(keep, filepath.Base(f)), b, 0o644)
				}
			}
			for _, n := range []string{"n1", "n2", "n3"} {
				os.WriteFile(filepath.Join(keep, n+".log"), []byte(c.gws[n].logText()), 0o644)
			}
			t.Logf("captures and logs kept in %s", keep)
		}
	})
	if t.Failed() {
		c.diagnose(t)
	}

	// charon: one IKE_SA_INIT (the first), no retransmission it gave up
	// on, no message it ignored, the IKE SA up (the last rekey's).
	if n := strings.Count(clog, "generating IKE_SA_INIT request"); n != 1 {
		t.Errorf("charon sent %d IKE_SA_INIT requests, want 1", n)
	}
	for _, bad := range []string{"giving up after", ", expected "} {
		if n := strings.Count(clog, bad); n > 0 {
			t.Errorf("charon's log says %q %d times:\n%s", bad, n, grepLog(clog, bad))
		}
	}
	t.Logf("charon's retransmissions: %d\n%s", strings.Count(clog, "retransmit"), grepLog(clog, "retransmit"))
	nlog := c.gws[next].logText()
	t.Logf("%s's takeover of the IKE SA:\n%s\n%s\n%s", next, grepLog(nlog, "IKE SA taken over"), grepLog(nlog, "one ahead"),
		grepLog(nlog, "retransmitting the old active"))
	if s := parseSwanSAs(ch.Swanctl(t, "--list-sas", "--ike", swanConn)); s.ike[0] == "" || len(s.children) != 1 {
		t.Errorf("charon's SAs at the end: %+v", s)
	}

	// The wire: no IKE_SA_INIT after the kill; every request answered,
	// message IDs in order.
	ms := ikeMessages(t, wanPcap)
	kill := float64(killAt.UnixNano()) / 1e9
	exch := map[string]int{}
	for _, m := range ms {
		if m.at < kill {
			continue
		}
		if m.exch == 34 {
			t.Errorf("IKE_SA_INIT on the WAN %.0f ms after the kill (from %s)", (m.at-kill)*1000, m.src)
		}
		dir := "request"
		if m.response {
			dir = "response"
		}
		exch[fmt.Sprintf("%d/%s/%s", m.exch, m.src, dir)]++
	}
	t.Logf("IKE messages after the kill (exchange/sender/kind): %v", exch)
	t.Logf("IKE requests after the kill, each answered with its message ID: %d", checkMessageIDs(t, ms, kill))

	// Delivery: none twice, loss counted, the application's longest gap.
	for _, d := range []struct {
		name string
		f    *udpFlow
	}{{"hA->hB", fl.ab}, {"hB->hA", fl.ba}} {
		gap, lo, hi := d.f.gapBetween(killAt.Add(-time.Second), pausedAt)
		t.Logf("%s: %d sent, %d delivered, %d lost, longest gap from 1 s before the kill to the first pause %v (after #%d, before #%d); lost: %s", d.name, d.f.sent, len(d.f.got),
			int(d.f.sent)-len(d.f.got), gap.Round(time.Millisecond), lo, hi, d.f.lostRuns())
		if n := d.f.dups(); n > 0 {
			t.Errorf("%s: %d datagrams delivered twice", d.name, n)
		}
		if len(d.f.got) < int(d.f.sent)/2 {
			t.Errorf("%s: only %d of %d delivered", d.name, len(d.f.got), d.f.sent)
		}
	}

	// The WAN: IKE and ESP only, no (SPI, sequence number) twice.
	ikeNoLeak(t, wanPcap)
	seen := map[string]int{}
	dups := 0
	var out [][2]string // group -> peer: time, sender MAC
	for _, ln := range tshark(t, wanPcap, nil, "-Y", "esp", "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src",
		"-e", "ip.src", "-e", "esp.spi", "-e", "esp.sequence") {
		f := strings.Split(ln, "\t")
		if len(f) != 5 {
			continue
		}
		k := f[3] + " " + f[4]
		if seen[k]++; seen[k] == 2 {
			if dups++; dups <= 5 {
				t.Errorf("(SPI, sequence number) twice on the WAN: %s", k)
			}
		}
		if f[2] == clGroupWAN {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	if dups > 0 {
		t.Errorf("%d (SPI, sequence number) pairs sent more than once", dups)
	}
	var in [][2]string // delivered to hA: time, sender MAC
	for _, ln := range tshark(t, lanPcap, nil, "-Y", "ip.dst == "+clHostA, "-T", "fields", "-e", "frame.time_epoch", "-e", "eth.src") {
		if f := strings.Split(ln, "\t"); len(f) == 2 {
			in = append(in, [2]string{f[0], f[1]})
		}
	}
	t.Logf("captured: %d ESP frames, %d from the group; %d datagrams delivered to hA on the LAN", len(seen), len(out), len(in))
	if len(seen) < 5000 {
		t.Errorf("only %d ESP frames on the WAN", len(seen))
	}

	// Takeover: the old node's last frame to the next node's first (with
	// the flows paused at the kill, that is the pause).
	if mode == "dpd-in-flight" {
		t.Log("the flows were paused at the kill: no takeover time from the captures")
		return
	}
	i, _ := strconv.Atoi(strings.TrimPrefix(owner, "n"))
	for _, d := range []struct {
		name   string
		frames [][2]string
		mac    string
	}{{"WAN ESP group->charon", out, clMAC(1, i).String()}, {"LAN group->hA", in, clMAC(2, i).String()}} {
		last, first, to, ok := switchover(d.frames, d.mac)
		if !ok {
			t.Errorf("%s: no switch from %s to another node in the capture", d.name, d.mac)
			continue
		}
		t.Logf("%s: takeover %.0f ms (last frame of %s %.0f ms after the kill, first of %s)", d.name, (first-last)*1000, d.mac,
			(last-kill)*1000, to)
		if to == d.mac {
			t.Errorf("%s: the new sender is the killed node", d.name)
		}
	}
}

// gapBetween is the longest time between two consecutive first
// deliveries from one time to another, and the sequence numbers around
// it.
func (f *udpFlow) gapBetween(from, to time.Time) (time.Duration, uint64, uint64) {
	g := &udpFlow{arrivals: map[uint64]time.Time{}}
	for s, a := range f.arrivals {
		if a.After(from) && a.Before(to) {
			g.arrivals[s] = a
		}
	}
	return g.gap()
}

// lostRuns lists the runs of datagrams never delivered, as FIRST-LAST(N),
// at most 10 of them.
func (f *udpFlow) lostRuns() string {
	var runs []string
	n := 0
	for s := uint64(1); s <= f.sent; s++ {
		if f.got[s] > 0 {
			continue
		}
		e := s
		for e+1 <= f.sent && f.got[e+1] == 0 {
			e++
		}
		if n++; n <= 10 {
			runs = append(runs, fmt.Sprintf("%d-%d(%d)", s, e, e-s+1))
		}
		s = e
	}
	if n > 10 {
		runs = append(runs, fmt.Sprintf("and %d more runs", n-10))
	}
	return strings.Join(runs, " ")
}

// grepLog is the lines of a log that contain s.
func grepLog(log, s string) string {
	var out []string
	for _, ln := range strings.Split(log, "\n") {
		if strings.Contains(ln, s) {
			out = append(out, ln)
		}
	}
	return strings.Join(out, "\n")
}
