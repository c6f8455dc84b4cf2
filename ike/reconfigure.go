package ike

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/sad"
)

// Live reconfiguration (xdpsec reload). Every change runs on the loop
// goroutine, which alone touches the connections and the SAs; the gate
// reads the connections only through peers, which the loop republishes
// after each change. A connection's settings are never edited in place:
// a change replaces its *Connection, and the SAs made under it are
// pointed at the new one, so an exchange sees either the old settings or
// the new ones, never a mix.

// peerConns is the connection list the gate admits IKE_SA_INITs by.
func (e *Engine) peerConns() []*Connection {
	if p := e.peers.Load(); p != nil {
		return *p
	}
	return nil
}

// publishPeers gives the gate the current connection list (loop only).
func (e *Engine) publishPeers() {
	cs := append([]*Connection(nil), e.conns...)
	e.peers.Store(&cs)
}

// setCookiePolicy sets when IKE_SA_INIT requests must carry a COOKIE.
func (e *Engine) setCookiePolicy(threshold int, always bool) {
	if threshold <= 0 {
		threshold = DefaultCookieThreshold
	}
	e.cookieThreshold.Store(int64(threshold))
	e.cookiesAlways.Store(always)
}

// prepare validates c as New does, with the identity a certificate gives.
func prepare(c Connection) (*Connection, error) {
	if c.Local.ID.Type == 0 && c.Local.Certificate != nil {
		c.Local.ID = IdentityDN(c.Local.Certificate)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("ike: %w", err)
	}
	return &c, nil
}

// AddConnection adds a connection and follows its start action: start
// initiates it now (the outcome is logged, not waited for); trap and
// none wait for traffic (the caller installs the trap policies) or for
// the peer.
func (e *Engine) AddConnection(ctx context.Context, c Connection) error {
	nc, err := prepare(c)
	if err != nil {
		return err
	}
	var res error
	if !e.do(ctx, func() {
		if e.connection(nc.Name) != nil {
			res = fmt.Errorf("ike: connection %s exists already", nc.Name)
			return
		}
		e.conns = append(e.conns, nc)
		e.publishPeers()
		if nc.StartAction == StartStart {
			if _, err := e.initiate(nc.Name, nil); err != nil {
				e.log.Warn("start failed", "connection", nc.Name, "err", err)
			}
		}
	}) {
		return errors.New("ike: engine closed")
	}
	return res
}

// RemoveConnection forgets a connection and deletes its IKE SAs, and so
// their Child SAs, with an INFORMATIONAL Delete to the peer; it waits
// until the peer answered, the exchange gave up, or ctx ended (then the
// SAs are destroyed without waiting further). The connection is gone
// from the start: the peer cannot set it up again, an acquire cannot
// start it. The Child SAs leave the data plane through the Installer as
// the Delete completes.
func (e *Engine) RemoveConnection(ctx context.Context, name string) error {
	var waits []chan error
	var sas []*ikeSA
	var removed *Connection
	if !e.do(ctx, func() {
		for i, c := range e.conns {
			if c.Name == name {
				e.conns = append(e.conns[:i:i], e.conns[i+1:]...)
				removed = c
				break
			}
		}
		if removed == nil {
			return
		}
		e.publishPeers()
		for _, sa := range e.sas {
			sa.cands = slices.DeleteFunc(sa.cands, func(c *Connection) bool { return c == removed })
			if sa.conn == nil || sa.conn.Name != name || sa.state == StateDead {
				continue
			}
			sas = append(sas, sa)
			waits = append(waits, sa.terminate())
		}
	}) {
		return errors.New("ike: engine closed")
	}
	if removed == nil {
		return fmt.Errorf("ike: no connection %q", name)
	}
	err := wait(ctx, false, waits...)
	if err != nil {
		// The peer did not answer in time: nothing of the connection may
		// stay installed (fail closed), so its SAs go now.
		e.do(context.Background(), func() {
			for _, sa := range sas {
				if sa.state != StateDead {
					sa.destroy()
				}
			}
		})
	}
	e.do(context.Background(), func() {
		crypto.Zero(removed.Local.PSK)
		crypto.Zero(removed.Remote.PSK)
	})
	return err
}

// ReplaceConnection gives the connection named c.Name new settings. The
// IKE SAs and Child SAs made under the old ones stay up and untouched;
// they use the new settings from their next exchange on: proposals at
// the next rekey, lifetimes and DPD from the next timer, the PSK or
// certificate at the next authentication. A start_action that became
// start initiates the connection if it has no IKE SA. Child SAs of a
// child the new settings no longer have are deleted with an
// INFORMATIONAL Delete. Changes that alter what an existing SA is
// (traffic selectors, mode, addresses) are the caller's to handle by
// removing and adding the connection (LiveChange tells them apart).
func (e *Engine) ReplaceConnection(ctx context.Context, c Connection) error {
	nc, err := prepare(c)
	if err != nil {
		return err
	}
	var res error
	var waits []chan error
	if !e.do(ctx, func() {
		var old *Connection
		for i, x := range e.conns {
			if x.Name == nc.Name {
				old, e.conns[i] = x, nc
				break
			}
		}
		if old == nil {
			res = fmt.Errorf("ike: no connection %q", nc.Name)
			return
		}
		e.publishPeers()
		for _, sa := range e.sas {
			for i, c := range sa.cands {
				if c == old {
					sa.cands[i] = nc
				}
			}
			if sa.conn != old {
				continue
			}
			sa.conn = nc
			var gone []*childSA
			for _, ch := range sa.children {
				if cfg := nc.child(ch.cfg.Name); cfg != nil {
					ch.cfg = cfg
				} else {
					gone = append(gone, ch)
				}
			}
			if len(gone) > 0 && sa.state == StateEstablished {
				w := make(chan error, 1)
				waits = append(waits, w)
				sa.enqueue(&deleteChildTask{children: gone, done: w})
			}
		}
		if nc.StartAction == StartStart && old.StartAction != StartStart && !e.hasSA(nc) {
			// start_action became start: as for an added connection.
			if _, err := e.initiate(nc.Name, nil); err != nil {
				e.log.Warn("start failed", "connection", nc.Name, "err", err)
			}
		}
		if string(old.Local.PSK) != string(nc.Local.PSK) {
			crypto.Zero(old.Local.PSK)
		}
		if string(old.Remote.PSK) != string(nc.Remote.PSK) {
			crypto.Zero(old.Remote.PSK)
		}
	}) {
		return errors.New("ike: engine closed")
	}
	if res != nil {
		return res
	}
	return wait(ctx, false, waits...)
}

// hasSA reports whether c has an IKE SA that is not dead (loop only).
func (e *Engine) hasSA(c *Connection) bool {
	for _, sa := range e.sas {
		if sa.conn == c && sa.state != StateDead {
			return true
		}
	}
	return false
}

// child returns the connection's child named name, or nil.
func (c *Connection) child(name string) *ChildConfig {
	for i := range c.Children {
		if c.Children[i].Name == name {
			return &c.Children[i]
		}
	}
	return nil
}

// SetDefence applies the responder's flood limits that can change while
// running: the half-open cap and timeout, the cookie threshold, and the
// per-source rate and half-open share (the per-source buckets start over
// full). The cookie secret's lifetime, the per-source table's size and
// prefixes and the reassembly budget are fixed at New.
func (e *Engine) SetDefence(ctx context.Context, d Defence) error {
	if !e.do(ctx, func() { e.setLimits(d, e.now()) }) {
		return errors.New("ike: engine closed")
	}
	return nil
}

// setLimits sets the limits SetDefence may change, defaults for zero
// fields (New, then the loop only); e.prefix is set.
func (e *Engine) setLimits(d Defence, now time.Time) {
	e.halfOpenLimit = d.HalfOpenLimit
	if e.halfOpenLimit <= 0 {
		e.halfOpenLimit = DefaultHalfOpenLimit
	}
	e.halfOpenTimeout = d.HalfOpenTimeout
	if e.halfOpenTimeout <= 0 {
		e.halfOpenTimeout = defaultHalfOpenTimeout
	}
	e.setCookiePolicy(d.CookieThreshold, d.CookiesAlways)
	rate, burst, slots := d.InitRate, d.InitBurst, d.RateLimitSlots
	if rate == 0 {
		rate = defaultInitRate
	}
	if burst <= 0 {
		burst = defaultInitBurst
	}
	if slots <= 0 {
		slots = defaultLimiterSize
	}
	e.limiter = newSourceLimiter(rate, burst, min(slots, 1<<20), now)
	e.provenLimiter = newSourceLimiter(rate, burst, min(slots, 1<<20), now)
	for _, l := range []*sourceLimiter{e.limiter, e.provenLimiter} {
		if l != nil {
			l.prefix = e.prefix
		}
	}
	e.halfOpenPer = d.HalfOpenPerPrefix
	switch {
	case e.limiter == nil:
		e.halfOpenPer = math.MaxInt // the per-source limits are off
	case e.halfOpenPer <= 0:
		e.halfOpenPer = DefaultHalfOpenPerPrefix
	}
}

// Connections returns the names of the engine's connections, in order.
func (e *Engine) Connections() []string {
	var out []string
	e.do(context.Background(), func() {
		for _, c := range e.conns {
			out = append(out, c.Name)
		}
	})
	return out
}

// SameAs reports whether o configures exactly what c does: every setting,
// the PSKs, certificates and keys included (compared by their encoding).
func (c *Connection) SameAs(o *Connection) bool {
	a, b := c.comparable(), o.comparable()
	return reflect.DeepEqual(a, b)
}

// LiveChange reports whether o differs from c only in settings the SAs
// made under c can take on from their next exchange (ReplaceConnection):
// proposals, lifetimes, DPD, keepalives, authentication, start and close
// actions, fragmentation, the children's lifetimes and replay windows.
// Addresses, ports, encapsulation, and the children's names, traffic
// selectors and modes are what the existing SAs are: changing them means
// setting the connection up again.
func (c *Connection) LiveChange(o *Connection) bool {
	shape := func(x *Connection) any {
		type child struct {
			Name              string
			LocalTS, RemoteTS []TrafficSelector
			Mode              sad.Mode
		}
		var ch []child
		for _, k := range x.Children {
			ch = append(ch, child{k.Name, k.LocalTS, k.RemoteTS, modeOf(&k)})
		}
		return []any{x.Locals(), x.Remotes(), x.RemotePort, x.ForceEncap, ch}
	}
	return reflect.DeepEqual(shape(c), shape(o))
}

// comparable is c with its pointers replaced by what they encode.
func (c *Connection) comparable() any {
	x := *c
	enc := func(a *AuthConfig) []string {
		var out []string
		if a.Certificate != nil {
			out = append(out, "cert:"+string(a.Certificate.Raw))
		}
		for _, i := range a.Intermediates {
			out = append(out, "inter:"+string(i.Raw))
		}
		for _, ca := range a.CAs {
			out = append(out, "ca:"+string(ca.Raw))
		}
		if a.Key != nil {
			k, err := x509.MarshalPKCS8PrivateKey(a.Key)
			if err != nil {
				k = fmt.Appendf(nil, "%p", a.Key) // an opaque signer: only itself is the same
			}
			out = append(out, "key:"+string(k))
		}
		a.Certificate, a.Intermediates, a.CAs, a.Key, a.trust = nil, nil, nil, nil, nil
		return out
	}
	l, r := enc(&x.Local), enc(&x.Remote)
	return []any{x, l, r}
}
