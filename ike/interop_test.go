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
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/swantest"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// The strongSwan interop lab: our engine in one network namespace, charon
// 5.9.8 (with kernel-libipsec, which fakes a NAT so every SA floats to UDP
// 4500) in another, a veth pair between them on 198.18.10.0/24.

const (
	labOurs    = "198.18.10.1"
	labCharon  = "198.18.10.2"
	labPSK     = "xdpsec interop lab key, not a secret"
	ourNet     = "198.18.11.0/24"
	charonNet  = "198.18.12.0/24"
	ourNet2    = "198.18.13.0/24"
	charonNet2 = "198.18.14.0/24"
)

type swanLab struct {
	pki     *testPKI
	ourKey  gocrypto.Signer
	ourCert *x509.Certificate
	t       *testing.T
	dir     string
	ours    *testlab.Netns
	ourIf   string
	charon  *swantest.Charon
}

func newSwanLab(t *testing.T) *swanLab {
	testlab.RequireRoot(t, "strongSwan interop: network namespaces")
	swantest.Need(t)
	l := &swanLab{t: t, dir: t.TempDir()}
	id := "xike" + testlab.Tag()
	l.ours = testlab.NewNetns(t, id+"o", testlab.LoUp)
	nsCharon := testlab.NewNetns(t, id+"c", testlab.LoUp)
	a := &testlab.End{NS: l.ours, Name: id + "a", Addr: netip.MustParsePrefix(labOurs + "/24")}
	b := &testlab.End{NS: nsCharon, Name: id + "b", Addr: netip.MustParsePrefix(labCharon + "/24")}
	testlab.Veth(t, a, b, 0)
	l.ourIf = a.Name
	nsCharon.IP(t, "addr", "add", "198.18.12.1/24", "dev", "lo")
	nsCharon.IP(t, "addr", "add", "198.18.14.1/24", "dev", "lo")
	l.writePKI()
	l.charon = swantest.StartCharon(t, nsCharon, swantest.CharonConfig{
		Dir:      l.dir,
		Settings: []string{"install_routes = no", "retransmit_tries = 2", "retransmit_timeout = 1.0"},
		Swanctl: swantest.Interop{Charon: labCharon, Ours: labOurs, CharonNet: charonNet, OurNet: ourNet,
			CharonNet2: charonNet2, OurNet2: ourNet2, PSK: labPSK, PKIDir: l.dir}.Conf(),
		Stop: 3 * time.Second,
	})
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

func (l *swanLab) swanctl(cmd string, args ...string) string {
	l.t.Helper()
	return l.charon.Swanctl(l.t, cmd, args...)
}

// listenIn opens our IKE sockets inside the lab namespace: a socket keeps
// the namespace of the thread that created it.
func (l *swanLab) listenIn(addr netip.Addr) *transport.UDP {
	l.t.Helper()
	var u *transport.UDP
	if err := l.ours.Do(func() (err error) {
		u, err = transport.Listen(addr, 500, 4500)
		return err
	}); err != nil {
		l.t.Fatal(err)
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
	cmd := exec.Command("ip", "netns", "exec", l.ours.Name, "tcpdump", "-i", l.ourIf, "-U", "--immediate-mode", "-w", pcap, "udp")
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
	list := l.charon.WaitSA(l.t, conn, 5*time.Second, func(list string) bool {
		m := reSwanChild.FindStringSubmatch(list)
		return strings.Contains(list, "ESTABLISHED") && m != nil && m[2] == "INSTALLED" &&
			len(reSwanSPI.FindAllStringSubmatch(list, -1)) == 2
	})
	for _, s := range reSwanSPI.FindAllStringSubmatch(list, -1) {
		v, _ := strconv.ParseUint(s[2], 16, 32)
		if s[1] == "in" {
			in = uint32(v)
		} else {
			out = uint32(v)
		}
	}
	return in, out, reSwanChild.FindStringSubmatch(list)[3]
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
		if err := e.rekeyChildSPI(ctx(t), c.SPIIn); err != nil {
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
		if err := e.rekeyChildSPI(ctx(t), c.SPIIn); err != nil {
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
		if err := e.ping(ctx(t), "fromcharon"); err != nil {
			t.Fatalf("liveness check: %v", err)
		}
		l.swanctl("--terminate", "--ike", "tous", "--timeout", "10")
		waitFor(t, "SAs deleted after charon's Delete", func() bool {
			return len(inst.Inbound())+len(inst.Outbound()) == 0 && len(e.List()) == 0
		})
	})
}
