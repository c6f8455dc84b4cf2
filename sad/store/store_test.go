package store

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

func sel(src, dst string) sad.Selector {
	return sad.Selector{Src: netip.MustParsePrefix(src), Dst: netip.MustParsePrefix(dst)}
}

// newSA makes an SA whose keys are not zero, so that wiping shows.
func newSA(t testing.TB, spi uint32, dir sad.Direction, reqID uint32) *sad.SA {
	t.Helper()
	key := make([]byte, 20)
	for i := range key {
		key[i] = byte(i + 1)
	}
	sa, err := sad.New(sad.Config{
		SPI: spi, Dir: dir, Mode: sad.Tunnel, ReqID: reqID, Name: fmt.Sprintf("c%d", reqID),
		Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
		Suite: sad.AESGCM128, Key: key,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func wiped(sa *sad.SA) bool { return sa.Crypto.Salt == [4]byte{} }

// recMirror records the mirror calls, and with each what the data plane
// looked like at that moment.
type recMirror struct {
	log  []string
	at   func(op string) // called at each operation, before it is logged
	fail map[uint32]bool // SPIs whose live set fails
}

func (m *recMirror) SetSPILive(spi uint32, live bool) error {
	op := fmt.Sprintf("live %08x %v", spi, live)
	if m.at != nil {
		m.at(op)
	}
	m.log = append(m.log, op)
	if live && m.fail[spi] {
		return fmt.Errorf("map full")
	}
	return nil
}

func (m *recMirror) SyncPolicies() error {
	if m.at != nil {
		m.at("sync")
	}
	m.log = append(m.log, "sync")
	return nil
}

var (
	v4 = sel("198.18.1.0/24", "198.18.2.0/24")
	v6 = sel("2001:db8:a::/64", "2001:db8:b::/64")
)

// testStore has two traps (v4 tagged "net", v6 untagged) after one
// static BYPASS policy.
func testStore(t *testing.T, m Mirror) (*Store, *spd.Policy, *spd.Policy) {
	t.Helper()
	t4 := &spd.Policy{Name: "trap4", Selector: v4, Action: spd.Protect}
	t6 := &spd.Policy{Name: "trap6", Selector: v6, Action: spd.Protect}
	by := &spd.Policy{Name: "mgmt", Selector: sel("198.18.9.0/24", "198.18.10.0/24"), Action: spd.Bypass}
	s, err := New(Config{Hint: 4, Policies: []*spd.Policy{by}, Traps: []Trap{{t4, "net"}, {t6, nil}}, Mirror: m})
	if err != nil {
		t.Fatal(err)
	}
	return s, t4, t6
}

func TestInstallDeleteOrder(t *testing.T) {
	m := &recMirror{}
	s, t4, t6 := testStore(t, m)
	in1, out1 := newSA(t, 0x1111, sad.Inbound, 1), newSA(t, 0x2222, sad.Outbound, 1)
	// The inbound SA is in the table when the XDP program is told to
	// steer its SPI (else its first packets meet no SA).
	m.at = func(op string) {
		if op == "live 00001111 true" && s.Inbound().Lookup(0x1111) != in1 {
			t.Error("SPI made live before the SA is in the table")
		}
	}
	if err := s.Install(in1, Negotiated, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Install(out1, Negotiated, []sad.Selector{v4, v6}); err != nil {
		t.Fatal(err)
	}
	if t4.SA.Load() != out1 || t6.SA.Load() != out1 {
		t.Fatal("traps not bound to the first SA")
	}
	if s.Install(newSA(t, 0x2222, sad.Outbound, 1), Negotiated, nil) == nil {
		t.Error("a second outbound SA with the same SPI accepted")
	}

	// A rekey as one diff, listed in the worst order: RFC 7296 §2.8
	// wants the new inbound SA live before the outbound side switches,
	// and the old SAs gone only after.
	in2, out2 := newSA(t, 0x3333, sad.Inbound, 1), newSA(t, 0x4444, sad.Outbound, 1)
	var seen []string
	m.at = func(op string) {
		cur := t4.SA.Load()
		seen = append(seen, fmt.Sprintf("%s out=%08x in1=%v in2=%v", op, cur.SPI,
			s.Inbound().Lookup(0x1111) != nil, s.Inbound().Lookup(0x3333) != nil))
	}
	err := s.Apply(Diff{
		Delete:  []Key{{0x1111, sad.Inbound, Negotiated}, {0x2222, sad.Outbound, Negotiated}},
		Install: []Change{{out2, Negotiated, []sad.Selector{v4, v6}}, {in2, Negotiated, nil}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"live 00003333 true out=00002222 in1=true in2=true",   // new inbound first, old outbound still sends
		"live 00001111 false out=00004444 in1=false in2=true", // old inbound last, after the switch
	}
	if !slices.Equal(seen, want) {
		t.Errorf("rekey order\n got %q\nwant %q", seen, want)
	}
	if t4.SA.Load() != out2 || t6.SA.Load() != out2 {
		t.Error("policies not on the new SA")
	}
	if !out1.Dead() || !in1.Dead() || out2.Dead() || in2.Dead() {
		t.Error("old SAs not killed, or new ones killed")
	}
	// Make-before-break by hand (the engine's way): deleting the old
	// outbound SA after the new one is up leaves the policies alone.
	out3 := newSA(t, 0x5555, sad.Outbound, 1)
	if err := s.Install(out3, Negotiated, []sad.Selector{v4, v6}); err != nil {
		t.Fatal(err)
	}
	if sa, err := s.Delete(Key{0x4444, sad.Outbound, Negotiated}); err != nil || sa != out2 {
		t.Fatal(sa, err)
	}
	if t4.SA.Load() != out3 {
		t.Error("deleting the old SA unhooked the new one")
	}
	// The last outbound SA goes: the traps stay, PROTECT with no SA.
	if _, err := s.Delete(Key{0x5555, sad.Outbound, Negotiated}); err != nil {
		t.Fatal(err)
	}
	if t4.SA.Load() != nil || t6.SA.Load() != nil || s.SPD().Len() != 3 {
		t.Errorf("after the last delete: %v %v, %d policies", t4.SA.Load(), t6.SA.Load(), s.SPD().Len())
	}
	if _, err := s.Delete(Key{0x5555, sad.Outbound, Negotiated}); err == nil {
		t.Error("deleted an SA twice")
	}
}

func TestInstallMirrorFails(t *testing.T) {
	m := &recMirror{fail: map[uint32]bool{0x1111: true}}
	s, _, _ := testStore(t, m)
	sa := newSA(t, 0x1111, sad.Inbound, 1)
	if err := s.Install(sa, Negotiated, nil); err == nil {
		t.Fatal("install succeeded with a failing mirror")
	}
	if s.Inbound().Lookup(0x1111) != nil || s.Lookup(Key{0x1111, sad.Inbound, Negotiated}) != nil {
		t.Error("failed SA left in the table")
	}
	// It was in the table for a moment: it retires like a deleted one.
	if !sa.Dead() || wiped(sa) || s.Retired() != 1 {
		t.Errorf("dead %v wiped %v retired %d", sa.Dead(), wiped(sa), s.Retired())
	}
}

func TestReqIDBinding(t *testing.T) {
	s, t4, t6 := testStore(t, &recMirror{})
	// ReqID 1 binds the v4 trap; ReqID 2 has the same selector, and the
	// trap is taken: it gets a policy of its own, first in the SPD.
	a := newSA(t, 0x2001, sad.Outbound, 1)
	if err := s.Install(a, Negotiated, []sad.Selector{v4}); err != nil {
		t.Fatal(err)
	}
	b := newSA(t, 0x2002, sad.Outbound, 2)
	if err := s.Install(b, Negotiated, []sad.Selector{v4}); err != nil {
		t.Fatal(err)
	}
	if t4.SA.Load() != a || t6.SA.Load() != nil {
		t.Fatalf("trap4 %v trap6 %v", t4.SA.Load(), t6.SA.Load())
	}
	pb := s.Bound(2)
	if len(pb) != 1 || pb[0] == t4 || pb[0].SA.Load() != b || pb[0].ReqID != 2 || s.SPD().Policies()[0] != pb[0] {
		t.Fatalf("ReqID 2 bound to %+v", pb)
	}
	// Narrowed: a host inside the trap's selector, first in order.
	c := newSA(t, 0x2003, sad.Outbound, 3)
	narrow := sel("198.18.1.0/24", "198.18.2.7/32")
	if err := s.Install(c, Negotiated, []sad.Selector{narrow}); err != nil {
		t.Fatal(err)
	}
	if s.SPD().Len() != 5 || s.SPD().Policies()[0].SA.Load() != c {
		t.Fatalf("narrowed policy not first: %d policies", s.SPD().Len())
	}
	// When a ReqID's last SA goes, the policies made for it go; traps stay.
	for _, spi := range []uint32{0x2002, 0x2003} {
		if _, err := s.Delete(Key{spi, sad.Outbound, Negotiated}); err != nil {
			t.Fatal(err)
		}
	}
	if s.SPD().Len() != 3 || s.Bound(2) != nil || s.Bound(3) != nil || t4.SA.Load() != a {
		t.Errorf("after deletes: %d policies, trap4 on %v", s.SPD().Len(), t4.SA.Load())
	}
	// A trap released by its ReqID is free for the next one.
	if _, err := s.Delete(Key{0x2001, sad.Outbound, Negotiated}); err != nil {
		t.Fatal(err)
	}
	d := newSA(t, 0x2004, sad.Outbound, 4)
	if err := s.Install(d, Negotiated, []sad.Selector{v4}); err != nil {
		t.Fatal(err)
	}
	if t4.SA.Load() != d || s.SPD().Len() != 3 {
		t.Error("a released trap was not bound again")
	}
	// Traps: a covered selector switches the trap's acquires on; another
	// gets a policy at the end, tagged.
	if err := s.InstallTrap(9, []sad.Selector{narrow, sel("10.0.0.0/8", "10.1.0.0/16")}, func(sad.Selector) (any, bool) { return "other", true }); err != nil {
		t.Fatal(err)
	}
	if !t4.Acquire.Load() {
		t.Error("the covering trap raises no acquires")
	}
	ps := s.SPD().Policies()
	last := ps[len(ps)-1]
	if tag, ok := s.TrapTag(last); !ok || tag != "other" || !last.Acquire.Load() {
		t.Errorf("added trap: tag %v %v", tag, ok)
	}
	if tag, ok := s.TrapTag(t4); !ok || tag != "net" {
		t.Errorf("configured trap's tag %v", tag)
	}
	if _, ok := s.TrapTag(t6); ok {
		t.Error("untagged trap has a tag")
	}
}

func TestStaticSameDoor(t *testing.T) {
	out := newSA(t, 0x1001, sad.Outbound, 0)
	pol := &spd.Policy{Name: "p", Selector: v4, Action: spd.Protect}
	pol.SA.Store(out)
	s, err := New(Config{Policies: []*spd.Policy{pol}})
	if err != nil {
		t.Fatal(err)
	}
	in := newSA(t, 0x2001, sad.Inbound, 0)
	for _, sa := range []*sad.SA{out, in} {
		if err := s.Install(sa, Static, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A peer may pick an outbound SPI a static SA has.
	neg := newSA(t, 0x1001, sad.Outbound, 5)
	if err := s.Install(neg, Negotiated, []sad.Selector{v6}); err != nil {
		t.Fatal(err)
	}
	if got := s.SAs(Static); len(got) != 2 || got[0] != in || got[1] != out {
		t.Errorf("static SAs %v", got)
	}
	// An inbound SPI is the table's: one SA, whatever its origin.
	if s.Install(newSA(t, 0x2001, sad.Inbound, 5), Negotiated, nil) == nil {
		t.Error("a negotiated inbound SA took a static one's SPI")
	}
	if _, err := s.Delete(Key{0x1001, sad.Outbound, Static}); err != nil {
		t.Fatal(err)
	}
	if pol.SA.Load() != nil || !out.Dead() || neg.Dead() {
		t.Error("deleting the static SA did not unhook it, or hit the negotiated one")
	}
}

func TestExpiring(t *testing.T) {
	s, _, _ := testStore(t, nil)
	sa := newSA(t, 0x1111, sad.Inbound, 1)
	if err := s.Install(sa, Negotiated, nil); err != nil {
		t.Fatal(err)
	}
	if e := s.Expiring(Negotiated, sa.Created); len(e) != 0 {
		t.Fatalf("fresh SA expiring: %+v", e)
	}
	sa.Kill() // not an expiry
	if e := s.Expiring(Static, sa.Created); len(e) != 0 {
		t.Fatalf("negotiated SA reported as static: %+v", e)
	}
}

func TestGraceQuiescent(t *testing.T) {
	s, _, _ := testStore(t, nil)
	g := s.Grace()
	busy, idle := g.Register(), g.Register()
	busy.Quiesce() // in a poll, may hold what it looks up
	sa := newSA(t, 0x1111, sad.Inbound, 1)
	if err := s.Install(sa, Negotiated, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(Key{0x1111, sad.Inbound, Negotiated}); err != nil {
		t.Fatal(err)
	}
	// The busy worker has not passed the epoch of the delete: the keys
	// stay, however often the reclaimer asks. The idle one (offline since
	// it registered, as one blocked in poll(2)) does not hold it up.
	for range 3 {
		if n := s.Reclaim(); n != 0 || wiped(sa) {
			t.Fatalf("reclaimed %d while a worker may hold the SA", n)
		}
	}
	if !sa.Dead() {
		t.Error("retired SA not killed")
	}
	busy.Quiesce() // next poll: holds nothing from before
	if n := s.Reclaim(); n != 1 || !wiped(sa) || s.Retired() != 0 {
		t.Fatalf("reclaimed %d, wiped %v after every worker passed", n, wiped(sa))
	}

	// A worker that parks (offline before poll(2)) releases what it held.
	busy.Offline()
	sa2 := newSA(t, 0x2222, sad.Inbound, 1)
	s.Install(sa2, Negotiated, nil)
	idle.Quiesce()
	s.Delete(Key{0x2222, sad.Inbound, Negotiated})
	if s.Reclaim() != 0 {
		t.Fatal("reclaimed while the idle worker was in a poll")
	}
	idle.Offline()
	if s.Reclaim() != 1 || !wiped(sa2) {
		t.Fatal("a parked worker held reclamation up")
	}
	// A worker that quiesced after the delete never held it.
	sa3 := newSA(t, 0x3333, sad.Inbound, 1)
	s.Install(sa3, Negotiated, nil)
	s.Delete(Key{0x3333, sad.Inbound, Negotiated})
	busy.Quiesce()
	idle.Quiesce()
	if s.Reclaim() != 1 {
		t.Fatal("not reclaimed after both workers passed")
	}
	// An unregistered worker does not count.
	sa4 := newSA(t, 0x4444, sad.Inbound, 1)
	s.Install(sa4, Negotiated, nil)
	s.Delete(Key{0x4444, sad.Inbound, Negotiated})
	g.Unregister(busy)
	g.Unregister(idle)
	if s.Reclaim() != 1 {
		t.Fatal("an unregistered worker held reclamation up")
	}
}

// TestGraceConcurrent runs workers that look SAs up and read their keys
// while the control side installs, deletes and reclaims: a worker never
// sees wiped keys on an SA it found in its current poll (and the race
// detector sees no unordered access to them).
func TestGraceConcurrent(t *testing.T) {
	s, t4, _ := testStore(t, nil)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad, reads atomic.Int64
	for w := range 3 {
		r := s.Grace().Register()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Offline()
			for i := 0; !stop.Load(); i++ {
				r.Quiesce()
				for spi := uint32(0x100); spi < 0x108; spi++ {
					if sa := s.Inbound().Lookup(spi); sa != nil {
						reads.Add(1)
						if wiped(sa) {
							bad.Add(1)
						}
					}
				}
				if sa := t4.SA.Load(); sa != nil && wiped(sa) {
					bad.Add(1)
				}
				if (i+w)%7 == 0 {
					r.Offline() // parks now and then
				}
			}
		}()
	}
	for i := range 2000 {
		spi := uint32(0x100 + i%8)
		in, out := newSA(t, spi, sad.Inbound, 1), newSA(t, spi|0x1000, sad.Outbound, 1)
		if err := s.Install(in, Negotiated, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Install(out, Negotiated, []sad.Selector{v4}); err != nil {
			t.Fatal(err)
		}
		s.Delete(Key{spi, sad.Inbound, Negotiated})
		s.Delete(Key{spi | 0x1000, sad.Outbound, Negotiated})
		s.Reclaim()
	}
	stop.Store(true)
	wg.Wait()
	s.Reclaim()
	if bad.Load() != 0 {
		t.Fatalf("%d reads of wiped keys (%d reads)", bad.Load(), reads.Load())
	}
	if s.Retired() != 0 {
		t.Errorf("%d SAs still retired after the workers went offline", s.Retired())
	}
}

func TestSnapshotDiffWatch(t *testing.T) {
	a, _, _ := testStore(t, nil)
	sas := []*sad.SA{
		newSA(t, 0x1111, sad.Inbound, 1), newSA(t, 0x2222, sad.Outbound, 1),
		newSA(t, 0x3333, sad.Inbound, 2), newSA(t, 0x4444, sad.Outbound, 2),
	}
	sels := map[uint32][]sad.Selector{0x2222: {v4, v6}, 0x4444: {sel("198.18.1.0/24", "198.18.2.9/32")}}
	for _, sa := range sas {
		if err := a.Install(sa, Negotiated, sels[sa.SPI]); err != nil {
			t.Fatal(err)
		}
	}
	snapA := a.Snapshot()
	if snapA.Gen != 4 || len(snapA.SAs) != 4 || len(snapA.Policies) != 4 || len(snapA.Bound) != 2 {
		t.Fatalf("snapshot gen %d, %d SAs, %d policies, %d bindings", snapA.Gen, len(snapA.SAs), len(snapA.Policies), len(snapA.Bound))
	}

	// A second store (a cluster peer, or the state after a reload) gets
	// A's state as one diff, with SAs of its own.
	b, _, _ := testStore(t, nil)
	ev, cancel := b.Watch(16)
	d := b.Snapshot().Diff(snapA)
	if len(d.Install) != 4 || len(d.Delete) != 0 {
		t.Fatalf("diff %+v", d)
	}
	for i, c := range d.Install {
		d.Install[i].SA = newSA(t, c.SA.SPI, c.SA.Dir, c.SA.ReqID)
	}
	if err := b.Apply(d); err != nil {
		t.Fatal(err)
	}
	snapB := b.Snapshot()
	keys := func(s Snapshot) []Key {
		var k []Key
		for _, e := range s.SAs {
			k = append(k, e.Key)
		}
		return k
	}
	if !slices.Equal(keys(snapA), keys(snapB)) || len(snapB.Policies) != len(snapA.Policies) || len(snapB.Bound) != 2 {
		t.Errorf("round trip: %v vs %v, %d policies", keys(snapA), keys(snapB), len(snapB.Policies))
	}
	if d := snapB.Diff(snapA); len(d.Install)+len(d.Delete) != 0 {
		t.Errorf("stores differ after the diff: %+v", d)
	}
	// One event per change, inbound installs first, all of one generation.
	var got []string
	for range 4 {
		e := <-ev
		if e.Gen != snapB.Gen || e.Kind != Installed {
			t.Errorf("event %+v, want gen %d installed", e, snapB.Gen)
		}
		got = append(got, fmt.Sprintf("%s %08x", e.Key.Dir, e.Key.SPI))
	}
	if want := []string{"in 00001111", "in 00003333", "out 00002222", "out 00004444"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	// Back to empty: deletes, outbound first.
	if err := b.Apply(snapB.Diff(Snapshot{})); err != nil {
		t.Fatal(err)
	}
	if n := len(b.Snapshot().SAs); n != 0 || b.SPD().Len() != 3 {
		t.Errorf("after the reverse diff: %d SAs, %d policies", n, b.SPD().Len())
	}
	if e := <-ev; e.Kind != Deleted || e.Key.Dir != sad.Outbound || e.Name == "" {
		t.Errorf("first delete event %+v", e)
	}
	cancel()
	for range ev {
	}
}

func TestApplyAllOrNothing(t *testing.T) {
	s, t4, _ := testStore(t, &recMirror{fail: map[uint32]bool{0x3333: true}})
	old := newSA(t, 0x1111, sad.Inbound, 1)
	if err := s.Install(old, Negotiated, nil); err != nil {
		t.Fatal(err)
	}
	gen := s.Gen()
	// A duplicate: refused before anything changes.
	dup, fresh := newSA(t, 0x1111, sad.Inbound, 2), newSA(t, 0x2222, sad.Outbound, 2)
	if s.Apply(Diff{Install: []Change{{fresh, Negotiated, []sad.Selector{v4}}, {dup, Negotiated, nil}}}) == nil {
		t.Fatal("applied a diff with a duplicate")
	}
	if s.Gen() != gen || t4.SA.Load() != nil || !wiped(fresh) {
		t.Error("a refused diff changed the store, or kept the keys it was given")
	}
	if s.Apply(Diff{Delete: []Key{{0x9999, sad.Inbound, Negotiated}}}) == nil {
		t.Error("applied a delete of nothing")
	}
	// An install fails half-way (the mirror): the installs before it are
	// undone and the deletes not made.
	in, bad, out := newSA(t, 0x2001, sad.Inbound, 3), newSA(t, 0x3333, sad.Inbound, 3), newSA(t, 0x2002, sad.Outbound, 3)
	err := s.Apply(Diff{
		Install: []Change{{in, Negotiated, nil}, {bad, Negotiated, nil}, {out, Negotiated, []sad.Selector{v4}}},
		Delete:  []Key{{0x1111, sad.Inbound, Negotiated}},
	})
	if err == nil {
		t.Fatal("diff applied with a failing install")
	}
	if s.Inbound().Lookup(0x2001) != nil || s.Inbound().Lookup(0x1111) != old || t4.SA.Load() != nil || old.Dead() {
		t.Error("a failed diff left changes behind")
	}
	if s.Gen() != gen {
		t.Errorf("generation moved: %d -> %d", gen, s.Gen())
	}
}

func TestWatchOverflow(t *testing.T) {
	s, _, _ := testStore(t, nil)
	ev, cancel := s.Watch(1)
	defer cancel()
	for spi := uint32(0x101); spi <= 0x103; spi++ {
		if err := s.Install(newSA(t, spi, sad.Inbound, 1), Negotiated, nil); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range ev {
		n++
	}
	if n != 1 {
		t.Errorf("%d events before the lagging watcher was dropped, want 1", n)
	}
}

func TestMove(t *testing.T) {
	s, t4, _ := testStore(t, nil)
	old := newSA(t, 0x2222, sad.Outbound, 1)
	if err := s.Install(old, Negotiated, []sad.Selector{v4}); err != nil {
		t.Fatal(err)
	}
	sa, err := s.Move(0x2222, old.Local, netip.MustParseAddr("203.0.113.9"), sad.UDPEncap{SrcPort: 4500, DstPort: 61000})
	if err != nil {
		t.Fatal(err)
	}
	if t4.SA.Load() != sa || !old.Dead() || s.Retired() != 0 || wiped(sa) {
		t.Error("move did not swap, or retired the shared keys")
	}
	if s.Lookup(Key{0x2222, sad.Outbound, Negotiated}) != sa {
		t.Error("store still holds the old SA")
	}
}

// TestQuiesceZeroAllocs: the workers' per-poll hook allocates nothing.
func TestQuiesceZeroAllocs(t *testing.T) {
	g := NewGrace()
	r := g.Register()
	if n := testing.AllocsPerRun(1000, func() {
		r.Quiesce()
		g.Advance()
		r.Quiesce()
		r.Offline()
	}); n != 0 {
		t.Fatalf("%v allocations per poll", n)
	}
}
