package sad

import (
	"net/netip"
	"testing"
	"time"
)

// TestGate: a gated SA hands out sequence numbers only while its gate is
// open, stops by itself when the deadline passes, and its moved copy keeps
// the gate.
func TestGate(t *testing.T) {
	sa := natSA(t, 0x501)
	var g Gate
	sa.SetGate(&g)
	if _, n := sa.ReserveSeq(4); n != 0 {
		t.Fatal("closed gate: numbers handed out")
	}
	if sa.SeqDrop() != ErrSeqUnreserved || sa.SeqExhausted() {
		t.Fatalf("closed gate drops as %v", sa.SeqDrop())
	}
	if old := g.Open(Now() + int64(time.Hour)); old != 0 {
		t.Fatalf("Open returned %d", old)
	}
	if f, n := sa.ReserveSeq(4); f != 1 || n != 4 {
		t.Fatalf("open gate: %d, %d", f, n)
	}
	g.Open(Now() - 1) // the deadline has passed, nobody closed it
	if _, n := sa.ReserveSeq(1); n != 0 {
		t.Fatal("gate past its deadline: numbers handed out")
	}
	g.Open(Now() + int64(time.Hour))
	m, err := sa.Moved(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.3"), UDPEncap{SrcPort: 4500, DstPort: 4501})
	if err != nil {
		t.Fatal(err)
	}
	if f, n := m.ReserveSeq(1); n != 1 || f != 5 {
		t.Fatalf("moved copy: %d, %d", f, n)
	}
	if d := g.Close(); d == 0 {
		t.Fatal("Close of an open gate returned 0")
	}
	if _, n := m.ReserveSeq(1); n != 0 {
		t.Fatal("moved copy ignores its gate")
	}
	g.Open(Now() + int64(time.Hour))
	if a := testing.AllocsPerRun(100, func() { sa.ReserveSeq(1) }); a != 0 {
		t.Fatalf("ReserveSeq with a gate allocates %v", a)
	}
}

// TestGateReady: Ready needs the gate open and a MarkReady with a ticket
// taken since the last Close; a Close ends it and spoils older tickets.
func TestGateReady(t *testing.T) {
	var g Gate
	now := Now()
	if g.Ready(now) {
		t.Fatal("zero gate ready")
	}
	tk := g.Ticket()
	g.Open(now + int64(time.Hour))
	if g.Ready(now) {
		t.Fatal("open but not marked ready: ready")
	}
	if !g.MarkReady(tk) || !g.Ready(now) || !g.MarkReady(tk) {
		t.Fatal("MarkReady with a current ticket")
	}
	g.Open(now - 1)
	if g.Ready(now) {
		t.Fatal("ready past the deadline")
	}
	g.Open(now + int64(time.Hour))
	if !g.Ready(now) {
		t.Fatal("renewed: not ready (nothing closed it)")
	}
	g.Close()
	if g.Ready(now) {
		t.Fatal("closed: ready")
	}
	g.Open(now + int64(time.Hour))
	if g.Ready(now) || g.MarkReady(tk) || g.Ready(now) {
		t.Fatal("a ticket from before the Close made the gate ready")
	}
	if !g.MarkReady(g.Ticket()) || !g.Ready(now) {
		t.Fatal("a fresh ticket refused")
	}
	if a := testing.AllocsPerRun(100, func() { g.Ready(Now()) }); a != 0 {
		t.Fatalf("Ready allocates %v", a)
	}
}
