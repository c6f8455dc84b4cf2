package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/swantest"
)

// certPKI is a throw-away CA and one leaf per gateway, generated per test
// so no key is ever committed.
type certPKI struct {
	ca           *x509.Certificate
	caKey        crypto.Signer
	certA, certB *x509.Certificate
	keyA, keyB   crypto.Signer
}

// newCertPKI makes a CA and leaves for gw-a.lab and gw-b.lab with keys of
// kind "ecdsa" (P-256) or "rsa" (2048 bits); the identities are DNS SANs,
// which both ends match against the FQDN IDs the connections use.
func newCertPKI(t *testing.T, kind string) *certPKI {
	t.Helper()
	gen := func() crypto.Signer {
		var k crypto.Signer
		var err error
		switch kind {
		case "ecdsa":
			k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case "rsa":
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		default:
			err = fmt.Errorf("unknown key kind %q", kind)
		}
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	p := &certPKI{caKey: gen(), keyA: gen(), keyB: gen()}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"xdpsec lab"}, CommonName: "xdpsec lab CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, p.caKey.Public(), p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, name string, key crypto.Signer) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"xdpsec lab"}, CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			DNSNames: []string{name}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p.certA = issue(2, "gw-a.lab", p.keyA)
	p.certB = issue(3, "gw-b.lab", p.keyB)
	return p
}

// writePEM writes one PEM block to path, creating its directory.
func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// keyPEM returns a key in the legacy per-algorithm PEM forms (SEC 1,
// PKCS #1), which both xdpsec and swanctl's ecdsa/ and rsa/ directories read.
func keyPEM(t *testing.T, k crypto.Signer) (typ, dir string, der []byte) {
	t.Helper()
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return "EC PRIVATE KEY", "ecdsa", der
	case *rsa.PrivateKey:
		return "RSA PRIVATE KEY", "rsa", x509.MarshalPKCS1PrivateKey(k)
	}
	t.Fatalf("unsupported key %T", k)
	return "", "", nil
}

// certConfigA turns the lab's PSK configuration for gwA (from ikeConfigs)
// into one that authenticates with gw-a.lab's certificate and trusts only
// the lab CA; everything else stays as gen-ike-config.sh wrote it.
func (l *lab) certConfigA(t *testing.T, p *certPKI, pskCfg string) string {
	t.Helper()
	dir := filepath.Join(l.dir, "pki-a")
	writePEM(t, filepath.Join(dir, "gw-a.pem"), "CERTIFICATE", p.certA.Raw)
	typ, _, der := keyPEM(t, p.keyA)
	writePEM(t, filepath.Join(dir, "gw-a.key"), typ, der)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", p.ca.Raw)
	b, err := os.ReadFile(pskCfg)
	if err != nil {
		t.Fatal(err)
	}
	pskAuth := fmt.Sprintf("auth: {psk_file: %s}", filepath.Join(l.dir, "psk"))
	if strings.Count(string(b), pskAuth) != 1 {
		t.Fatalf("%s: no single %q line to replace:\n%s", pskCfg, pskAuth, b)
	}
	certAuth := fmt.Sprintf("auth: {cert: %s, key: %s, ca: [%s]}",
		filepath.Join(dir, "gw-a.pem"), filepath.Join(dir, "gw-a.key"), filepath.Join(dir, "ca.pem"))
	cfg := filepath.Join(l.dir, "gw-a-cert.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), pskAuth, certAuth, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// useCerts switches a charon started by startCharon from PSK to public-key
// authentication: it lays gw-b.lab's certificate, its key and the CA out
// the way swanctl reads them (x509/, ecdsa/ or rsa/, x509ca/ beside
// swanctl.conf), rewrites connection "site" with `auth = pubkey` and loads
// it all again; swanctl replaces a changed connection and the credentials
// in place, before either end has initiated anything.
func (c *charon) useCerts(t *testing.T, p *certPKI, ikeProp, espProp string) {
	t.Helper()
	writePEM(t, filepath.Join(c.dir, "x509", "gw-b.pem"), "CERTIFICATE", p.certB.Raw)
	writePEM(t, filepath.Join(c.dir, "x509ca", "ca.pem"), "CERTIFICATE", p.ca.Raw)
	typ, keyDir, der := keyPEM(t, p.keyB)
	writePEM(t, filepath.Join(c.dir, keyDir, "gw-b.key"), typ, der)
	c.loadPubkeySite(t, "ca.pem", "", ikeProp, espProp)
}

// loadPubkeySite rewrites connection "site" with `auth = pubkey` both ways
// (our gw-b.pem, the peer checked against x509ca/cacert; extra lines go
// into the connection) and loads it and the credentials again.
func (c *charon) loadPubkeySite(t *testing.T, cacert, extra, ikeProp, espProp string) {
	t.Helper()
	swanctl := swantest.GwB(gwB4, gwA4, ikeProp, espProp).PubkeyConf("gw-b.pem", cacert, extra)
	file := filepath.Join(c.dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(swanctl), 0o600); err != nil {
		t.Fatal(err)
	}
	c.swanctl(t, "--load-all", "--file", file)
	if conns := c.swanctl(t, "--list-conns"); strings.Count(conns, "public key authentication") != 2 {
		t.Fatalf("charon did not take the public-key connection:\n%s", conns)
	}
}

// TestIKEStrongSwanCerts runs xdpsec as gwA against strongSwan 5.9.8's
// charon as gwB with X.509 certificates instead of a PSK (RFC 7296 §2.15
// with RFC 7427 signatures: both ends announce SIGNATURE_HASH_ALGORITHMS),
// one case per key type and initiator: ECDSA P-256 with xdpsec
// initiating, RSA 2048 with charon initiating. The CA and leaves are made
// here; each end trusts only the lab CA and names the other by the FQDN
// in its certificate's DNS SAN. As in TestIKEStrongSwan, both ends must
// show the same SAs, ping and iperf3 cross both ways, nothing leaks in
// clear, and tshark verifies every ESP frame and both IKE_AUTH messages
// (here with signature AUTH payloads) using xdpsec's key log alone.
func TestIKEStrongSwanCerts(t *testing.T) {
	needLab(t)
	needCharon(t)
	const ike, esp = "aes128gcm16-prfsha256-ecp256", "aes128gcm16"
	cases := []struct {
		name           string
		key            string
		xdpsecInitiate bool
	}{
		{"ecdsa-p256/xdpsec-initiates", "ecdsa", true},
		{"rsa-2048/strongswan-initiates", "rsa", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "")
			p := newCertPKI(t, tc.key)
			pskA, _ := l.ikeConfigs(t, ike, esp, "none")
			a := l.certConfigA(t, p, pskA)
			capAll := l.capture(t, "wan", "a0", 0)
			ch := l.startCharon(t, ike, esp)
			ch.useCerts(t, p, ike, esp)
			gA := l.start(t, "gA", a)
			sockA := l.sockPath("gA")
			if tc.xdpsecInitiate {
				t.Log(ikeAction(t, sockA, "initiate", "site"))
			} else {
				ch.swanctl(t, "--initiate", "--child", "net", "--timeout", "10")
			}
			sas := waitIKE(t, sockA, 1, 10*time.Second)
			ia := sas[0]
			if ia.Initiator != tc.xdpsecInitiate || !ia.NATT || ia.Proposal != ike ||
				ia.LocalID != "gw-a.lab" || ia.RemoteID != "gw-b.lab" {
				t.Errorf("xdpsec's IKE SA: %+v", ia)
			}
			ca := ia.Children[0]
			if !ca.UDPEncap || !strings.HasPrefix(ca.Proposal, esp) {
				t.Errorf("xdpsec's Child SA: %+v", ca)
			}
			list := ch.swanctl(t, "--list-sas")
			for _, want := range []string{"ESTABLISHED", "INSTALLED", "gw-a.lab", "gw-b.lab",
				strings.ToLower(ia.SPIi), strings.ToLower(ia.SPIr),
				fmt.Sprintf("%08x", ca.SPIIn), fmt.Sprintf("%08x", ca.SPIOut)} {
				if !strings.Contains(list, want) {
					t.Errorf("swanctl --list-sas lacks %q; xdpsec has %+v:\n%s", want, ia, list)
				}
			}

			l.pingPairs(t, 10, [][2]string{{"hA", hostB4}, {"hB", hostA4}})
			l.iperfTCP(t, "xdpsec<->charon", true)

			pcap := capAll.stop()
			ikeNoLeak(t, pcap)
			if n := len(tshark(t, pcap, nil, "-Y", "udp.port == 4500 and esp")); n == 0 {
				t.Error("no ESP-in-UDP on the WAN")
			}
			uat := keyLogUAT(t, filepath.Join(l.dir, "keylog-a"))
			if good := decryptWithKeyLog(t, pcap, uat); good < 40 {
				t.Errorf("only %d ESP frames verified", good)
			}
			// Both IKE_AUTH messages must carry Digital Signature AUTH
			// (method 14, RFC 7427): proof that certificates, not a
			// leftover PSK, authenticated each end.
			auth := 0
			for _, r := range decryptIKEWithKeyLog(t, pcap, filepath.Join(l.dir, "keylog-a")) {
				f := strings.Split(r, "\t")
				if len(f) == 2 && f[0] == "35" && f[1] != "" {
					if f[1] != "14" {
						t.Errorf("IKE_AUTH with AUTH method %s, want 14 (Digital Signature)", f[1])
					}
					auth++
				}
			}
			if auth != 2 {
				t.Errorf("tshark decrypted %d IKE_AUTH messages with AUTH payloads from xdpsec's key log, want 2", auth)
			}
			l.stopClean(t, gA)
		})
	}
}
