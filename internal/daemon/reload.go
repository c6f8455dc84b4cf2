package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
	"github.com/xdpsec/xdpsec/sad/store"
)

// Live reload (SIGHUP, `xdpsec reload`): the file is checked as `run
// --check` checks it (config.Check), compared with the running
// configuration (config.Compare), and only then is the difference
// applied. Everything that can fail for a reason the file gives (a
// setting that needs a restart, an outbound static key, a metrics
// address or IKE address that cannot be bound, an SA that does not
// build) fails before anything changes. Tunnels whose configuration did
// not change keep their SAs, policies and bindings: nothing of theirs is
// touched.

// removeTimeout bounds the wait for a removed connection's Delete
// exchange; a peer that does not answer in time finds its SAs gone (they
// are removed from the data plane either way).
const removeTimeout = 5 * time.Second

// reloadState is the daemon's part that a reload changes, guarded by
// Daemon.live; reloadMu serialises reloads.
type reloadState struct {
	reloadMu sync.Mutex
	live     sync.RWMutex
	// saPrints are the static SAs' fingerprints (keys included), taken
	// before the configuration's keys are wiped.
	saPrints map[string]string
	levelVar *slog.LevelVar
	// hooks frame every reload, whichever way it came (SIGHUP, the
	// control socket): systemd's RELOADING=1 ... READY=1.
	hooks ReloadHooks
}

// ReloadHooks are called around every reload: Begin before the file is
// read, End with the outcome.
type ReloadHooks struct {
	Begin func()
	End   func(*ReloadResult, error)
}

// SetReloadHooks sets what frames a reload (the process's sd_notify).
func (d *Daemon) SetReloadHooks(h ReloadHooks) {
	d.live.Lock()
	d.hooks = h
	d.live.Unlock()
}

// SetLevelVar gives the daemon the logger's level, which a reload sets
// from log_level.
func (d *Daemon) SetLevelVar(v *slog.LevelVar) {
	d.live.Lock()
	d.levelVar = v
	d.live.Unlock()
}

// ReloadResult is what a reload did.
type ReloadResult struct {
	*config.Reload
	Took time.Duration
}

// Reload re-reads the configuration file (path, or the one the daemon
// runs when empty; it must be that one) and applies what changed. On an
// error nothing was changed, unless the error says the data plane's
// XDP copy could not be updated (the tables themselves are right).
func (d *Daemon) Reload(ctx context.Context, path string) (res *ReloadResult, err error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.live.RLock()
	h := d.hooks
	d.live.RUnlock()
	if h.Begin != nil {
		h.Begin()
	}
	if h.End != nil {
		defer func() { h.End(res, err) }()
	}
	return d.reload(ctx, path)
}

func (d *Daemon) reload(ctx context.Context, path string) (*ReloadResult, error) {
	start := time.Now()
	if d.closed {
		return nil, errors.New("reload: the daemon is stopping")
	}
	if path == "" {
		path = d.cfg.File
	}
	if !sameFile(path, d.cfg.File) {
		return nil, fmt.Errorf("reload: this daemon runs %s, not %s: reload re-reads the file it was started with (edit it, or restart with -c %s)", d.cfg.File, path, path)
	}
	next, err := config.Check(d.cfg.File)
	if err != nil {
		return nil, fmt.Errorf("reload: nothing changed: %w", err)
	}
	if err := benchReload(d.cfg, next); err != nil {
		next.Wipe()
		return nil, fmt.Errorf("reload: nothing changed: %w", err)
	}
	r, err := config.Compare(d.cfg, d.saPrints, next)
	if err != nil {
		next.Wipe()
		return nil, fmt.Errorf("reload: nothing changed: %w", err)
	}
	plan, err := d.prepare(next, r)
	if err != nil {
		next.Wipe()
		return nil, fmt.Errorf("reload: nothing changed: %w", err)
	}
	err = d.apply(ctx, next, r, plan)
	res := &ReloadResult{Reload: r, Took: time.Since(start)}
	if err != nil {
		d.log.Error("reload applied with errors", "changes", r.String(), "took", res.Took, "err", err)
		return res, fmt.Errorf("reload: %w", err)
	}
	d.log.Info("configuration reloaded", "changes", r.String(), "took", res.Took.Round(time.Microsecond))
	return res, nil
}

// sameFile compares two paths by what they name (a link to the file
// names it too).
func sameFile(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == bb {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// reloadPlan is what prepare built, ready to apply.
type reloadPlan struct {
	sas      []*sad.SA // next.SAs' in order: existing ones and new ones
	fresh    []*sad.SA // the new ones among them
	static   []staticPolicy
	policies []*spd.Policy // outbound SPD part of static
	traps    []store.Trap
	acquire  map[*spd.Policy]bool // kept traps' acquire flags
	// addrs to open and close on the IKE transport.
	addAddrs, dropAddrs []netip.Addr
	metrics             net.Listener
	// seqKeys are the new outbound SAs whose sequence numbers the
	// Reserver now keeps durable marks for.
	seqKeys []seqstate.Key
}

// prepare does what can fail before anything changes: the new static
// SAs, the new policies and traps, the IKE addresses' sockets, the
// metrics listener.
func (d *Daemon) prepare(next *config.Config, r *config.Reload) (p *reloadPlan, err error) {
	p = &reloadPlan{}
	defer func() {
		if err != nil {
			for _, sa := range p.fresh {
				sa.Kill()
				sa.Crypto.Destroy()
			}
			if p.metrics != nil {
				p.metrics.Close()
			}
			if len(p.seqKeys) > 0 {
				d.seqRes.Remove(p.seqKeys)
			}
		}
	}()
	d.live.RLock()
	byName := map[string]*sad.SA{}
	for _, sa := range d.sas {
		byName[sa.Name] = sa
	}
	oldPol := map[string]staticPolicy{}
	for i, sp := range d.static {
		oldPol[d.cfg.Policies[i].Name] = sp
	}
	oldCfgPol := map[string]config.Policy{}
	for _, pc := range d.cfg.Policies {
		oldCfgPol[pc.Name] = pc
	}
	d.live.RUnlock()
	changedSA := map[string]bool{}
	for _, n := range slices.Concat(r.SAsAdded, r.SAsChanged) {
		changedSA[n] = true
	}
	out := map[string]*sad.SA{}
	var keys []seqstate.Key
	for i := range next.SAs {
		sc := &next.SAs[i]
		sa := byName[sc.Name]
		if changedSA[sc.Name] {
			if sa, err = sad.New(sc.Config); err != nil {
				return p, fmt.Errorf("%s:%d: sa %s: %w", next.File, sc.Line, sc.Name, err)
			}
			if err = benchNullCipher(next, sa, d.log); err != nil {
				sa.Crypto.Destroy()
				return p, fmt.Errorf("%s:%d: sa %s: %w", next.File, sc.Line, sc.Name, err)
			}
			p.fresh = append(p.fresh, sa)
			if sa.Dir == sad.Outbound {
				keys = append(keys, seqstate.Key{SA: sa, Fingerprint: seqstate.Fingerprint(sc.Key, sc.IntegKey)})
			}
		}
		p.sas = append(p.sas, sa)
		if sa.Dir == sad.Outbound {
			out[sc.Name] = sa
		}
	}
	for _, pc := range next.Policies {
		old, had := oldPol[pc.Name]
		oc := oldCfgPol[pc.Name]
		oc.Line, pc.Line = 0, 0
		var pol *spd.Policy
		if had && fmt.Sprint(oc) == fmt.Sprint(pc) && !changedSA[pc.SA] {
			pol = old.p
		} else {
			pol = &spd.Policy{Name: pc.Name, Selector: pc.Selector, Action: pc.Action, MSSClamp: pc.MSSClamp}
			if pc.Action == spd.Protect {
				sa := out[pc.SA]
				pol.SA.Store(sa)
				pol.ReqID = sa.ReqID
			}
		}
		p.static = append(p.static, staticPolicy{pol, pc.Dir})
		if pc.Dir != config.DirIn {
			p.policies = append(p.policies, pol)
		}
	}
	if d.ike != nil {
		p.traps, p.acquire = d.ike.reloadTraps(next, r)
		if d.ike.conn != nil {
			cur := d.ike.conn.Addrs()
			want := d.ikeLocalAddrs(connsOf(next))
			for _, a := range want {
				if !slices.Contains(cur, a) {
					p.addAddrs = append(p.addAddrs, a)
				}
			}
			for _, a := range cur {
				if !slices.Contains(want, a) {
					p.dropAddrs = append(p.dropAddrs, a)
				}
			}
		}
	}
	if r.Metrics && next.Metrics != "" {
		if p.metrics, err = net.Listen("tcp", next.Metrics); err != nil {
			return p, hinted(fmt.Errorf("metrics %s: %w", next.Metrics, err), listenHint("metrics", err))
		}
	}
	if len(keys) > 0 {
		if err = d.reserveNew(keys, next.File); err != nil {
			return p, err
		}
		p.seqKeys = keys
	}
	// The IKE sockets last: nothing after them can fail.
	for i, a := range p.addAddrs {
		if err = d.ike.conn.AddAddr(a); err != nil {
			for _, b := range p.addAddrs[:i] {
				d.ike.conn.RemoveAddr(b)
			}
			return p, hinted(fmt.Errorf("ike: listen on %v: %w", a, err), listenHint("ike", err))
		}
	}
	return p, nil
}

func connsOf(c *config.Config) []ike.Connection {
	cs := make([]ike.Connection, len(c.IKE.Connections))
	for i := range c.IKE.Connections {
		cs[i] = c.IKE.Connections[i].Connection
	}
	return cs
}

// reloadTraps are next's trap policies, the unchanged children's the
// same *spd.Policy as now (bound to their SAs, untouched).
func (p *ikePlane) reloadTraps(next *config.Config, r *config.Reload) ([]store.Trap, map[*spd.Policy]bool) {
	acquire := map[*spd.Policy]bool{}
	type key struct {
		ref childRef
		sel sad.Selector
	}
	fresh := map[string]bool{}
	for _, n := range slices.Concat(r.Added, r.Restarted) {
		fresh[n] = true
	}
	old := map[key]*spd.Policy{}
	for _, t := range p.traps {
		if ref, ok := t.Tag.(childRef); ok && !fresh[ref.conn] {
			old[key{ref, t.Policy.Selector}] = t.Policy
		}
	}
	traps := trapPolicies(connsOf(next))
	start := map[string]ike.StartAction{}
	for _, c := range next.IKE.Connections {
		start[c.Name] = c.StartAction
	}
	for i, t := range traps {
		ref := t.Tag.(childRef)
		if pol := old[key{ref, t.Policy.Selector}]; pol != nil {
			// Set in apply: the running policy's acquire flag follows the
			// new start_action then, not before prepare is done.
			acquire[pol] = start[ref.conn] == ike.StartTrap
			traps[i].Policy = pol
		}
	}
	return traps, acquire
}

// apply makes the changes prepare made ready, in an order that never
// sends a removed tunnel's traffic in clear: the removed connections'
// SAs go first (their policies still drop), then the SA store's static
// SAs and policies change in one publication each, then the added and
// changed connections come.
func (d *Daemon) apply(ctx context.Context, next *config.Config, r *config.Reload, p *reloadPlan) error {
	var errs []error
	if r.LogLevel {
		d.live.RLock()
		if d.levelVar != nil {
			var l slog.Level
			if l.UnmarshalText([]byte(next.LogLevel)) == nil {
				d.levelVar.Set(l)
			}
		}
		d.live.RUnlock()
	}
	pl := d.ike
	if pl != nil && pl.engine != nil {
		var wg sync.WaitGroup
		for _, name := range slices.Concat(r.Removed, r.Restarted) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, cancel := context.WithTimeout(ctx, removeTimeout)
				defer cancel()
				if err := pl.engine.RemoveConnection(rctx, name); err != nil {
					// The SAs are gone from the data plane all the same.
					d.log.Warn("reload: removed connection's Delete not confirmed by the peer", "connection", name, "err", err)
				}
			}()
		}
		wg.Wait()
	}
	// Static SAs: the changed ones whose key (SPI, direction) stays must
	// leave before their successors come in; the rest goes after the
	// policies moved to the new SAs.
	d.live.RLock()
	oldSAs := slices.Clone(d.sas)
	d.live.RUnlock()
	keep := map[*sad.SA]bool{}
	for _, sa := range p.sas {
		keep[sa] = true
	}
	newKeys := map[store.Key]bool{}
	for _, sa := range p.fresh {
		newKeys[store.Key{SPI: sa.SPI, Dir: sa.Dir, Origin: store.Static}] = true
	}
	var first, later store.Diff
	for _, sa := range oldSAs {
		if keep[sa] {
			continue
		}
		k := store.Key{SPI: sa.SPI, Dir: sa.Dir, Origin: store.Static}
		if newKeys[k] {
			first.Delete = append(first.Delete, k)
		} else {
			later.Delete = append(later.Delete, k)
		}
	}
	if len(first.Delete) > 0 {
		errs = append(errs, d.store.Apply(first))
	}
	if len(p.fresh) > 0 {
		var in store.Diff
		for _, sa := range p.fresh {
			in.Install = append(in.Install, store.Change{SA: sa, Origin: store.Static})
		}
		errs = append(errs, d.store.Apply(in))
	}
	for pol, on := range p.acquire {
		pol.Acquire.Store(on)
	}
	d.live.Lock()
	d.sas, d.static, d.policies = p.sas, p.static, p.policies
	if pl != nil {
		d.policies = append(slices.Clone(d.policies), trapList(p.traps)...)
		pl.traps = p.traps
	}
	// The running configuration takes the new file's live parts; the
	// connections the engine keeps (unchanged ones) keep their PSKs,
	// the new file's copies of those are wiped.
	keepConn := map[string]ike.Connection{}
	for _, c := range d.cfg.IKE.Connections {
		keepConn[c.Name] = c.Connection
	}
	for i := range next.IKE.Connections {
		c := &next.IKE.Connections[i]
		if slices.Contains(r.Unchanged, c.Name) {
			clear(c.Local.PSK)
			clear(c.Remote.PSK)
			c.Connection = keepConn[c.Name]
		}
	}
	d.saPrints = next.SAFingerprints()
	next.WipeSAKeys()
	d.cfg.SAs, d.cfg.Policies, d.cfg.IKE.Connections = next.SAs, next.Policies, next.IKE.Connections
	d.cfg.IKE.Defence, d.cfg.LogLevel, d.cfg.Metrics, d.cfg.Warnings = next.IKE.Defence, next.LogLevel, next.Metrics, next.Warnings
	d.live.Unlock()
	// A changed connection keeps its selectors, so its traps are the same
	// objects (their acquire flag set in place): only these change the SPD.
	if r.Policies || len(r.SAsAdded)+len(r.SAsRemoved)+len(r.SAsChanged)+len(r.Added)+len(r.Removed)+len(r.Restarted) > 0 {
		errs = append(errs, d.store.ReplaceConfigured(p.policies, p.traps, func(tag any) bool {
			ref, ok := tag.(childRef)
			return ok && slices.ContainsFunc(next.IKE.Connections, func(c config.Connection) bool { return c.Name == ref.conn })
		}))
	}
	if len(later.Delete) > 0 {
		errs = append(errs, d.store.Apply(later))
	}
	if d.seqRes != nil {
		var gone []seqstate.Key
		for _, sa := range oldSAs {
			if !keep[sa] && sa.Dir == sad.Outbound {
				gone = append(gone, seqstate.Key{SA: sa})
			}
		}
		d.seqRes.Remove(gone)
	}
	if pl != nil && pl.engine != nil {
		if r.Defence {
			errs = append(errs, pl.engine.SetDefence(ctx, next.IKE.Defence.Defence))
		}
		for _, name := range slices.DeleteFunc(slices.Clone(r.Changed), func(n string) bool { return slices.Contains(r.Restarted, n) }) {
			c := findConn(next, name)
			if err := pl.engine.ReplaceConnection(ctx, c); err != nil {
				errs = append(errs, fmt.Errorf("connection %s: %w", name, err))
			}
		}
		for _, name := range slices.Concat(r.Added, r.Restarted) {
			if err := pl.engine.AddConnection(ctx, findConn(next, name)); err != nil {
				errs = append(errs, fmt.Errorf("connection %s: %w", name, err))
			}
		}
		for _, a := range p.dropAddrs {
			errs = append(errs, pl.conn.RemoveAddr(a))
		}
	}
	if r.Metrics {
		errs = append(errs, d.swapMetrics(p.metrics))
	}
	return errors.Join(errs...)
}

func trapList(ts []store.Trap) []*spd.Policy {
	out := make([]*spd.Policy, len(ts))
	for i, t := range ts {
		out[i] = t.Policy
	}
	return out
}

func findConn(c *config.Config, name string) ike.Connection {
	for i := range c.IKE.Connections {
		if c.IKE.Connections[i].Name == name {
			return c.IKE.Connections[i].Connection
		}
	}
	return ike.Connection{}
}

// swapMetrics moves the metrics endpoint to ln (nil: none).
func (d *Daemon) swapMetrics(ln net.Listener) error {
	var err error
	if d.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = d.httpSrv.Shutdown(ctx)
		cancel()
		d.httpSrv = nil
	}
	if ln != nil {
		err = errors.Join(err, d.startMetrics(ln))
	}
	return err
}

// reloadAction is the control socket's reload: name is the file.
func (d *Daemon) reloadAction(ctx context.Context, name string) (string, error) {
	res, err := d.Reload(ctx, name)
	if res == nil {
		// The journal shows it too, not only the client (SIGHUP's
		// failures are logged by its handler).
		d.log.Warn("xdpsec reload failed", "err", err)
		return "", err
	}
	return fmt.Sprintf("reloaded %s in %v: %s", d.cfg.File, res.Took.Round(time.Microsecond), res.Reload), err
}

// reserveNew makes the new outbound static SAs' sequence numbers durable
// before they may send, as the start does (restoreSeq): their keys must
// have a mark in state_dir (`xdpsec newkeys` for a new key). A daemon
// that had no outbound static SA opens the state directory now.
func (d *Daemon) reserveNew(keys []seqstate.Key, file string) error {
	now := time.Now()
	if d.seqRes != nil {
		if err := d.seqRes.Add(keys, now); err != nil {
			return fmt.Errorf("%w%s", err, seqAdvice(err, file, d.seqStore.Dir()))
		}
		return nil
	}
	st, err := seqstate.Open(d.cfg.StateDir)
	if err != nil {
		return fmt.Errorf("outbound static SAs need durable sequence-number state: %w", err)
	}
	r, err := seqstate.Resume(st, keys, now)
	if err != nil {
		st.Close()
		return fmt.Errorf("%w%s", err, seqAdvice(err, file, st.Dir()))
	}
	d.seqStore, d.seqRes = st, r
	ctx, cancel := context.WithCancel(context.Background())
	d.seqStop, d.seqDone = cancel, make(chan struct{})
	go d.reserveSeq(ctx, d.seqDone)
	return nil
}
