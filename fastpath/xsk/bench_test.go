package xsk

import (
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
)

// BenchmarkEcho measures Recv+Send echo on a veth in copy mode with
// AF_XDP at both ends: B's socket reflects whatever A's socket echoes, and
// a window of frames circulates. One op is one packet echoed by A; the pps
// metric counts those. Both sockets are driven by this goroutine, so the
// number is one core's worth of both ends plus the kernel's two copies.
func BenchmarkEcho(b *testing.B) {
	l := newLab(b, 1)
	p := l.pairs[0]
	o := Options{NumFrames: 2048, FillSize: 512, CompletionSize: 512, RxSize: 512, TxSize: 512}
	sa := l.open(l.hA, l.redirect(l.hA, p.ifA), p.ifA, 0, o)
	sb := l.open(l.hB, l.redirect(l.hB, p.ifB), p.ifB, 0, o)
	frame := make([]byte, 60)
	copy(frame, p.macA)
	copy(frame[6:], p.macB)
	frame[12], frame[13] = 0x88, 0xb5 // local experimental EtherType

	const window = 256
	var pkts [fastpath.Batch]fastpath.Packet
	inject := func(n int) {
		for n > 0 {
			k := sb.Alloc(pkts[:min(n, len(pkts))])
			if k == 0 {
				return
			}
			for i := range pkts[:k] {
				pkts[i].Len = copy(pkts[i].Frame[pkts[i].Off:], frame)
			}
			if s := sb.Send(pkts[:k]); s < k {
				sb.Free(pkts[s:k])
			}
			n -= k
		}
	}
	// echo receives a batch on s and sends it back out unchanged (both
	// MACs are right for either direction on a point-to-point veth).
	echo := func(s *Socket) int {
		n := s.Recv(pkts[:])
		if n > 0 {
			if k := s.Send(pkts[:n]); k < n {
				s.Free(pkts[k:n])
			}
		}
		return n
	}
	inject(window)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done, idle := 0, 0
	for done < b.N {
		n := echo(sa)
		echo(sb)
		done += n
		if n == 0 {
			if idle++; idle > 1000 {
				// Frames dropped somewhere (a full ring): top the window up.
				inject(window / 4)
				idle = 0
			}
		} else {
			idle = 0
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(done)/time.Since(start).Seconds(), "pps")
	st, err := sa.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if st.BadFrames != 0 {
		b.Fatalf("bad frames: %+v", st)
	}
}

// BenchmarkAllocFree is the bookkeeping alone, a batch at a time: the
// cost Recv/Send add on top of the kernel's work.
func BenchmarkAllocFree(b *testing.B) {
	u := initUMEM(make([]byte, 256*fastpath.FrameSize), 256)
	var pkts [fastpath.Batch]fastpath.Packet
	b.ReportAllocs()
	for b.Loop() {
		n := u.alloc(pkts[:])
		u.release(pkts[:n])
	}
	b.ReportMetric(float64(fastpath.Batch), "frames/op")
}
