package ike

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// childSA is one negotiated ESP SA pair. Its keys are handed to the
// Installer and wiped; the engine keeps only what show and delete need.
type childSA struct {
	cfg      *ChildConfig
	sel      selected
	localTS  []message.TrafficSelector
	remoteTS []message.TrafficSelector
	// Keying of a Child SA made by CREATE_CHILD_SA: that exchange's nonces
	// and key exchange output, and whether we initiated it (ourRequest,
	// below; it decides the direction of the first keys, RFC 7296 §2.17).
	// The IKE_AUTH Child SA uses the IKE SA's nonces and roles instead.
	// secret is wiped once the keys are derived.
	ni, nr []byte
	secret []byte
	// outKeys holds the outbound keys between the installation of the
	// inbound half and that of the outbound half (a rekey responder waits
	// for the peer's Delete of the old SA); wiped once used.
	outKeys *crypto.ESPKeys
	// successor is the Child SA that replaces this one after a rekey the
	// peer started: our outbound switches to it when the peer deletes this
	// one (or the grace period ends). While our own rekey of this SA is in
	// flight, a successor marks a collision (§2.8.1).
	successor *childSA
	ike       *ikeSA // the IKE SA that carries it now (it moves on an IKE rekey)
	created   time.Time
	timers    []*time.Timer
	retry     *time.Timer // the pending rekey retry: one at a time, not one more per refusal

	// The small fields together, so they pack: a gateway holds one
	// childSA per tunnel, and this keeps it in the 288-byte size class.
	inSPI      uint32 // chosen by us: the peer sends with it
	outSPI     uint32 // chosen by the peer
	reqID      uint32
	encap      sad.UDPEncap
	mode       sad.Mode
	state      childState
	installed  bool // the inbound half is in the data plane
	outInst    bool // the outbound half is in the data plane
	ourRequest bool
	viaCreate  bool
	// replaced: a rekey made a successor that carries this SA's traffic
	// now; its inbound half lingers after the deletion (retireChild).
	replaced bool
	// rekeyDue: a soft lifetime ran out, so a failed rekey is retried.
	rekeyDue bool
}

// childState is the life stage of a Child SA with respect to rekeying.
type childState uint8

const (
	childActive   childState = iota
	childRekeying            // our rekey of it is queued or in flight
	childRekeyed             // replaced; waiting for its deletion
	childDeleting            // our Delete of it is queued or in flight
	childDead                // removed from the data plane
)

// newChild allocates an inbound SPI for a Child SA we are about to propose.
func (e *Engine) newChild(sa *ikeSA, cfg *ChildConfig) *childSA {
	return &childSA{cfg: cfg, inSPI: e.allocSPI(), mode: modeOf(cfg), created: e.now()}
}

func modeOf(cfg *ChildConfig) sad.Mode {
	if cfg.Mode == 0 {
		return sad.Tunnel
	}
	return cfg.Mode
}

// allocSPI picks a random inbound SPI above the reserved range 0-255
// (RFC 4303 §2.1) that none of our inbound SAs uses.
func (e *Engine) allocSPI() uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 {
			continue
		}
		if _, used := e.spis[spi]; used {
			continue
		}
		e.spis[spi] = struct{}{}
		return spi
	}
}

func (e *Engine) releaseSPI(spi uint32) { delete(e.spis, spi) }

// request returns the Child SA payloads of an IKE_AUTH request.
func (c *childSA) request() []message.Payload {
	spi := binary.BigEndian.AppendUint32(nil, c.inSPI)
	ps := []message.Payload{
		wireSA(c.cfg.ESPProposals, spi, false),
		wireTSList(c.cfg.LocalTS, false),
		wireTSList(c.cfg.RemoteTS, true),
	}
	if c.mode == sad.Transport {
		ps = append([]message.Payload{notify(message.NotifyUseTransportMode, nil)}, ps...)
	}
	return ps
}

// processResponse completes a Child SA we proposed, from the response.
func (c *childSA) processResponse(sa *ikeSA, resp message.Payloads) error {
	for p := range resp.All(message.PayloadNotify) {
		if n := p.(*message.Notify); n.NotifyType.IsError() {
			return fmt.Errorf("peer refused the Child SA: %v", n.NotifyType)
		}
	}
	saP, _ := resp.Get(message.PayloadSA).(*message.SA)
	tsi, _ := resp.Get(message.PayloadTSi).(*message.TrafficSelectors)
	tsr, _ := resp.Get(message.PayloadTSr).(*message.TrafficSelectors)
	if saP == nil || tsi == nil || tsr == nil {
		return errors.New("response lacks SA, TSi or TSr")
	}
	if len(saP.Proposals) != 1 {
		return errors.New("response must carry exactly one proposal")
	}
	sel, err := selectProposal(c.cfg.ESPProposals, saP.Proposals, false)
	if err != nil || len(sel.SPI) != 4 {
		return fmt.Errorf("peer chose an ESP proposal we did not offer: %s", describeProposals(saP.Proposals))
	}
	// The responder may only narrow (RFC 7296 §2.9): what it returns must
	// lie inside what we proposed.
	local := narrow(tsi.Selectors, c.cfg.LocalTS)
	remote := narrow(tsr.Selectors, c.cfg.RemoteTS)
	if len(local) == 0 || len(remote) == 0 {
		return errors.New("peer returned traffic selectors outside ours")
	}
	c.localTS, c.remoteTS = local, remote
	c.sel = sel
	c.outSPI = binary.BigEndian.Uint32(sel.SPI)
	if resp.Notify(message.NotifyUseTransportMode) == nil {
		if c.mode == sad.Transport {
			return errors.New("we asked for transport mode, the peer answered with tunnel mode")
		}
	}
	return sa.e.installChild(sa, c, true, true)
}

// respondChild is the responder's side of the Child SA in IKE_AUTH: pick a
// child config whose selectors overlap the proposed ones, select the ESP
// proposal, narrow the selectors, install the inbound SA now and the
// outbound one once the response is out. A failure here leaves the IKE SA
// up and answers with an error notify (RFC 7296 §1.2, §2.9).
func respondChild(sa *ikeSA, conn *Connection, req message.Payloads) ([]message.Payload, func()) {
	saP, _ := req.Get(message.PayloadSA).(*message.SA)
	tsi, _ := req.Get(message.PayloadTSi).(*message.TrafficSelectors)
	tsr, _ := req.Get(message.PayloadTSr).(*message.TrafficSelectors)
	if saP == nil || tsi == nil || tsr == nil {
		return nil, nil // childless IKE SA (RFC 6023) or a broken request
	}
	wantTransport := req.Notify(message.NotifyUseTransportMode) != nil
	var tsFailed, propFailed bool
	for i := range conn.Children {
		cfg := &conn.Children[i]
		remote := narrow(tsi.Selectors, cfg.RemoteTS)
		local := narrow(tsr.Selectors, cfg.LocalTS)
		if len(remote) == 0 || len(local) == 0 {
			tsFailed = true
			continue
		}
		sel, err := selectProposal(cfg.ESPProposals, saP.Proposals, false)
		if err != nil || len(sel.SPI) != 4 {
			propFailed = true
			sa.e.log.Warn("no ESP proposal chosen", "sa", sa.logID(), "child", cfg.Name, "received", describeProposals(saP.Proposals), "configured", describeOurs(cfg.ESPProposals))
			continue
		}
		c := sa.e.newChild(sa, cfg)
		c.sel = sel
		c.outSPI = binary.BigEndian.Uint32(sel.SPI)
		c.localTS, c.remoteTS = local, remote
		c.mode = sad.Tunnel
		if wantTransport && modeOf(cfg) == sad.Transport {
			c.mode = sad.Transport
		}
		if err := sa.e.installChild(sa, c, true, false); err != nil {
			sa.e.log.Error("cannot install inbound SA", "sa", sa.logID(), "child", cfg.Name, "err", err)
			return []message.Payload{notify(message.NotifyTemporaryFailure, nil)}, nil
		}
		ps := []message.Payload{
			sel.wire(message.ProtocolESP, binary.BigEndian.AppendUint32(nil, c.inSPI)),
			&message.TrafficSelectors{Selectors: remote},
			&message.TrafficSelectors{Responder: true, Selectors: local},
		}
		if c.mode == sad.Transport {
			ps = append([]message.Payload{notify(message.NotifyUseTransportMode, nil)}, ps...)
		}
		return ps, func() {
			if sa.state == StateDead {
				return
			}
			if err := sa.e.installChild(sa, c, false, true); err != nil {
				sa.e.log.Error("cannot install outbound SA", "sa", sa.logID(), "child", cfg.Name, "err", err)
			}
		}
	}
	if propFailed {
		return []message.Payload{notify(message.NotifyNoProposalChosen, nil)}, nil
	}
	if tsFailed {
		sa.e.log.Warn("traffic selectors unacceptable", "sa", sa.logID(), "tsi", fmtTS(tsi.Selectors), "tsr", fmtTS(tsr.Selectors))
	}
	return []message.Payload{notify(message.NotifyTSUnacceptable, nil)}, nil
}

func fmtTS(l []message.TrafficSelector) string {
	var s string
	for i, t := range l {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%v-%v[%d/%d-%d]", t.StartAddr, t.EndAddr, t.IPProtocol, t.StartPort, t.EndPort)
	}
	return s
}

func sadSuite(s selected) (sad.Suite, error) {
	return sad.SuiteOf(s.Encr.ID, s.Encr.KeyBits, s.Integ)
}

// installChild derives the Child SA's keys and hands the requested halves
// to the Installer, then wipes the keys. The IKE_AUTH Child SA is created
// by the IKE SA's initiator, so Ni/Nr are those of IKE_SA_INIT (RFC 7296
// §2.17).
func (e *Engine) installChild(sa *ikeSA, c *childSA, in, out bool) error {
	suite, err := sadSuite(c.sel)
	if err != nil {
		return err
	}
	espSuite := crypto.Suite{Encr: c.sel.Encr.ID, KeyBits: c.sel.Encr.KeyBits, Integ: c.sel.Integ}
	ni, nr, weInit := sa.ni, sa.nr, sa.initiator
	var secrets [][]byte
	if c.viaCreate {
		ni, nr, weInit = c.ni, c.nr, c.ourRequest
		if c.secret != nil {
			secrets = append(secrets, c.secret)
		}
	}
	var inKeys, outKeys crypto.ESPKeys
	if c.outKeys != nil && !in {
		// The outbound half of an SA whose inbound half went in earlier:
		// its keys were derived then, from the SK_d of that moment (an IKE
		// rekey in between must not change them).
		outKeys = *c.outKeys
	} else {
		keys, err := crypto.DeriveChildKeys(sa.prf, sa.keys.SKd, espSuite, ni, nr, secrets...)
		if err != nil {
			return fmt.Errorf("child keys: %w", err)
		}
		defer keys.Destroy()
		inKeys, outKeys = keys.InitiatorToResponder, keys.ResponderToInitiator
		if weInit {
			inKeys, outKeys = outKeys, inKeys
		}
		crypto.Zero(c.secret)
		c.secret = nil
		if in && !out {
			c.outKeys = &crypto.ESPKeys{Encr: slices.Clone(outKeys.Encr), Integ: slices.Clone(outKeys.Integ)}
		}
	}
	if sa.natLocal || sa.natRemote {
		c.encap = sad.UDPEncap{SrcPort: sa.local.Port(), DstPort: sa.remote.Port()}
	}
	if c.reqID == 0 {
		e.nextReqID++
		c.reqID = e.nextReqID
	}
	outSel := selectors(c.localTS, c.remoteTS)
	window := c.cfg.ReplayWindow
	if window == 0 {
		window = DefaultReplayWindow
	}
	base := sad.Config{
		Mode: c.mode, Local: sa.local.Addr(), Remote: sa.remote.Addr(), Encap: c.encap,
		Suite: suite, ESN: c.sel.ESN, ReplayWindow: window, Lifetime: c.cfg.Lifetime,
		ReqID: c.reqID, Name: sa.name() + "/" + c.cfg.Name,
	}
	if in {
		cfg := base
		cfg.SPI, cfg.Dir = c.inSPI, sad.Inbound
		cfg.Key, cfg.IntegKey = inKeys.Encr, inKeys.Integ
		cfg.Selectors = reverseSelectors(outSel)
		if err := e.inst.InstallInbound(cfg); err != nil {
			return fmt.Errorf("install inbound %08x: %w", c.inSPI, err)
		}
		e.logESPKeys(sa, c, sad.Inbound, suite, inKeys)
		if !slices.Contains(sa.children, c) {
			sa.children = append(sa.children, c)
		}
		c.ike = sa
		if !c.installed {
			e.armChild(c)
		}
		c.installed = true
	}
	if out {
		cfg := base
		cfg.SPI, cfg.Dir = c.outSPI, sad.Outbound
		cfg.Key, cfg.IntegKey = outKeys.Encr, outKeys.Integ
		cfg.Selectors = outSel
		if err := e.inst.InstallOutbound(cfg, outSel); err != nil {
			return fmt.Errorf("install outbound %08x: %w", c.outSPI, err)
		}
		c.outInst = true
		e.logESPKeys(sa, c, sad.Outbound, suite, outKeys)
		c.wipeOutKeys()
	}
	if in && out || !in {
		e.log.Info("Child SA installed", "sa", sa.logID(), "child", c.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI), "spi_out", fmt.Sprintf("%08x", c.outSPI),
			"mode", c.mode, "proposal", c.sel.String(), "udp_encap", c.encap.Enabled(), "local_ts", fmtTS(c.localTS), "remote_ts", fmtTS(c.remoteTS))
	}
	return nil
}

func (c *childSA) wipeOutKeys() {
	if c.outKeys != nil {
		crypto.Zero(c.outKeys.Encr)
		crypto.Zero(c.outKeys.Integ)
		c.outKeys = nil
	}
}

// deleteOutbound removes the outbound half of a Child SA (after a rekey
// switched its policy to the successor, nothing uses it any more).
func (e *Engine) deleteOutbound(c *childSA) {
	if c.outInst {
		if err := e.inst.Delete(c.outSPI, sad.Outbound); err != nil {
			e.log.Debug("delete outbound", "spi", fmt.Sprintf("%08x", c.outSPI), "err", err)
		}
		c.outInst = false
	}
}

// deleteChild removes both halves of a Child SA from the data plane.
func (e *Engine) deleteChild(sa *ikeSA, c *childSA) {
	e.removeChild(sa, c, false)
}

// retireChild ends a Child SA at the close of its Delete exchange: like
// deleteChild, except that a rekeyed SA's inbound half lingers for
// RekeyedInboundDelay, so the packets the peer sealed with it before it
// switched to the successor are still decrypted (make-before-break on
// the receiving side: the old inbound SA lives until the peer stops using
// it).
func (e *Engine) retireChild(sa *ikeSA, c *childSA) {
	e.removeChild(sa, c, c.replaced && e.rekeyedDelay > 0)
}

func (e *Engine) removeChild(sa *ikeSA, c *childSA, linger bool) {
	e.deleteOutbound(c)
	if c.installed {
		if linger {
			spi := c.inSPI
			e.lingering[spi] = e.afterFunc(e.rekeyedDelay, func() { e.endLinger(spi) })
		} else if err := e.inst.Delete(c.inSPI, sad.Inbound); err != nil {
			e.log.Debug("delete inbound", "spi", fmt.Sprintf("%08x", c.inSPI), "err", err)
		}
		c.installed = false
	} else {
		linger = false
	}
	for _, t := range c.timers {
		t.Stop()
	}
	c.timers = nil
	if c.retry != nil {
		c.retry.Stop()
		c.retry = nil
	}
	crypto.Zero(c.secret)
	c.secret = nil
	c.wipeOutKeys()
	c.state = childDead
	if !linger {
		e.releaseSPI(c.inSPI)
	}
	// c may have moved to a new IKE SA (an IKE rekey) while an exchange
	// about it ran on the old one: it leaves the one that carries it now.
	gone := func(x *childSA) bool { return x == c }
	sa.children = slices.DeleteFunc(sa.children, gone)
	if c.ike != nil && c.ike != sa {
		c.ike.children = slices.DeleteFunc(c.ike.children, gone)
	}
}

// endLinger removes a rekeyed Child SA's lingering inbound half and frees
// its SPI.
func (e *Engine) endLinger(spi uint32) {
	t, ok := e.lingering[spi]
	if !ok {
		return
	}
	t.Stop()
	delete(e.lingering, spi)
	if err := e.inst.Delete(spi, sad.Inbound); err != nil {
		e.log.Debug("delete lingering inbound", "spi", fmt.Sprintf("%08x", spi), "err", err)
	}
	e.releaseSPI(spi)
}
