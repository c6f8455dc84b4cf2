package ike

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// Defence configures the responder's flood defence (RFC 7296 §2.6
// cookies, a per-source limit, the half-open cap); zero fields take the
// defaults.
type Defence struct {
	// HalfOpenLimit caps responder IKE SAs that have not completed IKE_AUTH;
	// IKE_SA_INIT requests beyond it are dropped. Default 10000.
	HalfOpenLimit int
	// HalfOpenTimeout is how long such an SA may wait for IKE_AUTH. Default 30 s.
	HalfOpenTimeout time.Duration
	// CookieThreshold is the number of half-open IKE SAs from which
	// IKE_SA_INIT requests must carry a valid COOKIE (RFC 7296 §2.6).
	// Default 32. CookiesAlways demands them from every request.
	CookieThreshold int
	CookiesAlways   bool
	// CookieSecretLifetime is how long one cookie secret makes cookies;
	// those of the previous secret stay valid one lifetime more. Default 2m.
	CookieSecretLifetime time.Duration
	// InitRate and InitBurst limit the IKE_SA_INIT requests one source
	// may have answered with a key exchange: InitRate a second, InitBurst
	// at once. Only requests that would cost one are counted (malformed
	// ones, wrong groups and proposals nobody takes cost nothing), and a
	// source over its limit is asked for a COOKIE rather than ignored:
	// requests with a valid COOKIE come from the address's real owner and
	// are counted apart, so a spoofer cannot use a peer's allowance up.
	// Defaults 10 and 20; a negative InitRate turns the limit off (a load
	// generator behind one address).
	InitRate  float64
	InitBurst int
	// RateLimitSlots sizes the per-source table (fixed memory, 24 octets a
	// slot); default 4096.
	RateLimitSlots int
	// SourcePrefixV4 and SourcePrefixV6 are what the per-source limits
	// count as one source: the prefix of that length around the address.
	// Defaults DefaultSourcePrefixV4 (32) and DefaultSourcePrefixV6 (64).
	SourcePrefixV4, SourcePrefixV6 int
	// HalfOpenPerPrefix caps the half-open IKE SAs of one source, those
	// started with a valid COOKIE and the others each; beyond it the
	// source is asked for a COOKIE (or, if it sent one, dropped). Default
	// DefaultHalfOpenPerPrefix; off, with the rate, when InitRate is
	// negative.
	HalfOpenPerPrefix int
	// ReassemblyBudget bounds the memory of all partially reassembled
	// fragmented messages (RFC 7383) together, in octets; IKE SAs not yet
	// authenticated may use half of it, each at most
	// UnauthReassemblyLimit. Defaults DefaultReassemblyBudget and
	// DefaultUnauthReassemblyLimit.
	ReassemblyBudget      int
	UnauthReassemblyLimit int
}

// Config configures an Engine.
type Config struct {
	Connections []Connection
	Retransmit  Retransmit
	// Defence is how the responder holds up under a flood of
	// IKE_SA_INIT requests.
	Defence
	// RemoteIKEPort and RemoteNATTPort are the peer's ports; zero means the
	// same as ours (500 and 4500 in production, anything in tests).
	RemoteIKEPort, RemoteNATTPort uint16
	Logger                        *slog.Logger
	// KeyLogIKE and KeyLogESP, when set, receive every IKE SA's and every
	// ESP SA's keys as rows of Wireshark's ikev2_decryption_table and esp_sa
	// files (copy them into a WIRESHARK_CONFIG_DIR). For debugging only: they
	// defeat the protection of every SA they list. Off (nil) by default.
	KeyLogIKE, KeyLogESP io.Writer
	// RekeyedInboundDelay is how long the inbound half of a Child SA that
	// a rekey replaced stays in the data plane after the Delete exchange
	// that ends it (strongSwan's delete_rekeyed_delay): the peer switched
	// to the new SA just before, and ESP it sealed with the old one may
	// still be on the wire or in a worker's queue, behind the IKE message
	// that took the faster path. The SA can only decrypt; nothing is sent
	// with it. Default DefaultRekeyedInboundDelay; negative: none.
	RekeyedInboundDelay time.Duration
	// RekeyDeleteDelay is how long the initiator of a Child SA rekey waits,
	// after its traffic moved to the new SA, before it sends the Delete of
	// the old one: packets a worker sealed with the old SA just before the
	// switch leave through the data plane, the Delete through the kernel,
	// and a peer that drops the old inbound SA at once on the Delete
	// (strongSwan as rekey responder does) would lose the ones the Delete
	// overtook. Default DefaultRekeyDeleteDelay; negative: none.
	RekeyDeleteDelay time.Duration
	// Reachable, when set, says whether remote can be reached from local
	// (the kernel has a route from that source); an initiator takes the
	// first of its connection's local addresses of the remote's family
	// for which it holds. Nil: every address reaches.
	Reachable func(local, remote netip.Addr) bool
	// Export, when set, receives each established IKE SA whenever it
	// changes, and a Deleted state when it goes (cluster replication,
	// see IKESAState). It runs on the engine's loop: it must not block,
	// and it owns the state's keys.
	Export func(IKESAState)
	// ReqID, when set, allocates the ReqID of a new Child SA of the
	// connection (cluster-wide ReqIDs for grouped connections); 0 leaves
	// it to the engine's own counter.
	ReqID func(connection string) uint32
	// SPIRange, when set, confines the inbound SPIs the engine picks for
	// the connection's Child SAs to those whose bits under mask are
	// prefix's (a cluster gives each tunnel group its own part of the
	// space, so a replicated SA's SPI never meets another node's own).
	SPIRange func(connection string) (prefix, mask uint32)
}

// DefaultRekeyDeleteDelay is the default Config.RekeyDeleteDelay: many
// times a worker's batch, well under any lifetime.
const DefaultRekeyDeleteDelay = 100 * time.Millisecond

// DefaultRekeyedInboundDelay is the default Config.RekeyedInboundDelay:
// far longer than any reordering between the IKE and the ESP path, short
// enough that very short lifetimes do not pile SAs up.
const DefaultRekeyedInboundDelay = time.Second

// Engine owns the IKE sockets' traffic, the IKE SAs and their Child SAs.
// Its methods are safe for concurrent use: they hand work to the engine's
// single loop goroutine, which alone touches SA state.
type Engine struct {
	conn  transport.Conn
	inst  Installer
	log   *slog.Logger
	conns []*Connection
	// peers is conns as the gate reads it (acceptsPeer): the loop
	// publishes a new slice whenever a reload changes conns.
	peers atomic.Pointer[[]*Connection]
	// reachable is Config.Reachable.
	reachable func(local, remote netip.Addr) bool

	retransmit      Retransmit
	halfOpenLimit   int
	halfOpenTimeout time.Duration
	cookieThreshold atomic.Int64 // read by the gate; SetDefence changes it
	cookiesAlways   atomic.Bool
	cookies         *cookieJar     // admission's only
	limiter         *sourceLimiter // the loop's only; nil: no limit
	provenLimiter   *sourceLimiter // for requests with a valid COOKIE
	prefix          sourcePrefix
	halfOpenPer     int                   // HalfOpenPerPrefix
	hoPrefix        map[[16]byte][2]int32 // half-open SAs by source: [unproven, proven]
	reasm           reassemblyBudget
	flood           floodCounters
	quiet           quietLog
	admitted        chan inbound
	initsQueued     atomic.Int64 // IKE_SA_INIT requests in admitted
	rIKEPort        uint16
	rNATTPort       uint16
	keylogIKE       io.Writer
	keylogESP       io.Writer
	rekeyedDelay    time.Duration
	rekeyDelete     time.Duration

	sas      map[uint64]*ikeSA    // by our SPI
	halfOpen map[halfOpenKey]bool // responder SAs before IKE_AUTH: started with a valid COOKIE

	byInit    map[halfOpenKey]*ikeSA    // responder SAs until established, to spot retransmitted IKE_SA_INITs
	hybrid    map[*ikeSA]*hybridState   // IKE SAs between IKE_SA_INIT and IKE_AUTH with additional key exchanges
	followups map[*ikeSA]*followupState // by old IKE SA: peers' rekeys waiting for IKE_FOLLOWUP_KE
	spis      map[uint32]struct{}       // our inbound ESP SPIs
	// lingering are the inbound halves of rekeyed Child SAs kept for
	// late packets after their deletion (RekeyedInboundDelay), by SPI;
	// their SPIs stay reserved until the timer removes them.
	lingering map[uint32]*time.Timer

	// keepalives are the IKE SAs behind a NAT that send NAT-T keepalives.
	keepalives     map[*ikeSA]*natKeepalive
	keepalivesSent atomic.Uint64

	nextReqID uint32
	allocReq  func(connection string) uint32
	spiRange  func(connection string) (prefix, mask uint32)
	exp       exporter
	frag      fragCounters
	// fragTimeout is reassemblyTimeout; tests shorten it.
	fragTimeout time.Duration

	events    chan func()
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// halfOpenKey finds a half-open SA from a retransmitted IKE_SA_INIT, which
// does not yet carry our SPI.
type halfOpenKey struct {
	spiI   uint64
	remote netip.AddrPort
}

// New starts an engine on conn. Connections with StartStart are initiated
// at once.
func New(cfg Config, conn transport.Conn, inst Installer) (*Engine, error) {
	e, err := newEngine(cfg, conn, inst)
	if err != nil {
		return nil, err
	}
	go e.gate()
	go e.loop()
	e.autoStart()
	return e, nil
}

// newEngine builds an engine without starting its loop.
func newEngine(cfg Config, conn transport.Conn, inst Installer) (*Engine, error) {
	if conn == nil || inst == nil {
		return nil, errors.New("ike: New needs a transport and an installer")
	}
	e := &Engine{
		conn:         conn,
		inst:         inst,
		reachable:    cfg.Reachable,
		log:          cfg.Logger,
		retransmit:   cfg.Retransmit.withDefaults(),
		admitted:     make(chan inbound, admittedQueue),
		rIKEPort:     cfg.RemoteIKEPort,
		rNATTPort:    cfg.RemoteNATTPort,
		keylogIKE:    cfg.KeyLogIKE,
		keylogESP:    cfg.KeyLogESP,
		rekeyedDelay: cfg.RekeyedInboundDelay,
		rekeyDelete:  cfg.RekeyDeleteDelay,
		allocReq:     cfg.ReqID,
		spiRange:     cfg.SPIRange,
		exp:          exporter{hook: cfg.Export},
		lingering:    map[uint32]*time.Timer{},
		keepalives:   map[*ikeSA]*natKeepalive{},
		sas:          map[uint64]*ikeSA{},
		halfOpen:     map[halfOpenKey]bool{},
		hoPrefix:     map[[16]byte][2]int32{},
		byInit:       map[halfOpenKey]*ikeSA{},
		hybrid:       map[*ikeSA]*hybridState{},
		followups:    map[*ikeSA]*followupState{},
		spis:         map[uint32]struct{}{},
		fragTimeout:  reassemblyTimeout,
		events:       make(chan func(), 64),
		quit:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	now := e.now()
	e.cookies = newCookieJar(cfg.CookieSecretLifetime, now)
	e.prefix = sourcePrefix{v4: cfg.SourcePrefixV4, v6: cfg.SourcePrefixV6}
	if e.prefix.v4 <= 0 || e.prefix.v4 > 32 {
		e.prefix.v4 = DefaultSourcePrefixV4
	}
	if e.prefix.v6 <= 0 || e.prefix.v6 > 128 {
		e.prefix.v6 = DefaultSourcePrefixV6
	}
	e.setLimits(cfg.Defence, now)
	e.reasm = newReassemblyBudget(cfg.ReassemblyBudget, cfg.UnauthReassemblyLimit)
	e.quiet.log = e.log
	if e.rekeyedDelay == 0 {
		e.rekeyedDelay = DefaultRekeyedInboundDelay
	}
	if e.rekeyDelete == 0 {
		e.rekeyDelete = DefaultRekeyDeleteDelay
	}
	names := map[string]bool{}
	for i := range cfg.Connections {
		c := cfg.Connections[i]
		if c.Local.ID.Type == 0 && c.Local.Certificate != nil {
			c.Local.ID = IdentityDN(c.Local.Certificate)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("ike: %w", err)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("ike: connection %s defined twice", c.Name)
		}
		names[c.Name] = true
		e.conns = append(e.conns, &c)
	}
	e.publishPeers()
	return e, nil
}

// autoStart initiates the connections whose start action says so.
func (e *Engine) autoStart() {
	for _, c := range e.conns {
		if c.StartAction == StartStart {
			name := c.Name
			e.post(func() {
				if _, err := e.initiate(name, nil); err != nil {
					e.log.Warn("start failed", "connection", name, "err", err)
				}
			})
		}
	}
}

func (e *Engine) now() time.Time { return time.Now() }

// post runs f on the loop goroutine; it returns false once the engine is
// closed.
func (e *Engine) post(f func()) bool {
	select {
	case e.events <- f:
		return true
	case <-e.quit:
		return false
	}
}

// afterFunc runs f on the loop goroutine after d.
func (e *Engine) afterFunc(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() { e.post(f) })
}

func (e *Engine) loop() {
	defer close(e.done)
	rx := e.admitted
	for {
		select {
		case <-e.quit:
			e.quiet.stop()
			for _, sa := range e.sas {
				sa.destroy()
			}
			for spi := range e.lingering {
				e.endLinger(spi)
			}
			for _, c := range e.conns {
				crypto.Zero(c.Local.PSK)
				crypto.Zero(c.Remote.PSK)
			}
			return
		case f := <-e.events:
			f()
			e.flushExports()
		case in, ok := <-rx:
			if !ok {
				rx = nil
				continue
			}
			e.dispatch(in)
			e.flushExports()
			if in.startsSA {
				e.initsQueued.Add(-1) // after dispatch: by now it is half-open or gone
			}
		}
	}
}

// Close stops the engine, deletes every SA from the installer (without
// telling the peers) and wipes the keys. It does not close the transport.
func (e *Engine) Close() {
	e.closeOnce.Do(func() { close(e.quit) })
	<-e.done
}

// receive admits and dispatches one datagram, as the gate and the loop
// together do; tests drive a loop-less engine with it.
func (e *Engine) receive(p transport.Packet) {
	if in, ok := e.admit(p); ok {
		e.dispatch(in)
	}
}

// dispatch hands an admitted message to its IKE SA, or starts one. Nothing
// here trusts the message until it has passed the integrity check of an
// established SA's keys.
func (e *Engine) dispatch(in inbound) {
	p, m := in.p, in.m
	if m.Exchange == message.ExchangeIKESAInit && !m.IsResponse() && m.SPIr == 0 {
		if sa := e.byInit[halfOpenKey{m.SPIi, p.Remote}]; sa != nil {
			// A retransmission (RFC 7296 §2.1) gets the same answer; the
			// SA may have moved on to IKE_AUTH already.
			if string(sa.initReq) == string(p.Data) {
				e.conn.Send(transport.Packet{Data: sa.initResp, Local: p.Local, Remote: p.Remote})
				return
			}
			if !sa.halfOpen || sa.state != StateConnecting || sa.peerMID != 1 {
				return
			}
			// The same initiator (same SPIi and address; under load one
			// that proved its address with a cookie) started over with
			// another request before any IKE_AUTH: typically our
			// response was lost, its retransmission was answered with a
			// COOKIE, and this is the retry with it. The old half-open SA
			// is of no use to anyone now.
			e.log.Debug("IKE_SA_INIT restarted by the initiator, replacing the half-open IKE SA", "sa", sa.logID(), "peer", p.Remote)
			sa.destroy()
		}
		if len(e.halfOpen) >= e.halfOpenLimit {
			e.flood.halfOpenDropped.Add(1)
			if e.quiet.allow(noisyHalfOpenFull) {
				e.log.Warn("half-open IKE SA table full, dropping IKE_SA_INIT", "peer", p.Remote, "limit", e.halfOpenLimit)
			}
			return
		}
		e.respondInit(m, p.Data, p, in.proven)
		return
	}
	var sa *ikeSA
	if m.IsInitiator() {
		sa = e.sas[m.SPIr] // we are the responder
		if sa == nil || sa.initiator || sa.spiI != m.SPIi {
			e.flood.unknownSA.Add(1)
			return
		}
	} else {
		sa = e.sas[m.SPIi]
		if sa == nil || !sa.initiator {
			e.flood.unknownSA.Add(1)
			return
		}
		if sa.spiR == 0 && m.Exchange == message.ExchangeIKESAInit && m.IsResponse() {
			if sa.pending != nil && sa.pending.mid == m.MessageID {
				// A response to our IKE_SA_INIT: error notifies carry no
				// responder SPI, a real answer carries it.
				sa.spiR = m.SPIr
			}
		} else if sa.spiR != m.SPIr {
			e.flood.unknownSA.Add(1)
			return
		}
	}
	if e.isStandby(sa) {
		return // held for a takeover: the group's active node answers
	}
	if m.IsResponse() {
		sa.handleResponse(p.Data, m, p)
	} else {
		sa.handleRequest(p.Data, m, p)
	}
}

// candidates returns the connections a peer at remote may use towards local.
func (e *Engine) candidates(local, remote netip.Addr) []*Connection {
	var out []*Connection
	for _, c := range e.conns {
		if !c.acceptsLocal(local) {
			continue
		}
		if !c.acceptsRemote(remote) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func (e *Engine) remoteIKEPort(c *Connection) uint16 {
	if c.RemotePort != 0 {
		return c.RemotePort
	}
	if e.rIKEPort != 0 {
		return e.rIKEPort
	}
	p, _ := e.conn.Ports()
	return p
}

func (e *Engine) remoteNATTPort(c *Connection) uint16 {
	if e.rNATTPort != 0 {
		return e.rNATTPort
	}
	_, p := e.conn.Ports()
	return p
}

func (e *Engine) newSA(conn *Connection, initiator bool, local, remote netip.AddrPort) *ikeSA {
	sa := &ikeSA{e: e, conn: conn, initiator: initiator, state: StateConnecting, local: local, remote: remote, created: e.now()}
	for {
		spi := randomSPI()
		if _, used := e.sas[spi]; !used {
			if initiator {
				sa.spiI = spi
			} else {
				sa.spiR = spi
			}
			e.sas[spi] = sa
			break
		}
	}
	return sa
}

func (e *Engine) addHalfOpen(sa *ikeSA, proven bool) {
	sa.halfOpen = true
	sa.hoKey = halfOpenKey{sa.spiI, sa.remote}
	e.halfOpen[sa.hoKey] = proven
	src := e.prefix.key(sa.hoKey.remote.Addr())
	n := e.hoPrefix[src]
	n[b2i(proven)]++
	e.hoPrefix[src] = n
	e.byInit[sa.hoKey] = sa
	e.setHalfOpen(len(e.halfOpen))
	sa.hoTimer = e.afterFunc(e.halfOpenTimeout, func() {
		if sa.halfOpen && sa.state == StateConnecting {
			e.flood.halfOpenExpired.Add(1)
			if e.quiet.allow(noisyHalfOpenExpired) {
				e.log.Info("half-open IKE SA timed out", "sa", sa.logID(), "peer", sa.remote)
			}
			sa.destroy()
		}
	})
}

func (e *Engine) removeHalfOpen(sa *ikeSA) {
	if sa.halfOpen {
		src := e.prefix.key(sa.hoKey.remote.Addr())
		n := e.hoPrefix[src]
		n[b2i(e.halfOpen[sa.hoKey])]--
		if n == [2]int32{} {
			delete(e.hoPrefix, src)
		} else {
			e.hoPrefix[src] = n
		}
		delete(e.halfOpen, sa.hoKey)
		e.setHalfOpen(len(e.halfOpen))
		sa.halfOpen = false
		if sa.hoTimer != nil {
			sa.hoTimer.Stop()
			sa.hoTimer = nil // the timer and its closure go with it
		}
	}
}

// forget drops a destroyed SA from the tables.
func (e *Engine) forget(sa *ikeSA) {
	e.removeHalfOpen(sa)
	if !sa.initiator && e.byInit[sa.hoKey] == sa {
		delete(e.byInit, sa.hoKey)
	}
	if e.sas[sa.localSPI()] == sa {
		delete(e.sas, sa.localSPI())
	}
}

func (e *Engine) connection(name string) *Connection {
	for _, c := range e.conns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// initiate starts an IKE SA for the connection; w (if any) receives the
// outcome of IKE_AUTH.
func (e *Engine) initiate(name string, w chan error) (*ikeSA, error) {
	c := e.connection(name)
	if c == nil {
		return nil, fmt.Errorf("no connection %q", name)
	}
	if !c.RemoteAddr.IsValid() {
		return nil, fmt.Errorf("connection %s has no remote address to initiate to", name)
	}
	local, remote, err := e.endpoints(c)
	if err != nil {
		return nil, err
	}
	ikePort, _ := e.conn.Ports()
	sa := e.newSA(c, true, netip.AddrPortFrom(local, ikePort), netip.AddrPortFrom(remote, e.remoteIKEPort(c)))
	sa.dhGroup = c.IKEProposals[0].DH[0]
	if w != nil {
		sa.waiters = append(sa.waiters, waiter{ch: w})
	}
	e.log.Info("initiating IKE SA", "sa", sa.logID(), "remote", sa.remote)
	sa.enqueue(&initTask{})
	sa.enqueue(&authTask{})
	return sa, nil
}

// Initiate establishes an IKE SA and the connection's first Child SA and
// waits until IKE_AUTH is done, the exchanges fail, or ctx ends. A failure
// of the Child SA alone leaves the IKE SA up and returns nil.
func (e *Engine) Initiate(ctx context.Context, name string) error {
	w := make(chan error, 1)
	errc := make(chan error, 1)
	if !e.post(func() {
		_, err := e.initiate(name, w)
		errc <- err
	}) {
		return errors.New("ike: engine closed")
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("ike: initiate: %w", err)
	}
	err := wait(ctx, true, w)
	if err != nil && err != ctx.Err() {
		err = fmt.Errorf("ike: initiate %s: %w", name, err)
	}
	return err
}

// Terminate deletes every IKE SA of the connection with an INFORMATIONAL
// Delete exchange (and so their Child SAs), waiting until the peer has
// answered, the exchange gave up, or ctx ends.
func (e *Engine) Terminate(ctx context.Context, name string) error {
	var waits []chan error
	ok := e.do(ctx, func() {
		for _, sa := range e.sas {
			if sa.conn != nil && sa.conn.Name == name && sa.state != StateDead {
				waits = append(waits, sa.terminate())
			}
		}
	})
	if !ok {
		return errors.New("ike: engine closed")
	}
	if len(waits) == 0 {
		return fmt.Errorf("ike: no IKE SA of connection %q", name)
	}
	return wait(ctx, false, waits...)
}

// terminate deletes the IKE SA: with an INFORMATIONAL Delete exchange if
// it is established, at once otherwise; the channel hears the outcome.
func (sa *ikeSA) terminate() chan error {
	w := make(chan error, 1)
	sa.waiters = append(sa.waiters, waiter{ch: w, terminate: true})
	if sa.state == StateEstablished {
		sa.enqueue(&deleteIKETask{})
	} else {
		sa.destroy()
	}
	return w
}

// terminateChild deletes the Child SAs named child of the connection's IKE
// SAs with an INFORMATIONAL exchange, keeping the IKE SA.
func (e *Engine) terminateChild(ctx context.Context, name, child string) error {
	var waits []chan error
	ok := e.do(ctx, func() {
		for _, sa := range e.sas {
			if sa.conn == nil || sa.conn.Name != name || sa.state != StateEstablished {
				continue
			}
			var cs []*childSA
			for _, c := range sa.children {
				if c.cfg.Name == child {
					cs = append(cs, c)
				}
			}
			if len(cs) > 0 {
				w := make(chan error, 1)
				waits = append(waits, w)
				sa.enqueue(&deleteChildTask{children: cs, done: w})
			}
		}
	})
	if !ok {
		return errors.New("ike: engine closed")
	}
	if len(waits) == 0 {
		return fmt.Errorf("ike: no Child SA %s/%s", name, child)
	}
	return wait(ctx, false, waits...)
}

// ping sends an empty INFORMATIONAL request (RFC 7296 §2.4 liveness check)
// on each established IKE SA of the connection and waits for the answers.
func (e *Engine) ping(ctx context.Context, name string) error {
	var waits []chan error
	ok := e.do(ctx, func() {
		for _, sa := range e.sas {
			if sa.conn != nil && sa.conn.Name == name && sa.state == StateEstablished {
				w := make(chan error, 1)
				waits = append(waits, w)
				sa.enqueue(&livenessTask{done: w})
				sa.waiters = append(sa.waiters, waiter{ch: w, terminate: true}) // a dying SA answers too
			}
		}
	})
	if !ok {
		return errors.New("ike: engine closed")
	}
	if len(waits) == 0 {
		return fmt.Errorf("ike: no established IKE SA of connection %q", name)
	}
	return wait(ctx, false, waits...)
}

// wait waits for the outcome on each of ws in turn, or until ctx ends
// (then it returns ctx's error). With failFast the first outcome that is
// an error ends the wait and is returned; without, a failed exchange
// counts as ended like any other (Terminate, Ping).
func wait(ctx context.Context, failFast bool, ws ...chan error) error {
	for _, w := range ws {
		select {
		case err := <-w:
			if failFast && err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// do runs f on the loop and waits for it.
func (e *Engine) do(ctx context.Context, f func()) bool {
	fin := make(chan struct{})
	if !e.post(func() { f(); close(fin) }) {
		return false
	}
	select {
	case <-fin:
		return true
	case <-ctx.Done():
		return false
	case <-e.done:
		return false
	}
}

// IKESAInfo describes one IKE SA for `xdpsec show ike`.
type IKESAInfo struct {
	Name          string
	State         State
	Initiator     bool
	SPIi, SPIr    uint64
	Local, Remote netip.AddrPort
	LocalID       string
	RemoteID      string
	NATT          bool // carried on the NAT-T port
	// Standby: held passively for a cluster takeover (Import, Deactivate).
	Standby     bool
	Proposal    string
	Established time.Time
	Children    []ChildSAInfo
}

// ChildSAInfo describes one Child SA.
type ChildSAInfo struct {
	Name           string
	SPIIn, SPIOut  uint32
	Mode           string
	Proposal       string
	UDPEncap       bool
	LocalTS        []string
	RemoteTS       []string
	ReqID          uint32
	InstalledInOut bool
}

// List returns the IKE SAs and their Child SAs, ordered by connection name
// and SPI.
func (e *Engine) List() []IKESAInfo {
	var out []IKESAInfo
	e.do(context.Background(), func() {
		for _, sa := range e.sas {
			if sa.state == StateDead {
				continue
			}
			info := IKESAInfo{Name: sa.name(), State: sa.state, Initiator: sa.initiator, SPIi: sa.spiI, SPIr: sa.spiR,
				Local: sa.local, Remote: sa.remote, NATT: sa.natt(), Established: sa.estab, RemoteID: sa.remoteID.String(),
				Standby: e.isStandby(sa)}
			if sa.conn != nil {
				info.LocalID = sa.conn.Local.ID.String()
			}
			if sa.prf.Size() > 0 {
				info.Proposal = sa.sel.String()
			}
			for _, c := range sa.children {
				ci := ChildSAInfo{Name: c.cfg.Name, SPIIn: c.inSPI, SPIOut: c.outSPI, Mode: c.mode.String(), Proposal: c.sel.String(),
					UDPEncap: c.encap.Enabled(), ReqID: c.reqID, InstalledInOut: c.installed && c.outInst}
				for _, t := range c.localTS {
					ci.LocalTS = append(ci.LocalTS, fmtTS([]message.TrafficSelector{t}))
				}
				for _, t := range c.remoteTS {
					ci.RemoteTS = append(ci.RemoteTS, fmtTS([]message.TrafficSelector{t}))
				}
				info.Children = append(info.Children, ci)
			}
			out = append(out, info)
		}
	})
	slices.SortFunc(out, func(a, b IKESAInfo) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		if a.SPIi < b.SPIi {
			return -1
		}
		return 1
	})
	return out
}

// HalfOpen returns the number of half-open responder IKE SAs.
func (e *Engine) HalfOpen() int {
	var n int
	e.do(context.Background(), func() { n = len(e.halfOpen) })
	return n
}
