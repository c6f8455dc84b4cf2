package sad

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

func testSA(t testing.TB, spi uint32) *SA {
	t.Helper()
	key := make([]byte, 20)
	sa, err := New(Config{
		SPI: spi, Dir: Inbound, Mode: Tunnel,
		Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
		Suite: AESGCM128, Key: key, NoReplay: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// cheapSA skips the keying for tables of a million SAs.
func cheapSA(spi uint32) *SA { return &SA{SPI: spi} }

func TestTableBasic(t *testing.T) {
	tb := NewTable(0)
	if tb.Lookup(0x1234) != nil {
		t.Fatal("empty table found an SA")
	}
	a := testSA(t, 0x1234)
	if err := tb.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(testSA(t, 0x1234)); err == nil {
		t.Fatal("duplicate SPI accepted")
	}
	if tb.Lookup(0x1234) != a {
		t.Fatal("lookup missed")
	}
	b := testSA(t, 0x1234)
	if old := tb.Replace(b); old != a {
		t.Fatal("replace did not return the old SA")
	}
	if tb.Lookup(0x1234) != b {
		t.Fatal("replace not visible")
	}
	if d := tb.Delete(0x1234); d != b || !d.Dead() || d.Usable() {
		t.Fatal("delete did not return and kill the SA")
	}
	if tb.Lookup(0x1234) != nil || tb.Len() != 0 {
		t.Fatal("deleted SA still found")
	}
	if tb.Delete(0x1234) != nil {
		t.Fatal("double delete returned something")
	}
	// SPI 0 is never a real SA; it must not match a free lane.
	if tb.Lookup(0) != nil {
		t.Fatal("lookup of 0 matched a free lane")
	}
}

// TestTableAgainstMap drives random adds, replaces and deletes and checks
// every SPI against a map after each step, across growth, overflowing
// buckets, deletes and rebuilds.
func TestTableAgainstMap(t *testing.T) {
	tb := NewTable(0)
	ref := map[uint32]*SA{}
	r := rand.New(rand.NewPCG(1, 2))
	for step := 0; step < 20000; step++ {
		spi := 256 + r.Uint32N(3000)
		switch r.IntN(3) {
		case 0:
			sa := cheapSA(spi)
			err := tb.Add(sa)
			if _, dup := ref[spi]; dup != (err != nil) {
				t.Fatalf("step %d: add %d: err %v, dup %v", step, spi, err, dup)
			}
			if err == nil {
				ref[spi] = sa
			}
		case 1:
			sa := cheapSA(spi)
			if old := tb.Replace(sa); old != ref[spi] {
				t.Fatalf("step %d: replace returned the wrong SA", step)
			}
			ref[spi] = sa
		case 2:
			if d := tb.Delete(spi); d != ref[spi] {
				t.Fatalf("step %d: delete returned the wrong SA", step)
			}
			delete(ref, spi)
		}
		if step%97 == 0 {
			for s := uint32(256); s < 3256; s++ {
				if tb.Lookup(s) != ref[s] {
					t.Fatalf("step %d: lookup %d disagrees with the map", step, s)
				}
			}
			if tb.Len() != len(ref) {
				t.Fatalf("len %d want %d", tb.Len(), len(ref))
			}
		}
	}
	n := 0
	tb.Range(func(*SA) bool { n++; return true })
	if n != len(ref) {
		t.Fatalf("range saw %d SAs, want %d", n, len(ref))
	}
}

// TestTableOverflow fills one bucket past its four lanes with SPIs that
// hash alike, then deletes those in front: the ones that overflowed into
// the next buckets must stay reachable, absent SPIs of the same hash must
// miss, and every lane position must be found (the lane arithmetic of
// Lookup).
func TestTableOverflow(t *testing.T) {
	tb := NewTable(64)
	mask := tb.cur.Load().mask
	var same []uint32
	for s := uint32(256); len(same) < 14; s++ {
		if spiHash(s)&mask == 5 {
			same = append(same, s)
		}
	}
	absent := same[10:]
	same = same[:10]
	for _, s := range same {
		if err := tb.Add(cheapSA(s)); err != nil {
			t.Fatal(err)
		}
	}
	if tb.cur.Load().mask != mask {
		t.Fatal("the table grew; the test needs a fixed size")
	}
	if tb.cur.Load().b[5].over.Load() == 0 || tb.cur.Load().b[6].over.Load() == 0 {
		t.Fatal("ten SPIs of one hash did not overflow two buckets")
	}
	check := func(live []uint32) {
		t.Helper()
		for _, s := range live {
			if sa := tb.Lookup(s); sa == nil || sa.SPI != s {
				t.Fatalf("spi %d not found (live %v)", s, live)
			}
		}
		for _, s := range absent {
			if tb.Lookup(s) != nil {
				t.Fatalf("absent spi %d found", s)
			}
		}
	}
	check(same)
	for i := 0; i < 5; i++ {
		if tb.Delete(same[i]) == nil {
			t.Fatalf("delete %d", same[i])
		}
		check(same[i+1:])
		if tb.Lookup(same[i]) != nil {
			t.Fatalf("deleted spi %d still found", same[i])
		}
	}
	// Emptied lanes are not refilled before a rebuild (readers rely on
	// it): re-added SPIs land further on, and are all found.
	for i := 0; i < 5; i++ {
		tb.Add(cheapSA(same[i]))
	}
	check(same)
	for l := 0; l < 4; l++ {
		if laneSPI(&tb.cur.Load().b[5], l) != 0 {
			t.Fatalf("lane %d of the home bucket refilled before a rebuild", l)
		}
	}
	// A rebuild packs them back.
	tb.mu.Lock()
	tb.rebuild(tb.n)
	tb.mu.Unlock()
	check(same)
	for l := 0; l < 4; l++ {
		if laneSPI(&tb.cur.Load().b[5], l) == 0 {
			t.Fatalf("lane %d of the home bucket free after a rebuild", l)
		}
	}
}

// TestTableConcurrent has readers look up a stable set of SPIs while a
// writer churns other SPIs (forcing growth and rebuilds) and replaces the
// stable ones: a stable SPI must always be found, never as nil, and only
// ever as one of its versions.
func TestTableConcurrent(t *testing.T) {
	tb := NewTable(0)
	const stable = 64
	for i := uint32(0); i < stable; i++ {
		tb.Add(cheapSA(1000 + i))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var misses atomic.Int64
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for i := uint32(0); i < stable; i++ {
					sa := tb.Lookup(1000 + i)
					if sa == nil || sa.SPI != 1000+i {
						misses.Add(1)
					}
				}
			}
		}()
	}
	for round := 0; round < 200; round++ {
		for i := uint32(0); i < 200; i++ {
			tb.Add(cheapSA(100000 + uint32(round)*1000 + i))
		}
		tb.Replace(cheapSA(1000 + uint32(round)%stable))
		for i := uint32(0); i < 200; i++ {
			tb.Delete(100000 + uint32(round)*1000 + i)
		}
	}
	stop.Store(true)
	wg.Wait()
	if m := misses.Load(); m != 0 {
		t.Fatalf("%d lookups of stable SPIs missed during writes", m)
	}
}

func TestTableLookupAllocs(t *testing.T) {
	tb := NewTable(0)
	tb.Add(cheapSA(0x5000))
	if n := testing.AllocsPerRun(1000, func() { _ = tb.Lookup(0x5000) }); n != 0 {
		t.Fatalf("lookup allocates %v", n)
	}
}

// BenchmarkLookup measures an SA lookup by SPI at 1, 1,000 and 1,000,000
// SAs. "hot" looks up a working set of 64 SPIs (a batch's worth of
// flows), the per-packet cost when the table is big but the traffic of a
// moment touches few SAs; "spread" looks up SPIs spread over the whole
// table, where a big table no longer fits the caches and each lookup pays
// for memory.
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1, 1000, 1000000} {
		tb := NewTable(n)
		r := rand.New(rand.NewPCG(7, uint64(n)))
		spis := make([]uint32, 0, n)
		for len(spis) < n {
			spi := 256 + r.Uint32N(1<<31)
			if tb.Add(cheapSA(spi)) == nil {
				spis = append(spis, spi)
			}
		}
		probe := make([]uint32, 64)
		for i := range probe {
			probe[i] = spis[r.IntN(n)]
		}
		b.Run(fmt.Sprintf("sas=%d/hot", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if tb.Lookup(probe[i&63]) == nil {
					b.Fatal("miss")
				}
			}
		})
		spread := make([]uint32, 1<<16)
		for i := range spread {
			spread[i] = spis[r.IntN(n)]
		}
		b.Run(fmt.Sprintf("sas=%d/spread", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if tb.Lookup(spread[i&(1<<16-1)]) == nil {
					b.Fatal("miss")
				}
			}
		})
	}
}
