package seqstate

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

// Block sizes: a block is about ReserveAhead of traffic at the SA's
// recent rate, a power of two between MinBlock and MaxBlock. A restart
// skips at most the unused part of one block, so small blocks waste
// little of a 32-bit sequence space; large ones keep the writes rare.
const (
	MinBlock = 1 << 16
	MaxBlock = 1 << 24
	// ReserveAhead is how much traffic a block covers. The Reserver runs
	// every RefreshInterval and renews a block when half of it is left,
	// so a fsync that takes up to ReserveAhead/2 costs no packet.
	ReserveAhead = time.Second
	// RefreshInterval is how often the daemon calls Refresh.
	RefreshInterval = 10 * time.Millisecond
	// rateWindow is the shortest time a rate is measured over.
	rateWindow = 50 * time.Millisecond
)

// Key is an outbound static SA and the fingerprint of its key.
type Key struct {
	SA          *sad.SA
	Fingerprint string
}

type entry struct {
	Key
	mark  uint64  // durable
	rate  float64 // packets a second, recent
	block uint64
	t0    time.Time
	seq0  uint64
}

// Reserver keeps each SA's limit at or below its durable mark, and the
// mark ahead of the traffic. Refresh is for one goroutine; the workers
// only read the limits it sets.
type Reserver struct {
	st *Store
	// mu guards entries: a live reload adds and removes keys (Add,
	// Remove) while the daemon's goroutine refreshes.
	mu      sync.Mutex
	entries []*entry
	// save is Store.Save; tests put failures in.
	save func(fp string, mark uint64) error
}

// Resume takes the keys over: each is locked, its mark read (a key
// without one is ErrUnknownKey), its SA moved past the mark, and a first
// block reserved durably before the SA may send. Call it before any
// worker runs. Errors name the SA and the fingerprint, never the key.
func Resume(st *Store, keys []Key, now time.Time) (*Reserver, error) {
	r := &Reserver{st: st, save: st.Save}
	if err := r.Add(keys, now); err != nil {
		return nil, err
	}
	return r, nil
}

// Add takes more keys over as Resume does (a live reload's new outbound
// static SAs, before they are installed): on an error none of them is
// kept.
func (r *Reserver) Add(keys []Key, now time.Time) error {
	var errs []error
	var added []*entry
	for _, k := range keys {
		k.SA.SetSeqLimit(0) // nothing at all until a mark is durable
		if err := r.st.Lock(k.Fingerprint); err != nil {
			errs = append(errs, keyErr(k, err))
			continue
		}
		mark, found, err := r.st.Load(k.Fingerprint)
		if err == nil && !found {
			err = ErrUnknownKey
		}
		if err != nil {
			errs = append(errs, keyErr(k, err))
			continue
		}
		// The limit first: nothing above the old mark until the new one
		// is on disk.
		k.SA.SetSeqLimit(mark)
		if k.SA.Seq() < mark {
			k.SA.SetSeq(mark)
		}
		added = append(added, &entry{Key: k, mark: mark, block: MinBlock, t0: now, seq0: k.SA.Seq()})
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.mu.Lock()
	r.entries = append(r.entries, added...)
	r.mu.Unlock()
	if err := r.Refresh(now); err != nil {
		r.Remove(keys)
		return err
	}
	return nil
}

// Remove stops keeping marks for keys' SAs (a live reload removed them).
func (r *Reserver) Remove(keys []Key) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = slices.DeleteFunc(r.entries, func(e *entry) bool {
		return slices.ContainsFunc(keys, func(k Key) bool { return k.SA == e.SA })
	})
}

// NewReserver makes a Reserver whose marks save makes durable instead of a
// Store: a cluster keeps them in etcd (package cluster), keyed by the
// Fingerprint field of each Key. SAs come in with Track (Add reads marks
// from a Store, which such a Reserver has not).
func NewReserver(save func(id string, mark uint64) error) *Reserver {
	return &Reserver{save: save}
}

// Track takes k.SA over at mark, which is durable already and at least
// every number any run may have used under its key: the SA's limit is
// set to mark and its counter moved past it; the next Refresh reserves a
// block above. Call it before the SA may send.
func (r *Reserver) Track(k Key, mark uint64, now time.Time) {
	// The limit first: nothing above the old mark until the new one is
	// durable.
	k.SA.SetSeqLimit(mark)
	if k.SA.Seq() < mark {
		k.SA.SetSeq(mark)
	}
	r.mu.Lock()
	r.entries = append(r.entries, &entry{Key: k, mark: mark, block: MinBlock, t0: now, seq0: k.SA.Seq()})
	r.mu.Unlock()
}

// TrackReserved takes a new SA over whose first block (its counter up to
// mark) was made durable for it alone (its mark created at mark, under
// keys no one used before): its limit is raised to mark at once and its
// counter left where it is; later blocks come from Refresh as usual.
func (r *Reserver) TrackReserved(k Key, mark uint64, now time.Time) {
	r.mu.Lock()
	r.entries = append(r.entries, &entry{Key: k, mark: mark, block: MinBlock, t0: now, seq0: k.SA.Seq()})
	r.mu.Unlock()
	k.SA.SetSeqLimit(mark)
}

func keyErr(k Key, err error) error {
	return fmt.Errorf("sa %s (spi 0x%08x, key %s): %w", k.SA.Name, k.SA.SPI, k.Fingerprint, err)
}

// Refresh measures each SA's rate and, where less than half a block is
// left below the mark, makes a new mark durable and then raises the
// SA's limit to it. A failed save leaves the limit where it was: the SA
// runs into it and drops (seq_unreserved), it never goes past a mark
// that is not on disk. The errors are for the log.
func (r *Reserver) Refresh(now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, e := range r.entries {
		sa := e.SA
		seq := sa.Seq()
		if dt := now.Sub(e.t0); dt >= rateWindow {
			measured := float64(seq-e.seq0) / dt.Seconds()
			if measured > e.rate {
				e.rate = measured // up at once
			} else {
				e.rate -= (e.rate - measured) / 8 // down slowly
			}
			e.t0, e.seq0 = now, seq
			e.block = blockFor(e.rate)
		}
		if left := e.mark - min(seq, e.mark); left >= e.block/2 || e.mark >= sa.SeqMax() {
			continue
		}
		next := seq + e.block
		if next < seq || next > sa.SeqMax() {
			next = sa.SeqMax()
		}
		if next <= e.mark {
			continue
		}
		if err := r.save(e.Fingerprint, next); err != nil {
			errs = append(errs, keyErr(e.Key, err))
			continue
		}
		e.mark = next
		sa.SetSeqLimit(next)
	}
	return errors.Join(errs...)
}

// blockFor is the block for a rate: ReserveAhead of traffic, rounded up
// to a power of two, within MinBlock..MaxBlock.
func blockFor(rate float64) uint64 {
	want := uint64(rate * ReserveAhead.Seconds())
	if want <= MinBlock {
		return MinBlock
	}
	if want >= MaxBlock {
		return MaxBlock
	}
	return 1 << bits.Len64(want-1)
}
