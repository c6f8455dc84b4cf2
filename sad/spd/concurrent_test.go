package spd

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// TestConcurrentPublish runs readers against a writer that keeps swapping
// between two lists (and churning a third policy in and out, and
// rebinding SAs). Every lookup must give the answer of one complete
// published list, never a mix or a torn index; -race checks the rest.
func TestConcurrentPublish(t *testing.T) {
	g := newGen(42)
	a, b := g.policies(300), g.policies(300)
	flows := make([]packet.FlowKey, 2000)
	for i := range flows {
		flows[i] = g.flow(true)
		if g.r.IntN(2) == 0 {
			aim(g, a[g.r.IntN(len(a))], &flows[i])
		} else {
			aim(g, b[g.r.IntN(len(b))], &flows[i])
		}
	}
	// The churned policy is ordered last and matches nothing the lists
	// leave unmatched by construction: it only ever answers where both
	// lists say nil.
	churn := &Policy{Name: "churn", Action: Discard}
	allowed := make([][3]*Policy, len(flows))
	for i := range flows {
		allowed[i] = [3]*Policy{linear(a, &flows[i]), linear(b, &flows[i]), nil}
		if allowed[i][0] == nil || allowed[i][1] == nil {
			allowed[i][2] = churn
		}
	}

	d := New()
	if err := d.Replace(a); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var lookups atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := w; !stop.Load(); i = (i + 7) % len(flows) {
				got := d.Lookup(&flows[i])
				al := allowed[i]
				if got != nil && got != al[0] && got != al[1] && got != al[2] ||
					got == nil && al[0] != nil && al[1] != nil {
					select {
					case errs <- name(got) + " is no published answer for flow " + flows[i].Dst.String():
					default:
					}
					return
				}
				if got != nil {
					_ = got.SA.Load()
				}
				n++
			}
			lookups.Add(int64(n))
		}()
	}

	deadline := time.Now().Add(300 * time.Millisecond)
	sa := &sad.SA{SPI: 1}
	for i := 0; time.Now().Before(deadline); i++ {
		lists := [][]*Policy{a, b}
		if err := d.Replace(lists[i%2]); err != nil {
			t.Fatal(err)
		}
		if err := d.Insert(churn, -1); err != nil {
			t.Fatal(err)
		}
		a[i%len(a)].SA.Store(sa)
		if err := d.Remove(churn); err != nil {
			t.Fatal(err)
		}
		_ = d.Mirror()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if lookups.Load() == 0 {
		t.Fatal("readers did no lookups")
	}
}
