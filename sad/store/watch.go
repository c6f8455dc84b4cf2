package store

import (
	"errors"
	"fmt"
	"slices"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// EventKind says what changed.
type EventKind uint8

const (
	// Installed: an SA was published (Key).
	Installed EventKind = iota + 1
	// Deleted: an SA was unpublished and retires (Key).
	Deleted
	// Moved: an outbound SA was replaced by a copy with new endpoints.
	Moved
	// Trapped: trap policies were added for ReqID.
	Trapped
	// MirrorFailed: the XDP programs' copy of the SPD could not be
	// updated (Err); the SPD itself is right.
	MirrorFailed
	// Reconfigured: the configuration's policies and traps were
	// replaced (ReplaceConfigured, a live reload).
	Reconfigured
)

var eventNames = [...]string{Installed: "installed", Deleted: "deleted", Moved: "moved", Trapped: "trapped", MirrorFailed: "mirror_failed", Reconfigured: "reconfigured"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && eventNames[k] != "" {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one change, as a watcher sees it: no key material. Gen is the
// store's generation after the change; the events of one Apply share it.
type Event struct {
	Gen   uint64
	Kind  EventKind
	Key   Key
	ReqID uint32
	Name  string
	Err   string
}

type watcher struct {
	c      chan Event
	closed bool
}

func (w *watcher) close() {
	if !w.closed {
		w.closed = true
		close(w.c)
	}
}

// Watch subscribes to the store's changes, for the slow path (reload,
// cluster sync, logs): each change is sent on the returned channel, which
// holds up to buf events. A watcher that falls further behind has its
// channel closed (it missed something: take a Snapshot and watch again);
// the store never waits for one. cancel ends the subscription and closes
// the channel.
func (s *Store) Watch(buf int) (<-chan Event, func()) {
	w := &watcher{c: make(chan Event, max(buf, 1))}
	s.mu.Lock()
	s.watch[w] = true
	s.mu.Unlock()
	return w.c, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.watch, w)
		w.close()
	}
}

// notify sends ev to the watchers; s.mu is held.
func (s *Store) notify(ev Event) {
	ev.Gen = s.gen
	for w := range s.watch {
		select {
		case w.c <- ev:
		default:
			delete(s.watch, w)
			w.close()
		}
	}
}

// Gen is the store's generation: it grows with every change.
func (s *Store) Gen() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Entry is an installed SA in a Snapshot. SA is the store's own: a
// snapshot is for reading; to install it elsewhere make a new SA from
// its configuration.
type Entry struct {
	Key       Key
	SA        *sad.SA
	Selectors []sad.Selector // negotiated outbound: the selectors it was bound with
}

// Snapshot is everything the store holds at one generation.
type Snapshot struct {
	Gen uint64
	// SAs: inbound first, each direction by SPI.
	SAs []Entry
	// Policies are the SPD in order, traps and narrowed ones included.
	Policies []*spd.Policy
	// Bound are the policies each ReqID's outbound SAs go through.
	Bound map[uint32][]*spd.Policy
}

// Snapshot copies what the store holds, under its lock: every SA, the
// SPD's policies and the ReqID bindings, with the generation they are of.
// A watcher that subscribed before the Snapshot sees every later change
// as events with a higher Gen.
func (s *Store) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	es := make([]*entry, 0, len(s.sas))
	for _, e := range s.sas {
		es = append(es, e)
	}
	sortEntries(es)
	snap := Snapshot{Gen: s.gen, Policies: s.spd.Policies(), Bound: map[uint32][]*spd.Policy{}}
	for _, e := range es {
		snap.SAs = append(snap.SAs, Entry{Key: e.key, SA: e.sa, Selectors: slices.Clone(e.sel)})
	}
	for r, ps := range s.bound {
		snap.Bound[r] = slices.Clone(ps)
	}
	return snap
}

// Change is an SA a Diff installs.
type Change struct {
	SA        *sad.SA
	Origin    Origin
	Selectors []sad.Selector // negotiated outbound SAs: as Install's
}

// Diff is a set of changes applied as one (Apply).
type Diff struct {
	Install []Change
	Delete  []Key
}

// Diff returns what turns the store state from into to: the SAs to's
// has and from's lacks are installed, those from's has and to's lacks
// deleted. Installs carry to's SA objects; a caller applying the diff to
// another store makes its own SAs from them.
func (from Snapshot) Diff(to Snapshot) Diff {
	have := map[Key]bool{}
	for _, e := range from.SAs {
		have[e.Key] = true
	}
	want := map[Key]bool{}
	var d Diff
	for _, e := range to.SAs {
		want[e.Key] = true
		if !have[e.Key] {
			d.Install = append(d.Install, Change{SA: e.SA, Origin: e.Key.Origin, Selectors: e.Selectors})
		}
	}
	for _, e := range from.SAs {
		if !want[e.Key] {
			d.Delete = append(d.Delete, e.Key)
		}
	}
	return d
}

// Apply makes d's changes as one, in RFC 7296 §2.8's order: the new
// inbound SAs first, then the new outbound ones (which take over their
// ReqIDs' policies), then the deletes, outbound before inbound. So a
// Diff that installs a rekeyed pair and deletes the old one switches
// without a moment in which either direction has no SA. It checks d
// first (no install of an SA the store has or the Diff has twice, no
// delete of one it lacks) and changes nothing if that fails; if an install
// fails, those made before it are undone and its error returned. The
// deletes cannot fail but for the XDP mirror, whose errors are returned
// with every delete made. The store owns the installed SAs, and wipes
// the keys of those it could not install.
func (s *Store) Apply(d Diff) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	destroy := func() {
		for _, c := range d.Install {
			if !c.SA.Dead() {
				c.SA.Crypto.Destroy()
			}
		}
	}
	seen := map[Key]bool{}
	for _, c := range d.Install {
		k := keyOf(c.SA, c.Origin)
		if seen[k] || s.sas[k] != nil {
			destroy()
			return fmt.Errorf("apply: %s: already installed", k)
		}
		seen[k] = true
	}
	dels := map[Key]bool{}
	for _, k := range d.Delete {
		if s.sas[k] == nil || dels[k] {
			destroy()
			return fmt.Errorf("apply: %s: not installed", k)
		}
		dels[k] = true
	}
	ins := slices.Clone(d.Install)
	slices.SortStableFunc(ins, func(a, b Change) int { return dirRank(a.SA.Dir, sad.Inbound) - dirRank(b.SA.Dir, sad.Inbound) })
	for i, c := range ins {
		if err := s.install(c.SA, c.Origin, c.Selectors); err != nil {
			for j := i - 1; j >= 0; j-- {
				s.remove(s.sas[keyOf(ins[j].SA, ins[j].Origin)])
			}
			for _, c := range ins[i+1:] {
				c.SA.Crypto.Destroy()
			}
			return fmt.Errorf("apply: %w", err)
		}
	}
	del := slices.Clone(d.Delete)
	slices.SortStableFunc(del, func(a, b Key) int { return dirRank(a.Dir, sad.Outbound) - dirRank(b.Dir, sad.Outbound) })
	var errs []error
	gone := make([]*sad.SA, len(del))
	for i, k := range del {
		e := s.sas[k]
		gone[i] = e.sa
		if err := s.remove(e); err != nil {
			errs = append(errs, fmt.Errorf("apply: %s: %w", k, err))
		}
	}
	s.gen++
	for _, c := range ins {
		s.notify(Event{Kind: Installed, Key: keyOf(c.SA, c.Origin), ReqID: c.SA.ReqID, Name: c.SA.Name})
	}
	for i, k := range del {
		s.notify(Event{Kind: Deleted, Key: k, ReqID: gone[i].ReqID, Name: gone[i].Name})
	}
	return errors.Join(errs...)
}

// dirRank is 0 for first, 1 for the other direction.
func dirRank(d, first sad.Direction) int {
	if d == first {
		return 0
	}
	return 1
}
