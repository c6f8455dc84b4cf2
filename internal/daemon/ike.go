package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
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
	"github.com/xdpsec/xdpsec/sad/store"
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

	// traps are the fail-closed policies of the configured children:
	// PROTECT with no SA until a Child SA binds them, tagged with the
	// child they stand for (an acquire knows what to negotiate). They
	// go into the SA store with the file's policies; the store owns the
	// negotiated SAs, their ReqID bindings and their retirement.
	traps []store.Trap

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

// childRef names a configured Child SA.
type childRef struct{ conn, child string }

// trapPolicies are the configured children's selectors as PROTECT
// policies without an SA: until a tunnel is up their traffic is dropped,
// never sent in the clear (fail closed). Those of start_action trap
// connections also raise acquires. A selector two children share belongs
// to the first.
func trapPolicies(conns []ike.Connection) []store.Trap {
	var ps []store.Trap
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
				ps = append(ps, store.Trap{Policy: pol, Tag: childRef{c.Name, ch.Name}})
			}
		}
	}
	return ps
}

// childFor finds the configured child whose selectors cover sel (a
// negotiated, possibly narrowed selector).
func childFor(conns []ike.Connection, sel sad.Selector) (childRef, bool) {
	for _, c := range conns {
		for _, ch := range c.Children {
			for _, cs := range outboundSelectors(ch) {
				if store.Covers(cs, sel) {
					return childRef{c.Name, ch.Name}, true
				}
			}
		}
	}
	return childRef{}, false
}

func (d *Daemon) ikeConnections() []ike.Connection {
	d.live.RLock()
	defer d.live.RUnlock()
	cs := make([]ike.Connection, len(d.cfg.IKE.Connections))
	for i := range d.cfg.IKE.Connections {
		cs[i] = d.cfg.IKE.Connections[i].Connection
	}
	return cs
}

func newIKEPlane(d *Daemon) *ikePlane {
	p := &ikePlane{
		d:       d,
		acq:     fastpath.NewAcquirer(d.cfg.IKE.AcquireInterval),
		ikePort: 500, nattPort: d.cfg.NATTPort,
	}
	p.traps = trapPolicies(d.ikeConnections())
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
	if d.cluster != nil {
		d.cluster.ike.configure(&ecfg)
	}
	conn := transport.Conn(p.conn)
	if d.cluster != nil {
		conn = d.cluster.ike.engineConn(conn) // messages held behind the SA writes before them
	}
	p.engine, err = ike.New(ecfg, conn, p)
	if err != nil {
		return fmt.Errorf("ike: %w", err)
	}
	if d.cluster != nil {
		d.cluster.ike.start(p.engine, d.store)
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
	// The SAs the engine deleted retire in the store: wiped now if the
	// workers have passed them, else when the daemon closes the store.
	p.d.store.Reclaim()
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
	tag, ok := p.d.store.TrapTag(pol)
	ref, isRef := tag.(childRef)
	return ref, ok && isRef
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

// InstallInbound implements ike.Installer: the SA goes into the store,
// which puts it in the inbound table and its SPI into the XDP program's
// live set, so its packets are steered to the workers rather than
// dropped as unknown.
func (p *ikePlane) InstallInbound(cfg sad.Config) error {
	sa, err := sad.New(cfg)
	if err != nil {
		return fmt.Errorf("inbound sa %08x: %w", cfg.SPI, err)
	}
	if err := p.d.store.Install(sa, store.Negotiated, nil); err != nil {
		return err
	}
	if p.d.cluster != nil {
		p.d.cluster.ike.installed(sa, cfg, nil)
	}
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

// InstallOutbound implements ike.Installer: the store points the
// policies of cfg.ReqID at the new SA with one atomic store each (see
// store.Store.Install); a rekey's old SA stays until Delete.
func (p *ikePlane) InstallOutbound(cfg sad.Config, sel []sad.Selector) error {
	sa, err := sad.New(cfg)
	if err != nil {
		return fmt.Errorf("outbound sa %08x: %w", cfg.SPI, err)
	}
	if p.d.cluster != nil {
		p.d.cluster.ike.prepare(sa)
	}
	if err := p.d.store.Install(sa, store.Negotiated, sel); err != nil {
		if p.d.cluster != nil {
			p.d.cluster.ike.abandon(sa)
		}
		return err
	}
	if p.d.cluster != nil {
		p.d.cluster.ike.installed(sa, cfg, sel)
	}
	p.d.log.Info("child sa installed", "dir", "out", "spi", fmt.Sprintf("%08x", sa.SPI), "name", sa.Name,
		"reqid", sa.ReqID, "policies", len(p.d.store.Bound(sa.ReqID)))
	return nil
}

// Delete implements ike.Installer: the store unpublishes the SA (see
// store.Store.Delete) and retires it.
func (p *ikePlane) Delete(spi uint32, dir sad.Direction) error {
	sa, err := p.d.store.Delete(store.Key{SPI: spi, Dir: dir, Origin: store.Negotiated})
	if sa == nil {
		return err
	}
	if p.d.cluster != nil {
		p.d.cluster.ike.deleted(sa)
	}
	p.d.log.Info("child sa deleted", "dir", dir.String(), "spi", fmt.Sprintf("%08x", spi), "name", sa.Name)
	return err
}

var _ ike.UsageInstaller = (*ikePlane)(nil)

// InstallTrap implements ike.TrapInstaller (dpd_action trap): the
// selectors stay as PROTECT policies without an SA, and raise acquires
// from now on (store.Store.InstallTrap). The configured children's
// selectors are fail-closed policies from the start; others are added.
func (p *ikePlane) InstallTrap(reqID uint32, sel []sad.Selector) error {
	conns := p.d.ikeConnections()
	return p.d.store.InstallTrap(reqID, sel, func(s sad.Selector) (any, bool) {
		ref, ok := childFor(conns, s)
		return ref, ok
	})
}

// tick reports the data plane's count-based expiries (bytes, packets,
// sequence numbers) to the engine, once each, and wipes the retired SAs
// the workers have passed. The engine keeps the time lifetimes itself.
func (p *ikePlane) tick() {
	p.d.store.Reclaim()
	for _, e := range p.d.store.Expiring(store.Negotiated, time.Now()) {
		// Outside the store's lock: the engine calls back into the
		// Installer.
		if err := p.engine.Expire(e.Key.SPI, e.Hard); err != nil {
			p.d.log.Debug("expire", "spi", fmt.Sprintf("%08x", e.Key.SPI), "hard", e.Hard, "err", err)
		} else {
			p.d.log.Info("child sa lifetime reached", "spi", fmt.Sprintf("%08x", e.Key.SPI), "hard", e.Hard)
		}
	}
}

// sas returns the installed SAs, inbound first, for snapshots.
func (p *ikePlane) sas() []*sad.SA {
	return p.d.store.SAs(store.Negotiated)
}

// list describes the IKE SAs for `show ike`.
func (p *ikePlane) list() []control.IKESA {
	infos := p.engine.List()
	out := make([]control.IKESA, 0, len(infos))
	for _, in := range infos {
		s := control.IKESA{
			Connection: in.Name, State: in.State.String(), Initiator: in.Initiator,
			SPIi: fmt.Sprintf("%016x", in.SPIi), SPIr: fmt.Sprintf("%016x", in.SPIr),
			Local: addrPort(in.Local), Remote: addrPort(in.Remote), LocalID: in.LocalID, RemoteID: in.RemoteID,
			NATT: in.NATT, Proposal: in.Proposal, Established: in.Established, Children: []control.ChildSA{},
		}
		if in.Standby {
			s.State = "STANDBY" // a cluster standby's copy: the group's owner runs it
		}
		for _, c := range in.Children {
			ch := control.ChildSA{
				Name: c.Name, State: "INSTALLING", ReqID: c.ReqID, SPIIn: c.SPIIn, SPIOut: c.SPIOut,
				Mode: c.Mode, UDPEncap: c.UDPEncap, Proposal: c.Proposal, LocalTS: c.LocalTS, RemoteTS: c.RemoteTS,
			}
			if c.InstalledInOut {
				ch.State = "INSTALLED"
			}
			if sa := p.d.store.Lookup(store.Key{SPI: c.SPIIn, Dir: sad.Inbound, Origin: store.Negotiated}); sa != nil {
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
	p.d.live.RLock()
	defer p.d.live.RUnlock()
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
