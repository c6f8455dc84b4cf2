package reasm

import (
	"fmt"
	"testing"
)

// BenchmarkAdd: one op is one fragment given to Add (parse, slot search,
// overlap check, copy in; the last one of a set also writes the whole
// packet out). The sets are ESP packets of 1400 payload bytes cut as a
// 1280- or 576-byte path would. "busy" keeps busy other datagrams pending
// from other sources, so every search walks a full table: the worst case
// of the linear slot search (Slots = 64, the default).
func BenchmarkAdd(b *testing.B) {
	for _, c := range []struct {
		name  string
		cut   piecesOf
		whole []byte
		spans [][2]int
	}{
		{"v4/2-frags", frag4, whole4(1400, 7, 2), [][2]int{{0, 1232}, {1232, 1400}}},
		{"v4/3-frags", frag4, whole4(1400, 7, 2), [][2]int{{0, 552}, {552, 1104}, {1104, 1400}}},
		{"v6/2-frags", frag6, whole6(1400, 2), [][2]int{{0, 1232}, {1232, 1400}}},
	} {
		for _, busy := range []int{0, 63} {
			b.Run(fmt.Sprintf("%s/busy=%d", c.name, busy), func(b *testing.B) {
				r := New(Config{})
				out := make([]byte, 2034)
				for i := 0; i < busy; i++ {
					// Other sources' incomplete sets, never expiring here.
					w := whole4(1400, uint16(i), byte(10+i))
					r.Add(frag4(w, 0, 512, true), 1, out)
				}
				var frags [][]byte
				for _, s := range c.spans {
					frags = append(frags, c.cut(c.whole, s[0], s[1], s[1] != 1400))
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(c.whole)) / int64(len(frags)))
				b.ResetTimer()
				done := 0
				for i := 0; i < b.N; i++ {
					if _, v := r.Add(frags[i%len(frags)], 1, out); v == Done {
						done++
					}
				}
				b.StopTimer()
				if want := b.N / len(frags); done != want {
					b.Fatalf("%d datagrams done, want %d: %+v", done, want, r.Stats())
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(done, 1)), "ns/datagram")
			})
		}
	}
}
