package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scapyMissing says why packets cannot be crafted here ("" when they can).
func scapyMissing() string {
	if out, err := exec.Command("/usr/bin/python3", "-c", "import scapy.all").CombinedOutput(); err != nil {
		return err.Error() + " " + string(out)
	}
	return ""
}

// needScapy skips a test that crafts packets when /usr/bin/python3 cannot
// import scapy.
func needScapy(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if why := scapyMissing(); why != "" {
		t.Skipf("e2e inbound: needs /usr/bin/python3 with scapy (Debian: python3-scapy; scripts/install-deps.sh installs it): %s", why)
	}
	return filepath.Join(root, "test", "e2e", "testdata", "inject.py")
}

// mac is dev's hardware address in node.
func (l *lab) mac(t *testing.T, node, dev string) string {
	t.Helper()
	out, err := l.run(node, 5*time.Second, "ip", "-j", "link", "show", dev)
	if err != nil {
		t.Fatalf("ip link show %s in %s: %v\n%s", dev, node, err, out)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show %s: %v %s", dev, err, out)
	}
	return links[0].Address
}

// injection is a cleartext class sent from the WAN bridge towards a
// gateway, and the XDP counter that must count every frame of it.
type injection struct {
	class, src, dst string
	counter         string
}

// injectTarget is where the frames go and who must never see them.
type injectTarget struct {
	gw      string // the gateway's node
	wan     string // its WAN interface
	program string // the XDP counters' set: "wan" or "onearm"
	host    string // the protected host's node (its eth0 is captured)
	peer    string // an address the tunnel carries to host's side, pinged during the injection
	pinger  string // the node that pings peer
}

var inboundDropCounters = []string{"in_protect_drop", "in_discard", "in_default_drop", "in_unsure_drop", "lan_discard"}

// testInjection sends every class in turn from the WAN bridge in clear,
// while real traffic crosses the tunnel: each class is counted by its
// counter, frame for frame, nothing of it reaches the protected host (a
// capture there, filtered on frames the gateway forwarded), and the pings
// through the tunnel are answered.
func testInjection(t *testing.T, l *lab, g *gateway, tg injectTarget, classes []injection) {
	script := needScapy(t)
	dstMAC := l.mac(t, tg.gw, tg.wan)
	gwLANMAC := l.mac(t, tg.gw, map[bool]string{true: tg.wan, false: "lan0"}[tg.program == "onearm"])
	l.warmUp(t, tg.pinger, tg.peer)
	c := l.capture(t, tg.host, "eth0", 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ping := l.cmd(ctx, tg.pinger, "ping", "-n", "-q", "-i", "0.05", "-W", "1", tg.peer)
	var pingOut strings.Builder
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	pingDone := make(chan struct{})
	go func() { ping.Wait(); close(pingDone) }()

	sent := 0
	for _, in := range classes {
		before := g.showStats(t).XDP[tg.program]
		out, err := l.run("wan", 30*time.Second, "/usr/bin/python3", script, "br0", dstMAC, in.class, in.src, in.dst)
		if err != nil {
			t.Fatalf("inject %s: %v\n%s", in.class, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		n, err := strconv.Atoi(lines[len(lines)-1])
		if err != nil || n == 0 {
			t.Fatalf("inject %s printed %q", in.class, out)
		}
		sent += n
		// The counters are read right after the frames left: XDP runs
		// in the sender's softirq on veth, but leave it a moment.
		var after map[string]uint64
		deadline := time.Now().Add(2 * time.Second)
		for {
			after = g.showStats(t).XDP[tg.program]
			if after[in.counter]-before[in.counter] >= uint64(n) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		for _, ctr := range inboundDropCounters {
			want := uint64(0)
			if ctr == in.counter {
				want = uint64(n)
			}
			if d := after[ctr] - before[ctr]; d != want {
				t.Errorf("%s %s -> %s: %s moved by %d, want %d", in.class, in.src, in.dst, ctr, d, want)
			}
		}
		t.Logf("%-8s %s -> %s: %d frames, %s +%d", in.class, in.src, in.dst, n, in.counter, after[in.counter]-before[in.counter])
	}

	time.Sleep(300 * time.Millisecond)
	ping.Process.Signal(syscall.SIGINT)
	select {
	case <-pingDone:
	case <-time.After(5 * time.Second):
		ping.Process.Kill()
		<-pingDone
	}
	pcap := c.stop()

	m := regexpPing.FindStringSubmatch(pingOut.String())
	if m == nil {
		t.Fatalf("ping during the injection: %s", pingOut.String())
	}
	tx, _ := strconv.Atoi(m[1])
	rx, _ := strconv.Atoi(m[2])
	t.Logf("during the injection %d of %d pings %s -> %s were answered through the tunnel", rx, tx, tg.pinger, tg.peer)
	if tx < 20 || rx < tx*95/100 {
		t.Errorf("tunnel traffic during the injection: %d of %d pings answered\n%s", rx, tx, l.diagnose())
	}

	// What the gateway forwarded to the host from the injected sources:
	// the tunnel's own echo replies aside, nothing.
	var srcs []string
	for _, in := range classes {
		if strings.Contains(in.src, ":") {
			srcs = append(srcs, "ipv6.src=="+in.src)
		} else {
			srcs = append(srcs, "ip.src=="+in.src)
		}
	}
	filter := "eth.src==" + gwLANMAC + " and (" + strings.Join(srcs, " or ") + ") and not (icmp.type==0 or icmpv6.type==129)"
	if got := tshark(t, pcap, nil, "-Y", filter); len(got) > 0 {
		t.Errorf("%d injected frames reached %s:\n%s", len(got), tg.host, strings.Join(got, "\n"))
	}
	if echo := tshark(t, pcap, nil, "-Y", "eth.src=="+gwLANMAC+" and (icmp.type==0 or icmp.type==8)"); len(echo) == 0 {
		t.Errorf("the capture on %s holds no tunnel traffic: it cannot witness anything", tg.host)
	}
	t.Logf("%d injected frames sent", sent)
}

var regexpPing = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// spoofClasses are the injections for a gateway protecting lan (v4, v6)
// from a peer whose protected hosts are peer (v4, v6), with wan4/wan6
// unprotected WAN addresses: what comes from the peer's prefix is counted
// as spoofed, what comes from the WAN as no policy's.
func spoofClasses(lan4, lan6, peer4, peer6, wan4, wan6, spoofed, other string) []injection {
	return []injection{
		{"udp", peer4, lan4, spoofed},
		{"tcp-syn", peer4, lan4, spoofed},
		{"icmp", peer4, lan4, spoofed},
		{"udp6", peer6, lan6, spoofed},
		{"tcp-syn6", peer6, lan6, spoofed},
		{"icmp6", peer6, lan6, spoofed},
		{"frag4", peer4, lan4, spoofed},
		{"frag6", peer6, lan6, spoofed},
		{"udp", wan4, lan4, other},
		{"icmp", gwB4, lan4, other},
		{"tcp-syn", wan4, lan4, other},
		{"frag4", wan4, lan4, other},
		{"udp6", wan6, lan6, other},
		{"frag6", wan6, lan6, other},
	}
}

// TestInboundInjection: static SAs, two-arm gwA. Cleartext sent onto the
// WAN towards gwA with sources inside site B (which gwA only accepts
// through the SA) and from WAN addresses is dropped in XDP and counted;
// hostA sees none of it while the tunnel carries pings.
func TestInboundInjection(t *testing.T) {
	needLab(t)
	needScapy(t)
	l := newLab(t, "")
	a, b, _ := l.configs(t, tunnelOpts{})
	gA := l.start(t, "gA", a)
	l.start(t, "gB", b)
	testInjection(t, l, gA, injectTarget{gw: "gA", wan: "wan0", program: "wan", host: "hA", peer: hostB4, pinger: "hA"},
		spoofClasses(hostA4, hostA6, hostB4, hostB6, "192.0.2.99", "2001:db8:f::99", "in_protect_drop", "in_default_drop"))
	// Management traffic to the gateway itself still works.
	if got := l.ping("gB", gwA4, 3); got != 3 {
		t.Errorf("gwB -> gwA's WAN address (management): %d of 3 answered", got)
	}
	if got := l.ping("gB", gwA6, 3); got != 3 {
		t.Errorf("gwB -> gwA's WAN IPv6 address: %d of 3 answered", got)
	}
}

// TestInboundInjectionIKE: the same for Child SAs negotiated with IKEv2:
// the connection's selectors (and what the responder narrowed) are
// mirrored inbound too, and IKE itself keeps reaching the daemon.
func TestInboundInjectionIKE(t *testing.T) {
	needLab(t)
	needScapy(t)
	l := newLab(t, "")
	a, b := l.ikeConfigs(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "start")
	gB := l.start(t, "gB", b)
	gA := l.start(t, "gA", a)
	waitIKE(t, l.sockPath("gA"), 1, 10*time.Second)
	waitIKE(t, l.sockPath("gB"), 1, 5*time.Second)
	testInjection(t, l, gA, injectTarget{gw: "gA", wan: "wan0", program: "wan", host: "hA", peer: hostB4, pinger: "hA"},
		spoofClasses(hostA4, hostA6, hostB4, hostB6, "192.0.2.99", "2001:db8:f::99", "in_protect_drop", "in_default_drop"))
	// A rekey of the IKE SA runs over the WAN through the inbound SPD.
	if out := ikeAction(t, l.sockPath("gA"), "rekey", "site"); out == "" {
		t.Log("rekey requested")
	}
	waitIKE(t, l.sockPath("gA"), 1, 10*time.Second)
	if n := gB.showStats(t).XDP["wan"]["pass_ike"]; n == 0 {
		t.Error("gwB's WAN program passed no IKE")
	}
	l.pingPairs(t, 5, [][2]string{{"hA", hostB4}, {"hB", hostA6}})
}

// TestInboundInjectionOneArm: gwB in one-arm mode, hostB on the WAN
// bridge. Cleartext to hostB from site A's prefix or from WAN addresses,
// sent to gwB, is dropped by the one-arm program (its outbound mirror
// already discards what no policy covers) and never reaches hostB.
func TestInboundInjectionOneArm(t *testing.T) {
	needLab(t)
	needScapy(t)
	l := newLab(t, "onearm")
	a, b, _ := l.configs(t, tunnelOpts{oneArmB: true})
	l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	tg := injectTarget{gw: "gB", wan: "wan0", program: "onearm", host: "hB", peer: hostA4, pinger: "hB"}
	testInjection(t, l, gB, tg, spoofClasses(hostB4, hostB6, hostA4, hostA6, "192.0.2.99", "2001:db8:f::99", "lan_discard", "lan_discard"))

	// With default_action: bypass the outbound mirror lets the packets to
	// hostB through, and the inbound SPD drops those from site A's
	// prefix: they are site A's only through the SA.
	l.stopClean(t, gB)
	cfg, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(strings.Replace(string(cfg), "default_action: discard", "default_action: bypass", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	gB = l.start(t, "gB", b)
	testInjection(t, l, gB, tg, spoofClasses(hostB4, hostB6, hostA4, hostA6, "192.0.2.99", "2001:db8:f::99", "in_protect_drop", "")[:8])
}
