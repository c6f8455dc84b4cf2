package fastpath

import (
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

// sealed has A seal n numbered packets and returns the ESP frames.
func sealed(t *testing.T, p *gwPair, n int) [][]byte {
	t.Helper()
	for i := 0; i < n; i++ {
		p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 32, uint32(i)))
	}
	for p.aLAN.Pending() > 0 {
		p.a.Poll()
	}
	esp := collect(p.aWAN)
	if len(esp) != n {
		t.Fatalf("A sealed %d of %d", len(esp), n)
	}
	return esp
}

// feed gives B the frames and returns how many it delivered.
func feed(p *gwPair, frames [][]byte) int {
	for _, f := range frames {
		p.bWAN.Inject(f)
	}
	for p.bWAN.Pending() > 0 {
		p.b.Poll()
	}
	return len(collect(p.bLAN))
}

// TestInboundFence: an inbound SA of a cluster group decrypts nothing
// while its gate is closed, or open but not marked ready (a standby, a new
// owner whose windows do not hold the published tops yet): its packets are
// dropped as not_owner, counted on the worker and the SA, and its replay
// window does not move. Once ready, the window the node applied (the
// published top) is what refuses the packets the old owner accepted.
func TestInboundFence(t *testing.T) {
	p := newPair(t, pairOpts{})
	var g sad.Gate
	p.inB.SetGate(&g)
	esp := sealed(t, p, 10)

	// A standby: the gate is closed.
	if n := feed(p, esp); n != 0 {
		t.Fatalf("standby delivered %d packets of a group it does not own", n)
	}
	if d := p.b.Stats().Drops[sad.ErrNotOwner]; d != 10 {
		t.Fatalf("not_owner drops %d, want 10", d)
	}
	if d := p.inB.Counters.Drops[sad.ErrNotOwner].Load(); d != 10 {
		t.Fatalf("SA not_owner drops %d, want 10", d)
	}
	if top := p.inB.Replay.Top(); top != 0 || p.b.Stats().Counts[Decaps] != 0 {
		t.Fatalf("standby's window moved to %d (decaps %d)", top, p.b.Stats().Counts[Decaps])
	}

	// Taken (the gate open) but the tops not applied yet: still nothing.
	tk := g.Ticket()
	g.Open(sad.Now() + int64(time.Hour))
	if n := feed(p, esp[:2]); n != 0 {
		t.Fatalf("a new owner delivered %d before its windows were ready", n)
	}
	// The old owner had accepted up to 8 and published it; the new owner
	// applies it, then opens.
	p.inB.Replay.SeenUpTo(8)
	if !g.MarkReady(tk) {
		t.Fatal("MarkReady refused a current ticket")
	}
	if n := feed(p, esp); n != 2 {
		t.Fatalf("ready owner delivered %d, want 2 (9 and 10)", n)
	}
	if d := p.b.Stats().Drops[sad.ErrReplay]; d != 8 {
		t.Fatalf("replay drops %d, want 8 (what the old owner accepted)", d)
	}

	// Lost again: closed, and a ticket from before the close is stale.
	g.Close()
	more := sealed(t, p, 3)
	if n := feed(p, more); n != 0 {
		t.Fatalf("fenced node delivered %d", n)
	}
	g.Open(sad.Now() + int64(time.Hour))
	if g.MarkReady(tk) {
		t.Fatal("a ticket from before the Close made the group ready")
	}
	if n := feed(p, more); n != 0 {
		t.Fatalf("stale ticket: delivered %d", n)
	}
	// The deadline passing closes it by itself, ready or not.
	if !g.MarkReady(g.Ticket()) {
		t.Fatal("MarkReady refused")
	}
	g.Open(sad.Now() - 1)
	if n := feed(p, more); n != 0 {
		t.Fatalf("past its deadline: delivered %d", n)
	}

	// Refusing allocates nothing.
	p.bLAN.Sink = true
	k := 0
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < Batch; i++ {
			p.bWAN.Inject(more[k%len(more)])
			k++
		}
		p.b.Poll()
	})
	if allocs != 0 {
		t.Fatalf("the fence allocates %v per poll", allocs)
	}
	p.bLAN.Sink = false
	g.Open(sad.Now() + int64(time.Hour))
	if n := feed(p, more); n != 3 {
		t.Fatalf("open and ready again: delivered %d, want 3", n)
	}
	checkNoLeak(t, p)
}
