package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

// lateHop is a next hop that misses until it is resolved.
type lateHop struct {
	hop      Hop
	resolved atomic.Bool
	lookups  int
}

func (h *lateHop) Lookup(netip.Addr) (Hop, bool) {
	h.lookups++
	return h.hop, h.resolved.Load()
}

// TestHoldForNeighbour: packets whose next hop is not resolved yet are
// held, not dropped, and leave in order once it is: outbound (sealed,
// waiting for the peer's MAC) and inbound (opened, waiting for the LAN
// host's); a destination's share and the whole hold are bounded, the
// excess dropped and counted; held packets that wait too long are dropped
// as no_route and their frames come back; nothing allocates.
func TestHoldForNeighbour(t *testing.T) {
	for _, o := range []pairOpts{{}, {cross: true}, {udp: true, v6: true}} {
		p := newPair(t, o)
		wanA := &lateHop{hop: Hop{Src: macA, Dst: macB}}
		lanB := &lateHop{hop: Hop{Src: macB, Dst: macH}}
		p.a.cfg.WANHop, p.b.cfg.LANHop = wanA, lanB
		for i := 0; i < 3; i++ {
			p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, uint32(i)))
		}
		p.a.Poll()
		if n := len(collect(p.aWAN)); n != 0 {
			t.Fatalf("%+v: %d packets sent before the neighbour is known", o, n)
		}
		time.Sleep(2 * time.Millisecond)
		p.a.Poll() // still unresolved: still held
		wanA.resolved.Store(true)
		time.Sleep(2 * time.Millisecond)
		p.a.Poll()
		if n := carry(t, p.aWAN, p.bWAN); n != 3 {
			t.Fatalf("%+v: %d packets released, want 3: %+v", o, n, p.a.Stats())
		}
		p.b.Poll() // B's LAN host unresolved: held after decryption
		if n := len(collect(p.bLAN)); n != 0 {
			t.Fatalf("%+v: %d packets to an unresolved LAN host", o, n)
		}
		lanB.resolved.Store(true)
		time.Sleep(2 * time.Millisecond)
		p.b.Poll()
		got := collect(p.bLAN)
		if len(got) != 3 {
			t.Fatalf("%+v: %d packets at B's LAN, want 3: %+v", o, len(got), p.b.Stats())
		}
		for i, f := range got {
			if id := binary.BigEndian.Uint32(f[14+20+8:]); id != uint32(i) || !bytes.Equal(f[0:6], macH[:]) {
				t.Fatalf("%+v: packet %d is #%d to %x: out of order or misaddressed", o, i, id, f[0:6])
			}
		}
		sa, sb := p.a.Stats(), p.b.Stats()
		if sa.Counts[Held] != 3 || sa.Counts[Released] != 3 || sb.Counts[Held] != 3 || sb.Counts[Released] != 3 || sa.Drops[sad.ErrNoRoute] != 0 {
			t.Fatalf("%+v: counters A %+v B %+v", o, sa, sb)
		}
		if sb.Drops[sad.ErrReplay] != 0 || p.inB.Counters.Snapshot().Packets != 3 {
			t.Fatalf("%+v: held packets not accepted by B: %+v", o, sb)
		}

		// Traffic in clear (a BYPASS policy) is held the same way.
		wanA.resolved.Store(false)
		p.a.wanCache = hopCache{}
		p.aLAN.Inject(frame("198.18.1.1", "203.0.113.5", 64, 7))
		p.a.Poll()
		if n := len(collect(p.aWAN)); n != 0 {
			t.Fatalf("%+v: bypass sent before the neighbour is known", o)
		}
		wanA.resolved.Store(true)
		time.Sleep(2 * time.Millisecond)
		p.a.Poll()
		if got := collect(p.aWAN); len(got) != 1 || binary.BigEndian.Uint32(got[0][14+20+8:]) != 7 {
			t.Fatalf("%+v: held bypass packet not released: %d", o, len(got))
		}

		// Bounds: a destination holds pendingPerDst, the rest are dropped.
		wanA.resolved.Store(false)
		p.a.cfg.WANHop = wanA
		p.a.wanCache = hopCache{}
		for i := 0; i < 10; i++ {
			p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, uint32(i)))
		}
		p.a.Poll()
		s := p.a.Stats()
		if s.Counts[Held] != 4+pendingPerDst || s.Counts[HeldDrops] != uint64(10-pendingPerDst) || s.Drops[sad.ErrNoRoute] != uint64(10-pendingPerDst) {
			t.Fatalf("%+v: bounded hold: %+v", o, s)
		}
		// Expiry: never resolved, dropped after pendingWait (made past
		// here), frames back.
		if p.a.pending.n != pendingPerDst {
			t.Fatalf("%+v: %d held", o, p.a.pending.n)
		}
		for i := range p.a.pending.pk[:p.a.pending.n] {
			p.a.pending.pk[i].until = 0
		}
		time.Sleep(2 * time.Millisecond)
		p.a.Poll()
		if p.a.pending.n != 0 || len(collect(p.aWAN)) != 0 || p.a.Stats().Drops[sad.ErrNoRoute] != uint64(10) {
			t.Fatalf("%+v: expired packets still held or sent, or not counted: %+v", o, p.a.Stats())
		}
		checkNoLeak(t, p)

		// No allocations holding and releasing.
		p.aWAN.Sink = true
		f := frame("198.18.1.1", "198.18.2.2", 64, 1)
		allocs := testing.AllocsPerRun(50, func() {
			wanA.resolved.Store(false)
			p.a.wanCache = hopCache{}
			for i := 0; i < pendingPerDst; i++ {
				p.aLAN.Inject(f)
			}
			p.a.Poll()
			wanA.resolved.Store(true)
			p.a.pending.lastTry = 0
			p.a.Poll()
		})
		if allocs != 0 {
			t.Fatalf("%+v: hold and release allocate %v", o, allocs)
		}
	}
}

// TestHeldNotOvertaken: packets that find the neighbour known while older
// ones still wait for it (the hop resolved between two releases) go out
// after them, in sequence-number order, so the peer's replay window takes
// every one: a flood right after a restart used to send thousands of new
// packets before the held ones, which the peer then dropped as replays.
func TestHeldNotOvertaken(t *testing.T) {
	for _, o := range []pairOpts{{}, {cross: true}} {
		p := newPair(t, o)
		wanA := &lateHop{hop: Hop{Src: macA, Dst: macB}}
		p.a.cfg.WANHop = wanA
		for i := 0; i < 3; i++ {
			p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, uint32(i)))
		}
		p.a.Poll() // held: the neighbour is unknown
		wanA.resolved.Store(true)
		// The next batch finds the hop at once, before the release is due.
		for i := 3; i < 8; i++ {
			p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, uint32(i)))
		}
		p.a.Poll()
		p.a.Poll()
		wan := collect(p.aWAN)
		if len(wan) != 8 {
			t.Fatalf("%+v: %d ESP packets sent, want 8: %+v", o, len(wan), p.a.Stats())
		}
		var last uint32
		for i, f := range wan {
			seq := binary.BigEndian.Uint32(f[14+20+4:])
			if i > 0 && seq != last+1 {
				t.Fatalf("%+v: ESP packet %d has sequence number %d after %d: the held packets were overtaken", o, i, seq, last)
			}
			last = seq
		}
		for _, f := range wan {
			p.bWAN.Inject(f)
		}
		p.b.Poll()
		if sb := p.b.Stats(); sb.Drops[sad.ErrReplay] != 0 || p.inB.Counters.Snapshot().Packets != 8 {
			t.Fatalf("%+v: B took %d of 8, replay drops %d", o, p.inB.Counters.Snapshot().Packets, sb.Drops[sad.ErrReplay])
		}
		checkNoLeak(t, p)
	}
}
