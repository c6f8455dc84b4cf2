package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// ikeConfigs writes the lab's IKE configurations with
// scripts/lab/gen-ike-config.sh (key logs on) and returns gwA's and gwB's
// files.
func (l *lab) ikeConfigs(t *testing.T, ikeProp, espProp, startA string) (string, string) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "lab", "gen-ike-config.sh"), l.prefix, l.dir, ikeProp, espProp, startA)
	cmd.Env = append(os.Environ(), "KEYLOG=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen-ike-config.sh: %v\n%s", err, out)
	}
	return filepath.Join(l.dir, "gw-a.yaml"), filepath.Join(l.dir, "gw-b.yaml")
}

// showIKE runs `xdpsec show ike -o json` against the daemon at sock.
func showIKE(t *testing.T, sock string) []control.IKESA {
	t.Helper()
	out, err := exec.Command(xdpsecBin, "show", "ike", "-o", "json", "--socket", sock).Output()
	if err != nil {
		t.Fatalf("xdpsec show ike: %v", err)
	}
	var sas []control.IKESA
	if err := json.Unmarshal(out, &sas); err != nil {
		t.Fatalf("xdpsec show ike -o json: %v\n%s", err, out)
	}
	return sas
}

// waitIKE waits until the daemon at sock shows want established IKE SAs,
// each with its Child SAs installed, and returns them.
func waitIKE(t *testing.T, sock string, want int, within time.Duration) []control.IKESA {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sas := showIKE(t, sock)
		n := 0
		for _, sa := range sas {
			ok := sa.State == "ESTABLISHED" && len(sa.Children) > 0
			for _, c := range sa.Children {
				ok = ok && c.State == "INSTALLED"
			}
			if ok {
				n++
			}
		}
		if n == want && len(sas) == want {
			return sas
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %d established IKE SAs within %v, have %+v", sock, want, within, sas)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ikeAction runs `xdpsec initiate|terminate NAME`.
func ikeAction(t *testing.T, sock, action, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, xdpsecBin, action, name, "--socket", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("xdpsec %s %s: %v\n%s", action, name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// keyLogUAT reads the esp_sa rows xdpsec's key log wrote in dir: the only
// keys the decryption checks use.
func keyLogUAT(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "esp_sa"))
	if err != nil {
		t.Fatalf("key log: %v", err)
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			rows = append(rows, line)
		}
	}
	if len(rows) == 0 {
		t.Fatal("key log: no esp_sa rows")
	}
	return rows
}

// decryptWithKeyLog has tshark decrypt the ESP frames among the first
// decryptFrames frames of the capture with the key log's rows and checks
// each ICV; it returns how many it checked.
func decryptWithKeyLog(t *testing.T, pcap string, uat []string) int {
	t.Helper()
	good, n := verifyESP(t, pcap, uat)
	t.Logf("tshark decrypted %d/%d ESP frames with good ICVs using only xdpsec's key log", good, n)
	return good
}

// decryptIKEWithKeyLog has tshark decrypt the IKE messages of a capture
// with the key log's ikev2_decryption_table alone and returns, per
// decrypted Encrypted payload, the exchange type and the AUTH method seen
// inside (IKE_AUTH carries one).
func decryptIKEWithKeyLog(t *testing.T, pcap, keyLogDir string) []string {
	t.Helper()
	table, err := os.ReadFile(filepath.Join(keyLogDir, "ikev2_decryption_table"))
	if err != nil {
		t.Fatalf("key log: %v", err)
	}
	conf := t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "ikev2_decryption_table"), table, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tshark", "-n", "-r", pcap, "-Y", "isakmp.enc.decrypted",
		"-T", "fields", "-e", "isakmp.exchangetype", "-e", "isakmp.auth.method")
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf, "HOME="+conf)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark (IKE): %v\n%s", err, stderr.String())
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ikeNoLeak checks a WAN capture for plaintext: nothing with a protected
// address in any IP header, and no IP traffic but ESP (raw or in UDP),
// IKE, NAT-T keepalives, neighbour discovery, the bridge's own IGMP
// (multicast router discovery, no protected address) and the next-hop tables'
// resolution probes.
func ikeNoLeak(t *testing.T, pcap string) {
	t.Helper()
	leak := tshark(t, pcap, nil, "-Y", "ip.addr==198.18.0.0/15 or ipv6.addr==2001:db8:a::/64 or ipv6.addr==2001:db8:b::/64")
	if len(leak) > 0 {
		t.Errorf("plaintext on the WAN: %d frames with protected addresses, e.g.\n%s", len(leak), strings.Join(leak[:min(5, len(leak))], "\n"))
	}
	other := tshark(t, pcap, nil, "-Y", "(ip or ipv6) and not esp and not isakmp and not udpencap and not icmpv6 and not igmp and not (udp.dstport == 9 and udp.length == 8) and not (icmp.type == 3 and icmp.code == 3)")
	if len(other) > 0 {
		t.Errorf("unexpected IP traffic on the WAN: %d frames, e.g.\n%s", len(other), strings.Join(other[:min(5, len(other))], "\n"))
	}
}

// TestIKEGateway runs two xdpsec gateways that negotiate their tunnel
// with IKEv2 (PSK, raw ESP): gwA initiates at start. Traffic flows both
// ways over IPv4 and IPv6, `show ike` agrees on both sides, tshark
// verifies every ESP frame with keys from xdpsec's key log alone; after
// `terminate` the protected traffic is dropped, never sent in the clear,
// and `initiate` brings it back.
func TestIKEGateway(t *testing.T) {
	needLab(t)
	l := newLab(t, "")
	a, b := l.ikeConfigs(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "start")
	capAll := l.capture(t, "wan", "a0", 0)
	gB := l.start(t, "gB", b)
	gA := l.start(t, "gA", a)
	sockA, sockB := l.sockPath("gA"), l.sockPath("gB")
	sasA := waitIKE(t, sockA, 1, 10*time.Second)
	sasB := waitIKE(t, sockB, 1, 5*time.Second)
	ia, ib := sasA[0], sasB[0]
	if !ia.Initiator || ib.Initiator || ia.SPIi != ib.SPIi || ia.SPIr != ib.SPIr {
		t.Errorf("IKE SAs disagree: gA %+v, gB %+v", ia, ib)
	}
	if ia.Proposal != "aes256gcm16-prfsha384-ecp384" || ia.NATT || ia.LocalID != "gw-a.lab" || ia.RemoteID != "gw-b.lab" ||
		ia.Local != "192.0.2.1:500" || ia.Remote != "192.0.2.2:500" {
		t.Errorf("gA's IKE SA: %+v", ia)
	}
	ca, cb := ia.Children[0], ib.Children[0]
	if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn || ca.UDPEncap || !strings.EqualFold(ca.Mode, "tunnel") ||
		!strings.HasPrefix(ca.Proposal, "aes128gcm16") || len(ca.LocalTS) != 2 || len(ca.RemoteTS) != 2 {
		t.Errorf("Child SAs disagree: gA %+v, gB %+v", ca, cb)
	}
	// IKE reached the kernel's sockets through the XDP program's pass.
	if n := gB.showStats(t).XDP["wan"]["pass_ike"]; n == 0 {
		t.Error("gwB's WAN program passed no IKE to the kernel")
	}
	if out, err := exec.Command(xdpsecBin, "show", "ike", "--socket", sockA).Output(); err != nil ||
		!strings.Contains(string(out), "site: ESTABLISHED, IKEv2") || !strings.Contains(string(out), "net: reqid") {
		t.Errorf("xdpsec show ike: %v\n%s", err, out)
	}

	l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hA", hostB6}, {"hB", hostA4}, {"hB", hostA6}})
	l.iperfTCP(t, "through the IKE tunnel", false)

	// Terminate: both ends lose the SAs, the policies stay and drop.
	ikeAction(t, sockA, "terminate", "site")
	if sas := showIKE(t, sockA); len(sas) != 0 {
		t.Errorf("after terminate gA still shows %+v", sas)
	}
	waitIKE(t, sockB, 0, 5*time.Second)
	before := gA.showStats(t).workerDrop("no_sa")
	if got := l.ping("hA", hostB4, 5); got != 0 {
		t.Errorf("after terminate %d pings got through", got)
	}
	if after := gA.showStats(t).workerDrop("no_sa"); after < before+5 {
		t.Errorf("after terminate gA dropped %d packets for want of an SA, want at least 5", after-before)
	}
	for _, sa := range gA.showSAs(t) {
		t.Errorf("after terminate gA still has SA %+v", sa)
	}

	// And back.
	t.Log(ikeAction(t, sockA, "initiate", "site"))
	waitIKE(t, sockA, 1, 5*time.Second)
	waitIKE(t, sockB, 1, 5*time.Second)
	l.warmUp(t, "hA", hostB4)
	for _, p := range [][2]string{{"hA", hostB4}, {"hB", hostA6}} {
		if got := l.pingAll(p[0], p[1], 10); got != 10 {
			t.Errorf("after initiate, ping %s -> %s: %d of 10 answered\n%s", p[0], p[1], got, l.diagnose())
		}
	}

	pcap := capAll.stop()
	ikeNoLeak(t, pcap)
	if n := len(tshark(t, pcap, nil, "-Y", "isakmp")); n < 4 {
		t.Errorf("%d IKE frames on the WAN, want the two exchanges (4) and more", n)
	}
	uat := keyLogUAT(t, filepath.Join(l.dir, "keylog-a"))
	if len(uat) != 4 {
		t.Errorf("key log: %d esp_sa rows for two Child SAs, want 4", len(uat))
	}
	if good := decryptWithKeyLog(t, pcap, uat); good < 100 {
		t.Errorf("only %d ESP frames verified", good)
	}
	// The IKE_AUTH exchanges decrypt with the IKE half of the key log and
	// show the shared-key AUTH payloads (method 2) inside.
	ikeRows := decryptIKEWithKeyLog(t, pcap, filepath.Join(l.dir, "keylog-a"))
	auth := 0
	for _, r := range ikeRows {
		if f := strings.Split(r, "\t"); len(f) == 2 && f[0] == "35" && f[1] == "2" {
			auth++
		}
	}
	if auth < 4 {
		t.Errorf("tshark decrypted %d IKE_AUTH messages with PSK AUTH payloads from the key log, want 4 (two exchanges): %q", auth, ikeRows)
	}
	t.Logf("tshark decrypted %d IKE messages with the key log (%d IKE_AUTH)", len(ikeRows), auth)
	l.stopClean(t, gA)
	l.stopClean(t, gB)
}
