package ike

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// lossless watches both ends' installers through every call and records
// any moment at which one end's policy encrypts with an outbound SA the
// other end has no inbound SA for: the window in which a rekey would lose
// traffic. Every call of either engine is checked under one lock, so the
// view of both data planes is consistent.
type lossless struct {
	mu         sync.Mutex
	mem        [2]*MemInstaller
	armed      bool
	violations []string
	calls      int
}

type watchedInstaller struct {
	*MemInstaller
	l    *lossless
	side int
}

func (l *lossless) wrap(side int, m *MemInstaller) Installer {
	l.mem[side] = m
	return &watchedInstaller{MemInstaller: m, l: l, side: side}
}

func (w *watchedInstaller) InstallInbound(cfg sad.Config) error {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	err := w.MemInstaller.InstallInbound(cfg)
	w.l.check(fmt.Sprintf("side %d in %08x", w.side, cfg.SPI))
	return err
}

func (w *watchedInstaller) InstallOutbound(cfg sad.Config, sel []sad.Selector) error {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	err := w.MemInstaller.InstallOutbound(cfg, sel)
	w.l.check(fmt.Sprintf("side %d out %08x", w.side, cfg.SPI))
	return err
}

func (w *watchedInstaller) Delete(spi uint32, dir sad.Direction) error {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	err := w.MemInstaller.Delete(spi, dir)
	w.l.check(fmt.Sprintf("side %d del %v %08x", w.side, dir, spi))
	return err
}

func (l *lossless) arm() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = true
	l.check("arm")
}

func (l *lossless) check(after string) {
	l.calls++
	if !l.armed {
		return
	}
	for s := range 2 {
		ins := map[uint32]sad.Config{}
		for _, c := range l.mem[1-s].Inbound() {
			ins[c.SPI] = c
		}
		for _, o := range l.mem[s].Active() {
			in, ok := ins[o.SPI]
			if !ok {
				l.violations = append(l.violations, fmt.Sprintf("after %s: side %d sends on %08x, which side %d cannot receive", after, s, o.SPI, 1-s))
			} else if !bytes.Equal(in.Key, o.Key) {
				l.violations = append(l.violations, fmt.Sprintf("after %s: %08x keys differ", after, o.SPI))
			}
		}
	}
}

func (l *lossless) result(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) > 0 {
		t.Fatalf("%d moments of possible loss, first: %s", len(l.violations), strings.Join(l.violations[:min(5, len(l.violations))], "; "))
	}
}

// steady waits until each end has exactly n Child SAs, each with one
// inbound and one active outbound SA and nothing left over, paired with
// the other end.
func steady(t *testing.T, i, r *peer, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d Child SA pairs and nothing else", n), func() bool {
		for _, p := range []*peer{i, r} {
			if len(p.inst.Inbound()) != n || len(p.inst.Outbound()) != n || len(p.inst.Active()) != n {
				return false
			}
			ls := p.e.List()
			if len(ls) != 1 || len(ls[0].Children) != n {
				return false
			}
		}
		return true
	})
	checkPairs(t, i.inst, r.inst, n)
}

func childSPI(t *testing.T, p *peer) uint32 {
	t.Helper()
	ls := p.e.List()
	if len(ls) != 1 || len(ls[0].Children) != 1 {
		t.Fatalf("List: %+v", ls)
	}
	return ls[0].Children[0].SPIIn
}

func TestSecondChild(t *testing.T) {
	tests := []struct {
		name     string
		esp2     string
		limit    int // the responder's MaxChildren
		want     int
		wantNote string
	}{
		{"nopfs", "aes256gcm16", 0, 2, ""},
		{"pfs", "aes128gcm16-x25519", 0, 2, ""},
		{"pfs-modp", "aes256-sha256-modp2048", 0, 2, ""},
		{"limit", "aes128gcm16", 1, 1, "NO_ADDITIONAL_SAS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			ci.Children = append(ci.Children, ChildConfig{Name: "net2", LocalTS: mustTS(t, "198.18.3.0/24"), RemoteTS: mustTS(t, "198.18.4.0/24"),
				ESPProposals: mustProposals(t, message.ProtocolESP, tc.esp2)})
			cr.Children = append(cr.Children, ChildConfig{Name: "net2", LocalTS: mustTS(t, "198.18.4.0/24"), RemoteTS: mustTS(t, "198.18.3.0/24"),
				ESPProposals: mustProposals(t, message.ProtocolESP, tc.esp2)})
			cr.MaxChildren = tc.limit
			i, r := startPair(t, ci, cr)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			if tc.wantNote != "" {
				waitFor(t, "refusal", func() bool { return hasLine(i.log.String(), tc.wantNote) })
			}
			steady(t, i, r, tc.want)
			if tc.want < 2 {
				return
			}
			// The other direction: the IKE SA's responder asks for a
			// second SA of net2.
			if err := r.e.initiateChild(ctx(t), "test", "net2"); err != nil {
				t.Fatal(err)
			}
			steady(t, i, r, 3)
			for _, c := range i.e.List()[0].Children {
				if c.Name == "net2" && !strings.Contains(c.Proposal, strings.Split(tc.esp2, "-")[0]) {
					t.Fatalf("net2 negotiated %s, want %s", c.Proposal, tc.esp2)
				}
			}
		})
	}
}

// TestChildRekey rekeys one Child SA again and again, started by the
// initiator, by the responder, and by both at once (collisions, RFC 7296
// §2.8.1), with and without PFS, and proves there was never a moment at
// which one end encrypted with an SA the other could not decrypt.
func TestChildRekey(t *testing.T) {
	const rounds = 20
	for _, esp := range []string{"aes128gcm16", "aes128gcm16-x25519"} {
		for _, who := range []string{"initiator", "responder", "both"} {
			t.Run(esp+"/"+who, func(t *testing.T) {
				ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", esp)
				var l lossless
				i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
				if err := i.e.Initiate(ctx(t), "test"); err != nil {
					t.Fatal(err)
				}
				steady(t, i, r, 1)
				l.arm()
				seen := map[uint32]bool{childSPI(t, i): true}
				for n := range rounds {
					var wg sync.WaitGroup
					errs := make([]error, 2)
					spis := []uint32{childSPI(t, i), childSPI(t, r)}
					for k, p := range []*peer{i, r} {
						if who == "both" || (who == "initiator") == (k == 0) {
							spi := spis[k]
							wg.Add(1)
							go func() {
								defer wg.Done()
								errs[k] = p.e.rekeyChildSPI(ctx(t), spi)
							}()
						}
					}
					wg.Wait()
					if who != "both" && (errs[0] != nil || errs[1] != nil) {
						t.Fatalf("round %d: %v %v", n, errs[0], errs[1])
					}
					if errs[0] != nil && errs[1] != nil {
						t.Fatalf("round %d: both rekeys failed: %v, %v", n, errs[0], errs[1])
					}
					steady(t, i, r, 1)
					spi := childSPI(t, i)
					if seen[spi] {
						t.Fatalf("round %d: Child SA %08x not replaced", n, spi)
					}
					seen[spi] = true
				}
				l.result(t)
				logs := i.log.String() + r.log.String()
				if who == "both" {
					c := strings.Count(logs, "rekey collision:")
					t.Logf("%d collisions in %d rounds", c, rounds)
					if c == 0 && !strings.Contains(logs, "TEMPORARY_FAILURE") {
						t.Fatal("simultaneous rekeys never collided")
					}
				}
				if strings.Contains(esp, "x25519") && !strings.Contains(logs, "pfs=true") {
					t.Fatal("rekeys did not use PFS")
				}
			})
		}
	}
}

// TestChildLifetimes lets soft lifetimes rekey on their own (both ends
// configured alike, so both race) and a hard lifetime delete.
func TestChildLifetimes(t *testing.T) {
	for _, ikeRekey := range []time.Duration{0, 400 * time.Millisecond} {
		t.Run(fmt.Sprintf("soft/ike-rekey-%v", ikeRekey), func(t *testing.T) { softLifetimes(t, ikeRekey) })
	}
	t.Run("hard", func(t *testing.T) {
		ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		ci.Children[0].Lifetime.Hard.Time = 300 * time.Millisecond
		i, r := upPair(t, ci, cr)
		waitFor(t, "hard expiry", func() bool {
			return len(i.inst.Inbound())+len(i.inst.Outbound())+len(r.inst.Inbound())+len(r.inst.Outbound()) == 0
		})
		if l := i.e.List(); len(l) != 1 || len(l[0].Children) != 0 {
			t.Fatalf("IKE SA should stay without children: %+v", l)
		}
	})
	t.Run("expire-call", func(t *testing.T) {
		// The data plane's byte and packet limits arrive through Expire.
		ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		i, r := upPair(t, ci, cr)
		first := childSPI(t, r)
		if err := r.e.Expire(first, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "soft expiry rekey", func() bool {
			l := r.e.List()
			return len(l) == 1 && len(l[0].Children) == 1 && l[0].Children[0].SPIIn != first && len(r.inst.Inbound()) == 1
		})
		steady(t, i, r, 1)
		if err := i.e.Expire(childSPI(t, i), true); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "hard expiry", func() bool { return len(r.inst.Inbound())+len(i.inst.Inbound()) == 0 })
		if err := i.e.Expire(first, true); err == nil {
			t.Fatal("Expire of an unknown SPI succeeded")
		}
	})
}

// TestIKERekey rekeys the IKE SA from either end and from both at once;
// the Child SA must move to the new IKE SA untouched, both ends must agree
// on the new SPIs and keys (a Child SA rekey on the new SA proves SK_d).
func TestIKERekey(t *testing.T) {
	for _, who := range []string{"initiator", "responder", "both", "lifetime"} {
		t.Run(who, func(t *testing.T) {
			ci, cr := pskPair(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16")
			if who == "lifetime" {
				ci.IKERekeyTime = 300 * time.Millisecond
			}
			var l lossless
			i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			steady(t, i, r, 1)
			l.arm()
			before := i.e.List()[0]
			switch who {
			case "lifetime":
				waitFor(t, "IKE rekey", func() bool { return hasLine(i.log.String(), "IKE SA rekeyed") })
			case "both":
				var wg sync.WaitGroup
				for _, p := range []*peer{i, r} {
					wg.Add(1)
					go func() { defer wg.Done(); p.e.RekeyIKE(ctx(t), "test") }()
				}
				wg.Wait()
			default:
				p := i
				if who == "responder" {
					p = r
				}
				if err := p.e.RekeyIKE(ctx(t), "test"); err != nil {
					t.Fatal(err)
				}
			}
			var li, lr []IKESAInfo
			waitFor(t, "one new IKE SA on each end", func() bool {
				li, lr = i.e.List(), r.e.List()
				return len(li) == 1 && len(lr) == 1 && li[0].SPIi != before.SPIi && lr[0].SPIi == li[0].SPIi && lr[0].SPIr == li[0].SPIr &&
					len(li[0].Children) == 1 && len(lr[0].Children) == 1 && li[0].State == StateEstablished && lr[0].State == StateEstablished
			})
			if li[0].Children[0].SPIIn != before.Children[0].SPIIn {
				t.Fatalf("Child SA changed on IKE rekey: %+v -> %+v", before.Children, li[0].Children)
			}
			if who == "both" {
				t.Logf("collision: %v", hasLine(i.log.String()+r.log.String(), "IKE rekey collision"))
			}
			// The new IKE SA works: a Child SA rekey on it (keys from the
			// new SK_d must agree) and a liveness check.
			if err := r.e.rekeyChildSPI(ctx(t), childSPI(t, r)); err != nil {
				t.Fatal(err)
			}
			steady(t, i, r, 1)
			if err := i.e.ping(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			l.result(t)
		})
	}
}

// TestDPDRestart drops every packet of the responder: the initiator's DPD
// must notice within the interval plus the retransmission schedule, clear
// its SAs and keep re-initiating; once the responder is back, the tunnel
// comes back, and INITIAL_CONTACT clears the responder's stale IKE SA.
func TestDPDRestart(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.DPDDelay, ci.DPDAction = 200*time.Millisecond, DPDRestart
	i, r := upPair(t, ci, cr)
	old := i.e.List()[0]
	// A live peer answers the checks and nothing changes.
	time.Sleep(500 * time.Millisecond)
	if n := i.conn.sent("INFORMATIONAL/req"); n == 0 {
		t.Fatal("no DPD check in 500 ms with a 200 ms interval")
	}
	if l := i.e.List(); len(l) != 1 || l[0].SPIi != old.SPIi {
		t.Fatalf("live peer lost: %+v", l)
	}
	r.conn.setDrop(func(message.Header, int) bool { return true })
	dead := time.Now()
	// Interval, then 100+200+400+800 ms of retransmissions.
	limit := 200*time.Millisecond + 1500*time.Millisecond + 500*time.Millisecond
	waitFor(t, "dead peer detected", func() bool { return hasLine(i.log.String(), "peer is dead") })
	if d := time.Since(dead); d > limit {
		t.Fatalf("dead peer detected after %v, want under %v", d, limit)
	}
	if len(i.inst.Inbound()) != 0 || len(i.inst.Outbound()) != 0 {
		t.Fatal("SAs of the dead peer still installed")
	}
	time.Sleep(300 * time.Millisecond)
	r.conn.setDrop(nil)
	waitFor(t, "tunnel back", func() bool {
		li, lr := i.e.List(), r.e.List()
		return len(li) == 1 && li[0].SPIi != old.SPIi && li[0].State == StateEstablished && len(li[0].Children) == 1 &&
			len(lr) == 1 && lr[0].SPIi == li[0].SPIi && len(r.inst.Outbound()) == 1
	})
	steady(t, i, r, 1)
	if !hasLine(r.log.String(), "INITIAL_CONTACT: deleting stale IKE SA") {
		t.Fatal("responder did not clear its stale IKE SA on INITIAL_CONTACT")
	}
}

// TestDPDQuietWhileESPFlows: no liveness check goes out while the peer's
// ESP keeps arriving on the Child SA (RFC 7296 §2.4), and checks start
// within an interval of its last packet once it stops.
func TestDPDQuietWhileESPFlows(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	// 300 ms against ESP every 20 ms: a loaded CI machine (the race
	// detector, two cores) may stall this goroutine for tens of ms, never 300.
	ci.DPDDelay = 300 * time.Millisecond
	i, _ := upPair(t, ci, cr)
	in := i.inst.Inbound()
	if len(in) != 1 {
		t.Fatalf("inbound SAs %d", len(in))
	}
	spi := in[0].SPI
	// The feeding loop itself can be stalled by a loaded machine: a gap
	// of half an interval between two counts is a quiet peer as far as
	// the engine can tell, so such a round proves nothing and is run
	// again (at most three times); a check in a round without such a
	// gap fails the test.
	var n uint64
	var base int
	var stopped time.Time
	for round := 1; ; round++ {
		base = i.conn.sent("INFORMATIONAL/req")
		var maxGap time.Duration
		last := time.Now()
		for end := last.Add(1500 * time.Millisecond); time.Now().Before(end); {
			n += 10
			i.inst.SetInboundPackets(spi, n)
			time.Sleep(20 * time.Millisecond)
			now := time.Now()
			maxGap = max(maxGap, now.Sub(last))
			last = now
		}
		stopped = time.Now()
		got := i.conn.sent("INFORMATIONAL/req") - base
		if got == 0 {
			break
		}
		if maxGap < 150*time.Millisecond || round == 3 {
			t.Fatalf("%d DPD checks sent while ESP arrived every 20 ms (interval 300 ms; longest gap %v, round %d)", got, maxGap, round)
		}
		t.Logf("round %d: the feeding loop stalled %v (machine load); again", round, maxGap)
	}
	waitFor(t, "a DPD check once ESP stopped", func() bool { return i.conn.sent("INFORMATIONAL/req") > base })
	// The check comes within an interval of the last ESP (checks run
	// every half interval and date ESP to the check before), not two.
	took := time.Since(stopped)
	t.Logf("first DPD check %v after the last ESP (interval 300 ms)", took.Round(time.Millisecond))
	if took > 750*time.Millisecond {
		t.Fatalf("first DPD check %v after the last ESP, want within one 300 ms interval", took)
	}
	if l := i.e.List(); len(l) != 1 || l[0].State != StateEstablished {
		t.Fatalf("IKE SA after the checks: %+v", l)
	}
}

func TestDPDActions(t *testing.T) {
	for _, action := range []DPDAction{DPDClear, DPDTrap} {
		t.Run(action.String(), func(t *testing.T) {
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			ci.DPDDelay, ci.DPDAction = 100*time.Millisecond, action
			i, r := upPair(t, ci, cr)
			r.conn.setDrop(func(message.Header, int) bool { return true })
			waitFor(t, "dead peer", func() bool { return len(i.e.List()) == 0 })
			if len(i.inst.Inbound())+len(i.inst.Outbound()) != 0 {
				t.Fatal("SAs left")
			}
			traps := i.inst.Traps()
			if (action == DPDTrap) != (len(traps) == 1) {
				t.Fatalf("traps %v with action %v", traps, action)
			}
			time.Sleep(300 * time.Millisecond)
			if n := len(i.e.List()); n != 0 {
				t.Fatalf("action %v re-initiated (%d IKE SAs)", action, n)
			}
		})
	}
}

// TestRekeyRefusals covers §2.25: a rekey of an unknown Child SA gets
// CHILD_SA_NOT_FOUND and leaves everything as it was.
func TestRekeyRefusals(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := upPair(t, ci, cr)
	got := make(chan message.Payloads, 1)
	i.e.do(ctx(t), func() {
		for _, sa := range i.e.sas {
			c := sa.children[0]
			p := &rawCreateTask{got: got, ps: []message.Payload{
				&message.Notify{Protocol: message.ProtocolESP, SPI: []byte{0, 0, 1, 2}, NotifyType: message.NotifyRekeySA},
				wireSA(c.cfg.ESPProposals, []byte{1, 2, 3, 4}, true), &message.Nonce{Data: newNonce()},
				&message.TrafficSelectors{Selectors: c.localTS}, &message.TrafficSelectors{Responder: true, Selectors: c.remoteTS},
			}}
			sa.enqueue(p)
		}
	})
	select {
	case resp := <-got:
		if resp.Notify(message.NotifyChildSANotFound) == nil {
			t.Fatalf("response %v, want CHILD_SA_NOT_FOUND", resp)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no response")
	}
	steady(t, i, r, 1)
}

type rawCreateTask struct {
	ps  []message.Payload
	got chan message.Payloads
}

func (*rawCreateTask) exchange() message.ExchangeType            { return message.ExchangeCreateChildSA }
func (p *rawCreateTask) build(*ikeSA) ([]message.Payload, error) { return p.ps, nil }
func (p *rawCreateTask) process(_ *ikeSA, r message.Payloads) error {
	p.got <- r
	return nil
}

// TestIKERekeyCollisions rekeys the IKE SA from both ends at once, round
// after round, with a Child SA rekey in between: every round must end with
// one IKE SA that both ends agree on, carrying the Child SA.
func TestIKERekeyCollisions(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519")
	var l lossless
	i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	l.arm()
	seen := map[uint64]bool{}
	for n := range 10 {
		var wg sync.WaitGroup
		for _, p := range []*peer{i, r} {
			wg.Add(1)
			go func() { defer wg.Done(); p.e.RekeyIKE(ctx(t), "test") }()
		}
		wg.Wait()
		var li []IKESAInfo
		waitFor(t, fmt.Sprintf("round %d: one IKE SA on each end", n), func() bool {
			li = i.e.List()
			lr := r.e.List()
			return len(li) == 1 && len(lr) == 1 && li[0].SPIi == lr[0].SPIi && li[0].SPIr == lr[0].SPIr &&
				li[0].State == StateEstablished && lr[0].State == StateEstablished && !seen[li[0].SPIi]
		})
		seen[li[0].SPIi] = true
		steady(t, i, r, 1)
		if err := i.e.rekeyChildSPI(ctx(t), childSPI(t, i)); err != nil {
			t.Fatalf("round %d: Child SA rekey on the new IKE SA: %v", n, err)
		}
		steady(t, i, r, 1)
	}
	l.result(t)
	t.Logf("%d IKE rekey collisions", strings.Count(i.log.String()+r.log.String(), "IKE rekey collision:"))
}

// softLifetimes lets soft lifetimes rekey on their own (both ends
// configured alike, so both race), optionally with IKE SA rekeys too.
func softLifetimes(t *testing.T, ikeRekey time.Duration) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16-x25519")
	lt := sad.Lifetime{Soft: sad.Limits{Time: 150 * time.Millisecond}, Hard: sad.Limits{Time: 2 * time.Second}}
	ci.Children[0].Lifetime, cr.Children[0].Lifetime = lt, lt
	ci.IKERekeyTime, cr.IKERekeyTime = ikeRekey, ikeRekey
	var l lossless
	i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	// The first Child SA has an unavoidable moment in which the
	// responder may send before the initiator has read IKE_AUTH's
	// response (RFC 7296 §1.2); rekeys have none.
	steady(t, i, r, 1)
	l.arm()
	first := childSPI(t, i)
	time.Sleep(1200 * time.Millisecond)
	steady(t, i, r, 1)
	l.result(t)
	if childSPI(t, i) == first {
		t.Fatal("soft lifetime did not rekey")
	}
	n := strings.Count(i.log.String()+r.log.String(), "rekeying Child SA")
	if n < 3 {
		t.Fatalf("%d rekeys in 1.2 s with a 150 ms soft lifetime", n)
	}
	if ikeRekey > 0 && !hasLine(i.log.String()+r.log.String(), "IKE SA rekeyed") {
		t.Fatal("IKE soft lifetime did not rekey")
	}
}

// TestMemInstallerSwitch pins down the Installer contract rekeying relies
// on: InstallOutbound with a ReqID that has an SA moves the policy to the
// new SA, the old one stays until deleted, and deleting an SA the policy no
// longer uses leaves the policy alone.
func TestMemInstallerSwitch(t *testing.T) {
	sa := func(spi, reqID uint32) sad.Config {
		return sad.Config{SPI: spi, Dir: sad.Outbound, ReqID: reqID, Mode: sad.Tunnel, Suite: sad.AESGCM128,
			Key: make([]byte, 20), Local: addrI, Remote: addrR}
	}
	steps := []struct {
		op         string
		spi, reqID uint32
		wantActive []uint32
		wantOut    int
	}{
		{"out", 0x1001, 1, []uint32{0x1001}, 1},
		{"out", 0x2001, 2, []uint32{0x1001, 0x2001}, 2},
		{"out", 0x1002, 1, []uint32{0x1002, 0x2001}, 3}, // rekey of reqid 1
		{"del", 0x1001, 1, []uint32{0x1002, 0x2001}, 2}, // the old SA goes, the policy stays
		{"del", 0x2001, 2, []uint32{0x1002}, 1},         // the active SA goes with its policy
	}
	m := NewMemInstaller()
	for n, s := range steps {
		var err error
		if s.op == "out" {
			err = m.InstallOutbound(sa(s.spi, s.reqID), nil)
		} else {
			err = m.Delete(s.spi, sad.Outbound)
		}
		if err != nil {
			t.Fatalf("step %d: %v", n, err)
		}
		var active []uint32
		for _, c := range m.Active() {
			active = append(active, c.SPI)
		}
		if fmt.Sprint(active) != fmt.Sprint(s.wantActive) || len(m.Outbound()) != s.wantOut {
			t.Fatalf("step %d: active %x (want %x), %d outbound (want %d)", n, active, s.wantActive, len(m.Outbound()), s.wantOut)
		}
	}
}

// TestInitialContact: a second IKE SA with a peer we already have one with
// carries no INITIAL_CONTACT, so both stay; a restarted initiator's first
// one does (TestDPDRestart), and replaces the stale SA.
func TestInitialContact(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := startPair(t, ci, cr)
	for range 2 {
		if err := i.e.Initiate(ctx(t), "test"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two IKE SAs", func() bool { return len(r.e.List()) == 2 && len(r.inst.Outbound()) == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := len(r.e.List()); n != 2 || hasLine(r.log.String(), "INITIAL_CONTACT") {
		t.Fatalf("%d IKE SAs at the responder, want 2 without INITIAL_CONTACT", n)
	}
}

// TestRekeyedInboundLingers checks the receiving half of make-before-break:
// after a rekey's Delete exchange the old inbound SA stays installed for
// RekeyedInboundDelay on both ends (the peer may have sealed packets with
// it just before it switched, and they can arrive after the IKE message
// that ended it), then goes and frees its SPI; Close removes it at once.
func TestRekeyedInboundLingers(t *testing.T) {
	for _, who := range []string{"initiator", "responder"} {
		t.Run(who, func(t *testing.T) {
			defer func(d time.Duration) { testRekeyedDelay = d }(testRekeyedDelay)
			testRekeyedDelay = 600 * time.Millisecond
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			i, r := upPair(t, ci, cr)
			oldI, oldR := childSPI(t, i), childSPI(t, r)
			rekeyer := i
			if who == "responder" {
				rekeyer = r
			}
			start := time.Now()
			if err := rekeyer.e.rekeyChildSPI(ctx(t), childSPI(t, rekeyer)); err != nil {
				t.Fatal(err)
			}
			// The Delete exchange is over once neither end lists old.
			replaced := func(p *peer, old uint32) bool {
				l := p.e.List()
				return len(l) == 1 && len(l[0].Children) == 1 && l[0].Children[0].SPIIn != old && len(p.inst.Outbound()) == 1
			}
			waitFor(t, "the old Child SA deleted on both ends", func() bool { return replaced(i, oldI) && replaced(r, oldR) })
			if time.Since(start) > testRekeyedDelay/2 {
				t.Skipf("the rekey took %v on this loaded machine; the linger cannot be observed", time.Since(start))
			}
			for _, c := range []struct {
				p   *peer
				old uint32
			}{{i, oldI}, {r, oldR}} {
				if !slices.ContainsFunc(c.p.inst.Inbound(), func(s sad.Config) bool { return s.SPI == c.old }) {
					t.Errorf("%v: the old inbound SA %08x went with the Delete exchange; late packets sealed with it would be lost", c.p.addr, c.old)
				}
			}
			waitFor(t, "the lingering inbound SAs removed", func() bool {
				return len(i.inst.Inbound()) == 1 && len(r.inst.Inbound()) == 1
			})
			if d := time.Since(start); d < testRekeyedDelay*9/10 {
				t.Errorf("lingering inbound SAs removed after %v, before the %v delay", d, testRekeyedDelay)
			}
			steady(t, i, r, 1)
			// The SPIs are free again only now: nothing else uses them.
			for _, c := range []struct {
				p   *peer
				old uint32
			}{{i, oldI}, {r, oldR}} {
				var used bool
				c.p.e.do(ctx(t), func() { _, used = c.p.e.spis[c.old] })
				if used {
					t.Errorf("%v: SPI %08x still reserved after its SA went", c.p.addr, c.old)
				}
			}

			// A second rekey, then Close while the old inbound lingers:
			// Close takes it out with the rest.
			last := childSPI(t, i)
			if err := i.e.rekeyChildSPI(ctx(t), last); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "rekey done", func() bool { return replaced(i, last) })
			i.e.Close()
			if n := len(i.inst.Inbound()) + len(i.inst.Outbound()); n != 0 {
				t.Errorf("after Close %d SAs remain installed: %v", n, i.inst.Log())
			}
		})
	}
}

// TestRekeyDeleteWaits checks that the initiator of a Child SA rekey
// moves its traffic to the new SA at once but sends the Delete of the old
// one only after RekeyDeleteDelay, so packets sealed with the old SA just
// before the switch are not overtaken by the Delete (a peer such as
// strongSwan drops the old inbound SA the moment the Delete arrives).
func TestRekeyDeleteWaits(t *testing.T) {
	defer func(d time.Duration) { testRekeyDeleteDelay = d }(testRekeyDeleteDelay)
	testRekeyDeleteDelay = 400 * time.Millisecond
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	var l lossless
	i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	l.arm()
	old := childSPI(t, i)
	oldOut := i.inst.Active()[0].SPI
	start := time.Now()
	if err := i.e.rekeyChildSPI(ctx(t), old); err != nil {
		t.Fatal(err)
	}
	if a := i.inst.Active(); len(a) != 1 || a[0].SPI == oldOut {
		t.Fatalf("the initiator still sends on the old SA %08x after the rekey: %+v", oldOut, a)
	}
	// The responder switches on the Delete; until then it keeps the old
	// pair, and the initiator keeps the old inbound SA.
	if time.Since(start) < testRekeyDeleteDelay/2 {
		if a := r.inst.Active(); len(a) != 1 || a[0].SPI != old {
			t.Errorf("the responder switched before the delay: %+v", a)
		}
		if !slices.ContainsFunc(i.inst.Inbound(), func(s sad.Config) bool { return s.SPI == old }) {
			t.Error("the old inbound SA went before the Delete exchange")
		}
	}
	waitFor(t, "the responder's switch", func() bool {
		a := r.inst.Active()
		return len(a) == 1 && a[0].SPI != old
	})
	if d := time.Since(start); d < testRekeyDeleteDelay*9/10 {
		t.Errorf("the Delete went %v after the switch, before the %v delay", d, testRekeyDeleteDelay)
	}
	steady(t, i, r, 1)
	l.result(t)
}

// TestDataPlaneSoftExpiryRetried: a soft expiry the data plane reports
// (bytes, packets, sequence numbers: one Expire call, no soft time
// configured) whose rekey the peer refuses for a while must be tried
// again until it succeeds; otherwise the SA would run on to its sequence
// limit and stop sending.
func TestDataPlaneSoftExpiryRetried(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := upPair(t, ci, cr)
	first := childSPI(t, i)
	// The responder answers TEMPORARY_FAILURE while it deems the SA busy.
	setState := func(s childState) {
		r.e.do(ctx(t), func() { r.e.sas[firstKey(r.e.sas)].children[0].state = s })
	}
	setState(childDeleting)
	if err := i.e.Expire(first, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a refused rekey", func() bool { return strings.Contains(i.log.String(), "TEMPORARY_FAILURE") })
	setState(childActive)
	waitFor(t, "the retried rekey", func() bool {
		l := i.e.List()
		return len(l) == 1 && len(l[0].Children) == 1 && l[0].Children[0].SPIIn != first
	})
	steady(t, i, r, 1)
}

func firstKey[V any](m map[uint64]V) uint64 {
	for k := range m {
		return k
	}
	return 0
}

// TestChildDeleteAcrossIKERekey: the Delete of a rekeyed Child SA waits
// RekeyDeleteDelay; an IKE SA rekey that starts meanwhile moves the Child
// SAs to the new IKE SA, and the Delete must go with them (not die with
// the old IKE SA's queue), or the old Child SA would stay for ever.
func TestChildDeleteAcrossIKERekey(t *testing.T) {
	defer func(d time.Duration) { testRekeyDeleteDelay = d }(testRekeyDeleteDelay)
	testRekeyDeleteDelay = 30 * time.Millisecond
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	var l lossless
	i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	l.arm()
	for n := range 10 {
		if err := i.e.rekeyChildSPI(ctx(t), childSPI(t, i)); err != nil {
			t.Fatal(err)
		}
		// The IKE rekey is in flight when the Child SA's Delete is due:
		// the responder's loop is held while the request waits.
		held := make(chan struct{})
		go r.e.do(ctx(t), func() { close(held); time.Sleep(time.Duration(40+n%3*20) * time.Millisecond) })
		<-held
		if err := i.e.RekeyIKE(ctx(t), "test"); err != nil {
			t.Fatal(err)
		}
		steady(t, i, r, 1)
	}
	l.result(t)
	if strings.Contains(r.log.String(), "peer did not delete the rekeyed Child SA") {
		t.Error("a Delete of a rekeyed Child SA was lost in an IKE rekey; the responder's grace timer had to clean up")
	}
}

// TestRekeyRetriesDoNotAccumulate: each refused rekey schedules a retry;
// a peer that keeps refusing must leave one pending retry, not a growing
// list of timers for the SA's whole life.
func TestRekeyRetriesDoNotAccumulate(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.IKERekeyTime = time.Hour
	i, _ := upPair(t, ci, cr)
	i.e.do(ctx(t), func() {
		sa := i.e.sas[firstKey(i.e.sas)]
		c := sa.children[0]
		c.rekeyDue = true
		nc, ns := len(c.timers), len(sa.timers)
		for range 50 {
			i.e.retryRekey(c)
			i.e.retryIKERekey(sa)
		}
		if len(c.timers) != nc || len(sa.timers) != ns || c.retry == nil || sa.retry == nil {
			t.Errorf("after 50 retries: child timers %d (was %d), IKE timers %d (was %d), pending retries %v/%v",
				len(c.timers), nc, len(sa.timers), ns, c.retry != nil, sa.retry != nil)
		}
		c.rekeyDue = false
		c.retry.Stop()
		sa.retry.Stop()
	})
}
