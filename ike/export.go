package ike

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// Cluster support (issue 11, docs/cluster.md): the engine of a group's
// active node exports each established IKE SA whenever it changes
// (Config.Export); a standby engine holds the exported SAs passively
// (Import) and continues them after a takeover (Activate), without a new
// IKE_SA_INIT.
//
// A passive IKE SA answers nothing, sends nothing and runs no timers; its
// Child SAs are bookkeeping only (the data plane gets their keys from the
// cluster's Child SA records, never from this engine), so importing,
// replacing or dropping one never calls the Installer.

// IKESAState is an established IKE SA as a standby needs it to continue:
// everything but the tasks in flight. It holds the IKE SA's keys: it
// travels only sealed (internal/cluster), is never logged, and its owner
// wipes it (Wipe) once used.
type IKESAState struct {
	Connection    string
	Initiator     bool
	SPIi, SPIr    uint64
	Local, Remote netip.AddrPort

	// The negotiated algorithms.
	Encr       iana.EncrID
	KeyBits    uint16
	Integ      iana.IntegID
	PRF        iana.PRFID
	DH         iana.GroupID
	AddKE      [maxAddKE]uint8 // RFC 9370 methods by ADDKE slot, 0: none
	AddKESlots uint8

	// The keys (RFC 7296 §2.14) and the nonces of the exchange that made them.
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
	Ni, Nr                                  []byte

	// NextMID is our next request's message ID, PeerMID the peer's next
	// one's; LastResponse our response to the peer's request PeerMID-1
	// (as sent: encrypted, fragments each), for its retransmissions.
	NextMID, PeerMID uint32
	LastResponse     [][]byte
	// PendingRequest is our request in flight (as sent, fragments each),
	// whose message ID is NextMID-1; nil if none. A standby retransmits
	// it bitwise (RFC 7296 §2.1: a peer resends its cached response only
	// to an identical request; strongSwan ignores any other).
	PendingRequest [][]byte

	// NAT state (natLocal, natRemote, natHere) and RFC 7383 fragmentation.
	NATLocal, NATRemote, NATHere, Fragment bool

	RemoteID             Identity
	Created, Established time.Time
	Children             []ChildSAState

	// Urgent: the state follows a change of keys, addresses or Child SAs,
	// to be written at once; otherwise only message IDs moved, which a
	// writer may coalesce (a standby tolerates a lag of one exchange each
	// way, see Activate).
	Urgent bool
	// Deleted: the IKE SA is gone; only Connection and the SPIs are set.
	Deleted bool
}

// ChildSAState is a Child SA of an exported IKE SA, without keys (the data
// plane's records carry them).
type ChildSAState struct {
	Name                 string // the ChildConfig's
	InSPI, OutSPI, ReqID uint32
	Mode                 sad.Mode
	Encap                sad.UDPEncap
	Encr                 iana.EncrID
	KeyBits              uint16
	Integ                iana.IntegID
	DH                   iana.GroupID
	ESN                  bool
	LocalTS, RemoteTS    []message.TrafficSelector
	Created              time.Time
}

// Wipe clears the state's keys.
func (s *IKESAState) Wipe() {
	for _, k := range [][]byte{s.SKd, s.SKai, s.SKar, s.SKei, s.SKer, s.SKpi, s.SKpr} {
		crypto.Zero(k)
	}
	s.SKd, s.SKai, s.SKar, s.SKei, s.SKer, s.SKpi, s.SKpr = nil, nil, nil, nil, nil, nil, nil
}

// LocalSPI is the SPI this end chose.
func (s *IKESAState) LocalSPI() uint64 {
	if s.Initiator {
		return s.SPIi
	}
	return s.SPIr
}

// exporter is the engine's cluster state: the export hook and the SAs
// changed since the last flush, the SAs exported (a Deleted follows them),
// and the passive (standby) SAs with those activated but not yet resynced.
type exporter struct {
	hook  func(IKESAState)
	dirty map[*ikeSA]bool // value: urgent
	known map[*ikeSA]bool
	// standby are imported SAs held passively; resync are SAs activated
	// whose peer may be one request ahead of the imported PeerMID.
	standby map[*ikeSA]bool
	resync  map[*ikeSA]bool
	// resend is a passive SA's imported request in flight.
	resend map[*ikeSA][][]byte
}

// isStandby reports whether sa is held passively.
func (e *Engine) isStandby(sa *ikeSA) bool { return e.exp.standby[sa] }

// markExport notes that sa changed; the loop exports it after the event.
func (e *Engine) markExport(sa *ikeSA, urgent bool) {
	if e.exp.hook == nil || sa == nil || e.exp.standby[sa] {
		return
	}
	if e.exp.dirty == nil {
		e.exp.dirty = map[*ikeSA]bool{}
		e.exp.known = map[*ikeSA]bool{}
	}
	e.exp.dirty[sa] = e.exp.dirty[sa] || urgent
}

// flushExports hands the hook the SAs changed by the last event.
func (e *Engine) flushExports() {
	if len(e.exp.dirty) == 0 {
		return
	}
	for sa, urgent := range e.exp.dirty {
		delete(e.exp.dirty, sa)
		switch {
		case sa.state == StateDead:
			if e.exp.known[sa] {
				delete(e.exp.known, sa)
				e.exp.hook(IKESAState{Connection: sa.name(), Initiator: sa.initiator, SPIi: sa.spiI, SPIr: sa.spiR, Deleted: true, Urgent: true})
			}
		case (sa.state == StateEstablished || sa.state == StateDeleting) && sa.keys != nil && sa.conn != nil:
			e.exp.known[sa] = true
			e.exp.hook(sa.export(urgent))
		}
	}
}

// export copies the IKE SA's state (keys included).
func (sa *ikeSA) export(urgent bool) IKESAState {
	k := sa.keys
	s := IKESAState{
		Connection: sa.name(), Initiator: sa.initiator, SPIi: sa.spiI, SPIr: sa.spiR, Local: sa.local, Remote: sa.remote,
		Encr: sa.sel.Encr.ID, KeyBits: uint16(sa.sel.Encr.KeyBits), Integ: sa.sel.Integ, PRF: sa.sel.PRF, DH: sa.sel.DH,
		AddKE: sa.sel.addKE, AddKESlots: sa.sel.addKESlots,
		SKd: slices.Clone(k.SKd), SKai: slices.Clone(k.SKai), SKar: slices.Clone(k.SKar), SKei: slices.Clone(k.SKei),
		SKer: slices.Clone(k.SKer), SKpi: slices.Clone(k.SKpi), SKpr: slices.Clone(k.SKpr),
		Ni: slices.Clone(sa.ni), Nr: slices.Clone(sa.nr),
		NextMID: sa.nextMID, PeerMID: sa.peerMID,
		NATLocal: sa.natLocal, NATRemote: sa.natRemote, NATHere: sa.natHere, Fragment: sa.fragment,
		RemoteID: Identity{sa.remoteID.Type, slices.Clone(sa.remoteID.Data)},
		Created:  sa.created, Established: sa.estab, Urgent: urgent,
	}
	if sa.haveLastResp {
		for _, m := range sa.lastResp {
			s.LastResponse = append(s.LastResponse, slices.Clone(m))
		}
	}
	if p := sa.pending; p != nil && p.mid+1 == sa.nextMID {
		for _, m := range p.raw {
			s.PendingRequest = append(s.PendingRequest, slices.Clone(m))
		}
	}
	for _, c := range sa.children {
		if c.state == childDead || c.state == childRekeyed || c.replaced || !c.installed || !c.outInst {
			continue // going, or not yet both halves: a standby does without it
		}
		s.Children = append(s.Children, ChildSAState{
			Name: c.cfg.Name, InSPI: c.inSPI, OutSPI: c.outSPI, ReqID: c.reqID, Mode: c.mode, Encap: c.encap,
			Encr: c.sel.Encr.ID, KeyBits: uint16(c.sel.Encr.KeyBits), Integ: c.sel.Integ, DH: c.sel.DH, ESN: c.sel.ESN,
			LocalTS: slices.Clone(c.localTS), RemoteTS: slices.Clone(c.remoteTS), Created: c.created,
		})
	}
	return s
}

// Import makes the engine hold st passively (a standby): it replaces an
// SA imported earlier under the same SPI, and a Deleted st drops it. It
// fails for an SA this engine runs itself, an unknown connection or Child
// SA, or keys that do not fit the algorithms. st's keys are copied; the
// caller still wipes st.
func (e *Engine) Import(st IKESAState) error {
	var err error
	if !e.do(context.Background(), func() { err = e.importSA(st) }) {
		return errors.New("ike: engine closed")
	}
	return err
}

func (e *Engine) importSA(st IKESAState) error {
	old := e.sas[st.LocalSPI()]
	if old != nil && !e.isStandby(old) {
		return fmt.Errorf("%w: %016x_i %016x_r", ErrActiveHere, st.SPIi, st.SPIr)
	}
	if st.Deleted {
		if old != nil {
			e.dropStandby(old)
		}
		return nil
	}
	conn := e.connection(st.Connection)
	if conn == nil {
		return fmt.Errorf("ike: import: no connection %q", st.Connection)
	}
	sel := selected{Encr: Encr{ID: st.Encr, KeyBits: int(st.KeyBits)}, Integ: st.Integ, PRF: st.PRF, DH: st.DH, addKE: st.AddKE, addKESlots: st.AddKESlots}
	prf, err := crypto.NewPRF(st.PRF)
	if err != nil {
		return fmt.Errorf("ike: import: %w", err)
	}
	keys, err := crypto.ImportIKEKeys(sel.Suite(), st.SKd, st.SKai, st.SKar, st.SKei, st.SKer, st.SKpi, st.SKpr)
	if err != nil {
		return fmt.Errorf("ike: import: %w", err)
	}
	var children []*childSA
	for _, cs := range st.Children {
		var cfg *ChildConfig
		for i := range conn.Children {
			if conn.Children[i].Name == cs.Name {
				cfg = &conn.Children[i]
			}
		}
		if cfg == nil {
			keys.Destroy()
			return fmt.Errorf("ike: import: connection %s has no child %q", conn.Name, cs.Name)
		}
		children = append(children, &childSA{
			cfg: cfg, sel: selected{Encr: Encr{ID: cs.Encr, KeyBits: int(cs.KeyBits)}, Integ: cs.Integ, DH: cs.DH, ESN: cs.ESN},
			localTS: slices.Clone(cs.LocalTS), remoteTS: slices.Clone(cs.RemoteTS), created: cs.Created,
			inSPI: cs.InSPI, outSPI: cs.OutSPI, reqID: cs.ReqID, encap: cs.Encap, mode: cs.Mode,
			installed: true, outInst: true,
		})
	}
	if old != nil {
		e.dropStandby(old)
	}
	sa := &ikeSA{e: e, conn: conn, initiator: st.Initiator, spiI: st.SPIi, spiR: st.SPIr, local: st.Local, remote: st.Remote,
		sel: sel, prf: prf, keys: keys, ni: slices.Clone(st.Ni), nr: slices.Clone(st.Nr),
		nextMID: st.NextMID, peerMID: st.PeerMID, natLocal: st.NATLocal, natRemote: st.NATRemote, natHere: st.NATHere,
		fragment: st.Fragment, remoteID: Identity{st.RemoteID.Type, slices.Clone(st.RemoteID.Data)},
		created: st.Created, estab: st.Established, state: StateEstablished}
	for _, m := range st.LastResponse {
		sa.lastResp = append(sa.lastResp, slices.Clone(m))
	}
	sa.haveLastResp = len(sa.lastResp) > 0
	if len(st.PendingRequest) > 0 && st.NextMID > 0 {
		var raw [][]byte
		for _, m := range st.PendingRequest {
			raw = append(raw, slices.Clone(m))
		}
		if e.exp.resend == nil {
			e.exp.resend = map[*ikeSA][][]byte{}
		}
		e.exp.resend[sa] = raw
	}
	kept := children[:0]
	for _, c := range children {
		same := func(x *childSA) bool { return x.inSPI == c.inSPI }
		// A state older than the IKE SA that holds the Child SA now (its
		// successor after an IKE rekey: a follower may get the records in
		// another order than they were written) does not take it back.
		moved := false
		for o := range e.exp.standby {
			moved = moved || o.estab.After(st.Established) && slices.ContainsFunc(o.children, same)
		}
		if moved {
			continue
		}
		// A Child SA that moved here (an IKE rekey) leaves the standby SA
		// that had it, whose Deleted may come later.
		for o := range e.exp.standby {
			o.children = slices.DeleteFunc(o.children, same)
		}
		c.ike = sa
		e.spis[c.inSPI] = struct{}{}
		kept = append(kept, c)
	}
	sa.children = kept
	if e.exp.standby == nil {
		e.exp.standby = map[*ikeSA]bool{}
	}
	e.exp.standby[sa] = true
	e.sas[sa.localSPI()] = sa
	return nil
}

// dropStandby forgets a passive SA without a word to the peer or the
// Installer.
func (e *Engine) dropStandby(sa *ikeSA) {
	for _, c := range sa.children {
		c.installed, c.outInst, c.state = false, false, childDead
		e.releaseSPI(c.inSPI)
	}
	sa.children = nil
	delete(e.exp.standby, sa)
	delete(e.exp.resend, sa)
	sa.state = StateDead
	if sa.keys != nil {
		sa.keys.Destroy()
	}
	e.forget(sa)
}

// leaveStandby runs when a passive SA is destroyed otherwise (Close): its
// Child SAs belong to the data plane's records, not to this engine.
func (sa *ikeSA) leaveStandby() {
	if !sa.e.isStandby(sa) {
		return
	}
	for _, c := range sa.children {
		c.installed, c.outInst = false, false
	}
	delete(sa.e.exp.standby, sa)
	delete(sa.e.exp.resync, sa)
	delete(sa.e.exp.resend, sa)
}

// Standby returns the number of IKE SAs held passively.
func (e *Engine) Standby() int {
	var n int
	e.do(context.Background(), func() { n = len(e.exp.standby) })
	return n
}

// Activate continues the passive IKE SAs of the connections for which
// take holds (nil: all), after this node took their group over. Each one
// runs its timers again (lifetimes and rekeys on what is left of them,
// DPD, NAT-T keepalives) and exports its changes from now on; its Child
// SAs rekey on their soft lifetimes.
//
// The message IDs it was imported with may be one exchange behind the
// peer's (the old active's last state was not replicated before it died;
// RFC 7296 §2.1 gives each end one request in flight). So:
//   - our side: a request of the old active in flight (PendingRequest, its
//     message ID NextMID-1) is retransmitted as it was sent: the peer
//     answers it from its cache if it had, afresh otherwise (RFC 7296
//     §2.1); the state of a request's start is urgent, so it is
//     replicated at once. Without one, the first request is an empty
//     INFORMATIONAL with NextMID (a liveness check, which a takeover calls
//     for anyway). Either way any authenticated response with that
//     message ID counts, of whatever exchange, and both ends agree on the
//     next one from then on (a request started by the old active and not
//     replicated at all leaves the peer ahead: it ignores the new request,
//     and dpd_action applies);
//   - the peer's side: the first request from the peer may carry PeerMID
//     or PeerMID+1 (its previous one answered by the old active after the
//     last replication); either is taken and answered afresh.
//
// It returns the number of IKE SAs activated.
func (e *Engine) Activate(take func(connection string) bool) int {
	var n int
	e.do(context.Background(), func() {
		for sa := range e.exp.standby {
			if take != nil && !take(sa.name()) {
				continue
			}
			delete(e.exp.standby, sa)
			n++
			e.activate(sa)
		}
	})
	return n
}

func (e *Engine) activate(sa *ikeSA) {
	if e.exp.resync == nil {
		e.exp.resync = map[*ikeSA]bool{}
	}
	e.exp.resync[sa] = true
	now := e.now()
	c := sa.conn
	sa.lastRecv = now.Sub(sa.created)
	age := now.Sub(sa.estab)
	if c.IKERekeyTime > 0 {
		sa.timers = append(sa.timers, e.afterFunc(max(jitter(c.IKERekeyTime)-age, 0), func() { e.rekeyIKE(sa, nil) }))
	}
	if c.IKELifetime > 0 {
		sa.timers = append(sa.timers, e.afterFunc(max(c.IKELifetime-age, 0), func() {
			if sa.state == StateEstablished {
				e.log.Info("IKE SA expired, deleting", "sa", sa.logID())
				sa.enqueueFirst(&deleteIKETask{})
			}
		}))
	}
	if c.DPDDelay > 0 {
		sa.espSeen = sa.inboundPackets()
		sa.dpdPrev = sa.lastRecv
		sa.dpdTimer = e.afterFunc(sa.dpdStep(c.DPDDelay), sa.dpdCheck)
	}
	sa.armKeepalive()
	for _, ch := range sa.children {
		lt := ch.cfg.Lifetime
		cage := now.Sub(ch.created)
		if lt.Soft.Time > 0 {
			ch.timers = append(ch.timers, e.afterFunc(max(jitter(lt.Soft.Time)-cage, 0), func() { e.softExpired(ch) }))
		}
		if lt.Hard.Time > 0 {
			ch.timers = append(ch.timers, e.afterFunc(max(lt.Hard.Time-cage, 0), func() { e.expireChild(ch, nil) }))
		}
	}
	e.log.Info("IKE SA taken over", "sa", sa.logID(), "remote", sa.remote, "next_mid", sa.nextMID, "peer_mid", sa.peerMID, "children", len(sa.children))
	e.markExport(sa, true)
	if raw := e.exp.resend[sa]; raw != nil {
		// The old active's request in flight, retransmitted as it was:
		// the peer answers it afresh or from its cache (§2.1).
		delete(e.exp.resend, sa)
		e.log.Info("takeover: retransmitting the old active's request in flight", "sa", sa.logID(), "message_id", sa.nextMID-1)
		p := &pendingRequest{task: &midProbeTask{}, mid: sa.nextMID - 1, raw: raw}
		sa.pending = p
		sa.transmit(p)
		return
	}
	sa.enqueueFirst(&midProbeTask{})
}

// midProbeTask is the first request of an IKE SA after a takeover: the
// old active's request in flight retransmitted bitwise, or else an empty
// INFORMATIONAL; its response may be the peer's cached answer to the old
// active's request of another exchange (see Activate).
type midProbeTask struct{}

func (*midProbeTask) exchange() message.ExchangeType          { return message.ExchangeInformational }
func (*midProbeTask) build(*ikeSA) ([]message.Payload, error) { return nil, nil }
func (*midProbeTask) process(*ikeSA, message.Payloads) error  { return nil }
func anyExchange(t task) bool                                 { _, ok := t.(*midProbeTask); return ok }

// resyncRequest reports whether a request with message ID mid may be taken
// although the SA expects the one before: the first request of the peer
// after a takeover (see Activate).
func (e *Engine) resyncRequest(sa *ikeSA, mid uint32) bool {
	return e.exp.resync[sa] && mid == sa.peerMID+1
}

// resynced ends the takeover's tolerance once an authenticated request
// came, and takes its message ID.
func (e *Engine) resynced(sa *ikeSA, mid uint32) {
	if !e.exp.resync[sa] {
		return
	}
	delete(e.exp.resync, sa)
	if mid != sa.peerMID {
		e.log.Info("takeover: the peer's request is one ahead of the replicated state", "sa", sa.logID(), "message_id", mid)
		sa.peerMID = mid
		sa.lastResp, sa.haveLastResp = nil, false
	}
}

// Ping sends a liveness check (an empty INFORMATIONAL, RFC 7296 §2.4) on
// each established IKE SA of the connection and waits for the answers:
// the DPD of the peer's side, on demand (tests, a takeover's check).
func (e *Engine) Ping(ctx context.Context, name string) error { return e.ping(ctx, name) }

// ErrActiveHere: Import refused a state of an IKE SA this engine runs
// itself (a node that owns the group follows nothing; one that just lost
// it calls Deactivate first).
var ErrActiveHere = errors.New("ike: IKE SA active here, not imported")

// Deactivate makes the established IKE SAs of the connections for which
// take holds (nil: all) passive, as if imported: after this node lost
// their group, the new owner answers their peers and the replicated state
// will replace them. Their exchanges in flight are abandoned, their
// timers stopped; IKE SAs of those connections not yet established are
// destroyed. Their Child SAs stay in the data plane (the group's gate
// stops them sending); this engine no longer touches them. It returns the
// number of IKE SAs made passive.
func (e *Engine) Deactivate(take func(connection string) bool) int {
	var n int
	e.do(context.Background(), func() {
		for _, sa := range slices.Collect(maps.Values(e.sas)) {
			if sa.state == StateDead || e.isStandby(sa) || sa.conn == nil || take != nil && !take(sa.name()) {
				continue
			}
			if sa.state != StateEstablished {
				sa.destroy()
				continue
			}
			n++
			e.deactivate(sa)
		}
	})
	return n
}

func (e *Engine) deactivate(sa *ikeSA) {
	err := errors.New("IKE SA handed to another cluster node")
	if p := sa.pending; p != nil {
		if t, ok := p.task.(*createChildTask); ok {
			t.drop(sa)
		}
	}
	sa.stopPending()
	sa.dropTasks(err)
	sa.stopTimers()
	sa.stopKeepalive()
	for _, c := range sa.children {
		c.stopTimers()
		c.state = childActive
	}
	sa.signalWaiters(false, err)
	delete(e.exp.dirty, sa)
	delete(e.exp.known, sa)
	delete(e.exp.resync, sa)
	if e.exp.standby == nil {
		e.exp.standby = map[*ikeSA]bool{}
	}
	e.exp.standby[sa] = true
	e.log.Info("IKE SA handed over, now passive", "sa", sa.logID())
}
