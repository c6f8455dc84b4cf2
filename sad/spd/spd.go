package spd

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/internal/enum"
	"github.com/xdpsec/xdpsec/sad"
)

// Action is what a matching policy does with a packet (RFC 4301 §4.4.1).
// The zero value is not an action, so a Policy whose Action was forgotten
// is refused by Replace rather than silently protecting or bypassing.
type Action uint8

const (
	Protect Action = iota + 1 // send through the policy's SA
	Bypass                    // send in the clear
	Discard                   // drop
)

var actionNames = [...]string{Protect: "protect", Bypass: "bypass", Discard: "discard"}

func (a Action) String() string { return enum.Name(a, actionNames[:], "action") }

// MSS clamp settings (Policy.MSSClamp, fastpath.Config.MSSClamp); a
// positive value is the largest MSS in bytes.
const (
	MSSInherit = 0  // the policy follows the gateway's setting (for the gateway: off)
	MSSAuto    = -1 // the largest segment that fits the tunnel's MTU
	MSSOff     = -2 // never clamp this policy's SYNs
)

// Policy is one SPD entry. Its Name, Selector, Action and ReqID are
// compiled into the index when the policy is published and must not
// change afterwards (publish a new Policy instead); SA may be stored at
// any time.
type Policy struct {
	Name     string
	Selector sad.Selector
	Action   Action
	ReqID    uint32
	// MSSClamp is the TCP MSS clamp for the policy's traffic (MSSInherit:
	// the gateway's setting; MSSAuto, MSSOff or a value in bytes).
	MSSClamp int
	// SA is the outbound SA of a PROTECT policy; nil means there is none
	// yet (the caller raises an acquire and drops the packet). Storing it
	// needs no rebuild: Lookup returns the Policy, and the caller loads SA.
	SA atomic.Pointer[sad.SA]
	// Acquire makes a PROTECT policy a trap (strongSwan's start_action
	// trap): a packet that finds no SA asks the control plane to negotiate
	// one (an acquire, RFC 4301 §4.4.1 and §5.2). Without it the packet is
	// only dropped. It may be set or cleared at any time.
	Acquire atomic.Bool
	// lastAcquire is when an acquire was last raised for the policy, on
	// the caller's monotonic clock (see TryAcquire); 0 means never.
	lastAcquire atomic.Int64
}

// TryAcquire reports whether an acquire may be raised for p at now
// (nanoseconds on a monotonic clock all callers share, never 0): at most
// one per interval, however many workers ask at once. Inside the interval
// it costs one atomic load; the one caller that wins the interval does one
// compare-and-swap, and the losers of that race are told no.
func (p *Policy) TryAcquire(now, interval int64) bool {
	last := p.lastAcquire.Load()
	if last != 0 && now-last < interval {
		return false
	}
	return p.lastAcquire.CompareAndSwap(last, now)
}

// Errors returned by the writers; they are wrapped with the position and
// name of the offending policy.
var (
	ErrNilPolicy      = errors.New("nil policy")
	ErrDuplicate      = errors.New("policy listed twice")
	ErrBadAction      = errors.New("invalid action")
	ErrFamilyMismatch = errors.New("source and destination prefixes are of different address families")
	ErrTooMany        = errors.New("too many policies")
	ErrNotFound       = errors.New("policy not in the SPD")
)

// MaxPolicies bounds the list so that positions fit the index's 32-bit
// order numbers with room to spare.
const MaxPolicies = 1 << 24

// SPD is an ordered security policy database. Lookup is safe from any
// number of goroutines at once and concurrently with the writers; the
// writers serialise among themselves. The zero value is an empty SPD.
type SPD struct {
	cur atomic.Pointer[index]
	mu  sync.Mutex // writers
}

// New returns an empty SPD: every lookup finds no policy.
func New() *SPD {
	d := &SPD{}
	d.cur.Store(emptyIndex)
	return d
}

var emptyIndex = build(nil)

// Lookup returns the first policy in order whose selector matches k, or nil
// when none does (the caller then applies its configured default, bypass
// or discard). It never locks and never allocates.
//
// Cost, in two steps. First a longest-prefix match of k.Dst over the
// distinct destination prefixes of its family: a binary search on prefix
// length with one hash probe per step, so ⌈log2(L+1)⌉ probes for L distinct
// lengths — at most 6 for IPv4 and 8 for IPv6, and one when the site
// policies share one length, as they usually do. The number of policies
// does not enter; each probe reads one short run of slots (tables are kept
// at most half full). Then the candidates: the policies whose destination
// prefix contains k.Dst, checked in order against source, protocol and
// ports, stopping at the first match and never looking at a policy ordered
// after a match already found (nor at any policy behind a broader one that
// takes every packet). A site policy followed by a default costs one check.
//
// The worst case is many policies sharing one destination prefix, or
// nested ones, that differ only by source, protocol or ports: they are
// checked one by one, a linear scan of that group (10,000 policies to
// 0.0.0.0/0 that differ by source cost 10,000 checks for a packet that
// matches the last of them or none). A destination that is not a plain
// IPv4 or IPv6 address (invalid, or zoned; the packet parser makes
// neither) scans the policies whose destination is any.
func (d *SPD) Lookup(k *packet.FlowKey) *Policy {
	ix := d.cur.Load()
	if ix == nil {
		return nil // zero SPD
	}
	return ix.lookup(k)
}

// Cache remembers the last flow a worker looked up and its answer, valid
// while the SPD publishes nothing new: packets of a batch mostly belong to
// one flow, and comparing a key is cheaper than any index walk. A Cache
// belongs to one goroutine; its zero value is ready.
type Cache struct {
	ix  *index
	key packet.FlowKey
	pol *Policy
}

// LookupCached is Lookup through c.
func (d *SPD) LookupCached(c *Cache, k *packet.FlowKey) *Policy {
	ix := d.cur.Load()
	if ix == nil {
		return nil
	}
	if c.ix == ix && c.key.Equal(k) {
		return c.pol
	}
	c.ix, c.key, c.pol = ix, *k, ix.lookup(k)
	return c.pol
}

// Replace publishes ps as the whole new ordered list. The slice is copied;
// the policies are not, and must not be modified afterwards except for
// their SA. On error the SPD is unchanged.
func (d *SPD) Replace(ps []*Policy) error {
	ps = append([]*Policy(nil), ps...)
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.publish(ps)
}

// Insert places p at position pos (0 is first); pos < 0 or pos ≥ Len()
// appends it. It rebuilds the index: writers are O(n).
func (d *SPD) Insert(p *Policy, pos int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.list()
	if pos < 0 || pos > len(old) {
		pos = len(old)
	}
	ps := make([]*Policy, 0, len(old)+1)
	ps = append(ps, old[:pos]...)
	ps = append(ps, p)
	ps = append(ps, old[pos:]...)
	return d.publish(ps)
}

// Remove takes p out of the SPD; it fails with ErrNotFound if p is not in
// it. Packets already looked up may still carry p for the rest of their
// batch.
func (d *SPD) Remove(p *Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.list()
	for i, q := range old {
		if q == p {
			ps := make([]*Policy, 0, len(old)-1)
			ps = append(ps, old[:i]...)
			ps = append(ps, old[i+1:]...)
			return d.publish(ps)
		}
	}
	if p == nil {
		return fmt.Errorf("spd: remove: %w", ErrNilPolicy)
	}
	return fmt.Errorf("spd: remove %q: %w", p.Name, ErrNotFound)
}

// Policies returns a copy of the current ordered list.
func (d *SPD) Policies() []*Policy {
	return append([]*Policy(nil), d.list()...)
}

// Len is the number of policies.
func (d *SPD) Len() int { return len(d.list()) }

func (d *SPD) list() []*Policy {
	if ix := d.cur.Load(); ix != nil {
		return ix.policies
	}
	return nil
}

// publish validates, compiles and stores ps; d.mu must be held.
func (d *SPD) publish(ps []*Policy) error {
	if err := validate(ps); err != nil {
		return err
	}
	d.cur.Store(build(ps))
	return nil
}

// validate checks what the index relies on and what is surely a
// configuration mistake. Selectors that match nothing (an empty or OPAQUE
// port range, ports on a protocol without ports) are allowed: IKE traffic
// selectors can legitimately produce them, and refusing one would refuse
// the whole list.
func validate(ps []*Policy) error {
	if len(ps) > MaxPolicies {
		return fmt.Errorf("spd: %d policies: %w (limit %d)", len(ps), ErrTooMany, MaxPolicies)
	}
	seen := make(map[*Policy]int, len(ps))
	for i, p := range ps {
		if p == nil {
			return fmt.Errorf("spd: policy %d: %w", i, ErrNilPolicy)
		}
		if j, dup := seen[p]; dup {
			return fmt.Errorf("spd: policy %d (%q): %w (also at %d)", i, p.Name, ErrDuplicate, j)
		}
		seen[p] = i
		switch p.Action {
		case Protect, Bypass, Discard:
		default:
			return fmt.Errorf("spd: policy %d (%q): %w %d", i, p.Name, ErrBadAction, uint8(p.Action))
		}
		s, t := p.Selector.Src, p.Selector.Dst
		if s.IsValid() && t.IsValid() && s.Addr().Is4() != t.Addr().Is4() {
			return fmt.Errorf("spd: policy %d (%q): %s -> %s: %w", i, p.Name, s, t, ErrFamilyMismatch)
		}
	}
	return nil
}

// noOrder is larger than every policy position.
const noOrder = math.MaxInt32
