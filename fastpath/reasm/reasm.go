// Package reasm reassembles outer IPv4 and IPv6 fragments of ESP and
// ESP-in-UDP before decryption (RFC 791 §3.2, RFC 8200 §4.5), in fixed
// memory: a worker owns one Reassembler, sized once at start, and adding a
// fragment never allocates.
//
// Bounds and hostile input:
//   - at most Slots datagrams are in reassembly at once, at most PerSource
//     of them from one source address; a new datagram past the total cap
//     evicts the oldest one, past the per-source cap it is dropped;
//   - a datagram larger than MaxLen, with more than MaxFrags pieces, or not
//     complete within Timeout is dropped and counted;
//   - a fragment that is not the last and carries fewer than MinFrag bytes
//     is "tiny" (RFC 1858's tiny-fragment attack; no real path MTU makes
//     one) and dropped;
//   - a fragment overlapping another of its datagram drops the whole
//     datagram (RFC 5722, for IPv4 as well), and the fragments of it still
//     to come until its timeout (RFC 8200 §4.5: "including those not yet
//     received"): the slot stays taken, marked dead, so they neither
//     start a new datagram nor complete one; an exact duplicate is only
//     itself dropped (RFC 8200 §4.5 allows it).
//
// A Reassembler is not safe for concurrent use: each worker has its own.
// Its counters (Stats) may be read from any goroutine.
package reasm

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// Defaults for the zero fields of Config.
const (
	DefaultSlots     = 64
	DefaultPerSource = 8
	DefaultMaxFrags  = 16
	DefaultMinFrag   = 256
	// DefaultTimeout is that of Linux's ipfrag_time (30 s), in ns.
	DefaultTimeout = 30e9
)

// Config sizes a Reassembler.
type Config struct {
	Slots, PerSource, MaxFrags, MinFrag int
	// MaxLen is the largest reassembled IP packet, header included; it
	// must fit the frame the result is written into.
	MaxLen int
	// Timeout in ns of monotonic time (the now passed to Add).
	Timeout int64
}

// Verdict is what Add did with a fragment.
type Verdict uint8

const (
	// Held: the fragment is stored, the datagram is not complete yet.
	Held Verdict = iota
	// Done: the datagram is complete and written to out.
	Done
	// Dropped: the fragment (and perhaps its datagram) was dropped and
	// counted.
	Dropped
)

// Stats are the reassembly counters.
type Stats struct {
	Fragments   uint64 // fragments offered
	Reassembled uint64 // whole datagrams produced
	Malformed   uint64 // bad IP or fragment header, offset/length not a multiple of 8
	Tiny        uint64 // non-last fragments under MinFrag bytes
	Overlap     uint64 // datagrams dropped for overlapping fragments
	Late        uint64 // fragments of a datagram already dropped for an overlap
	Duplicate   uint64 // exact duplicate fragments dropped
	TooBig      uint64 // datagrams past MaxLen or MaxFrags
	Timeout     uint64 // datagrams that expired incomplete
	Evicted     uint64 // datagrams evicted by a new one when all slots were taken
	SourceLimit uint64 // fragments refused by the per-source cap
}

// Each calls f with the name (as `xdpsec show stats` writes it, without
// the worker's "reasm_" prefix) and value of every counter.
func (s *Stats) Each(f func(name string, v uint64)) {
	f("fragments", s.Fragments)
	f("reassembled", s.Reassembled)
	f("malformed", s.Malformed)
	f("tiny", s.Tiny)
	f("overlap", s.Overlap)
	f("late", s.Late)
	f("duplicate", s.Duplicate)
	f("too_big", s.TooBig)
	f("timeout", s.Timeout)
	f("evicted", s.Evicted)
	f("source_limit", s.SourceLimit)
}

type counters struct {
	fragments, reassembled, malformed, tiny, overlap, duplicate atomic.Uint64
	tooBig, timeout, evicted, sourceLimit, late                 atomic.Uint64
}

type piece struct{ lo, hi int } // payload bytes [lo, hi)

// datagram is one set of fragments being reassembled.
type datagram struct {
	used     bool
	dead     bool // dropped for an overlap: its fragments are refused until it expires
	v6       bool
	proto    uint8
	id       uint32
	src, dst [16]byte
	born     int64
	total    int // payload length, -1 until the last fragment came
	got      int // payload bytes held
	hdrLen   int // unfragmentable header bytes, 0 until the first fragment came
	nextOff  int // IPv6: where in hdr the Next Header pointing at the fragment header is
	npieces  int
	pieces   []piece
	hdr      [60]byte // IPv4 header (options included) or IPv6 unfragmentable part
	payload  []byte
}

// Reassembler holds the datagrams of one worker.
type Reassembler struct {
	cfg   Config
	sets  []datagram
	inUse int
	// next is a time before which no datagram expires (Expire does
	// nothing until then): the oldest birth seen plus the timeout.
	next int64
	c    counters
}

// New allocates a Reassembler's memory: Slots × (MaxLen + MaxFrags pieces).
func New(cfg Config) *Reassembler {
	if cfg.Slots <= 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.PerSource <= 0 {
		cfg.PerSource = DefaultPerSource
	}
	if cfg.MaxFrags <= 0 {
		cfg.MaxFrags = DefaultMaxFrags
	}
	if cfg.MinFrag <= 0 {
		cfg.MinFrag = DefaultMinFrag
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = 2034
	}
	r := &Reassembler{cfg: cfg, sets: make([]datagram, cfg.Slots)}
	buf := make([]byte, cfg.Slots*cfg.MaxLen)
	ps := make([]piece, cfg.Slots*cfg.MaxFrags)
	for i := range r.sets {
		r.sets[i].payload = buf[i*cfg.MaxLen : (i+1)*cfg.MaxLen : (i+1)*cfg.MaxLen]
		r.sets[i].pieces = ps[i*cfg.MaxFrags : (i+1)*cfg.MaxFrags : (i+1)*cfg.MaxFrags]
	}
	return r
}

// Stats returns the counters; safe from any goroutine.
func (r *Reassembler) Stats() Stats {
	c := &r.c
	return Stats{
		Fragments: c.fragments.Load(), Reassembled: c.reassembled.Load(), Malformed: c.malformed.Load(),
		Tiny: c.tiny.Load(), Overlap: c.overlap.Load(), Duplicate: c.duplicate.Load(),
		TooBig: c.tooBig.Load(), Timeout: c.timeout.Load(), Evicted: c.evicted.Load(),
		SourceLimit: c.sourceLimit.Load(), Late: c.late.Load(),
	}
}

// Pending reports how many datagrams are in reassembly.
func (r *Reassembler) Pending() int { return r.inUse }

// Expire drops the datagrams older than the timeout at now. Add expires
// lazily too; a worker calls this now and then so that incomplete sets are
// counted (and their memory freed) even when no fragment follows.
func (r *Reassembler) Expire(now int64) {
	if r.inUse == 0 || now < r.next {
		return
	}
	r.next = now + r.cfg.Timeout
	for i := range r.sets {
		d := &r.sets[i]
		if !d.used {
			continue
		}
		if now-d.born >= r.cfg.Timeout {
			r.expire(d)
		} else if d.born+r.cfg.Timeout < r.next {
			r.next = d.born + r.cfg.Timeout
		}
	}
}

// expire frees a datagram whose time is up; only a live one is counted
// (a dead one was counted when it died).
func (r *Reassembler) expire(d *datagram) {
	if !d.dead {
		r.c.timeout.Add(1)
	}
	r.release(d)
}

func (r *Reassembler) release(d *datagram) {
	d.used, d.dead = false, false
	r.inUse--
}

// frag is a parsed fragment.
type frag struct {
	v6       bool
	proto    uint8
	id       uint32
	src, dst [16]byte
	hdrLen   int // bytes before the fragmentable part (IPv6: fragment header included)
	unfrag   int // IPv6: bytes of the unfragmentable part (before the fragment header)
	nextOff  int // IPv6: offset of the Next Header byte naming the fragment header
	off      int // payload offset in bytes
	more     bool
	data     []byte
}

// parse reads an IPv4 or IPv6 fragment. It reports false for anything
// malformed, and for a packet that is not a fragment.
func parse(b []byte, f *frag) bool {
	if len(b) < 20 {
		return false
	}
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || tot < ihl || tot > len(b) {
			return false
		}
		fo := binary.BigEndian.Uint16(b[6:])
		if fo&0x3fff == 0 {
			return false
		}
		f.v6, f.proto, f.id = false, b[9], uint32(binary.BigEndian.Uint16(b[4:]))
		f.src, f.dst = [16]byte{}, [16]byte{}
		copy(f.src[:], b[12:16])
		copy(f.dst[:], b[16:20])
		f.hdrLen, f.unfrag = ihl, ihl
		f.off, f.more = int(fo&0x1fff)*8, fo&0x2000 != 0
		f.data = b[ihl:tot]
		return true
	case 6:
		if len(b) < 40 {
			return false
		}
		tot := 40 + int(binary.BigEndian.Uint16(b[4:]))
		if tot > len(b) {
			return false
		}
		nh, off, nextOff := b[6], 40, 6
		for i := 0; i < 8; i++ {
			switch nh {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > tot {
					return false
				}
				l := (int(b[off+1]) + 1) * 8
				if off+l > tot {
					return false
				}
				nh, nextOff, off = b[off], off, off+l
				continue
			case 44:
				if off+8 > tot || off > 60 {
					return false
				}
				fo := binary.BigEndian.Uint16(b[off+2:])
				f.v6, f.proto, f.id = true, b[off], binary.BigEndian.Uint32(b[off+4:])
				copy(f.src[:], b[8:24])
				copy(f.dst[:], b[24:40])
				f.unfrag, f.nextOff, f.hdrLen = off, nextOff, off+8
				f.off, f.more = int(fo&0xfff8), fo&1 != 0
				f.data = b[off+8 : tot]
				return true
			}
			return false
		}
	}
	return false
}

// Add takes the IP packet pkt (an IPv4 or IPv6 fragment) received at
// now. When it completes its datagram, the whole IP packet is written to
// out (which may overlap pkt: pkt is consumed first) and Add returns its
// length and Done. out must hold MaxLen bytes.
func (r *Reassembler) Add(pkt []byte, now int64, out []byte) (int, Verdict) {
	r.c.fragments.Add(1)
	var f frag
	if !parse(pkt, &f) {
		r.c.malformed.Add(1)
		return 0, Dropped
	}
	n := len(f.data)
	if n == 0 || f.more && n%8 != 0 {
		r.c.malformed.Add(1)
		return 0, Dropped
	}
	if f.more && n < r.cfg.MinFrag {
		r.c.tiny.Add(1)
		return 0, Dropped
	}
	// One pass: expire, find the datagram, count the source's, and
	// remember a free and the oldest slot.
	var d *datagram
	free, oldest, fromSrc := -1, -1, 0
	for i := range r.sets {
		s := &r.sets[i]
		if !s.used {
			if free < 0 {
				free = i
			}
			continue
		}
		if now-s.born >= r.cfg.Timeout {
			r.expire(s)
			if free < 0 {
				free = i
			}
			continue
		}
		if s.src == f.src && s.v6 == f.v6 {
			if s.id == f.id && s.dst == f.dst && s.proto == f.proto {
				d = s
			}
			fromSrc++
		}
		if oldest < 0 || s.born < r.sets[oldest].born {
			oldest = i
		}
	}
	if d == nil {
		if fromSrc >= r.cfg.PerSource {
			r.c.sourceLimit.Add(1)
			return 0, Dropped
		}
		if free < 0 {
			free = oldest
			if !r.sets[oldest].dead {
				r.c.evicted.Add(1)
			}
			r.release(&r.sets[oldest])
		}
		d = &r.sets[free]
		d.used, d.v6, d.proto, d.id, d.src, d.dst = true, f.v6, f.proto, f.id, f.src, f.dst
		d.born, d.total, d.got, d.hdrLen, d.npieces = now, -1, 0, 0, 0
		if r.inUse == 0 || now+r.cfg.Timeout < r.next {
			r.next = now + r.cfg.Timeout
		}
		r.inUse++
	} else if d.dead {
		r.c.late.Add(1)
		return 0, Dropped
	}
	lo, hi := f.off, f.off+n
	// The unfragmentable header comes back in front of the payload.
	if hi+f.unfrag > r.cfg.MaxLen {
		r.drop(d, &r.c.tooBig)
		return 0, Dropped
	}
	for _, p := range d.pieces[:d.npieces] {
		if lo < p.hi && p.lo < hi {
			if lo == p.lo && hi == p.hi {
				r.c.duplicate.Add(1)
				return 0, Dropped
			}
			// RFC 5722: the whole datagram, and what is still to
			// come of it, is dropped.
			d.dead = true
			r.c.overlap.Add(1)
			return 0, Dropped
		}
	}
	if !f.more {
		if d.total >= 0 && d.total != hi {
			r.drop(d, &r.c.malformed)
			return 0, Dropped
		}
		d.total = hi
	}
	if d.total >= 0 && hi > d.total {
		r.drop(d, &r.c.malformed)
		return 0, Dropped
	}
	if d.npieces == len(d.pieces) {
		r.drop(d, &r.c.tooBig)
		return 0, Dropped
	}
	d.pieces[d.npieces] = piece{lo, hi}
	d.npieces++
	copy(d.payload[lo:hi], f.data)
	d.got += n
	if lo == 0 {
		d.hdrLen = f.unfrag
		d.nextOff = f.nextOff
		copy(d.hdr[:], pkt[:f.unfrag])
	}
	if d.total < 0 || d.got != d.total || d.hdrLen == 0 {
		return 0, Held
	}
	// Pieces do not overlap and sum to total: the payload is whole.
	hl, tot := d.hdrLen, d.hdrLen+d.total
	if tot > len(out) || tot > r.cfg.MaxLen {
		r.drop(d, &r.c.tooBig)
		return 0, Dropped
	}
	copy(out[hl:tot], d.payload[:d.total])
	copy(out[:hl], d.hdr[:hl])
	if d.v6 {
		out[d.nextOff] = d.proto
		binary.BigEndian.PutUint16(out[4:], uint16(tot-40))
	} else {
		binary.BigEndian.PutUint16(out[2:], uint16(tot))
		binary.BigEndian.PutUint16(out[6:], 0)
		binary.BigEndian.PutUint16(out[10:], packet.IPv4HeaderChecksum(out[:hl]))
	}
	r.release(d)
	r.c.reassembled.Add(1)
	return tot, Done
}

func (r *Reassembler) drop(d *datagram, c *atomic.Uint64) {
	r.release(d)
	c.Add(1)
}
