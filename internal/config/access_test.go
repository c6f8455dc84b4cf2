package config

import (
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
)

// writeCertAndKey writes a self-signed ECDSA certificate (a.pem, also the
// CA) and its key (a.key, mode keyMode) into dir.
func writeCertAndKey(t *testing.T, dir string, keyMode os.FileMode) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw-a.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{{"a.pem", "CERTIFICATE", der, 0o644}, {"a.key", "PRIVATE KEY", kd, keyMode}} {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile applies the umask; set the mode the case asks for.
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSecretFileModes: a static SA's key_file, a PSK file and a private
// key that group or others may read are refused, with the file and the fix
// in the message, as OpenSSH refuses such a private key (issue 13);
// mode 0600 (or 0400) is accepted. Certificates may be world-readable.
func TestSecretFileModes(t *testing.T) {
	const keyHex = "00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13\n"
	for _, tc := range []struct {
		kind string
		mode os.FileMode
		ok   bool
	}{
		{"key_file", 0o600, true}, {"key_file", 0o400, true}, {"key_file", 0o644, false}, {"key_file", 0o640, false}, {"key_file", 0o604, false}, {"key_file", 0o620, false},
		{"psk_file", 0o600, true}, {"psk_file", 0o644, false}, {"psk_file", 0o640, false},
		{"private key", 0o600, true}, {"private key", 0o644, false}, {"private key", 0o604, false},
	} {
		dir := t.TempDir()
		var cfg, file, field string
		switch tc.kind {
		case "key_file":
			file, field = filepath.Join(dir, "k.hex"), "sas[0].key_file"
			os.WriteFile(file, []byte(keyHex), tc.mode)
			cfg = strings.Replace(base, "key: "+goodKey, "key_file: k.hex", 1)
		case "psk_file":
			file, field = filepath.Join(dir, "psk"), "connections[0].auth.psk_file"
			os.WriteFile(file, []byte(testPSK+"\n"), tc.mode)
			cfg = strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
		case "private key":
			writeCertAndKey(t, dir, tc.mode)
			file, field = filepath.Join(dir, "a.key"), "connections[0].auth.key"
			cfg = strings.Replace(ikeBase, "%s", "{cert: a.pem, key: a.key, ca: a.pem}", 1)
		}
		if err := os.Chmod(file, tc.mode); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "gw.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if tc.ok {
			if err != nil {
				t.Errorf("%s mode %04o: %v", tc.kind, tc.mode, err)
			} else {
				c.Wipe()
			}
			continue
		}
		if err == nil {
			c.Wipe()
			t.Errorf("%s mode %04o: accepted", tc.kind, tc.mode)
			continue
		}
		msg := err.Error()
		for _, want := range []string{field + ": " + file, "too open", "chmod 600 " + file} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s mode %04o: error %q lacks %q", tc.kind, tc.mode, msg, want)
			}
		}
	}
}

// TestInlineKeyWarning: keys written in the YAML give one warning that
// names each of them and the fix; key files give none.
func TestInlineKeyWarning(t *testing.T) {
	two := strings.Replace(base, "policies:", `  - name: ba
    spi: 0x1002
    dir: in
    local: 192.0.2.1
    remote: 192.0.2.2
    suite: aes128gcm16
    key: 0x202122232425262728292a2b2c2d2e2f30313233
policies:`, 1)
	c, err := Parse("gw.yaml", []byte(two))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Wipe()
	if len(c.Warnings) != 1 {
		t.Fatalf("warnings %q, want one", c.Warnings)
	}
	w := c.Warnings[0]
	for _, want := range []string{"gw.yaml", "sas[0].key (line 9)", "sas[1].key (line 16)", "key_file of mode 0600"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q lacks %q", w, want)
		}
	}
	if strings.Contains(w, "0102030405") {
		t.Errorf("warning quotes the key: %q", w)
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "k.hex"), []byte(goodKey), 0o600)
	c2, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(strings.Replace(base, "key: "+goodKey, "key_file: k.hex", 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Wipe()
	if len(c2.Warnings) != 0 {
		t.Errorf("key_file gave warnings %q", c2.Warnings)
	}
}

// TestControlGroups: control_group and control_admin_group take a name or
// a gid; unknown names and group 0 are errors with file:line.
func TestControlGroups(t *testing.T) {
	c, err := Parse("x.yaml", []byte("control_group: 4242\ncontrol_admin_group: root-ish-but-numeric\n"+base))
	if err == nil {
		c.Wipe()
		t.Fatal("unknown group name accepted")
	} else if !strings.Contains(err.Error(), `x.yaml:2: control_admin_group: no group "root-ish-but-numeric"`) {
		t.Errorf("unknown group: %v", err)
	}
	c, err = Parse("x.yaml", []byte("control_group: 4242\ncontrol_admin_group: 4343\n"+base))
	if err != nil {
		t.Fatal(err)
	}
	if c.ControlGroup != 4242 || c.ControlAdminGroup != 4343 {
		t.Errorf("groups %d, %d", c.ControlGroup, c.ControlAdminGroup)
	}
	c.Wipe()
	if _, err := Parse("x.yaml", []byte("control_group: 0\n"+base)); err == nil || !strings.Contains(err.Error(), "x.yaml:1: control_group: group 0") {
		t.Errorf("group 0: %v", err)
	}
	// A name resolves through the system's group database.
	if c, err := Parse("x.yaml", []byte("control_group: daemon\n"+base)); err == nil {
		if c.ControlGroup == 0 {
			t.Error("group daemon resolved to 0")
		}
		c.Wipe()
	} else if !strings.Contains(err.Error(), "no group") {
		t.Error(err)
	}
}
