package nexthop

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
)

func hopFor(a netip.Addr) fastpath.Hop {
	b := a.As16()
	return fastpath.Hop{Src: [6]byte{2, 0, 0, 0, 0, 1}, Dst: [6]byte{2, b[11], b[12], b[13], b[14], b[15]}}
}

func randAddr(r *rand.Rand) netip.Addr {
	if r.IntN(2) == 0 {
		return netip.AddrFrom4([4]byte{198, 18 + byte(r.IntN(2)), byte(r.Uint32()), byte(r.Uint32())})
	}
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	for i := 4; i < 16; i++ {
		b[i] = byte(r.Uint32())
	}
	return netip.AddrFrom16(b)
}

func TestCacheBound(t *testing.T) {
	for _, limit := range []int{1, 100, 256, 4096} {
		c := newCache(limit, 1, 2)
		r := rand.New(rand.NewPCG(1, uint64(limit)))
		for i := range 100_000 {
			a := randAddr(r)
			c.put(&entry{dst: a, hop: hopFor(a), ok: i%3 != 0, born: int64(i)})
		}
		live := 0
		c.each(func(int, *entry) { live++ })
		if live != c.n || int64(live) != c.published.Load() {
			t.Errorf("max %d: %d live entries, count says %d/%d", limit, live, c.n, c.published.Load())
		}
		if live > len(c.slots) || len(c.slots) > 2*max(limit, 2) {
			t.Errorf("max %d: %d live entries in %d slots", limit, live, len(c.slots))
		}
		if live < len(c.slots)*9/10 {
			t.Errorf("max %d: only %d of %d slots used after 100k inserts", limit, live, len(c.slots))
		}
	}
}

// sameSet returns n distinct addresses that hash to the same set.
func sameSet(c *cache, n int) []netip.Addr {
	r := rand.New(rand.NewPCG(7, 7))
	first := randAddr(r)
	set := c.hash(first) & c.mask &^ 1
	out := []netip.Addr{first}
	for len(out) < n {
		a := randAddr(r)
		if c.hash(a)&c.mask&^1 == set && a != first {
			out = append(out, a)
		}
	}
	return out
}

func TestCacheEviction(t *testing.T) {
	tests := []struct {
		name     string
		okA, okB bool // answers or remembered misses; a is older
		refA     bool
		evicts   string
	}{
		{"miss before answer", true, false, false, "b"},
		{"unreferenced first", true, true, true, "b"},
		{"older first", true, true, false, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(64, 3, 4)
			addrs := sameSet(c, 3)
			pa, pb := &entry{dst: addrs[0], ok: tt.okA, born: 1}, &entry{dst: addrs[1], ok: tt.okB, born: 2}
			if tt.refA {
				pa.ref.Store(1)
			}
			c.put(pa)
			c.put(pb)
			c.put(&entry{dst: addrs[2], ok: true, born: 3})
			h := func(a netip.Addr) bool { return c.find(a, c.hash(a)) != nil }
			if !h(addrs[2]) {
				t.Fatal("new entry not cached")
			}
			gone := addrs[0]
			kept := addrs[1]
			if tt.evicts == "b" {
				gone, kept = kept, gone
			}
			if h(gone) || !h(kept) {
				t.Errorf("evicted the wrong way: %v present %v, %v present %v", gone, h(gone), kept, h(kept))
			}
			if c.n != 2 || c.evictCount.Load() != 1 {
				t.Errorf("n=%d evictions=%d, want 2 and 1", c.n, c.evictCount.Load())
			}
		})
	}
}

func TestLookupCounters(t *testing.T) {
	tb := newTable(1, Options{QueueLen: 4, MaxEntries: 64})
	hit := netip.MustParseAddr("198.18.0.9")
	neg := netip.MustParseAddr("2001:db8::9")
	tb.cache.put(&entry{dst: hit, hop: hopFor(hit), ok: true})
	tb.cache.put(&entry{dst: neg})
	if h, ok := tb.Lookup(hit); !ok || h != hopFor(hit) {
		t.Fatalf("Lookup(%v) = %v, %v", hit, h, ok)
	}
	if _, ok := tb.Lookup(neg); ok {
		t.Fatalf("Lookup(%v) answered a remembered miss", neg)
	}
	if _, ok := tb.Lookup(netip.Addr{}); ok {
		t.Fatal("Lookup(zero Addr) answered")
	}
	for i := range 10 {
		if _, ok := tb.Lookup(netip.AddrFrom4([4]byte{198, 19, 0, byte(i)})); ok {
			t.Fatal("Lookup of an unknown destination answered")
		}
	}
	got := tb.Stats()
	want := Stats{Hits: 1, Misses: 12, Requests: 4, QueueDrops: 6, Entries: 2}
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if len(tb.queue) != 4 {
		t.Errorf("queue holds %d, want 4", len(tb.queue))
	}
}

func TestLookupAllocs(t *testing.T) {
	tb := newTable(1, Options{QueueLen: 1})
	hit := netip.MustParseAddr("2001:db8::1")
	neg := netip.MustParseAddr("198.18.0.1")
	tb.cache.put(&entry{dst: hit, hop: hopFor(hit), ok: true})
	tb.cache.put(&entry{dst: neg})
	unknown := netip.MustParseAddr("198.18.0.2")
	for _, a := range []netip.Addr{hit, neg, unknown} {
		if n := testing.AllocsPerRun(1000, func() { tb.Lookup(a) }); n != 0 {
			t.Errorf("Lookup(%v): %v allocations", a, n)
		}
	}
}

// TestLookupConcurrent runs readers against the single writer under -race:
// every answer must be the one written for that destination.
func TestLookupConcurrent(t *testing.T) {
	tb := newTable(1, Options{MaxEntries: 128, QueueLen: 16})
	r := rand.New(rand.NewPCG(5, 5))
	addrs := make([]netip.Addr, 512)
	for i := range addrs {
		addrs[i] = randAddr(r)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := addrs[i%len(addrs)]
				if h, ok := tb.Lookup(a); ok && h != hopFor(a) {
					t.Errorf("Lookup(%v) = %v, want %v", a, h, hopFor(a))
					return
				}
			}
		}()
	}
	for i := range 20_000 {
		a := addrs[r.IntN(len(addrs))]
		tb.cache.put(&entry{dst: a, hop: hopFor(a), ok: i%4 != 0, born: int64(i)})
		if i%1000 == 0 {
			tb.cache.each(func(j int, e *entry) {
				if j%3 == 0 {
					tb.cache.remove(j)
				}
			})
		}
		select {
		case <-tb.queue:
		default:
		}
	}
	// On a loaded machine the writer can finish before the readers ran
	// at all, or the readers can have run only before the writer started
	// (all misses); let them do work against the final state too.
	st0 := tb.Stats()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if st := tb.Stats(); st.Hits+st.Misses > st0.Hits+st0.Misses+10_000 {
			break
		}
		select {
		case <-tb.queue:
		default:
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if st := tb.Stats(); st.Hits == 0 || st.Entries > 128 {
		t.Errorf("Stats = %+v: want hits and at most 128 entries", st)
	}
}

func TestMulticastMAC(t *testing.T) {
	// RFC 1112 §6.4 and RFC 2464 §7 mappings.
	tests := []struct {
		ip   string
		want [6]byte
	}{
		{"224.0.0.1", [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}},
		{"224.0.0.251", [6]byte{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}},
		{"239.255.255.250", [6]byte{0x01, 0x00, 0x5e, 0x7f, 0xff, 0xfa}},
		{"225.128.1.2", [6]byte{0x01, 0x00, 0x5e, 0x00, 0x01, 0x02}}, // high bit of the 24 dropped
		{"ff02::1", [6]byte{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}},
		{"ff02::1:ff00:3", [6]byte{0x33, 0x33, 0xff, 0x00, 0x00, 0x03}},
	}
	for _, tt := range tests {
		if got := multicastMAC(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("multicastMAC(%s) = % x, want % x", tt.ip, got, tt.want)
		}
	}
}

func BenchmarkLookupHit(b *testing.B) {
	tb := newTable(1, Options{})
	a := netip.MustParseAddr("198.18.3.4")
	tb.cache.put(&entry{dst: a, hop: hopFor(a), ok: true})
	b.ReportAllocs()
	for b.Loop() {
		tb.Lookup(a)
	}
}

// BenchmarkLookupHitParallel is the hit path from several workers at once
// (the counters are sharded so that they do not share one line).
func BenchmarkLookupHitParallel(b *testing.B) {
	tb := newTable(1, Options{})
	addrs := make([]netip.Addr, 64)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range addrs {
		addrs[i] = randAddr(r)
		tb.cache.put(&entry{dst: addrs[i], hop: hopFor(addrs[i]), ok: true})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tb.Lookup(addrs[i&63])
			i++
		}
	})
}

// BenchmarkMapBaseline is the bare cost of a Go map read of the same key,
// the yardstick for Lookup.
func BenchmarkMapBaseline(b *testing.B) {
	a := netip.MustParseAddr("198.18.3.4")
	m := map[netip.Addr]fastpath.Hop{a: hopFor(a)}
	b.ReportAllocs()
	var sink fastpath.Hop
	for b.Loop() {
		sink = m[a]
	}
	_ = sink
}
