package store

import (
	"slices"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// TestReplaceConfigured: a reload swaps the configured policies and
// traps in one publication. A trap kept (the same object) stays bound to
// its SA; a narrowed policy stays first with its SA; an InstallTrap
// policy stays when keep says so about its tag and goes otherwise; a
// trap that goes is unbound; the new ones are in the SPD in order, and
// the mirror is told once.
func TestReplaceConfigured(t *testing.T) {
	m := &recMirror{}
	s, t4, t6 := testStore(t, m)
	a := newSA(t, 0x2001, sad.Outbound, 1)
	if err := s.Install(a, Negotiated, []sad.Selector{v4}); err != nil {
		t.Fatal(err)
	}
	narrow := sel("198.18.1.0/24", "198.18.2.7/32")
	c := newSA(t, 0x2003, sad.Outbound, 3)
	if err := s.Install(c, Negotiated, []sad.Selector{narrow}); err != nil {
		t.Fatal(err)
	}
	b := newSA(t, 0x2002, sad.Outbound, 2)
	if err := s.Install(b, Negotiated, []sad.Selector{v6}); err != nil {
		t.Fatal(err)
	}
	if err := s.InstallTrap(9, []sad.Selector{sel("10.0.0.0/8", "10.1.0.0/16"), sel("10.2.0.0/16", "10.3.0.0/16")}, func(x sad.Selector) (any, bool) {
		if x.Src.Bits() == 8 {
			return "keep", true
		}
		return "drop", true
	}); err != nil {
		t.Fatal(err)
	}
	ps := s.SPD().Policies()
	kept, dropped := ps[len(ps)-2], ps[len(ps)-1]
	gen := s.Gen()
	events, stop := s.Watch(8)
	defer stop()
	m.log = nil

	by2 := &spd.Policy{Name: "mgmt2", Selector: sel("198.18.11.0/24", "198.18.12.0/24"), Action: spd.Bypass}
	t8 := &spd.Policy{Name: "trap8", Selector: sel("198.18.7.0/24", "198.18.8.0/24"), Action: spd.Protect}
	if err := s.ReplaceConfigured([]*spd.Policy{by2}, []Trap{{t4, "net"}, {t8, "new"}}, func(tag any) bool { return tag == "keep" }); err != nil {
		t.Fatal(err)
	}
	got := s.SPD().Policies()
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	if want := []string{got[0].Name, "mgmt2", "trap4", "trap8", kept.Name}; !slices.Equal(names, want) || got[0].SA.Load() != c {
		t.Errorf("SPD after the swap: %v, want the narrowed policy first, then %v", names, want[1:])
	}
	if t4.SA.Load() != a || !slices.Contains(s.Bound(1), t4) {
		t.Error("the kept trap lost its SA or binding")
	}
	if slices.Contains(s.Bound(2), t6) {
		t.Error("the removed trap is still bound")
	}
	if _, ok := s.TrapTag(dropped); ok {
		t.Error("the dropped InstallTrap policy keeps its tag")
	}
	if tag, ok := s.TrapTag(t8); !ok || tag != "new" {
		t.Errorf("the new trap's tag: %v %v", tag, ok)
	}
	if !slices.Equal(m.log, []string{"sync"}) || s.Gen() != gen+1 {
		t.Errorf("mirror %v, generation %d -> %d", m.log, gen, s.Gen())
	}
	if ev := <-events; ev.Kind != Reconfigured {
		t.Errorf("event %v", ev.Kind)
	}
	// The next reload sees what this one configured: by2 and the traps.
	if err := s.ReplaceConfigured(nil, []Trap{{t8, "new"}}, nil); err != nil {
		t.Fatal(err)
	}
	if n := s.SPD().Len(); n != 2 || s.SPD().Policies()[1] != t8 {
		t.Errorf("second swap: %d policies", n)
	}
}
