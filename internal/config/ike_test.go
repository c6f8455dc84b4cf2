package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/sad"
)

const testPSK = "0123456789abcdef-a-secret-key-for-tests"

// ikeBase is a gateway with one IKE connection; %s is the auth mapping.
const ikeBase = `interfaces: {lan: lan0, wan: wan0}
key_log: keys
connections:
  - name: site
    local_addr: 192.0.2.1
    remote_addr: 192.0.2.2
    remote_id: gw-b.example
    auth: %s
    ike_proposals: [aes256gcm16-prfsha384-ecp384]
    start_action: start
    dpd_delay: 30s
    dpd_action: restart
    rekey_time: 4h
    children:
      - name: net
        local_ts: [198.18.1.0/24, 2001:db8:a::/64]
        remote_ts: [198.18.2.0/24]
        mode: tunnel
        esp_proposals: [aes128gcm16-x25519, aes256gcm16]
        lifetime: {soft: {time: 50m, bytes: 1000000}, hard: {time: 1h}}
`

func writePSK(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "psk")
	if err := os.WriteFile(p, []byte(testPSK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConnections(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IKE.Connections) != 1 || c.IKE.KeyLog != filepath.Join(dir, "keys") {
		t.Fatalf("connections %d, key log %q", len(c.IKE.Connections), c.IKE.KeyLog)
	}
	cn := c.IKE.Connections[0]
	if cn.Line != 4 || cn.Name != "site" || cn.LocalAddr.String() != "192.0.2.1" || cn.RemoteAddr.String() != "192.0.2.2" {
		t.Errorf("connection: %+v", cn)
	}
	if string(cn.Local.PSK) != testPSK || string(cn.Remote.PSK) != testPSK {
		t.Error("PSK not read (or its line end kept)")
	}
	if cn.Local.ID.String() != "192.0.2.1" || cn.Remote.ID.String() != "gw-b.example" {
		t.Errorf("ids %s %s", cn.Local.ID, cn.Remote.ID)
	}
	if cn.NoFragmentation || cn.FragmentSize != 0 {
		t.Errorf("fragmentation off or sized by default: %v, %d", cn.NoFragmentation, cn.FragmentSize)
	}
	if cn.StartAction != ike.StartStart || cn.DPDDelay != 30*time.Second || cn.DPDAction != ike.DPDRestart || cn.IKERekeyTime != 4*time.Hour {
		t.Errorf("actions: %+v", cn.Connection)
	}
	if len(cn.IKEProposals) != 1 || cn.IKEProposals[0].String() != "aes256gcm16-prfsha384-ecp384" {
		t.Errorf("ike proposals %v", cn.IKEProposals)
	}
	ch := cn.Children[0]
	if ch.Name != "net" || len(ch.LocalTS) != 2 || len(ch.RemoteTS) != 1 || ch.Mode != sad.Tunnel || len(ch.ESPProposals) != 2 ||
		ch.Lifetime.Soft.Time != 50*time.Minute || ch.Lifetime.Soft.Bytes != 1000000 || ch.Lifetime.Hard.Time != time.Hour {
		t.Errorf("child %+v", ch)
	}
	c.Wipe()
	if string(cn.Local.PSK) == testPSK {
		t.Error("Wipe left the PSK")
	}
}

// TestConnectionHybridProposals reads RFC 9370 proposals as strongSwan 6
// writes them, a hybrid one first and a classical fallback after it.
func TestConnectionHybridProposals(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	y := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	y = strings.Replace(y, "ike_proposals: [aes256gcm16-prfsha384-ecp384]",
		"ike_proposals: [aes256gcm16-prfsha384-x25519-ke1_mlkem768, aes256gcm16-prfsha384-x25519-ke1_mlkem1024-ke1_none-ke2_ecp384, aes256gcm16-prfsha384-x25519]", 1)
	c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.IKE.Connections[0].IKEProposals {
		got = append(got, p.String())
	}
	want := []string{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem1024-ke1_none-ke2_ecp384", "aes256gcm16-prfsha384-x25519"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ike proposals %q, want %q", got, want)
	}
}

func TestConnectionPSKEnv(t *testing.T) {
	t.Setenv("XDPSEC_TEST_PSK", testPSK)
	c, err := Parse("gw.yaml", []byte(strings.Replace(ikeBase, "%s", "{psk_env: XDPSEC_TEST_PSK}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if string(c.IKE.Connections[0].Local.PSK) != testPSK {
		t.Error("PSK from the environment not read")
	}
}

func TestConnectionErrors(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("hunter2\n"), 0o600)
	os.Unsetenv("XDPSEC_NO_SUCH_PSK")
	for _, tc := range []struct {
		name, auth, edit, with string
		want                   string
	}{
		{"no auth kind", "{}", "", "", "gw.yaml:8: connections[0].auth: give psk_file, psk_env, or cert and key with ca"},
		{"both psk sources", "{psk_file: psk, psk_env: X}", "", "", "connections[0].auth: give psk_file or psk_env, not both"},
		{"psk in yaml", "{psk: " + testPSK + "}", "", "", "connections[0].auth.psk: unknown field"},
		{"missing env", "{psk_env: XDPSEC_NO_SUCH_PSK}", "", "", "gw.yaml:8: connections[0].auth.psk_env: the environment variable XDPSEC_NO_SUCH_PSK is not set"},
		{"short psk", "{psk_file: short}", "", "", "use at least 16"},
		{"missing file", "{psk_file: nope}", "", "", "gw.yaml:8: connections[0].auth.psk_file: open"},
		{"cert without ca", "{cert: a.pem, key: a.key}", "", "", "certificate authentication needs cert, key and ca"},
		{"bad proposal", "{psk_file: psk}", "aes256gcm16-prfsha384-ecp384", "aes256gcm16-prfsha384-ecp999", "gw.yaml:9: connections[0].ike_proposals[0]:"},
		{"bad esp proposal", "{psk_file: psk}", "aes128gcm16-x25519,", "aes128gcm17,", "gw.yaml:19: connections[0].children[0].esp_proposals[0]:"},
		{"bad addke method", "{psk_file: psk}", "aes256gcm16-prfsha384-ecp384", "aes256gcm16-prfsha384-ecp384-ke1_mlkem512", "gw.yaml:9: connections[0].ike_proposals[0]:"},
		{"esp addke", "{psk_file: psk}", "aes128gcm16-x25519,", "aes128gcm16-x25519-ke1_mlkem768,", "gw.yaml:19: connections[0].children[0].esp_proposals[0]: proposal \"aes128gcm16-x25519-ke1_mlkem768\": \"ke1_mlkem768\": additional key exchanges for ESP (IKE_FOLLOWUP_KE) are not supported"},
		{"bad ts", "{psk_file: psk}", "remote_ts: [198.18.2.0/24]", "remote_ts: [198.18.2.0/33]", "gw.yaml:17: connections[0].children[0].remote_ts[0]:"},
		{"bad mode", "{psk_file: psk}", "mode: tunnel", "mode: beet", "gw.yaml:18: connections[0].children[0].mode: \"beet\" is not tunnel or transport"},
		{"bad start", "{psk_file: psk}", "start_action: start", "start_action: hold", "gw.yaml:10: connections[0].start_action: \"hold\" is not start, trap or none"},
		{"trap without remote", "{psk_file: psk}", "    remote_addr: 192.0.2.2\n    remote_id: gw-b.example\n", "    remote_id: gw-b.example\n", "connections[0].start_action: start and trap need a remote_addr"},
		{"tiny acquire interval", "{psk_file: psk}", "key_log: keys", "acquire_interval: 10us", "gw.yaml:2: acquire_interval: below 1ms"},
		{"bad retransmit base", "{psk_file: psk}", "key_log: keys", "retransmit: {base: 0.5}", "gw.yaml:2: retransmit.base: \"0.5\" is not a number from 1 to 10"},
		{"bad retransmit tries", "{psk_file: psk}", "key_log: keys", "retransmit: {tries: 0}", "gw.yaml:2: retransmit.tries"},
		{"bad retransmit field", "{psk_file: psk}", "key_log: keys", "retransmit: {timout: 1s}", "gw.yaml:2: retransmit.timout: unknown field"},
		{"bad close", "{psk_file: psk}", "dpd_action: restart", "dpd_action: restart\n    close_action: restart", "gw.yaml:13: connections[0].close_action: \"restart\" is not none, start or trap"},
		{"close without remote", "{psk_file: psk}", "    remote_addr: 192.0.2.2\n    remote_id: gw-b.example\n    auth: {psk_file: psk}\n    ike_proposals: [aes256gcm16-prfsha384-ecp384]\n    start_action: start", "    remote_id: gw-b.example\n    auth: {psk_file: psk}\n    ike_proposals: [aes256gcm16-prfsha384-ecp384]\n    close_action: trap", "connections[0].close_action: start and trap need a remote_addr"},
		{"bad dpd", "{psk_file: psk}", "dpd_action: restart", "dpd_action: hold", "gw.yaml:12: connections[0].dpd_action"},
		{"bad addr", "{psk_file: psk}", "remote_addr: 192.0.2.2", "remote_addr: gw-b", "gw.yaml:6: connections[0].remote_addr: \"gw-b\" is not a unicast address"},
		{"mixed families", "{psk_file: psk}", "remote_addr: 192.0.2.2", "remote_addr: 2001:db8::2", "connections[0].remote_addr: local_addr and remote_addr are of different address families"},
		{"no children", "{psk_file: psk}", "    children:", "    kids:", "connections[0].kids: unknown field"},
		{"bad fragmentation", "{psk_file: psk}", "rekey_time: 4h", "rekey_time: 4h\n    fragmentation: maybe", "gw.yaml:14: connections[0].fragmentation: \"maybe\" is not true or false"},
		{"small fragment size", "{psk_file: psk}", "rekey_time: 4h", "rekey_time: 4h\n    fragment_size: 500", "gw.yaml:14: connections[0].fragment_size: 500 out of range [576, 65535]"},
		{"unknown child field", "{psk_file: psk}", "mode: tunnel", "mood: tunnel", "gw.yaml:18: connections[0].children[0].mood: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(ikeBase, "%s", tc.auth, 1)
			if tc.edit != "" {
				if !strings.Contains(y, tc.edit) {
					t.Fatalf("base lacks %q", tc.edit)
				}
				y = strings.Replace(y, tc.edit, tc.with, 1)
			}
			_, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nlacks %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testPSK) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes the PSK: %q", err)
			}
		})
	}
}

func TestConnectionDuplicates(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	one := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	conn := one[strings.Index(one, "  - name: site"):]
	y := one + strings.Replace(conn, "local_addr: 192.0.2.1", "local_addr: 192.0.2.9", 1)
	_, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
	if err == nil {
		t.Fatal("accepted")
	}
	if want := `gw.yaml:21: connections[1].name: "site" already names connections[0]`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nlacks %q", err, want)
	}
	// Connections may use different local addresses (local_addrs).
	if strings.Contains(err.Error(), "local_addr") {
		t.Errorf("error %q complains about local_addr", err)
	}
}

func TestIKEDefence(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	base := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	parse := func(section string) (*Config, error) {
		return Parse(filepath.Join(dir, "gw.yaml"), []byte(base+section))
	}
	c, err := parse("")
	if err != nil {
		t.Fatal(err)
	}
	if c.IKE.Defence != (Defence{}) {
		t.Fatalf("defaults must be the engine's (zero): %+v", c.IKE.Defence)
	}
	c, err = parse(`ike:
  half_open_limit: 2000
  half_open_timeout: 20s
  cookie_threshold: 16
  cookie_secret_lifetime: 5m
  init_rate: 5
  init_burst: 8
  rate_limit_slots: 1024
  source_prefix_v4: 24
  source_prefix_v6: 56
  half_open_per_prefix: 8
  reassembly_budget: 8388608
  unauth_reassembly_limit: 16384
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Defence{Line: 22, Defence: ike.Defence{HalfOpenLimit: 2000, HalfOpenTimeout: 20 * time.Second, CookieThreshold: 16,
		CookieSecretLifetime: 5 * time.Minute, InitRate: 5, InitBurst: 8, RateLimitSlots: 1024,
		SourcePrefixV4: 24, SourcePrefixV6: 56, HalfOpenPerPrefix: 8, ReassemblyBudget: 8 << 20, UnauthReassemblyLimit: 16 << 10}}
	if c.IKE.Defence != want {
		t.Fatalf("got %+v\nwant %+v", c.IKE.Defence, want)
	}
	c, err = parse("ike: {cookie_threshold: 0, init_rate: 0}\n")
	if err != nil {
		t.Fatal(err)
	}
	if !c.IKE.Defence.CookiesAlways || c.IKE.Defence.InitRate != -1 {
		t.Fatalf("cookie_threshold 0 must mean always, init_rate 0 no limit: %+v", c.IKE.Defence)
	}
	for _, tc := range []struct{ section, want string }{
		{"ike: {cookie_threshold: 50, half_open_limit: 50}\n", "gw.yaml:21: ike.cookie_threshold: 50 is not below half_open_limit (50)"},
		{"ike: {half_open_limit: 10}\n", "gw.yaml:21: ike.cookie_threshold: 32 is not below half_open_limit (10)"},
		{"ike:\n  init_rate: -3\n", "gw.yaml:22: ike.init_rate: -3 out of range"},
		{"ike:\n  init_burst: 0\n", "gw.yaml:22: ike.init_burst: 0 out of range"},
		{"ike:\n  half_open_timeout: 100ms\n", "gw.yaml:22: ike.half_open_timeout: 100ms out of range [1s, 10m]"},
		{"ike:\n  cookie_secret_lifetime: 1s\n", "gw.yaml:22: ike.cookie_secret_lifetime: 1s out of range [10s, 24h]"},
		{"ike:\n  cookie_secret_lifetime: soon\n", "gw.yaml:22: ike.cookie_secret_lifetime: \"soon\" is not a duration"},
		{"ike:\n  cookies: on\n", "gw.yaml:22: ike.cookies: unknown field"},
		{"ike:\n  source_prefix_v6: 8\n", "gw.yaml:22: ike.source_prefix_v6: 8 out of range"},
		{"ike:\n  source_prefix_v4: 33\n", "gw.yaml:22: ike.source_prefix_v4: 33 out of range"},
		{"ike:\n  half_open_per_prefix: 0\n", "gw.yaml:22: ike.half_open_per_prefix: 0 out of range"},
		{"ike:\n  reassembly_budget: 1000\n", "gw.yaml:22: ike.reassembly_budget: 1000 out of range"},
		{"ike: {reassembly_budget: 1048576, unauth_reassembly_limit: 1048576}\n", "gw.yaml:21: ike.unauth_reassembly_limit: 1048576 is over half of reassembly_budget (1048576)"},
		{"ike: 5\n", "gw.yaml:21: ike: expected a mapping"},
	} {
		_, err := parse(tc.section)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.section, err, tc.want)
		}
	}
}

// TestTrapAndTimers: start_action trap, the acquire interval and the
// retransmission schedule reach the engine's configuration.
func TestTrapAndTimers(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	y := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	y = strings.Replace(y, "start_action: start", "start_action: trap\n    close_action: start", 1)
	y = strings.Replace(y, "key_log: keys", "acquire_interval: 250ms\nretransmit: {timeout: 200ms, base: 1.5, tries: 3}", 1)
	c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if sa := c.IKE.Connections[0].StartAction; sa != ike.StartTrap {
		t.Errorf("start_action %v, want trap", sa)
	}
	if ca := c.IKE.Connections[0].CloseAction; ca != ike.CloseStart {
		t.Errorf("close_action %v, want start", ca)
	}
	if c.IKE.AcquireInterval != 250*time.Millisecond {
		t.Errorf("acquire_interval %v", c.IKE.AcquireInterval)
	}
	if r := c.IKE.Retransmit; r != (ike.Retransmit{Timeout: 200 * time.Millisecond, Base: 1.5, Tries: 3}) {
		t.Errorf("retransmit %+v", r)
	}
	if c.IKE.RekeyedInboundDelay != 0 || c.IKE.RekeyDeleteDelay != 0 {
		t.Errorf("rekey delays %v/%v without the keys, want the engine's defaults (0)", c.IKE.RekeyedInboundDelay, c.IKE.RekeyDeleteDelay)
	}
}

// TestRekeyDelays: delete_rekeyed_delay and rekey_delete_delay reach the
// engine's configuration; 0 means none, over the limit is refused.
func TestRekeyDelays(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	base := strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1)
	for _, tc := range []struct {
		keys         string
		inbound, del time.Duration
		err          string
	}{
		{"delete_rekeyed_delay: 5s\nrekey_delete_delay: 250ms", 5 * time.Second, 250 * time.Millisecond, ""},
		{"delete_rekeyed_delay: 0\nrekey_delete_delay: 0s", -1, -1, ""},
		{"delete_rekeyed_delay: 2m", 0, 0, "delete_rekeyed_delay: 2m0s is over 1m0s"},
		{"rekey_delete_delay: 11s", 0, 0, "rekey_delete_delay: 11s is over 10s"},
		{"rekey_delete_delay: soon", 0, 0, "not a duration"},
	} {
		y := strings.Replace(base, "key_log: keys", tc.keys, 1)
		c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.keys, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.keys, err)
		}
		if c.IKE.RekeyedInboundDelay != tc.inbound || c.IKE.RekeyDeleteDelay != tc.del {
			t.Errorf("%q: delays %v/%v, want %v/%v", tc.keys, c.IKE.RekeyedInboundDelay, c.IKE.RekeyDeleteDelay, tc.inbound, tc.del)
		}
	}
}

// TestConnectionFragmentation: fragmentation and fragment_size reach the
// engine's connection.
func TestConnectionFragmentation(t *testing.T) {
	dir := t.TempDir()
	writePSK(t, dir)
	for _, tc := range []struct {
		yaml string
		off  bool
		size int
	}{
		{"fragmentation: no", true, 0},
		{"fragmentation: yes\n    fragment_size: 1400", false, 1400},
		{"fragment_size: 576", false, 576},
	} {
		y := strings.Replace(strings.Replace(ikeBase, "%s", "{psk_file: psk}", 1), "rekey_time: 4h", "rekey_time: 4h\n    "+tc.yaml, 1)
		c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(y))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		cn := c.IKE.Connections[0]
		if cn.NoFragmentation != tc.off || cn.FragmentSize != tc.size {
			t.Errorf("%q: off %v size %d", tc.yaml, cn.NoFragmentation, cn.FragmentSize)
		}
	}
}
