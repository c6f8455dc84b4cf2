package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
)

// The lab's addresses (scripts/lab.sh).
const (
	hostA4, hostB4 = "198.18.1.2", "198.18.2.2"
	hostA6, hostB6 = "2001:db8:a::2", "2001:db8:b::2"
	gwA4, gwB4     = "192.0.2.1", "192.0.2.2"
	gwA6, gwB6     = "2001:db8:f::1", "2001:db8:f::2"
	spiAB, spiBA   = 0x1001, 0x2001
)

var (
	wanA = [4]byte{192, 0, 2, 1}
	wanB = [4]byte{192, 0, 2, 2}
)

// tunnelKeys are the two directions' AES-128-GCM keys (key ‖ salt) and
// the outer addresses they are used between.
type tunnelKeys struct {
	ab, ba []byte
	family string // "IPv4" or "IPv6", as tshark's esp_sa table says
	a, b   string // gwA's and gwB's outer addresses

	// abInteg and baInteg are the HMAC keys of a non-AEAD suite.
	abInteg, baInteg []byte
}

// uat is tshark's esp_sa table for the two AES-128-GCM SAs of k.
func (k tunnelKeys) uat() []string {
	row := func(src, dst string, spi uint32, key []byte) string {
		return fmt.Sprintf("%q,%q,%q,%q,%q,%q,%q,%q", k.family, src, dst, fmt.Sprintf("0x%08x", spi),
			"AES-GCM with 16 octet ICV [RFC4106]", "0x"+hex.EncodeToString(key), "NULL", "")
	}
	return []string{row(k.a, k.b, spiAB, k.ab), row(k.b, k.a, spiBA, k.ba)}
}

type tunnelOpts struct {
	udp bool
	// badKeyAtB gives gwB an inbound key other than gwA's outbound key.
	badKeyAtB bool
	// oneArmB runs gwB on its wan0 alone (the lab's onearm variant).
	oneArmB bool
	// outer6 puts the tunnel on the WAN's IPv6 addresses.
	outer6 bool
	// queues is the number of queues each gateway serves (default 1).
	queues int
	// suite is the ESP suite (default aes128gcm16).
	suite string
	// mssClamp is both gateways' mss_clamp ("" leaves it out).
	mssClamp string
	// top is more top-level YAML for both gateways (one or more lines).
	top string
}

// configs writes the two gateways' configurations: a pair of static SAs
// each way, IPv4 and IPv6 inner, no ESN (tshark 4.0 cannot check ESN ICVs).
func (l *lab) configs(t *testing.T, o tunnelOpts) (string, string, tunnelKeys) {
	t.Helper()
	suite := o.suite
	if suite == "" {
		suite = "aes128gcm16"
	}
	su, err := sad.ParseSuite(suite)
	if err != nil {
		t.Fatal(err)
	}
	keyOf := func(n int) []byte {
		if n == 0 {
			return nil
		}
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	k := tunnelKeys{ab: keyOf(su.KeyLen()), ba: keyOf(su.KeyLen()), family: "IPv4", a: gwA4, b: gwB4,
		abInteg: keyOf(su.IntegKeyLen()), baInteg: keyOf(su.IntegKeyLen())}
	integ := func(key []byte) string {
		if key == nil {
			return ""
		}
		return "\n    integ_key: 0x" + hex.EncodeToString(key)
	}
	extra := ""
	if o.mssClamp != "" {
		extra = "\nmss_clamp: " + o.mssClamp
	}
	if o.top != "" {
		extra += "\n" + strings.TrimSuffix(o.top, "\n")
	}
	if o.outer6 {
		k.family, k.a, k.b = "IPv6", gwA6, gwB6
	}
	atB := k.ab
	if o.badKeyAtB {
		atB = keyOf(su.KeyLen())
	}
	encap := ""
	if o.udp {
		encap = "\n    udp_encap: {src: 4500, dst: 4500}"
	}
	lanB := "lan0"
	if o.oneArmB {
		lanB = "wan0"
	}
	// gwA's worker is pinned to the last CPU, gwB's floats: both paths run.
	queues := max(o.queues, 1)
	cpuA := fmt.Sprintf("[%d]", runtime.NumCPU()-1)
	if queues > 1 {
		cpuA = "[]"
	}
	gw := func(node, lan, cpu string, local, remote string, out, in uint32, outKey, inKey []byte, l4, r4, l6, r6, outInteg, inInteg string) string {
		return fmt.Sprintf(`# e2e lab %[1]s
interfaces: {lan: %[16]s, wan: wan0, queues: %[18]d, xdp_mode: auto, cpus: %[17]s}
default_action: discard%[22]s
pin_path: %[2]s
on_stop: detach
control: %[3]s
state_dir: %[15]s
metrics: 127.0.0.1:9301
sas:
  - name: out
    spi: 0x%[6]x
    dir: out
    local: %[4]s
    remote: %[5]s
    suite: %[19]s
    key: 0x%[8]s%[20]s%[10]s
    selectors: [{src: %[11]s, dst: %[12]s}, {src: %[13]s, dst: %[14]s}]
  - name: in
    spi: 0x%[7]x
    dir: in
    local: %[4]s
    remote: %[5]s
    suite: %[19]s
    key: 0x%[9]s%[21]s%[10]s
    replay_window: 1024
    selectors: [{src: %[12]s, dst: %[11]s}, {src: %[14]s, dst: %[13]s}]
policies:
  - {name: v4, src: %[11]s, dst: %[12]s, action: protect, sa: out}
  - {name: v6, src: %[13]s, dst: %[14]s, action: protect, sa: out}
`, l.prefix, l.pinPath(node), l.sockPath(node), local, remote, out, in,
			hex.EncodeToString(outKey), hex.EncodeToString(inKey), encap, l4, r4, l6, r6,
			filepath.Join(l.dir, node+"-state"), lan, cpu, queues, suite, outInteg, inInteg, extra)
	}
	a := filepath.Join(l.dir, "gw-a.yaml")
	b := filepath.Join(l.dir, "gw-b.yaml")
	if err := os.WriteFile(a, []byte(gw("gA", "lan0", cpuA, k.a, k.b, spiAB, spiBA, k.ab, k.ba, "198.18.1.0/24", "198.18.2.0/24", "2001:db8:a::/64", "2001:db8:b::/64", integ(k.abInteg), integ(k.baInteg))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(gw("gB", lanB, "[]", k.b, k.a, spiBA, spiAB, k.ba, atB, "198.18.2.0/24", "198.18.1.0/24", "2001:db8:b::/64", "2001:db8:a::/64", integ(k.baInteg), integ(k.abInteg))), 0o600); err != nil {
		t.Fatal(err)
	}
	// The keys were made just now: declare them new, once.
	newKeys(t, a)
	newKeys(t, b)
	return a, b, k
}

// newKeys runs `xdpsec newkeys -c cfg`: the configuration's static keys
// are new, so the daemon may start them at sequence number 1.
func newKeys(t *testing.T, cfg string) {
	t.Helper()
	if out, err := exec.Command(xdpsecBin, "newkeys", "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("xdpsec newkeys -c %s: %v\n%s", cfg, err, out)
	}
}

// stopClean stops a gateway with SIGTERM and checks that it left nothing:
// no XDP program on its interfaces, no pins, no control socket.
func (l *lab) stopClean(t *testing.T, g *gateway) {
	t.Helper()
	if err := g.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("xdpsec in %s exited with %v after SIGTERM\n%s", g.node, err, g.logText())
	}
	if att := l.xdpAttached(t, g.node); len(att) > 0 {
		t.Errorf("after SIGTERM, %s still has XDP attached on %v", g.node, att)
	}
	if _, err := os.Stat(l.pinPath(g.node)); err == nil {
		t.Errorf("after SIGTERM, pins remain under %s", l.pinPath(g.node))
	}
	if _, err := os.Stat(l.sockPath(g.node)); err == nil {
		t.Errorf("after SIGTERM, the control socket %s remains", l.sockPath(g.node))
	}
}

// noLeak checks a WAN capture for plaintext: no frame with a protected
// address in any IP header (tshark's ip.addr also matches headers quoted
// in ICMP errors), and every IP frame ESP (raw or in UDP), ICMPv6
// (neighbour discovery between the gateways), or the next-hop tables'
// neighbour solicitation (an empty datagram to the discard port, RFC 863)
// and the gateway's ICMP answer to it, or IGMP (a kernel's multicast
// membership reports from 0.0.0.0, which the lab's bridge sends at times).
func noLeak(t *testing.T, pcap string) (esp int) {
	t.Helper()
	leak := tshark(t, pcap, nil, "-Y", "ip.addr==198.18.0.0/15 or ipv6.addr==2001:db8:a::/64 or ipv6.addr==2001:db8:b::/64")
	if len(leak) > 0 {
		t.Errorf("plaintext on the WAN: %d frames with protected addresses, e.g.\n%s", len(leak), strings.Join(leak[:min(5, len(leak))], "\n"))
	}
	other := tshark(t, pcap, nil, "-Y", "(ip or ipv6) and not esp and not icmpv6 and not igmp and not (udp.dstport == 9 and udp.length == 8) and not (icmp.type == 3 and icmp.code == 3)")
	if len(other) > 0 {
		t.Errorf("non-ESP IP traffic on the WAN: %d frames, e.g.\n%s", len(other), strings.Join(other[:min(5, len(other))], "\n"))
	}
	return len(tshark(t, pcap, nil, "-Y", "esp"))
}

// decryptAll has tshark decrypt the ESP frames among the first
// decryptFrames frames of a capture with the configured keys and checks
// every ICV is good.
func decryptAll(t *testing.T, pcap string, k tunnelKeys) {
	t.Helper()
	good, n := verifyESP(t, pcap, k.uat())
	t.Logf("tshark decrypted %d/%d ESP frames with good ICVs", good, n)
}

type iperfResult struct {
	End struct {
		SumReceived struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		Sum struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			LostPercent   float64 `json:"lost_percent"`
			Packets       uint64  `json:"packets"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperf runs an iperf3 server in hostB and a client in hostA.
func (l *lab) iperf(t *testing.T, dst string, args ...string) iperfResult {
	t.Helper()
	srv := l.cmd(context.Background(), "hB", "iperf3", "-s", "-1", "-B", dst)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	var out string
	var err error
	// The server needs a moment to listen.
	for i := 0; i < 20; i++ {
		time.Sleep(100 * time.Millisecond)
		out, err = l.run("hA", 20*time.Second, append([]string{"iperf3", "-c", dst, "-J"}, args...)...)
		if err == nil || !strings.Contains(out, "unable to connect") {
			break
		}
	}
	var r iperfResult
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		t.Fatalf("iperf3 %v: %v: %v\n%s", args, err, jerr, out)
	}
	if r.Error != "" || err != nil {
		t.Fatalf("iperf3 %v: %v %s", args, err, r.Error)
	}
	return r
}

// sendRaw puts frames on dev in node as they are (AF_PACKET).
func (l *lab) sendRaw(t *testing.T, node, dev string, frames [][]byte) {
	t.Helper()
	err := l.inNetns(node, func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifc.Index}); err != nil {
			return err
		}
		for _, f := range frames {
			if _, err := unix.Write(fd, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send on %s in %s: %v", dev, node, err)
	}
}

// TestGateway runs every scenario on one lab, one after the other.
func TestGateway(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	t.Run("esp", func(t *testing.T) { testTraffic(t, l, tunnelOpts{}, true) })
	t.Run("esp-in-udp", func(t *testing.T) { testTraffic(t, l, tunnelOpts{udp: true}, true) })
	t.Run("esp-outer-ipv6", func(t *testing.T) { testTraffic(t, l, tunnelOpts{outer6: true}, false) })
	t.Run("attacks", func(t *testing.T) { testAttacks(t, l) })
	t.Run("key-mismatch", func(t *testing.T) { testKeyMismatch(t, l) })
	t.Run("kill9", func(t *testing.T) { testKill9(t, l) })
}

// testTraffic: ping and iperf3 both ways, v4 and v6 inner; only ESP on
// the WAN, all of it decrypted by tshark with good ICVs; SIGTERM leaves
// nothing behind.
func testTraffic(t *testing.T, l *lab, o tunnelOpts, iperf bool) {
	udp := o.udp
	a, b, keys := l.configs(t, o)
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	for _, p := range [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}} {
		l.warmUp(t, p[0], p[1])
	}
	// Full frames while pinging, for tshark to decrypt.
	capPing := l.capture(t, "wan", "a0", 0)
	for _, p := range [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}} {
		if got := l.pingAll(p[0], p[1], 10); got != 10 {
			t.Errorf("ping %s -> %s: %d of 10 answered\n%s", p[0], p[1], got, l.diagnose())
		}
	}
	pingPcap := capPing.stop()
	if n := noLeak(t, pingPcap); n < 80 {
		t.Errorf("%d ESP frames on the WAN for 40 echo exchanges, want at least 80", n)
	}
	decryptAll(t, pingPcap, keys)

	out, err := exec.Command(xdpsecBin, "show", "sa", "--socket", l.sockPath("gA")).Output()
	if err != nil || !strings.Contains(string(out), "#pkts encaps: ") || !strings.Contains(string(out), "#pkts decaps: ") {
		t.Errorf("xdpsec show sa: %v\n%s", err, out)
	}
	if s, err := control.Query(l.sockPath("gA")); err != nil || len(s.Workers) != 1 || s.Workers[0].CPU != runtime.NumCPU()-1 {
		t.Errorf("gwA's worker is not on CPU %d: %v %+v", runtime.NumCPU()-1, err, s)
	}
	if iperf {
		testIperf(t, l)
	}
	sasA, sasB := gA.showSAs(t), gB.showSAs(t)
	for _, s := range []struct {
		who string
		sa  control.SA
	}{{"gA out", sasA["out"]}, {"gA in", sasA["in"]}, {"gB out", sasB["out"]}, {"gB in", sasB["in"]}} {
		if s.sa.Packets == 0 {
			t.Errorf("%s: SA 0x%08x counted no packets", s.who, s.sa.SPI)
		}
		if s.sa.Drops["auth_failed"] != 0 {
			t.Errorf("%s: %d ICV failures", s.who, s.sa.Drops["auth_failed"])
		}
		if udp && s.sa.UDPDst != 4500 {
			t.Errorf("%s: UDP encapsulation not shown: %+v", s.who, s.sa)
		}
	}
	// Prometheus sees what show sees.
	metrics := l.scrape(t, "gA", "127.0.0.1:9301")
	want := fmt.Sprintf(`xdpsec_sa_packets_total{dir="out",sa="out",spi="0x%08x"}`, spiAB)
	if !strings.Contains(metrics, want) || !strings.Contains(metrics, "xdpsec_xdp_packets_total{") {
		t.Errorf("/metrics lacks %s:\n%.2000s", want, metrics)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// testIperf runs iperf3 TCP (IPv4 and IPv6) and UDP through the tunnel
// and checks the WAN for plaintext meanwhile.
func testIperf(t *testing.T, l *lab) {
	// Headers only while iperf3 runs: the leak check needs no more.
	capIperf := l.capture(t, "wan", "a0", 128)
	tcp := l.iperf(t, hostB4, "-t", "2", "-b", "300M")
	if tcp.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 TCP over IPv4: nothing received")
	}
	t.Logf("iperf3 TCP/IPv4: %.0f Mbit/s", tcp.End.SumReceived.BitsPerSecond/1e6)
	udpRes := l.iperf(t, hostB4, "-u", "-t", "2", "-b", "20M")
	if udpRes.End.Sum.Packets == 0 || udpRes.End.Sum.LostPercent > 10 {
		t.Errorf("iperf3 UDP over IPv4: %d packets, %.1f%% lost", udpRes.End.Sum.Packets, udpRes.End.Sum.LostPercent)
	}
	t.Logf("iperf3 UDP/IPv4 at 20 Mbit/s: %.2f%% lost", udpRes.End.Sum.LostPercent)
	tcp6 := l.iperf(t, hostB6, "-t", "2", "-b", "300M")
	if tcp6.End.SumReceived.Bytes == 0 {
		t.Errorf("iperf3 TCP over IPv6: nothing received")
	}
	t.Logf("iperf3 TCP/IPv6: %.0f Mbit/s", tcp6.End.SumReceived.BitsPerSecond/1e6)
	noLeak(t, capIperf.stop())
}

// scrape fetches /metrics from addr inside node's namespace.
func (l *lab) scrape(t *testing.T, node, addr string) string {
	t.Helper()
	var body []byte
	err := l.inNetns(node, func() error {
		// Dialled on this thread, so in node's namespace; net/http would
		// dial from another goroutine.
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			return err
		}
		body, err = io.ReadAll(io.LimitReader(c, 4<<20))
		return err
	})
	if err != nil {
		t.Fatalf("scrape %s in %s: %v", addr, node, err)
	}
	if !bytes.HasPrefix(body, []byte("HTTP/1.0 200")) && !bytes.HasPrefix(body, []byte("HTTP/1.1 200")) {
		t.Fatalf("scrape %s in %s: %.200s", addr, node, body)
	}
	return string(body)
}

// testAttacks: captured ESP re-sent, unknown SPIs, truncated and forged
// ESP are dropped and counted, and traffic goes on.
func testAttacks(t *testing.T, l *lab) {
	a, b, _ := l.configs(t, tunnelOpts{})
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)
	c := l.capture(t, "wan", "a0", 0)
	if got := l.pingAll("hA", hostB4, 5); got != 5 {
		t.Errorf("ping: %d of 5 answered", got)
	}
	pcap := c.stop()
	frames, err := readPcap(pcap)
	if err != nil {
		t.Fatal(err)
	}
	esp := espFrames(frames, wanA, wanB, 4500)
	if len(esp) < 5 {
		t.Fatalf("captured %d ESP frames from gwA to gwB in %d frames, want at least 5:\n%s", len(esp), len(frames), strings.Join(tshark(t, pcap, nil), "\n"))
	}
	inB := gB.showSAs(t)["in"]
	st0 := gB.showStats(t)

	// Replay: the very frames gwB accepted a moment ago.
	var replay [][]byte
	for _, e := range esp {
		replay = append(replay, e.frame)
	}
	l.sendRaw(t, "wan", "b0", replay)

	// Unknown SPI: dropped in XDP.
	var unknown [][]byte
	for i := 0; i < 3; i++ {
		e := esp[i].clone()
		binary.BigEndian.PutUint32(e.frame[e.espOff:], 0xdead0000+uint32(i))
		unknown = append(unknown, e.frame)
	}
	l.sendRaw(t, "wan", "b0", unknown)

	// Truncated: the SPI, the sequence number and two bytes.
	var short [][]byte
	for i := 0; i < 3; i++ {
		e := esp[i].clone()
		e.truncate(10)
		short = append(short, e.frame)
	}
	l.sendRaw(t, "wan", "b0", short)

	// Forged: a fresh sequence number, random ciphertext and ICV.
	var forged [][]byte
	for i := 0; i < 3; i++ {
		e := esp[i].clone()
		binary.BigEndian.PutUint32(e.frame[e.espOff+4:], uint32(inB.ReplayTop)+100+uint32(i))
		rand.Read(e.frame[e.espOff+8:])
		forged = append(forged, e.frame)
	}
	l.sendRaw(t, "wan", "b0", forged)

	time.Sleep(200 * time.Millisecond)
	inB2 := gB.showSAs(t)["in"]
	st1 := gB.showStats(t)
	if d := inB2.Drops["replay"] - inB.Drops["replay"]; d != uint64(len(replay)) {
		t.Errorf("replayed %d frames: replay drops went up by %d", len(replay), d)
	}
	if d := st1.XDP["wan"]["esp_unknown_spi"] - st0.XDP["wan"]["esp_unknown_spi"]; d != 3 {
		t.Errorf("3 frames with unknown SPIs: XDP counted %d", d)
	}
	if d := st1.workerDrop("too_short") - st0.workerDrop("too_short"); d != 3 {
		t.Errorf("3 truncated frames: worker too_short drops went up by %d (drops %v)", d, st1.Workers[0].Drops)
	}
	if d := inB2.Drops["auth_failed"] - inB.Drops["auth_failed"]; d != 3 {
		t.Errorf("3 forged frames: ICV failures went up by %d", d)
	}
	if inB2.Packets != inB.Packets {
		t.Errorf("attack frames delivered: SA packets %d -> %d", inB.Packets, inB2.Packets)
	}
	if got := l.pingAll("hA", hostB4, 5); got != 5 {
		t.Errorf("ping after the attacks: %d of 5 answered", got)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// testKeyMismatch: gwB cannot verify what gwA sends, so nothing is
// delivered and the ICV failures are counted.
func testKeyMismatch(t *testing.T, l *lab) {
	a, b, _ := l.configs(t, tunnelOpts{badKeyAtB: true})
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	if got := l.ping("hA", hostB4, 10); got != 0 {
		t.Errorf("with mismatched keys %d pings were answered", got)
	}
	in := gB.showSAs(t)["in"]
	if in.Drops["auth_failed"] < 5 {
		t.Errorf("gwB counted %d ICV failures for 10 pings (drops %v)", in.Drops["auth_failed"], in.Drops)
	}
	if in.Packets != 0 {
		t.Errorf("gwB delivered %d packets it could not have verified", in.Packets)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// routeFarSite gives gwA's kernel real routes to site B (on), or makes
// site B unreachable again (off, as lab.sh leaves it).
func (l *lab) routeFarSite(t *testing.T, on bool) {
	t.Helper()
	v4, v6 := []string{"198.18.2.0/24", "via", gwB4}, []string{"2001:db8:b::/64", "via", "2001:db8:f::2"}
	if !on {
		v4, v6 = []string{"unreachable", "198.18.2.0/24"}, []string{"unreachable", "2001:db8:b::/64"}
	}
	for _, args := range [][]string{append([]string{"route", "replace"}, v4...), append([]string{"-6", "route", "replace"}, v6...)} {
		if out, err := l.run("gA", 5*time.Second, append([]string{"ip"}, args...)...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
}

// pingThrough has hostA send v4 and v6 echo requests to hostB every
// interval seconds for seconds seconds, across whatever the test does to
// the gateways meanwhile; wait waits for the pings to end.
func (l *lab) pingThrough(t *testing.T, interval string, seconds int) (wait func()) {
	t.Helper()
	var ps []*exec.Cmd
	for _, dst := range []string{hostB4, hostB6} {
		p := l.cmd(context.Background(), "hA", "ping", "-n", "-q", "-i", interval, "-w", strconv.Itoa(seconds), dst)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return func() {
		for _, p := range ps {
			p.Wait()
		}
	}
}

// testKill9: gwA killed while hostA sends leaks not one plaintext packet
// (its pinned program fails closed), and a restarted gwA carries traffic
// again at once. The same for a SIGTERM with the production default
// on_stop: keep (the lab's configurations say detach): the stopped daemon
// leaves its programs attached and the next start takes them over.
func testKill9(t *testing.T, l *lab) {
	a, b, _ := l.configs(t, tunnelOpts{})
	keep := filepath.Join(filepath.Dir(a), "gA-keep.yaml")
	y, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(y, []byte("on_stop: detach")) {
		t.Fatalf("%s has no on_stop: detach line", a)
	}
	if err := os.WriteFile(keep, bytes.Replace(y, []byte("on_stop: detach"), []byte("on_stop: keep"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	gA := l.start(t, "gA", keep)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)
	l.warmUp(t, "hA", hostB6)
	// Give gwA's kernel real routes to the far site, so that only the
	// pinned XDP program stands between hostA's packets and the WAN.
	l.routeFarSite(t, true)
	defer l.routeFarSite(t, false)
	c := l.capture(t, "wan", "a0", 0)
	// hostA sends throughout: v4 and v6 echo requests every 10 ms.
	waitPings := l.pingThrough(t, "0.01", 6)
	time.Sleep(500 * time.Millisecond)
	gA.stop(t, syscall.SIGKILL)
	time.Sleep(time.Second)
	if att := l.xdpAttached(t, "gA"); len(att) != 2 {
		t.Errorf("after kill -9, XDP attached on %v, want lan0 and wan0 (fail closed)", att)
	}
	gAk := l.start(t, "gA", keep)
	time.Sleep(500 * time.Millisecond)
	if err := gAk.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM with on_stop: keep: exit %v\n%s", err, gAk.logText())
	}
	if att := l.xdpAttached(t, "gA"); len(att) != 2 {
		t.Errorf("after SIGTERM with on_stop: keep, XDP attached on %v, want lan0 and wan0 (fail closed)", att)
	}
	if _, err := os.Stat(l.pinPath("gA")); err != nil {
		t.Errorf("after SIGTERM with on_stop: keep, the pins are gone: %v", err)
	}
	time.Sleep(time.Second)
	gA2 := l.start(t, "gA", a)
	waitPings()
	l.warmUp(t, "hA", hostB4)
	if got := l.pingAll("hA", hostB4, 10); got != 10 {
		t.Errorf("after the restart: %d of 10 pings answered", got)
	}
	if got := l.pingAll("hA", hostB6, 10); got != 10 {
		t.Errorf("after the restart: %d of 10 IPv6 pings answered", got)
	}
	noLeak(t, c.stop())
	st := gA2.showStats(t)
	if st.XDP["lan"]["xsk_missing"] == 0 {
		t.Errorf("the LAN program counted no drops for the missing socket while the daemon was dead: %v", st.XDP["lan"])
	}
	// The restarted daemon resumed its sequence numbers past the dead
	// one's: gwB saw no replays.
	if r := gB.showSAs(t)["in"].Drops["replay"]; r != 0 {
		t.Errorf("gwB dropped %d packets of the restarted gwA as replays", r)
	}
	s, err := control.Query(l.sockPath("gA"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range s.Interfaces {
		if !ifc.Reused {
			t.Errorf("restarted daemon did not take over the pinned attachment on %s", ifc.Name)
		}
	}

	// A second daemon on the same configuration is refused before it
	// touches the first one's program and sockets.
	out, err := l.run("gA", 10*time.Second, xdpsecBin, "run", "-c", a)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "already serves") {
		t.Errorf("second daemon: %v\n%s", err, out)
	}
	if got := l.pingAll("hA", hostB4, 5); got != 5 {
		t.Errorf("after a refused second daemon: %d of 5 pings answered", got)
	}

	// After another kill -9, `xdpsec run --cleanup` removes what the dead
	// daemon left: the kernel routes on its own again.
	gA2.stop(t, syscall.SIGKILL)
	if out, err := l.run("gA", 10*time.Second, xdpsecBin, "run", "--cleanup", "-c", a); err != nil {
		t.Errorf("xdpsec run --cleanup: %v\n%s", err, out)
	}
	if att := l.xdpAttached(t, "gA"); len(att) > 0 {
		t.Errorf("after --cleanup, XDP still attached on %v", att)
	}
	if _, err := os.Stat(l.pinPath("gA")); err == nil {
		t.Errorf("after --cleanup, pins remain under %s", l.pinPath("gA"))
	}
	l.stopClean(t, gB)
}

// TestOneArm: gwB serves hostB and the WAN on one interface (lab.sh's
// onearm variant): ESP to gwB's own address is decapsulated and sent back
// out the same interface, and hostB's traffic to the far site is sealed
// and sent out it too.
func TestOneArm(t *testing.T) {
	needLab(t)
	l := newLab(t, "onearm")
	a, b, keys := l.configs(t, tunnelOpts{oneArmB: true})
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	for _, p := range [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}} {
		l.warmUp(t, p[0], p[1])
	}
	c := l.capture(t, "wan", "a0", 0)
	for _, p := range [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}} {
		if got := l.pingAll(p[0], p[1], 10); got != 10 {
			t.Errorf("ping %s -> %s: %d of 10 answered\n%s", p[0], p[1], got, l.diagnose())
		}
	}
	pcap := c.stop()
	decryptAll(t, pcap, keys)
	if leak := tshark(t, pcap, nil, "-Y", "ip.addr==198.18.1.0/24 or ipv6.addr==2001:db8:a::/64"); len(leak) > 0 {
		t.Errorf("site A's traffic in clear on gwA's WAN link: %d frames", len(leak))
	}
	tcp := l.iperf(t, hostB4, "-t", "2", "-b", "200M")
	if tcp.End.SumReceived.Bytes == 0 {
		t.Error("iperf3 TCP through the one-arm gateway: nothing received")
	}
	sas := gB.showSAs(t)
	if sas["out"].Packets < 20 || sas["in"].Packets < 20 {
		t.Errorf("one-arm gwB: %d packets out, %d in", sas["out"].Packets, sas["in"].Packets)
	}
	s, err := control.Query(l.sockPath("gB"))
	if err != nil {
		t.Fatal(err)
	}
	if !s.OneArm || len(s.Interfaces) != 1 || s.Interfaces[0].Role != "onearm" {
		t.Errorf("gwB is not one-arm: %+v", s.Interfaces)
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// TestMultiQueue: with two queues per interface each gateway runs two
// workers, each with its own sockets and XSKMAP slot, and traffic spread
// over the queues goes through.
func TestMultiQueue(t *testing.T) {
	needLab(t)
	l := newLabQueues(t, "", 2)
	a, b, _ := l.configs(t, tunnelOpts{queues: 2})
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	l.warmUp(t, "hA", hostB4)
	if got := l.pingAll("hA", hostB4, 10); got != 10 {
		t.Errorf("ping: %d of 10 answered", got)
	}
	// Eight flows: the sender's veth spreads them over its two queues.
	tcp := l.iperf(t, hostB4, "-t", "2", "-P", "8", "-b", "50M")
	if tcp.End.SumReceived.Bytes == 0 {
		t.Error("iperf3 over two queues: nothing received")
	}
	for _, g := range []*gateway{gA, gB} {
		s, err := control.Query(l.sockPath(g.node))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Workers) != 2 || len(s.XSK) != 4 {
			t.Fatalf("%s: %d workers, %d sockets; want 2 and 4", g.node, len(s.Workers), len(s.XSK))
		}
		var rx uint64
		for _, w := range s.Workers {
			if w.Counters["polls"] == 0 {
				t.Errorf("%s: worker %d never polled", g.node, w.ID)
			}
			rx += w.Counters["rx_packets"]
			t.Logf("%s worker %d (queue %d): rx %d, encaps %d, decaps %d", g.node, w.ID, w.Queue,
				w.Counters["rx_packets"], w.Counters["encaps"], w.Counters["decaps"])
		}
		if rx < 1000 {
			t.Errorf("%s: workers received %d packets in all", g.node, rx)
		}
	}
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}

// TestRunCheck: `xdpsec run --check` accepts the commented example and
// names file, line and field of a mistake, never printing a key.
func TestRunCheck(t *testing.T) {
	needBinary(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xdpsecBin, "run", "--check", "-c", filepath.Join(root, "scripts", "lab", "gw-a.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("the example configuration does not check: %v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	const secret = "00112233445566778899aabbccddeeff0011"
	cfg := "interfaces: {lan: lan0, wan: wan0}\nsas:\n  - {name: x, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2,\n     suite: aes128gcm16, key: 0x" + secret + "}\n"
	if err := os.WriteFile(bad, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xdpsecBin, "run", "--check", "-c", bad)
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("bad configuration: exit %v, want 1\n%s", err, out)
	}
	if want := bad + ":4: sas[0].key: 18 bytes"; !strings.Contains(string(out), want) {
		t.Errorf("error %q does not say %q", out, want)
	}
	if strings.Contains(string(out), secret[:8]) {
		t.Errorf("the error prints the key: %s", out)
	}
}
