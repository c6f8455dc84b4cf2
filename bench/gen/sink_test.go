package gen

import (
	"encoding/binary"
	"testing"
)

// tagged writes one IPv4 generator frame for flow and seq.
func taggedFrame(t testing.TB, g *Generator, flow int, seq uint64) []byte {
	t.Helper()
	g.flow, g.step = flow, 0
	g.seq[flow] = seq
	b := make([]byte, MaxFrame)
	return b[:g.Fill(b)]
}

func TestSinkAccounting(t *testing.T) {
	tests := []struct {
		name                         string
		seqs                         []uint64 // flow 0
		lost, reord, late, dups, pkt uint64
	}{
		{"in order", []uint64{0, 1, 2, 3, 4}, 0, 0, 0, 0, 5},
		{"gap", []uint64{0, 1, 4, 5}, 2, 0, 0, 0, 4},
		{"first lost", []uint64{3, 4}, 3, 0, 0, 0, 2},
		{"swap", []uint64{0, 2, 1, 3}, 0, 1, 0, 0, 4},
		{"reorder fills part of gap", []uint64{0, 5, 2, 6}, 3, 1, 0, 0, 4},
		{"duplicate", []uint64{0, 1, 1, 2}, 0, 0, 0, 1, 4},
		{"duplicate of reordered", []uint64{0, 3, 1, 1, 2}, 0, 2, 0, 1, 5},
		{"duplicate of newest", []uint64{0, 1, 2, 2}, 0, 0, 0, 1, 4},
		{"big jump", []uint64{0, 100000}, 99999, 0, 0, 0, 2},
		{"late beyond window", []uint64{0, 5000, 10}, 4998, 0, 1, 0, 3},
		{"edge of window", []uint64{0, WindowPackets + 1, 2}, WindowPackets - 1, 1, 0, 0, 3},
		{"just past the window", []uint64{0, WindowPackets + 1, 1}, WindowPackets - 1, 0, 1, 0, 3},
		{"word boundaries", []uint64{62, 63, 64, 65, 0, 1, 64}, 60, 2, 0, 1, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 2, VarySrcPort, []int{64}))
			if err != nil {
				t.Fatal(err)
			}
			s := NewSink(2, 9, true)
			for _, q := range tc.seqs {
				s.Observe(taggedFrame(t, g, 0, q))
			}
			st := s.Stats()
			if st.Lost != tc.lost || st.Reordered != tc.reord || st.Late != tc.late || st.Duplicates != tc.dups ||
				st.Packets != tc.pkt || st.Tagged != tc.pkt || st.Flows != 1 || st.Other != 0 || st.BadChecksum != 0 {
				t.Fatalf("got %+v; want lost %d reordered %d late %d dups %d packets %d",
					st, tc.lost, tc.reord, tc.late, tc.dups, tc.pkt)
			}
		})
	}
}

func TestSinkWindowLongRun(t *testing.T) {
	// Every packet of a long run arrives, with swaps at every distance
	// up to the window: nothing lost, no duplicates.
	g, _ := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 1, VarySrcPort, []int{64}))
	s := NewSink(1, 9, false)
	var order []uint64
	for base := uint64(0); base < 20000; base += 2000 {
		d := (base / 2000 * 97) % WindowPackets
		for q := base; q < base+2000; q++ {
			order = append(order, q)
		}
		i, j := int(base)+100, int(base)+100+int(d)
		order[i], order[j] = order[j], order[i]
	}
	for _, q := range order {
		s.Observe(taggedFrame(t, g, 0, q))
	}
	st := s.Stats()
	if st.Lost != 0 || st.Duplicates != 0 || st.Late != 0 || st.Tagged != 20000 {
		t.Fatalf("%+v", st)
	}
	// Now every packet again: all duplicates within the window.
	s2 := NewSink(1, 9, false)
	for q := range uint64(500) {
		s2.Observe(taggedFrame(t, g, 0, q))
		s2.Observe(taggedFrame(t, g, 0, q))
	}
	if st := s2.Stats(); st.Duplicates != 500 || st.Lost != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestSinkFlowsAndOthers(t *testing.T) {
	g, _ := NewGenerator(testConfig("198.18.0.1", "198.18.1.1", 4, VarySrcPort, []int{64}))
	s := NewSink(2, 9, true) // tracks flows 0 and 1 only
	for f := range 4 {
		s.Observe(taggedFrame(t, g, f, 0))
	}
	good := taggedFrame(t, g, 1, 1)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1 // payload bit flip: UDP checksum fails
	s.Observe(bad)
	wrongPort := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(wrongPort[36:], 10) // UDP destination port
	s.Observe(wrongPort)
	s.Observe(good[:20])
	s.Observe(nil)
	st := s.Stats()
	if st.Tagged != 2 || st.Flows != 2 || st.Other != 6 || st.BadChecksum != 1 || st.Packets != 8 {
		t.Fatalf("%+v", st)
	}
	// IPv6 at 64 bytes: no room for the tag.
	g6, _ := NewGenerator(testConfig("2001:db8::1", "2001:db8::2", 1, VarySrcPort, []int{64}))
	b := make([]byte, MaxFrame)
	s.Observe(b[:g6.Fill(b)])
	if st := s.Stats(); st.Untagged != 1 {
		t.Fatalf("%+v", st)
	}
}
