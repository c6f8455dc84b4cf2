package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

var (
	macN    = [6]byte{2, 0, 0, 0, 0, 0xc} // the new owner's MACs
	macNLAN = [6]byte{2, 0, 0, 0, 0, 0xd}
	macBLAN = [6]byte{2, 0, 0, 0, 0, 0xe}
)

// askedHop is a StaticHop that records what it was asked.
type askedHop struct {
	StaticHop
	asked map[netip.Addr]int
}

func (h *askedHop) Lookup(dst netip.Addr) (Hop, bool) {
	h.asked[dst]++
	return h.StaticHop.Lookup(dst)
}

// handover is newPair's B (the group's owner) and a second node N that
// carries the same group's SAs (its own copies), each node with its gate.
type handover struct {
	*gwPair
	n          *Worker
	nLAN, nWAN *MemPort
	nIn, nOut  *sad.SA
	gB, gN     sad.Gate
	nLANHop    *askedHop
	nWANHop    *askedHop
}

func openReady(g *sad.Gate) {
	tk := g.Ticket()
	g.Open(sad.Now() + int64(time.Hour))
	g.MarkReady(tk)
}

func newHandover(t *testing.T) *handover {
	h := &handover{gwPair: newPair(t, pairOpts{})}
	h.inB.SetGate(&h.gB)
	h.saBA.SetGate(&h.gB)
	o := pairOpts{suite: "aes128gcm16"}
	h.nIn = mkSA(t, 0x1001, sad.Inbound, "192.0.2.2", "192.0.2.1", o, h.inB.Selectors)
	h.nOut = mkSA(t, 0x2002, sad.Outbound, "192.0.2.2", "192.0.2.1", o, h.saBA.Selectors)
	h.nIn.SetGate(&h.gN)
	h.nOut.SetGate(&h.gN)
	tab := sad.NewTable(0)
	tab.Add(h.nIn)
	d := spd.New()
	var ps []*spd.Policy
	for _, s := range h.nOut.Selectors {
		pol := &spd.Policy{Name: "site", Selector: s, Action: spd.Protect}
		pol.SA.Store(h.nOut)
		ps = append(ps, pol)
	}
	if err := d.Replace(ps); err != nil {
		t.Fatal(err)
	}
	pl := NewMemPool(1024)
	h.nLAN, h.nWAN = pl.Port(512), pl.Port(512)
	h.nLANHop = &askedHop{StaticHop{Src: macNLAN, Dst: macH}, map[netip.Addr]int{}}
	h.nWANHop = &askedHop{StaticHop{Src: macN, Dst: macA}, map[netip.Addr]int{}}
	h.n = NewWorker(1, Config{LAN: h.nLAN, WAN: h.nWAN, Inbound: tab, SPD: d,
		LANHop: h.nLANHop, WANHop: h.nWANHop, GateHold: int64(time.Hour), OwnMAC: [2][6]byte{macN, macNLAN}})
	h.b.cfg.GateHold = int64(time.Hour)
	openReady(&h.gB)
	return h
}

// ids are the tags of the plaintext frames f.
func ids(fs [][]byte) []uint32 {
	var out []uint32
	for _, f := range fs {
		out = append(out, binary.BigEndian.Uint32(f[14+28:]))
	}
	return out
}

// TestGateHandover: a group moves from B to N with no packet lost and
// none opened twice. B, having handed the group over, forwards the frames
// that still reach it (ESP from the WAN, plaintext from the LAN) to N's
// MACs unopened; N holds them until its gate is ready, then processes them
// first, with the old owner's final top in its window. A frame not sent to
// N's MAC (flooded by a bridge) is dropped, not held; a frame a cluster
// node sent is never forwarded again; a held frame that waits too long, or
// finds the hold full, is dropped as not_owner; none of it allocates.
func TestGateHandover(t *testing.T) {
	h := newHandover(t)
	esp := sealed(t, h.gwPair, 10)
	if n := feed(h.gwPair, esp[:4]); n != 4 {
		t.Fatalf("owner delivered %d of 4", n)
	}
	h.bLAN.Inject(frame("198.18.2.2", "198.18.1.1", 32, 99))
	h.b.Poll()
	if n := len(collect(h.bWAN)); n != 1 {
		t.Fatalf("owner sealed %d of 1", n)
	}

	// The move: B forwards to N from the moment its gate closes.
	h.gB.SetForward(&sad.Forward{To: [2][6]byte{macN, macNLAN}, Self: [2][6]byte{macB, macBLAN},
		Until: sad.Now() + int64(time.Hour), Nodes: [][6]byte{macB, macBLAN, macN, macNLAN}})
	h.gB.Close()
	for _, f := range esp[4:8] {
		h.bWAN.Inject(f)
	}
	for i := 0; i < 3; i++ {
		h.bLAN.Inject(frame("198.18.2.2", "198.18.1.1", 32, uint32(100+i)))
	}
	h.b.Poll()
	k := 0
	h.bWAN.Drain(func(f []byte) {
		if !bytes.Equal(f[0:6], macN[:]) || !bytes.Equal(f[6:12], macB[:]) || !bytes.Equal(f[12:], esp[4+k][12:]) {
			t.Fatalf("forwarded ESP frame %d: to %x from %x, or changed beyond its MACs", k, f[0:6], f[6:12])
		}
		k++
		h.nWAN.Inject(f)
	})
	lan := collect(h.bLAN)
	for i, f := range lan {
		if !bytes.Equal(f[0:6], macNLAN[:]) || !bytes.Equal(f[6:12], macBLAN[:]) {
			t.Fatalf("B sent a LAN frame to %x from %x after handing the group over", f[0:6], f[6:12])
		}
		if got := binary.BigEndian.Uint32(f[14+28:]); got != uint32(100+i) {
			t.Fatalf("forwarded LAN frame %d is #%d", i, got)
		}
		h.nLAN.Inject(f)
	}
	s := h.b.Stats()
	if k != 4 || len(lan) != 3 || s.Counts[GateForwarded] != 7 || h.inB.Counters.Packets.Load() != 4 || h.saBA.Seq() != 1 {
		t.Fatalf("forwarded %d ESP, %d LAN (counter %d); B opened %d, sealed %d after the move",
			k, len(lan), s.Counts[GateForwarded], h.inB.Counters.Packets.Load(), h.saBA.Seq())
	}

	// N is not ready yet: it holds them, opens and seals nothing. Its own
	// stale forward (to B) does not send B's frames back.
	h.gN.SetForward(&sad.Forward{To: [2][6]byte{macB, macBLAN}, Self: [2][6]byte{macN, macNLAN},
		Until: sad.Now() + int64(time.Hour), Nodes: [][6]byte{macB, macBLAN, macN, macNLAN}})
	tk := h.gN.Ticket()
	// A copy the bridge flooded to N (sent to B's MAC) is not N's to hold.
	h.nWAN.Inject(esp[5])
	h.n.Poll()
	if n, m := len(collect(h.nLAN)), len(collect(h.nWAN)); n != 0 || m != 0 {
		t.Fatalf("N sent %d LAN and %d WAN frames before its gate was ready", n, m)
	}
	if s := h.n.Stats(); s.Counts[GateHeld] != 7 || s.Counts[GateForwarded] != 0 || h.nIn.Replay.Top() != 0 {
		t.Fatalf("N held %d, forwarded %d, window top %d", s.Counts[GateHeld], s.Counts[GateForwarded], h.nIn.Replay.Top())
	}
	// While it holds them, N warms the next hops it will need: the LAN
	// host that sent (it gets the replies), the peer (ESP's source, and
	// the outbound SA's remote).
	peer, host := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.18.2.2")
	if h.nWANHop.asked[peer] == 0 || h.nLANHop.asked[host] == 0 {
		t.Fatalf("N did not warm its next hops while holding: WAN %v LAN %v", h.nWANHop.asked, h.nLANHop.asked)
	}

	// N takes the group: the old owner's final top (4) in its window, its
	// gate open, ready. Its next poll processes the held frames first.
	h.nIn.Replay.SeenUpTo(4)
	h.gN.Open(sad.Now() + int64(time.Hour))
	h.gN.MarkReady(tk)
	h.gN.SetForward(nil)
	for _, f := range esp[8:] { // the peer's frames now reach N directly
		h.nWAN.Inject(f)
	}
	for i := 0; i < 2; i++ {
		h.nLAN.Inject(frame("198.18.2.2", "198.18.1.1", 32, uint32(103+i)))
	}
	h.n.Poll()
	h.n.Poll()
	var got []uint32
	var sealedN [][]byte
	h.nLAN.Drain(func(f []byte) { got = append(got, binary.BigEndian.Uint32(f[14+28:])) })
	h.nWAN.Drain(func(f []byte) { sealedN = append(sealedN, append([]byte(nil), f...)) })
	if len(got) != 6 {
		t.Fatalf("N delivered %v, want the 6 ESP packets 4..9 (stats %+v)", got, h.n.Stats())
	}
	for i, id := range got {
		if id != uint32(4+i) {
			t.Fatalf("N delivered %v, want 4..9 in order", got)
		}
	}
	if len(sealedN) != 5 || h.nOut.Seq() != 5 {
		t.Fatalf("N sealed %d (seq %d), want 5", len(sealedN), h.nOut.Seq())
	}
	// The peer opens them all, in order: 100..104.
	for _, f := range sealedN {
		h.aWAN.Inject(f)
	}
	for h.aWAN.Pending() > 0 {
		h.a.Poll()
	}
	want := []uint32{100, 101, 102, 103, 104}
	if g := ids(collect(h.aLAN)); !slices.Equal(g, want) {
		t.Fatalf("the peer got %v, want %v", g, want)
	}
	if s := h.n.Stats(); s.Counts[GateReleased] != 7 || s.Drops[sad.ErrNotOwner] != 1 {
		t.Fatalf("N released %d, not_owner drops %d", s.Counts[GateReleased], s.Drops[sad.ErrNotOwner])
	}
	// The replayed ESP (B's and N's) is refused by N's window.
	if n := feedTo(h.n, h.nWAN, h.nLAN, esp); n != 0 {
		t.Fatalf("N delivered %d replayed packets", n)
	}
	checkNoLeak(t, h.gwPair)
}

// TestGateHoldBounds: a node that is not ready holds at most gateHoldMax
// frames, drops the rest and those held past GateHold as not_owner, and
// neither holding nor forwarding allocates.
func TestGateHoldBounds(t *testing.T) {
	h := newHandover(t)
	esp := sealed(t, h.gwPair, 4)
	for _, f := range esp {
		copy(f[0:6], macN[:]) // the peer sends to N
	}
	h.n.cfg.GateHold = int64(20 * time.Millisecond)
	for i := 0; i < gateHoldMax+10; i++ {
		h.nWAN.Inject(esp[i%4])
		if i%Batch == Batch-1 {
			h.n.Poll()
		}
	}
	h.n.Poll()
	s := h.n.Stats()
	if s.Counts[GateHeld] != gateHoldMax || s.Drops[sad.ErrNotOwner] != 10 {
		t.Fatalf("held %d, dropped %d; want %d and 10", s.Counts[GateHeld], s.Drops[sad.ErrNotOwner], gateHoldMax)
	}
	time.Sleep(30 * time.Millisecond)
	h.n.Poll()
	if s := h.n.Stats(); s.Drops[sad.ErrNotOwner] != gateHoldMax+10 || h.n.ghold.n != 0 {
		t.Fatalf("after the hold time: not_owner drops %d, still held %d", s.Drops[sad.ErrNotOwner], h.n.ghold.n)
	}
	if h.nIn.Replay.Top() != 0 || len(collect(h.nLAN)) != 0 {
		t.Fatal("held frames were opened")
	}
	// Holding and expiring, then forwarding, allocate nothing.
	h.n.cfg.GateHold = 1
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < Batch; i++ {
			h.nWAN.Inject(esp[i%4])
		}
		h.n.Poll()
	})
	if allocs != 0 {
		t.Fatalf("holding allocates %v per poll", allocs)
	}
	h.gN.SetForward(&sad.Forward{To: [2][6]byte{macB, macBLAN}, Self: [2][6]byte{macN, macNLAN}, Until: sad.Now() + int64(time.Hour)})
	h.nWAN.Sink = true
	allocs = testing.AllocsPerRun(50, func() {
		for i := 0; i < Batch; i++ {
			h.nWAN.Inject(esp[i%4])
		}
		h.n.Poll()
	})
	if allocs != 0 {
		t.Fatalf("forwarding allocates %v per poll", allocs)
	}
	h.nWAN.Sink = false
	checkNoLeak(t, h.gwPair)
}

// feedTo gives a worker's WAN port the frames and returns how many it
// delivered on its LAN port.
func feedTo(w *Worker, wan, lan *MemPort, frames [][]byte) int {
	for _, f := range frames {
		wan.Inject(f)
	}
	for wan.Pending() > 0 {
		w.Poll()
	}
	return len(collect(lan))
}
