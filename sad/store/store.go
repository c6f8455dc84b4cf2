// Package store owns the SAs and policies a gateway has now: the inbound
// SA table the workers look SPIs up in, the SPD (with the outbound SAs
// its policies point at), the XDP programs' mirror of both (behind the
// narrow Mirror interface), the binding of ReqIDs to policies, and the
// retirement of deleted SAs. Static SAs (the configuration file's) and
// negotiated ones (IKE's) come in through the same door (Install).
//
// Readers never lock: the workers look SAs up in a sad.Table and follow
// spd.Policy.SA, both atomic pointers. Writers serialise on the store's
// mutex. Each change follows RFC 7296 §2.8's order for a rekey: a new
// inbound SA is in the table and live in the XDP program before the
// outbound side moves to its pair, and an old SA goes only after that
// (Apply orders a Diff so; the IKE engine calls Install and Delete in
// that order itself). A deleted SA is killed at once (a worker holding it
// stops using it at its next look at Usable) and its keys are wiped only
// after every worker has passed a quiescent point since (Grace).
//
// For live reload and clustering the store is also a whole: Snapshot
// copies what it holds under a generation number, Apply makes a Diff's
// installs and deletes as one change, and Watch delivers each change to
// the slow path (never to the workers).
package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// Mirror is what the store needs of the XDP programs: an inbound SPI made
// live (steered to the workers) or dead (dropped as unknown), and the
// policies republished after the SPD changed. The store calls it under
// its lock, so a Mirror must not call back into the store. The daemon's
// implementation talks to the bpf package; the store does not import it.
type Mirror interface {
	SetSPILive(spi uint32, live bool) error
	SyncPolicies() error
}

// Origin says who installed an SA.
type Origin uint8

const (
	// Negotiated SAs come from IKE: outbound ones are bound to policies
	// by ReqID.
	Negotiated Origin = iota
	// Static SAs come from the configuration file: the file's policies
	// name their outbound SA themselves.
	Static
)

func (o Origin) String() string {
	if o == Static {
		return "static"
	}
	return "negotiated"
}

// Key names an installed SA. SPIs are unique per direction and origin (a
// peer picks our outbound SPIs, and may pick one a static SA has); the
// inbound table holds every inbound SA, so inbound SPIs are unique.
type Key struct {
	SPI    uint32
	Dir    sad.Direction
	Origin Origin
}

func (k Key) String() string { return fmt.Sprintf("%s %s %08x", k.Origin, k.Dir, k.SPI) }

// Trap is a fail-closed policy of a configured child: PROTECT without an
// SA until a Child SA binds it. Tag is the caller's (the IKE plane's name
// of the child an acquire of the policy asks for); nil for none.
type Trap struct {
	Policy *spd.Policy
	Tag    any
}

// Config sets a store up.
type Config struct {
	// Hint sizes the inbound table.
	Hint int
	// Policies are the configuration file's, in order; Traps come after
	// them.
	Policies []*spd.Policy
	Traps    []Trap
	// Mirror may be nil (no XDP programs, as in tests) and set later
	// with SetMirror.
	Mirror Mirror
	// Grace tracks the workers; nil makes one.
	Grace *Grace
}

type entry struct {
	key Key
	sa  *sad.SA
	sel []sad.Selector // negotiated outbound: the selectors it came with
	// soft, hard: the expiry was reported (Expiring).
	soft, hard bool
}

type retired struct {
	sa    *sad.SA
	epoch uint64
}

// Store is the gateway's SA and policy database. Its zero value is not
// usable; make one with New.
type Store struct {
	inbound *sad.Table
	spd     *spd.SPD
	grace   *Grace

	mu     sync.Mutex
	mirror Mirror
	gen    uint64
	sas    map[Key]*entry
	// bound are the policies a ReqID's outbound SAs are published
	// through, and reqOut the outbound SPIs installed under each ReqID
	// (two during a rekey).
	bound  map[uint32][]*spd.Policy
	reqOut map[uint32]map[uint32]bool
	// traps are the fail-closed policies; owner says which ReqID has
	// them bound (0: none), tags what the caller said they stand for.
	traps []*spd.Policy
	owner map[*spd.Policy]uint32
	tags  map[*spd.Policy]any
	// dynamic are policies made for narrowed selectors; they go when
	// their ReqID has no outbound SA left.
	dynamic map[*spd.Policy]bool
	retired []retired
	watch   map[*watcher]bool
	// configured are the policies and traps New or ReplaceConfigured
	// were given (the configuration's), as opposed to those the store
	// added itself (narrowed, InstallTrap's).
	configured map[*spd.Policy]bool
}

// New builds a store holding cfg's policies and traps and no SAs.
func New(cfg Config) (*Store, error) {
	s := &Store{
		inbound: sad.NewTable(cfg.Hint), spd: spd.New(), grace: cfg.Grace, mirror: cfg.Mirror,
		sas:   map[Key]*entry{},
		bound: map[uint32][]*spd.Policy{}, reqOut: map[uint32]map[uint32]bool{},
		owner: map[*spd.Policy]uint32{}, tags: map[*spd.Policy]any{}, dynamic: map[*spd.Policy]bool{},
		watch: map[*watcher]bool{},
	}
	if s.grace == nil {
		s.grace = NewGrace()
	}
	pols := slices.Clone(cfg.Policies)
	s.configured = map[*spd.Policy]bool{}
	for _, p := range cfg.Policies {
		s.configured[p] = true
	}
	for _, t := range cfg.Traps {
		s.configured[t.Policy] = true
		s.traps = append(s.traps, t.Policy)
		if t.Tag != nil {
			s.tags[t.Policy] = t.Tag
		}
		pols = append(pols, t.Policy)
	}
	if err := s.spd.Replace(pols); err != nil {
		return nil, fmt.Errorf("spd: %w", err)
	}
	return s, nil
}

// Inbound is the table the workers look inbound SPIs up in.
func (s *Store) Inbound() *sad.Table { return s.inbound }

// SPD is the policy database the workers look packets up in.
func (s *Store) SPD() *spd.SPD { return s.spd }

// Grace is the tracker the workers publish their epochs to.
func (s *Store) Grace() *Grace { return s.grace }

// SetMirror sets the XDP mirror (the programs load after the tables are
// built).
func (s *Store) SetMirror(m Mirror) {
	s.mu.Lock()
	s.mirror = m
	s.mu.Unlock()
}

func (s *Store) setLive(spi uint32, live bool) error {
	if s.mirror == nil {
		return nil
	}
	return s.mirror.SetSPILive(spi, live)
}

func (s *Store) syncPolicies() error {
	if s.mirror == nil {
		return nil
	}
	return s.mirror.SyncPolicies()
}

func keyOf(sa *sad.SA, o Origin) Key { return Key{SPI: sa.SPI, Dir: sa.Dir, Origin: o} }

// Install publishes sa, which the store owns from now on (its keys are
// wiped when it goes, or at once if Install fails). An inbound SA goes
// into the table, then live in the XDP programs. A static outbound SA is
// recorded (the file's policies point at it already). A negotiated
// outbound SA is published through the policies of its ReqID, one atomic
// store each: the first SA of a ReqID binds the configured traps whose
// selectors sel are (or new policies, placed first, for selectors the
// responder narrowed); a rekey's SA repoints them, and the old SA stays
// until Delete.
func (s *Store) Install(sa *sad.SA, o Origin, sel []sad.Selector) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.install(sa, o, sel); err != nil {
		return err
	}
	s.gen++
	s.notify(Event{Kind: Installed, Key: keyOf(sa, o), ReqID: sa.ReqID, Name: sa.Name})
	return nil
}

// install is Install without the event; s.mu is held. On error nothing
// is published any more and sa's keys are wiped, or retire (if a worker
// may have seen it).
func (s *Store) install(sa *sad.SA, o Origin, sel []sad.Selector) error {
	err := s.publish(sa, o, sel)
	if err != nil && !sa.Dead() {
		sa.Crypto.Destroy() // never published
	}
	return err
}

func (s *Store) publish(sa *sad.SA, o Origin, sel []sad.Selector) error {
	k := keyOf(sa, o)
	if sa.Dir == sad.Inbound {
		if err := s.inbound.Add(sa); err != nil {
			return fmt.Errorf("inbound sa %08x: %w", sa.SPI, err)
		}
		if err := s.setLive(sa.SPI, true); err != nil {
			// It may have been seen meanwhile: it retires as any other.
			s.inbound.Delete(sa.SPI)
			s.retire(sa)
			return fmt.Errorf("inbound sa %08x: %w", sa.SPI, err)
		}
		s.sas[k] = &entry{key: k, sa: sa}
		return nil
	}
	if _, dup := s.sas[k]; dup {
		return fmt.Errorf("outbound sa %08x: already installed", sa.SPI)
	}
	if o == Negotiated {
		if err := s.bind(sa, sel); err != nil {
			return err
		}
	}
	s.sas[k] = &entry{key: k, sa: sa, sel: slices.Clone(sel)}
	return nil
}

// bind points the policies of sa's ReqID at sa; s.mu is held.
func (s *Store) bind(sa *sad.SA, sel []sad.Selector) error {
	pols, ok := s.bound[sa.ReqID]
	if !ok {
		var added []*spd.Policy
		for i, sl := range sel {
			var pol *spd.Policy
			for _, t := range s.traps {
				if SameSelector(t.Selector, sl) && s.owner[t] == 0 {
					pol = t
					break
				}
			}
			if pol == nil {
				pol = &spd.Policy{Name: fmt.Sprintf("%s#%d", sa.Name, i), Selector: sl, Action: spd.Protect, ReqID: sa.ReqID}
				added = append(added, pol)
			}
			s.owner[pol] = sa.ReqID
			pols = append(pols, pol)
		}
		// Newer, narrower policies come first: traffic they take is this
		// SA's; the rest still meets the traps.
		for i, pol := range added {
			if err := s.spd.Insert(pol, i); err != nil {
				for _, q := range added[:i] {
					s.spd.Remove(q)
					delete(s.dynamic, q)
				}
				for _, q := range pols {
					delete(s.owner, q)
				}
				return fmt.Errorf("outbound sa %08x: spd: %w", sa.SPI, err)
			}
			s.dynamic[pol] = true
		}
		s.bound[sa.ReqID] = pols
		if len(added) > 0 {
			if err := s.syncPolicies(); err != nil {
				// The SPD itself is right; the XDP program's copy only
				// steers, and the next sync puts it right.
				s.notify(Event{Kind: MirrorFailed, Err: err.Error()})
			}
		}
	}
	for _, pol := range pols {
		pol.SA.Store(sa)
	}
	if s.reqOut[sa.ReqID] == nil {
		s.reqOut[sa.ReqID] = map[uint32]bool{}
	}
	s.reqOut[sa.ReqID][sa.SPI] = true
	return nil
}

// Delete removes an installed SA. An inbound SA leaves the table and the
// live SPI set; an outbound one is unhooked from the policies that still
// point at it (a rekey's replacement is left alone). When a ReqID has no
// outbound SA left its policies fall back to dropping: the configured
// selectors stay as fail-closed traps, narrowed ones go. The SA retires:
// killed now, its keys wiped once the workers have passed it (Reclaim).
//
// It returns the SA it deleted (nil if k was not installed) and the
// mirror's errors.
func (s *Store) Delete(k Key) (*sad.SA, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.sas[k]
	if !ok {
		return nil, fmt.Errorf("%sbound sa %08x: not installed", k.Dir, k.SPI)
	}
	err := s.remove(e)
	s.gen++
	s.notify(Event{Kind: Deleted, Key: k, ReqID: e.sa.ReqID, Name: e.sa.Name})
	return e.sa, err
}

// remove is Delete's work; s.mu is held. The SA is gone whatever the
// error says (the mirror's).
func (s *Store) remove(e *entry) error {
	k, sa := e.key, e.sa
	delete(s.sas, k)
	var err error
	switch {
	case k.Dir == sad.Inbound:
		s.inbound.Delete(k.SPI)
		err = s.setLive(k.SPI, false)
	case k.Origin == Static:
		for _, pol := range s.spd.Policies() {
			pol.SA.CompareAndSwap(sa, nil)
		}
	default:
		for _, pol := range s.bound[sa.ReqID] {
			pol.SA.CompareAndSwap(sa, nil)
		}
		delete(s.reqOut[sa.ReqID], k.SPI)
		if len(s.reqOut[sa.ReqID]) == 0 {
			delete(s.reqOut, sa.ReqID)
			err = s.release(sa.ReqID)
		}
	}
	s.retire(sa)
	return err
}

// release unbinds a ReqID's policies; s.mu is held.
func (s *Store) release(reqID uint32) error {
	var removed bool
	var errs []error
	for _, pol := range s.bound[reqID] {
		delete(s.owner, pol)
		if s.dynamic[pol] {
			delete(s.dynamic, pol)
			if err := s.spd.Remove(pol); err != nil {
				errs = append(errs, err)
			}
			removed = true
		}
	}
	delete(s.bound, reqID)
	if removed {
		errs = append(errs, s.syncPolicies())
	}
	return errors.Join(errs...)
}

// retire kills sa and queues its keys for wiping once every worker has
// passed the epoch that begins now; s.mu is held.
func (s *Store) retire(sa *sad.SA) {
	sa.Kill()
	s.retired = append(s.retired, retired{sa, s.grace.Advance()})
}

// Reclaim wipes the keys of the retired SAs no worker can hold any more
// and returns how many it wiped; those a worker may still hold wait for
// a later call.
func (s *Store) Reclaim() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	keep := s.retired[:0]
	for _, r := range s.retired {
		if s.grace.Passed(r.epoch) {
			r.sa.Crypto.Destroy()
			n++
			continue
		}
		keep = append(keep, r)
	}
	clear(s.retired[len(keep):])
	s.retired = keep
	return n
}

// Retired is the number of SAs waiting for the workers to pass them.
func (s *Store) Retired() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.retired)
}

// Move replaces the negotiated outbound SA spi with a copy that sends
// from local to remote with encap (the peer's NAT mapping changed; see
// sad.SA.Moved): the copy takes its place in each policy with one atomic
// swap and the old one is killed. The old one shares the copy's keys, so
// it does not retire.
func (s *Store) Move(spi uint32, local, remote netip.Addr, encap sad.UDPEncap) (*sad.SA, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := Key{SPI: spi, Dir: sad.Outbound, Origin: Negotiated}
	e, ok := s.sas[k]
	if !ok {
		return nil, fmt.Errorf("outbound sa %08x: not installed", spi)
	}
	old := e.sa
	sa, err := old.Moved(local, remote, encap)
	if err != nil {
		return nil, err
	}
	e.sa = sa
	for _, pol := range s.bound[old.ReqID] {
		pol.SA.CompareAndSwap(old, sa)
	}
	old.Kill()
	s.gen++
	s.notify(Event{Kind: Moved, Key: k, ReqID: sa.ReqID, Name: sa.Name})
	return sa, nil
}

// Lookup returns the installed SA k, or nil.
func (s *Store) Lookup(k Key) *sad.SA {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.sas[k]; e != nil {
		return e.sa
	}
	return nil
}

// Bound returns the policies ReqID reqID's outbound SAs are published
// through (nil: none bound).
func (s *Store) Bound(reqID uint32) []*spd.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bound[reqID])
}

// SAs returns the installed SAs of origin o, inbound first, each
// direction by SPI.
func (s *Store) SAs(o Origin) []*sad.SA {
	s.mu.Lock()
	defer s.mu.Unlock()
	var es []*entry
	for k, e := range s.sas {
		if k.Origin == o {
			es = append(es, e)
		}
	}
	sortEntries(es)
	out := make([]*sad.SA, len(es))
	for i, e := range es {
		out[i] = e.sa
	}
	return out
}

func sortEntries(es []*entry) {
	slices.SortFunc(es, func(a, b *entry) int {
		if a.key.Dir != b.key.Dir {
			if a.key.Dir == sad.Inbound {
				return -1
			}
			return 1
		}
		if a.key.SPI != b.key.SPI {
			if a.key.SPI < b.key.SPI {
				return -1
			}
			return 1
		}
		return int(a.key.Origin) - int(b.key.Origin)
	})
}

// InstallTrap keeps selectors as PROTECT policies without an SA that
// raise acquires (dpd_action trap). A trap already in the SPD that covers
// a selector (the configured child's, when the peer narrowed) catches its
// traffic before anything added behind it: it raises acquires from now
// on. Other selectors get a policy at the end of the SPD; tag says what
// it stands for (ok false: nothing, and it raises no acquire).
func (s *Store) InstallTrap(reqID uint32, sel []sad.Selector, tag func(sad.Selector) (any, bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var added bool
	for i, sl := range sel {
		covered := false
		for _, t := range s.traps {
			if Covers(t.Selector, sl) {
				t.Acquire.Store(true)
				covered = true
			}
		}
		if covered {
			continue
		}
		pol := &spd.Policy{Name: fmt.Sprintf("trap-%d#%d", reqID, i), Selector: sl, Action: spd.Protect}
		tg, ok := tag(sl)
		if ok {
			pol.Acquire.Store(true)
		}
		if err := s.spd.Insert(pol, -1); err != nil {
			return fmt.Errorf("trap %d: %w", reqID, err)
		}
		s.traps = append(s.traps, pol)
		if ok {
			s.tags[pol] = tg
		}
		added = true
	}
	if !added {
		return nil
	}
	s.gen++
	s.notify(Event{Kind: Trapped, ReqID: reqID})
	return s.syncPolicies()
}

// TrapTag is the tag of trap policy pol.
func (s *Store) TrapTag(pol *spd.Policy) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tags[pol]
	return t, ok
}

// Expiry is an SA whose soft (rekey) or hard (dead) limit was reached.
type Expiry struct {
	Key  Key
	SA   *sad.SA
	Hard bool
}

// Expiring reports the SAs of origin o that reached a count limit (bytes,
// packets, sequence numbers) or, for static SAs, a time limit (checked
// against now; IKE keeps negotiated SAs' time limits itself), each once.
// A negotiated SA reports its hard limit, or else its soft one; a static
// one each, the hard one as soon as it is no longer usable.
func (s *Store) Expiring(o Origin, now time.Time) []Expiry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Expiry
	for k, e := range s.sas {
		if k.Origin != o {
			continue
		}
		sa := e.sa
		if o == Static {
			sa.CheckTime(now)
			if sa.NeedsRekey() && !e.soft {
				e.soft = true
				out = append(out, Expiry{k, sa, false})
			}
			if !sa.Usable() && !e.hard {
				e.hard = true
				out = append(out, Expiry{k, sa, true})
			}
			continue
		}
		if sa.Expired() && !e.hard {
			e.hard = true
			out = append(out, Expiry{k, sa, true})
		} else if sa.NeedsRekey() && !e.soft {
			e.soft = true
			out = append(out, Expiry{k, sa, false})
		}
	}
	return out
}

// Close kills every SA, installed or retired, and wipes its keys. The
// workers must have stopped.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.retired {
		r.sa.Crypto.Destroy()
	}
	s.retired = nil
	for _, e := range s.sas {
		e.sa.Kill()
		e.sa.Crypto.Destroy()
	}
	for w := range s.watch {
		w.close()
	}
}

// SameSelector compares selectors as the SPD matches them: a port range
// covering every port is "any", prefixes compare masked.
func SameSelector(a, b sad.Selector) bool {
	norm := func(s sad.Selector) sad.Selector {
		if s.SrcPorts.AnyPort() {
			s.SrcPorts = sad.PortRange{}
		}
		if s.DstPorts.AnyPort() {
			s.DstPorts = sad.PortRange{}
		}
		s.Src, s.Dst = s.Src.Masked(), s.Dst.Masked()
		return s
	}
	return norm(a) == norm(b)
}

// Covers reports whether every packet sel matches, outer matches too.
func Covers(outer, sel sad.Selector) bool {
	pfx := func(o, s netip.Prefix) bool {
		if !o.IsValid() {
			return true // any
		}
		return s.IsValid() && o.Addr().Is4() == s.Addr().Is4() && o.Bits() <= s.Bits() && o.Contains(s.Addr())
	}
	ports := func(o, s sad.PortRange) bool {
		return o.AnyPort() || !s.AnyPort() && o.Lo <= s.Lo && s.Hi <= o.Hi
	}
	return pfx(outer.Src, sel.Src) && pfx(outer.Dst, sel.Dst) &&
		(outer.Proto == 0 || outer.Proto == sel.Proto) &&
		ports(outer.SrcPorts, sel.SrcPorts) && ports(outer.DstPorts, sel.DstPorts)
}
