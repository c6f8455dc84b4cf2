package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/cpuid/v2"
	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/bpf"
	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/nexthop"
	"github.com/xdpsec/xdpsec/fastpath/reasm"
	"github.com/xdpsec/xdpsec/fastpath/xsk"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/internal/seqstate"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
	"github.com/xdpsec/xdpsec/sad/store"
)

// idlePoll bounds how long an idle worker sleeps in poll(2): it is also
// how long a shutdown may wait for a worker to notice.
const idlePoll = 5 * time.Millisecond

// Daemon is a running gateway.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	started time.Time

	// store owns every SA and policy, static and negotiated; inbound
	// and spd are its table and SPD, which the workers read.
	store    *store.Store
	inbound  *sad.Table
	spd      *spd.SPD
	sas      []*sad.SA // the static SAs, in the file's order
	policies []*spd.Policy
	// static are the file's policies with their directions, in its order.
	static        []staticPolicy
	inTruncWarned bool

	lanIf, wanIf *net.Interface
	// objs are the loaded XDP objects: one set in one-arm mode; a WAN
	// and a LAN set otherwise, because the program's XSKMAP is indexed by
	// receive queue alone and each interface's queue q needs its own
	// socket.
	objs     []*objSet
	lanHop   fastpath.NextHop
	wanHop   fastpath.NextHop
	hopClose []func() error
	hopStats map[string]func() map[string]uint64

	// seqKeys are the outbound static SAs and their keys' fingerprints;
	// seqRes keeps their durable sequence marks ahead (seqstate).
	seqKeys  []seqstate.Key
	seqStore *seqstate.Store
	seqRes   *seqstate.Reserver
	seqStop  context.CancelFunc
	seqDone  chan struct{}

	// curMTU is the WAN MTU the workers use; pmtu counts the ICMP
	// reports about our ESP and icmp reads them (pmtu.go).
	curMTU atomic.Int64
	pmtu   pmtuCounters
	icmp   *icmpListener

	// ike is the IKEv2 control plane; nil without connections.
	ike *ikePlane
	// cluster runs the tunnel groups' static SAs; nil without cluster:.
	cluster *clusterPlane

	queues []*queue
	// nQueues queues are served, worker q on cpus[q] (-1: not pinned);
	// rxQueues are the interfaces' RX queue counts as last seen.
	nQueues  int
	cpus     []int
	rxQueues []ifQueues
	// watchQueues' state: xsk_missing last logged, and when.
	missingSeen                  uint64
	missingLogged, queuesChecked time.Time
	zcLogged                     map[string]bool // interfaces whose AF_XDP mode was logged
	stop                         atomic.Bool
	wg                           sync.WaitGroup

	ctl     *control.Server
	httpSrv *http.Server
	bg      context.CancelFunc
	bgDone  chan struct{}
	closed  bool

	reloadState // live reload (reload.go)
}

type objSet struct {
	name string // "wan", "lan" or "onearm"
	o    *bpf.Objects
	att  *bpf.Attachment
	ifc  *net.Interface
}

type queue struct {
	q        int
	cpu      int
	lan, wan *xsk.Socket // the same socket in one-arm mode
	w        *fastpath.Worker
	// ep is the worker's epoch in the store's grace tracking.
	ep *store.Reader
	// registered: the sockets are in the XSKMAPs, so release must take
	// them out (and only then: the slots may hold another run's).
	registered bool
}

// Start brings the gateway up: tables, XDP programs, sockets, workers,
// control socket and metrics. On error everything it set up is released;
// a pinned program that was attached stays, failing closed.
func Start(cfg *config.Config, log *slog.Logger) (d *Daemon, err error) {
	d = &Daemon{cfg: cfg, log: log, started: time.Now()}
	defer func() {
		if err != nil {
			d.release(false, false)
			d = nil
			err = startHint(err)
		}
	}()
	// A second daemon on the same configuration would take over the
	// first one's pinned program and maps: refuse before touching them.
	if control.InUse(cfg.Control) {
		return d, fmt.Errorf("a daemon already serves %s: one daemon per configuration", cfg.Control)
	}
	if err := checkCapabilities(cfg); err != nil {
		return d, err
	}
	logCPU(log)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	d.saPrints = cfg.SAFingerprints() // before buildTables wipes the keys
	if err := d.buildTables(); err != nil {
		return d, err
	}
	if err := d.restoreSeq(); err != nil {
		return d, err
	}
	if d.seqRes != nil {
		ctx, cancel := context.WithCancel(context.Background())
		d.seqStop, d.seqDone = cancel, make(chan struct{})
		go d.reserveSeq(ctx, d.seqDone)
	}
	if d.cluster != nil {
		if err := d.startCluster(); err != nil {
			return d, err
		}
	}
	if err := d.resolveInterfaces(); err != nil {
		return d, err
	}
	if err := d.planQueues(); err != nil {
		return d, err
	}
	d.spreadESP()
	if err := d.loadXDP(); err != nil {
		return d, err
	}
	if err := d.openNextHops(); err != nil {
		return d, err
	}
	if err := d.openQueues(); err != nil {
		return d, err
	}
	for _, q := range d.queues {
		d.wg.Add(1)
		go d.runWorker(q)
	}
	d.attachClusterAddrs()
	d.publishClusterMACs()
	if d.ike != nil {
		if err := d.ike.start(); err != nil {
			return d, err
		}
	}
	d.ctl, err = control.Listen(cfg.Control, control.Access{ReadGID: cfg.ControlGroup, AdminGID: cfg.ControlAdminGroup}, d.Snapshot, log)
	if err != nil {
		return d, hinted(err, controlHint(err))
	}
	if d.ike != nil {
		d.ctl.Handle(control.CommandInitiate, d.ike.initiate)
		d.ctl.Handle(control.CommandTerminate, d.ike.terminate)
		d.ctl.Handle(control.CommandRekey, d.ike.rekey)
	}
	d.ctl.Handle(control.CommandReload, d.reloadAction)
	if d.cluster != nil {
		d.ctl.Handle(control.CommandClusterMove, d.cluster.moveAction)
	}
	if cfg.Metrics != "" {
		if err := d.serveMetrics(); err != nil {
			return d, err
		}
	}
	d.icmp = d.listenICMP()
	ctx, cancel := context.WithCancel(context.Background())
	d.bg, d.bgDone = cancel, make(chan struct{})
	go d.lifetimes(ctx)
	mode := "two-arm"
	if cfg.OneArm() {
		mode = "one-arm"
	}
	if cfg.Trunk() {
		mode = "trunk"
	}
	log.Info("gateway up", "mode", mode, "lan", cfg.LAN, "wan", cfg.WAN, "queues", d.nQueues,
		"sas", len(d.sas), "policies", len(d.policies), "connections", len(cfg.IKE.Connections),
		"control", cfg.Control, "metrics", cfg.Metrics)
	return d, nil
}

// Run starts the gateway and serves until ctx is done, then shuts down:
// with on_stop: detach (or no pin_path) nothing stays attached; by default
// the pinned programs stay and fail closed until the next start (Stop).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	d, err := Start(cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return d.Shutdown()
}

// Shutdown ends a started gateway the way its configuration says: with
// on_stop: detach (or no pin_path) nothing stays attached (Close); by
// default the pinned programs stay and fail closed (Stop).
func (d *Daemon) Shutdown() error {
	if d.cfg.PinPath != "" && !d.cfg.DetachOnStop {
		return d.Stop()
	}
	return d.Close()
}

// logCPU reports the CPU features the AEADs depend on.
func logCPU(log *slog.Logger) {
	c := cpuid.CPU
	log.Info("cpu", "brand", c.BrandName, "cores", runtime.NumCPU(),
		"aes-ni", c.Supports(cpuid.AESNI), "pclmulqdq", c.Supports(cpuid.CLMUL),
		"vaes", c.Supports(cpuid.VAES), "vpclmulqdq", c.Supports(cpuid.VPCLMULQDQ),
		"avx512f", c.Supports(cpuid.AVX512F), "avx2", c.Supports(cpuid.AVX2))
	if runtime.GOARCH == "amd64" && !c.Supports(cpuid.AESNI) {
		log.Warn("!!! this CPU has no AES-NI: AES-GCM runs in software, an order of magnitude slower; consider chacha20poly1305 !!!")
	}
}

func (d *Daemon) buildTables() error {
	cfg := d.cfg
	defer cfg.WipeSAKeys() // the SAs hold their own copies of the keys
	out := map[string]*sad.SA{}
	for i := range cfg.SAs {
		sc := &cfg.SAs[i]
		sa, err := sad.New(sc.Config)
		if err != nil {
			return fmt.Errorf("%s:%d: sa %s: %w", cfg.File, sc.Line, sc.Name, err)
		}
		if err := benchNullCipher(cfg, sa, d.log); err != nil {
			return fmt.Errorf("%s:%d: sa %s: %w", cfg.File, sc.Line, sc.Name, err)
		}
		d.sas = append(d.sas, sa)
		if sa.Dir == sad.Outbound {
			out[sc.Name] = sa
		}
	}
	d.seqKeys = seqKeys(cfg, d.sas)
	if cfg.Cluster != nil {
		d.cluster = newClusterPlane(cfg, d.sas, d.log) // reads the keys: before the wipe
	}
	for _, pc := range cfg.Policies {
		p := &spd.Policy{Name: pc.Name, Selector: pc.Selector, Action: pc.Action, MSSClamp: pc.MSSClamp}
		if pc.Action == spd.Protect {
			sa := out[pc.SA]
			p.SA.Store(sa)
			p.ReqID = sa.ReqID
		}
		d.static = append(d.static, staticPolicy{p, pc.Dir})
		if pc.Dir == config.DirIn {
			continue // decides WAN cleartext only
		}
		d.policies = append(d.policies, p)
	}
	scfg := store.Config{Hint: len(cfg.SAs), Policies: d.policies, Mirror: xdpMirror{d}}
	if len(cfg.IKE.Connections) > 0 {
		// The connections' selectors are policies from the start, after
		// the file's own: dropped until a Child SA is up, never leaked.
		d.ike = newIKEPlane(d)
		scfg.Traps = d.ike.traps
		for _, t := range d.ike.traps {
			d.policies = append(d.policies, t.Policy)
		}
	}
	st, err := store.New(scfg)
	if err != nil {
		return err
	}
	d.store, d.inbound, d.spd = st, st.Inbound(), st.SPD()
	// The file's SAs come in through the store's one door, as IKE's do;
	// its policies name their outbound SAs already.
	for i, sa := range d.sas {
		if err := st.Install(sa, store.Static, nil); err != nil {
			sc := &cfg.SAs[i]
			return fmt.Errorf("%s:%d: sa %s: %w", cfg.File, sc.Line, sc.Name, err)
		}
	}
	return nil
}

// xdpMirror is the store's view of the XDP programs (store.Mirror).
type xdpMirror struct{ d *Daemon }

// SetSPILive makes an inbound SPI live (steered to the workers) in the
// programs that receive ESP, or takes it out.
func (m xdpMirror) SetSPILive(spi uint32, live bool) error {
	var errs []error
	for _, s := range m.d.liveObjs() {
		if err := s.o.SetSPILive(spi, live); err != nil {
			errs = append(errs, fmt.Errorf("xdp %s: %w", s.name, err))
			if live {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// SyncPolicies republishes the SPD after a policy was added or removed.
func (m xdpMirror) SyncPolicies() error { return m.d.syncMirror() }

func (d *Daemon) resolveInterfaces() error {
	var err error
	if d.lanIf, err = net.InterfaceByName(d.cfg.LAN); err != nil {
		return hinted(fmt.Errorf("interfaces.lan %q: %w", d.cfg.LAN, err), interfaceHint(err))
	}
	if d.wanIf, err = net.InterfaceByName(d.cfg.WAN); err != nil {
		return hinted(fmt.Errorf("interfaces.wan %q: %w", d.cfg.WAN, err), interfaceHint(err))
	}
	return nil
}

// ownAddrs are the gateway's unicast addresses on its interfaces.
func (d *Daemon) ownAddrs() []netip.Addr {
	var as []netip.Addr
	for _, ifc := range []*net.Interface{d.lanIf, d.wanIf} {
		addrs, err := ifc.Addrs()
		if err != nil {
			d.log.Warn("interface addresses", "interface", ifc.Name, "err", err)
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ad, ok := netip.AddrFromSlice(ipn.IP); ok && !ad.IsLinkLocalUnicast() {
				as = append(as, ad.Unmap())
			}
		}
	}
	return as
}

// mirror is the SPD projected for the XDP program, with the gateway's own
// addresses BYPASS so that traffic to the gateway (IKE, ESP in one-arm
// mode, management, neighbour discovery) reaches the kernel even when a
// PROTECT or DISCARD prefix covers it.
func (d *Daemon) mirror() []bpf.SPDEntry {
	m := d.spd.MirrorWithDefault(d.cfg.DefaultAction)
	entries := make([]bpf.SPDEntry, 0, len(m)+4)
	own := map[netip.Prefix]bool{}
	for _, a := range d.ownAddrs() {
		own[netip.PrefixFrom(a, a.BitLen())] = true
	}
	for _, e := range m {
		if own[e.Prefix] {
			continue
		}
		entries = append(entries, bpf.SPDEntry{Prefix: e.Prefix, Action: mirrorAction(e.Action)})
	}
	for p := range own {
		entries = append(entries, bpf.SPDEntry{Prefix: p, Action: bpf.ActionBypass})
	}
	return entries
}

func mirrorAction(a spd.MirrorAction) bpf.Action {
	switch a {
	case spd.MirrorBypass:
		return bpf.ActionBypass
	case spd.MirrorProtect:
		return bpf.ActionProtect
	case spd.MirrorDiscard:
		return bpf.ActionDiscard
	default:
		// Anything unknown goes to user space, which decides exactly.
		return bpf.ActionDivert
	}
}

func (d *Daemon) liveSPIs() []uint32 {
	var spis []uint32
	for _, sa := range d.sas {
		if sa.Dir == sad.Inbound {
			spis = append(spis, sa.SPI)
		}
	}
	return spis
}

func (d *Daemon) load(name, pin string) (*bpf.Objects, error) {
	o, err := bpf.Load(bpf.Options{PinPath: pin, ReplaceIncompatible: true})
	if err != nil && pin != "" {
		return nil, fmt.Errorf("xdp %s: %w\n  pin_path (%s) keeps the XDP program attached while the daemon is down, so PROTECT traffic is dropped, "+
			"never routed in clear: mount a bpf filesystem there (mount -t bpf bpf /sys/fs/bpf) or set pin_path to one; "+
			"`pin_path: none` opts out of failing closed", name, err, d.cfg.PinPath)
	}
	if err != nil {
		return nil, fmt.Errorf("xdp %s: %w", name, err)
	}
	if err := o.SetNATTPort(d.cfg.NATTPort); err != nil {
		o.Close()
		return nil, fmt.Errorf("xdp %s: %w", name, err)
	}
	return o, nil
}

// loadXDP loads, fills and attaches the steering programs. The maps are
// filled before the attach, so a program taken over from a crashed run
// never sees the old run's SPIs with this run's sockets.
func (d *Daemon) loadXDP() error {
	cfg := d.cfg
	pin := func(sub string) string {
		if cfg.PinPath == "" {
			return ""
		}
		if cfg.OneArm() {
			return cfg.PinPath
		}
		return filepath.Join(cfg.PinPath, sub)
	}
	if cfg.PinPath == "" {
		d.log.Warn("pin_path: none: the XDP program goes with the daemon, so while it is down (crash, stop, restart) the kernel may route PROTECT traffic in clear")
	}
	type plan struct {
		name   string
		ifc    *net.Interface
		spis   []uint32
		spd    []bpf.SPDEntry
		attach func(*bpf.Objects, int, xdpconf.AttachMode) (*bpf.Attachment, error)
	}
	var plans []plan
	if cfg.OneArm() {
		plans = []plan{{"onearm", d.wanIf, d.liveSPIs(), d.mirror(), (*bpf.Objects).AttachOneArm}}
	} else {
		plans = []plan{
			{"wan", d.wanIf, d.liveSPIs(), nil, (*bpf.Objects).AttachWAN},
			{"lan", d.lanIf, nil, d.mirror(), (*bpf.Objects).AttachLAN},
		}
	}
	for _, p := range plans {
		o, err := d.load(p.name, pin(p.name))
		if err != nil {
			return err
		}
		set := &objSet{name: p.name, o: o, ifc: p.ifc}
		d.objs = append(d.objs, set)
		if err := o.SyncSPIs(p.spis); err != nil {
			return fmt.Errorf("xdp %s: %w", p.name, err)
		}
		if err := o.SyncSPD(p.spd); err != nil {
			return fmt.Errorf("xdp %s: %w", p.name, err)
		}
		vid := cfg.WANVLAN
		if p.name == "lan" {
			vid = cfg.LANVLAN
		}
		if err := o.SetVLAN(vid); err != nil {
			return fmt.Errorf("xdp %s: %w", p.name, err)
		}
		if err := o.SetTrunk(cfg.Trunk(), cfg.LANVLAN); err != nil {
			return fmt.Errorf("xdp %s: %w", p.name, err)
		}
		svid := cfg.WANSVLAN
		if p.name == "lan" {
			svid = cfg.LANSVLAN
		}
		if err := o.SetServiceVLAN(svid, cfg.LANSVLAN); err != nil {
			return fmt.Errorf("xdp %s: %w", p.name, err)
		}
		if p.name != "lan" {
			in, err := d.inboundSPD()
			if err == nil {
				err = o.SyncInbound(in)
			}
			if err != nil {
				return fmt.Errorf("xdp %s: %w", p.name, err)
			}
		}
		att, err := p.attach(o, p.ifc.Index, cfg.XDPMode)
		if err != nil {
			return hinted(fmt.Errorf("xdp %s on %s: %w", p.name, p.ifc.Name, err), attachHint(p.ifc.Name, err))
		}
		set.att = att
		lvl := slog.LevelInfo
		if att.Mode == xdpconf.ModeGeneric {
			lvl = slog.LevelWarn // works everywhere, but slow and copy-only
		}
		d.log.Log(context.Background(), lvl, "xdp attached", "program", "xdp_"+p.name, "interface", p.ifc.Name,
			"ifindex", p.ifc.Index, "mode", att.Mode.String(), "reused_pin", att.Reused,
			"live_spis", len(p.spis), "spd_entries", len(p.spd))
	}
	return nil
}

func (d *Daemon) openNextHops() error {
	open := func(ifc *net.Interface) (fastpath.NextHop, error) {
		t, err := nexthop.New(ifc.Index, nexthop.Options{Logger: d.log.With("nexthop", ifc.Name)})
		if err != nil {
			return nil, fmt.Errorf("next hops on %s: %w", ifc.Name, err)
		}
		d.hopClose = append(d.hopClose, t.Close)
		if d.hopStats == nil {
			d.hopStats = map[string]func() map[string]uint64{}
		}
		d.hopStats[ifc.Name] = func() map[string]uint64 { return hopStatsMap(t.Stats()) }
		return t, nil
	}
	var err error
	if d.wanHop, err = open(d.wanIf); err != nil {
		return err
	}
	if d.cfg.OneArm() {
		d.lanHop = d.wanHop
		return nil
	}
	d.lanHop, err = open(d.lanIf)
	return err
}

func (d *Daemon) openQueues() error {
	cfg := d.cfg
	obj := func(name string) *bpf.Objects {
		for _, s := range d.objs {
			if s.name == name {
				return s.o
			}
		}
		return nil
	}
	mtu := d.wanMTU()
	d.curMTU.Store(int64(mtu))
	src4, src6 := d.icmpSources()
	policyMSS := false
	for _, p := range cfg.Policies {
		policyMSS = policyMSS || p.MSSClamp != spd.MSSInherit
	}
	d.log.Info("path MTU", "wan_mtu", mtu, "configured", cfg.MTU > 0, "icmp_from", []netip.Addr{src4, src6}, "mss_clamp", cfg.MSSClamp)
	for q := 0; q < d.nQueues; q++ {
		qu := &queue{q: q, cpu: d.cpus[q]}
		// Registered in d.queues first so that release closes what
		// was opened if a later step fails.
		d.queues = append(d.queues, qu)
		var err error
		qu.wan, err = d.openXSK(d.wanIf, q)
		if err != nil {
			return err
		}
		qu.registered = true
		if cfg.OneArm() {
			qu.lan = qu.wan
			if err := obj("onearm").RegisterXSK(q, qu.wan.FD()); err != nil {
				return err
			}
		} else {
			// Separate UMEMs: the worker copies across them, and the
			// AEAD's output is that copy.
			qu.lan, err = d.openXSK(d.lanIf, q)
			if err != nil {
				return err
			}
			if err := obj("wan").RegisterXSK(q, qu.wan.FD()); err != nil {
				return err
			}
			if err := obj("lan").RegisterXSK(q, qu.lan.FD()); err != nil {
				return err
			}
		}
		wc := fastpath.Config{
			LAN: qu.lan, WAN: qu.wan, Inbound: d.inbound, SPD: d.spd,
			LANHop: d.lanHop, WANHop: d.wanHop, NATTPort: cfg.NATTPort,
			DefaultBypass: cfg.DefaultAction == spd.Bypass,
			WANMTU:        mtu, ICMPSrc4: src4, ICMPSrc6: src6,
			MSSClamp: cfg.MSSClamp, PolicyMSS: policyMSS, Batch: workerBatch(cfg),
			LANVLAN: cfg.LANVLAN, WANVLAN: cfg.WANVLAN, LANSVLAN: cfg.LANSVLAN, WANSVLAN: cfg.WANSVLAN,
			Reasm: reasm.Config{Slots: cfg.Reassembly.Datagrams, PerSource: cfg.Reassembly.PerSource,
				Timeout: int64(cfg.Reassembly.Timeout)},
			GateHold: d.gateHold(), OwnMAC: d.ownMACs(),
		}
		if d.ike != nil {
			wc.Acquire = d.ike.acq
		}
		qu.w = fastpath.NewWorker(q, wc)
		qu.ep = d.store.Grace().Register()
		d.log.Info("queue up", "queue", q, "cpu", qu.cpu, "zero_copy", qu.wan.ZeroCopy())
	}
	d.logUMEMPages()
	return nil
}

// idleSpin decides when a worker sleeps in poll(2). With spin > 0 (the
// idle_spin key), a worker whose queues ran empty keeps polling the rings,
// which costs no syscall, for that long before it sleeps: under load the
// next batch is usually microseconds away, and a sleep costs a syscall and
// two context switches. It spins again only after a poll found work, so an
// idle queue costs one spin per wakeup, not a busy core. With spin 0 the
// first empty poll sleeps.
type idleSpin struct {
	spin    time.Duration
	from    time.Time // start of the current spin; zero: not spinning
	stopped bool      // spun out since the last poll with work
}

// sleep takes the outcome of a poll (whether it found packets) and says
// whether the worker should now sleep in poll(2). now is read only while
// spinning.
func (s *idleSpin) sleep(work bool, now func() time.Time) bool {
	if work {
		s.from, s.stopped = time.Time{}, false
		return false
	}
	if s.spin <= 0 || s.stopped {
		return true
	}
	t := now()
	if s.from.IsZero() {
		s.from = t
	}
	if t.Sub(s.from) < s.spin {
		return false
	}
	s.from, s.stopped = time.Time{}, true
	return true
}

// workerBatch is the packets per poll the workers take: batch:, or
// config.DefaultBatch.
func workerBatch(cfg *config.Config) int {
	if cfg.Batch > 0 {
		return cfg.Batch
	}
	return config.DefaultBatch
}

func (d *Daemon) runWorker(q *queue) {
	defer d.wg.Done()
	// The worker owns its sockets' rings; keeping it on one OS thread
	// (and, when configured, one CPU) keeps their cache lines there.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if q.cpu >= 0 {
		var set unix.CPUSet
		set.Set(q.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			d.log.Warn("cpu pinning failed", "queue", q.q, "cpu", q.cpu, "err", err)
		}
	}
	socks := []*xsk.Socket{q.wan}
	if q.lan != q.wan {
		socks = append(socks, q.lan)
	}
	var pollErrs int
	// The worker holds no SA between polls: it says so to the store once
	// per poll (quiescent), and before it blocks or leaves (offline), so
	// retired SAs are wiped only after it moved past them and an idle
	// queue never holds that up.
	defer q.ep.Offline()
	idle := idleSpin{spin: d.cfg.IdleSpin}
	for !d.stop.Load() {
		q.ep.Quiesce()
		if !idle.sleep(q.w.Poll() > 0, time.Now) {
			continue
		}
		q.ep.Offline()
		if _, err := xsk.PollAny(idlePoll, socks...); err != nil {
			pollErrs++
			if pollErrs == 1 {
				d.log.Error("worker poll", "queue", q.q, "err", err)
			}
			time.Sleep(idlePoll)
		}
	}
}

// lifetimes applies the SAs' time limits and reports, once each, SAs that
// want a rekey (which static SAs cannot have) or died.
func (d *Daemon) lifetimes(ctx context.Context) {
	defer close(d.bgDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			d.watchQueues(now)
			for _, e := range d.store.Expiring(store.Static, now) {
				if e.Hard {
					d.log.Error("SA expired: its traffic is dropped", "sa", e.SA.String())
				} else {
					d.log.Warn("soft lifetime reached; static SAs are not rekeyed: replace the keys", "sa", e.SA.String())
				}
			}
			d.store.Reclaim()
			if d.ike != nil && d.ike.engine != nil {
				d.ike.tick()
			}
			d.refreshMTU()
			d.agePMTU(now)
		}
	}
}

// Close shuts the gateway down in order: workers stop, sockets leave the
// XSKMAP and close, the programs are detached and unpinned, and the
// control and metrics endpoints go. Afterwards nothing of the daemon is
// attached to any interface.
func (d *Daemon) Close() error {
	return d.release(true, true)
}

// Stop shuts the gateway down as Close does, IKE deletes to the peers
// included, but leaves the pinned XDP programs attached: with no socket
// to redirect to they drop PROTECT traffic and ESP (fail closed) until
// the next start takes them over, or `xdpsec run --cleanup` removes them.
// It is what a restart wants: no plaintext leaves in between.
func (d *Daemon) Stop() error {
	return d.release(false, true)
}

// release tears the daemon down; detach removes the XDP programs (else
// the pinned ones stay attached), goodbye sends IKE deletes first.
func (d *Daemon) release(detach, goodbye bool) error {
	d.reloadMu.Lock() // a reload in progress finishes first
	defer d.reloadMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	d.stop.Store(true)
	d.wg.Wait()
	if d.seqStop != nil {
		// The workers are gone: no number is used past this point.
		d.seqStop()
		<-d.seqDone
	}
	if d.seqStore != nil {
		errs = append(errs, d.seqStore.Close())
	}
	if d.cluster != nil {
		errs = append(errs, d.cluster.close())
	}
	if d.bg != nil {
		d.bg()
		<-d.bgDone
	}
	d.icmp.close()
	if d.ike != nil {
		if goodbye && d.ike.engine != nil {
			d.ike.goodbye()
		}
		// Before the XDP objects close: the engine's last deletes unset
		// live SPIs in them.
		errs = append(errs, d.ike.close())
	}
	if d.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		errs = append(errs, d.httpSrv.Shutdown(ctx))
		cancel()
	}
	if d.ctl != nil {
		errs = append(errs, d.ctl.Close())
	}
	for _, q := range d.queues {
		for _, s := range d.objs {
			if !q.registered {
				break
			}
			if err := s.o.UnregisterXSK(q.q); err != nil {
				errs = append(errs, err)
			}
		}
		if q.wan != nil {
			errs = append(errs, q.wan.Close())
		}
		if q.lan != nil && q.lan != q.wan {
			errs = append(errs, q.lan.Close())
		}
	}
	for _, s := range d.objs {
		if detach {
			if err := s.o.Detach(); err != nil {
				errs = append(errs, fmt.Errorf("xdp %s: detach: %w", s.name, err))
			} else {
				d.log.Info("xdp detached", "program", "xdp_"+s.name, "interface", s.ifc.Name)
			}
		} else {
			if s.att != nil {
				s.att.Close()
				if d.cfg.PinPath != "" {
					why := "start failed"
					if goodbye {
						why = "stopped (on_stop: keep)"
					}
					d.log.Warn(why+": the pinned XDP program stays attached and drops PROTECT traffic (fail closed) until the next start; remove it with `xdpsec run --cleanup -c FILE`",
						"program", "xdp_"+s.name, "interface", s.ifc.Name)
				}
			}
			errs = append(errs, s.o.Close())
		}
	}
	if detach && d.cfg.PinPath != "" && !d.cfg.OneArm() {
		// The per-role directories are gone; their parent was ours too.
		if err := os.Remove(d.cfg.PinPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("pin path: %w", err))
		}
	}
	for _, c := range d.hopClose {
		errs = append(errs, c())
	}
	// The workers are gone: every SA's keys go, retired or not.
	if d.store != nil {
		d.store.Close()
	}
	for _, sa := range d.sas {
		sa.Kill()
		sa.Crypto.Destroy()
	}
	return errors.Join(errs...)
}

// Cleanup removes what a crashed daemon left pinned for cfg: the programs
// are detached and the maps unpinned, so the kernel routes on its own
// again. It is for operators; a restarted daemon takes the pins over
// instead.
func Cleanup(cfg *config.Config) error {
	if cfg.PinPath == "" {
		return errors.New("no pin_path in the configuration: nothing is pinned")
	}
	var errs []error
	if cfg.OneArm() {
		errs = append(errs, bpf.DetachPinned(cfg.PinPath))
	} else {
		errs = append(errs, bpf.DetachPinned(filepath.Join(cfg.PinPath, "wan")),
			bpf.DetachPinned(filepath.Join(cfg.PinPath, "lan")))
		if err := os.Remove(cfg.PinPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
