package swanctl

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/swantest"
)

// importDir converts swanctl.conf text as `xdpsec import swanctl -o
// DIR/xdpsec.yaml` does (PSKs to files beside it) and loads the result
// with xdpsec's own validation.
func importDir(t *testing.T, dir, text string) (*Result, *config.Config) {
	t.Helper()
	file := filepath.Join(dir, "swanctl.conf")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(root, Options{LAN: "lan0", WAN: "wan0", PSKFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Secrets {
		if err := os.WriteFile(filepath.Join(dir, s.Name), s.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "xdpsec.yaml")
	if err := os.WriteFile(out, res.YAML, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(out)
	if err != nil {
		t.Fatalf("the imported configuration does not load: %v\n%s", err, res.YAML)
	}
	t.Cleanup(cfg.Wipe)
	return res, cfg
}

// pki writes a CA and, for each name, a certificate (DNS SAN name) to
// x509/NAME.pem and its key to ecdsa/NAME.key, the CA to x509ca/ca.pem
// and, for the ike interop lab's absolute paths, NAME.pem and ca.pem in
// dir itself.
func pki(t *testing.T, dir string, names ...string) {
	t.Helper()
	write := func(p, typ string, der []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write(filepath.Join(dir, "x509ca", "ca.pem"), "CERTIFICATE", caDER)
	write(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	for i, n := range names {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: n}, DNSNames: []string{n},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(k)
		write(filepath.Join(dir, "x509", n+".pem"), "CERTIFICATE", der)
		write(filepath.Join(dir, n+".pem"), "CERTIFICATE", der)
		write(filepath.Join(dir, "ecdsa", n+".key"), "EC PRIVATE KEY", kder)
	}
}

// TestImportGenerated converts every swanctl.conf the strongSwan interop
// tests give charon (internal/swantest writes them) and the mirror
// images the e2e tests' xdpsec side would have: each loads with xdpsec's
// validation, with every connection carried and the same proposals,
// addresses, selectors and keys.
func TestImportGenerated(t *testing.T) {
	const psk = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	e2eProposals := [][2]string{
		{"aes128gcm16-prfsha256-ecp256", "aes256gcm16"},
		{"aes256gcm16-prfsha384-x25519", "aes128gcm16-x25519"},
		{"chacha20poly1305-prfsha256-modp2048", "chacha20poly1305"},
		{"aes256-sha256-prfsha256-ecp384", "aes256gcm16-ecp384"},
	}
	type tc struct {
		name  string
		text  func(dir string) string
		conns int
		check func(t *testing.T, res *Result, cfg *config.Config, dir string)
	}
	var cases []tc
	for _, p := range e2eProposals {
		b := swantest.GwB("192.0.2.2", "192.0.2.1", p[0], p[1])
		a := b.Mirror()
		a.StartAction = "start"
		cases = append(cases,
			tc{"e2e/psk/gwB/" + p[0], func(string) string { return b.PSKConf(psk) }, 1, nil},
			tc{"e2e/psk/gwA/" + p[0], func(string) string { return a.PSKConf(psk) }, 1,
				func(t *testing.T, res *Result, cfg *config.Config, dir string) {
					c := cfg.IKE.Connections[0]
					if c.LocalAddr.String() != "192.0.2.1" || c.RemoteAddr.String() != "192.0.2.2" || c.Local.ID.String() != "gw-a.lab" ||
						c.Remote.ID.String() != "gw-b.lab" || string(c.Local.PSK) != psk || c.StartAction != 1 {
						t.Errorf("connection: %+v", c)
					}
					if got := c.IKEProposals[0].String(); got != p[0] {
						t.Errorf("IKE proposal %s, want %s", got, p[0])
					}
					ch := c.Children[0]
					if ch.ESPProposals[0].String() != p[1] || len(ch.LocalTS) != 2 || ch.LocalTS[0].Prefix.String() != "198.18.1.0/24" ||
						ch.RemoteTS[1].Prefix.String() != "2001:db8:b::/64" || ch.Lifetime.Soft.Time != time.Hour {
						t.Errorf("child: %+v", ch)
					}
				}},
			tc{"e2e/pubkey/gwB/" + p[0], func(dir string) string {
				pki(t, dir, "gw-b.lab")
				s := b
				s.LocalID = "gw-b.lab"
				return s.PubkeyConf("gw-b.lab.pem", "ca.pem", "")
			}, 1, nil},
		)
	}
	cases = append(cases,
		tc{"ike/interop", func(dir string) string {
			pki(t, dir, "charon")
			return swantest.Interop{Charon: "198.18.10.2", Ours: "198.18.10.1", CharonNet: "198.18.12.0/24", OurNet: "198.18.11.0/24",
				CharonNet2: "198.18.14.0/24", OurNet2: "198.18.13.0/24", PSK: "xdpsec interop lab key, not a secret", PKIDir: dir}.Conf()
		}, 3, func(t *testing.T, res *Result, cfg *config.Config, dir string) {
			cs := cfg.IKE.Connections
			if cs[0].Name != "fromus" || cs[1].Name != "tous" || cs[2].Name != "certfromus" || cs[2].Local.Certificate == nil || len(cs[2].Remote.CAs) != 1 {
				t.Errorf("connections: %+v", cs)
			}
			if string(cs[1].Local.PSK) != "xdpsec interop lab key, not a secret" {
				t.Error("tous: wrong PSK")
			}
		}},
		tc{"bench/ikeload", func(string) string { return swantest.BenchResponder("198.18.21.2", "ikeload-bench-psk-0123456789") }, 1,
			func(t *testing.T, res *Result, cfg *config.Config, dir string) {
				c := cfg.IKE.Connections[0]
				if c.RemoteAddr.IsValid() || c.Children[0].LocalTS[0].Prefix.String() != "0.0.0.0/0" || c.StartAction != 0 {
					t.Errorf("connection: %+v", c)
				}
			}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			res, cfg := importDir(t, dir, c.text(dir))
			if len(cfg.IKE.Connections) != c.conns || res.Skipped != 0 {
				t.Fatalf("%d connections (%d skipped), want %d:\n%s", len(cfg.IKE.Connections), res.Skipped, c.conns, res.YAML)
			}
			if c.check != nil {
				c.check(t, res, cfg, dir)
			}
		})
	}
}

// TestImportHandWritten converts testdata/full.conf, which uses every key
// the import carries and some it cannot: the result loads, carries what
// it should, and names every setting left behind in a comment, never
// printing a secret.
func TestImportHandWritten(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"full.conf", "conf.d/branch.conf"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "conf.d"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	full, _ := os.ReadFile(filepath.Join(dir, "full.conf"))
	res, cfg := importDir(t, dir, string(full))
	y := string(res.YAML)
	for _, want := range []string{
		// carried over
		"local_addr: 192.0.2.1", "remote_addr: 192.0.2.2", "remote_port: 4501", "local_id: gw-a.example", "remote_id: gw-b.example",
		"auth: {psk_file: hq.psk}", "auth: {psk_file: branch.psk}",
		"ike_proposals: [aes256gcm16-prfsha384-ecp384, aes128-sha256-prfsha256-modp2048]",
		"encap: true", "fragmentation: false", "dpd_delay: 30s", "rekey_time: 2h", "ike_lifetime: 130m",
		"start_action: start", "close_action: trap", "dpd_action: restart", "start_action: trap",
		"local_ts: [10.1.0.0/16, 192.0.2.1/32]", `remote_ts: ["10.2.0.0/16[tcp/443]", "10.3.0.0/16[udp]"]`,
		"esp_proposals: [aes128gcm16-x25519-esn, aes256-sha512-modp3072]", "mode: tunnel",
		"soft: {time: 30m, bytes: 1073741824, packets: 1000000}", "hard: {time: 40m, bytes: 1181116006, packets: 1200000}",
		"replay_window: 128", "local_ts: [192.0.2.1/32]", "remote_ts: [10.5.0.0/16]",
		"esp_proposals: [aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305, aes128-aes192-aes256-sha256-sha384-sha512]",
		// left behind, each with its line
		"swanctl.conf:4: proposals = aes256gcm16-prfsha384-ecp384, aes128-sha256-sha1-prfsha256-modp2048-modp1024, 3des-md5-modp1024: not carried over: not implemented in xdpsec: sha1-modp1024 from aes128-sha256-sha1-prfsha256-modp2048-modp1024, 3des-md5-modp1024",
		"swanctl.conf:6: mobike = no: not carried over", "swanctl.conf:17: rand_time = 5m: not carried over",
		"swanctl.conf:18: keyingtries = 0: not carried over", "swanctl.conf:19: unique = replace: not carried over",
		"swanctl.conf:20: vips = 0.0.0.0: not carried over", "swanctl.conf:44: updown = /usr/lib/ipsec/_updown iptables: not carried over",
		"swanctl.conf:45: mark_in = 42: not carried over", "swanctl.conf:46: copy_dscp = yes: not carried over",
		"swanctl.conf:48: child shunt: not carried over: mode pass is a shunt policy",
		"swanctl.conf:56: connection ikev1: not carried over: swanctl.conf:57: IKEv1 is not implemented",
		"swanctl.conf:65: connection roadwarrior: not carried over", "EAP and XAuth are not implemented",
		"swanctl.conf:74: section pools { }: not carried over", "swanctl.conf:87: section eap-carol { }: not carried over",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(y, "conn-defaults") {
		t.Error("the referenced template section is reported as not carried over")
	}
	if strings.Contains(y, "do not print me") || strings.Contains(y, "000102030405") || strings.Contains(y, "AAECAwQF") {
		t.Error("a secret is in the output")
	}
	if len(cfg.IKE.Connections) != 2 || res.Skipped != 2 {
		t.Errorf("%d connections, %d skipped; want 2 and 2:\n%s", len(cfg.IKE.Connections), res.Skipped, y)
	}
	want := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}
	for _, c := range cfg.IKE.Connections {
		if !bytes.Equal(c.Local.PSK, want) {
			t.Errorf("%s: PSK %x, want %x (0x and 0s decoded)", c.Name, c.Local.PSK, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "hq.psk")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("hq.psk: %v %v", fi, err)
	}
}

// TestImportEnv: without PSK files the YAML names an environment
// variable per connection, and lists it.
func TestImportEnv(t *testing.T) {
	b := swantest.GwB("192.0.2.2", "192.0.2.1", "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	root, err := Parse("swanctl.conf", []byte(b.PSKConf("0123456789abcdef0123")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.YAML), "auth: {psk_env: XDPSEC_PSK_SITE}") || len(res.Env) != 1 || len(res.Secrets) != 0 ||
		strings.Contains(string(res.YAML), "0123456789abcdef0123") {
		t.Errorf("env %v secrets %d:\n%s", res.Env, len(res.Secrets), res.YAML)
	}
}
