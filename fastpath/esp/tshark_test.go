package esp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/sad"
)

// tshark is the independent reader of our bytes: Wireshark's ESP dissector
// (epan/dissectors/packet-ipsec.c, on libgcrypt) decrypts and checks the
// ICV of what Encap wrote, with the keys given in its esp_sa table.
//
// Not covered here: extended sequence numbers (the esp_sa table of tshark
// 4.0 has no ESN column, so it cannot check an ICV that covers the high
// bits; the matrix and the KATs do), and ChaCha20-Poly1305 where this
// tshark does not know it (4.0 does not; the RFC 7634 vector covers it).

// tsharkSuite maps one of our suites to the names tshark's esp_sa table
// uses for it.
type tsharkSuite struct {
	suite string
	enc   string
	auth  string
}

var tsharkSuites = []tsharkSuite{
	{"aes128gcm16", "AES-GCM with 16 octet ICV [RFC4106]", "NULL"},
	{"aes256gcm16", "AES-GCM with 16 octet ICV [RFC4106]", "NULL"},
	{"aes128gcm12", "AES-GCM with 12 octet ICV [RFC4106]", "NULL"},
	{"aes256gcm12", "AES-GCM with 12 octet ICV [RFC4106]", "NULL"},
	{"aes128gcm8", "AES-GCM with 8 octet ICV [RFC4106]", "NULL"},
	{"aes256gcm8", "AES-GCM with 8 octet ICV [RFC4106]", "NULL"},
	{"aes128-sha256", "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"},
	{"aes256-sha256", "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"},
	{"aes256-sha384", "AES-CBC [RFC3602]", "HMAC-SHA-384-192 [RFC4868]"},
	{"aes256-sha512", "AES-CBC [RFC3602]", "HMAC-SHA-512-256 [RFC4868]"},
	{"null-sha256", "NULL", "HMAC-SHA-256-128 [RFC4868]"},
	{"null-sha384", "NULL", "HMAC-SHA-384-192 [RFC4868]"},
	{"null-sha512", "NULL", "HMAC-SHA-512-256 [RFC4868]"},
	// Newer Wireshark releases know ChaCha20-Poly1305 for ESP under this
	// name; whether this tshark does is asked of it (tsharkKnows).
	{"chacha20poly1305", "ChaCha20 with Poly1305 [RFC7634]", "NULL"},
}

// tsharkModes: tunnel in every family combination, transport over both
// families, and ESP in UDP on 4500 (tshark's udpencap dissector).
var tsharkModes = []struct {
	ms  modeSpec
	udp bool
}{
	{modeSpecs[0], false}, {modeSpecs[1], false}, {modeSpecs[2], false}, {modeSpecs[3], false},
	{modeSpecs[4], false}, {modeSpecs[5], false}, {modeSpecs[6], false},
	{modeSpecs[0], true}, {modeSpecs[1], true}, {modeSpecs[5], true}, {modeSpecs[6], true},
}

// tsharkKnows asks tshark whether its esp_sa table accepts enc as an
// encryption algorithm: it names the row "invalid value" when not.
func tsharkKnows(t *testing.T, bin, enc string) bool {
	dir := t.TempDir()
	row := fmt.Sprintf("%q,%q,%q,%q,%q,%q,%q,%q\n", "IPv4", "*", "*", "0x00001234", enc, "0x00", "NULL", "")
	empty := filepath.Join(dir, "empty.pcap")
	w, err := newPcapWriter(empty)
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "esp_sa"), []byte(row), 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-r", empty)
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+dir, "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark probe: %v\n%s", err, out)
	}
	return !bytes.Contains(out, []byte("invalid value"))
}

func tsharkVersion(t *testing.T, bin string) (int, int) {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		t.Fatalf("tshark -v: %v", err)
	}
	m := regexp.MustCompile(`TShark \(Wireshark\) (\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("tshark -v: no version in %q", out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return major, minor
}

// tsharkFrame is what we expect tshark to find in one frame.
type tsharkFrame struct {
	spi  uint32
	good bool   // false: the negative control, ICV must be bad
	want []byte // the whole decrypted payload: inner packet or transport payload, padding, trailer
	desc string
}

func TestTshark(t *testing.T) {
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not installed: the independent decryption check needs it (make test installs it, or apt-get install -y tshark)")
	}
	major, minor := tsharkVersion(t, bin)
	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "esp.pcap")
	w, err := newPcapWriter(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	var uat strings.Builder
	var frames []tsharkFrame
	var s esp.Scratch
	spi := uint32(0x2000)
	knows := map[string]bool{}
	for _, ts := range tsharkSuites {
		known, asked := knows[ts.enc]
		if !asked {
			known = tsharkKnows(t, bin, ts.enc)
			knows[ts.enc] = known
		}
		if !known {
			t.Logf("tshark %d.%d has no %q for ESP: %s not checked by it", major, minor, ts.enc, ts.suite)
			continue
		}
		for _, m := range tsharkModes {
			spi++
			p := newPair(t, pairOpts{suite: ts.suite, ms: m.ms, udp: m.udp, spi: spi})
			proto := "IPv4"
			if m.ms.outer6 {
				proto = "IPv6"
			}
			// One row per SA, in the esp_sa UAT's file format.
			fmt.Fprintf(&uat, "%q,%q,%q,%q,%q,%q,%q,%q\n", proto, p.local.String(), p.remote.String(),
				fmt.Sprintf("0x%08x", spi), ts.enc, "0x"+hex.EncodeToString(p.ref.key),
				ts.auth, hexOrEmpty(p.ref.integ))
			for i, size := range []int{0, 37, 1000} {
				inner := p.inner(size, 0xb8, i == 1)
				e, r := encap(t, &s, p.out, inner, uint64(i+1), i%2 == 0)
				if r != sad.OK {
					t.Fatalf("%s %s: encap: %v", ts.suite, m.ms.name, r)
				}
				// What tshark decrypts: the inner packet as forwarded (or
				// the transport payload), then our padding and trailer.
				var want []byte
				switch {
				case m.ms.mode == sad.Transport:
					want = withTrailer(e.orig[ipHdrLen(e.orig):], p.ref.align(), ipProtoUDP)
				case m.ms.inner6:
					want = withTrailer(forwarded(e.orig), p.ref.align(), ipProtoIPv6)
				default:
					want = withTrailer(forwarded(e.orig), p.ref.align(), ipProtoIPv4)
				}
				w.writeIP(e.pkt)
				frames = append(frames, tsharkFrame{spi: spi, good: true, want: want,
					desc: fmt.Sprintf("%s %s udp=%v payload %d", ts.suite, m.ms.name, m.udp, size)})
				if i == 2 && m.ms.name == "4in4" && !m.udp {
					// The negative control: one ciphertext bit flipped.
					bad := bytes.Clone(e.pkt)
					bad[20+8+p.ref.ivLen()+5] ^= 0x08
					w.writeIP(bad)
					frames = append(frames, tsharkFrame{spi: spi, good: false,
						desc: fmt.Sprintf("%s %s with a flipped ciphertext bit", ts.suite, m.ms.name)})
				}
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "conf")
	if err := os.Mkdir(conf, 0o700); err != nil {
		t.Fatal(err)
	}
	prefs := "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\nesp.do_esp_sequence_analysis: FALSE\n"
	if err := os.WriteFile(filepath.Join(conf, "preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "esp_sa"), []byte(uat.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-n", "-r", pcapPath, "-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "esp.spi", "-e", "esp.icv_good", "-e", "esp.icv_bad",
		"-e", "esp.pad_len", "-e", "esp.decrypted_data")
	cmd.Env = append(os.Environ(), "WIRESHARK_CONFIG_DIR="+conf, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	if bytes.Contains(stderr.Bytes(), []byte("Error loading")) {
		t.Fatalf("tshark did not take our configuration:\n%s", stderr.String())
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(frames) {
		t.Fatalf("tshark printed %d lines for %d frames; stderr:\n%s", len(lines), len(frames), stderr.String())
	}
	good, bad := 0, 0
	for i, line := range lines {
		f := frames[i]
		fs := strings.Split(line, "|")
		if len(fs) != 6 {
			t.Fatalf("frame %d: unexpected tshark line %q", i+1, line)
		}
		if want := fmt.Sprintf("0x%08x", f.spi); fs[1] != want {
			t.Errorf("frame %d (%s): tshark reads SPI %q, want %s", i+1, f.desc, fs[1], want)
		}
		if fs[2] == "1" {
			good++
		}
		if fs[3] == "1" {
			bad++
		}
		if f.good != (fs[2] == "1") || f.good == (fs[3] == "1") {
			t.Errorf("frame %d (%s): icv_good=%q icv_bad=%q", i+1, f.desc, fs[2], fs[3])
			continue
		}
		if !f.good {
			continue
		}
		dec, err := hex.DecodeString(strings.ReplaceAll(fs[5], ":", ""))
		if err != nil {
			t.Errorf("frame %d (%s): decrypted data %q: %v", i+1, f.desc, fs[5], err)
			continue
		}
		if padLen := strconv.Itoa(int(f.want[len(f.want)-2])); fs[4] != padLen {
			t.Errorf("frame %d (%s): tshark reads pad length %q, we wrote %s", i+1, f.desc, fs[4], padLen)
		}
		if !bytes.Equal(dec, f.want) {
			t.Errorf("frame %d (%s): tshark decrypted\n % x\nwe sent\n % x", i+1, f.desc, dec, f.want)
		}
	}
	wantGood := 0
	for _, f := range frames {
		if f.good {
			wantGood++
		}
	}
	if good != wantGood || bad != len(frames)-wantGood {
		t.Errorf("tshark: %d frames with icv_good, %d with icv_bad; want %d and %d", good, bad, wantGood, len(frames)-wantGood)
	}
	t.Logf("tshark %d.%d checked %d frames (%d SAs)", major, minor, len(frames), spi-0x2000)
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return "0x" + hex.EncodeToString(b)
}
