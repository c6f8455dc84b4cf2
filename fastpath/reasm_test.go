package fastpath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// fragmentFrame cuts the outer IP packet of Ethernet frame f into pieces
// of at most per payload bytes (a multiple of 8), as a router on a
// smaller-MTU path would; spans, when set, picks the payload ranges
// instead.
// fragID is the IP identification of fragmentFrame's next datagram.
var fragID uint16

func fragmentFrame(f []byte, per int, spans [][2]int) [][]byte {
	fragID++
	eth, ipb := f[:14], f[14:]
	v6 := ipb[0]>>4 == 6
	hl := 20
	if v6 {
		hl = 40
	}
	payload := ipb[hl:]
	if spans == nil {
		for lo := 0; lo < len(payload); lo += per {
			spans = append(spans, [2]int{lo, min(lo+per, len(payload))})
		}
	}
	var out [][]byte
	for _, s := range spans {
		lo, hi := s[0], s[1]
		more := hi < len(payload)
		var h []byte
		if v6 {
			h = make([]byte, 48)
			copy(h, ipb[:40])
			h[6] = packet.ProtoFragment
			binary.BigEndian.PutUint16(h[4:], uint16(8+hi-lo))
			h[40] = ipb[6]
			fo := uint16(lo)
			if more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(h[42:], fo)
			binary.BigEndian.PutUint32(h[44:], 0x5eed0000|uint32(fragID))
		} else {
			h = append([]byte(nil), ipb[:20]...)
			binary.BigEndian.PutUint16(h[2:], uint16(20+hi-lo))
			binary.BigEndian.PutUint16(h[4:], fragID)
			fo := uint16(lo / 8)
			if more {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(h[6:], fo)
			binary.BigEndian.PutUint16(h[10:], packet.IPv4HeaderChecksum(h))
		}
		fr := append(append(append([]byte(nil), eth...), h...), payload[lo:hi]...)
		out = append(out, fr)
	}
	return out
}

// TestPipelineOuterFragments: ESP that a router fragmented on its way is
// reassembled by the receiving worker and decapsulated like any other;
// bad fragment sets are dropped and counted.
func TestPipelineOuterFragments(t *testing.T) {
	for _, o := range []pairOpts{{}, {v6: true}, {udp: true}, {v6: true, udp: true}, {cross: true}} {
		t.Run(fmt.Sprintf("v6=%v/udp=%v/cross=%v", o.v6, o.udp, o.cross), func(t *testing.T) {
			p := newPair(t, o)
			var sent [][]byte
			for i := 0; i < 3; i++ {
				f := frame("198.18.1.10", "198.18.2.20", 1300+i*100, uint32(i))
				sent = append(sent, f)
				p.aLAN.Inject(f)
			}
			p.a.Poll()
			wire := collect(p.aWAN)
			if len(wire) != 3 {
				t.Fatalf("A sent %d", len(wire))
			}
			// Packet 0 in order, 1 reversed, 2 with a duplicate.
			for i, w := range wire {
				fr := fragmentFrame(w, 512, nil)
				switch i {
				case 1:
					for a, b := 0, len(fr)-1; a < b; a, b = a+1, b-1 {
						fr[a], fr[b] = fr[b], fr[a]
					}
				case 2:
					fr = append(fr[:1], fr...)
				}
				for _, f := range fr {
					p.bWAN.Inject(f)
				}
			}
			for p.bWAN.Pending() > 0 {
				p.b.Poll()
			}
			got := collect(p.bLAN)
			if len(got) != 3 {
				t.Fatalf("B delivered %d of 3; stats %+v", len(got), p.b.Stats())
			}
			for i := range got {
				if !bytes.Equal(got[i][14+12:], sent[i][14+12:]) {
					t.Fatalf("packet %d changed", i)
				}
			}
			s := p.b.Stats()
			if s.Counts[Decaps] != 3 || s.Reasm.Reassembled != 3 || s.Reasm.Duplicate != 1 {
				t.Fatalf("stats %+v", s)
			}

			// Bad sets: overlapping (the set is dropped, RFC 5722, and
			// its last piece with it), tiny, and incomplete (expires).
			p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 1300, 9))
			p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 1300, 10))
			p.a.Poll()
			ws := collect(p.aWAN)
			w := ws[0]
			for _, f := range fragmentFrame(ws[1], 0, [][2]int{{0, 512}, {512, 1024}}) {
				p.bWAN.Inject(f)
			}
			for _, f := range fragmentFrame(w, 0, [][2]int{{0, 512}, {504, 1024}, {512, len(w) - 14 - 20}}) {
				p.bWAN.Inject(f)
			}
			for _, f := range fragmentFrame(w, 0, [][2]int{{0, 16}}) {
				p.bWAN.Inject(f)
			}
			for p.bWAN.Pending() > 0 {
				p.b.Poll()
			}
			if got := collect(p.bLAN); len(got) != 0 {
				t.Fatalf("bad sets delivered %d packets", len(got))
			}
			s = p.b.Stats()
			if s.Reasm.Overlap != 1 || s.Reasm.Late != 1 || s.Reasm.Tiny != 1 || s.Drops[sad.ErrFragment] != 4 { // with the duplicate above
				t.Fatalf("bad sets: %+v", s)
			}
			if p.b.reasm.Pending() != 2 { // the dead overlapping set and the incomplete one
				t.Fatalf("pending %d", p.b.reasm.Pending())
			}
			p.b.reasm.Expire(monotime() + 31e9)
			if st := p.b.Stats().Reasm; st.Timeout != 1 || p.b.reasm.Pending() != 0 {
				t.Fatalf("timeout: %+v, pending %d", st, p.b.reasm.Pending())
			}
			checkNoLeak(t, p)
		})
	}
}

func TestPipelineOuterFragmentsZeroAllocs(t *testing.T) {
	p := newPair(t, pairOpts{})
	var frs [][][]byte
	for i := 0; i < 200; i++ {
		p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 1300, uint32(i)))
		p.a.Poll()
		frs = append(frs, fragmentFrame(collect(p.aWAN)[0], 768, nil))
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frs[i] {
			p.bWAN.Inject(f)
		}
		i++
		p.b.Poll()
		p.bLAN.Drain(nil)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per reassembled packet", allocs)
	}
	if s := p.b.Stats(); s.Counts[Decaps] < 100 {
		t.Fatalf("stats %+v", s)
	}
}

// BenchmarkPipelineDecapFragments: BenchmarkPipelineDecap's rx=copy
// flavour for ESP that arrives in outer fragments: each 1400-byte inner
// packet's ESP (IPv4 outer) cut in two at a 1280-byte path, so one op is
// one packet = two fragments through the reassembly stage, then the
// normal decap. Beside it, the same packets unfragmented in the same run
// (op = one packet): the difference is the reassembly's cost.
func BenchmarkPipelineDecapFragments(b *testing.B) {
	for _, frag := range []bool{false, true} {
		b.Run(fmt.Sprintf("fragmented=%v", frag), func(b *testing.B) {
			p := newPair(b, pairOpts{})
			p.bLAN.Sink = true
			fs := innerFrames(1400)
			var pool [][]byte
			refill := func() {
				pool = pool[:0]
				for len(pool) < copyPool {
					for j := 0; j < Batch; j++ {
						p.aLAN.Inject(fs[0])
					}
					p.a.Poll()
					p.aWAN.Drain(func(f []byte) {
						if frag {
							pool = append(pool, fragmentFrame(f, 1256, nil)...)
						} else {
							pool = append(pool, append(f[:0:0], f...))
						}
					})
				}
			}
			per := 1
			if frag {
				per = 2
			}
			refill()
			m := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += Batch / per {
				if m+Batch > len(pool) {
					b.StopTimer()
					refill()
					m = 0
					b.StartTimer()
				}
				p.bWAN.InjectBatch(pool[m : m+Batch])
				m += Batch
				p.b.Poll()
			}
			b.StopTimer()
			s := p.b.Stats()
			if s.Counts[Decaps] == 0 || s.Drops != [len(s.Drops)]uint64{} || frag && s.Reasm.Reassembled != s.Counts[Decaps] {
				b.Fatalf("stats %+v", s)
			}
		})
	}
}
