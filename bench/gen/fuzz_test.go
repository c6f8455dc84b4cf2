package gen

import "testing"

// FuzzSinkObserve feeds arbitrary frames to the sink's parser: it must
// never panic, and its counters must stay consistent.
func FuzzSinkObserve(f *testing.F) {
	for _, c := range []Config{
		testConfig("198.18.0.1", "198.18.1.1", 2, VarySrcPort, []int{64}),
		testConfig("2001:db8::1", "2001:db8::2", 2, VarySrcPort, []int{128}),
	} {
		g, err := NewGenerator(c)
		if err != nil {
			f.Fatal(err)
		}
		b := make([]byte, MaxFrame)
		f.Add(append([]byte(nil), b[:g.Fill(b)]...))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, verify := range []bool{false, true} {
			s := NewSink(4, 0, verify)
			s.Observe(b)
			s.Observe(b)
			st := s.Stats()
			if st.Packets != 2 || st.Tagged+st.Untagged+st.Other != 2 || st.Flows > 1 {
				t.Fatalf("%+v", st)
			}
			if st.Tagged == 2 && st.Duplicates != 1 {
				t.Fatalf("same frame twice: %+v", st)
			}
		}
	})
}
