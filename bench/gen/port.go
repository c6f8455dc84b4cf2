package gen

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/xsk"
)

// DefaultBatch is the TX and RX batch when none is given.
const DefaultBatch = 64

// MaxBatch bounds a batch: a quarter of the TX socket's frames, so
// several batches are always in flight.
const MaxBatch = 512

// Socket geometry of the sender: every frame not parked on the (unused)
// fill ring fits the TX ring at once, so Alloc never hands out a frame
// that Send must refuse.
const (
	txFrames = 2048
	txRing   = 2048
)

// TxOptions says where and how fast a Sender sends.
type TxOptions struct {
	Ifindex, Queue int
	// Batch is the packets per Send (default DefaultBatch, at most
	// MaxBatch).
	Batch int
	// Rate is the packets per second (0: as fast as the socket takes
	// them).
	Rate float64
	// Count and Duration stop the sender (0: no limit; without either it
	// runs until Stop).
	Count    uint64
	Duration time.Duration
	// Mode is the AF_XDP bind mode (copy on veth whatever is asked).
	Mode xsk.Mode
}

// TxStats are a Sender's counters.
type TxStats struct {
	Packets uint64  `json:"packets"`
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	PPS     float64 `json:"pps"`
	// Mbps is the Ethernet-frame bit rate (no FCS, preamble or gap).
	Mbps float64 `json:"mbps"`
	// Kicks are sendto wakeups; Refused, frames the TX ring refused
	// (taken back and sent again, so no sequence number is skipped).
	Kicks   uint64 `json:"kicks"`
	Refused uint64 `json:"refused"`
	// Errors are kicks the kernel failed (not busy: failed).
	Errors uint64 `json:"errors"`
}

// Sender sends a Generator's packets on one AF_XDP socket. Run is for
// one goroutine (ideally on a locked thread); Stop and Stats for any.
type Sender struct {
	sock  *xsk.Socket
	gen   *Generator
	o     TxOptions
	stop  atomic.Bool
	start atomic.Int64 // unix nanoseconds; 0 until Run starts
	end   atomic.Int64

	packets, bytes, refused atomic.Uint64
	final                   atomic.Pointer[TxStats] // set by Close
}

// OpenSender opens the socket in the current thread's namespace.
func OpenSender(g *Generator, o TxOptions) (*Sender, error) {
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Batch < 1 || o.Batch > MaxBatch {
		return nil, fmt.Errorf("batch %d: want 1..%d", o.Batch, MaxBatch)
	}
	if o.Rate < 0 {
		return nil, fmt.Errorf("rate %v: want ≥ 0", o.Rate)
	}
	s, err := xsk.Open(o.Ifindex, o.Queue, xsk.Options{
		NumFrames: txFrames, TxSize: txRing, CompletionSize: txRing,
		// Nothing is received on the sender: one frame on a small fill
		// ring keeps the rest for TX.
		FillSize: 64, RxSize: 64, FillFrames: 1,
		Mode: o.Mode,
	})
	if err != nil {
		return nil, fmt.Errorf("sender on ifindex %d queue %d: %w", o.Ifindex, o.Queue, err)
	}
	return &Sender{sock: s, gen: g, o: o}, nil
}

// Stop asks Run to return after its current batch.
func (s *Sender) Stop() { s.stop.Store(true) }

// Close closes the socket, keeping its final counters for Stats; call it
// after Run returned.
func (s *Sender) Close() error {
	if s.final.Load() == nil {
		st := s.Stats()
		s.final.Store(&st)
	}
	return s.sock.Close()
}

// Run sends until Count packets, Duration, or Stop, then waits briefly
// for the kernel to finish the frames in flight.
func (s *Sender) Run() error {
	o := s.o
	pkts := make([]fastpath.Packet, o.Batch)
	start := time.Now()
	s.start.Store(start.UnixNano())
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	bucket := NewBucket(o.Rate, o.Batch, start)
	// With a rate, wait for about a millisecond's worth of packets (at
	// least one, at most a batch) so low rates are smooth and high rates
	// still send whole batches.
	grain := o.Batch
	if o.Rate > 0 {
		grain = max(1, min(o.Batch, int(o.Rate/1000)))
	}
	var sent uint64
	for !s.stop.Load() {
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			break
		}
		want := o.Batch
		if o.Count > 0 {
			if sent >= o.Count {
				break
			}
			want = int(min(uint64(want), o.Count-sent))
		}
		if o.Rate > 0 {
			if w := bucket.Wait(now, min(want, grain)); w > 0 {
				time.Sleep(w)
				continue
			}
			want = bucket.Take(now, want)
		}
		k := s.sock.Alloc(pkts[:want])
		if k < want {
			// Frames are in flight: reap the completion ring and kick.
			s.sock.Recv(nil)
			k += s.sock.Alloc(pkts[k:want])
		}
		if k < want {
			bucket.Return(want - k)
		}
		if k == 0 {
			continue
		}
		var bytes uint64
		for i := range pkts[:k] {
			p := &pkts[i]
			p.Len = s.gen.Fill(p.Frame[p.Off:])
			bytes += uint64(p.Len)
		}
		n := s.sock.Send(pkts[:k])
		if n < k {
			for i := range pkts[n:k] {
				bytes -= uint64(pkts[n+i].Len)
			}
			s.sock.Free(pkts[n:k])
			s.gen.Unfill(k - n)
			bucket.Return(k - n)
			s.refused.Add(uint64(k - n))
		}
		sent += uint64(n)
		s.packets.Add(uint64(n))
		s.bytes.Add(bytes)
	}
	s.end.Store(time.Now().UnixNano())
	// Let the kernel finish what is on the rings so the counts are
	// final; in copy mode this takes a kick or two.
	for wait := time.Now().Add(200 * time.Millisecond); time.Now().Before(wait); {
		s.sock.Recv(nil)
		st, err := s.sock.Stats()
		if err != nil || st.TxInFlight == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Stats returns the counters now.
func (s *Sender) Stats() TxStats {
	if f := s.final.Load(); f != nil {
		return *f
	}
	t := TxStats{Packets: s.packets.Load(), Bytes: s.bytes.Load(), Refused: s.refused.Load()}
	if st, err := s.sock.Stats(); err == nil {
		t.Kicks, t.Errors = st.TxKicks, st.KickErrors
	}
	t.Seconds = elapsed(s.start.Load(), s.end.Load())
	t.PPS, t.Mbps = rates(t.Packets, t.Bytes, t.Seconds)
	return t
}

func elapsed(start, end int64) float64 {
	if start == 0 {
		return 0
	}
	if end == 0 {
		end = time.Now().UnixNano()
	}
	return float64(end-start) / 1e9
}

func rates(pkts, bytes uint64, secs float64) (pps, mbps float64) {
	if secs <= 0 {
		return 0, 0
	}
	return float64(pkts) / secs, float64(bytes) * 8 / secs / 1e6
}

// RxOptions says where a Receiver listens and what it accounts.
type RxOptions struct {
	Ifindex, Queue int
	Batch          int // default DefaultBatch, at most MaxBatch
	// Flows, DstPort and Verify configure the Sink (see NewSink).
	Flows   int
	DstPort uint16
	Verify  bool
	Mode    xsk.Mode
	// Duration and Count stop the receiver (0: no limit); Idle stops it
	// once it has received something and then nothing for that long.
	Duration time.Duration
	Count    uint64
	Idle     time.Duration
}

// RxStats are a Receiver's counters: the sink's, rates, and the kernel's
// drops on the way to the socket.
type RxStats struct {
	SinkStats
	Seconds float64 `json:"seconds"`
	PPS     float64 `json:"pps"`
	Mbps    float64 `json:"mbps"`
	// RingFull: frames the kernel dropped because the RX ring was full;
	// KernelDropped: for other reasons (RxDropped, invalid descriptors).
	RingFull      uint64 `json:"ring_full"`
	KernelDropped uint64 `json:"kernel_dropped"`
}

// Receiver counts what arrives on one queue of an interface through an
// AF_XDP socket, with a redirect program it attaches.
type Receiver struct {
	sock  *xsk.Socket
	redir *Redirect
	sink  *Sink
	o     RxOptions
	stop  atomic.Bool
	start atomic.Int64 // from the first packet
	end   atomic.Int64
	final atomic.Pointer[RxStats] // set by Close
}

// OpenReceiver attaches the redirect program and opens the socket, in the
// current thread's namespace.
func OpenReceiver(o RxOptions) (_ *Receiver, err error) {
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.Batch < 1 || o.Batch > MaxBatch {
		return nil, fmt.Errorf("batch %d: want 1..%d", o.Batch, MaxBatch)
	}
	if o.Flows == 0 {
		o.Flows = MaxFlows
	}
	r := &Receiver{sink: NewSink(o.Flows, o.DstPort, o.Verify), o: o}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.redir, err = AttachRedirect(o.Ifindex); err != nil {
		return nil, err
	}
	if r.sock, err = xsk.Open(o.Ifindex, o.Queue, xsk.Options{Mode: o.Mode}); err != nil {
		return nil, fmt.Errorf("receiver on ifindex %d queue %d: %w", o.Ifindex, o.Queue, err)
	}
	if err = r.redir.Register(o.Queue, r.sock.FD()); err != nil {
		return nil, err
	}
	return r, nil
}

// Sink is the receiver's accounting.
func (r *Receiver) Sink() *Sink { return r.sink }

// Stop asks Run to return within a poll interval.
func (r *Receiver) Stop() { r.stop.Store(true) }

// Close detaches the program and closes the socket; call it after Run
// returned.
func (r *Receiver) Close() error {
	if r.sock != nil && r.final.Load() == nil {
		st := r.Stats()
		r.final.Store(&st)
	}
	var errs []error
	if r.redir != nil {
		errs = append(errs, r.redir.Close())
	}
	if r.sock != nil {
		errs = append(errs, r.sock.Close())
	}
	return errors.Join(errs...)
}

// pollEvery bounds how long Run sleeps in poll(2) before it looks at Stop
// and its limits again.
const pollEvery = 50 * time.Millisecond

// Run receives until Stop, Duration, Count (of the generator's packets),
// or Idle (after the generator's last packet).
func (r *Receiver) Run() error {
	o := r.o
	pkts := make([]fastpath.Packet, o.Batch)
	var deadline time.Time
	if o.Duration > 0 {
		deadline = time.Now().Add(o.Duration)
	}
	var got uint64
	last := time.Now()
	defer func() {
		// Rates run from the first packet to the last, not to an idle
		// timeout.
		if got == 0 {
			r.start.Store(last.UnixNano())
		}
		r.end.Store(last.UnixNano())
	}()
	for !r.stop.Load() {
		n := r.sock.Recv(pkts)
		if n == 0 {
			now := time.Now()
			if got == 0 {
				last = now
			}
			if !deadline.IsZero() && !now.Before(deadline) {
				return nil
			}
			if o.Idle > 0 && got > 0 && now.Sub(last) >= o.Idle {
				return nil
			}
			if _, err := r.sock.Poll(pollEvery); err != nil {
				return fmt.Errorf("receiver poll: %w", err)
			}
			continue
		}
		before := r.sink.generated()
		for i := range pkts[:n] {
			r.sink.Observe(pkts[i].Data())
		}
		r.sock.Free(pkts[:n])
		// Only the generator's packets move the clock: a stray router
		// solicitation after the run must not stretch its duration.
		if after := r.sink.generated(); after != before {
			last = time.Now()
			if got == 0 {
				r.start.Store(last.UnixNano())
			}
			got += after - before
		}
		if o.Count > 0 && got >= o.Count {
			return nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil
		}
	}
	return nil
}

// Stats returns the counters now. Rates are over the time from the first
// packet.
func (r *Receiver) Stats() RxStats {
	if f := r.final.Load(); f != nil {
		return *f
	}
	s := RxStats{SinkStats: r.sink.Stats()}
	if st, err := r.sock.Stats(); err == nil {
		s.RingFull = st.Kernel.RxRingFull
		s.KernelDropped = st.Kernel.RxDropped + st.Kernel.RxInvalidDescs
	}
	s.Seconds = elapsed(r.start.Load(), r.end.Load())
	s.PPS, s.Mbps = rates(s.Packets, s.Bytes, s.Seconds)
	return s
}
