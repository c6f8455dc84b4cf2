package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/enum"
)

// State is the life stage of an IKE SA.
type State uint8

const (
	StateConnecting  State = iota + 1 // IKE_SA_INIT or IKE_AUTH under way
	StateEstablished                  // authenticated
	StateDeleting                     // a Delete of the IKE SA is under way
	StateDead                         // gone; kept only until the last reference drops
)

var stateNames = [...]string{
	StateConnecting:  "CONNECTING",
	StateEstablished: "ESTABLISHED",
	StateDeleting:    "DELETING",
	StateDead:        "DESTROYING",
}

func (s State) String() string { return enum.Name(s, stateNames[:], "state") }

// task is one exchange as its initiator runs it (strongSwan's task_t):
// build makes the request's payloads, process reads the response's. The
// responder's side of each exchange is a responder function (see respond).
type task interface {
	exchange() message.ExchangeType
	build(sa *ikeSA) ([]message.Payload, error)
	process(sa *ikeSA, resp message.Payloads) error
}

// errRestart asks the queue to send the task's request again from scratch
// with the same message ID (IKE_SA_INIT after INVALID_KE_PAYLOAD).
var errRestart = errors.New("restart exchange")

// errSilentFail ends the IKE SA after a failure that was already logged.
var errSilentFail = errors.New("exchange failed")

// pendingRequest is our outstanding request: window size one (RFC 7296
// §2.3), so there is at most one.
type pendingRequest struct {
	task  task
	mid   uint32
	raw   [][]byte // the message, or its fragments (RFC 7383)
	sends int
	timer *time.Timer
}

// waiter is a caller waiting on an IKE SA: Initiate for its outcome, or
// Terminate (terminate set) for its deletion. One slice holds both kinds, as
// nearly every IKE SA has none of either.
type waiter struct {
	ch        chan error
	terminate bool
}

// signalWaiters tells the waiters of one kind err and forgets them.
func (sa *ikeSA) signalWaiters(terminate bool, err error) {
	kept := sa.waiters[:0]
	for _, w := range sa.waiters {
		if w.terminate == terminate {
			signal(w.ch, err)
		} else {
			kept = append(kept, w)
		}
	}
	clear(sa.waiters[len(kept):])
	if sa.waiters = kept; len(kept) == 0 {
		sa.waiters = nil
	}
}

// ikeSA is one IKE SA. Only the engine's loop goroutine touches it.
//
// A gateway holds one per tunnel, so the small fields are grouped at the
// end where they pack without padding, and the rarely used waiters share
// one slice: that keeps the struct in the Go allocator's 704-byte size
// class (it was 896).
type ikeSA struct {
	e     *Engine
	conn  *Connection
	cands []*Connection // responder: connections the IKE_SA_INIT could belong to
	spiI  uint64
	spiR  uint64

	local, remote netip.AddrPort

	sel  selected
	prf  crypto.PRF
	keys *crypto.IKEKeys
	// The SK payload protectors are built from keys for each message and
	// destroyed after it (see sealer and opener): an idle IKE SA, which is
	// what a gateway holds most of, keeps no cipher state. out is kept only
	// once outSeals reaches maxRandomIVSeals.
	out      crypto.Protector
	ni, nr   []byte
	kex      crypto.KeyExchange
	initReq  []byte // IKE_SA_INIT request as sent or received; nil once established
	initResp []byte

	peerHashes []iana.HashAlgorithm // from SIGNATURE_HASH_ALGORITHMS; nil if none
	remoteID   Identity

	pending *pendingRequest
	queue   []task

	lastResp [][]byte // our last response, or its fragments

	frags *fragState // fragmented messages being reassembled; nil if none

	children []*childSA
	created  time.Time
	estab    time.Time
	hoKey    halfOpenKey
	hoTimer  *time.Timer

	waiters []waiter // Initiate and Terminate callers

	// IKE SA rekeying (§2.18): our rekey in flight, and the IKE SA the
	// peer's rekey created, to which the Child SAs move when the peer
	// deletes this one.
	ikeRekey     *ikeRekeyTask
	ikeSuccessor *ikeSA

	lastRecv time.Duration // when the last authenticated message from the peer came, since created (DPD)
	espSeen  uint64        // packets delivered by its inbound Child SAs at the last DPD check
	dpdPrev  time.Duration // when that check ran, since created
	timers   []*time.Timer // lifetime timers
	retry    *time.Timer   // the pending IKE rekey retry
	dpdTimer *time.Timer

	outSeals uint32       // messages sealed under keys by per-message protectors
	nextMID  uint32       // our next request's message ID
	peerMID  uint32       // the peer's next request's message ID
	dhGroup  iana.GroupID // the group the initiator offers in KE

	state     State
	initiator bool
	// natLocal: we are behind a NAT; natRemote: the peer is (or claims to
	// be, as strongSwan's kernel-libipsec does to force UDP encapsulation).
	natLocal, natRemote bool
	// natHere: NAT detection found a NAT in front of us (natLocal may
	// also be set by ForceEncap without one).
	natHere       bool
	haveLastResp  bool
	halfOpen      bool
	replaced      bool // its Child SAs moved to a new IKE SA; it only waits for deletion
	restartOnFail bool // a DPD restart: keep trying until it works
	fragment      bool // both ends support RFC 7383 fragmentation
}

func (sa *ikeSA) localSPI() uint64 {
	if sa.initiator {
		return sa.spiI
	}
	return sa.spiR
}

func (sa *ikeSA) name() string {
	if sa.conn != nil {
		return sa.conn.Name
	}
	return "(unknown)"
}

func (sa *ikeSA) logID() string {
	return fmt.Sprintf("%s[%016x_i %016x_r]", sa.name(), sa.spiI, sa.spiR)
}

func randomSPI() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// natt reports whether the SA has moved to the NAT-T port.
func (sa *ikeSA) natt() bool {
	_, np := sa.e.conn.Ports()
	return sa.local.Port() == np
}

// floatToNATT moves the SA to the NAT-T ports (RFC 7296 §2.23): the
// initiator does so once it detects a NAT, before sending IKE_AUTH.
func (sa *ikeSA) floatToNATT() {
	_, np := sa.e.conn.Ports()
	rp := sa.e.remoteNATTPort(sa.conn)
	sa.local = netip.AddrPortFrom(sa.local.Addr(), np)
	sa.remote = netip.AddrPortFrom(sa.remote.Addr(), rp)
}

// encode builds a message of this SA; everything but IKE_SA_INIT goes in
// an SK payload sealed with our outbound keys. It returns the datagrams to
// send: the message, or its fragments when fragmentation was negotiated
// and the message does not fit in one datagram of the fragment size.
func (sa *ikeSA) encode(exch message.ExchangeType, response bool, mid uint32, payloads []message.Payload) ([][]byte, error) {
	h := message.Header{SPIi: sa.spiI, SPIr: sa.spiR, Exchange: exch, MessageID: mid}
	if sa.initiator {
		h.Flags |= message.FlagInitiator
	}
	if response {
		h.Flags |= message.FlagResponse
	}
	if exch == message.ExchangeIKESAInit {
		m := message.Message{Header: h, Payloads: payloads}
		b, err := m.Encode()
		if err != nil {
			return nil, err
		}
		return [][]byte{b}, nil
	}
	out, done, err := sa.sealer()
	if err != nil {
		return nil, err
	}
	defer done()
	inner, first, err := message.AppendPayloads(nil, payloads)
	if err != nil {
		return nil, err
	}
	defer crypto.Zero(inner)
	bodyLen := out.SealedLen(len(inner))
	m := message.Message{Header: h, Payloads: message.Payloads{&message.Encrypted{NextPayload: first, Body: make([]byte, bodyLen)}}}
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	prefix := b[:len(b)-bodyLen]
	if exch == message.ExchangeIKEIntermediate && sa.state == StateConnecting {
		// RFC 9242 §3.3.2: IntAuth covers the message as if unfragmented,
		// so it is folded before any fragmentation.
		sa.foldIntAuth(sa.initiator, prefix, inner)
	}
	if sa.fragment {
		if maxLen := sa.maxMessageLen(); message.HeaderLen+4+bodyLen > maxLen {
			msgs, err := sealFragments(h, first, inner, out, maxLen)
			if err != nil {
				return nil, fmt.Errorf("fragment %v: %w", exch, err)
			}
			return msgs, nil
		}
	}
	msg := make([]byte, 0, len(b))
	msg = append(msg, prefix...)
	if msg, err = out.Seal(msg, prefix, inner); err != nil {
		return nil, err
	}
	return [][]byte{msg}, nil
}

// maxRandomIVSeals bounds how many messages one IKE SA key seals with
// per-message protectors. Each new Protector starts its IV counter at a
// fresh random 64-bit mask, so those IVs are unique only with high
// probability: after n of them two collide with probability about
// n²/2^65, 2^-41 for n = 2^12. Past the bound the SA keeps one protector,
// whose IVs are a counter and never repeat among themselves. An IKE SA
// rarely sends that many messages before it is rekeyed (new keys, new
// count); a DPD every 30 s takes 34 hours to get there.
const maxRandomIVSeals = 1 << 12

// sealer returns the protector for a message this end sends and a func to
// call once the message is sealed.
func (sa *ikeSA) sealer() (crypto.Protector, func(), error) {
	if sa.out != nil {
		return sa.out, func() {}, nil
	}
	if sa.keys == nil {
		return nil, nil, errors.New("no keys to protect the message")
	}
	p, err := sa.protector(true)
	if err != nil {
		return nil, nil, err
	}
	if sa.outSeals++; sa.outSeals >= maxRandomIVSeals {
		sa.out = p
		return p, func() {}, nil
	}
	return p, p.Destroy, nil
}

// opener returns a protector for one received message; the caller
// destroys it after use. Opening keeps no state between messages, so a
// fresh protector for each costs one key schedule and nothing else.
func (sa *ikeSA) opener() (crypto.Protector, error) {
	if sa.keys == nil {
		return nil, errors.New("no keys yet")
	}
	return sa.protector(false)
}

// protector builds the SK payload protector for one direction from the
// IKE SA's keys: the initiator sends with SK_ei/SK_ai and the responder
// with SK_er/SK_ar (RFC 7296 §2.14).
func (sa *ikeSA) protector(outbound bool) (crypto.Protector, error) {
	k := sa.keys
	enc, integ := k.SKei, k.SKai
	if sa.initiator != outbound {
		enc, integ = k.SKer, k.SKar
	}
	p, err := crypto.NewProtector(k.Suite, enc, integ)
	if err != nil {
		return nil, fmt.Errorf("IKE protector: %w", err)
	}
	return p, nil
}

// checkProtectors runs whenever the IKE SA gets keys: it drops a protector
// kept for the old ones and checks that the suite can protect messages, so
// a bad one fails the exchange that derived the keys rather than the first
// message. It builds no protector: the keys come from the suite, so their
// lengths fit, and a trial build would only leave garbage beside the SAs
// being set up (heap fragmentation is resident memory too).
func (sa *ikeSA) checkProtectors() error {
	if sa.out != nil {
		sa.out.Destroy()
		sa.out = nil
	}
	sa.outSeals = 0
	return sa.keys.Suite.ValidateCipher()
}

// decrypt opens the SK payload of a received message and decodes the
// payloads inside.
func (sa *ikeSA) decrypt(raw []byte, m *message.Message) (message.Payloads, error) {
	if len(m.Payloads) == 0 {
		return nil, errors.New("no encrypted payload")
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*message.Encrypted)
	if !ok {
		return nil, errors.New("no encrypted payload")
	}
	in, err := sa.opener()
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	lay, err := message.LocateEncrypted(raw, in.IVLen(), in.ICVLen())
	if err != nil {
		return nil, err
	}
	body := raw[len(lay.AssociatedData):]
	plain, err := in.Open(nil, lay.AssociatedData, body)
	if err != nil {
		return nil, err
	}
	defer crypto.Zero(plain)
	if m.Exchange == message.ExchangeIKEIntermediate && sa.state == StateConnecting {
		sa.foldIntAuth(!sa.initiator, lay.AssociatedData, plain)
	}
	return message.DecodePayloads(sk.NextPayload, plain)
}

// send sends a message, or all its fragments, to the peer.
func (sa *ikeSA) send(msgs [][]byte) {
	sa.sendTo(msgs, sa.local, sa.remote)
}

func (sa *ikeSA) sendTo(msgs [][]byte, local, remote netip.AddrPort) {
	if len(msgs) > 1 {
		sa.e.frag.messagesSent.Add(1)
		sa.e.frag.fragmentsSent.Add(uint64(len(msgs)))
	}
	sa.sentOnFlow(local, remote)
	for _, raw := range msgs {
		if err := sa.e.conn.Send(transport.Packet{Data: raw, Local: local, Remote: remote}); err != nil {
			if sa.e.debugQuiet(noisyDropped) {
				sa.e.log.Debug("send failed", "sa", sa.logID(), "err", err)
			}
		}
	}
}

// enqueue adds a task and starts it if the SA is idle.
func (sa *ikeSA) enqueue(t task) {
	sa.queue = append(sa.queue, t)
	sa.next()
}

// enqueueFirst puts t ahead of the queued tasks: the Delete that completes
// a rekey must not wait behind unrelated work.
func (sa *ikeSA) enqueueFirst(t task) {
	sa.queue = append([]task{t}, sa.queue...)
	sa.next()
}

// next starts the next queued task when no request is outstanding.
func (sa *ikeSA) next() {
	for sa.pending == nil && len(sa.queue) > 0 && sa.state != StateDead && !sa.e.isStandby(sa) {
		t := sa.queue[0]
		sa.queue = sa.queue[1:]
		if err := sa.start(t, sa.nextMID); err != nil {
			if errors.Is(err, errSkipTask) {
				continue
			}
			sa.e.log.Error("cannot build request", "sa", sa.logID(), "exchange", t.exchange(), "err", err)
			sa.fail(err)
			return
		}
	}
}

func (sa *ikeSA) start(t task, mid uint32) error {
	payloads, err := t.build(sa)
	if err != nil {
		return err
	}
	raw, err := sa.encode(t.exchange(), false, mid, payloads)
	if err != nil {
		return fmt.Errorf("encode %v: %w", t.exchange(), err)
	}
	if t.exchange() == message.ExchangeIKESAInit {
		sa.initReq = raw[0]
	}
	sa.nextMID = mid + 1
	sa.e.markExport(sa, true) // a standby needs the request to resend it (see Activate)
	p := &pendingRequest{task: t, mid: mid, raw: raw}
	sa.pending = p
	sa.transmit(p)
	return nil
}

// transmit sends (or resends) the pending request and arms the timer for
// the next retransmission (RFC 7296 §2.1): the wait grows by the back-off
// base each time, and after the last try the IKE SA is given up.
func (sa *ikeSA) transmit(p *pendingRequest) {
	rt := sa.e.retransmit
	if p.sends > rt.Tries {
		sa.e.log.Warn("giving up after retransmissions", "sa", sa.logID(), "exchange", p.task.exchange(), "tries", rt.Tries, "peer", sa.remote)
		sa.peerDead(fmt.Errorf("peer %v did not answer %v", sa.remote, p.task.exchange()))
		return
	}
	if p.sends > 0 {
		sa.e.log.Info("retransmit", "sa", sa.logID(), "exchange", p.task.exchange(), "message_id", p.mid, "try", p.sends)
	}
	sa.send(p.raw)
	d := rt.delay(p.sends)
	p.sends++
	p.timer = sa.e.afterFunc(d, func() {
		if sa.pending == p && sa.state != StateDead {
			sa.transmit(p)
		}
	})
}

// handleResponse matches a response with our outstanding request.
func (sa *ikeSA) handleResponse(raw []byte, m *message.Message, from transport.Packet) {
	p := sa.pending
	if p == nil || m.MessageID != p.mid || m.Exchange != p.task.exchange() && !anyExchange(p.task) {
		return // a late retransmission, or garbage
	}
	var payloads message.Payloads
	if m.Exchange == message.ExchangeIKESAInit {
		payloads = m.Payloads
	} else {
		var err error
		var complete bool
		payloads, complete, err = sa.openMessage(raw, m, fragResponse)
		if !complete {
			if err != nil && sa.e.debugQuiet(noisyDropped) {
				sa.e.log.Debug("dropping response fragment", "sa", sa.logID(), "err", err)
			}
			return // the retransmission timer still runs
		}
		if err != nil {
			var crit *message.UnsupportedCriticalPayloadError
			if !errors.As(err, &crit) {
				if sa.e.debugQuiet(noisyDropped) {
					sa.e.log.Debug("dropping response", "sa", sa.logID(), "err", err)
				}
				return
			}
			sa.e.log.Warn("response carries an unsupported critical payload", "sa", sa.logID(), "payload", crit.Type)
			sa.stopPending()
			sa.fail(err)
			return
		}
		sa.followPeer(from)
		sa.lastRecv = sa.e.now().Sub(sa.created)
	}
	sa.stopPending()
	sa.e.markExport(sa, false) // no request in flight any more
	if m.Exchange == message.ExchangeIKESAInit {
		sa.initResp = raw
	}
	err := p.task.process(sa, payloads)
	switch {
	case errors.Is(err, errRestart):
		// IKE_SA_INIT again with message ID 0 (RFC 7296 §1.2: the retry is a
		// new IKE_SA_INIT exchange).
		if err := sa.start(p.task, p.mid); err != nil {
			sa.fail(err)
		}
		return
	case err != nil:
		if !errors.Is(err, errSilentFail) {
			sa.e.log.Warn("exchange failed", "sa", sa.logID(), "exchange", m.Exchange, "err", err)
		}
		sa.fail(err)
		return
	}
	sa.next()
}

func (sa *ikeSA) stopPending() {
	if sa.pending != nil && sa.pending.timer != nil {
		sa.pending.timer.Stop()
	}
	sa.pending = nil
	// Fragments of a response to it can no longer complete anything.
	sa.dropReassembly(fragResponse)
}

// followPeer updates the peer's address after a new authenticated
// message from another one, as RFC 7296 §2.23 allows and only then: when
// the peer floats to the NAT-T port after NAT detection found a NAT, or
// when the peer is behind a NAT (whose mapping may change) and we are not.
// Without a NAT the address stays: a peer's addresses do not change
// without one (MOBIKE is not supported), and following would let anyone
// who can race a copy of an authenticated message from another source
// move the IKE SA and its Child SAs there.
func (sa *ikeSA) followPeer(from transport.Packet) {
	if from.Remote == sa.remote && from.Local == sa.local {
		return
	}
	_, np := sa.e.conn.Ports()
	float := from.Local.Port() == np && !sa.natt()
	switch {
	case float && (sa.natRemote || sa.natLocal):
		if sa.e.quiet.allow(noisyFloat) {
			sa.e.log.Info("peer floated to NAT-T", "sa", sa.logID(), "from", sa.remote, "to", from.Remote)
		}
		sa.natRemote = true
	case sa.natRemote && !sa.natHere && !float && from.Local.Port() == sa.local.Port():
		if sa.e.quiet.allow(noisyFloat) {
			sa.e.log.Info("peer's address changed behind its NAT", "sa", sa.logID(), "from", sa.remote, "to", from.Remote)
		}
	default:
		sa.e.flood.addressIgnored.Add(1)
		if sa.e.quiet.allow(noisyFloat) {
			sa.e.log.Info("authenticated message from another address without a NAT, not moving the IKE SA", "sa", sa.logID(), "remote", sa.remote, "from", from.Remote)
		}
		return
	}
	sa.local, sa.remote = from.Local, from.Remote
	sa.e.markExport(sa, true)
	sa.moveChildren()
}

// handleRequest answers a request of the peer. A retransmitted request
// gets the cached response; a request with any other unexpected ID is
// dropped (RFC 7296 §2.3).
func (sa *ikeSA) handleRequest(raw []byte, m *message.Message, from transport.Packet) {
	if sa.haveLastResp && m.MessageID+1 == sa.peerMID {
		if f := lastFragment(m); f != nil && f.Number != 1 {
			// RFC 7383 §2.6.1: of a retransmitted fragmented request only
			// fragment 1 triggers the resend, or every fragment would.
			return
		}
		// Anyone who saw the SPIs and the message ID could otherwise have
		// us resend the whole response, every fragment of it, for one
		// forged datagram. Not checkable: IKE_SA_INIT (unprotected) and
		// IKE_INTERMEDIATE, whose request is protected by the keys before
		// the ones its exchange derived (RFC 9370 §2.2.2); both answers
		// are about the size of the request.
		if m.Exchange != message.ExchangeIKESAInit && m.Exchange != message.ExchangeIKEIntermediate && !sa.authentic(raw) {
			sa.e.flood.forgedRetransmits.Add(1)
			return
		}
		if sa.e.debugQuiet(noisyResent) {
			sa.e.log.Debug("retransmitted request, resending response", "sa", sa.logID(), "message_id", m.MessageID)
		}
		sa.sendTo(sa.lastResp, from.Local, from.Remote)
		return
	}
	if m.MessageID != sa.peerMID && !sa.e.resyncRequest(sa, m.MessageID) || m.Exchange == message.ExchangeIKESAInit {
		return
	}
	payloads, complete, err := sa.openMessage(raw, m, fragRequest)
	if !complete {
		if err != nil && sa.e.debugQuiet(noisyDropped) {
			sa.e.log.Debug("dropping request fragment", "sa", sa.logID(), "err", err)
		}
		return
	}
	var crit *message.UnsupportedCriticalPayloadError
	if err != nil && !errors.As(err, &crit) {
		if sa.e.debugQuiet(noisyDropped) {
			sa.e.log.Debug("dropping request", "sa", sa.logID(), "err", err)
		}
		return
	}
	sa.e.resynced(sa, m.MessageID)
	sa.followPeer(from)
	sa.lastRecv = sa.e.now().Sub(sa.created)
	if sa.state == StateEstablished && crit == nil && childWork(m.Exchange, payloads) {
		sa.adoptFromPredecessor()
	}
	var resp []message.Payload
	var after func()
	switch {
	case crit != nil:
		if sa.e.quiet.allow(noisyCritical) {
			sa.e.log.Warn("request carries an unsupported critical payload", "sa", sa.logID(), "payload", crit.Type)
		}
		resp = []message.Payload{notify(message.NotifyUnsupportedCriticalPayload, []byte{byte(crit.Type)})}
	case m.Exchange == message.ExchangeIKEIntermediate && sa.state == StateConnecting && !sa.initiator:
		resp, after = respondIntermediate(sa, payloads)
	case m.Exchange == message.ExchangeIKEAuth && sa.state == StateConnecting && !sa.initiator:
		resp, after = respondAuth(sa, payloads)
	case m.Exchange == message.ExchangeInformational && sa.state != StateConnecting:
		resp, after = respondInformational(sa, payloads)
	case m.Exchange == message.ExchangeCreateChildSA && sa.state != StateConnecting:
		resp, after = respondCreateChild(sa, payloads)
	case m.Exchange == message.ExchangeIKEFollowupKE && sa.state != StateConnecting:
		resp, after = respondFollowupKE(sa, payloads)
	default:
		return
	}
	out, err := sa.encode(m.Exchange, true, m.MessageID, resp)
	if err != nil {
		sa.e.log.Error("cannot encode response", "sa", sa.logID(), "err", err)
		return
	}
	sa.peerMID++
	sa.lastResp, sa.haveLastResp = out, true
	sa.e.markExport(sa, false)
	// To where the request came from (RFC 7296 §2.11), which is the SA's
	// address unless followPeer declined to move there.
	sa.sendTo(out, from.Local, from.Remote)
	if after != nil {
		after()
	}
}

func notify(t message.NotifyType, data []byte) *message.Notify {
	return &message.Notify{NotifyType: t, Data: data}
}

// fail ends the IKE SA after an error, telling whoever waits on it.
func (sa *ikeSA) fail(err error) {
	sa.signalWaiters(false, err)
	restart := sa.restartOnFail && sa.state != StateEstablished && sa.state != StateDead
	sa.destroy()
	if restart {
		sa.e.scheduleRestart(sa.conn)
	}
}

// destroy removes the IKE SA and its Child SAs and wipes their keys.
func (sa *ikeSA) destroy() {
	if sa.state == StateDead {
		return
	}
	sa.state = StateDead
	sa.leaveStandby()
	sa.e.markExport(sa, true)
	if p := sa.pending; p != nil {
		switch t := p.task.(type) {
		case *createChildTask:
			t.drop(sa)
		case *intermediateTask:
			if t.kex != nil {
				t.kex.Destroy()
			}
		case *followupKETask:
			if t.kex != nil {
				t.kex.Destroy()
			}
		}
	}
	sa.e.dropFollowup(sa, true)
	sa.stopPending()
	sa.dropReassembly(fragRequest)
	if sa.hoTimer != nil {
		sa.hoTimer.Stop()
	}
	sa.stopTimers()
	sa.dropTasks(errors.New("IKE SA deleted"))
	for _, c := range slices.Clone(sa.children) {
		sa.e.deleteChild(sa, c)
	}
	sa.children = nil
	sa.signalWaiters(false, errors.New("IKE SA deleted"))
	sa.signalWaiters(true, nil)
	if sa.kex != nil {
		sa.kex.Destroy()
	}
	if sa.keys != nil {
		sa.keys.Destroy()
	}
	if sa.out != nil {
		sa.out.Destroy()
		sa.out = nil
	}
	delete(sa.e.hybrid, sa)
	sa.stopKeepalive()
	sa.e.forget(sa)
}

// stopTimers stops the IKE SA's lifetime, rekey-retry and DPD timers.
func (sa *ikeSA) stopTimers() {
	for _, t := range sa.timers {
		t.Stop()
	}
	sa.timers = nil
	if sa.retry != nil {
		sa.retry.Stop()
		sa.retry = nil
	}
	if sa.dpdTimer != nil {
		sa.dpdTimer.Stop()
	}
}

// dropTasks abandons the queued tasks and our IKE SA rekey in flight.
func (sa *ikeSA) dropTasks(err error) {
	for _, t := range sa.queue {
		switch t := t.(type) {
		case *createChildTask:
			t.drop(sa)
		case *ikeRekeyTask:
			t.finish(sa, err)
		}
	}
	sa.queue = nil
	if sa.ikeRekey != nil {
		if n := sa.ikeRekey.next; n != nil && n.state != StateEstablished {
			n.destroy()
		}
		sa.ikeRekey.finish(sa, err)
	}
}

// signal reports an outcome to a waiter without ever blocking the loop: a
// waiter's channel has room for one result, and a caller that gave up (or
// already heard from another path) must not stall every IKE SA.
func signal(w chan error, err error) {
	if w == nil {
		return
	}
	select {
	case w <- err:
	default:
	}
}

// unauthenticated reports whether sa is a responder IKE SA that has not
// finished IKE_AUTH. Anyone who can send from the peer's address can make
// one (its connection is only the first that matches the addresses), so it
// must not count as the connection being up or on its way: a spoofed
// IKE_SA_INIT would otherwise hold off acquires and restarts.
func (sa *ikeSA) unauthenticated() bool {
	return !sa.initiator && sa.halfOpen
}

// authentic reports whether raw, a protected message or fragment from the
// peer, passes its integrity check under this IKE SA's keys.
func (sa *ikeSA) authentic(raw []byte) bool {
	in, err := sa.opener()
	if err != nil {
		return false
	}
	defer in.Destroy()
	lay, err := message.LocateEncrypted(raw, in.IVLen(), in.ICVLen())
	if err != nil {
		return false
	}
	plain, err := in.Open(nil, lay.AssociatedData, raw[len(lay.AssociatedData):])
	if err != nil {
		return false
	}
	crypto.Zero(plain)
	return true
}
