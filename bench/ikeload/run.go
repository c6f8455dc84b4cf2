package ikeload

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// socketBuffer is the receive buffer asked for on every socket: at a few
// thousand responses per second a burst must not overflow the default.
const socketBuffer = 4 << 20

// schedule calls fn(worker, i) once for every i in [0, n), from at most c
// goroutines at a time (worker is 0..c-1), and returns when all calls are
// done. Once ctx ends no new call starts.
func schedule(ctx context.Context, n, c int, fn func(worker, i int)) {
	if c > n {
		c = n
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				fn(w, int(i))
			}
		}()
	}
	wg.Wait()
}

// endpoint is one source address: a socket towards the responder's IKE port
// and one towards its NAT-T port.
type endpoint struct {
	ike, natt  *net.UDPConn
	local      netip.AddrPort
	remote     netip.AddrPort
	remoteNATT netip.AddrPort
}

// freebind lets a socket bind an address that is routed to us but not
// configured on an interface (IP_FREEBIND), as a -local-range needs.
func freebind(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

func dial(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error) {
	d := net.Dialer{Control: freebind}
	if src.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c, err := d.DialContext(ctx, "udp", dst.String())
	if err != nil {
		return nil, fmt.Errorf("ikeload: socket %v -> %v: %w", src, dst, err)
	}
	return c.(*net.UDPConn), nil
}

func openEndpoint(ctx context.Context, src netip.Addr, target netip.AddrPort, nattPort uint16) (*endpoint, error) {
	ep := &endpoint{remote: target, remoteNATT: netip.AddrPortFrom(target.Addr(), nattPort)}
	var err error
	if ep.ike, err = dial(ctx, src, ep.remote); err != nil {
		return nil, err
	}
	// NAT detection hashes the address the responder sees; with a connected
	// socket that is the one the kernel chose for us.
	la := ep.ike.LocalAddr().(*net.UDPAddr).AddrPort()
	ep.local = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	if ep.natt, err = dial(ctx, ep.local.Addr(), ep.remoteNATT); err != nil {
		ep.ike.Close()
		return nil, err
	}
	return ep, nil
}

func (ep *endpoint) close() {
	ep.ike.Close()
	ep.natt.Close()
}

// send sends one IKE message, over the NAT-T socket with the four-octet
// non-ESP marker (RFC 3948 §2.2) when natt is set.
func (ep *endpoint) send(msg []byte, natt bool) error {
	c, b := ep.ike, msg
	if natt {
		c, b = ep.natt, make([]byte, 4+len(msg))
		copy(b[4:], msg)
	}
	_, err := c.Write(b)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// A connected UDP socket reports an earlier ICMP port unreachable
		// on the next send (and clears it): a responder that is not up
		// yet is the retransmission timer's business, not a failure.
		_, err = c.Write(b)
	}
	return err
}

// demux hands received messages to the setup that owns their IKE SPI.
type demux struct{ m sync.Map } // uint64 -> chan []byte

// read delivers datagrams from c until it is closed.
func (d *demux) read(c *net.UDPConn, natt bool) {
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors surface here on connected sockets
		}
		b := buf[:n]
		if natt {
			if n < 4 || binary.BigEndian.Uint32(b) != 0 {
				continue // ESP or a keepalive: not ours
			}
			b = b[4:]
		}
		if len(b) < message.HeaderLen {
			continue
		}
		v, ok := d.m.Load(binary.BigEndian.Uint64(b))
		if !ok {
			continue
		}
		select {
		case v.(chan []byte) <- append([]byte(nil), b...):
		default: // the setup is not keeping up; a retransmission recovers
		}
	}
}

// worker is one of the C setup loops.
type worker struct {
	kex       crypto.KeyExchange
	kexUses   int
	latencies []time.Duration
	failures  map[string]int
	lastErr   map[string]error
}

// keyExchange returns the worker's DH value, renewed every reuse setups
// (RFC 7296 §2.12 lets an initiator reuse it across exchanges).
func (w *worker) keyExchange(g iana.GroupID, reuse int) (crypto.KeyExchange, error) {
	if w.kex == nil || w.kexUses >= reuse {
		if w.kex != nil {
			w.kex.Destroy()
		}
		k, err := crypto.NewKeyExchange(g)
		if err != nil {
			return nil, err
		}
		w.kex, w.kexUses = k, 0
	}
	w.kexUses++
	return w.kex, nil
}

type runner struct {
	cfg      Config
	p        *profile
	eps      []*endpoint
	d        demux
	retrans  atomic.Int64
	cookies  atomic.Int64
	natt     atomic.Int64
	inFlight atomic.Int64
	maxIn    atomic.Int64
}

// Run performs cfg.N setups against cfg.Target with at most cfg.C in flight
// and reports on them. It returns an error only when the run cannot start;
// failed setups are counted in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r := &runner{cfg: cfg.withDefaults()}
	var err error
	if r.p, err = r.cfg.profile(); err != nil {
		return nil, err
	}
	srcs := r.cfg.Sources
	if len(srcs) == 0 {
		srcs = []netip.Addr{{}}
	}
	for _, s := range srcs {
		ep, err := openEndpoint(ctx, s, r.cfg.Target, r.cfg.NATTPort)
		if err != nil {
			for _, e := range r.eps {
				e.close()
			}
			return nil, err
		}
		r.eps = append(r.eps, ep)
	}
	var readers sync.WaitGroup
	for _, ep := range r.eps {
		readers.Add(2)
		go func() { defer readers.Done(); r.d.read(ep.ike, false) }()
		go func() { defer readers.Done(); r.d.read(ep.natt, true) }()
	}
	defer func() {
		for _, ep := range r.eps {
			ep.close()
		}
		readers.Wait()
	}()

	c := min(r.cfg.C, r.cfg.N)
	workers := make([]worker, c)
	for i := range workers {
		workers[i].failures = map[string]int{}
		workers[i].lastErr = map[string]error{}
	}
	cpu0 := cpuTime()
	start := time.Now()
	schedule(ctx, r.cfg.N, c, func(wi, i int) {
		w := &workers[wi]
		n := r.inFlight.Add(1)
		for m := r.maxIn.Load(); n > m && !r.maxIn.CompareAndSwap(m, n); m = r.maxIn.Load() {
		}
		lat, serr := r.setup(ctx, w, i)
		r.inFlight.Add(-1)
		if serr != nil {
			w.failures[serr.cause]++
			w.lastErr[serr.cause] = serr
			return
		}
		w.latencies = append(w.latencies, lat)
	})
	wall := time.Since(start)
	cpu := cpuTime() - cpu0

	rep := &Report{
		Target: r.cfg.Target.String(), N: r.cfg.N, C: r.cfg.C,
		IKEProposal: r.cfg.IKEProposal, ESPProposal: r.cfg.ESPProposal,
		Duration: wall, GeneratorCPU: cpu,
		Retransmissions: int(r.retrans.Load()), Cookies: int(r.cookies.Load()), NATT: int(r.natt.Load()),
		MaxInFlight: int(r.maxIn.Load()), Failures: map[string]int{}, Examples: map[string]string{},
	}
	var lats []time.Duration
	for i := range workers {
		w := &workers[i]
		lats = append(lats, w.latencies...)
		for k, v := range w.failures {
			rep.Failures[k] += v
			rep.Examples[k] = w.lastErr[k].Error()
		}
		if w.kex != nil {
			w.kex.Destroy()
		}
	}
	rep.finish(lats)
	return rep, nil
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// setup runs one IKE_SA_INIT + IKE_AUTH and returns its latency, from the
// first IKE_SA_INIT sent to the verified IKE_AUTH response.
func (r *runner) setup(ctx context.Context, w *worker, i int) (time.Duration, *setupError) {
	ep := r.eps[i%len(r.eps)]
	kex, err := w.keyExchange(r.p.group, r.cfg.KEReuse)
	if err != nil {
		return 0, &setupError{cause: CauseLocal, err: err}
	}
	s := &setup{p: r.p, index: i, kex: kex, local: ep.local, remote: ep.remote}
	defer s.destroy()
	ch := make(chan []byte, 4)
	for {
		if s.spiI, err = randomSPI(); err != nil {
			return 0, &setupError{cause: CauseLocal, err: err}
		}
		if _, taken := r.d.m.LoadOrStore(s.spiI, ch); !taken {
			break
		}
	}
	defer r.d.m.Delete(s.spiI)

	start := time.Now()
	req, err := s.buildInit()
	if err != nil {
		return 0, &setupError{cause: CauseLocal, err: err}
	}
	cookieRounds := 0
	if serr := r.exchange(ctx, ep, false, req, ch, CauseTimeoutInit, func(raw []byte) ([]byte, error) {
		err := s.processInit(raw)
		if err == errCookie {
			if cookieRounds++; cookieRounds > 2 {
				return nil, fail(CauseBadInit, "responder keeps asking for cookies")
			}
			r.cookies.Add(1)
			b, err := s.buildInit()
			if err != nil {
				return nil, &setupError{cause: CauseLocal, err: err}
			}
			return b, nil
		}
		return nil, err
	}); serr != nil {
		return 0, serr
	}
	if s.natt {
		r.natt.Add(1)
	}
	req, err = s.buildAuth()
	if err != nil {
		return 0, &setupError{cause: CauseLocal, err: err}
	}
	if serr := r.exchange(ctx, ep, s.natt, req, ch, CauseTimeoutAuth, func(raw []byte) ([]byte, error) {
		return nil, s.processAuth(raw)
	}); serr != nil {
		return 0, serr
	}
	return time.Since(start), nil
}

// exchange sends req and waits for handle to accept a response,
// retransmitting with exponential back-off (RFC 7296 §2.1). handle returns
// errIgnore to keep waiting, a new request to send in place of req, nil
// when done, or the setup's failure.
func (r *runner) exchange(ctx context.Context, ep *endpoint, natt bool, req []byte, ch <-chan []byte, timeoutCause string, handle func([]byte) ([]byte, error)) *setupError {
	rt := r.cfg.Retransmit
	if err := ep.send(req, natt); err != nil {
		return &setupError{cause: CauseSend, err: err}
	}
	tries := 0
	timer := time.NewTimer(rt.Timeout)
	defer timer.Stop()
	for {
		select {
		case raw := <-ch:
			next, err := handle(raw)
			switch {
			case err == errIgnore:
				continue
			case err != nil:
				var serr *setupError
				if errors.As(err, &serr) {
					return serr
				}
				return &setupError{cause: CauseLocal, err: err}
			case next == nil:
				return nil
			}
			req, tries = next, 0
			if err := ep.send(req, natt); err != nil {
				return &setupError{cause: CauseSend, err: err}
			}
			timer.Reset(rt.Timeout)
		case <-timer.C:
			if tries >= rt.Tries {
				return &setupError{cause: timeoutCause, err: fmt.Errorf("no answer after %d retransmissions", tries)}
			}
			tries++
			r.retrans.Add(1)
			if err := ep.send(req, natt); err != nil {
				return &setupError{cause: CauseSend, err: err}
			}
			timer.Reset(time.Duration(float64(rt.Timeout) * math.Pow(rt.Base, float64(tries))))
		case <-ctx.Done():
			return &setupError{cause: CauseCanceled, err: ctx.Err()}
		}
	}
}
