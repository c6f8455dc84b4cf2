package sad

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/internal/enum"
	"github.com/xdpsec/xdpsec/sad/replay"
)

// Direction says which way an SA carries traffic, seen from this gateway.
type Direction uint8

const (
	Inbound Direction = iota + 1
	Outbound
)

var directionNames = [...]string{Inbound: "in", Outbound: "out"}

func (d Direction) String() string { return enum.Name(d, directionNames[:], "dir") }

// Mode is the ESP mode (RFC 4301 §4.1).
type Mode uint8

const (
	Tunnel Mode = iota + 1
	Transport
)

var modeNames = [...]string{Tunnel: "tunnel", Transport: "transport"}

func (m Mode) String() string { return enum.Name(m, modeNames[:], "mode") }

// DFMode says what the outer IPv4 header's Don't Fragment bit becomes in
// tunnel mode (RFC 4301 §8.1).
type DFMode uint8

const (
	DFCopy  DFMode = iota // copy it from the inner IPv4 header (set for an inner IPv6 packet)
	DFSet                 // always set
	DFClear               // always clear
)

// UDPEncap holds the RFC 3948 UDP encapsulation ports; the zero value means
// raw ESP (IP protocol 50).
type UDPEncap struct {
	SrcPort, DstPort uint16
}

// Enabled reports whether the SA is carried in UDP.
func (u UDPEncap) Enabled() bool { return u.DstPort != 0 }

// Limits is one set of lifetime limits; a zero field means no limit.
type Limits struct {
	Time    time.Duration
	Bytes   uint64
	Packets uint64
}

// Lifetime holds the soft limits (ask for a rekey) and the hard limits
// (the SA dies) of RFC 4301 §4.4.2.1.
type Lifetime struct {
	Soft, Hard Limits
}

// DefaultReplayWindow is the inbound anti-replay window of a static SA
// whose configuration names none. A gateway has a handful of static SAs, so
// the window's memory (2304 bytes at 4096) costs nothing, and the width buys
// tolerance of reordering across RX queues and workers: about 4.6 ms of a
// 10 Gbit/s flow of 1400-byte packets. Negotiated Child SAs, of which a
// gateway holds tens of thousands, default to the smaller
// ike.DefaultReplayWindow (960) for memory.
const DefaultReplayWindow = 4096

// Config describes one SA as the control plane (IKE or a static
// configuration) hands it over. Key slices are copied into the crypto state
// by New; the caller should wipe its own copies afterwards.
type Config struct {
	SPI  uint32
	Dir  Direction
	Mode Mode
	// Local and Remote are the outer addresses: the gateway's own and the
	// peer's. In transport mode they are the two hosts' addresses.
	Local, Remote netip.Addr
	Encap         UDPEncap

	Suite Suite
	// Key is the encryption key material: for AES-GCM and ChaCha20-Poly1305
	// the key followed by the 4-byte salt (RFC 4106 §8.1, RFC 7634 §2); for
	// AES-CBC the AES key; empty for NULL encryption.
	Key []byte
	// IntegKey is the HMAC key for the non-AEAD suites.
	IntegKey []byte

	ESN bool
	// ReplayWindow is the inbound anti-replay window in packets; 0 means
	// DefaultReplayWindow. NoReplay turns anti-replay off (RFC 4303 §3.4.3
	// lets the receiver do that, e.g. for manually keyed SAs on lossy
	// multi-path links); it is off by default for a reason.
	ReplayWindow int
	NoReplay     bool

	Lifetime Lifetime

	// Selectors are the SA's traffic selectors stated in the SA's own
	// direction: for an outbound SA the packets it may carry, for an inbound
	// SA the decapsulated packets it may deliver (source = the peer's side).
	// An inbound packet that matches none is dropped (RFC 4301 §5.2 step 4).
	// No selectors means any.
	Selectors []Selector

	// Outer header settings for tunnel mode (outbound).
	TTL uint8 // outer TTL / hop limit; 0 means 64
	DF  DFMode

	// ReqID ties the two SAs of a pair and their policies together.
	ReqID uint32
	// Name is a label for operators (the connection/child name).
	Name string
}

// Reason is why the data plane refused a packet or an SA refused to send.
// Every way a packet can be wrong has its own reason, and its own counter.
type Reason uint8

const (
	OK Reason = iota
	ErrTooShort
	ErrBadPadding
	ErrBadNextHeader
	ErrUnknownSPI
	ErrAuth
	ErrReplay
	ErrPolicy
	ErrTTLExpired
	ErrSeqExhausted
	ErrExpired
	ErrTooBig
	ErrBadHeader
	ErrNoSA
	ErrDiscard
	ErrNotESP
	ErrLength
	ErrDummy
	ErrECN
	ErrFragment
	ErrNoRoute
	ErrSeqUnreserved
	// ErrNoFrame: the port had no free frame for the packet (it crosses
	// to another port's memory, or becomes fragments).
	ErrNoFrame
	// ErrNotOwner: the SA's cluster group is not this node's (a standby,
	// or a new owner whose windows are not caught up yet): its packets
	// are not decrypted here (Gate.Ready).
	ErrNotOwner
	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:               "ok",
	ErrTooShort:      "too_short",
	ErrBadPadding:    "bad_padding",
	ErrBadNextHeader: "bad_next_header",
	ErrUnknownSPI:    "unknown_spi",
	ErrAuth:          "auth_failed",
	ErrReplay:        "replay",
	ErrPolicy:        "policy_mismatch",
	ErrTTLExpired:    "ttl_expired",
	ErrSeqExhausted:  "seq_exhausted",
	ErrExpired:       "sa_expired",
	ErrTooBig:        "too_big",
	ErrBadHeader:     "bad_header",
	ErrNoSA:          "no_sa",
	ErrDiscard:       "policy_discard",
	ErrNotESP:        "not_esp",
	ErrLength:        "bad_length",
	ErrDummy:         "dummy_packet",
	ErrECN:           "ecn_ce_on_not_ect",
	ErrFragment:      "outer_fragment",
	ErrNoRoute:       "no_route",
	ErrSeqUnreserved: "seq_unreserved",
	ErrNoFrame:       "no_frame",
	ErrNotOwner:      "not_owner",
}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Error lets a Reason travel as an error where that is more natural.
func (r Reason) Error() string { return r.String() }

// Counters are an SA's per-cause counters. Workers add to them once per
// batch (not per packet), so the atomics are cheap.
type Counters struct {
	Packets atomic.Uint64 // encapsulated (out) or decapsulated and delivered (in)
	Bytes   atomic.Uint64 // inner bytes
	Drops   [NumReasons]atomic.Uint64
}

// Snapshot is a plain copy of Counters for display.
type CounterSnapshot struct {
	Packets, Bytes uint64
	Drops          [NumReasons]uint64
}

// Snapshot copies the counters.
func (c *Counters) Snapshot() CounterSnapshot {
	var s CounterSnapshot
	s.Packets = c.Packets.Load()
	s.Bytes = c.Bytes.Load()
	for i := range c.Drops {
		s.Drops[i] = c.Drops[i].Load()
	}
	return s
}

// seqMax returns the highest sequence number an SA may send.
func seqMax(esn bool) uint64 {
	if esn {
		return ^uint64(0)
	}
	return 1<<32 - 1
}

// Validate checks a Config for what New needs; errors name the field.
func (c *Config) Validate() error {
	if c.SPI < 256 {
		// RFC 4303 §2.1: 1–255 are reserved by IANA, 0 is local use only.
		return fmt.Errorf("spi %#08x: values 0-255 are reserved", c.SPI)
	}
	if c.Dir != Inbound && c.Dir != Outbound {
		return fmt.Errorf("sa %08x: direction must be in or out", c.SPI)
	}
	if c.Mode != Tunnel && c.Mode != Transport {
		return fmt.Errorf("sa %08x: mode must be tunnel or transport", c.SPI)
	}
	if c.Mode == Tunnel {
		if !c.Local.IsValid() || !c.Remote.IsValid() {
			return fmt.Errorf("sa %08x: tunnel mode needs local and remote addresses", c.SPI)
		}
		if c.Local.Is4() != c.Remote.Is4() {
			return fmt.Errorf("sa %08x: local %v and remote %v are of different families", c.SPI, c.Local, c.Remote)
		}
	}
	if c.Encap.Enabled() && c.Encap.SrcPort == 0 {
		return fmt.Errorf("sa %08x: udp encapsulation needs both ports", c.SPI)
	}
	if c.ReplayWindow < 0 || c.ReplayWindow > 1<<20 {
		return fmt.Errorf("sa %08x: replay window %d out of range 32..1048576", c.SPI, c.ReplayWindow)
	}
	if c.ReplayWindow != 0 && c.ReplayWindow < 32 {
		return fmt.Errorf("sa %08x: replay window %d below the RFC 4303 minimum of 32", c.SPI, c.ReplayWindow)
	}
	if c.ESN && c.NoReplay && c.Dir == Inbound {
		// The receiver infers the high-order bits from its window
		// (RFC 4303 Appendix A2); without one it cannot.
		return fmt.Errorf("sa %08x: extended sequence numbers need the replay window", c.SPI)
	}
	if err := c.Suite.validateKeys(c.Key, c.IntegKey); err != nil {
		return fmt.Errorf("sa %08x: %w", c.SPI, err)
	}
	return nil
}

var errNoSuite = errors.New("no cipher suite")

// SA state flags.
const (
	flagSoft      = 1 << iota // a soft lifetime passed: rekey wanted
	flagHard                  // a hard lifetime passed: the SA refuses traffic
	flagSeqSoft               // the sequence number is nearing its limit
	flagExhausted             // the sequence number reached its limit
	flagDead                  // deleted from the SAD
)

// cacheLine pads hot mutable fields apart so workers writing one do not
// invalidate the line another reads.
type cacheLine [64]byte

// SA is one Security Association. Everything above the padding is set by
// New and never written again, so workers read it without synchronisation;
// the fields below are the mutable part, each on its own cache line.
type SA struct {
	SPI       uint32
	Dir       Direction
	Mode      Mode
	ESN       bool
	TTL       uint8
	DF        DFMode
	Local     netip.Addr
	Remote    netip.Addr
	Encap     UDPEncap
	Crypto    *Crypto
	Selectors []Selector
	sel       []compiledSel // Selectors compiled for MatchInner
	// Replay is the inbound anti-replay window; nil for outbound SAs and
	// when anti-replay is off.
	Replay *replay.Window

	// OuterHdr is the tunnel's outer IPv4 or IPv6 header, built once:
	// the per-packet fields (DS, lengths, ID, DF) are zero, and OuterSum
	// is the IPv4 header's partial checksum without them, so encapsulation
	// copies the template and patches three fields.
	OuterHdr [40]byte
	OuterLen int
	OuterSum uint32

	ReqID    uint32
	Name     string
	Lifetime Lifetime
	Created  time.Time
	seqMax   uint64
	seqSoft  uint64
	// gate, if set, must be open for ReserveSeq to hand out numbers, and
	// ready for an inbound SA to receive (SetGate; a cluster's group).
	gate *Gate

	_   cacheLine
	seq atomic.Uint64 // the last sequence number handed out (outbound)
	// seqLimit is the highest sequence number the SA may hand out: seqMax,
	// or for a static SA the mark its state store has made durable (see
	// SetSeqLimit). On seq's line: ReserveSeq reads both, and the limit
	// is written only once per reserved block.
	seqLimit atomic.Uint64
	_        cacheLine
	flags    atomic.Uint32
	// pmtu is the path MTU towards Remote learned from ICMP (0: none),
	// read by workers with flags; pmtuAt is when it was learned (unix
	// nanoseconds), for ageing. See pmtu.go.
	pmtu   atomic.Uint32
	pmtuAt atomic.Int64
	_      cacheLine
	// Counters are added to once per batch by each worker.
	Counters Counters
}

// New builds an SA from its configuration: it checks the configuration,
// keys the transform and, for an inbound SA, makes its replay window.
func New(cfg Config) (*SA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newCrypto(cfg.Suite, cfg.Key, cfg.IntegKey)
	if err != nil {
		return nil, fmt.Errorf("sa %08x: %w", cfg.SPI, err)
	}
	sa := &SA{
		SPI:       cfg.SPI,
		Dir:       cfg.Dir,
		Mode:      cfg.Mode,
		ESN:       cfg.ESN,
		TTL:       cfg.TTL,
		DF:        cfg.DF,
		Local:     cfg.Local,
		Remote:    cfg.Remote,
		Encap:     cfg.Encap,
		Crypto:    c,
		Selectors: append([]Selector(nil), cfg.Selectors...),
		ReqID:     cfg.ReqID,
		Name:      cfg.Name,
		Lifetime:  cfg.Lifetime,
		Created:   time.Now(),
		seqMax:    seqMax(cfg.ESN),
	}
	sa.seqLimit.Store(sa.seqMax)
	if sa.TTL == 0 {
		sa.TTL = 64
	}
	for i := range sa.Selectors {
		sa.sel = append(sa.sel, compileSelector(&sa.Selectors[i]))
	}
	if sa.Mode == Tunnel {
		sa.buildOuter()
	}
	// Ask for a rekey with 1/16 of the sequence space left, so a new SA
	// is up long before this one has to refuse to send.
	sa.seqSoft = sa.seqMax - sa.seqMax/16
	if cfg.Dir == Inbound && !cfg.NoReplay {
		w := cfg.ReplayWindow
		if w == 0 {
			w = DefaultReplayWindow
		}
		if sa.Replay, err = replay.New(w, cfg.ESN); err != nil {
			return nil, fmt.Errorf("sa %08x: %w", cfg.SPI, err)
		}
	}
	return sa, nil
}

// Moved returns a copy of the outbound SA sa that sends from local to
// remote with encap: a NAT's mapping changed and the peer's IKE SA moved
// (RFC 7296 §2.23, RFC 3948). Sending SAs are immutable for the workers, so
// the owner publishes the copy in sa's place and kills sa. The copy shares
// sa's Crypto: the owner must never Destroy sa's, only the copy's when it
// dies. Its sequence numbers go on from the last one sa handed out, and sa
// hands out none after this call (its counter jumps to the end of the
// space), so no number is used twice however many workers still hold sa;
// a batch that reserves on sa in between finds it used up and drops. The
// copy keeps sa's sequence limit (SetSeqLimit), and its path MTU when
// only the port moved.
func (sa *SA) Moved(local, remote netip.Addr, encap UDPEncap) (*SA, error) {
	if sa.Dir != Outbound {
		return nil, fmt.Errorf("sa %08x: only an outbound SA moves", sa.SPI)
	}
	if !local.IsValid() || !remote.IsValid() || local.Is4() != remote.Is4() || local.Is4() != sa.Local.Is4() {
		return nil, fmt.Errorf("sa %08x: cannot move from %v->%v to %v->%v", sa.SPI, sa.Local, sa.Remote, local, remote)
	}
	if encap.Enabled() && encap.SrcPort == 0 {
		return nil, fmt.Errorf("sa %08x: udp encapsulation needs a source port", sa.SPI)
	}
	n := &SA{
		SPI: sa.SPI, Dir: sa.Dir, Mode: sa.Mode, ESN: sa.ESN, TTL: sa.TTL, DF: sa.DF,
		Local: local, Remote: remote, Encap: encap, Crypto: sa.Crypto,
		Selectors: sa.Selectors, sel: sa.sel,
		ReqID: sa.ReqID, Name: sa.Name, Lifetime: sa.Lifetime, Created: sa.Created,
		seqMax: sa.seqMax, seqSoft: sa.seqSoft, gate: sa.gate,
	}
	if n.Mode == Tunnel {
		n.buildOuter()
	}
	n.Counters.Packets.Store(sa.Counters.Packets.Load())
	n.Counters.Bytes.Store(sa.Counters.Bytes.Load())
	n.flags.Store(sa.flags.Load())
	// The limit before the numbers: the copy never goes past a mark sa
	// was held to (seqstate), nor starts from the zero limit.
	n.seqLimit.Store(sa.seqLimit.Load())
	if remote == sa.Remote {
		// Same path (only the port moved): what ICMP taught still holds.
		n.pmtuAt.Store(sa.pmtuAt.Load())
		n.pmtu.Store(sa.pmtu.Load())
	}
	n.seq.Store(sa.seq.Swap(sa.seqMax))
	if n.seq.Load() >= n.seqMax {
		n.flags.Or(flagExhausted | flagSeqSoft)
	}
	return n, nil
}

// ReserveSeq hands out up to n consecutive outbound sequence numbers and
// returns the first and how many it gave. It gives fewer than n, down to
// none, when the SA's sequence space (2^32-1, or 2^64-1 with ESN) is
// used up: sequence numbers never wrap (RFC 4303 §3.3.3). The SA then
// reports NeedsRekey and SeqExhausted. It also gives fewer when the
// numbers above the SA's limit (SetSeqLimit) are not reserved yet: those
// are never handed out, and SeqExhausted stays false; and none while its
// gate (SetGate) is closed. One atomic operation per call (two with a
// gate), so workers reserve once per batch.
func (sa *SA) ReserveSeq(n int) (first uint64, got int) {
	if sa.gate != nil && !sa.gate.MaySend(Now()) {
		return 0, 0 // this node may not send for the SA's group
	}
	for {
		cur := sa.seq.Load()
		lim := sa.seqLimit.Load()
		if cur >= lim {
			if cur >= sa.seqMax {
				sa.flags.Or(flagExhausted | flagSeqSoft)
			}
			return 0, 0
		}
		room := lim - cur
		k := uint64(n)
		if k > room {
			k = room
		}
		if sa.seq.CompareAndSwap(cur, cur+k) {
			if cur+k >= sa.seqSoft {
				sa.flags.Or(flagSeqSoft)
			}
			return cur + 1, int(k)
		}
	}
}

// SetGate makes ReserveSeq hand out numbers only while g is open (and
// none at all while it is closed): a cluster node's right to send for the
// SA's group. An inbound SA's gate says whether it may receive (Gate.Ready:
// the workers drop its packets otherwise). Call it before the SA is
// published to the workers.
func (sa *SA) SetGate(g *Gate) { sa.gate = g }

// Gate is the SA's gate (nil: none, the SA is not a cluster group's).
func (sa *SA) Gate() *Gate { return sa.gate }

// SetSeqLimit sets the highest sequence number ReserveSeq may hand out,
// at most the sequence space's end. A static SA's state store raises it
// only after the new mark is durable, so that no number a restarted
// daemon could hand out again ever leaves (a (key, nonce) pair is never
// used twice). New SAs have no limit but the sequence space.
func (sa *SA) SetSeqLimit(last uint64) { sa.seqLimit.Store(min(last, sa.seqMax)) }

// SeqLimit is the highest sequence number ReserveSeq may hand out.
func (sa *SA) SeqLimit() uint64 { return sa.seqLimit.Load() }

// SeqMax is the highest sequence number the SA's sequence space holds.
func (sa *SA) SeqMax() uint64 { return sa.seqMax }

// SeqDrop is why a packet that got no sequence number is dropped: the
// space is used up (ErrSeqExhausted), or the numbers ahead are not
// reserved yet (ErrSeqUnreserved).
func (sa *SA) SeqDrop() Reason {
	if sa.seq.Load() >= sa.seqMax {
		return ErrSeqExhausted
	}
	return ErrSeqUnreserved
}

// SetSeq sets the last sent sequence number (tests, and SAs restored with
// their state).
func (sa *SA) SetSeq(last uint64) { sa.seq.Store(last) }

// Seq is the last sequence number handed out.
func (sa *SA) Seq() uint64 { return sa.seq.Load() }

// Account adds a batch's worth of traffic to the SA's counters and checks
// the byte and packet lifetimes. Workers call it once per batch and SA.
func (sa *SA) Account(packets, bytes uint64) {
	p := sa.Counters.Packets.Add(packets)
	b := sa.Counters.Bytes.Add(bytes)
	lt := &sa.Lifetime
	if lt.Hard.Packets != 0 && p >= lt.Hard.Packets || lt.Hard.Bytes != 0 && b >= lt.Hard.Bytes {
		sa.flags.Or(flagHard | flagSoft)
	} else if lt.Soft.Packets != 0 && p >= lt.Soft.Packets || lt.Soft.Bytes != 0 && b >= lt.Soft.Bytes {
		sa.flags.Or(flagSoft)
	}
}

// Drop counts n packets dropped for reason r.
func (sa *SA) Drop(r Reason, n uint64) { sa.Counters.Drops[r].Add(n) }

// CheckTime applies the time lifetimes; the control plane calls it
// periodically (never the workers).
func (sa *SA) CheckTime(now time.Time) {
	age := now.Sub(sa.Created)
	lt := &sa.Lifetime
	if lt.Hard.Time != 0 && age >= lt.Hard.Time {
		sa.flags.Or(flagHard | flagSoft)
	} else if lt.Soft.Time != 0 && age >= lt.Soft.Time {
		sa.flags.Or(flagSoft)
	}
}

// Usable reports whether the SA may still carry traffic: not deleted, no
// hard lifetime passed.
func (sa *SA) Usable() bool { return sa.flags.Load()&(flagHard|flagDead) == 0 }

// NeedsRekey reports whether a soft lifetime passed or the sequence space
// is nearly (or wholly) used.
func (sa *SA) NeedsRekey() bool {
	return sa.flags.Load()&(flagSoft|flagSeqSoft|flagExhausted|flagHard) != 0
}

// SeqExhausted reports whether the SA ran out of sequence numbers.
func (sa *SA) SeqExhausted() bool { return sa.flags.Load()&flagExhausted != 0 }

// Expired reports whether a hard lifetime passed.
func (sa *SA) Expired() bool { return sa.flags.Load()&flagHard != 0 }

// Dead reports whether the SA was deleted.
func (sa *SA) Dead() bool { return sa.flags.Load()&flagDead != 0 }

// Kill marks the SA deleted: workers that still hold it stop using it at
// their next look at Usable. Keys are wiped by Crypto.Destroy, which the
// owner calls once no worker can hold the SA any more.
func (sa *SA) Kill() {
	sa.flags.Or(flagDead)
}

// String names the SA for logs (never its keys).
func (sa *SA) String() string {
	return fmt.Sprintf("%s %08x %s %v", sa.Dir, sa.SPI, sa.Mode, sa.Crypto.Suite)
}

// buildOuter prebuilds the outer header template of a tunnel SA.
func (sa *SA) buildOuter() {
	const protoESP, protoUDP = 50, 17
	proto := byte(protoESP)
	if sa.Encap.Enabled() {
		proto = protoUDP
	}
	h := sa.OuterHdr[:]
	if sa.Local.Is4() {
		h[0] = 0x45
		h[8] = sa.TTL
		h[9] = proto
		l, r := sa.Local.As4(), sa.Remote.As4()
		copy(h[12:16], l[:])
		copy(h[16:20], r[:])
		sa.OuterLen = 20
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(h[i])<<8 | uint32(h[i+1])
		}
		sa.OuterSum = sum
		return
	}
	h[0] = 0x60
	h[6] = proto
	h[7] = sa.TTL
	l, r := sa.Local.As16(), sa.Remote.As16()
	copy(h[8:24], l[:])
	copy(h[24:40], r[:])
	sa.OuterLen = 40
}
