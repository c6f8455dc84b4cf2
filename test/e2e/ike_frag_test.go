package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// chainPKI is a root CA with a four-certificate chain under it for each
// gateway: root -> CA 1 -> CA 2 -> leaf, all RSA-4096, so that an IKE_AUTH
// carrying a leaf, its two intermediates and a 512-octet signature is
// about 5 KB. Each side's intermediates are its own, so an end can verify
// the other only from the intermediates that end sent. Generated per test:
// no key is ever committed.
type chainPKI struct {
	root                  *x509.Certificate
	chainA, chainB        []*x509.Certificate // leaf, CA 2, CA 1
	keyA, keyB            *rsa.PrivateKey
	rootKey, keyA1, keyA2 *rsa.PrivateKey
	keyB1, keyB2          *rsa.PrivateKey
}

func newChainPKI(t *testing.T) *chainPKI {
	t.Helper()
	keys := make([]*rsa.PrivateKey, 7)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = rsa.GenerateKey(rand.Reader, 4096) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	p := &chainPKI{rootKey: keys[0], keyA1: keys[1], keyA2: keys[2], keyA: keys[3], keyB1: keys[4], keyB2: keys[5], keyB: keys[6]}
	now := time.Now()
	serial := int64(0)
	mk := func(name string, ca bool, key, issuerKey *rsa.PrivateKey, issuer *x509.Certificate) *x509.Certificate {
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"xdpsec lab"}, CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		}
		if ca {
			tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		} else {
			tmpl.DNSNames = []string{name}
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
		if issuer == nil {
			issuer = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p.root = mk("xdpsec lab root CA", true, p.rootKey, p.rootKey, nil)
	a1 := mk("xdpsec lab CA A1", true, p.keyA1, p.rootKey, p.root)
	a2 := mk("xdpsec lab CA A2", true, p.keyA2, p.keyA1, a1)
	p.chainA = []*x509.Certificate{mk("gw-a.lab", false, p.keyA, p.keyA2, a2), a2, a1}
	b1 := mk("xdpsec lab CA B1", true, p.keyB1, p.rootKey, p.root)
	b2 := mk("xdpsec lab CA B2", true, p.keyB2, p.keyB1, b1)
	p.chainB = []*x509.Certificate{mk("gw-b.lab", false, p.keyB, p.keyB2, b2), b2, b1}
	return p
}

// fragConfigA turns gen-ike-config.sh's PSK configuration for gwA into
// one that authenticates with gw-a.lab's chain (leaf and both
// intermediates in one PEM file, which xdpsec sends as CERT payloads),
// trusts only the root, and sets fragmentation as given.
func (l *lab) fragConfigA(t *testing.T, p *chainPKI, pskCfg string, fragmentation bool) string {
	t.Helper()
	dir := filepath.Join(l.dir, "pki-a")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var chain []byte
	for _, c := range p.chainA {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(filepath.Join(dir, "gw-a-chain.pem"), chain, 0o600); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "gw-a.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.keyA))
	writePEM(t, filepath.Join(dir, "root.pem"), "CERTIFICATE", p.root.Raw)
	b, err := os.ReadFile(pskCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	pskAuth := fmt.Sprintf("auth: {psk_file: %s}", filepath.Join(l.dir, "psk"))
	certAuth := fmt.Sprintf("auth: {cert: %s, key: %s, ca: [%s]}",
		filepath.Join(dir, "gw-a-chain.pem"), filepath.Join(dir, "gw-a.key"), filepath.Join(dir, "root.pem"))
	const dpd = "    dpd_action: clear\n"
	if strings.Count(cfg, pskAuth) != 1 || strings.Count(cfg, dpd) != 1 {
		t.Fatalf("%s: no single %q and %q to replace:\n%s", pskCfg, pskAuth, dpd, cfg)
	}
	cfg = strings.Replace(cfg, pskAuth, certAuth, 1)
	cfg = strings.Replace(cfg, dpd, dpd+fmt.Sprintf("    fragmentation: %v\n", fragmentation), 1)
	out := filepath.Join(l.dir, "gw-a-frag.yaml")
	if err := os.WriteFile(out, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// useChain switches a charon started by startCharon to gw-b.lab's chain:
// the leaf in x509/, its intermediates and the root in x509ca/ (charon
// sends the intermediates it finds there along with the leaf), and
// `fragmentation = yes`, the RFC 7383 setting this test is about.
func (c *charon) useChain(t *testing.T, p *chainPKI, ikeProp, espProp string) {
	t.Helper()
	writePEM(t, filepath.Join(c.dir, "x509", "gw-b.pem"), "CERTIFICATE", p.chainB[0].Raw)
	writePEM(t, filepath.Join(c.dir, "x509ca", "root.pem"), "CERTIFICATE", p.root.Raw)
	writePEM(t, filepath.Join(c.dir, "x509ca", "b2.pem"), "CERTIFICATE", p.chainB[1].Raw)
	writePEM(t, filepath.Join(c.dir, "x509ca", "b1.pem"), "CERTIFICATE", p.chainB[2].Raw)
	writePEM(t, filepath.Join(c.dir, "rsa", "gw-b.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.keyB))
	c.loadPubkeySite(t, "root.pem", "fragmentation = yes", ikeProp, espProp)
}

// narrowWAN makes the lab's WAN a path of MTU 1280 that drops IP
// fragments: both gateways' WAN links and the bridge get MTU 1280, and on
// both bridge ports a tc ingress filter drops every IPv4 packet that is a
// fragment (More Fragments set, or a non-zero offset). An IKE message over
// 1280 octets then crosses only as IKE fragments (RFC 7383). The filter is
// a five-instruction BPF program (this kernel has cls_bpf but not tc's
// gact action, and no nft or iptables binaries are installed).
func (l *lab) narrowWAN(t *testing.T) {
	t.Helper()
	must := func(node string, args ...string) {
		if out, err := l.run(node, 10*time.Second, args...); err != nil {
			t.Fatalf("%s: %s: %v\n%s", node, strings.Join(args, " "), err, out)
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "drop_ipfrag", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{
			// cls_bpf at ingress sees the frame from its Ethernet header.
			asm.LoadMem(asm.R2, asm.R1, 80, asm.Word), // __sk_buff.data_end
			asm.LoadMem(asm.R1, asm.R1, 76, asm.Word), // __sk_buff.data
			asm.Mov.Reg(asm.R3, asm.R1),
			asm.Add.Imm(asm.R3, 22),
			asm.JGT.Reg(asm.R3, asm.R2, "pass"),
			// The loads are little-endian: EtherType 0x0800 reads 0x0008,
			// and the IPv4 flags/offset octets b0 b1 read b1<<8 | b0, whose
			// MF bit and 13 offset bits are 0xff3f.
			asm.LoadMem(asm.R4, asm.R1, 12, asm.Half),
			asm.JNE.Imm(asm.R4, 0x0008, "pass"),
			asm.LoadMem(asm.R4, asm.R1, 20, asm.Half),
			asm.And.Imm(asm.R4, 0xff3f),
			asm.JEq.Imm(asm.R4, 0, "pass"),
			asm.Mov.Imm(asm.R0, 2), // TC_ACT_SHOT
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("pass"), // TC_ACT_OK
			asm.Return(),
		},
	})
	if err != nil {
		t.Skipf("cannot load the fragment-dropping tc program: %v", err)
	}
	defer prog.Close()
	pin := filepath.Join("/sys/fs/bpf", l.prefix+"-drop-ipfrag")
	if err := prog.Pin(pin); err != nil {
		t.Fatalf("pin: %v", err)
	}
	defer prog.Unpin() // the filters keep the program
	must("gA", "ip", "link", "set", "wan0", "mtu", "1280")
	must("gB", "ip", "link", "set", "wan0", "mtu", "1280")
	for _, port := range []string{"a0", "b0"} {
		must("wan", "ip", "link", "set", port, "mtu", "1280")
		must("wan", "tc", "qdisc", "add", "dev", port, "clsact")
		must("wan", "tc", "filter", "add", "dev", port, "ingress", "bpf", "da", "pinned", pin)
	}
	must("wan", "ip", "link", "set", "br0", "mtu", "1280")
}

// isSet reads a boolean field as tshark prints it.
func isSet(v string) bool { return v == "1" || strings.EqualFold(v, "true") }

var tcDroppedRE = regexp.MustCompile(`dropped (\d+)`)

// fragmentsDropped returns the packets the fragment filters dropped on the
// bridge's ports: the clsact qdisc counts what its filters shot.
func (l *lab) fragmentsDropped(t *testing.T) int {
	t.Helper()
	n := 0
	for _, port := range []string{"a0", "b0"} {
		out, err := l.run("wan", 10*time.Second, "tc", "-s", "qdisc", "show", "dev", port)
		if err != nil {
			t.Fatalf("tc -s qdisc show: %v\n%s", err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if m := tcDroppedRE.FindStringSubmatch(line); m != nil {
				d, _ := strconv.Atoi(m[1])
				n += d
			}
		}
	}
	return n
}

// ikeFragCounters returns the daemon's IKE fragmentation counters from
// `xdpsec show stats -o json`.
func ikeFragCounters(t *testing.T, sock string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command(xdpsecBin, "show", "stats", "-o", "json", "--socket", sock).Output()
	if err != nil {
		t.Fatalf("xdpsec show stats: %v", err)
	}
	var v struct {
		IKEFragments map[string]uint64 `json:"ike_fragments"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("xdpsec show stats -o json: %v\n%s", err, out)
	}
	return v.IKEFragments
}

// ikeFrames lists a capture's IKE and IP-fragment frames as "source,IP
// length,MF,Fragment Number,Total Fragments" (the last two empty for
// unfragmented IKE messages), with tshark's IP reassembly off so every IP
// fragment shows as it crossed.
func ikeFrames(t *testing.T, pcap string) []string {
	t.Helper()
	return tshark(t, pcap, nil, "-o", "ip.defragment:FALSE", "-Y", "udp.port == 4500 or udp.port == 500 or ip.flags.mf == 1 or ip.frag_offset > 0",
		"-T", "fields", "-E", "separator=,", "-e", "ip.src", "-e", "ip.len", "-e", "ip.flags.mf", "-e", "isakmp.frag.number", "-e", "isakmp.frag.total")
}

// TestIKEFragStrongSwan is issue 5's fragmentation test against strongSwan
// 5.9.8: gwA (xdpsec) and gwB (charon, `fragmentation = yes`) each
// authenticate with a four-certificate RSA-4096 chain (root, two
// intermediates of their own, leaf) over a WAN of MTU 1280 that drops IP
// fragments. Each IKE_AUTH is about 5 KB. With xdpsec's fragmentation on
// (its default), both IKE_AUTH messages cross as RFC 7383 fragments no
// bigger than 1280 octets, whichever end initiates; the tunnel carries
// pings; tshark decrypts both IKE_AUTHs from the fragments with xdpsec's
// key log and finds signature AUTH payloads. With it off, the same
// IKE_AUTH leaves as IP fragments that the path drops, and no IKE SA comes
// up: the path really needs IKE fragmentation.
func TestIKEFragStrongSwan(t *testing.T) {
	needLab(t)
	needCharon(t)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("the fragment-dropping path needs tc (iproute2)")
	}
	const ike, esp = "aes128gcm16-prfsha256-ecp256", "aes128gcm16"
	pki := newChainPKI(t)
	cases := []struct {
		name           string
		fragmentation  bool
		xdpsecInitiate bool
	}{
		{"xdpsec-initiates", true, true},
		{"strongswan-initiates", true, false},
		{"fragmentation-off", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "")
			l.narrowWAN(t)
			pskA, _ := l.ikeConfigs(t, ike, esp, "none")
			a := l.fragConfigA(t, pki, pskA, tc.fragmentation)
			capAll := l.capture(t, "wan", "a0", 0)
			ch := l.startCharon(t, ike, esp)
			ch.useChain(t, pki, ike, esp)
			gA := l.start(t, "gA", a)
			sockA := l.sockPath("gA")

			if !tc.fragmentation {
				// xdpsec gives up only after its whole retransmission
				// schedule; 10 s of it is proof enough.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				out, err := exec.CommandContext(ctx, xdpsecBin, "initiate", "site", "--socket", sockA).CombinedOutput()
				cancel()
				if err == nil {
					t.Fatalf("initiate succeeded without IKE fragmentation over a fragment-dropping 1280 path: %s", out)
				}
				for _, sa := range showIKE(t, sockA) {
					if sa.State == "ESTABLISHED" {
						t.Fatalf("IKE SA established without fragmentation: %+v", sa)
					}
				}
				pcap := capAll.stop()
				frames := ikeFrames(t, pcap)
				ipFrags, skf := 0, 0
				for _, f := range frames {
					fs := strings.Split(f, ",")
					if len(fs) == 5 && fs[0] == gwA4 && isSet(fs[2]) {
						ipFrags++
					}
					if len(fs) == 5 && fs[3] != "" {
						skf++
					}
				}
				dropped := l.fragmentsDropped(t)
				t.Logf("IP fragments from gwA on the wire: %d, dropped by the path: %d, IKE fragments: %d", ipFrags, dropped, skf)
				if ipFrags == 0 || dropped == 0 || skf != 0 {
					t.Errorf("want an IP-fragmented IKE_AUTH that the path dropped and no IKE fragments:\n%s", strings.Join(frames, "\n"))
				}
				l.stopClean(t, gA)
				return
			}

			if tc.xdpsecInitiate {
				t.Log(ikeAction(t, sockA, "initiate", "site"))
			} else {
				ch.swanctl(t, "--initiate", "--child", "net", "--timeout", "20")
			}
			sas := waitIKE(t, sockA, 1, 20*time.Second)
			ia := sas[0]
			if ia.Initiator != tc.xdpsecInitiate || ia.LocalID != "gw-a.lab" || ia.RemoteID != "gw-b.lab" {
				t.Errorf("xdpsec's IKE SA: %+v", ia)
			}
			list := ch.swanctl(t, "--list-sas")
			for _, want := range []string{"ESTABLISHED", "INSTALLED", strings.ToLower(ia.SPIi), strings.ToLower(ia.SPIr)} {
				if !strings.Contains(list, want) {
					t.Errorf("swanctl --list-sas lacks %q; xdpsec has %+v:\n%s", want, ia, list)
				}
			}
			l.pingPairs(t, 5, [][2]string{{"hA", hostB4}, {"hB", hostA4}})

			// xdpsec's own counters agree: its IKE_AUTH went out in
			// fragments (more than once only if a loaded box made it
			// retransmit), the peer's was reassembled, and nothing was
			// dropped but duplicates.
			fc := ikeFragCounters(t, sockA)
			t.Logf("xdpsec's fragment counters: %v", fc)
			if fc["messages_sent"] < 1 || fc["fragments_sent"] < 4 || fc["reassembled"] < 1 ||
				fc["drop_integrity"]+fc["drop_not_negotiated"]+fc["malformed"]+fc["drop_too_many"]+fc["drop_too_large"] != 0 {
				t.Errorf("xdpsec's fragment counters: %v", fc)
			}

			pcap := capAll.stop()
			frames := ikeFrames(t, pcap)
			skf := map[string]int{}
			maxLen := 0
			for _, f := range frames {
				fs := strings.Split(f, ",")
				if len(fs) != 5 {
					continue
				}
				n, _ := strconv.Atoi(fs[1])
				maxLen = max(maxLen, n)
				if isSet(fs[2]) {
					t.Errorf("an IP fragment crossed (or tried to): %s", f)
				}
				if fs[3] != "" {
					skf[fs[0]]++
				}
			}
			t.Logf("IKE fragments: %d from xdpsec, %d from strongSwan; largest IKE datagram %d octets", skf[gwA4], skf[gwB4], maxLen)
			// A 5 KB IKE_AUTH needs at least four 1280-octet fragments.
			if skf[gwA4] < 4 || skf[gwB4] < 4 {
				t.Errorf("want at least 4 IKE fragments from each end:\n%s", strings.Join(frames, "\n"))
			}
			if maxLen > 1280 {
				t.Errorf("an IKE datagram of %d octets on a 1280 path", maxLen)
			}
			// tshark reassembles the fragments and decrypts both
			// IKE_AUTHs with xdpsec's key log alone: an independent check
			// of our fragment encoding and protection.
			auth := 0
			for _, r := range decryptIKEWithKeyLog(t, pcap, filepath.Join(l.dir, "keylog-a")) {
				if f := strings.Split(r, "\t"); len(f) == 2 && f[0] == "35" && f[1] != "" {
					auth++
				}
			}
			if auth != 2 {
				t.Errorf("tshark decrypted %d IKE_AUTH messages with AUTH payloads from the fragments, want 2", auth)
			}
			l.stopClean(t, gA)
		})
	}
}
