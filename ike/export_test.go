package ike

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/iketest"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// cluster is a peer (I, the initiator) and a responder that is two
// engines: the active A and the standby B, which imports what A exports
// and takes A's address over when A stops.
type clusterPair struct {
	i, a, b *peer
	ua      *transport.UDP
	sw      *iketest.SwitchConn
	// hold, while set, withholds A's exports from B (the replication lags),
	// but for those with a request in flight if passPending.
	mu          sync.Mutex
	hold        bool
	passPending bool
	// held are the exports withheld.
	held    int
	exports chan IKESAState
	done    chan struct{}
}

func (c *clusterPair) setHold(h bool) {
	c.mu.Lock()
	c.hold = h
	c.mu.Unlock()
}

func startCluster(t *testing.T, ci, cr Connection) *clusterPair {
	t.Helper()
	ui, err := transport.Listen(addrI, 0, 0)
	if err != nil {
		t.Skipf("cannot listen on %v: %v", addrI, err)
	}
	ua, err := transport.Listen(addrR, 0, 0)
	if err != nil {
		ui.Close()
		t.Skipf("cannot listen on %v (loopback alias): %v", addrR, err)
	}
	iIKE, iNATT := ui.Ports()
	rIKE, rNATT := ua.Ports()
	c := &clusterPair{ua: ua, sw: iketest.NewSwitchConn(rIKE, rNATT), exports: make(chan IKESAState, 1024), done: make(chan struct{})}
	mk := func(tc transport.Conn, conn Connection, rike, rnatt uint16, export func(IKESAState)) *peer {
		p := &peer{inst: NewMemInstaller(), conn: &lossyConn{Conn: tc, count: map[string]int{}, msgs: map[string]int{}}, log: &logBuffer{}}
		cfg := Config{
			Connections: []Connection{conn}, RemoteIKEPort: rike, RemoteNATTPort: rnatt,
			Retransmit:          Retransmit{Timeout: 100 * time.Millisecond, Tries: 3},
			RekeyedInboundDelay: testRekeyedDelay, RekeyDeleteDelay: testRekeyDeleteDelay,
			Logger: slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Export: export,
		}
		e, err := New(cfg, p.conn, p.inst)
		if err != nil {
			t.Fatal(err)
		}
		p.e = e
		return p
	}
	c.i = mk(ui, ci, rIKE, rNATT, nil)
	c.a = mk(ua, cr, iIKE, iNATT, func(s IKESAState) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.hold && !(c.passPending && s.PendingRequest != nil) {
			c.held++
			s.Wipe()
			return
		}
		c.exports <- s
	})
	crb := cr
	c.b = mk(c.sw, crb, iIKE, iNATT, nil)
	go func() {
		defer close(c.done)
		for s := range c.exports {
			if err := c.b.e.Import(s); err != nil {
				t.Errorf("import: %v", err)
			}
			s.Wipe()
		}
	}()
	t.Cleanup(func() {
		c.i.e.Close()
		c.a.e.Close()
		close(c.exports)
		<-c.done
		c.b.e.Close()
		ui.Close()
		ua.Close()
		if t.Failed() {
			for n, p := range map[string]*peer{"peer": c.i, "active": c.a, "standby": c.b} {
				t.Logf("log of %s:\n%s", n, p.log.String())
			}
		}
	})
	return c
}

// replicated waits until B holds A's IKE SA as it is now.
func (c *clusterPair) replicated(t *testing.T) {
	t.Helper()
	waitFor(t, "the standby to hold the active's IKE SA", func() bool {
		la, lb := c.a.e.List(), c.b.e.List()
		if len(la) != 1 || len(lb) != 1 || la[0].SPIi != lb[0].SPIi || la[0].SPIr != lb[0].SPIr || len(la[0].Children) != len(lb[0].Children) {
			return false
		}
		for k := range la[0].Children {
			if la[0].Children[k].SPIIn != lb[0].Children[k].SPIIn {
				return false
			}
		}
		var same bool
		c.a.e.do(ctx(t), func() {
			for _, sa := range c.a.e.sas {
				c.b.e.do(ctx(t), func() {
					sb := c.b.e.sas[sa.localSPI()]
					same = sb != nil && sb.nextMID == sa.nextMID && sb.peerMID == sa.peerMID
				})
			}
		})
		return same
	})
}

// takeover stops A and gives its address (the same ports) to B, which
// activates the replicated IKE SA.
func (c *clusterPair) takeover(t *testing.T) {
	t.Helper()
	ike, natt := c.ua.Ports()
	c.a.e.Close()
	c.ua.Close()
	ub, err := transport.Listen(addrR, ike, natt)
	if err != nil {
		t.Fatalf("standby cannot take the address's ports: %v", err)
	}
	t.Cleanup(func() { ub.Close() })
	c.sw.Attach(ub)
	if n := c.b.e.Activate(nil); n != 1 {
		t.Fatalf("activated %d IKE SAs, want 1", n)
	}
}

// TestTakeoverContinuesIKESA: the standby continues the peer's IKE SA
// after the active stops: the peer's liveness checks are answered with
// the right message IDs, a Child SA rekey and IKE SA rekeys from either
// end work, and the peer never sends a second IKE_SA_INIT. Variants leave
// the standby one exchange behind either way (the active's last state not
// replicated when it dies).
func TestTakeoverContinuesIKESA(t *testing.T) {
	for _, lag := range []string{"none", "peer-ahead", "we-ahead", "we-ahead-unreplicated"} {
		t.Run(lag, func(t *testing.T) {
			ci, cr := pskPair(t, "aes256gcm16-prfsha384-ecp384", "aes128gcm16")
			c := startCluster(t, ci, cr)
			if err := c.i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			steady(t, c.i, c.a, 1)
			// Message IDs away from their start, and a rekeyed Child SA.
			if err := c.i.e.ping(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			if err := c.i.e.rekeyChildSPI(ctx(t), childSPI(t, c.i)); err != nil {
				t.Fatal(err)
			}
			steady(t, c.i, c.a, 1)
			c.replicated(t)
			switch lag {
			case "peer-ahead": // A answered the peer's request, B never heard
				c.setHold(true)
				if err := c.i.e.ping(ctx(t), "test"); err != nil {
					t.Fatal(err)
				}
			case "we-ahead", "we-ahead-unreplicated": // A's request was answered, B never heard (nor of the request)
				c.mu.Lock()
				c.hold, c.passPending = true, lag == "we-ahead"
				c.mu.Unlock()
				if err := c.a.e.ping(ctx(t), "test"); err != nil {
					t.Fatal(err)
				}
			}
			if lag != "none" {
				// A exports after it sent the answer: wait for it.
				waitFor(t, "an export withheld", func() bool {
					c.mu.Lock()
					defer c.mu.Unlock()
					return c.held > 0
				})
			}
			before := c.i.e.List()[0]
			c.takeover(t)
			// The peer's liveness check, answered by B.
			if err := c.i.e.ping(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the standby's message ID probe answered", func() bool {
				var idle bool
				c.b.e.do(ctx(t), func() {
					for _, sa := range c.b.e.sas {
						idle = sa.pending == nil && sa.state == StateEstablished
					}
				})
				return idle
			})
			// A Child SA rekey from the peer, one from B.
			if err := c.i.e.rekeyChildSPI(ctx(t), childSPI(t, c.i)); err != nil {
				t.Fatal(err)
			}
			steady(t, c.i, c.b, 1)
			if err := c.b.e.RekeyChildren(ctx(t), "test", "net"); err != nil {
				t.Fatal(err)
			}
			steady(t, c.i, c.b, 1)
			// IKE SA rekeys from either end.
			if err := c.b.e.RekeyIKE(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			if err := c.i.e.RekeyIKE(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "one IKE SA on each end", func() bool {
				li, lb := c.i.e.List(), c.b.e.List()
				return len(li) == 1 && len(lb) == 1 && li[0].SPIi == lb[0].SPIi && li[0].SPIr == lb[0].SPIr
			})
			if li := c.i.e.List()[0]; li.SPIi == before.SPIi {
				t.Fatal("IKE SA not rekeyed")
			}
			if err := c.i.e.ping(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			checkPairs(t, c.i.inst, c.b.inst, 1)
			if n := c.i.conn.sent("IKE_SA_INIT/req"); n != 1 {
				t.Fatalf("peer sent %d IKE_SA_INIT requests, want 1 (the first)", n)
			}
			if n := c.b.conn.sent("IKE_SA_INIT/resp") + c.b.conn.sent("IKE_SA_INIT/req"); n != 0 {
				t.Fatalf("standby sent %d IKE_SA_INIT messages", n)
			}
			if lag == "peer-ahead" && !hasLine(c.b.log.String(), "one ahead") {
				t.Fatal("standby did not take the peer's request one ahead")
			}
			if strings.HasPrefix(lag, "we-ahead") && !hasLine(c.i.log.String(), "retransmitted request, resending response") {
				t.Fatal("the standby's probe was not answered from the peer's cache")
			}
			// Replicated, A's request in flight is what B retransmits, bitwise
			// (strongSwan ignores a different request under an answered ID).
			if lag == "we-ahead" && !hasLine(c.b.log.String(), "retransmitting the old active's request") {
				t.Fatal("the standby did not retransmit the old active's request")
			}
		})
	}
}

// TestStandbyIsPassive: an imported IKE SA answers nothing and starts
// nothing until Activate, and a Deleted state drops it without touching
// the Installer.
func TestStandbyIsPassive(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-ecp256", "aes128gcm16")
	ci.DPDDelay = 50 * time.Millisecond
	cr.DPDDelay = 50 * time.Millisecond
	c := startCluster(t, ci, cr)
	if err := c.i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, c.i, c.a, 1)
	c.replicated(t)
	// B has the SA, no socket and no timers: nothing leaves it, even with
	// a rekey asked for.
	if err := c.b.e.RekeyIKE(ctx(t), "test"); err == nil {
		t.Fatal("a standby rekeyed a passive IKE SA")
	}
	if err := c.b.e.RekeyChildren(ctx(t), "test", "net"); err == nil {
		t.Fatal("a standby rekeyed a passive Child SA")
	}
	time.Sleep(200 * time.Millisecond)
	for _, k := range []string{"INFORMATIONAL/req", "CREATE_CHILD_SA/req", "INFORMATIONAL/resp"} {
		if n := c.b.conn.sent(k); n != 0 {
			t.Fatalf("standby sent %d %s", n, k)
		}
	}
	if n := c.b.e.Standby(); n != 1 {
		t.Fatalf("standby holds %d passive IKE SAs, want 1", n)
	}
	if l := c.b.e.List(); len(l) != 1 || !l[0].Standby || c.a.e.List()[0].Standby {
		t.Fatalf("List does not tell the passive copy: %+v", l)
	}
	// The active deletes the IKE SA: B drops it, no Installer call.
	if err := c.a.e.Terminate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the standby to drop the IKE SA", func() bool { return c.b.e.Standby() == 0 && len(c.b.e.List()) == 0 })
	if l := c.b.inst.Log(); len(l) != 0 {
		t.Fatalf("standby touched its installer: %v", l)
	}
	_ = message.ExchangeInformational
}

// TestDeactivateActivate: an engine that lets its group go makes the IKE
// SA passive at once (the peer's request meets silence, no timer runs),
// and continues it when the group comes back: the peer's retransmission
// is answered.
func TestDeactivateActivate(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-ecp256", "aes128gcm16")
	c := startCluster(t, ci, cr)
	if err := c.i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, c.i, c.a, 1)
	if n := c.a.e.Deactivate(func(conn string) bool { return conn == "other" }); n != 0 {
		t.Fatalf("deactivated %d IKE SAs of another connection", n)
	}
	if n := c.a.e.Deactivate(nil); n != 1 || c.a.e.Standby() != 1 {
		t.Fatalf("deactivated %d, standby %d", n, c.a.e.Standby())
	}
	if err := c.a.e.RekeyIKE(ctx(t), "test"); err == nil {
		t.Fatal("a passive IKE SA was rekeyed")
	}
	resp0 := c.a.conn.sent("INFORMATIONAL/resp")
	done := make(chan error, 1)
	go func() { done <- c.i.e.Ping(ctx(t), "test") }()
	time.Sleep(150 * time.Millisecond) // the request and a retransmission meet silence
	if n := c.a.conn.sent("INFORMATIONAL/resp"); n != resp0 {
		t.Fatalf("a passive IKE SA answered %d requests", n-resp0)
	}
	if n := c.a.e.Activate(nil); n != 1 {
		t.Fatalf("activated %d", n)
	}
	if err := <-done; err != nil {
		t.Fatalf("the peer's retransmission was not answered after Activate: %v", err)
	}
	if err := c.i.e.rekeyChildSPI(ctx(t), childSPI(t, c.i)); err != nil {
		t.Fatal(err)
	}
	steady(t, c.i, c.a, 1)
}

// TestImportStaleKeepsMovedChild: a standby that gets an older state of
// a rekeyed IKE SA after its successor's (a follower that lists etcd
// again imports the records in key order, not in the order they were
// written) leaves the Child SAs with the successor: the old state still
// lists them, but they moved (an IKE SA rekey), and taken back the new
// owner would carry the tunnel on an IKE SA the peer has deleted.
func TestImportStaleKeepsMovedChild(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-ecp256", "aes128gcm16")
	c := startCluster(t, ci, cr)
	if err := c.i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, c.i, c.a, 1)
	c.replicated(t)
	var old IKESAState
	c.a.e.do(ctx(t), func() {
		for _, sa := range c.a.e.sas {
			old = sa.export(true)
		}
	})
	defer old.Wipe()
	if len(old.Children) != 1 {
		t.Fatalf("the IKE SA's state has %d Child SAs", len(old.Children))
	}
	if err := c.a.e.RekeyIKE(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	var newSPI uint64
	waitFor(t, "the standby to hold the rekeyed IKE SA with the Child SA", func() bool {
		for _, sa := range c.b.e.List() {
			if sa.SPIi != old.SPIi && len(sa.Children) == 1 {
				newSPI = sa.SPIi
				return true
			}
		}
		return false
	})
	// The old state again, late.
	stale := old
	stale.Children = append([]ChildSAState(nil), old.Children...)
	if err := c.b.e.Import(stale); err != nil {
		t.Fatal(err)
	}
	for _, sa := range c.b.e.List() {
		switch {
		case sa.SPIi == newSPI && len(sa.Children) != 1:
			t.Errorf("the rekeyed IKE SA lost its Child SA to its predecessor's late state: %+v", c.b.e.List())
		case sa.SPIi == old.SPIi && len(sa.Children) != 0:
			t.Errorf("the old IKE SA took its moved Child SA back: %+v", c.b.e.List())
		}
	}
}
