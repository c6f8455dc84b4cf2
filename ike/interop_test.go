package ike

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/swantest"
)

// The strongSwan interop lab: our engine in one network namespace, charon
// 5.9.8 (with kernel-libipsec, which fakes a NAT so every SA floats to UDP
// 4500) in another, a veth pair between them on 198.18.10.0/24.

const (
	charonBin  = "/usr/lib/ipsec/charon"
	labOurs    = "198.18.10.1"
	labCharon  = "198.18.10.2"
	labPSK     = "xdpsec interop lab key, not a secret"
	ourNet     = "198.18.11.0/24"
	charonNet  = "198.18.12.0/24"
	ourNet2    = "198.18.13.0/24"
	charonNet2 = "198.18.14.0/24"
)

type swanLab struct {
	pki      *testPKI
	ourKey   gocrypto.Signer
	ourCert  *x509.Certificate
	t        *testing.T
	dir      string
	nsOurs   string
	nsCharon string
	ourIf    string
	charon   *exec.Cmd
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newSwanLab(t *testing.T) *swanLab {
	if os.Geteuid() != 0 {
		t.Skip("strongSwan interop needs root (network namespaces)")
	}
	swantest.Need(t)
	l := &swanLab{t: t, dir: t.TempDir()}
	id := fmt.Sprintf("xike%d", os.Getpid()%100000)
	l.nsOurs, l.nsCharon, l.ourIf = id+"o", id+"c", id+"a"
	run(t, "ip", "netns", "add", l.nsOurs)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.nsOurs).Run() })
	run(t, "ip", "netns", "add", l.nsCharon)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.nsCharon).Run() })
	run(t, "ip", "link", "add", id+"a", "netns", l.nsOurs, "type", "veth", "peer", id+"b", "netns", l.nsCharon)
	run(t, "ip", "-n", l.nsOurs, "addr", "add", labOurs+"/24", "dev", id+"a")
	run(t, "ip", "-n", l.nsCharon, "addr", "add", labCharon+"/24", "dev", id+"b")
	run(t, "ip", "-n", l.nsCharon, "addr", "add", "198.18.12.1/24", "dev", "lo")
	run(t, "ip", "-n", l.nsCharon, "addr", "add", "198.18.14.1/24", "dev", "lo")
	for _, ns := range []string{l.nsOurs, l.nsCharon} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", l.nsOurs, "link", "set", id+"a", "up")
	run(t, "ip", "-n", l.nsCharon, "link", "set", id+"b", "up")
	l.writePKI()
	l.startCharon()
	return l
}

// writePKI makes a CA and ECDSA certificates for both ends and writes
// charon's as PEM files.
func (l *swanLab) writePKI() {
	t := l.t
	l.pki = newPKI(t)
	l.ourKey = genKey(t, "ecdsa")
	l.ourCert = l.pki.issue(t, "xdpsec-cert.test", l.ourKey)
	ck := genKey(t, "ecdsa").(*ecdsa.PrivateKey)
	cc := l.pki.issue(t, "charon-cert.test", ck)
	der, err := x509.MarshalECPrivateKey(ck)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(l.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", l.pki.ca.Raw)
	write("charon.pem", "CERTIFICATE", cc.Raw)
	// swanctl loads private keys from the "ecdsa" directory beside the
	// swanctl.conf it is given.
	if err := os.Mkdir(filepath.Join(l.dir, "ecdsa"), 0o700); err != nil {
		t.Fatal(err)
	}
	write("ecdsa/charon.key", "EC PRIVATE KEY", der)
}

func (l *swanLab) vici() string { return "unix://" + filepath.Join(l.dir, "charon.vici") }

func (l *swanLab) startCharon() {
	t := l.t
	os.MkdirAll(filepath.Join(l.dir, "run"), 0o755)
	conf := fmt.Sprintf(`charon {
	load = random nonce aes sha1 sha2 hmac gcm curve25519 gmp openssl kdf x509 pubkey pem pkcs1 vici socket-default kernel-libipsec kernel-netlink
	install_routes = no
	retransmit_tries = 2
	retransmit_timeout = 1.0
	plugins {
		vici {
			socket = %s
		}
	}
	filelog {
		log {
			path = %s/charon.log
			flush_line = yes
			default = 1
			ike = 2
			cfg = 2
		}
	}
}
`, l.vici(), l.dir)
	os.WriteFile(filepath.Join(l.dir, "strongswan.conf"), []byte(conf), 0o600)
	swanctl := swantest.Interop{Charon: labCharon, Ours: labOurs, CharonNet: charonNet, OurNet: ourNet,
		CharonNet2: charonNet2, OurNet2: ourNet2, PSK: labPSK, PKIDir: l.dir}.Conf()
	os.WriteFile(filepath.Join(l.dir, "swanctl.conf"), []byte(swanctl), 0o600)
	cmd := exec.Command("ip", "netns", "exec", l.nsCharon, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", fmt.Sprintf("mount --bind '%s/run' /run && exec %s", l.dir, charonBin))
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(l.dir, "strongswan.conf"))
	out, _ := os.Create(filepath.Join(l.dir, "charon.stdout"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start charon: %v", err)
	}
	l.charon = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.dir, "charon.log"))
			t.Logf("charon log:\n%s", b)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(l.dir, "charon.vici")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(l.dir, "charon.stdout"))
			t.Fatalf("charon did not open its VICI socket:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.swanctl("--load-all", "--file", filepath.Join(l.dir, "swanctl.conf"))
}

func (l *swanLab) swanctl(cmd string, args ...string) string {
	l.t.Helper()
	a := append([]string{"netns", "exec", l.nsCharon, "swanctl", cmd, "--uri", l.vici()}, args...)
	out, err := exec.Command("ip", a...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("swanctl %s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// listenIn opens our IKE sockets inside the lab namespace: a socket keeps
// the namespace of the thread that created it.
func (l *swanLab) listenIn(addr netip.Addr) *transport.UDP {
	t := l.t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := os.Open("/run/netns/" + l.nsOurs)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	u, lerr := transport.Listen(addr, 500, 4500)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		panic("cannot return to the original network namespace: " + err.Error())
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return u
}

// capture records UDP in our namespace until the returned function is
// called, which returns the pcap's path ("" when tcpdump is missing).
func (l *swanLab) capture() func() string {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		l.t.Log("tcpdump missing: no key log check")
		return func() string { return "" }
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		l.t.Log("tshark missing: no key log check")
		return func() string { return "" }
	}
	pcap := filepath.Join(l.dir, "ike.pcap")
	cmd := exec.Command("ip", "netns", "exec", l.nsOurs, "tcpdump", "-i", l.ourIf, "-U", "--immediate-mode", "-w", pcap, "udp")
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	// tcpdump needs a moment before it captures.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(pcap); err == nil && st.Size() > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() string {
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(unix.SIGINT)
		cmd.Wait()
		return pcap
	}
}

// tsharkIDs decodes pcap with keyLog as Wireshark's ikev2_decryption_table
// and returns the FQDN identities it finds in the decrypted payloads.
func (l *swanLab) tsharkIDs(t *testing.T, pcap, keyLog string) string {
	dir := filepath.Join(l.dir, "wireshark")
	os.MkdirAll(dir, 0o700)
	if err := os.WriteFile(filepath.Join(dir, "ikev2_decryption_table"), []byte(keyLog), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tshark", "-r", pcap, "-Y", "isakmp.exchangetype == 35", "-T", "fields", "-e", "isakmp.id.data.fqdn")
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	return string(out)
}

// grepLines returns the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

var (
	reSwanChild     = regexp.MustCompile(`(?m)^\s+(\w+): #\d+, reqid \d+, (\w+), ([\w-]+), `)
	reSwanSPI       = regexp.MustCompile(`(?m)^\s+(in|out)\s+([0-9a-f]{8})`)
	reSwanInstalled = regexp.MustCompile(`(?m)^\s+\w+: #\d+, reqid \d+, INSTALLED, [^\n]*\n[^\n]*\n\s+in\s+([0-9a-f]{8})[^\n]*\n\s+out\s+([0-9a-f]{8})`)
	reSwanIKE       = regexp.MustCompile(`(?m)^\S+: #\d+, ESTABLISHED, IKEv2, ([0-9a-f]{16})_i\*? ([0-9a-f]{16})_r`)
)

// charonSA waits until charon lists the IKE SA of conn as ESTABLISHED with
// its child INSTALLED and returns the child's SPIs (in, out) and mode line.
func (l *swanLab) charonSA(conn string) (in, out uint32, mode string) {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var list string
	for time.Now().Before(deadline) {
		list = l.swanctl("--list-sas", "--ike", conn)
		if strings.Contains(list, conn+": #") && strings.Contains(list, "ESTABLISHED") {
			m := reSwanChild.FindStringSubmatch(list)
			spis := reSwanSPI.FindAllStringSubmatch(list, -1)
			if m != nil && m[2] == "INSTALLED" && len(spis) == 2 {
				for _, s := range spis {
					v, _ := strconv.ParseUint(s[2], 16, 32)
					if s[1] == "in" {
						in = uint32(v)
					} else {
						out = uint32(v)
					}
				}
				return in, out, m[3]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("charon has no ESTABLISHED/INSTALLED SA for %s:\n%s", conn, list)
	return
}

func TestStrongSwanInterop(t *testing.T) {
	l := newSwanLab(t)
	ours := netip.MustParseAddr(labOurs)
	u := l.listenIn(ours)
	inst := NewMemInstaller()
	logs, ikeKeys := &logBuffer{}, &logBuffer{}
	psk := func() []byte { return []byte(labPSK) }
	e, err := New(Config{
		Connections: []Connection{
			{
				Name: "tocharon", LocalAddr: ours, RemoteAddr: netip.MustParseAddr(labCharon),
				Local:        AuthConfig{ID: mustID(t, "xdpsec.test"), PSK: psk()},
				Remote:       AuthConfig{ID: mustID(t, "charon.test"), PSK: psk()},
				IKEProposals: mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-x25519"),
				Children: []ChildConfig{{Name: "net", LocalTS: mustTS(t, ourNet), RemoteTS: mustTS(t, charonNet),
					ESPProposals: mustProposals(t, message.ProtocolESP, "aes128gcm16-x25519")}},
			},
			{
				// strongSwan 5.9.8 predates RFC 9370: a hybrid proposal
				// first, then the classical one it will take.
				Name: "pqtocharon", LocalAddr: ours, RemoteAddr: netip.MustParseAddr(labCharon),
				Local:  AuthConfig{ID: mustID(t, "xdpsec.test"), PSK: psk()},
				Remote: AuthConfig{ID: mustID(t, "charon.test"), PSK: psk()},
				IKEProposals: mustProposals(t, message.ProtocolIKE,
					"aes256gcm16-prfsha384-x25519-ke1_mlkem768, aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none-ke2_ecp256-ke2_none, aes128gcm16-prfsha256-x25519"),
				Children: []ChildConfig{{Name: "pqnet", LocalTS: mustTS(t, ourNet), RemoteTS: mustTS(t, charonNet),
					ESPProposals: mustProposals(t, message.ProtocolESP, "aes128gcm16-x25519")}},
			},
			{
				// One proposal with ML-KEM optional: its ADDKE-less copy
				// (withLegacyCopies) is what 5.9.8 can take.
				Name: "pqopttocharon", LocalAddr: ours, RemoteAddr: netip.MustParseAddr(labCharon),
				Local:        AuthConfig{ID: mustID(t, "xdpsec.test"), PSK: psk()},
				Remote:       AuthConfig{ID: mustID(t, "charon.test"), PSK: psk()},
				IKEProposals: mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none"),
				Children: []ChildConfig{{Name: "pqoptnet", LocalTS: mustTS(t, ourNet), RemoteTS: mustTS(t, charonNet),
					ESPProposals: mustProposals(t, message.ProtocolESP, "aes128gcm16-x25519")}},
			},
			{
				// As responder we prefer the hybrid proposal; charon offers
				// only classical ones.
				Name: "fromcharon", LocalAddr: ours, RemoteAddr: netip.MustParseAddr(labCharon),
				Local:        AuthConfig{ID: mustID(t, "xdpsec2.test"), PSK: psk()},
				Remote:       AuthConfig{ID: mustID(t, "charon2.test"), PSK: psk()},
				IKEProposals: mustProposals(t, message.ProtocolIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768, aes256-sha256-modp2048"),
				Children: []ChildConfig{{Name: "net2", LocalTS: mustTS(t, ourNet2), RemoteTS: mustTS(t, charonNet2),
					ESPProposals: mustProposals(t, message.ProtocolESP, "aes256gcm16-esn, aes256-sha256")}},
			},
			{
				Name: "certtocharon", LocalAddr: ours, RemoteAddr: netip.MustParseAddr(labCharon),
				Local:        AuthConfig{ID: mustID(t, "xdpsec-cert.test"), Certificate: l.ourCert, Key: l.ourKey},
				Remote:       AuthConfig{ID: mustID(t, "charon-cert.test"), CAs: l.pki.store},
				IKEProposals: mustProposals(t, message.ProtocolIKE, "aes256gcm16-prfsha384-ecp384"),
				Children: []ChildConfig{{Name: "certnet", LocalTS: mustTS(t, ourNet), RemoteTS: mustTS(t, charonNet),
					ESPProposals: mustProposals(t, message.ProtocolESP, "aes256gcm16")}},
			},
		},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KeyLogIKE: ikeKeys,
	}, u, inst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		u.Close()
		if t.Failed() {
			t.Logf("our log:\n%s", logs.String())
		}
	})

	findChild := func(name string) *ChildSAInfo {
		for _, sa := range e.List() {
			for _, c := range sa.Children {
				if c.Name == name {
					return &c
				}
			}
		}
		return nil
	}
	checkInstalled := func(spiIn, spiOut uint32) {
		t.Helper()
		var gotIn, gotOut bool
		for _, c := range inst.Inbound() {
			gotIn = gotIn || c.SPI == spiIn && c.Encap.DstPort == 4500 && c.Encap.SrcPort == 4500
		}
		for _, c := range inst.Outbound() {
			gotOut = gotOut || c.SPI == spiOut && c.Encap.DstPort == 4500 && c.Encap.SrcPort == 4500
		}
		if !gotIn || !gotOut {
			t.Fatalf("installer lacks UDP-encapsulated SAs in %08x / out %08x: %+v / %+v", spiIn, spiOut, inst.Inbound(), inst.Outbound())
		}
	}

	t.Run("we-initiate", func(t *testing.T) {
		stopCapture := l.capture()
		if err := e.Initiate(ctx(t), "tocharon"); err != nil {
			t.Fatal(err)
		}
		cin, cout, mode := l.charonSA("fromus")
		c := findChild("net")
		if c == nil {
			t.Fatalf("no child in %+v", e.List())
		}
		if c.SPIIn != cout || c.SPIOut != cin {
			t.Fatalf("SPIs differ: ours in %08x out %08x, charon in %08x out %08x", c.SPIIn, c.SPIOut, cin, cout)
		}
		if mode != "TUNNEL-in-UDP" || !c.UDPEncap {
			t.Fatalf("charon mode %s, our encap %v: want UDP encapsulation", mode, c.UDPEncap)
		}
		checkInstalled(c.SPIIn, c.SPIOut)
		if err := e.Terminate(ctx(t), "tocharon"); err != nil {
			t.Fatal(err)
		}
		if list := l.swanctl("--list-sas", "--ike", "fromus"); strings.Contains(list, "fromus: #") {
			t.Fatalf("charon kept the IKE SA after our Delete:\n%s", list)
		}
		if n := len(inst.Inbound()) + len(inst.Outbound()); n != 0 {
			t.Fatalf("%d SAs left after Terminate", n)
		}
		// tshark, with nothing but our key log, must open both IKE_AUTH
		// messages: ours and charon's.
		if pcap := stopCapture(); pcap != "" {
			ids := l.tsharkIDs(t, pcap, ikeKeys.String())
			if !strings.Contains(ids, "xdpsec.test") || !strings.Contains(ids, "charon.test") {
				t.Fatalf("tshark did not decrypt IKE_AUTH with our key log; identities seen: %q\nkey log: %s", ids, ikeKeys.String())
			}
		}
	})

	t.Run("rekey", func(t *testing.T) {
		if err := e.Initiate(ctx(t), "tocharon"); err != nil {
			t.Fatal(err)
		}
		cin, cout, _ := l.charonSA("fromus")
		// settled waits until charon and we both have exactly the one
		// Child SA, with SPIs crossed, new ones, and nothing older
		// installed on our side.
		settled := func(what string, oldIn, oldOut uint32) (uint32, uint32) {
			t.Helper()
			var c *ChildSAInfo
			waitFor(t, what, func() bool {
				c = findChild("net")
				return c != nil && c.SPIIn != oldIn && c.SPIOut != oldOut && c.InstalledInOut &&
					len(inst.Inbound()) == 1 && len(inst.Outbound()) == 1 && len(e.List()[0].Children) == 1
			})
			// charon keeps a rekeyed SA listed as DELETED for a few seconds
			// (delete_rekeyed_delay, its inbound half only): exactly one
			// must be INSTALLED, and it must be the new one.
			var in, out uint32
			var list string
			waitFor(t, what+" at charon", func() bool {
				list = l.swanctl("--list-sas", "--ike", "fromus")
				m := reSwanInstalled.FindAllStringSubmatch(list, -1)
				if len(m) != 1 {
					return false
				}
				i, _ := strconv.ParseUint(m[0][1], 16, 32)
				o, _ := strconv.ParseUint(m[0][2], 16, 32)
				in, out = uint32(i), uint32(o)
				return in == c.SPIOut
			})
			if c.SPIIn != out || c.SPIOut != in {
				t.Fatalf("%s: ours in %08x out %08x, charon in %08x out %08x", what, c.SPIIn, c.SPIOut, in, out)
			}
			checkInstalled(c.SPIIn, c.SPIOut)
			return in, out
		}
		// charon rekeys the Child SA.
		l.swanctl("--rekey", "--child", "fromus")
		cin, cout = settled("rekey by charon", cout, cin)
		// We rekey it.
		c := findChild("net")
		if err := e.RekeyChild(ctx(t), c.SPIIn); err != nil {
			t.Fatal(err)
		}
		cin, cout = settled("rekey by us", cout, cin)
		// Both rekeys carried a KE payload (PFS with X25519, from the ESP
		// proposals): charon's request, and its parse of our response and
		// request.
		for _, re := range []string{
			`generating CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]`,
			`parsed CREATE_CHILD_SA response \d+ \[ SA No KE TSi TSr \]`,
			`parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]`,
		} {
			waitFor(t, "charon's log line "+re+" (a rekey with PFS)", func() bool {
				b, _ := os.ReadFile(filepath.Join(l.dir, "charon.log"))
				return regexp.MustCompile(re).Match(b)
			})
		}
		// The IKE SA, by us and then by charon: new SPIs on both sides,
		// the old IKE SA gone, the Child SA carried over.
		charonIKE := func() string {
			m := reSwanIKE.FindStringSubmatch(l.swanctl("--list-sas", "--ike", "fromus"))
			if m == nil {
				return ""
			}
			return m[1] + "/" + m[2]
		}
		for _, by := range []string{"us", "charon"} {
			before := e.List()
			if len(before) != 1 {
				t.Fatalf("IKE SAs before rekey: %+v", before)
			}
			if by == "us" {
				if err := e.RekeyIKE(ctx(t), "tocharon"); err != nil {
					t.Fatal(err)
				}
			} else {
				l.swanctl("--rekey", "--ike", "fromus")
			}
			var now []IKESAInfo
			waitFor(t, "IKE rekey by "+by, func() bool {
				now = e.List()
				want := fmt.Sprintf("%016x/%016x", now[0].SPIi, now[0].SPIr)
				return len(now) == 1 && now[0].SPIi != before[0].SPIi && now[0].State == StateEstablished && charonIKE() == want
			})
			if len(now[0].Children) != 1 || now[0].Children[0].SPIIn != cout {
				t.Fatalf("Child SA did not move to the new IKE SA: %+v", now[0].Children)
			}
			if list := l.swanctl("--list-sas"); len(reSwanIKE.FindAllString(list, -1)) != 1 || strings.Contains(list, fmt.Sprintf("%016x", before[0].SPIi)) {
				t.Fatalf("charon kept the old IKE SA:\n%s", list)
			}
		}
		// The rekeyed IKE SA still works for Child SAs.
		c = findChild("net")
		if err := e.RekeyChild(ctx(t), c.SPIIn); err != nil {
			t.Fatal(err)
		}
		settled("rekey on the new IKE SA", cout, cin)
		if err := e.Terminate(ctx(t), "tocharon"); err != nil {
			t.Fatal(err)
		}
		if n := len(inst.Inbound()) + len(inst.Outbound()); n != 0 {
			t.Fatalf("%d SAs left after Terminate", n)
		}
	})

	// RFC 9370 fallback: charon 5.9.8 knows no ADDKE transform types. It
	// must skip our hybrid proposals (RFC 7296 §3.3.6: a proposal with an
	// unknown transform type is not chosen) and take the classical one,
	// with no IKE_INTERMEDIATE.
	t.Run("hybrid-falls-back-to-classical", func(t *testing.T) {
		if err := e.Initiate(ctx(t), "pqtocharon"); err != nil {
			t.Fatal(err)
		}
		cin, cout, _ := l.charonSA("fromus")
		c := findChild("pqnet")
		if c == nil || c.SPIIn != cout || c.SPIOut != cin {
			t.Fatalf("ours %+v, charon in %08x out %08x", c, cin, cout)
		}
		checkInstalled(c.SPIIn, c.SPIOut)
		var p string
		for _, sa := range e.List() {
			if sa.Name == "pqtocharon" {
				p = sa.Proposal
			}
		}
		if p != "aes128gcm16-prfsha256-x25519" {
			t.Fatalf("negotiated %q, want the classical proposal", p)
		}
		if list := l.swanctl("--list-sas", "--ike", "fromus"); !strings.Contains(list, "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519") {
			t.Fatalf("charon's IKE SA:\n%s", list)
		}
		if hasLine(logs.String(), "IKE_INTERMEDIATE") {
			t.Fatal("IKE_INTERMEDIATE with a peer that did not choose an additional key exchange")
		}
		// How 5.9.8 takes the unknown types: it parses them (as
		// UNKNOWN_6_36, UNKNOWN_6_0, ...), answers no error, and turns
		// down every proposal that carries one, NONE included.
		b, _ := os.ReadFile(filepath.Join(l.dir, "charon.log"))
		if !strings.Contains(string(b), "UNKNOWN_6_36") {
			t.Errorf("charon's log does not show our ADDKE1 transform as unknown")
		}
		t.Logf("charon on our hybrid proposals:\n%s", grepLines(string(b), "received proposals", "selected proposal"))
		if !strings.Contains(string(b), "selected proposal: IKE:AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519") {
			t.Fatalf("charon did not log selecting the classical proposal")
		}
		if err := e.Terminate(ctx(t), "pqtocharon"); err != nil {
			t.Fatal(err)
		}
		// ML-KEM optional in the only proposal.
		if err := e.Initiate(ctx(t), "pqopttocharon"); err != nil {
			t.Fatal(err)
		}
		cin, cout, _ = l.charonSA("fromus")
		if c := findChild("pqoptnet"); c == nil || c.SPIIn != cout || c.SPIOut != cin {
			t.Fatalf("ours %+v, charon in %08x out %08x", c, cin, cout)
		}
		if err := e.Terminate(ctx(t), "pqopttocharon"); err != nil {
			t.Fatal(err)
		}
		// And charon initiating to us, who prefer the hybrid proposal:
		// see charon-initiates, whose connection lists it first.
	})

	t.Run("we-initiate-ecdsa-certificates", func(t *testing.T) {
		if err := e.Initiate(ctx(t), "certtocharon"); err != nil {
			t.Fatal(err)
		}
		cin, cout, _ := l.charonSA("certfromus")
		c := findChild("certnet")
		if c == nil || c.SPIIn != cout || c.SPIOut != cin {
			t.Fatalf("ours %+v, charon in %08x out %08x", c, cin, cout)
		}
		checkInstalled(c.SPIIn, c.SPIOut)
		if err := e.Terminate(ctx(t), "certtocharon"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("charon-initiates", func(t *testing.T) {
		l.swanctl("--initiate", "--child", "tous", "--timeout", "10")
		cin, cout, mode := l.charonSA("tous")
		waitFor(t, "our child SA", func() bool { return findChild("net2") != nil && len(inst.Outbound()) == 1 })
		c := findChild("net2")
		if c.SPIIn != cout || c.SPIOut != cin || mode != "TUNNEL-in-UDP" {
			t.Fatalf("ours in %08x out %08x, charon in %08x out %08x %s", c.SPIIn, c.SPIOut, cin, cout, mode)
		}
		checkInstalled(c.SPIIn, c.SPIOut)
		// kernel-libipsec has no ESN, so charon offers AES-CBC-256 with
		// HMAC-SHA-256 only: our second proposal.
		if in := inst.Inbound()[0]; in.ESN || in.Suite.String() != "aes256-sha256" || len(in.IntegKey) != 32 {
			t.Fatalf("installed %v esn=%v, want aes256-sha256 without ESN", in.Suite, in.ESN)
		}
		if err := e.Ping(ctx(t), "fromcharon"); err != nil {
			t.Fatalf("liveness check: %v", err)
		}
		l.swanctl("--terminate", "--ike", "tous", "--timeout", "10")
		waitFor(t, "SAs deleted after charon's Delete", func() bool {
			return len(inst.Inbound())+len(inst.Outbound()) == 0 && len(e.List()) == 0
		})
	})
}
