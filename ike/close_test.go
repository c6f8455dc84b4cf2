package ike

import (
	"strings"
	"testing"
	"time"
)

// TestCloseActionStart: with close_action start the initiator brings the
// tunnel back when the peer deletes the IKE SA (a peer shutting down) or
// only the Child SA; rekeys, which delete SAs too, trigger nothing.
func TestCloseActionStart(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.CloseAction = CloseStart
	cr.CloseAction = CloseStart // rekeys must not trip it on either end
	i, r := upPair(t, ci, cr)

	// Rekeys delete the old SAs: no close action.
	for _, rekey := range []func() error{
		func() error { return i.e.RekeyIKE(ctx(t), "test") },
		func() error { return r.e.RekeyIKE(ctx(t), "test") },
		func() error { return r.e.rekeyChildSPI(ctx(t), childSPI(t, r)) },
		func() error { return i.e.rekeyChildSPI(ctx(t), childSPI(t, i)) },
	} {
		if err := rekey(); err != nil {
			t.Fatal(err)
		}
		steady(t, i, r, 1)
	}
	time.Sleep(100 * time.Millisecond)
	if s := i.log.String() + r.log.String(); strings.Contains(s, "close_action") {
		t.Fatalf("a rekey took the close action:\n%s", s)
	}
	steady(t, i, r, 1)

	// The peer deletes the Child SA alone: it comes back on the same IKE SA.
	before := i.e.List()[0]
	if err := r.e.terminateChild(ctx(t), "test", "net"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Child SA created again", func() bool {
		ls := i.e.List()
		return len(ls) == 1 && len(ls[0].Children) == 1 && ls[0].Children[0].SPIIn != before.Children[0].SPIIn &&
			ls[0].Children[0].InstalledInOut && ls[0].SPIi == before.SPIi
	})
	steady(t, i, r, 1)

	// The peer deletes the IKE SA: a new one is initiated.
	before = i.e.List()[0]
	if err := r.e.Terminate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new IKE SA", func() bool {
		ls := i.e.List()
		return len(ls) == 1 && ls[0].SPIi != before.SPIi && ls[0].State == StateEstablished && len(ls[0].Children) == 1
	})
	steady(t, i, r, 1)
	if !hasLine(i.log.String(), "close_action start") {
		t.Error("no close action in the log")
	}
}

// TestCloseActionTrap: with close_action trap the policies of the closed
// Child SA stay as traps and nothing is initiated.
func TestCloseActionTrap(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.CloseAction = CloseTrap
	i, r := upPair(t, ci, cr)
	reqID := i.inst.Outbound()[0].ReqID
	if err := r.e.Terminate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the trap", func() bool { return len(i.inst.Traps()) == 1 })
	if got := i.inst.Traps(); got[0] != reqID {
		t.Errorf("trap for reqid %d, want %d", got[0], reqID)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(i.e.List()); n != 0 {
		t.Errorf("close_action trap initiated: %d IKE SAs", n)
	}
}

func TestCloseActionNone(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := upPair(t, ci, cr)
	if err := r.e.Terminate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SAs gone", func() bool { return len(i.e.List()) == 0 && len(i.inst.Outbound()) == 0 })
	time.Sleep(100 * time.Millisecond)
	if n, traps := len(i.e.List()), len(i.inst.Traps()); n != 0 || traps != 0 {
		t.Errorf("close_action none: %d IKE SAs, %d traps", n, traps)
	}
}
