package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
)

func TestSeqMarksRace(t *testing.T) {
	cl := testEtcd(t)
	type block struct{ first, last uint64 }
	var mu sync.Mutex
	var blocks []block
	var wg sync.WaitGroup
	const writers, each, size = 3, 40, 1000
	for w := 0; w < writers; w++ {
		m := &SeqMarks{cli: testClient(t, cl), keys: keys{"test"}, last: map[string]uint64{}, stale: map[string]bool{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				f, l, err := m.Reserve(context.Background(), ID("g1", "00001001"), size)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				blocks = append(blocks, block{f, l})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(blocks, func(a, b block) int { return int(a.first) - int(b.first) })
	if len(blocks) != writers*each {
		t.Fatalf("%d blocks", len(blocks))
	}
	next := uint64(1)
	for _, b := range blocks {
		if b.first != next || b.last != b.first+size-1 {
			t.Fatalf("block %d..%d after %d: overlap or gap", b.first, b.last, next-1)
		}
		next = b.last + 1
	}
}

func TestSeqMarksTakeover(t *testing.T) {
	_, a, b := twoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := ID("g1", "00001001")
	ma, mb := NewSeqMarks(a), NewSeqMarks(b)

	// b, the standby, cannot reserve.
	if _, _, err := mb.Reserve(ctx, id, 10); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("standby reserved: %v", err)
	}

	saA := testSA(t, 0x1001, sad.Outbound)
	ra := seqstate.NewReserver(ma.Save)
	now := time.Now()
	if err := ma.Resume(ctx, ra, []seqstate.Key{{SA: saA, Fingerprint: id}}, now); err != nil {
		t.Fatal(err)
	}
	// Traffic on a: three blocks' worth, the reserver running between
	// batches; the mark in etcd is never below what a handed out.
	var lastA uint64
	for i := 0; i < 3*seqstate.MinBlock/64; i++ {
		first, got := saA.ReserveSeq(64)
		if got > 0 {
			lastA = first + uint64(got) - 1
		}
		if i%256 == 0 {
			now = now.Add(seqstate.RefreshInterval)
			if err := ra.Refresh(now); err != nil {
				t.Fatal(err)
			}
			mark, err := mb.Load(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if lastA > mark || saA.SeqLimit() > mark {
				t.Fatalf("a handed out %d, limit %d, above the mark %d in etcd", lastA, saA.SeqLimit(), mark)
			}
		}
	}
	if lastA < 2*seqstate.MinBlock {
		t.Fatalf("a sent only up to %d", lastA)
	}

	// a hands g1 to b; a reserves nothing more.
	if err := a.Move(ctx, "g1", "b"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return b.Group("g1").MaySend(Now()) }) {
		t.Fatal("b did not take g1")
	}
	limit := saA.SeqLimit()
	for saA.Seq() < limit {
		saA.ReserveSeq(64)
	}
	if err := ra.Refresh(now.Add(time.Second)); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("deposed a's reservation: %v", err)
	}
	if saA.SeqLimit() != limit {
		t.Fatal("deposed a raised its limit")
	}
	if _, got := saA.ReserveSeq(1); got != 0 {
		t.Fatal("deposed a still hands out numbers")
	}

	// b resumes its copy of the SA above every number a could have used.
	saB := testSA(t, 0x1001, sad.Outbound)
	rb := seqstate.NewReserver(mb.Save)
	if err := mb.Resume(ctx, rb, []seqstate.Key{{SA: saB, Fingerprint: id}}, now); err != nil {
		t.Fatal(err)
	}
	first, got := saB.ReserveSeq(1)
	if got != 1 || first <= saA.Seq() || first <= limit {
		t.Fatalf("b starts at %d; a used up to %d (limit %d)", first, saA.Seq(), limit)
	}
	t.Logf("a used up to %d, b starts at %d", saA.Seq(), first)
}

// TestSeqMarksLostResponse: a raise that committed but whose answer was
// lost leaves the node's idea of the mark behind; the next Save fails
// (the compare refuses), reads the mark again and raises from it.
func TestSeqMarksLostResponse(t *testing.T) {
	_, a, _ := twoNodes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := ID("g1", "00001001")
	m := NewSeqMarks(a)
	if _, err := m.Load(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(id, 1000); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.last[id] = 500 // as if the answer to the raise to 1000 had been lost
	m.mu.Unlock()
	if err := m.Save(id, 2000); !errors.Is(err, ErrMarkMoved) {
		t.Fatalf("raise from a stale mark: %v", err)
	}
	if err := m.Save(id, 1000); err != nil {
		t.Fatalf("a mark durable already: %v", err)
	}
	if err := m.Save(id, 3000); err != nil {
		t.Fatalf("after re-reading: %v", err)
	}
	if got, _ := m.Load(ctx, id); got != 3000 {
		t.Fatalf("mark %d, want 3000", got)
	}
}
