package ike

import (
	"bytes"
	"math/bits"
	"testing"
	"unsafe"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad/replay"
)

// TestReplayWindowDefault: a Child SA whose config names no window gets
// DefaultReplayWindow, one that names a window gets that one.
func TestReplayWindowDefault(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured int
		want       int
	}{{"default", 0, DefaultReplayWindow}, {"configured", 64, 64}, {"large", 8192, 8192}} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			ci.Children[0].ReplayWindow, cr.Children[0].ReplayWindow = tc.configured, tc.configured
			i, r := startPair(t, ci, cr)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			for _, c := range append(i.inst.Inbound(), r.inst.Inbound()...) {
				if c.ReplayWindow != tc.want {
					t.Errorf("inbound SA %08x: replay window %d, want %d", c.SPI, c.ReplayWindow, tc.want)
				}
			}
		})
	}
}

// idleState reports, on the engine's loop, whether any IKE SA keeps a
// protector, or the IKE_SA_INIT messages (or their retransmission entry).
func idleState(t *testing.T, p *peer) (sas, withProtector, withInit int) {
	t.Helper()
	if !p.e.do(ctx(t), func() {
		for _, sa := range p.e.sas {
			sas++
			if sa.out != nil {
				withProtector++
			}
			if sa.initReq != nil || sa.initResp != nil || p.e.byInit[sa.hoKey] == sa {
				withInit++
			}
		}
	}) {
		t.Fatal("engine loop did not answer")
	}
	return
}

// TestIdleIKESAKeepsNoCipherState: an established IKE SA holds its keys but
// no protector and no IKE_SA_INIT messages, on both ends, and still
// protects later exchanges (DPD in both directions).
func TestIdleIKESAKeepsNoCipherState(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	for round := range 3 {
		for _, p := range []*peer{i, r} {
			if err := p.e.ping(ctx(t), "test"); err != nil {
				t.Fatalf("round %d: ping: %v", round, err)
			}
		}
		for side, p := range []*peer{i, r} {
			sas, prot, init := idleState(t, p)
			if sas != 1 || prot != 0 || init != 0 {
				t.Fatalf("round %d side %d: %d IKE SAs, %d keep a protector, %d keep IKE_SA_INIT", round, side, sas, prot, init)
			}
		}
	}
}

// TestSealerKeepsProtectorPastBound: per-message protectors seal with
// random-mask IVs up to maxRandomIVSeals messages, then the SA keeps one
// protector whose IVs count; every message opens at the peer and no IV
// repeats.
func TestSealerKeepsProtectorPastBound(t *testing.T) {
	_, sa, _ := establishedResponder(t)
	peerSA := *sa
	peerSA.initiator = !sa.initiator
	peerSA.out = nil
	ivs := map[string]bool{}
	payload := []message.Payload{notify(message.NotifyType(40000), []byte("hello"))}
	sa.outSeals = maxRandomIVSeals - 3
	for n := range 6 {
		msgs, err := sa.encode(message.ExchangeInformational, true, uint32(n), payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("message %d: %d datagrams", n, len(msgs))
		}
		raw := msgs[0]
		m, err := message.Decode(raw)
		if err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
		got, err := peerSA.decrypt(raw, m)
		if err != nil {
			t.Fatalf("message %d does not open at the peer: %v", n, err)
		}
		nt, _ := got.Get(message.PayloadNotify).(*message.Notify)
		if nt == nil || !bytes.Equal(nt.Data, []byte("hello")) {
			t.Fatalf("message %d: payloads %v", n, got)
		}
		sk := raw[message.HeaderLen+4:]
		iv := string(sk[:8])
		if ivs[iv] {
			t.Fatalf("message %d repeats IV %x", n, iv)
		}
		ivs[iv] = true
		kept := sa.out != nil
		if want := sa.outSeals >= maxRandomIVSeals; kept != want {
			t.Fatalf("message %d (%d seals): protector kept %v, want %v", n, sa.outSeals, kept, want)
		}
	}
	if sa.out == nil {
		t.Fatal("no protector kept past the bound")
	}
	// New keys (an IKE SA rekey derives them on a new SA; checkProtectors
	// runs whenever keys are set) start a new count.
	if err := sa.checkProtectors(); err != nil {
		t.Fatal(err)
	}
	if sa.out != nil || sa.outSeals != 0 {
		t.Fatalf("after new keys: protector %v, %d seals", sa.out != nil, sa.outSeals)
	}
	sa.destroy()
}

// TestIKESASize keeps the IKE SA in the 704-byte allocation class and the
// Child SA in the 288-byte one: a gateway holds 100,000 of each (issue 4).
// A new field that breaks this should pack with the small ones at the end
// of the struct or live behind a pointer that idle SAs leave nil.
func TestIKESASize(t *testing.T) {
	if n := unsafe.Sizeof(ikeSA{}); n > 704 {
		t.Errorf("ikeSA is %d bytes, over the 704-byte size class", n)
	}
	if n := unsafe.Sizeof(childSA{}); n > 288 {
		t.Errorf("childSA is %d bytes, over the 288-byte size class", n)
	}
}

// TestDefaultReplayWindowGeometry: DefaultReplayWindow is taken as it is
// (no rounding up by sad/replay) and is the largest such window of the
// smallest ring, as its comment says: one more block of 64 needs twice the
// ring.
func TestDefaultReplayWindowGeometry(t *testing.T) {
	w, err := replay.New(DefaultReplayWindow, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != DefaultReplayWindow {
		t.Fatalf("window %d becomes %d", DefaultReplayWindow, w.Size())
	}
	ring := func(size int) int {
		// sad/replay's ring: the next power of two above size/32 slots.
		return 1 << bits.Len(uint(size/32))
	}
	if got, next := ring(DefaultReplayWindow), ring(DefaultReplayWindow+replay.SizeMultiple); got != 32 || next != 2*got {
		t.Fatalf("ring of %d slots, %d for the next size up", got, next)
	}
}
