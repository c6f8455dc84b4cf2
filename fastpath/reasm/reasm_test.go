package reasm

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// whole4 is an IPv4 ESP packet with a payload of n bytes.
func whole4(n int, id uint16, src byte) []byte {
	b := make([]byte, 20+n)
	b[0], b[8], b[9] = 0x45, 64, packet.ProtoESP
	binary.BigEndian.PutUint16(b[2:], uint16(20+n))
	binary.BigEndian.PutUint16(b[4:], id)
	copy(b[12:], []byte{198, 18, 0, src})
	copy(b[16:], []byte{198, 18, 0, 1})
	for i := 20; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(b[10:], packet.IPv4HeaderChecksum(b[:20]))
	return b
}

// frag4 cuts whole IPv4 packet w's payload [lo, hi) into a fragment.
func frag4(w []byte, lo, hi int, more bool) []byte {
	f := make([]byte, 20+hi-lo)
	copy(f, w[:20])
	copy(f[20:], w[20+lo:20+hi])
	binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
	fo := uint16(lo / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(f[6:], fo)
	binary.BigEndian.PutUint16(f[10:], packet.IPv4HeaderChecksum(f[:20]))
	return f
}

// whole6 is an IPv6 ESP packet with a payload of n bytes.
func whole6(n int, id byte) []byte {
	b := make([]byte, 40+n)
	b[0], b[6], b[7] = 0x60, packet.ProtoESP, 64
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[8], b[9], b[23] = 0x20, 0x01, id
	b[24], b[25], b[39] = 0x20, 0x01, 1
	for i := 40; i < len(b); i++ {
		b[i] = byte(i * 3)
	}
	return b
}

func frag6(w []byte, lo, hi int, more bool) []byte {
	f := make([]byte, 48+hi-lo)
	copy(f, w[:40])
	f[6] = packet.ProtoFragment
	binary.BigEndian.PutUint16(f[4:], uint16(8+hi-lo))
	f[40] = w[6]
	fo := uint16(lo)
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(f[42:], fo)
	binary.BigEndian.PutUint32(f[44:], 0xabcd0000|uint32(w[23]))
	copy(f[48:], w[40+lo:40+hi])
	return f
}

type piecesOf func(w []byte, lo, hi int, more bool) []byte

func TestReassemble(t *testing.T) {
	w4, w6 := whole4(1400, 7, 2), whole6(1400, 2)
	cases := []struct {
		name  string
		whole []byte
		cut   piecesOf
		spans [][2]int // payload ranges, in arrival order; the one ending at 1400 is last
		want  Verdict
		check func(t *testing.T, s Stats)
	}{
		{"v4 in order", w4, frag4, [][2]int{{0, 512}, {512, 1024}, {1024, 1400}}, Done, nil},
		{"v4 reversed", w4, frag4, [][2]int{{1024, 1400}, {512, 1024}, {0, 512}}, Done, nil},
		{"v4 duplicate", w4, frag4, [][2]int{{0, 512}, {0, 512}, {512, 1400}}, Done,
			func(t *testing.T, s Stats) {
				if s.Duplicate != 1 {
					t.Errorf("duplicate = %d", s.Duplicate)
				}
			}},
		// RFC 5722 / RFC 8200 §4.5: the set is dropped, and so is the
		// rest of it, which would otherwise have completed it.
		{"v4 overlap", w4, frag4, [][2]int{{0, 512}, {504, 1024}, {512, 1024}, {1024, 1400}}, Dropped,
			func(t *testing.T, s Stats) {
				if s.Overlap != 1 || s.Late != 2 || s.Reassembled != 0 {
					t.Errorf("overlap = %d, late = %d, reassembled = %d", s.Overlap, s.Late, s.Reassembled)
				}
			}},
		{"v4 tiny", w4, frag4, [][2]int{{0, 8}}, Dropped,
			func(t *testing.T, s Stats) {
				if s.Tiny != 1 {
					t.Errorf("tiny = %d", s.Tiny)
				}
			}},
		{"v6 in order", w6, frag6, [][2]int{{0, 696}, {696, 1400}}, Done, nil},
		{"v6 out of order", w6, frag6, [][2]int{{696, 1400}, {0, 696}}, Done, nil},
		{"v6 overlap drops the set", w6, frag6, [][2]int{{0, 696}, {688, 1400}, {696, 1400}}, Dropped,
			func(t *testing.T, s Stats) {
				if s.Overlap != 1 || s.Late != 1 {
					t.Errorf("overlap = %d, late = %d", s.Overlap, s.Late)
				}
			}},
		{"v6 three", w6, frag6, [][2]int{{400, 800}, {800, 1400}, {0, 400}}, Done, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := New(Config{})
			out := make([]byte, 2034)
			var v Verdict
			var n int
			for _, s := range c.spans {
				n, v = r.Add(c.cut(c.whole, s[0], s[1], s[1] != 1400), 1, out)
			}
			if v != c.want {
				t.Fatalf("verdict %d, want %d (stats %+v)", v, c.want, r.Stats())
			}
			if v == Done && !bytes.Equal(out[:n], c.whole) {
				t.Fatalf("reassembled packet differs:\n got %x\nwant %x", out[:n], c.whole)
			}
			if c.check != nil {
				c.check(t, r.Stats())
			}
		})
	}
}

func TestTimeoutAndCaps(t *testing.T) {
	out := make([]byte, 2034)
	r := New(Config{Slots: 4, PerSource: 2, Timeout: 100})
	// Incomplete sets expire.
	w := whole4(1400, 1, 2)
	if _, v := r.Add(frag4(w, 0, 512, true), 1, out); v != Held {
		t.Fatal(v)
	}
	r.Expire(50)
	if r.Pending() != 1 {
		t.Fatal("expired early")
	}
	r.Expire(101)
	if s := r.Stats(); s.Timeout != 1 || r.Pending() != 0 {
		t.Fatalf("after timeout: %+v pending %d", s, r.Pending())
	}
	// A late fragment of the expired set does not complete anything.
	if _, v := r.Add(frag4(w, 512, 1400, false), 102, out); v != Held {
		t.Fatal(v)
	}
	// Per-source cap: a second set from the same source fits, a third does not.
	if _, v := r.Add(frag4(whole4(1400, 2, 2), 0, 512, true), 103, out); v != Held {
		t.Fatal(v)
	}
	if _, v := r.Add(frag4(whole4(1400, 3, 2), 0, 512, true), 103, out); v != Dropped || r.Stats().SourceLimit != 1 {
		t.Fatalf("per-source cap: %v %+v", v, r.Stats())
	}
	// Total cap: other sources evict the oldest.
	for src := byte(3); src < 6; src++ {
		r.Add(frag4(whole4(1400, 9, src), 0, 512, true), 104+int64(src), out)
	}
	if s := r.Stats(); s.Evicted != 1 || r.Pending() != 4 {
		t.Fatalf("total cap: %+v pending %d", s, r.Pending())
	}
	// A set dropped for an overlap refuses its fragments until it
	// expires (not counted as a timeout), then the id is free again.
	r = New(Config{Timeout: 100})
	w = whole4(1400, 6, 2)
	r.Add(frag4(w, 0, 512, true), 1, out)
	if _, v := r.Add(frag4(w, 256, 1400, false), 2, out); v != Dropped {
		t.Fatal(v)
	}
	if _, v := r.Add(frag4(w, 512, 1400, false), 3, out); v != Dropped || r.Stats().Late != 1 {
		t.Fatalf("late fragment of a dead set: %v %+v", v, r.Stats())
	}
	r.Expire(50)
	if r.Pending() != 1 {
		t.Fatal("dead set expired early")
	}
	r.Expire(101)
	if s := r.Stats(); s.Timeout != 0 || r.Pending() != 0 {
		t.Fatalf("dead set after its timeout: %+v pending %d", s, r.Pending())
	}
	r.Add(frag4(w, 0, 512, true), 102, out)
	if n, v := r.Add(frag4(w, 512, 1400, false), 102, out); v != Done || !bytes.Equal(out[:n], w) {
		t.Fatalf("the id after the dead set expired: %v", v)
	}
	// Expire waits for the oldest set's deadline, then finds them all.
	r.Add(frag4(whole4(1400, 10, 3), 0, 512, true), 200, out)
	r.Add(frag4(whole4(1400, 11, 4), 0, 512, true), 250, out)
	r.Expire(299)
	if r.Pending() != 2 {
		t.Fatalf("pending %d before the first deadline", r.Pending())
	}
	r.Expire(300)
	if r.Pending() != 1 {
		t.Fatalf("pending %d after the first deadline", r.Pending())
	}
	r.Expire(349)
	if r.Pending() != 1 {
		t.Fatalf("pending %d before the second deadline", r.Pending())
	}
	r.Expire(350)
	if s := r.Stats(); r.Pending() != 0 || s.Timeout != 2 {
		t.Fatalf("pending %d after the second deadline: %+v", r.Pending(), s)
	}
	// Too many pieces.
	r = New(Config{MaxFrags: 2, MinFrag: 8})
	w = whole4(64, 4, 2)
	r.Add(frag4(w, 0, 16, true), 1, out)
	r.Add(frag4(w, 16, 32, true), 1, out)
	if _, v := r.Add(frag4(w, 32, 64, false), 1, out); v != Dropped || r.Stats().TooBig != 1 {
		t.Fatalf("too many: %v %+v", v, r.Stats())
	}
	// Too big for the frame.
	r = New(Config{MaxLen: 1000})
	if _, v := r.Add(frag4(whole4(1400, 5, 2), 512, 1400, false), 1, out); v != Dropped || r.Stats().TooBig != 1 {
		t.Fatalf("too big: %v %+v", v, r.Stats())
	}
}

func TestAddAllocs(t *testing.T) {
	r := New(Config{})
	out := make([]byte, 2034)
	w := whole4(1400, 7, 2)
	a, b := frag4(w, 0, 768, true), frag4(w, 768, 1400, false)
	allocs := testing.AllocsPerRun(1000, func() {
		r.Add(a, 1, out)
		if _, v := r.Add(b, 1, out); v != Done {
			t.Fatal(v)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per datagram", allocs)
	}
}

func FuzzAdd(f *testing.F) {
	w4, w6 := whole4(1400, 7, 2), whole6(1400, 2)
	f.Add(frag4(w4, 0, 512, true), frag4(w4, 512, 1400, false), frag4(w4, 256, 768, true))
	f.Add(frag6(w6, 0, 696, true), frag6(w6, 696, 1400, false), frag6(w6, 0, 696, true))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		r := New(Config{Slots: 4, PerSource: 2, MinFrag: 8, MaxLen: 1500})
		out := make([]byte, 1500)
		for i, p := range [][]byte{a, b, c, a, c, b} {
			n, v := r.Add(p, int64(i), out)
			if v == Done && (n < 20 || n > len(out)) {
				t.Fatalf("bad length %d", n)
			}
			if v == Done {
				var ip packet.IP
				if !ip.Parse(out[:n]) || ip.Fragment && !ip.V6 {
					t.Fatalf("reassembled packet does not parse: %x", out[:n])
				}
			}
		}
		if r.Pending() < 0 || r.Pending() > 4 {
			t.Fatalf("pending %d", r.Pending())
		}
		// Everything expires, dead sets included, and the table is
		// usable again.
		r.Expire(1 << 62)
		if r.Pending() != 0 {
			t.Fatalf("pending %d after every timeout", r.Pending())
		}
		r.Add(frag4(w4, 0, 512, true), 1<<62, out)
		if n, v := r.Add(frag4(w4, 512, 1400, false), 1<<62, out); v != Done || n != len(w4) {
			t.Fatalf("after expiry: %v %d", v, n)
		}
	})
}
