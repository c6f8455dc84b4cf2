package daemon

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
)

const testConfig = `interfaces: {lan: lo, wan: lo}
default_action: discard
sas:
  - {name: out, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16,
     key: 0x000102030405060708090a0b0c0d0e0f10111213}
  - {name: in, spi: 0x2001, dir: in, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16,
     key: 0x202122232425262728292a2b2c2d2e2f30313233, replay_window: 64}
policies:
  - {name: v4, dst: 198.18.2.0/24, action: protect, sa: out}
  - {name: v4-ssh, src: 198.18.1.0/24, dst: 198.18.3.0/24, action: protect, sa: out}
  - {name: mgmt, dst: 203.0.113.0/24, action: bypass}
`

func testDaemon(t *testing.T) *Daemon { return daemonFromYAML(t, testConfig) }

// daemonFromYAML builds a daemon's tables from a configuration, as Start
// does before it touches any interface.
func daemonFromYAML(t *testing.T, text string) *Daemon {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "gw.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.buildTables(); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBuildTables(t *testing.T) {
	d := testDaemon(t)
	if d.inbound.Len() != 1 || d.inbound.Lookup(0x2001) == nil {
		t.Errorf("inbound table: %d SAs", d.inbound.Len())
	}
	if d.inbound.Lookup(0x1001) != nil {
		t.Error("outbound SA in the inbound table")
	}
	if len(d.policies) != 3 || d.policies[0].SA.Load() == nil || d.policies[0].SA.Load().SPI != 0x1001 {
		t.Errorf("policies not bound: %+v", d.policies)
	}
	if d.policies[2].SA.Load() != nil {
		t.Error("bypass policy has an SA")
	}
	k := packet.FlowKey{Src: netip.MustParseAddr("198.18.1.9"), Dst: netip.MustParseAddr("198.18.2.9"), Proto: 1}
	if p := d.spd.Lookup(&k); p == nil || p.Name != "v4" {
		t.Errorf("SPD lookup: %+v", p)
	}
	for _, b := range d.cfg.SAs[0].Key {
		if b != 0 {
			t.Fatal("configuration keys not wiped after building the SAs")
		}
	}
}

// TestMirror: the XDP program's view of the SPD, with the gateway's own
// addresses (here those of lo) bypassed.
func TestMirror(t *testing.T) {
	d := testDaemon(t)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no lo:", err)
	}
	d.lanIf, d.wanIf = lo, lo
	got := map[netip.Prefix]bpf.Action{}
	for _, e := range d.mirror() {
		if _, dup := got[e.Prefix]; dup {
			t.Errorf("prefix %v twice", e.Prefix)
		}
		got[e.Prefix] = e.Action
	}
	want := map[string]bpf.Action{
		"198.18.2.0/24":  bpf.ActionProtect, // by destination alone
		"198.18.3.0/24":  bpf.ActionDivert,  // depends on the source
		"203.0.113.0/24": bpf.ActionBypass,
		"0.0.0.0/0":      bpf.ActionDiscard, // default_action
		"127.0.0.1/32":   bpf.ActionBypass,  // our own address
	}
	for p, a := range want {
		if g, ok := got[netip.MustParsePrefix(p)]; !ok || g != a {
			t.Errorf("%s: %v (present %v), want %v", p, g, ok, a)
		}
	}
}

// TestRestoreSeq: a static key the state directory does not know is
// refused until declared new; a declared key resumes above its durable
// mark, whatever its SA is called; an unwritable directory or a key
// another daemon holds is refused, each with its reason and remedy.
func TestRestoreSeq(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	daemonAt := func(cfgText string) *Daemon {
		d := daemonFromYAML(t, cfgText)
		d.cfg.StateDir = dir
		return d
	}
	d := daemonAt(testConfig)
	err := d.restoreSeq()
	if err == nil {
		t.Fatal("an unknown static key was accepted")
	}
	for _, want := range []string{"refusing to start", "sa out (spi 0x00001001", "no sequence-number state", "xdpsec newkeys -c " + d.cfg.File, "generate a new key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "0405060708") {
		t.Errorf("refusal prints key material: %v", err)
	}
	if _, got := d.sas[0].ReserveSeq(1); got != 0 {
		t.Fatal("the refused SA can send")
	}

	cfg, err := config.Parse("gw.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = dir
	declared, known, err := DeclareNewKeys(cfg)
	if err != nil || len(declared) != 1 || len(known) != 0 || !strings.HasPrefix(declared[0], "out (spi 0x00001001, key ") {
		t.Fatalf("declare: %v %v %v", declared, known, err)
	}
	d = daemonAt(testConfig)
	if err := d.restoreSeq(); err != nil {
		t.Fatal(err)
	}
	out := d.sas[0]
	first, got := out.ReserveSeq(1000)
	if first != 1 || got != 1000 {
		t.Fatalf("a new key starts at %d (%d)", first, got)
	}
	// Another daemon with the same key while this one runs.
	d2 := daemonAt(testConfig)
	if err := d2.restoreSeq(); err == nil || !strings.Contains(err.Error(), "Another xdpsec is sending with the same key") {
		t.Fatalf("second daemon on the key: %v", err)
	}
	d.seqStore.Close() // kill -9

	// Renamed, new SPI, another tag length (the same nonces): the mark
	// follows the key.
	renamed := strings.ReplaceAll(strings.Replace(testConfig, "name: out, spi: 0x1001", "name: to-b, spi: 0x1002", 1), "sa: out}", "sa: to-b}")
	renamed = strings.Replace(renamed, "suite: aes128gcm16", "suite: aes128gcm8", 1)
	d = daemonAt(renamed)
	if err := d.restoreSeq(); err != nil {
		t.Fatal(err)
	}
	if first, _ := d.sas[0].ReserveSeq(1); first <= 1000 {
		t.Fatalf("renamed SA resumed at %d, below numbers already used", first)
	}
	if _, known, _ := DeclareNewKeys(cfg); len(known) != 1 {
		t.Fatal("declaring again did not find the known key")
	}
	d.seqStore.Close()

	// An unwritable state directory.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	d = daemonAt(testConfig)
	d.cfg.StateDir = filepath.Join(file, "state")
	err = d.restoreSeq()
	if err == nil || !strings.Contains(err.Error(), "refusing to start") || !strings.Contains(err.Error(), "not writable") ||
		!strings.Contains(err.Error(), "set state_dir to a writable directory on") {
		t.Fatalf("unwritable state_dir: %v", err)
	}
}

func TestSelectorString(t *testing.T) {
	for _, tc := range []struct {
		s    sad.Selector
		want string
	}{
		{sad.Selector{}, "src any dst any"},
		{sad.Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Proto: 6, DstPorts: sad.PortRange{Lo: 80, Hi: 90}},
			"src 198.18.1.0/24 dst any proto 6 dport 80-90"},
		{sad.Selector{Dst: netip.MustParsePrefix("2001:db8::/32"), Proto: 17, SrcPorts: sad.PortRange{Lo: 53, Hi: 53}},
			"src any dst 2001:db8::/32 proto 17 sport 53"},
	} {
		if got := SelectorString(tc.s); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestSAInfo(t *testing.T) {
	d := testDaemon(t)
	out, in := d.sas[0], d.sas[1]
	out.ReserveSeq(5)
	in.Drop(sad.ErrAuth, 2)
	o, i := SAInfo(out), SAInfo(in)
	if o.Dir != "out" || o.Seq != 5 || o.Suite != "aes128gcm16" || o.Remote != "192.0.2.2" || o.ReplayWin != 0 {
		t.Errorf("out: %+v", o)
	}
	if i.Dir != "in" || i.ReplayWin != 64 || i.Drops["auth_failed"] != 2 || len(i.Drops) != 1 {
		t.Errorf("in: %+v", i)
	}
}

func TestCollector(t *testing.T) {
	snap := &control.Snapshot{
		SAs:          []control.SA{{Name: "ab", SPI: 0x1001, Dir: "in", Packets: 9, Usable: true, Drops: map[string]uint64{"replay": 3}}},
		Workers:      []control.Worker{{ID: 0, Counters: map[string]uint64{"encaps": 4}, Drops: map[string]uint64{"no_route": 1}}},
		XDP:          map[string]map[string]uint64{"wan": {"esp_unknown_spi": 2}},
		XSK:          []control.XSK{{Interface: "wan0", Counters: map[string]uint64{"free": 10}}},
		IKEStats:     IKEStats(ike.FloodStats{CookiesSent: 5, RateLimited: 6, HalfOpen: 7, HalfOpenPeak: 8}),
		IKEFragments: map[string]uint64{"drop_integrity": 5},
	}
	snap.IKEStats[nattKeepalives] = 13 // its own metric, not a flood counter
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(func() *control.Snapshot { return snap })); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			got[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	for k, v := range map[string]float64{
		"xdpsec_sa_packets_total{dir=in,sa=ab,spi=0x00001001}":             9,
		"xdpsec_sa_drops_total{dir=in,reason=replay,sa=ab,spi=0x00001001}": 3,
		"xdpsec_sa_usable{dir=in,sa=ab,spi=0x00001001}":                    1,
		"xdpsec_worker_total{counter=encaps,worker=0}":                     4,
		"xdpsec_worker_drops_total{reason=no_route,worker=0}":              1,
		"xdpsec_xdp_packets_total{program=wan,verdict=esp_unknown_spi}":    2,
		"xdpsec_xsk{counter=free,interface=wan0,queue=0}":                  10,
		"xdpsec_ike_flood_total{counter=cookies_sent}":                     5,
		"xdpsec_ike_flood_total{counter=rate_limited}":                     6,
		"xdpsec_ike_half_open{gauge=half_open}":                            7,
		"xdpsec_ike_half_open{gauge=half_open_peak}":                       8,
		"xdpsec_ike_fragments_total{counter=drop_integrity}":               5,
		"xdpsec_ike_natt_keepalives_total{}":                               13,
		"xdpsec_ike_flood_total{counter=natt_keepalives}":                  0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
