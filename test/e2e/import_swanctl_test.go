package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/swantest"
)

// TestImportSwanctl moves gwA from strongSwan to xdpsec the way an
// operator would: the swanctl.conf gwA would have as a strongSwan gateway
// (the mirror of the one charon runs as gwB in TestIKEStrongSwan and
// TestIKEStrongSwanCerts, with start_action = start, the certificate and
// key laid out in x509/, x509ca/ and ecdsa/ as swanctl reads them) goes
// through `xdpsec import swanctl`; the imported configuration, with only
// the lab's own paths added, brings the tunnel up against charon and
// carries ping both ways, IPv4 and IPv6.
func TestImportSwanctl(t *testing.T) {
	needLab(t)
	needCharon(t)
	cases := []struct {
		name, ike, esp string
		pubkey         bool
	}{
		{"psk", "aes256gcm16-prfsha384-x25519", "aes128gcm16-x25519", false},
		{"pubkey-ecdsa", "aes128gcm16-prfsha256-ecp256", "aes128gcm16", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "")
			var key [32]byte
			rand.Read(key[:])
			psk := hex.EncodeToString(key[:])
			// startCharon reads the PSK from here.
			if err := os.WriteFile(filepath.Join(l.dir, "psk"), []byte(psk), 0o600); err != nil {
				t.Fatal(err)
			}
			swanA := swantest.GwB(gwB4, gwA4, tc.ike, tc.esp).Mirror()
			swanA.StartAction = "start"
			dirA := filepath.Join(l.dir, "swanctl-a")
			if err := os.MkdirAll(dirA, 0o700); err != nil {
				t.Fatal(err)
			}
			text := swanA.PSKConf(psk)
			var p *certPKI
			if tc.pubkey {
				p = newCertPKI(t, "ecdsa")
				writePEM(t, filepath.Join(dirA, "x509", "gw-a.pem"), "CERTIFICATE", p.certA.Raw)
				writePEM(t, filepath.Join(dirA, "x509ca", "ca.pem"), "CERTIFICATE", p.ca.Raw)
				typ, keyDir, der := keyPEM(t, p.keyA)
				writePEM(t, filepath.Join(dirA, keyDir, "gw-a.key"), typ, der)
				text = swanA.PubkeyConf("gw-a.pem", "ca.pem", "")
			}
			cfgA, imported := l.importSwanctl(t, dirA, text, "1 connections converted, 0 written as comments", "")
			if strings.Contains(string(imported), psk) {
				t.Fatal("the PSK is in the imported YAML")
			}

			ch := l.startCharon(t, tc.ike, tc.esp)
			if tc.pubkey {
				ch.useCerts(t, p, tc.ike, tc.esp)
			}
			start := time.Now()
			gA := l.start(t, "gA", cfgA)
			sas := waitIKE(t, l.sockPath("gA"), 1, 10*time.Second)
			if ia := sas[0]; !ia.Initiator || ia.Proposal != tc.ike || ia.RemoteID != "gw-b.lab" || ia.Children[0].Name != "net" {
				t.Errorf("xdpsec's IKE SA from the imported configuration: %+v", ia)
			}
			t.Logf("tunnel up %v after the imported configuration started", time.Since(start).Round(time.Millisecond))
			l.pingPairs(t, 5, [][2]string{{"hA", hostB4}, {"hB", hostA4}, {"hA", hostB6}, {"hB", hostA6}})
			l.stopClean(t, gA)
		})
	}
}

// importSwanctl writes text as dirA/swanctl.conf, runs `xdpsec import
// swanctl` on it into gw-a.yaml, checks the import's summary line, and
// appends what a lab gateway needs beyond the tunnel (its own pins,
// socket and state, nothing left behind) and extra. It returns the
// configuration's path and the YAML as imported.
func (l *lab) importSwanctl(t *testing.T, dirA, text, summary, extra string) (string, []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dirA, "swanctl.conf"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgA := filepath.Join(l.dir, "gw-a.yaml")
	out, err := exec.Command(xdpsecBin, "import", "swanctl", "-o", cfgA, "-lan", "lan0", "-wan", "wan0",
		filepath.Join(dirA, "swanctl.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("xdpsec import swanctl: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), summary) {
		t.Errorf("xdpsec import swanctl: %s", out)
	}
	imported, err := os.ReadFile(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	lab := fmt.Sprintf("pin_path: %s\non_stop: detach\ncontrol: %s\nstate_dir: %s\n%s",
		l.pinPath("gA"), l.sockPath("gA"), filepath.Join(l.dir, "state-gA"), extra)
	if err := os.WriteFile(cfgA, append(imported, lab...), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgA, imported
}
