package ike

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/sad"
)

// flowingInstaller reports outbound ESP that never stops: each look at an
// outbound SA finds more packets sent.
type flowingInstaller struct {
	*MemInstaller
	n atomic.Uint64
}

func (f *flowingInstaller) OutboundPackets(spi uint32) (uint64, bool) { return f.n.Add(1), true }

// TestNATKeepalive: the end behind a NAT sends NAT-T keepalives (RFC 3948
// §2.3) on an idle tunnel, one per interval; the end that is not behind a
// NAT, an end with no NAT at all, one whose ESP flows and one with
// keepalives off send none.
func TestNATKeepalive(t *testing.T) {
	const interval = 60 * time.Millisecond
	const idle = 10 * interval
	for _, tc := range []struct {
		name       string
		natI       bool // the initiator claims to be behind a NAT (ForceEncap)
		keepalive  time.Duration
		flowing    bool
		minI, maxI int32
	}{
		{name: "behind-nat-idle", natI: true, keepalive: interval, minI: 5, maxI: 11},
		{name: "no-nat", keepalive: interval},
		{name: "behind-nat-esp-flows", natI: true, keepalive: interval, flowing: true},
		{name: "behind-nat-off", natI: true, keepalive: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			ci.ForceEncap = tc.natI
			ci.Keepalive, cr.Keepalive = tc.keepalive, tc.keepalive
			var wrap func(int, *MemInstaller) Installer
			if tc.flowing {
				wrap = func(side int, m *MemInstaller) Installer { return &flowingInstaller{MemInstaller: m} }
			}
			i, r := startPairWith(t, ci, cr, addrI, addrR, wrap)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			steady(t, i, r, 1)
			time.Sleep(idle)
			// Both counts are read on the engine's goroutine, which sends
			// the keepalives: none can go out between the two reads.
			var ki int32
			var sent uint64
			i.e.do(ctx(t), func() { ki, sent = i.conn.keepalives.Load(), i.e.KeepalivesSent() })
			kr := r.conn.keepalives.Load()
			if ki < tc.minI || ki > tc.maxI || kr != 0 {
				t.Fatalf("keepalives in %v idle: initiator %d (want %d..%d), responder %d (want 0)", idle, ki, tc.minI, tc.maxI, kr)
			}
			if uint64(ki) != sent {
				t.Fatalf("KeepalivesSent() = %d, %d sent", sent, ki)
			}
			// The peer takes keepalives for what they are: the tunnel stays up.
			if err := i.e.ping(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestKeepaliveHeldByIKE: IKE messages on the flow count as traffic, so
// an end that keeps sending them sends no keepalive in between.
func TestKeepaliveHeldByIKE(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.ForceEncap = true
	ci.Keepalive = 200 * time.Millisecond
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	for range 12 {
		if err := i.e.ping(ctx(t), "test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := i.conn.keepalives.Load(); n != 0 {
		t.Fatalf("%d keepalives while IKE messages went out every 50 ms", n)
	}
}

// TestChildSAsFollowPeer: when the IKE SA follows its peer to a new
// address and port (the peer is behind a NAT whose mapping changed, RFC
// 7296 §2.23), the outbound Child SA moves with it: new remote address,
// new UDP destination port. Without a NAT the IKE SA stays (followPeer),
// and so does the Child SA.
func TestChildSAsFollowPeer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		encap bool // the initiator claims a NAT: the responder sees its peer behind one
	}{{"peer-behind-nat", true}, {"no-nat", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			ci.ForceEncap = tc.encap
			i, r := startPair(t, ci, cr)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			steady(t, i, r, 1)
			before := r.inst.Outbound()[0]
			moved := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), 40123)
			done := make(chan struct{})
			r.e.post(func() {
				defer close(done)
				for _, sa := range r.e.sas {
					if sa.state == StateEstablished {
						sa.followPeer(transport.Packet{Local: sa.local, Remote: moved})
					}
				}
			})
			<-done
			after := r.inst.Outbound()
			if len(after) != 1 || after[0].SPI != before.SPI {
				t.Fatalf("outbound SAs %+v, want %08x only", after, before.SPI)
			}
			a := after[0]
			wantRemote, wantEncap := before.Remote, before.Encap
			if tc.encap {
				wantRemote, wantEncap = moved.Addr(), sad.UDPEncap{SrcPort: before.Encap.SrcPort, DstPort: moved.Port()}
			}
			if a.Remote != wantRemote || a.Local != before.Local || a.Encap != wantEncap {
				t.Fatalf("after the move: local %v remote %v encap %+v; want %v %v %+v", a.Local, a.Remote, a.Encap, before.Local, wantRemote, wantEncap)
			}
			// The keys and the rest of the SA stay.
			if string(a.Key) != string(before.Key) || a.ReqID != before.ReqID {
				t.Fatal("the moved SA lost its keys or its policy")
			}
		})
	}
}
