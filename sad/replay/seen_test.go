package replay

import "testing"

func TestSeenUpTo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		esn   bool
		first uint64 // committed before, 0: none
		top   uint64
	}{
		{"fresh small", false, 0, 100},
		{"fresh beyond window", false, 0, 1_000_000},
		{"behind own top", false, 5000, 3000},
		{"32-bit end", false, 0, 1<<32 - 1},
		{"esn far", true, 0, 3<<32 + 12345},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(1024, tc.esn)
			if err != nil {
				t.Fatal(err)
			}
			if tc.first != 0 && !w.Commit(tc.first) {
				t.Fatal("commit")
			}
			w.SeenUpTo(tc.top)
			// Every number at or below top is refused: inside the window
			// as seen, below it as too old.
			for _, s := range []uint64{1, tc.top / 2, tc.top - 1, tc.top} {
				if s == 0 {
					continue
				}
				if w.Commit(s) {
					t.Fatalf("%d accepted after SeenUpTo(%d)", s, tc.top)
				}
			}
			// The next number is fresh (unless the window was ahead).
			want := max(tc.top, tc.first)
			if tc.top < 1<<32-1 || tc.esn {
				if !w.Commit(want + 1) {
					t.Fatalf("%d refused after SeenUpTo(%d)", want+1, tc.top)
				}
			}
		})
	}
}
