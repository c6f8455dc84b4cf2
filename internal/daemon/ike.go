package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// ikePlane is the IKE side of the gateway: the engine, its sockets, and
// the data-plane state it installed (the Installer below).
type ikePlane struct {
	d       *Daemon
	engine  *ike.Engine
	conn    *transport.UDP
	keyLogs []*os.File
	// ikePort and nattPort are the UDP ports (500 and nat_t_port; the
	// peer's are the same); tests move them off the privileged ones.
	ikePort, nattPort uint16

	mu sync.Mutex
	// in and out are the negotiated SAs by SPI.
	in, out map[uint32]*sad.SA
	// bound are the policies a ReqID's outbound SAs are published
	// through, and reqOut the outbound SPIs installed under each ReqID
	// (two during a rekey).
	bound  map[uint32][]*spd.Policy
	reqOut map[uint32]map[uint32]bool
	// traps are the fail-closed policies of the configured children:
	// PROTECT with no SA until a Child SA binds them. owner says which
	// ReqID has them (0: none); trapFor which child they stand for, so
	// an acquire (spd.Policy.Acquire) knows what to negotiate.
	traps   []*spd.Policy
	owner   map[*spd.Policy]uint32
	trapFor map[*spd.Policy]childRef
	// dynamic are policies made for narrowed selectors; they go when
	// their ReqID has no outbound SA left.
	dynamic map[*spd.Policy]bool
	// reported: SAs whose soft or hard expiry went to the engine.
	soft, hard map[*sad.SA]bool
	// graveyard holds deleted SAs until no worker can hold them; their
	// keys are wiped on the next tick.
	graveyard []*sad.SA

	// acq carries the workers' acquires (trap policies' packets that
	// found no SA); the acquires goroutine turns them into negotiations
	// until acqStop closes. acqStats count what became of them.
	acq              *fastpath.Acquirer
	acqStop, acqDone chan struct{}
	acqStats         struct{ initiated, child, coalesced, failed, unknown atomic.Uint64 }
}

// outboundSelectors are a child's policies: every local × remote pair of
// one address family.
func outboundSelectors(ch ike.ChildConfig) []sad.Selector {
	var out []sad.Selector
	for _, l := range ch.LocalTS {
		for _, r := range ch.RemoteTS {
			if l.Prefix.Addr().Is4() != r.Prefix.Addr().Is4() {
				continue
			}
			proto := l.Proto
			if proto == 0 {
				proto = r.Proto
			} else if r.Proto != 0 && r.Proto != proto {
				continue // no packet has two protocols
			}
			out = append(out, sad.Selector{Src: l.Prefix, Dst: r.Prefix, Proto: proto, SrcPorts: l.Ports, DstPorts: r.Ports})
		}
	}
	return out
}

// sameSelector compares selectors as the SPD matches them: a port range
// covering every port is "any", prefixes compare masked.
func sameSelector(a, b sad.Selector) bool {
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

// childRef names a configured Child SA.
type childRef struct{ conn, child string }

// trapPolicies are the configured children's selectors as PROTECT
// policies without an SA: until a tunnel is up their traffic is dropped,
// never sent in the clear (fail closed). Those of start_action trap
// connections also raise acquires. A selector two children share belongs
// to the first.
func trapPolicies(conns []ike.Connection) ([]*spd.Policy, map[*spd.Policy]childRef) {
	var ps []*spd.Policy
	refs := map[*spd.Policy]childRef{}
	seen := map[sad.Selector]bool{}
	for _, c := range conns {
		for _, ch := range c.Children {
			for i, sel := range outboundSelectors(ch) {
				if seen[sel] {
					continue
				}
				seen[sel] = true
				pol := &spd.Policy{Name: fmt.Sprintf("%s/%s#%d", c.Name, ch.Name, i), Selector: sel, Action: spd.Protect}
				pol.Acquire.Store(c.StartAction == ike.StartTrap)
				ps = append(ps, pol)
				refs[pol] = childRef{c.Name, ch.Name}
			}
		}
	}
	return ps, refs
}

// childFor finds the configured child whose selectors cover sel (a
// negotiated, possibly narrowed selector).
func childFor(conns []ike.Connection, sel sad.Selector) (childRef, bool) {
	for _, c := range conns {
		for _, ch := range c.Children {
			for _, cs := range outboundSelectors(ch) {
				if covers(cs, sel) {
					return childRef{c.Name, ch.Name}, true
				}
			}
		}
	}
	return childRef{}, false
}

// covers reports whether every packet sel matches, outer matches too.
func covers(outer, sel sad.Selector) bool {
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

func (d *Daemon) ikeConnections() []ike.Connection {
	cs := make([]ike.Connection, len(d.cfg.IKE.Connections))
	for i := range d.cfg.IKE.Connections {
		cs[i] = d.cfg.IKE.Connections[i].Connection
	}
	return cs
}

func newIKEPlane(d *Daemon) *ikePlane {
	p := &ikePlane{
		d: d, in: map[uint32]*sad.SA{}, out: map[uint32]*sad.SA{},
		bound: map[uint32][]*spd.Policy{}, reqOut: map[uint32]map[uint32]bool{},
		owner: map[*spd.Policy]uint32{}, dynamic: map[*spd.Policy]bool{},
		acq:  fastpath.NewAcquirer(d.cfg.IKE.AcquireInterval),
		soft: map[*sad.SA]bool{}, hard: map[*sad.SA]bool{},
		ikePort: 500, nattPort: d.cfg.NATTPort,
	}
	p.traps, p.trapFor = trapPolicies(d.ikeConnections())
	return p
}

// start opens the IKE sockets on the connections' local address and runs
// the engine. The daemon's data plane is up by then, so a connection with
// start_action start carries traffic as soon as it is established.
func (p *ikePlane) start() error {
	d := p.d
	conns := d.ikeConnections()
	laddrs := d.ikeLocalAddrs(conns)
	var err error
	// IKE's ports go to the kernel (XDP_PASS): the XDP program passes UDP
	// 500 and the zero non-ESP marker on the NAT-T port, to any address.
	p.conn, err = transport.ListenAddrs(laddrs, p.ikePort, p.nattPort)
	if err != nil {
		return hinted(fmt.Errorf("ike: listen on %v: %w", laddrs, err), listenHint("ike", err))
	}
	ecfg := ike.Config{Connections: conns, Retransmit: d.cfg.IKE.Retransmit, Defence: d.cfg.IKE.Defence.Defence,
		RekeyedInboundDelay: d.cfg.IKE.RekeyedInboundDelay, RekeyDeleteDelay: d.cfg.IKE.RekeyDeleteDelay,
		Logger: d.log.With("subsystem", "ike"), Reachable: reachable}
	if dir := d.cfg.IKE.KeyLog; dir != "" {
		d.log.Warn("!!! key_log is on: every IKE and ESP key is written in the clear to " + dir +
			" (Wireshark's ikev2_decryption_table and esp_sa); for debugging only, turn it off in production !!!")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("key_log: %w", err)
		}
		open := func(name string) (io.Writer, error) {
			f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				return nil, fmt.Errorf("key_log: %w", err)
			}
			p.keyLogs = append(p.keyLogs, f)
			return f, nil
		}
		if ecfg.KeyLogIKE, err = open("ikev2_decryption_table"); err != nil {
			return err
		}
		if ecfg.KeyLogESP, err = open("esp_sa"); err != nil {
			return err
		}
	}
	p.engine, err = ike.New(ecfg, p.conn, p)
	if err != nil {
		return fmt.Errorf("ike: %w", err)
	}
	p.acqStop, p.acqDone = make(chan struct{}), make(chan struct{})
	go p.acquires()
	ik, nt := p.conn.Ports()
	d.log.Info("ike up", "addresses", laddrs, "ports", fmt.Sprintf("%d,%d", ik, nt), "connections", len(conns))
	return nil
}

// close stops the engine (which deletes its SAs through the Installer
// without telling the peers) and the sockets.
func (p *ikePlane) close() error {
	var errs []error
	if p.acqStop != nil {
		close(p.acqStop)
		<-p.acqDone
		p.acqStop = nil
	}
	if p.engine != nil {
		p.engine.Close()
	}
	if p.conn != nil {
		errs = append(errs, p.conn.Close())
	}
	for _, f := range p.keyLogs {
		errs = append(errs, f.Close())
	}
	p.mu.Lock()
	for _, sa := range p.graveyard {
		sa.Crypto.Destroy()
	}
	p.graveyard = nil
	p.mu.Unlock()
	return errors.Join(errs...)
}

// acquires turns the workers' acquires into negotiations: each trap
// policy that met traffic without an SA names a configured child, and the
// engine starts (or, when one is under way, coalesces with) the
// negotiation that brings it. The workers rate-limit per policy; a child
// with several policies may still fire for each, so one drain asks once
// per child.
func (p *ikePlane) acquires() {
	defer close(p.acqDone)
	buf := make([]*spd.Policy, 0, 64)
	for {
		select {
		case <-p.acqStop:
			return
		case <-p.acq.C():
		}
		buf = p.acq.Drain(buf[:0])
		asked := map[childRef]bool{}
		for i, pol := range buf {
			buf[i] = nil // no stale references held between wake-ups
			ref, ok := p.acquireRef(pol)
			if !ok {
				p.acqStats.unknown.Add(1)
				continue
			}
			if asked[ref] {
				continue
			}
			asked[ref] = true
			p.acquire(ref, pol.Name)
		}
	}
}

// acquireRef is the child an acquire of pol asks for.
func (p *ikePlane) acquireRef(pol *spd.Policy) (childRef, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ref, ok := p.trapFor[pol]
	return ref, ok
}

func (p *ikePlane) acquire(ref childRef, policy string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.engine.Acquire(ctx, ref.conn, ref.child)
	switch {
	case err != nil:
		p.acqStats.failed.Add(1)
		p.d.log.Warn("acquire failed", "policy", policy, "connection", ref.conn, "child", ref.child, "err", err)
	case res == ike.AcquireCoalesced:
		p.acqStats.coalesced.Add(1)
		p.d.log.Debug("acquire", "policy", policy, "connection", ref.conn, "child", ref.child, "result", res.String())
	default:
		if res == ike.AcquireIKE {
			p.acqStats.initiated.Add(1)
		} else {
			p.acqStats.child.Add(1)
		}
		p.d.log.Info("acquire", "policy", policy, "connection", ref.conn, "child", ref.child, "result", res.String())
	}
}

// acquireCounters are the acquire path's counters for snapshots.
func (p *ikePlane) acquireCounters() map[string]uint64 {
	st := p.acq.Stats()
	return map[string]uint64{
		"raised": st.Raised, "lost": st.Lost,
		"initiated": p.acqStats.initiated.Load(), "child_created": p.acqStats.child.Load(),
		"coalesced": p.acqStats.coalesced.Load(), "failed": p.acqStats.failed.Load(),
		"unknown_policy": p.acqStats.unknown.Load(),
	}
}

// liveObjs are the objects whose XDP program receives ESP (the WAN side).
func (d *Daemon) liveObjs() []*objSet {
	var out []*objSet
	for _, s := range d.objs {
		if s.name != "lan" {
			out = append(out, s)
		}
	}
	return out
}

// syncMirror publishes the SPD to the XDP programs that steer protected
// traffic, and its inbound side to those that receive the WAN, after a
// policy was added or removed.
func (d *Daemon) syncMirror() error {
	var m []bpf.SPDEntry
	var errs []error
	for _, s := range d.objs {
		if s.name == "wan" {
			continue
		}
		if m == nil {
			m = d.mirror()
		}
		if err := s.o.SyncSPD(m); err != nil {
			errs = append(errs, fmt.Errorf("xdp %s: %w", s.name, err))
		}
	}
	errs = append(errs, d.syncInbound())
	return errors.Join(errs...)
}

// InstallInbound implements ike.Installer: the SA goes into the inbound
// table and its SPI into the XDP program's live set, so its packets are
// steered to the workers rather than dropped as unknown.
func (p *ikePlane) InstallInbound(cfg sad.Config) error {
	sa, err := sad.New(cfg)
	if err != nil {
		return fmt.Errorf("inbound sa %08x: %w", cfg.SPI, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.d.inbound.Add(sa); err != nil {
		sa.Crypto.Destroy()
		return fmt.Errorf("inbound sa %08x: %w", cfg.SPI, err)
	}
	for _, s := range p.d.liveObjs() {
		if err := s.o.SetSPILive(sa.SPI, true); err != nil {
			p.d.inbound.Delete(sa.SPI)
			sa.Kill()
			p.graveyard = append(p.graveyard, sa)
			return fmt.Errorf("inbound sa %08x: xdp %s: %w", cfg.SPI, s.name, err)
		}
	}
	p.in[sa.SPI] = sa
	p.d.log.Info("child sa installed", "dir", "in", "spi", fmt.Sprintf("%08x", sa.SPI), "name", sa.Name, "reqid", sa.ReqID)
	return nil
}

// InboundPackets implements ike.UsageInstaller: the packets the workers
// delivered on an inbound SA (its counter, read without a lock), so that
// the engine sends no DPD check while the peer's ESP flows.
func (p *ikePlane) InboundPackets(spi uint32) (uint64, bool) {
	sa := p.d.inbound.Lookup(spi)
	if sa == nil {
		return 0, false
	}
	return sa.Counters.Packets.Load(), true
}

// InstallOutbound implements ike.Installer: the policies of cfg.ReqID
// point at the new SA with one atomic store each. The first SA of a ReqID
// binds the child's fail-closed policies (or new ones, placed first, for
// selectors the responder narrowed); a rekey's SA repoints them, and the
// old SA stays until Delete.
func (p *ikePlane) InstallOutbound(cfg sad.Config, sel []sad.Selector) error {
	sa, err := sad.New(cfg)
	if err != nil {
		return fmt.Errorf("outbound sa %08x: %w", cfg.SPI, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.out[sa.SPI]; dup {
		sa.Crypto.Destroy()
		return fmt.Errorf("outbound sa %08x: already installed", cfg.SPI)
	}
	pols, ok := p.bound[cfg.ReqID]
	if !ok {
		var added []*spd.Policy
		for i, s := range sel {
			var pol *spd.Policy
			for _, t := range p.traps {
				if sameSelector(t.Selector, s) && p.owner[t] == 0 {
					pol = t
					break
				}
			}
			if pol == nil {
				pol = &spd.Policy{Name: fmt.Sprintf("%s#%d", cfg.Name, i), Selector: s, Action: spd.Protect, ReqID: cfg.ReqID}
				added = append(added, pol)
			}
			p.owner[pol] = cfg.ReqID
			pols = append(pols, pol)
		}
		// Newer, narrower policies come first: traffic they take is this
		// SA's; the rest still meets the traps.
		for i, pol := range added {
			if err := p.d.spd.Insert(pol, i); err != nil {
				for _, q := range added[:i] {
					p.d.spd.Remove(q)
				}
				for _, q := range pols {
					delete(p.owner, q)
				}
				sa.Crypto.Destroy()
				return fmt.Errorf("outbound sa %08x: spd: %w", cfg.SPI, err)
			}
			p.dynamic[pol] = true
		}
		p.bound[cfg.ReqID] = pols
		if len(added) > 0 {
			if err := p.d.syncMirror(); err != nil {
				p.d.log.Error("xdp spd mirror", "err", err)
			}
		}
	}
	for _, pol := range pols {
		pol.SA.Store(sa)
	}
	p.out[sa.SPI] = sa
	if p.reqOut[cfg.ReqID] == nil {
		p.reqOut[cfg.ReqID] = map[uint32]bool{}
	}
	p.reqOut[cfg.ReqID][sa.SPI] = true
	p.d.log.Info("child sa installed", "dir", "out", "spi", fmt.Sprintf("%08x", sa.SPI), "name", sa.Name,
		"reqid", sa.ReqID, "policies", len(pols))
	return nil
}

// Delete implements ike.Installer. An inbound SA leaves the table and the
// live SPI set; an outbound one is unhooked from the policies that still
// point at it (a rekey's replacement is left alone). When a ReqID has no
// outbound SA left its policies fall back to dropping: the configured
// selectors stay as fail-closed traps, narrowed ones go.
func (p *ikePlane) Delete(spi uint32, dir sad.Direction) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir == sad.Inbound {
		sa, ok := p.in[spi]
		if !ok {
			return fmt.Errorf("inbound sa %08x: not installed", spi)
		}
		delete(p.in, spi)
		p.d.inbound.Delete(spi)
		var errs []error
		for _, s := range p.d.liveObjs() {
			if err := s.o.SetSPILive(spi, false); err != nil {
				errs = append(errs, fmt.Errorf("xdp %s: %w", s.name, err))
			}
		}
		p.bury(sa)
		p.d.log.Info("child sa deleted", "dir", "in", "spi", fmt.Sprintf("%08x", spi), "name", sa.Name)
		return errors.Join(errs...)
	}
	sa, ok := p.out[spi]
	if !ok {
		return fmt.Errorf("outbound sa %08x: not installed", spi)
	}
	delete(p.out, spi)
	for _, pol := range p.bound[sa.ReqID] {
		pol.SA.CompareAndSwap(sa, nil)
	}
	delete(p.reqOut[sa.ReqID], spi)
	var err error
	if len(p.reqOut[sa.ReqID]) == 0 {
		delete(p.reqOut, sa.ReqID)
		err = p.release(sa.ReqID)
	}
	p.bury(sa)
	p.d.log.Info("child sa deleted", "dir", "out", "spi", fmt.Sprintf("%08x", spi), "name", sa.Name)
	return err
}

// release unbinds a ReqID's policies; p.mu is held.
func (p *ikePlane) release(reqID uint32) error {
	var removed bool
	var errs []error
	for _, pol := range p.bound[reqID] {
		delete(p.owner, pol)
		if p.dynamic[pol] {
			delete(p.dynamic, pol)
			if err := p.d.spd.Remove(pol); err != nil {
				errs = append(errs, err)
			}
			removed = true
		}
	}
	delete(p.bound, reqID)
	if removed {
		errs = append(errs, p.d.syncMirror())
	}
	return errors.Join(errs...)
}

var _ ike.UsageInstaller = (*ikePlane)(nil)

// InstallTrap implements ike.TrapInstaller (dpd_action trap): the
// selectors stay as PROTECT policies without an SA, and raise acquires
// from now on. The configured children's selectors are fail-closed
// policies from the start; others are added.
func (p *ikePlane) InstallTrap(reqID uint32, sel []sad.Selector) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var added bool
	for i, s := range sel {
		// A trap already in the SPD that covers s (the configured child's,
		// when the peer narrowed the selectors) catches its traffic before
		// anything added behind it: from now on it brings the tunnel back.
		covered := false
		for _, t := range p.traps {
			if covers(t.Selector, s) {
				t.Acquire.Store(true)
				covered = true
			}
		}
		if covered {
			continue
		}
		pol := &spd.Policy{Name: fmt.Sprintf("trap-%d#%d", reqID, i), Selector: s, Action: spd.Protect}
		ref, ok := childFor(p.d.ikeConnections(), s)
		if ok {
			pol.Acquire.Store(true)
		}
		if err := p.d.spd.Insert(pol, -1); err != nil {
			return fmt.Errorf("trap %d: %w", reqID, err)
		}
		p.traps = append(p.traps, pol)
		if ok {
			p.trapFor[pol] = ref
		}
		added = true
	}
	if added {
		return p.d.syncMirror()
	}
	return nil
}

// bury kills sa now and wipes its keys on a later tick, once no worker's
// batch can hold it any more; p.mu is held.
func (p *ikePlane) bury(sa *sad.SA) {
	sa.Kill()
	p.graveyard = append(p.graveyard, sa)
	delete(p.soft, sa)
	delete(p.hard, sa)
}

// tick reports the data plane's count-based expiries (bytes, packets,
// sequence numbers) to the engine, once each, and wipes the SAs buried
// before the previous tick. The engine keeps the time lifetimes itself.
func (p *ikePlane) tick() {
	p.mu.Lock()
	dead := p.graveyard
	p.graveyard = nil
	type exp struct {
		spi  uint32
		hard bool
	}
	var todo []exp
	for _, m := range []map[uint32]*sad.SA{p.in, p.out} {
		for spi, sa := range m {
			if sa.Expired() && !p.hard[sa] {
				p.hard[sa] = true
				todo = append(todo, exp{spi, true})
			} else if sa.NeedsRekey() && !p.soft[sa] {
				p.soft[sa] = true
				todo = append(todo, exp{spi, false})
			}
		}
	}
	p.mu.Unlock()
	for _, sa := range dead {
		sa.Crypto.Destroy()
	}
	for _, e := range todo {
		// Outside p.mu: the engine calls back into the Installer.
		if err := p.engine.Expire(e.spi, e.hard); err != nil {
			p.d.log.Debug("expire", "spi", fmt.Sprintf("%08x", e.spi), "hard", e.hard, "err", err)
		} else {
			p.d.log.Info("child sa lifetime reached", "spi", fmt.Sprintf("%08x", e.spi), "hard", e.hard)
		}
	}
}

// sas returns the installed SAs, inbound first, for snapshots.
func (p *ikePlane) sas() []*sad.SA {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*sad.SA, 0, len(p.in)+len(p.out))
	for _, m := range []map[uint32]*sad.SA{p.in, p.out} {
		keys := make([]uint32, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = append(out, m[k])
		}
	}
	return out
}

// list describes the IKE SAs for `show ike`.
func (p *ikePlane) list() []control.IKESA {
	infos := p.engine.List()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]control.IKESA, 0, len(infos))
	for _, in := range infos {
		s := control.IKESA{
			Connection: in.Name, State: in.State.String(), Initiator: in.Initiator,
			SPIi: fmt.Sprintf("%016x", in.SPIi), SPIr: fmt.Sprintf("%016x", in.SPIr),
			Local: addrPort(in.Local), Remote: addrPort(in.Remote), LocalID: in.LocalID, RemoteID: in.RemoteID,
			NATT: in.NATT, Proposal: in.Proposal, Established: in.Established, Children: []control.ChildSA{},
		}
		for _, c := range in.Children {
			ch := control.ChildSA{
				Name: c.Name, State: "INSTALLING", ReqID: c.ReqID, SPIIn: c.SPIIn, SPIOut: c.SPIOut,
				Mode: c.Mode, UDPEncap: c.UDPEncap, Proposal: c.Proposal, LocalTS: c.LocalTS, RemoteTS: c.RemoteTS,
			}
			if c.InstalledInOut {
				ch.State = "INSTALLED"
			}
			if sa := p.in[c.SPIIn]; sa != nil {
				ch.Installed = sa.Created
			}
			s.Children = append(s.Children, ch)
		}
		out = append(out, s)
	}
	return out
}

func addrPort(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// initiate and terminate are the control socket's actions.
func (p *ikePlane) initiate(ctx context.Context, name string) (string, error) {
	if !p.known(name) {
		return "", fmt.Errorf("no connection named %q", name)
	}
	start := time.Now()
	if err := p.engine.Initiate(ctx, name); err != nil {
		return "", err
	}
	return fmt.Sprintf("connection %s established in %v", name, time.Since(start).Round(time.Millisecond)), nil
}

func (p *ikePlane) terminate(ctx context.Context, name string) (string, error) {
	if !p.known(name) {
		return "", fmt.Errorf("no connection named %q", name)
	}
	if err := p.engine.Terminate(ctx, name); err != nil {
		return "", err
	}
	return fmt.Sprintf("connection %s terminated", name), nil
}

// rekey rekeys a connection's IKE SAs (name is the connection) or one
// child's Child SAs (name is "CONNECTION/CHILD"; a connection whose own
// name has a slash is taken whole first).
func (p *ikePlane) rekey(ctx context.Context, name string) (string, error) {
	start := time.Now()
	if p.known(name) {
		if err := p.engine.RekeyIKE(ctx, name); err != nil {
			return "", err
		}
		return fmt.Sprintf("IKE SA of %s rekeyed in %v", name, time.Since(start).Round(time.Millisecond)), nil
	}
	i := strings.LastIndexByte(name, '/')
	if i < 0 || !p.known(name[:i]) {
		return "", fmt.Errorf("no connection named %q", name)
	}
	conn, child := name[:i], name[i+1:]
	if err := p.engine.RekeyChildren(ctx, conn, child); err != nil {
		return "", err
	}
	return fmt.Sprintf("Child SA %s/%s rekeyed in %v", conn, child, time.Since(start).Round(time.Millisecond)), nil
}

func (p *ikePlane) known(name string) bool {
	for _, c := range p.d.cfg.IKE.Connections {
		if c.Name == name {
			return true
		}
	}
	return false
}

// goodbye deletes the IKE SAs with the peers on a clean shutdown, so they
// stop sending at once rather than after their DPD timeout; a peer that
// does not answer quickly is left to find out.
func (p *ikePlane) goodbye() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for _, sa := range p.engine.List() {
		if seen[sa.Name] {
			continue
		}
		seen[sa.Name] = true
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if err := p.engine.Terminate(ctx, name); err != nil {
				p.d.log.Debug("terminate on shutdown", "connection", name, "err", err)
			}
		}(sa.Name)
	}
	wg.Wait()
}
