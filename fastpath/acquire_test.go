package fastpath

import (
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// trapWorker is gateway A of newPair with an Acquirer, and its trap
// policy (198.18.9.0/24, PROTECT without an SA) marked as a trap.
func trapWorker(t testing.TB, interval time.Duration) (*gwPair, *Worker, *Acquirer, *spd.Policy) {
	t.Helper()
	p := newPair(t, pairOpts{})
	var trap *spd.Policy
	for _, pol := range p.spdA.Policies() {
		if pol.Name == "trap" {
			trap = pol
		}
	}
	if trap == nil {
		t.Fatal("no trap policy in the pair's SPD")
	}
	trap.Acquire.Store(true)
	acq := NewAcquirer(interval)
	cfg := p.a.cfg
	cfg.Acquire = acq
	return p, NewWorker(0, cfg), acq, trap
}

// flood sends n batches of full size through w towards the trap.
func flood(p *gwPair, w *Worker, n int) {
	f := frame("198.18.1.1", "198.18.9.9", 64, 1)
	for range n {
		for range Batch {
			p.aLAN.Inject(f)
		}
		w.Poll()
	}
}

// TestAcquireOncePerInterval: a flood of packets to a trap with no SA
// raises exactly one acquire in the interval; every packet is dropped as
// no_sa and nothing reaches the WAN. Once an SA is bound the traffic
// flows and raises nothing.
func TestAcquireOncePerInterval(t *testing.T) {
	p, w, acq, trap := trapWorker(t, time.Hour)
	flood(p, w, 50)
	if n := len(collect(p.aWAN)); n != 0 {
		t.Fatalf("%d packets left for the WAN without an SA", n)
	}
	if d := w.Stats().Drops[sad.ErrNoSA]; d != 50*Batch {
		t.Fatalf("no_sa drops %d, want %d", d, 50*Batch)
	}
	select {
	case <-acq.C():
	default:
		t.Fatal("the reader was not woken")
	}
	got := acq.Drain(nil)
	if len(got) != 1 || got[0] != trap {
		t.Fatalf("drained %v, want the trap once", got)
	}
	if s := acq.Stats(); s.Raised != 1 || s.Lost != 0 {
		t.Fatalf("stats %+v, want one raised", s)
	}
	// More flood within the hour: nothing new.
	flood(p, w, 10)
	if got := acq.Drain(nil); len(got) != 0 || acq.Stats().Raised != 1 {
		t.Fatalf("a second acquire inside the interval: %v", got)
	}
	select {
	case <-acq.C():
		t.Fatal("woken again inside the interval")
	default:
	}
	// The SA arrives: packets are sealed, no acquire.
	trap.SA.Store(p.saAB)
	flood(p, w, 1)
	if n := len(collect(p.aWAN)); n != Batch {
		t.Fatalf("%d of %d packets sealed once the SA is bound", n, Batch)
	}
	if acq.Stats().Raised != 1 {
		t.Fatal("acquire raised with an SA in place")
	}
	checkNoLeak(t, p)
}

// TestAcquireAgainAfterInterval: floods an interval apart raise one
// acquire each, however many packets each carries.
func TestAcquireAgainAfterInterval(t *testing.T) {
	// Long enough that a flood of ten batches never spans two intervals,
	// even on a loaded machine.
	const interval = 100 * time.Millisecond
	p, w, acq, trap := trapWorker(t, interval)
	for round := 1; round <= 4; round++ {
		flood(p, w, 10)
		if got := acq.Stats().Raised; got != uint64(round) {
			t.Fatalf("round %d: %d acquires raised, want %d", round, got, round)
		}
		if got := acq.Drain(nil); len(got) != 1 || got[0] != trap {
			t.Fatalf("round %d: drained %v", round, got)
		}
		time.Sleep(interval)
	}
	checkNoLeak(t, p)
}

// TestAcquireNotTrap: a PROTECT policy without an SA that is not a trap
// only drops.
func TestAcquireNotTrap(t *testing.T) {
	p, w, acq, trap := trapWorker(t, time.Hour)
	trap.Acquire.Store(false)
	flood(p, w, 3)
	if s := acq.Stats(); s.Raised != 0 || w.Stats().Drops[sad.ErrNoSA] != 3*Batch {
		t.Fatalf("acquire stats %+v, drops %v", s, w.Stats().Drops)
	}
	checkNoLeak(t, p)
}

// TestAcquireRateLimitDeterministic drives raise with chosen clocks.
func TestAcquireRateLimitDeterministic(t *testing.T) {
	acq := NewAcquirer(time.Second)
	pol := &spd.Policy{Name: "t", Action: spd.Protect}
	sec := int64(time.Second)
	for i, c := range []struct {
		now  int64
		want bool
	}{{1, true}, {2, false}, {sec, false}, {sec + 1, true}, {sec + 2, false}, {3*sec + 5, true}} {
		if got := acq.raise(pol, c.now); got != c.want {
			t.Fatalf("step %d: raise at %d = %v, want %v", i, c.now, got, c.want)
		}
	}
	if n := len(acq.Drain(nil)); n != 3 {
		t.Fatalf("drained %d, want 3", n)
	}
}

// TestAcquireSlotsFull: more distinct policies than slots before a drain
// are counted as lost, never block, and the slots work again after one.
func TestAcquireSlotsFull(t *testing.T) {
	acq := NewAcquirer(time.Hour)
	pols := make([]*spd.Policy, 2*acquireSlots)
	for i := range pols {
		pols[i] = &spd.Policy{Name: "t", Action: spd.Protect}
		acq.raise(pols[i], 1)
	}
	s := acq.Stats()
	if s.Raised+s.Lost != uint64(len(pols)) || s.Raised > acquireSlots || s.Lost < acquireSlots {
		t.Fatalf("stats %+v for %d policies and %d slots", s, len(pols), acquireSlots)
	}
	if n := len(acq.Drain(nil)); uint64(n) != s.Raised {
		t.Fatalf("drained %d, raised %d", n, s.Raised)
	}
	if !acq.raise(&spd.Policy{}, 1) {
		t.Fatal("no room after a drain")
	}
}

// TestAcquireConcurrent: workers racing on one policy at one instant
// raise exactly one acquire (run under -race too).
func TestAcquireConcurrent(t *testing.T) {
	acq := NewAcquirer(time.Hour)
	pol := &spd.Policy{Name: "t", Action: spd.Protect}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 1000 {
				if acq.raise(pol, monotime()) {
					n++
				}
			}
			mu.Lock()
			wins += n
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	var drained int
	go func() {
		defer close(done)
		for range 100 {
			drained += len(acq.Drain(nil))
		}
	}()
	wg.Wait()
	<-done
	drained += len(acq.Drain(nil))
	if wins != 1 || drained != 1 {
		t.Fatalf("%d raises won and %d drained, want 1 and 1", wins, drained)
	}
}

// TestAcquireZeroAllocs: the trap path, raising and rate-limited, does
// not allocate.
func TestAcquireZeroAllocs(t *testing.T) {
	p, w, acq, _ := trapWorker(t, time.Nanosecond) // every batch raises
	f := frame("198.18.1.1", "198.18.9.9", 64, 1)
	buf := make([]*spd.Policy, 0, acquireSlots)
	allocs := testing.AllocsPerRun(100, func() {
		for range Batch {
			p.aLAN.Inject(f)
		}
		w.Poll()
		acq.Drain(buf[:0]) // keep slots free, so raising goes on
	})
	if allocs != 0 {
		t.Fatalf("trap poll allocates %v", allocs)
	}
	if acq.Stats().Raised < 50 {
		t.Fatalf("only %d acquires raised", acq.Stats().Raised)
	}
	p, w, _, _ = trapWorker(t, time.Hour) // rate-limited
	allocs = testing.AllocsPerRun(100, func() {
		for range Batch {
			p.aLAN.Inject(f)
		}
		w.Poll()
	})
	if allocs != 0 {
		t.Fatalf("rate-limited trap poll allocates %v", allocs)
	}
}

// BenchmarkTrapDrop is the cost of a batch of packets that meet a
// PROTECT policy without an SA: "plain" only drops them, "trap" also
// checks the policy's acquire interval (one raise per interval).
func BenchmarkTrapDrop(b *testing.B) {
	for _, trap := range []bool{false, true} {
		name := "plain"
		if trap {
			name = "trap"
		}
		b.Run(name, func(b *testing.B) {
			p, w, _, pol := trapWorker(b, time.Second)
			pol.Acquire.Store(trap)
			f := frame("198.18.1.1", "198.18.9.9", 64, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for range Batch {
					p.aLAN.Inject(f)
				}
				w.Poll()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*Batch), "ns/pkt")
		})
	}
}
