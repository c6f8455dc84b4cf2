package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reloadBase is a running configuration for the Compare tests: two
// static SAs with a policy each, two connections, a few live settings.
const reloadBase = `interfaces: {lan: lan0, wan: wan0, queues: 2}
log_level: info
metrics: 127.0.0.1:9100
ike: {half_open_limit: 100, source_prefix_v4: 24}
sas:
  - {name: in1, spi: 0x2001, dir: in, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16, key: 0x000102030405060708090a0b0c0d0e0f10111213}
  - {name: out1, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16, key: 0x100102030405060708090a0b0c0d0e0f10111213}
policies:
  - {name: p1, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: out1}
connections:
  - name: east
    local_addr: 192.0.2.1
    remote_addr: 192.0.2.2
    auth: {psk_file: psk}
    ike_proposals: [aes128gcm16-prfsha256-x25519]
    children:
      - {name: net, local_ts: [198.18.3.0/24], remote_ts: [198.18.4.0/24], esp_proposals: [aes128gcm16]}
  - name: west
    local_addr: 192.0.2.1
    remote_addr: 192.0.2.3
    auth: {psk_file: psk}
    ike_proposals: [aes128gcm16-prfsha256-x25519]
    children:
      - {name: net, local_ts: [198.18.5.0/24], remote_ts: [198.18.6.0/24], esp_proposals: [aes128gcm16]}
`

// TestCompare: what a reload would change, by name, or which settings
// make it need a restart (file:line: field); table-driven over edits of
// reloadBase.
func TestCompare(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"psk", "psk2"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f+"-a-test-psk-of-enough-length"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func(name, text string) *Config {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Check(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return c
	}
	cur := load("cur.yaml", reloadBase)
	prints := cur.SAFingerprints()
	cur.WipeSAKeys() // as the daemon does: Compare must not need the keys
	east := "  - name: east\n"
	for _, tc := range []struct {
		name    string
		edit    func(string) string
		want    string // the Reload's String, or
		wantErr string // the error's text
	}{
		{name: "same", edit: func(s string) string { return s },
			want: "connections: 0 added, 0 removed, 0 changed, 2 unchanged; unchanged: east,west; static SAs: 0 added, 0 removed, 0 changed"},
		{name: "log level and metrics", edit: func(s string) string {
			return strings.NewReplacer("log_level: info", "log_level: debug", "9100", "9101").Replace(s)
		}, want: "also changed: log_level,metrics"},
		{name: "live ike limit", edit: func(s string) string { return strings.Replace(s, "half_open_limit: 100", "half_open_limit: 200", 1) },
			want: "also changed: ike limits"},
		{name: "fixed ike limit", edit: func(s string) string { return strings.Replace(s, "source_prefix_v4: 24", "source_prefix_v4: 28", 1) },
			wantErr: "new.yaml:4: ike.source_prefix_v4: changed (24 -> 28): it cannot change while the daemon runs; restart it"},
		{name: "queues", edit: func(s string) string { return strings.Replace(s, "queues: 2", "queues: 4", 1) },
			wantErr: "new.yaml:1: interfaces.queues: changed (2 -> 4)"},
		{name: "interface and nat_t_port", edit: func(s string) string {
			return strings.Replace(s, "wan: wan0", "wan: wan1", 1) + "nat_t_port: 4501\n"
		}, wantErr: "interfaces.wan: changed (wan0 -> wan1)"},
		{name: "connection removed", edit: func(s string) string { return s[:strings.Index(s, "  - name: west")] },
			want: "connections: 0 added, 1 removed, 0 changed, 1 unchanged; removed: west; unchanged: east"},
		{name: "connection added", edit: func(s string) string {
			return s + strings.NewReplacer("name: west", "name: north", "192.0.2.3", "192.0.2.4", "198.18.5.", "198.18.7.").Replace(s[strings.Index(s, "  - name: west"):])
		}, want: "connections: 1 added, 0 removed, 0 changed, 2 unchanged; added: north; unchanged: east,west"},
		{name: "proposal changed", edit: func(s string) string {
			return strings.Replace(s, "remote_ts: [198.18.4.0/24], esp_proposals: [aes128gcm16]", "remote_ts: [198.18.4.0/24], esp_proposals: [aes256gcm16]", 1)
		}, want: "connections: 0 added, 0 removed, 1 changed, 1 unchanged; changed: east; unchanged: west"},
		{name: "psk changed", edit: func(s string) string {
			i := strings.Index(s, east)
			return s[:i] + strings.Replace(s[i:], "psk_file: psk}", "psk_file: psk2}", 1)
		}, want: "1 changed, 1 unchanged; changed: east;"},
		{name: "selectors changed", edit: func(s string) string { return strings.Replace(s, "198.18.4.0/24", "198.18.40.0/24", 1) },
			want: "changed: east; re-established: east; unchanged: west"},
		{name: "address changed", edit: func(s string) string {
			return strings.Replace(s, "remote_addr: 192.0.2.3", "remote_addr: 192.0.2.9", 1)
		},
			want: "changed: west; re-established: west"},
		{name: "every connection removed", edit: func(s string) string { return s[:strings.Index(s, "connections:")] },
			wantErr: "removing every connection turns IKE on or off"},
		{name: "static key changed", edit: func(s string) string { return strings.Replace(s, "key: 0x0001", "key: 0x0101", 1) },
			want: "static SAs: 0 added, 0 removed, 1 changed; sa changed: in1"},
		{name: "static SA added", edit: func(s string) string {
			return strings.Replace(s, "policies:", "  - {name: in2, spi: 0x2002, dir: in, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16, key: 0x200102030405060708090a0b0c0d0e0f10111213}\npolicies:", 1)
		}, want: "static SAs: 1 added, 0 removed, 0 changed; sa added: in2"},
		{name: "policy changed", edit: func(s string) string { return strings.Replace(s, "dst: 198.18.2.0/24", "dst: 198.18.20.0/24", 1) },
			want: "also changed: policies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.edit(reloadBase)
			p := filepath.Join(dir, "new.yaml")
			if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			next, err := Check(p)
			if err != nil {
				t.Fatalf("the edited file does not load: %v", err)
			}
			r, err := Compare(cur, prints, next)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("error %v", err)
			case !strings.Contains(r.String(), tc.want):
				t.Errorf("reload %q, want %q", r, tc.want)
			case tc.name == "same" && !r.Empty():
				t.Errorf("the same file is not an empty reload: %s", r)
			}
		})
	}
}

// TestCheckIsRunCheck: the validation a reload uses is the one `run
// --check` (loadConfig) uses: the same file:line: field errors.
func TestCheckIsRunCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte(base+"log_level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, e1 := Check(p)
	_, e2 := Load(p)
	if e1 == nil || e2 == nil || e1.Error() != e2.Error() || !strings.Contains(e1.Error(), "bad.yaml:12: log_level") {
		t.Errorf("Check %v, Load %v", e1, e2)
	}
}
