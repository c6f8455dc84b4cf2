package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/sad/spd"
)

const inboundConfig = `interfaces: {lan: lan0, wan: wan0}
default_action: discard
sas:
  - {name: out, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16,
     key: 0x000102030405060708090a0b0c0d0e0f10111213}
policies:
  - {name: site, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: out}
  - {name: web-out, src: 198.18.1.0/24, dst: 203.0.113.0/24, proto: tcp, dport: 443, action: bypass, dir: out}
  - {name: ssh-in, src: 198.18.1.10/32, dst: 203.0.113.0/24, proto: tcp, sport: 22, action: bypass, dir: in}
  - {name: mgmt, src: 198.18.1.0/24, dst: 192.0.2.0/24, action: bypass}
`

// TestInboundPolicies: the inbound side is the file's order less dir: out,
// with dir: in policies (kept out of the outbound SPD) at their place, and
// every selector reversed.
func TestInboundPolicies(t *testing.T) {
	d := daemonFromYAML(t, inboundConfig)
	var out []string
	for _, p := range d.spd.Policies() {
		out = append(out, p.Name)
	}
	if got := strings.Join(out, ","); got != "site,web-out,mgmt" {
		t.Errorf("outbound SPD %s", got)
	}
	var in []string
	for _, p := range d.inboundPolicies() {
		in = append(in, p.Name+":"+p.Selector.Src.String()+">"+p.Selector.Dst.String())
	}
	want := "site:198.18.2.0/24>198.18.1.0/24,ssh-in:203.0.113.0/24>198.18.1.10/32,mgmt:192.0.2.0/24>198.18.1.0/24"
	if got := strings.Join(in, ","); got != want {
		t.Errorf("inbound side %s\nwant %s", got, want)
	}
	// A policy put first at run time (as IKE does with narrowed
	// selectors) comes first inbound too, the in-only one still after site.
	dyn := &spd.Policy{Name: "dyn", Action: spd.Protect, Selector: d.spd.Policies()[0].Selector}
	if err := d.spd.Insert(dyn, 0); err != nil {
		t.Fatal(err)
	}
	in = in[:0]
	for _, p := range d.inboundPolicies() {
		in = append(in, p.Name)
	}
	if got := strings.Join(in, ","); got != "dyn,site,ssh-in,mgmt" {
		t.Errorf("with a dynamic policy: %s", got)
	}
}

// TestInboundSPDDefaults: an operator who wrote only outbound PROTECT
// policies gets the inbound drops; default_action and one-arm mode decide
// what no policy covers.
func TestInboundSPDDefaults(t *testing.T) {
	const only = `interfaces: {lan: lan0, wan: wan0}
sas:
  - {name: out, spi: 0x1001, dir: out, local: 192.0.2.1, remote: 192.0.2.2, suite: aes128gcm16,
     key: 0x000102030405060708090a0b0c0d0e0f10111213}
policies:
  - {name: site, src: 198.18.1.0/24, dst: 198.18.2.0/24, action: protect, sa: out}
`
	for _, tc := range []struct {
		name, cfg string
		pass      bool
	}{
		{"default discard", only, false},
		{"default bypass", strings.Replace(only, "sas:", "default_action: bypass\nsas:", 1), true},
		{"one-arm", strings.Replace(only, "{lan: lan0, wan: wan0}", "{lan: eth0, wan: eth0}", 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := daemonFromYAML(t, tc.cfg)
			tab, err := d.inboundSPD()
			if err != nil {
				t.Fatal(err)
			}
			if tab.DefaultPass != tc.pass {
				t.Errorf("default pass %v", tab.DefaultPass)
			}
			got := map[netip.Prefix]bpf.InAction{}
			for _, e := range tab.Entries {
				if e.Action != bpf.InHost {
					got[e.Prefix] = e.Action
				}
			}
			if a := got[netip.MustParsePrefix("198.18.1.0/24")]; a != bpf.InScan {
				t.Errorf("the protected prefix: %s, want scan (protect from the site, default otherwise)", a)
			}
			if a := got[netip.MustParsePrefix("0.0.0.0/0")]; a != bpf.InDefault {
				t.Errorf("0.0.0.0/0: %s", a)
			}
			if tab.Rules() != 1 {
				t.Errorf("%d rules", tab.Rules())
			}
		})
	}
}

// TestSnapshotPolicyDir: show policy lists one-direction policies with
// their direction, the inbound-only ones too.
func TestSnapshotPolicyDir(t *testing.T) {
	d := daemonFromYAML(t, inboundConfig)
	got := map[string]string{}
	for _, p := range d.Snapshot().Policies {
		got[p.Name] = p.Dir
	}
	want := map[string]string{"site": "", "web-out": "out", "ssh-in": "in", "mgmt": ""}
	if len(got) != len(want) {
		t.Errorf("policies %v, want %v", got, want)
	}
	for n, w := range want {
		if g, ok := got[n]; !ok || g != w {
			t.Errorf("%s: dir %q (listed %v), want %q", n, g, ok, w)
		}
	}
}
