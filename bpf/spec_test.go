package bpf

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"golang.org/x/sys/unix"
)

// These tests read the embedded object only; they need no privileges.

func TestCounterNamesMatchBTF(t *testing.T) {
	spec, err := loadXdpsec()
	if err != nil {
		t.Fatal(err)
	}
	var e *btf.Enum
	if err := spec.Types.TypeByName("counter", &e); err != nil {
		t.Fatalf("enum counter not in the object's BTF: %v", err)
	}
	seen := 0
	for _, v := range e.Values {
		if v.Name == "CNT_MAX" {
			if int(v.Value) != NumCounters {
				t.Errorf("CNT_MAX = %d, NumCounters = %d", v.Value, NumCounters)
			}
			continue
		}
		seen++
		want := strings.ToLower(strings.TrimPrefix(v.Name, "CNT_"))
		if got := Counter(v.Value).String(); got != want {
			t.Errorf("counter %d: Go name %q, C enumerator %s", v.Value, got, v.Name)
		}
	}
	if seen != NumCounters {
		t.Errorf("BTF has %d counters, Go knows %d", seen, NumCounters)
	}
	for i, n := range counterNames {
		if n == "" {
			t.Errorf("counter %d has no name", i)
		}
	}
	if got := Counter(NumCounters).String(); got != fmt.Sprintf("counter(%d)", NumCounters) {
		t.Errorf("out-of-range counter string %q", got)
	}
}

func TestMapSpecs(t *testing.T) {
	spec, err := loadXdpsec()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		typ        ebpf.MapType
		key, value uint32
		max        uint32
	}{
		"xsks":       {ebpf.XSKMap, 4, 4, xdpconf.MaxQueues},
		"live_spis":  {ebpf.Hash, 4, 1, MaxLiveSPIs},
		"spd_v4":     {ebpf.LPMTrie, 8, 4, 1 << 16},
		"spd_v6":     {ebpf.LPMTrie, 20, 4, 1 << 16},
		"counters":   {ebpf.PerCPUArray, 4, 8, uint32(NumCounters)},
		"config":     {ebpf.Array, 4, 24, 1},
		"in_v4":      {ebpf.LPMTrie, 8, 4, 1 << 16},
		"in_v6":      {ebpf.LPMTrie, 20, 4, 1 << 16},
		"in_rules":   {ebpf.Array, 4, 76, MaxInboundRules},
		"natt_frags": {ebpf.LRUHash, 24, 8, 4096},
		"fence":      {ebpf.Hash, 16, 8, MaxFenced},
	}
	if len(spec.Maps) != len(want) {
		t.Errorf("object has %d maps, want %d", len(spec.Maps), len(want))
	}
	for name, w := range want {
		m := spec.Maps[name]
		if m == nil {
			t.Errorf("map %s missing", name)
			continue
		}
		if m.Type != w.typ || m.KeySize != w.key || m.ValueSize != w.value || m.MaxEntries != w.max {
			t.Errorf("map %s: %s key %d value %d max %d, want %s %d %d %d", name, m.Type, m.KeySize, m.ValueSize, m.MaxEntries, w.typ, w.key, w.value, w.max)
		}
	}
	for _, p := range []string{"xdp_wan", "xdp_lan", "xdp_onearm"} {
		if ps := spec.Programs[p]; ps == nil || ps.Type != ebpf.XDP {
			t.Errorf("program %s missing or not XDP", p)
		}
	}
	for name := range (&Objects{}).mapsByName() {
		if _, ok := want[name]; !ok {
			t.Errorf("mapsByName has %s, not in the object", name)
		}
	}
	if n := len((&Objects{}).mapsByName()); n != len(want) {
		t.Errorf("mapsByName lists %d maps, object has %d", n, len(want))
	}
}

func TestSPIKeyIsWireOrder(t *testing.T) {
	// RFC 4303 section 2.1: the SPI is sent in network byte order; the map
	// key is those bytes, whatever the host order.
	for _, c := range []struct {
		spi  uint32
		wire [4]byte
	}{
		{0x0000c1a5, [4]byte{0x00, 0x00, 0xc1, 0xa5}},
		{0xc0ffee01, [4]byte{0xc0, 0xff, 0xee, 0x01}},
		{0x00000100, [4]byte{0, 0, 1, 0}},
	} {
		if got := spiKey(c.spi); got != c.wire {
			t.Errorf("spiKey(%08x) = %x, want %x", c.spi, got, c.wire)
		}
		if got := esp(c.spi, 0, 0)[:4]; [4]byte(got) != c.wire {
			t.Errorf("test frame builder writes %x for %08x", got, c.spi)
		}
	}
}

func TestSPDKeys(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		name    string
		in      []SPDEntry
		v4      map[lpmKeyV4]Action
		v6      map[lpmKeyV6]Action
		wantErr string
	}{
		{
			name: "masked and split by family",
			in: []SPDEntry{
				{p("198.51.100.77/24"), ActionProtect},
				{p("0.0.0.0/0"), ActionDiscard},
				{p("2001:db8::1/32"), ActionDivert},
				{p("2001:db8::1/128"), ActionBypass},
			},
			v4: map[lpmKeyV4]Action{
				{Prefixlen: 24, Addr: [4]byte{198, 51, 100, 0}}: ActionProtect,
				{Prefixlen: 0}: ActionDiscard,
			},
			v6: map[lpmKeyV6]Action{
				{Prefixlen: 32, Addr: [16]byte{0x20, 0x01, 0x0d, 0xb8}}:         ActionDivert,
				{Prefixlen: 128, Addr: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}}: ActionBypass,
			},
		},
		{
			name: "same prefix twice, same action",
			in:   []SPDEntry{{p("192.0.2.0/24"), ActionProtect}, {p("192.0.2.9/24"), ActionProtect}},
			v4:   map[lpmKeyV4]Action{{Prefixlen: 24, Addr: [4]byte{192, 0, 2, 0}}: ActionProtect},
			v6:   map[lpmKeyV6]Action{},
		},
		{name: "empty", v4: map[lpmKeyV4]Action{}, v6: map[lpmKeyV6]Action{}},
		{name: "conflict", in: []SPDEntry{{p("192.0.2.0/24"), ActionProtect}, {p("192.0.2.128/24"), ActionBypass}}, wantErr: "conflicting"},
		{name: "conflict v6", in: []SPDEntry{{p("2001:db8::/48"), ActionProtect}, {p("2001:db8::/48"), ActionDiscard}}, wantErr: "conflicting"},
		{name: "zero prefix", in: []SPDEntry{{netip.Prefix{}, ActionProtect}}, wantErr: "invalid prefix"},
		{name: "unknown action", in: []SPDEntry{{p("192.0.2.0/24"), Action(9)}}, wantErr: "unknown action"},
		{name: "4in6", in: []SPDEntry{{p("::ffff:192.0.2.0/120"), ActionProtect}}, wantErr: "IPv4-mapped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v4, v6, err := spdKeys(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(v4) != len(c.v4) || len(v6) != len(c.v6) {
				t.Fatalf("got %v / %v, want %v / %v", v4, v6, c.v4, c.v6)
			}
			for k, a := range c.v4 {
				if v4[k] != a {
					t.Errorf("v4 %v: %v, want %v", k, v4[k], a)
				}
			}
			for k, a := range c.v6 {
				if v6[k] != a {
					t.Errorf("v6 %v: %v, want %v", k, v6[k], a)
				}
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[string]string{
		ActionBypass.String(): "bypass", ActionProtect.String(): "protect", ActionDiscard.String(): "discard",
		ActionDivert.String(): "divert", Action(7).String(): "action(7)",
		RoleWAN.String(): "wan", RoleLAN.String(): "lan", RoleOneArm.String(): "onearm", Role(5).String(): "role(5)",
	} {
		if v != want {
			t.Errorf("got %q, want %q", v, want)
		}
	}
}

func TestDetachPinnedMissingDir(t *testing.T) {
	if err := DetachPinned(filepath.Join(t.TempDir(), "never-created")); err != nil {
		t.Errorf("missing pin path: %v", err)
	}
	if err := DetachPinned(""); err == nil {
		t.Error("empty pin path accepted")
	}
}

func TestLoadRejectsNonBPFFS(t *testing.T) {
	_, err := Load(Options{PinPath: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not on a bpf filesystem") {
		t.Errorf("Load on tmpfs: %v", err)
	}
}

// TestPinPathHints: a pin path that cannot be made or used says why and
// what to do. /sys/kernel stands for the empty /sys/fs/bpf `ip netns exec`
// leaves (plain sysfs, where mkdir fails with "no such file or directory").
func TestPinPathHints(t *testing.T) {
	for _, tc := range []struct {
		name, dir string
		want      []string
	}{
		{"sysfs, as under ip netns exec", "/sys/kernel/xdpsec-test/gw", []string{
			"bpf: pin path /sys/kernel/xdpsec-test/gw: no bpf filesystem is mounted at /sys/kernel",
			"`ip netns exec` remounts /sys", "nsenter --net=/run/netns/NAME", "mount -t bpf bpf /sys/fs/bpf"}},
		{"not bpffs", filepath.Join(t.TempDir(), "pins"), []string{
			"is not on a bpf filesystem; set pin_path under one (mount -t bpf bpf /sys/fs/bpf"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := preparePinPath(tc.dir)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("preparePinPath(%s): %v\nwant it to contain %q", tc.dir, err, w)
				}
			}
		})
	}
	// --cleanup under `ip netns exec` must not report success while the
	// pins it cannot see stay.
	if err := DetachPinned("/sys/kernel/xdpsec-test/gw"); err == nil || !strings.Contains(err.Error(), "nsenter --net") {
		t.Errorf("DetachPinned on sysfs: %v", err)
	}
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &st) == nil && uint32(st.Type) == bpffsMagic {
		if h := bpffsHint("/sys/fs/bpf/xdpsec-never-made/gw"); h != "" {
			t.Errorf("a path under the mounted bpffs got a hint: %s", h)
		}
	}
}

// TestFrameChecksum checks the test frame builder's checksum against the
// worked example of RFC 1071 section 3 (one's complement sum 0xddf2).
func TestFrameChecksum(t *testing.T) {
	if got := checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}); got != ^uint16(0xddf2) {
		t.Errorf("checksum = %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// A header with its checksum filled in sums to zero (RFC 791 section 3.1).
	h := ipv4(protoESP, peer4, gw4, nil, v4opts{options: []byte{1, 1, 1, 0}})
	if got := checksum(h); got != 0 {
		t.Errorf("built IPv4 header does not verify: %#04x", got)
	}
}
