package ike

import (
	"crypto/rand"
	"encoding/binary"
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
	var prefix, mask uint32
	if e.spiRange != nil {
		prefix, mask = e.spiRange(sa.name())
	}
	return &childSA{cfg: cfg, inSPI: e.allocSPIIn(prefix, mask), mode: modeOf(cfg), created: e.now()}
}

func modeOf(cfg *ChildConfig) sad.Mode {
	if cfg.Mode == 0 {
		return sad.Tunnel
	}
	return cfg.Mode
}

// allocSPIIn picks a random inbound SPI above the reserved range 0-255
// (RFC 4303 §2.1) that none of our inbound SAs uses, within the SPIs whose bits under mask are prefix's (Config.SPIRange;
// mask 0: all); a range that stays full for a million tries is given up
// for the whole space.
func (e *Engine) allocSPIIn(prefix, mask uint32) uint32 {
	var b [4]byte
	for try := 0; ; try++ {
		rand.Read(b[:])
		spi := binary.BigEndian.Uint32(b[:])
		if try < 1<<20 {
			spi = spi&^mask | prefix&mask
		}
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
	if c.reqID == 0 && e.allocReq != nil {
		c.reqID = e.allocReq(sa.name())
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
	e.markExport(sa, true)
	if in && out || !in {
		e.log.Info("Child SA installed", "sa", sa.logID(), "child", c.cfg.Name, "spi_in", fmt.Sprintf("%08x", c.inSPI), "spi_out", fmt.Sprintf("%08x", c.outSPI),
			"mode", c.mode, "proposal", c.sel.String(), "udp_encap", c.encap.Enabled(), "local_ts", fmtTS(c.localTS), "remote_ts", fmtTS(c.remoteTS))
	}
	return nil
}

// stopTimers stops the Child SA's lifetime and rekey-retry timers.
func (c *childSA) stopTimers() {
	for _, t := range c.timers {
		t.Stop()
	}
	c.timers = nil
	if c.retry != nil {
		c.retry.Stop()
		c.retry = nil
	}
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
	c.stopTimers()
	crypto.Zero(c.secret)
	c.secret = nil
	c.wipeOutKeys()
	c.state = childDead
	if !linger {
		e.releaseSPI(c.inSPI)
	}
	// c may have moved to a new IKE SA (an IKE rekey) while an exchange
	// about it ran on the old one: it leaves the one that carries it now.
	e.markExport(sa, true)
	e.markExport(c.ike, true)
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
