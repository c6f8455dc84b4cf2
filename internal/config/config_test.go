package config

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

const goodKey = "0x000102030405060708090a0b0c0d0e0f10111213"

// base is a minimal valid configuration; tests append to it or replace
// lines in it.
const base = `interfaces: {lan: lan0, wan: wan0}
sas:
  - name: ab
    spi: 0x1001
    dir: out
    local: 192.0.2.1
    remote: 192.0.2.2
    suite: aes128gcm16
    key: ` + goodKey + `
policies:
  - {name: p, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: ab}
`

func TestExampleConfig(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "scripts", "lab", "gw-a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LAN != "lan0" || c.WAN != "wan0" || c.OneArm() || c.Queues != 1 || c.CPUsAuto || c.ZeroCopy != ZeroCopyAuto || c.XDPMode != xdpconf.ModeAuto {
		t.Errorf("interfaces: %+v", c)
	}
	if len(c.CPUs) != 1 || c.CPUs[0] != 1 {
		t.Errorf("cpus %v", c.CPUs)
	}
	if c.DefaultAction != spd.Discard || c.NATTPort != 4500 || c.PinPath != "/sys/fs/bpf/xdpsec/gw-a" ||
		c.Control != "/run/xdpsec/gw-a.sock" || c.Metrics != "127.0.0.1:9301" || c.StateDir != DefaultStateDir {
		t.Errorf("globals: %+v", c)
	}
	if len(c.SAs) != 2 || len(c.Policies) != 2 {
		t.Fatalf("%d SAs, %d policies", len(c.SAs), len(c.Policies))
	}
	out := c.SAs[0]
	if out.Name != "a-to-b" || out.SPI != 0x1001 || out.Dir != sad.Outbound || out.Mode != sad.Tunnel ||
		out.Suite != sad.AESGCM128 || len(out.Key) != 20 || !out.ESN || out.TTL != 64 || out.DF != sad.DFCopy ||
		out.Lifetime.Soft.Time != 50*time.Minute || out.Local != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("outbound SA: %+v", out)
	}
	if len(out.Selectors) != 2 || out.Selectors[0].Src != netip.MustParsePrefix("198.18.1.0/24") {
		t.Errorf("selectors %+v", out.Selectors)
	}
	if in := c.SAs[1]; in.Dir != sad.Inbound || in.ReplayWindow != 4096 || in.Line == 0 {
		t.Errorf("inbound SA: %+v", in)
	}
	if p := c.Policies[0]; p.Action != spd.Protect || p.SA != "a-to-b" || p.Selector.Dst != netip.MustParsePrefix("198.18.2.0/24") {
		t.Errorf("policy %+v", p)
	}
	c.Wipe()
	if !bytes.Equal(c.SAs[0].Key, make([]byte, 20)) {
		t.Error("Wipe left key material")
	}
}

func TestParseDetails(t *testing.T) {
	cfg := strings.Replace(base, "    key: "+goodKey, `    key: `+goodKey+`
    udp_encap: true
    replay_window: 0
    selectors: [{src: 198.18.1.5, dst: any, proto: tcp, sport: any, dport: 80-90}]
    lifetime: {soft: {bytes: 1000, packets: 10}, hard: {bytes: 2000, time: 1h}}`, 1)
	cfg = strings.Replace(cfg, "interfaces: {lan: lan0, wan: wan0}", "interfaces: {lan: eth0, wan: eth0, queues: 2, xdp_mode: generic}\nnat_t_port: 4501\ndefault_action: bypass", 1)
	c, err := Parse("x.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !c.OneArm() || c.Queues != 2 || c.SetChannels || c.CPUsAuto || c.XDPMode != xdpconf.ModeGeneric || c.DefaultAction != spd.Bypass || c.NATTPort != 4501 {
		t.Errorf("globals %+v", c)
	}
	sa := c.SAs[0]
	if sa.Encap != (sad.UDPEncap{SrcPort: 4501, DstPort: 4501}) {
		t.Errorf("udp_encap: true gave %+v", sa.Encap)
	}
	if !sa.NoReplay {
		t.Error("replay_window 0 did not turn anti-replay off")
	}
	want := sad.Selector{Src: netip.MustParsePrefix("198.18.1.5/32"), Proto: 6, DstPorts: sad.PortRange{Lo: 80, Hi: 90}}
	if len(sa.Selectors) != 1 || sa.Selectors[0] != want {
		t.Errorf("selector %+v, want %+v", sa.Selectors, want)
	}
	if sa.Lifetime.Soft.Bytes != 1000 || sa.Lifetime.Soft.Packets != 10 || sa.Lifetime.Hard.Time != time.Hour {
		t.Errorf("lifetime %+v", sa.Lifetime)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "k.hex"), []byte("00:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f:10:11:12:13\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(base, "key: "+goodKey, "key_file: k.hex", 1)
	path := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if k := c.SAs[0].Key; len(k) != 20 || k[19] != 0x13 {
		t.Errorf("key from file: %d bytes", len(k))
	}
}

// TestErrors: each mistake is reported with its line and field, and key
// material never appears in an error.
func TestErrors(t *testing.T) {
	tests := []struct {
		name, from, to string
		want           string // "line: field: message" prefix
	}{
		{"unknown top field", "sas:", "bogus: 1\nsas:", "x.yaml:2: bogus: unknown field"},
		{"missing interfaces", "interfaces: {lan: lan0, wan: wan0}", "nat_t_port: 4500", "x.yaml:1: interfaces: lan and wan are required"},
		{"bad queues", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, queues: 0}", "x.yaml:1: interfaces.queues: 0 out of range"},
		{"cpus per queue", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, queues: 2, cpus: [1]}", "x.yaml:1: interfaces.cpus: 1 CPUs for 2 queues"},
		{"cpu list with auto queues", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, cpus: [1]}", "x.yaml:1: interfaces.cpus: a CPU list needs an explicit queues count"},
		{"bad queues word", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, queues: many}", "x.yaml:1: interfaces.queues: \"many\" is not an integer"},
		{"zerocopy", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, zerocopy: maybe}", "x.yaml:1: interfaces.zerocopy: \"maybe\" is not auto, on or off"},
		{"set_channels", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, set_channels: 2}", "x.yaml:1: interfaces.set_channels: \"2\" is not true or false"},
		{"busy_poll", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, busy_poll: -1}", "x.yaml:1: interfaces.busy_poll:"},
		{"busy_poll_budget", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, busy_poll_budget: 70000}", "x.yaml:1: interfaces.busy_poll_budget:"},
		{"batch", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, batch: 257}", "x.yaml:1: interfaces.batch: 257 out of range [1, 256]"},
		{"batch zero", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, batch: 0}", "x.yaml:1: interfaces.batch: 0 out of range"},
		{"idle_spin", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, idle_spin: 1s}", "x.yaml:1: interfaces.idle_spin: 1s is over 10ms"},
		{"idle_spin word", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, idle_spin: fast}", "x.yaml:1: interfaces.idle_spin: \"fast\" is not a duration"},
		{"umem_frames", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, umem_frames: 100}", "x.yaml:1: interfaces.umem_frames: 100 out of range"},
		{"ring_size range", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, ring_size: 131072}", "x.yaml:1: interfaces.ring_size: 131072 out of range"},
		{"ring_size power", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, ring_size: 1000}", "x.yaml:1: interfaces.ring_size: 1000 is not a power of two"},
		{"rss_esp_spi", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, rss_esp_spi: spi}", "x.yaml:1: interfaces.rss_esp_spi: \"spi\" is not true or false"},
		{"vlan range", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, wan_vlan: 4095}", "x.yaml:1: interfaces.wan_vlan: 4095 out of range"},
		{"qinq range", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, wan_vlan: \"4095.10\"}", "x.yaml:1: interfaces.wan_vlan: \"4095.10\" is not a VLAN"},
		{"qinq zero", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, lan_vlan: 100.0}", "x.yaml:1: interfaces.lan_vlan: \"100.0\" is not a VLAN"},
		{"qinq three", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, lan_vlan: 1.2.3}", "x.yaml:1: interfaces.lan_vlan: \"1.2.3\" is not a VLAN"},
		{"xdp mode", "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, xdp_mode: turbo}", "interfaces.xdp_mode: \"turbo\""},
		{"reserved spi", "spi: 0x1001", "spi: 255", "x.yaml:4: sas[0].spi: 255 out of range"},
		{"dir", "dir: out", "dir: sideways", "x.yaml:5: sas[0].dir: \"sideways\""},
		{"bad address", "local: 192.0.2.1", "local: 192.0.2.300", "x.yaml:6: sas[0].local"},
		{"families", "remote: 192.0.2.2", "remote: 2001:db8::2", "x.yaml:3: sas[0].remote: local and remote are of different address families"},
		{"suite", "aes128gcm16", "aes128gcm15", "x.yaml:8: sas[0].suite"},
		{"short key", goodKey, goodKey[:len(goodKey)-2], "x.yaml:9: sas[0].key: 19 bytes, aes128gcm16 needs 20"},
		{"odd key", goodKey, goodKey + "1", "x.yaml:9: sas[0].key: odd number of hex digits"},
		{"not hex", goodKey, "0xzz0102030405060708090a0b0c0d0e0f10111213", "x.yaml:9: sas[0].key: not hexadecimal"},
		{"integ key on AEAD", "    key: " + goodKey, "    key: " + goodKey + "\n    integ_key: 0x0011", "x.yaml:10: sas[0].integ_key: aes128gcm16 is an AEAD suite"},
		{"missing key file", "key: " + goodKey, "key_file: /nonexistent/k", "x.yaml:9: sas[0].key_file"},
		{"both keys", "    key: " + goodKey, "    key_file: k\n    key: " + goodKey, "x.yaml:10: sas[0].key: give key or key_file, not both"},
		{"duplicate field", "    dir: out", "    dir: out\n    dir: in", "x.yaml:6: sas[0].dir: given twice"},
		{"ports without proto", "dst: 198.18.2.0/24, action", "dst: 198.18.2.0/24, dport: 80, action", "x.yaml:11: policies[0].proto: ports need proto"},
		{"host bits", "src: 198.18.1.0/24", "src: 198.18.1.1/24", "x.yaml:11: policies[0].src: \"198.18.1.1/24\" has host bits set"},
		{"unknown sa", "sa: ab}", "sa: nope}", "x.yaml:11: policies[0].sa: no SA named \"nope\""},
		{"protect without sa", ", sa: ab}", "}", "x.yaml:11: policies[0].sa: a protect policy names its outbound SA"},
		{"bypass with sa", "action: protect", "action: bypass", "x.yaml:11: policies[0].sa: only protect policies have an SA"},
		{"protect with inbound", "dir: out", "dir: in", "x.yaml:11: policies[0].sa: \"ab\" is an inbound SA"},
		{"bad action", "action: protect", "action: encrypt", "x.yaml:11: policies[0].action"},
		{"policy dir", "sa: ab}", "sa: ab, dir: up}", "x.yaml:11: policies[0].dir: \"up\" is not both, out or in"},
		{"inbound-only with sa", "sa: ab}", "sa: ab, dir: in}", "x.yaml:11: policies[0].sa: an inbound-only policy (dir: in) sends nothing"},
		{"lifetime", "    key: " + goodKey, "    key: " + goodKey + "\n    lifetime: {soft: {time: 2h}, hard: {time: 1h}}", "x.yaml:10: sas[0].lifetime: a soft limit exceeds its hard limit"},
		{"nat-t port 500", "sas:", "nat_t_port: 500\nsas:", "x.yaml:2: nat_t_port: 500 is IKE's port"},
		{"bad on_stop", "sas:", "on_stop: unpin\nsas:", "x.yaml:2: on_stop: \"unpin\" is not keep or detach"},
		{"not a mapping", "interfaces: {lan: lan0, wan: wan0}", "interfaces: [lan0]", "x.yaml:1: interfaces: expected a mapping"},
		{"state_file is gone", "sas:", "state_file: /run/xdpsec/gw.seq\nsas:", "x.yaml:2: state_file: replaced by state_dir"},
		{"relative state_dir", "sas:", "state_dir: state\nsas:", "x.yaml:2: state_dir: must be an absolute path"},
		{"relative pin_path", "sas:", "pin_path: pins\nsas:", "x.yaml:2: pin_path: must be an absolute path on a bpf filesystem, or \"none\""},
		{"mtu too small", "sas:", "mtu: 1000\nsas:", "x.yaml:2: mtu: 1000 out of range [1280, 9216]"},
		{"mtu not a number", "sas:", "mtu: big\nsas:", "x.yaml:2: mtu: \"big\" is not an integer"},
		{"mss_clamp word", "sas:", "mss_clamp: yes\nsas:", "x.yaml:2: mss_clamp: \"yes\" is not auto, off or an MSS"},
		{"mss_clamp range", "sas:", "mss_clamp: 40\nsas:", "x.yaml:2: mss_clamp: 40 out of range"},
		{"policy mss_clamp", "sa: ab}", "sa: ab, mss_clamp: maybe}", "x.yaml:11: policies[0].mss_clamp: \"maybe\""},
		{"bypass mss_clamp", "action: protect, sa: ab}", "action: bypass, mss_clamp: auto}", "x.yaml:11: policies[0].mss_clamp: only protect policies"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.from) {
				t.Fatalf("test bug: %q not in base", tc.from)
			}
			cfg := strings.Replace(base, tc.from, tc.to, 1)
			_, err := Parse("x.yaml", []byte(cfg))
			if err == nil {
				t.Fatalf("accepted:\n%s", cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) && !strings.Contains(tc.want, "yaml") {
				t.Errorf("error %T is not a *config.Error", err)
			}
			if strings.Contains(err.Error(), "0405060708") {
				t.Errorf("error prints key material: %v", err)
			}
		})
	}
}

func TestDuplicates(t *testing.T) {
	cfg := base + `  - {name: p, dst: 203.0.113.0/24, action: bypass}
`
	cfg = strings.Replace(cfg, "policies:", `  - name: ab
    spi: 0x1001
    dir: out
    local: 192.0.2.1
    remote: 192.0.2.2
    suite: aes128gcm16
    key: `+goodKey+`
policies:`, 1)
	_, err := Parse("x.yaml", []byte(cfg))
	if err == nil {
		t.Fatal("duplicates accepted")
	}
	for _, want := range []string{
		"x.yaml:10: sas[1].name: \"ab\" already names sas[0]",
		"x.yaml:10: sas[1].spi: 0x00001001 already used by sas[0]",
		"x.yaml:10: sas[1].key: the same key as sas[0]",
		"x.yaml:19: policies[1].name: \"p\" already names policies[0]",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte("interfaces: {lan: a, wan: a}\npolicies: [{name: x, action: discard}]\n"))
	f.Add([]byte("sas: [[], {}, 1]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz.yaml", b)
		if err == nil {
			if c.LAN == "" || c.WAN == "" {
				t.Fatal("accepted without interfaces")
			}
			for _, sa := range c.SAs {
				if len(sa.Key) != sa.Suite.KeyLen() {
					t.Fatalf("accepted a %d-byte key for %s", len(sa.Key), sa.Suite)
				}
			}
		}
	})
}

// TestOnStop: keep is the default (a stopped daemon fails closed), detach
// is asked for.
func TestOnStop(t *testing.T) {
	for _, tc := range []struct {
		extra  string
		detach bool
	}{{"", false}, {"on_stop: keep\n", false}, {"on_stop: detach\n", true}} {
		c, err := Parse("x.yaml", []byte(strings.Replace(base, "sas:", tc.extra+"sas:", 1)))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if c.DetachOnStop != tc.detach {
			t.Errorf("%q: DetachOnStop %v, want %v", tc.extra, c.DetachOnStop, tc.detach)
		}
	}
}

// TestQueuesAndZeroCopy: queues: auto and cpus: auto, set_channels and
// zerocopy parse to their fields.
func TestQueuesAndZeroCopy(t *testing.T) {
	for _, tc := range []struct {
		ifaces   string
		queues   int
		cpusAuto bool
		cpus     []int
		set      bool
		zc       ZeroCopyMode
		rss      bool
	}{
		{"{lan: lan0, wan: wan0}", QueuesAuto, false, nil, false, ZeroCopyAuto, false},
		{"{lan: lan0, wan: wan0, queues: auto, cpus: auto}", QueuesAuto, true, nil, false, ZeroCopyAuto, false},
		{"{lan: lan0, wan: wan0, queues: 4, cpus: auto, set_channels: true, zerocopy: on}", 4, true, nil, true, ZeroCopyOn, false},
		{"{lan: lan0, wan: wan0, queues: 2, cpus: [0, 1], zerocopy: off}", 2, false, []int{0, 1}, false, ZeroCopyOff, false},
		{"{lan: lan0, wan: wan0, rss_esp_spi: true, busy_poll: 50, busy_poll_budget: 64, prefer_busy_poll: true}", QueuesAuto, false, nil, false, ZeroCopyAuto, true},
	} {
		cfg := strings.Replace(base, "interfaces: {lan: lan0, wan: wan0}", "interfaces: "+tc.ifaces, 1)
		c, err := Parse("x.yaml", []byte(cfg))
		if err != nil {
			t.Errorf("%s: %v", tc.ifaces, err)
			continue
		}
		if tc.rss && (c.BusyPoll != 50 || c.BusyPollBudget != 64 || !c.PreferBusyPoll) {
			t.Errorf("%s: busy_poll %d budget %d prefer %v", tc.ifaces, c.BusyPoll, c.BusyPollBudget, c.PreferBusyPoll)
		}
		if c.Queues != tc.queues || c.CPUsAuto != tc.cpusAuto || !slices.Equal(c.CPUs, tc.cpus) || c.SetChannels != tc.set || c.ZeroCopy != tc.zc || c.RSSESPSPI != tc.rss {
			t.Errorf("%s: queues %d cpus %v/%v set_channels %v zerocopy %v rss_esp_spi %v", tc.ifaces, c.Queues, c.CPUsAuto, c.CPUs, c.SetChannels, c.ZeroCopy, c.RSSESPSPI)
		}
	}
}

// TestXSKTuning: batch, idle_spin, umem_frames and ring_size reach the
// Config; left out they are 0 (the packages' defaults).
func TestXSKTuning(t *testing.T) {
	c, err := Parse("x.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Batch != 0 || c.IdleSpin != 0 || c.UMEMFrames != 0 || c.RingSize != 0 {
		t.Errorf("defaults: batch %d idle_spin %v umem_frames %d ring_size %d", c.Batch, c.IdleSpin, c.UMEMFrames, c.RingSize)
	}
	cfg := strings.Replace(base, "interfaces: {lan: lan0, wan: wan0}",
		"interfaces: {lan: lan0, wan: wan0, batch: 256, idle_spin: 50us, umem_frames: 8192, ring_size: 4096}", 1)
	if c, err = Parse("x.yaml", []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	if c.Batch != 256 || c.IdleSpin != 50*time.Microsecond || c.UMEMFrames != 8192 || c.RingSize != 4096 {
		t.Errorf("batch %d idle_spin %v umem_frames %d ring_size %d", c.Batch, c.IdleSpin, c.UMEMFrames, c.RingSize)
	}
}

// TestSameKeys: key material given to two SAs is refused, whatever their
// directions, names or SPIs; an AEAD key differing only in its salt is the
// same key. Errors name the other SA, never the key.
func TestSameKeys(t *testing.T) {
	const other = "0x202122232425262728292a2b2c2d2e2f30313233"
	in := func(suite, key, integ string) string {
		s := `  - {name: ba, spi: 0x2001, dir: in, local: 192.0.2.1, remote: 192.0.2.2, suite: ` + suite + `, key: ` + key
		if integ != "" {
			s += ", integ_key: " + integ
		}
		return s + "}\npolicies:"
	}
	const k16 = "0x000102030405060708090a0b0c0d0e0f"
	const i32 = "0x" + "4041424344454647484940414243444546474849404142434445464748494041"
	for _, tc := range []struct {
		name, sa, want string
	}{
		{"inbound repeats the outbound key", in("aes128gcm16", goodKey, ""), "x.yaml:10: sas[1].key: the same key as sas[0]"},
		{"only the salt differs", in("aes128gcm16", goodKey[:len(goodKey)-8]+"ffffffff", ""), "x.yaml:10: sas[1].key: the same key as sas[0]"},
		{"as a CBC key", in("aes128-sha256", k16, i32), "x.yaml:10: sas[1].key: the same key as sas[0]"},
		{"own keys", in("aes128gcm16", other, ""), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := strings.Replace(base, "policies:", tc.sa, 1)
			_, err := Parse("x.yaml", []byte(cfg))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "0405060708") {
				t.Errorf("error prints key material: %v", err)
			}
		})
	}
	// Two SAs sharing an integrity key.
	two := in("aes128-sha256", "0x"+strings.Repeat("11", 16), i32)
	two = strings.Replace(two, "policies:", strings.ReplaceAll(in("aes128-sha256", "0x"+strings.Repeat("22", 16), i32), "ba, spi: 0x2001", "ca, spi: 0x2002"), 1)
	cfg := strings.Replace(base, "policies:", two, 1)
	if _, err := Parse("x.yaml", []byte(cfg)); err == nil || !strings.Contains(err.Error(), "sas[2].integ_key: the same key as sas[1]") {
		t.Fatalf("shared integrity key: %v\n%s", err, cfg)
	}
}

// TestPinPathDefault: without pin_path a daemon still fails closed: its
// programs are pinned under a directory of its own, named after its
// control socket; `pin_path: none` is the explicit opt-out.
func TestPinPathDefault(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"", "/sys/fs/bpf/xdpsec/xdpsec"},
		{"control: /run/xdpsec/gw-a.sock\n", "/sys/fs/bpf/xdpsec/gw-a"},
		{"control: /tmp/x/gw-a.sock\n", "/sys/fs/bpf/xdpsec/gw-a-"},
		{"pin_path: /sys/fs/bpf/mine\n", "/sys/fs/bpf/mine"},
		{"pin_path: none\n", ""},
	} {
		c, err := Parse("x.yaml", []byte(strings.Replace(base, "sas:", tc.extra+"sas:", 1)))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if c.PinPath != tc.want && !(strings.HasSuffix(tc.want, "-") && strings.HasPrefix(c.PinPath, tc.want) && len(c.PinPath) == len(tc.want)+8) {
			t.Errorf("%q: pin_path %q, want %q", tc.extra, c.PinPath, tc.want)
		}
		if c.StateDir != DefaultStateDir {
			t.Errorf("state_dir %q", c.StateDir)
		}
	}
}

// TestPolicyDir: a policy decides both directions unless it says
// otherwise, and an inbound-only PROTECT policy needs no SA.
func TestPolicyDir(t *testing.T) {
	cfg := strings.Replace(base, "policies:\n", `policies:
  - {name: out-only, dst: 203.0.113.0/24, action: bypass, dir: out}
  - {name: in-only, src: 198.18.1.0/24, dst: 198.18.3.0/24, action: protect, dir: in}
  - {name: mgmt, src: 198.18.1.10/32, dst: 192.0.2.0/24, proto: tcp, sport: 22, action: bypass, dir: both}
`, 1)
	c, err := Parse("x.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]PolicyDir{"out-only": DirOut, "in-only": DirIn, "mgmt": DirBoth, "p": DirBoth}
	for _, p := range c.Policies {
		if p.Dir != want[p.Name] {
			t.Errorf("%s: dir %s, want %s", p.Name, p.Dir, want[p.Name])
		}
	}
}

// TestMTUAndMSSClamp: mtu and mss_clamp, globally and per policy.
func TestMTUAndMSSClamp(t *testing.T) {
	for _, tc := range []struct {
		top, pol  string
		mtu, g, p int
	}{
		{"", "", 0, 0, spd.MSSInherit},
		{"mtu: 1500\nmss_clamp: auto\n", "", 1500, spd.MSSAuto, spd.MSSInherit},
		{"mss_clamp: 1360\n", ", mss_clamp: off", 0, 1360, spd.MSSOff},
		{"mss_clamp: off\n", ", mss_clamp: auto", 0, 0, spd.MSSAuto},
		{"", ", mss_clamp: 1200", 0, 0, 1200},
	} {
		cfg := tc.top + strings.Replace(base, "sa: ab}", "sa: ab"+tc.pol+"}", 1)
		c, err := Parse("x.yaml", []byte(cfg))
		if err != nil {
			t.Fatalf("%q: %v", cfg, err)
		}
		if c.MTU != tc.mtu || c.MSSClamp != tc.g || c.Policies[0].MSSClamp != tc.p {
			t.Errorf("%q: mtu %d mss_clamp %d policy %d, want %d %d %d", cfg, c.MTU, c.MSSClamp, c.Policies[0].MSSClamp, tc.mtu, tc.g, tc.p)
		}
	}
}

// TestLogFormat: text (logfmt) is the default, json is asked for.
func TestLogFormat(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"", "text"}, {"log_format: text\n", "text"}, {"log_format: logfmt\n", "text"}, {"log_format: json\n", "json"},
	} {
		c, err := Parse("x.yaml", []byte(strings.Replace(base, "sas:", tc.extra+"sas:", 1)))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if c.LogFormat != tc.want {
			t.Errorf("%q: LogFormat %q, want %q", tc.extra, c.LogFormat, tc.want)
		}
	}
}

func TestVLANs(t *testing.T) {
	c, err := Parse("x.yaml", []byte(strings.Replace(base, "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, lan_vlan: 10, wan_vlan: 100}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if c.LANVLAN != 10 || c.WANVLAN != 100 {
		t.Errorf("vlans %d %d", c.LANVLAN, c.WANVLAN)
	}
	c, err = Parse("x.yaml", []byte(strings.Replace(base, "{lan: lan0, wan: wan0}", "{lan: lan0, wan: wan0, lan_vlan: 10, wan_vlan: 300.100}", 1)))
	if err != nil || c.LANSVLAN != 0 || c.LANVLAN != 10 || c.WANSVLAN != 300 || c.WANVLAN != 100 {
		t.Errorf("q-in-q: %v %d.%d %d.%d", err, c.LANSVLAN, c.LANVLAN, c.WANSVLAN, c.WANVLAN)
	}
	c, err = Parse("x.yaml", []byte(base))
	if err != nil || c.LANVLAN != 0 || c.WANVLAN != 0 {
		t.Errorf("untagged by default: %v %d %d", err, c.LANVLAN, c.WANVLAN)
	}
	// One port, two VLANs: a trunk; one port, one VLAN: plain one-arm.
	for _, tc := range []struct {
		ifs   string
		trunk bool
	}{
		{"{lan: eth0, wan: eth0, lan_vlan: 10, wan_vlan: 20}", true},
		{"{lan: eth0, wan: eth0, wan_vlan: 20}", true},
		{"{lan: eth0, wan: eth0, lan_vlan: 20, wan_vlan: 20}", false},
		{"{lan: lan0, wan: wan0, lan_vlan: 10, wan_vlan: 20}", false},
		{"{lan: eth0, wan: eth0, lan_vlan: 300.10, wan_vlan: 300.20}", true},
		{"{lan: eth0, wan: eth0, lan_vlan: 300.10, wan_vlan: 301.10}", true},
		{"{lan: eth0, wan: eth0, lan_vlan: 300.10, wan_vlan: \"300.10\"}", false},
	} {
		c, err := Parse("x.yaml", []byte(strings.Replace(base, "{lan: lan0, wan: wan0}", tc.ifs, 1)))
		if err != nil {
			t.Fatalf("%s: %v", tc.ifs, err)
		}
		if c.Trunk() != tc.trunk {
			t.Errorf("%s: trunk %v", tc.ifs, c.Trunk())
		}
	}
}
