package ike

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/ike/transport"
)

// TestAcquire: an acquire on an idle trap connection initiates; acquires
// while that runs, and once the child is up, coalesce; after the Child SA
// alone is deleted an acquire creates it again on the same IKE SA.
func TestAcquire(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.StartAction = StartTrap
	i, r := startPair(t, ci, cr)
	if n := len(i.e.List()); n != 0 {
		t.Fatalf("a trap connection started on its own: %d IKE SAs", n)
	}
	res, err := i.e.Acquire(ctx(t), "test", "net")
	if err != nil || res != AcquireIKE {
		t.Fatalf("first acquire: %v, %v; want %v", res, err, AcquireIKE)
	}
	// A burst of acquires for the same child while IKE_SA_INIT runs.
	for range 5 {
		if res, err := i.e.Acquire(ctx(t), "test", ""); err != nil || res != AcquireCoalesced {
			t.Fatalf("acquire during the negotiation: %v, %v", res, err)
		}
	}
	waitFor(t, "the trapped Child SA", func() bool { return len(r.inst.Outbound()) == 1 && len(i.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	if res, err := i.e.Acquire(ctx(t), "test", "net"); err != nil || res != AcquireCoalesced {
		t.Fatalf("acquire with the Child SA up: %v, %v", res, err)
	}
	if n := len(i.e.List()); n != 1 {
		t.Fatalf("%d IKE SAs after the acquires, want 1", n)
	}
	// The Child SA goes; the IKE SA stays and carries the next one.
	if err := i.e.terminateChild(ctx(t), "test", "net"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Child SA deleted", func() bool { return len(i.inst.Outbound()) == 0 && len(r.inst.Outbound()) == 0 })
	if res, err := i.e.Acquire(ctx(t), "test", "net"); err != nil || res != AcquireChild {
		t.Fatalf("acquire on the bare IKE SA: %v, %v; want %v", res, err, AcquireChild)
	}
	if res, err := i.e.Acquire(ctx(t), "test", "net"); err != nil || res != AcquireCoalesced {
		t.Fatalf("acquire with CREATE_CHILD_SA under way: %v, %v", res, err)
	}
	waitFor(t, "the Child SA back", func() bool { return len(r.inst.Outbound()) == 1 && len(i.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	if n := len(i.e.List()); n != 1 {
		t.Fatalf("%d IKE SAs, want 1", n)
	}
	// The IKE SA goes too: the next acquire initiates again.
	if err := i.e.Terminate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the IKE SA gone", func() bool { return len(i.e.List()) == 0 && len(i.inst.Outbound()) == 0 })
	if res, err := i.e.Acquire(ctx(t), "test", "net"); err != nil || res != AcquireIKE {
		t.Fatalf("acquire after terminate: %v, %v; want %v", res, err, AcquireIKE)
	}
	waitFor(t, "the tunnel back", func() bool { return len(r.inst.Outbound()) == 1 && len(i.inst.Outbound()) == 1 })
}

func TestAcquireErrors(t *testing.T) {
	ci, _ := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, _ := startPair(t, ci, Connection{})
	if _, err := i.e.Acquire(ctx(t), "nope", ""); err == nil {
		t.Error("acquire of an unknown connection succeeded")
	}
	if _, err := i.e.Acquire(ctx(t), "test", "nope"); err == nil {
		t.Error("acquire of an unknown child succeeded")
	}
	if n := len(i.e.List()); n != 0 {
		t.Errorf("failed acquires started %d IKE SAs", n)
	}
}

func TestStartTrapNeedsRemote(t *testing.T) {
	ci, _ := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.StartAction = StartTrap
	if err := ci.Validate(); err != nil {
		t.Fatalf("valid trap connection refused: %v", err)
	}
	ci.RemoteAddr = netip.Addr{}
	if err := ci.Validate(); err == nil {
		t.Fatal("trap without a remote address accepted")
	}
}

// TestSpoofedInitHoldsNothingOff: a half-open responder IKE SA, which
// anyone can make with one IKE_SA_INIT from the peer's address, does not
// count as the connection being on its way: an acquire still initiates,
// and so does a restart (DPD, close_action).
func TestSpoofedInitHoldsNothingOff(t *testing.T) {
	_, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	cr.LocalAddr, cr.RemoteAddr = fuzzLocal.Addr(), fuzzRemote.Addr()
	mc := newMemConn()
	e, err := newEngine(Config{Connections: []Connection{cr}}, mc, NewMemInstaller())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(e.quit) })
	initiated := func() int {
		n := 0
		for _, sa := range e.sas {
			if sa.initiator {
				n++
			}
		}
		return n
	}
	e.receive(transport.Packet{Data: initRequest(t), Local: fuzzLocal, Remote: fuzzRemote})
	if len(e.halfOpen) != 1 {
		t.Fatalf("%d half-open SAs after one IKE_SA_INIT, want 1", len(e.halfOpen))
	}
	if res, err := e.acquire("test", "net"); err != nil || res != AcquireIKE {
		t.Fatalf("acquire beside a half-open responder SA: %v, %v; want %v", res, err, AcquireIKE)
	}
	if n := initiated(); n != 1 {
		t.Fatalf("%d IKE SAs initiated, want 1", n)
	}
	for _, sa := range e.sas {
		if sa.initiator {
			e.forget(sa)
		}
	}
	e.restart(e.connection("test"))
	if n := initiated(); n != 1 {
		t.Fatalf("restart beside a half-open responder SA initiated %d IKE SAs, want 1", n)
	}
}
