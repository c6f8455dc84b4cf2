package spd

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// mirrorLPM is the XDP program's view: the longest mirror prefix of the
// destination's family that contains it.
func mirrorLPM(m []MirrorEntry, dst netip.Addr) (MirrorEntry, bool) {
	var best MirrorEntry
	found := false
	for _, e := range m {
		if e.Prefix.Contains(dst) && (!found || e.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = e, true
		}
	}
	return best, found
}

// checkMirrorFlow checks the fail-closed property for one real packet
// (source and destination of one family, no zones).
func checkMirrorFlow(t testing.TB, m []MirrorEntry, def Action, ps []*Policy, k *packet.FlowKey) {
	t.Helper()
	e, ok := mirrorLPM(m, k.Dst)
	if !ok {
		t.Fatalf("mirror has no entry for %v", k.Dst)
	}
	real := def
	if p := linear(ps, k); p != nil {
		real = p.Action
	}
	var bad bool
	switch e.Action {
	case MirrorBypass:
		bad = real != Bypass
	case MirrorProtect:
		bad = real != Protect
	case MirrorDiscard:
		bad = real != Discard
	case MirrorDivert:
	default:
		bad = true
	}
	if bad {
		p := linear(ps, k)
		t.Fatalf("mirror says %v for %v (entry %v) but %d %v:%d -> %v:%d gets %v from %s (default %v)",
			e.Action, k.Dst, e.Prefix, k.Proto, k.Src, k.SrcPort, k.Dst, k.DstPort, real, name(p), def)
	}
}

func checkMirrorShape(t testing.TB, m []MirrorEntry) {
	t.Helper()
	seen := map[netip.Prefix]bool{}
	for _, e := range m {
		if e.Prefix != e.Prefix.Masked() {
			t.Fatalf("unmasked mirror prefix %v", e.Prefix)
		}
		if seen[e.Prefix] {
			t.Fatalf("mirror lists %v twice", e.Prefix)
		}
		seen[e.Prefix] = true
		if e.Action > MirrorDivert {
			t.Fatalf("mirror action %d", e.Action)
		}
	}
	if !seen[netip.MustParsePrefix("0.0.0.0/0")] || !seen[netip.MustParsePrefix("::/0")] {
		t.Fatalf("mirror lacks a family root: %v", m)
	}
}

func TestMirrorTable(t *testing.T) {
	const tcp, udp = 6, 17
	type want map[string]MirrorAction
	tests := []struct {
		name string
		ps   []*Policy
		def  Action
		want want // the complete mirror
	}{
		{"empty bypass default", nil, Bypass,
			want{"0.0.0.0/0": MirrorBypass, "::/0": MirrorBypass}},
		{"empty discard default", nil, Discard,
			want{"0.0.0.0/0": MirrorDiscard, "::/0": MirrorDiscard}},
		{"unknown default diverts", nil, Protect,
			want{"0.0.0.0/0": MirrorDivert, "::/0": MirrorDivert}},
		{"hub with any-source sites", []*Policy{
			pol("a", Protect, "", "10.1.0.0/24", 0, anyPorts, anyPorts),
			pol("b", Protect, "0.0.0.0/0", "10.2.0.0/24", 0, anyPorts, anyPorts), // /0 source catches all real packets
			pol("c", Protect, "::/0", "2001:db8:1::/64", 0, anyPorts, anyPorts),
			pol("drop", Discard, "", "10.0.0.0/8", 0, anyPorts, anyPorts),
		}, Bypass, want{
			"0.0.0.0/0": MirrorBypass, "10.0.0.0/8": MirrorDiscard, "10.1.0.0/24": MirrorProtect,
			"10.2.0.0/24": MirrorProtect, "::/0": MirrorBypass, "2001:db8:1::/64": MirrorProtect,
		}},
		{"source-restricted site diverts", []*Policy{
			pol("a", Protect, "192.168.0.0/16", "10.1.0.0/24", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.1.0.0/24": MirrorDivert, "::/0": MirrorBypass}},
		{"source-restricted site with its own discard tail", []*Policy{
			pol("a", Protect, "192.168.0.0/16", "10.1.0.0/24", 0, anyPorts, anyPorts),
			pol("a-rest", Discard, "", "10.1.0.0/24", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.1.0.0/24": MirrorDivert, "::/0": MirrorBypass}},
		{"same action whatever the source", []*Policy{
			pol("a", Protect, "192.168.0.0/16", "10.1.0.0/24", 0, anyPorts, anyPorts),
			pol("a-rest", Protect, "", "10.1.0.0/24", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.1.0.0/24": MirrorProtect, "::/0": MirrorBypass}},
		{"earlier narrow bypass makes the protect range divert", []*Policy{
			pol("ike", Bypass, "", "", udp, anyPorts, sad.PortRange{Lo: 500, Hi: 500}),
			pol("site", Protect, "", "10.1.0.0/16", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.1.0.0/16": MirrorDivert, "::/0": MirrorBypass}},
		{"shadowed by an earlier catch-all: no entry needed", []*Policy{
			pol("all", Discard, "", "10.0.0.0/8", 0, anyPorts, anyPorts),
			pol("site", Protect, "", "10.1.0.0/16", tcp, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.0.0.0/8": MirrorDiscard, "::/0": MirrorBypass}},
		{"same action as the enclosing entry is folded", []*Policy{
			pol("inner", Discard, "", "10.1.0.0/16", 0, anyPorts, anyPorts),
			pol("outer", Discard, "", "10.0.0.0/8", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.0.0.0/8": MirrorDiscard, "::/0": MirrorBypass}},
		{"default discard with a bypass hole", []*Policy{
			pol("hole", Bypass, "", "192.0.2.0/24", 0, anyPorts, anyPorts),
		}, Discard, want{"0.0.0.0/0": MirrorDiscard, "192.0.2.0/24": MirrorBypass, "::/0": MirrorDiscard}},
		{"other-family source is ignored for real packets", []*Policy{
			pol("v6src", Discard, "2001:db8::/32", "", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "::/0": MirrorDivert}},
		{"catch-all any destination", []*Policy{
			pol("drop", Discard, "", "", 0, anyPorts, anyPorts),
			pol("site", Protect, "", "10.0.0.0/8", 0, anyPorts, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorDiscard, "::/0": MirrorDiscard}},
		{"ports 0-65535 and proto any still catch all", []*Policy{
			pol("site", Protect, "", "10.0.0.0/8", 0, sad.PortRange{Lo: 0, Hi: 65535}, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.0.0.0/8": MirrorProtect, "::/0": MirrorBypass}},
		{"ports 1-65535 do not (ICMP has port 0)", []*Policy{
			pol("site", Protect, "", "10.0.0.0/8", 0, sad.PortRange{Lo: 1, Hi: 65535}, anyPorts),
		}, Bypass, want{"0.0.0.0/0": MirrorBypass, "10.0.0.0/8": MirrorDivert, "::/0": MirrorBypass}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New()
			if err := d.Replace(tt.ps); err != nil {
				t.Fatal(err)
			}
			m := d.MirrorWithDefault(tt.def)
			checkMirrorShape(t, m)
			got := want{}
			for _, e := range m {
				got[e.Prefix.String()] = e.Action
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("mirror\n got %v\nwant %v", got, tt.want)
			}
			if !slices.IsSortedFunc(m, func(a, b MirrorEntry) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) }) {
				t.Errorf("mirror not sorted: %v", m)
			}
		})
	}
}

// TestMirrorFailClosed is the randomized checker: for random policy lists
// and random real packets, the mirror's verdict for the destination must
// agree with Lookup whenever it claims more than Divert.
func TestMirrorFailClosed(t *testing.T) {
	decided, checked := 0, 0
	for _, n := range []int{0, 1, 3, 10, 40, 200} {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("n=%d/seed=%d", n, seed), func(t *testing.T) {
				g := newGen(seed*7919 + uint64(n))
				ps := g.policies(n)
				d := New()
				if err := d.Replace(ps); err != nil {
					t.Fatal(err)
				}
				for _, def := range []Action{Bypass, Discard} {
					m := d.MirrorWithDefault(def)
					checkMirrorShape(t, m)
					for range 1500 {
						k := g.flow(false)
						if len(ps) > 0 && g.r.IntN(2) == 0 {
							aim(g, ps[g.r.IntN(len(ps))], &k)
						}
						if k.Src.Is4() != k.Dst.Is4() {
							continue // aimed at a destination-any policy with the other family's source
						}
						checkMirrorFlow(t, m, def, ps, &k)
						if e, _ := mirrorLPM(m, k.Dst); e.Action != MirrorDivert {
							decided++
						}
						checked++
					}
				}
			})
		}
	}
	// A mirror that always says Divert is safe and useless: the property
	// above must have been tested on verdicts that claim something.
	t.Logf("%d of %d packets decided by the mirror", decided, checked)
	if decided < checked/10 {
		t.Errorf("only %d of %d packets decided by the mirror", decided, checked)
	}
}

// TestMirrorHub checks the mirror is useful, not just safe, on the
// realistic large SPD: every site resolves in XDP.
func TestMirrorHub(t *testing.T) {
	d, flows := benchSPD(2000, false)
	ps := d.Policies()
	// Widen the sites to any source: then the destination alone decides.
	for i, p := range ps[:len(ps)-1] {
		q := &Policy{Name: p.Name, Action: p.Action, Selector: p.Selector}
		q.Selector.Src = netip.Prefix{}
		ps[i] = q
	}
	if err := d.Replace(ps); err != nil {
		t.Fatal(err)
	}
	m := d.Mirror()
	if len(m) != 2000+2 {
		t.Fatalf("%d mirror entries, want one per site and the two roots", len(m))
	}
	for i := range flows {
		if e, _ := mirrorLPM(m, flows[i].Dst); e.Action != MirrorProtect {
			t.Fatalf("%v: %v", flows[i].Dst, e)
		}
		checkMirrorFlow(t, m, Bypass, ps, &flows[i])
	}
}

// outcomeLPM is the longest Outcomes entry that contains dst.
func outcomeLPM(m []OutcomeEntry, dst netip.Addr) (OutcomeEntry, bool) {
	var best OutcomeEntry
	found := false
	for _, e := range m {
		if e.Prefix.Contains(dst) && (!found || e.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = e, true
		}
	}
	return best, found
}

// TestOutcomes: for random policy lists and packets, the outcome set of
// the packet's destination holds what Lookup says (a miss as OutcomeNone),
// and a single-outcome set is exactly that answer.
func TestOutcomes(t *testing.T) {
	single, checked := 0, 0
	for _, n := range []int{0, 1, 3, 10, 40} {
		for seed := range uint64(4) {
			g := newGen(seed*104729 + uint64(n))
			ps := g.policies(n)
			d := New()
			if err := d.Replace(ps); err != nil {
				t.Fatal(err)
			}
			m := d.Outcomes()
			for range 1000 {
				k := g.flow(false)
				if len(ps) > 0 && g.r.IntN(2) == 0 {
					aim(g, ps[g.r.IntN(len(ps))], &k)
				}
				if k.Src.Is4() != k.Dst.Is4() {
					continue
				}
				e, ok := outcomeLPM(m, k.Dst)
				if !ok {
					t.Fatalf("n=%d seed=%d: no outcome entry for %s", n, seed, k.Dst)
				}
				want := OutcomeNone
				if p := linear(ps, &k); p != nil {
					want = OutcomeSet(actionBit(p.Action))
				}
				if e.Set&want == 0 {
					t.Fatalf("n=%d seed=%d: %s: outcomes %#x of %s lack %#x", n, seed, k.Dst, e.Set, e.Prefix, want)
				}
				if _, ok := e.Set.Single(); ok {
					single++
				}
				checked++
			}
		}
	}
	t.Logf("%d of %d packets with a single outcome", single, checked)
	if single < checked/10 {
		t.Errorf("only %d of %d packets with a single outcome", single, checked)
	}
}

func TestOutcomesTable(t *testing.T) {
	lan, site := netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("198.18.2.0/24")
	d := New()
	ps := []*Policy{
		{Name: "in-site", Action: Protect, Selector: sad.Selector{Src: site, Dst: lan}},
		{Name: "mgmt", Action: Bypass, Selector: sad.Selector{Dst: netip.MustParsePrefix("198.18.1.10/32"), Proto: 6, DstPorts: sad.PortRange{Lo: 22, Hi: 22}}},
		{Name: "dmz", Action: Discard, Selector: sad.Selector{Dst: netip.MustParsePrefix("198.18.9.0/24")}},
	}
	if err := d.Replace(ps); err != nil {
		t.Fatal(err)
	}
	got := map[string]OutcomeSet{}
	for _, e := range d.Outcomes() {
		got[e.Prefix.String()] = e.Set
	}
	want := map[string]OutcomeSet{
		"0.0.0.0/0":      OutcomeNone,
		"198.18.1.0/24":  OutcomeNone | OutcomeSet(actionBit(Protect)),
		"198.18.1.10/32": OutcomeNone | OutcomeSet(actionBit(Protect)|actionBit(Bypass)),
		"198.18.9.0/24":  OutcomeSet(actionBit(Discard)),
		"::/0":           OutcomeNone,
	}
	if !maps.Equal(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	if a, ok := want["198.18.9.0/24"].Single(); !ok || a != Discard {
		t.Errorf("Single of a discard-only set: %v %v", a, ok)
	}
}
