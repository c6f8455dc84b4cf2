package fastpath

import (
	"bytes"
	"net/netip"
	"sync/atomic"
	"testing"
)

// switchHop is a NextHop whose answer the test changes, as a neighbour
// table does when a neighbour's address moves to another MAC.
type switchHop struct{ h atomic.Pointer[Hop] }

func (s *switchHop) Lookup(netip.Addr) (Hop, bool) { return *s.h.Load(), true }

// TestPipelineHopChange: when the WAN next hop's MAC changes (the peer
// gateway's address moved to another cluster node, which announced it),
// the next batch goes to the new MAC: the worker's hop cache does not
// outlive a poll.
func TestPipelineHopChange(t *testing.T) {
	p := newPair(t, pairOpts{})
	sw := &switchHop{}
	first, second := Hop{Src: macA, Dst: macB}, Hop{Src: macA, Dst: [6]byte{2, 0, 0, 0, 0, 0x42}}
	sw.h.Store(&first)
	p.a.cfg.WANHop = sw
	send := func() []byte {
		t.Helper()
		if !p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 64, 1)) {
			t.Fatal("inject")
		}
		for p.aLAN.Pending() > 0 {
			p.a.Poll()
		}
		var got []byte
		p.aWAN.Drain(func(f []byte) { got = append([]byte(nil), f...) })
		if got == nil {
			t.Fatalf("nothing sent; stats %+v", p.a.Stats())
		}
		return got
	}
	if f := send(); !bytes.Equal(f[0:6], first.Dst[:]) {
		t.Fatalf("first frame to %x, want %x", f[0:6], first.Dst)
	}
	sw.h.Store(&second)
	if f := send(); !bytes.Equal(f[0:6], second.Dst[:]) {
		t.Fatalf("after the neighbour moved, the frame went to %x, want %x", f[0:6], second.Dst)
	}
}
