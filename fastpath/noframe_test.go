package fastpath

import (
	"encoding/binary"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// exhaust takes every free frame of port's memory; the returned func gives
// them back.
func exhaust(port *MemPort) func() {
	hog := make([]Packet, port.pool.Free())
	n := port.Alloc(hog)
	return func() { port.Free(hog[:n]) }
}

// TestNoFrame: a packet that finds no frame on the port it must cross to
// (or, fragmented before or after sealing, none for its fragments) is
// dropped as no_frame, the
// cause it has, not as too_big or no_route; the no_frame counter says how
// many frames the port could not give.
func TestNoFrame(t *testing.T) {
	const n = 3
	dfClear := func(f []byte) []byte {
		f[14+6] = 0
		binary.BigEndian.PutUint16(f[14+10:], 0)
		binary.BigEndian.PutUint16(f[14+10:], packet.IPv4HeaderChecksum(f[14:34]))
		return f
	}
	for _, tc := range []struct {
		name    string
		cross   bool
		mtu     int
		inbound bool   // ESP from A to B, B's LAN memory exhausted
		dst     string // outbound: where A's LAN packets go
		v6      bool   // inner IPv6 from 2001:db8:a::10 (else IPv4, DF clear, from 198.18.1.10)
		one     bool   // one packet, not n
		size    int
		saDrops uint64 // no_frame drops counted on the SA
		frames  uint64 // the no_frame counter (0: as many as fragments 2..k need)
	}{
		{name: "encap", cross: true, dst: "198.18.2.20", size: 100, saDrops: n, frames: n},
		{name: "bypass", cross: true, dst: "203.0.113.5", size: 100, frames: n},
		{name: "decap", cross: true, inbound: true, dst: "198.18.2.20", size: 100, frames: n},
		{name: "fragments", mtu: 600, dst: "198.18.2.20", size: 1600},
		// One packet: the frame its drop frees would carry the next. It
		// was sealed (counted as an encap) before the split found no frame.
		{name: "outer-fragments", mtu: 1280, v6: true, dst: "2001:db8:b::20", size: 1280 - 48, one: true, saDrops: 1, frames: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := uint64(n)
			if tc.one {
				n = 1
			}
			p := newPair(t, pairOpts{cross: tc.cross})
			if tc.mtu != 0 {
				withMTU(p, tc.mtu)
			}
			w, port := p.a, p.aWAN
			if tc.inbound {
				w, port = p.b, p.bLAN
				for i := 0; i < int(n); i++ {
					p.aLAN.Inject(frame("198.18.1.10", tc.dst, tc.size, uint32(i)))
				}
				p.a.Poll()
				if got := carry(t, p.aWAN, p.bWAN); got != int(n) {
					t.Fatalf("A sent %d ESP packets, want %d", got, n)
				}
			} else {
				for i := 0; i < int(n); i++ {
					if tc.v6 {
						p.aLAN.Inject(frame("2001:db8:a::10", tc.dst, tc.size, uint32(i)))
					} else {
						p.aLAN.Inject(dfClear(frame("198.18.1.10", tc.dst, tc.size, uint32(i))))
					}
				}
			}
			giveBack := exhaust(port)
			w.Poll()
			giveBack()
			s := w.Stats()
			if s.Drops[sad.ErrNoFrame] != n || s.Drops[sad.ErrTooBig] != 0 || s.Drops[sad.ErrNoRoute] != 0 {
				t.Errorf("drops no_frame %d too_big %d no_route %d, want %d 0 0",
					s.Drops[sad.ErrNoFrame], s.Drops[sad.ErrTooBig], s.Drops[sad.ErrNoRoute], n)
			}
			if tc.frames == 0 {
				per := (esp.MaxInner(p.saAB, tc.mtu, 20) - 20) &^ 7
				tc.frames = n * uint64((tc.size+8+per-1)/per-1)
			}
			if s.Counts[NoFrame] != tc.frames {
				t.Errorf("no_frame counter %d, want %d", s.Counts[NoFrame], tc.frames)
			}
			if got := p.saAB.Counters.Drops[sad.ErrNoFrame].Load(); got != tc.saDrops {
				t.Errorf("SA counted %d no_frame drops, want %d", got, tc.saDrops)
			}
			if sent := len(collect(p.aWAN)) + len(collect(p.bLAN)); sent != 0 {
				t.Errorf("%d packets sent", sent)
			}
			if s.Counts[Decaps]+s.Counts[Bypassed] != 0 || !tc.one && s.Counts[Encaps] != 0 {
				t.Errorf("counted as forwarded: %v", s.Counts)
			}
		})
	}
}
