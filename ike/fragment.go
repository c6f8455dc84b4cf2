package ike

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/message"
)

// IKE message fragmentation (RFC 7383). A protected message too big for
// the configured fragment size goes out as several messages with the same
// header fields, each carrying one Encrypted Fragment (SKF) payload that is
// sealed on its own, so a receiver checks every fragment's ICV before it
// keeps anything and an attacker who cannot forge one cannot fill our
// buffers. Only IKE_SA_INIT, which has no keys yet, is never fragmented
// (§2.5).

// Reassembly limits. Each IKE SA holds at most one partial message per
// direction (the window is one, §2.6), made only of fragments that passed
// their integrity check, so the memory one peer can pin is bounded by these
// even if it holds the keys.
const (
	// maxFragments bounds Total Fragments: a message of the largest size
	// below in fragments of the smallest size we send (MinFragmentSize)
	// needs about 150, and strongSwan sends at most a few dozen.
	maxFragments = 256
	// maxReassembledLen bounds the inner payloads of one reassembled
	// message: what a single unfragmented IKE message over UDP could hold.
	maxReassembledLen = 65535
	// reassemblyTimeout drops a partial message nothing completed. It spans
	// a few of the peer's retransmissions (strongSwan resends after 4, 7
	// and 13 s), so the fragments of the first send and of a resend
	// complete each other, and frees the memory of a peer that gave up.
	reassemblyTimeout = 30 * time.Second
)

// The reassembly memory budget. Each partial message is charged what it
// holds: its fragment table and every kept fragment's buffer. All of them
// together stay within DefaultReassemblyBudget; those of IKE SAs that have
// not authenticated yet (half-open ones, whose peer only had to do a key
// exchange) within half of it and DefaultUnauthReassemblyLimit each, so
// however many half-open SAs there are, established SAs (rekeys with
// large KE payloads, certificates) always find room.
const (
	DefaultReassemblyBudget      = 16 << 20
	DefaultUnauthReassemblyLimit = 32 << 10
	// fragSlotCost is what one entry of the fragment table costs.
	fragSlotCost = 24
)

// reassemblyBudget is the engine's account of reassembly memory; the
// loop's only.
type reassemblyBudget struct {
	total, unauth int // octets charged now
	limit         int // all partial messages
	unauthLimit   int // one unauthenticated SA's partial messages
}

func newReassemblyBudget(limit, unauth int) reassemblyBudget {
	if limit <= 0 {
		limit = DefaultReassemblyBudget
	}
	if unauth <= 0 {
		unauth = DefaultUnauthReassemblyLimit
	}
	return reassemblyBudget{limit: limit, unauthLimit: min(unauth, limit/2)}
}

// charge takes n octets for a partial message of an SA that has (or has
// not) authenticated and holds held octets already; false if that would
// exceed a limit.
func (b *reassemblyBudget) charge(n, held int, authed bool) bool {
	if b.total+n > b.limit {
		return false
	}
	if !authed {
		if held+n > b.unauthLimit || b.unauth+n > b.limit/2 {
			return false
		}
		b.unauth += n
	}
	b.total += n
	return true
}

func (b *reassemblyBudget) release(n int, authed bool) {
	b.total -= n
	if !authed {
		b.unauth -= n
	}
}

// ReassemblyBytes returns the octets the engine holds in partial
// fragmented messages now (all, and those of unauthenticated IKE SAs).
func (e *Engine) ReassemblyBytes() (total, unauth int) {
	e.do(context.Background(), func() { total, unauth = e.reasm.total, e.reasm.unauth })
	return
}

// fragmentOverhead is what each fragment message carries besides its
// sealed body: the IKE header, the SKF generic payload header and the
// Fragment Number and Total Fragments fields.
const fragmentOverhead = message.HeaderLen + 4 + 4

// Reassembly buffer of each direction: the peer's requests, and the
// responses to ours.
const (
	fragRequest = iota
	fragResponse
)

// fragState is an IKE SA's reassembly state; nil while no fragmented
// message is under way, which is nearly always.
type fragState struct {
	r [2]*reassembly
}

// reassembly is one partial fragmented message.
type reassembly struct {
	mid   uint32
	exch  message.ExchangeType
	total uint16
	have  uint16
	size  int
	first message.PayloadType // the Next Payload of fragment 1
	parts [][]byte            // decrypted inner payload octets, by Fragment Number - 1
	timer *time.Timer
	// charged is what the engine's reassemblyBudget holds for it, authed
	// whether it was charged as an authenticated SA's.
	charged int
	authed  bool
}

func (r *reassembly) wipe() {
	if r.timer != nil {
		r.timer.Stop()
	}
	for _, p := range r.parts {
		crypto.Zero(p)
	}
	r.parts = nil
}

// FragmentStats counts what IKE fragmentation did in an Engine since it
// started. Every fragment dropped is counted under one cause.
type FragmentStats struct {
	MessagesSent      uint64 // messages sent as fragments (each retransmission again)
	FragmentsSent     uint64
	FragmentsAccepted uint64 // fragments that passed their integrity check and were kept
	Reassembled       uint64 // messages completed from fragments

	// NotNegotiated: SKF on an IKE SA that did not negotiate
	// fragmentation or has no keys yet.
	NotNegotiated uint64
	// Integrity: the fragment's body was malformed or failed its ICV.
	Integrity uint64
	// Duplicate: a fragment number we already hold.
	Duplicate uint64
	// TooMany: Total Fragments above the reassembly limit.
	TooMany uint64
	// TooLarge: the message grew beyond the reassembly limit; the partial
	// message was dropped.
	TooLarge uint64
	// Budget: the fragment did not fit the reassembly memory budget (all
	// partial messages, or those of unauthenticated IKE SAs); the partial
	// message was dropped.
	Budget uint64
	// TotalMismatch: a fragment with a smaller Total Fragments than the
	// partial message's (dropped), or another exchange type.
	TotalMismatch uint64
	// Restarted: a fragment with a larger Total Fragments (the peer
	// fragmented its retransmission smaller) or a newer message ID
	// replaced the partial message (RFC 7383 §2.6).
	Restarted uint64
	// Timeout: partial messages dropped after reassemblyTimeout.
	Timeout uint64
	// Malformed: the reassembled payloads did not decode.
	Malformed uint64
}

// Counters returns the counters by name, as `xdpsec show stats` and the
// metrics export them.
func (s FragmentStats) Counters() map[string]uint64 {
	return map[string]uint64{
		"messages_sent": s.MessagesSent, "fragments_sent": s.FragmentsSent,
		"fragments_accepted": s.FragmentsAccepted, "reassembled": s.Reassembled,
		"drop_not_negotiated": s.NotNegotiated, "drop_integrity": s.Integrity, "drop_duplicate": s.Duplicate,
		"drop_too_many": s.TooMany, "drop_too_large": s.TooLarge, "drop_budget": s.Budget, "drop_total_mismatch": s.TotalMismatch,
		"restarted": s.Restarted, "timeout": s.Timeout, "malformed": s.Malformed,
	}
}

// fragCounters is FragmentStats as the loop updates it; other goroutines
// read it through Engine.FragmentStats.
type fragCounters struct {
	messagesSent, fragmentsSent, accepted, reassembled                    atomic.Uint64
	notNegotiated, integrity, duplicate, tooMany, tooLarge, totalMismatch atomic.Uint64
	restarted, timeout, malformed, budget                                 atomic.Uint64
}

// FragmentStats returns the fragmentation counters.
func (e *Engine) FragmentStats() FragmentStats {
	c := &e.frag
	return FragmentStats{
		MessagesSent: c.messagesSent.Load(), FragmentsSent: c.fragmentsSent.Load(),
		FragmentsAccepted: c.accepted.Load(), Reassembled: c.reassembled.Load(),
		NotNegotiated: c.notNegotiated.Load(), Integrity: c.integrity.Load(), Duplicate: c.duplicate.Load(),
		TooMany: c.tooMany.Load(), TooLarge: c.tooLarge.Load(), TotalMismatch: c.totalMismatch.Load(),
		Restarted: c.restarted.Load(), Timeout: c.timeout.Load(), Malformed: c.malformed.Load(),
		Budget: c.budget.Load(),
	}
}

// maxMessageLen is the largest IKE message of this SA that fits in one IP
// datagram of the connection's fragment size.
func (sa *ikeSA) maxMessageLen() int {
	n := DefaultFragmentSize
	if sa.conn != nil {
		n = sa.conn.fragmentSize()
	}
	n -= 8 // UDP header
	if sa.remote.Addr().Unmap().Is4() {
		n -= 20
	} else {
		n -= 40
	}
	if sa.natt() {
		n -= 4 // non-ESP marker (RFC 3948 §2.2)
	}
	return n
}

// sealFragments builds the fragments of one protected message (RFC 7383
// §2.5): inner is the plaintext payload chain whose first payload is of
// type first, cut into pieces that fill maxLen-octet messages; each piece
// is sealed with its own IV and ICV.
func sealFragments(h message.Header, first message.PayloadType, inner []byte, out crypto.Protector, maxLen int) ([][]byte, error) {
	chunk := out.MaxPlaintextLen(maxLen - fragmentOverhead)
	if chunk < 1 {
		return nil, fmt.Errorf("fragment size leaves no room for payloads (%d-octet messages)", maxLen)
	}
	n := (len(inner) + chunk - 1) / chunk
	if n > maxFragments {
		return nil, fmt.Errorf("%d-octet message needs %d fragments, more than %d", len(inner), n, maxFragments)
	}
	msgs := make([][]byte, 0, n)
	for i := range n {
		piece := inner[i*chunk : min((i+1)*chunk, len(inner))]
		bodyLen := out.SealedLen(len(piece))
		f := &message.EncryptedFragment{Number: uint16(i + 1), Total: uint16(n), Body: make([]byte, bodyLen)}
		if i == 0 {
			// Only the first fragment names the first inner payload; the
			// others carry zero (§2.5).
			f.NextPayload = first
		}
		m := message.Message{Header: h, Payloads: message.Payloads{f}}
		b, err := m.Encode()
		if err != nil {
			return nil, err
		}
		prefix := b[:len(b)-bodyLen]
		msg := make([]byte, 0, len(b))
		msg = append(msg, prefix...)
		if msg, err = out.Seal(msg, prefix, piece); err != nil {
			return nil, fmt.Errorf("fragment %d of %d: %w", i+1, n, err)
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

var errFragmentDropped = errors.New("fragment dropped")

// openMessage opens a received protected message of the expected message
// ID: an SK payload at once, an SKF payload into the reassembly buffer of
// direction dir. complete is false while fragments are missing and when a
// fragment was dropped (err then says why); once complete, payloads and err
// are those of the whole message, as decrypt returns them.
func (sa *ikeSA) openMessage(raw []byte, m *message.Message, dir int) (payloads message.Payloads, complete bool, err error) {
	if f := lastFragment(m); f != nil {
		return sa.reassemble(raw, m, f, dir)
	}
	ps, err := sa.decrypt(raw, m)
	return ps, true, err
}

// reassemble checks one fragment and keeps it (RFC 7383 §2.6). Nothing of
// a fragment is trusted or stored before its ICV verified; the Total
// Fragments rules apply to authenticated fragments only, so a forged one
// cannot restart or shrink a partial message.
func (sa *ikeSA) reassemble(raw []byte, m *message.Message, f *message.EncryptedFragment, dir int) (message.Payloads, bool, error) {
	c := &sa.e.frag
	if !sa.fragment || sa.keys == nil {
		c.notNegotiated.Add(1)
		return nil, false, fmt.Errorf("%w: fragmentation not negotiated", errFragmentDropped)
	}
	if f.Total > maxFragments {
		c.tooMany.Add(1)
		return nil, false, fmt.Errorf("%w: %d fragments, more than %d", errFragmentDropped, f.Total, maxFragments)
	}
	in, err := sa.opener()
	if err != nil {
		return nil, false, err
	}
	defer in.Destroy()
	lay, err := message.LocateEncrypted(raw, in.IVLen(), in.ICVLen())
	if err != nil || !lay.Fragment {
		c.integrity.Add(1)
		return nil, false, fmt.Errorf("%w: %v", errFragmentDropped, err)
	}
	plain, err := in.Open(nil, lay.AssociatedData, raw[len(lay.AssociatedData):])
	if err != nil {
		c.integrity.Add(1)
		return nil, false, fmt.Errorf("%w: %v", errFragmentDropped, err)
	}
	var r *reassembly
	if sa.frags != nil {
		r = sa.frags.r[dir]
	}
	switch {
	case r == nil:
	case r.mid != m.MessageID:
		// The caller passes only the message ID it expects now, so a
		// partial message under another ID is one that will never
		// complete: the peer moved on.
		c.restarted.Add(1)
		sa.dropReassembly(dir)
		r = nil
	case f.Total > r.total:
		// The peer refragmented its retransmission with a smaller size:
		// start over with the new fragments (§2.6).
		c.restarted.Add(1)
		sa.dropReassembly(dir)
		r = nil
	case f.Total < r.total || m.Exchange != r.exch:
		crypto.Zero(plain)
		c.totalMismatch.Add(1)
		return nil, false, fmt.Errorf("%w: fragment %d of %d (%v) does not belong to the %d fragments (%v) being reassembled",
			errFragmentDropped, f.Number, f.Total, m.Exchange, r.total, r.exch)
	}
	if r == nil {
		if sa.frags == nil {
			sa.frags = &fragState{}
		}
		authed := sa.state != StateConnecting
		table := int(f.Total) * fragSlotCost
		if !sa.e.reasm.charge(table, sa.reassemblyHeld(), authed) {
			crypto.Zero(plain)
			c.budget.Add(1)
			if sa.frags.r[fragRequest] == nil && sa.frags.r[fragResponse] == nil {
				sa.frags = nil
			}
			return nil, false, fmt.Errorf("%w: reassembly memory budget spent", errFragmentDropped)
		}
		r = &reassembly{mid: m.MessageID, exch: m.Exchange, total: f.Total, parts: make([][]byte, f.Total), charged: table, authed: authed}
		sa.frags.r[dir] = r
		r.timer = sa.e.afterFunc(sa.e.fragTimeout, func() {
			if sa.frags != nil && sa.frags.r[dir] == r {
				c.timeout.Add(1)
				if sa.e.debugQuiet(noisyDropped) {
					sa.e.log.Debug("fragmented message timed out", "sa", sa.logID(), "message_id", r.mid, "have", r.have, "total", r.total)
				}
				sa.dropReassembly(dir)
			}
		})
	}
	i := int(f.Number) - 1
	if r.parts[i] != nil {
		crypto.Zero(plain)
		c.duplicate.Add(1)
		return nil, false, nil
	}
	if r.size+len(plain) > maxReassembledLen {
		crypto.Zero(plain)
		c.tooLarge.Add(1)
		sa.dropReassembly(dir)
		return nil, false, fmt.Errorf("%w: reassembled message over %d octets", errFragmentDropped, maxReassembledLen)
	}
	if len(plain) == 0 {
		// An empty fragment would look missing; keep a zero-length,
		// non-nil slice.
		plain = make([]byte, 0, 1)
	}
	if !sa.e.reasm.charge(cap(plain), sa.reassemblyHeld(), r.authed) {
		crypto.Zero(plain)
		c.budget.Add(1)
		sa.dropReassembly(dir)
		return nil, false, fmt.Errorf("%w: reassembly memory budget spent", errFragmentDropped)
	}
	r.charged += cap(plain)
	r.parts[i] = plain
	r.size += len(plain)
	r.have++
	if f.Number == 1 {
		r.first = lay.NextPayload
	}
	c.accepted.Add(1)
	if r.have < r.total {
		return nil, false, nil
	}
	whole := make([]byte, 0, r.size)
	for _, p := range r.parts {
		whole = append(whole, p...)
	}
	first := r.first
	sa.dropReassembly(dir)
	defer crypto.Zero(whole)
	c.reassembled.Add(1)
	if m.Exchange == message.ExchangeIKEIntermediate && sa.state == StateConnecting && len(raw) >= message.HeaderLen {
		// RFC 9242 §3.3.2: IntAuth covers the reassembled message as if it
		// had come unfragmented: the IKE header naming an SK payload, whose
		// header names the first inner payload (foldIntAuth sets lengths).
		var ad [message.HeaderLen + 4]byte
		copy(ad[:], raw[:message.HeaderLen])
		ad[16] = byte(message.PayloadSK)
		ad[message.HeaderLen] = byte(first)
		sa.foldIntAuth(!sa.initiator, ad[:], whole)
	}
	ps, err := message.DecodePayloads(first, whole)
	if err != nil {
		var crit *message.UnsupportedCriticalPayloadError
		if !errors.As(err, &crit) {
			c.malformed.Add(1)
		}
	}
	return ps, true, err
}

// dropReassembly forgets the partial message of direction dir.
func (sa *ikeSA) dropReassembly(dir int) {
	if sa.frags == nil {
		return
	}
	if r := sa.frags.r[dir]; r != nil {
		r.wipe()
		sa.e.reasm.release(r.charged, r.authed)
		r.charged = 0
		sa.frags.r[dir] = nil
	}
	if sa.frags.r[fragRequest] == nil && sa.frags.r[fragResponse] == nil {
		sa.frags = nil
	}
}

// reassemblyHeld is what the SA's partial messages hold now.
func (sa *ikeSA) reassemblyHeld() int {
	n := 0
	if sa.frags != nil {
		for _, r := range sa.frags.r {
			if r != nil {
				n += r.charged
			}
		}
	}
	return n
}

// lastFragment returns the message's SKF payload, or nil.
func lastFragment(m *message.Message) *message.EncryptedFragment {
	if n := len(m.Payloads); n > 0 {
		f, _ := m.Payloads[n-1].(*message.EncryptedFragment)
		return f
	}
	return nil
}
