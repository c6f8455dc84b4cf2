package daemon

import (
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
)

// TestIKEInstallerMove: moving an outbound Child SA publishes a copy with
// the new peer address and UDP port in the policy, the old one dies, the
// sequence numbers go on, and a rekey's replacement that the policy points
// at is left alone.
func TestIKEInstallerMove(t *testing.T) {
	d, p := ikeTestDaemon(t)
	full := []sad.Selector{sel("198.18.1.0/24", "198.18.2.0/24"), sel("2001:db8:a::/64", "2001:db8:b::/64")}
	cfg := childSA(0x2222, sad.Outbound, 1)
	cfg.Encap = sad.UDPEncap{SrcPort: 4500, DstPort: 4500}
	if err := p.InstallOutbound(cfg, full); err != nil {
		t.Fatal(err)
	}
	pol := lookup(d, "198.18.1.5", "198.18.2.5")
	old := pol.SA.Load()
	old.ReserveSeq(10)
	old.Counters.Packets.Add(10)
	if n, ok := p.OutboundPackets(0x2222); !ok || n != 10 {
		t.Fatalf("OutboundPackets = %d, %v", n, ok)
	}
	remote := netip.MustParseAddr("198.51.100.9")
	if err := p.MoveOutbound(0x2222, cfg.Local, remote, sad.UDPEncap{SrcPort: 4500, DstPort: 61000}); err != nil {
		t.Fatal(err)
	}
	sa := pol.SA.Load()
	if sa == old || sa.Remote != remote || sa.Encap.DstPort != 61000 || sa.SPI != 0x2222 {
		t.Fatalf("policy sends with %v to %v %+v", sa, sa.Remote, sa.Encap)
	}
	if v6 := lookup(d, "2001:db8:a::5", "2001:db8:b::5").SA.Load(); v6 != sa {
		t.Fatal("the v6 policy still points at the old SA")
	}
	if old.Usable() || !sa.Usable() {
		t.Fatal("the old SA is still usable, or the new one is not")
	}
	if first, got := sa.ReserveSeq(1); first != 11 || got != 1 {
		t.Fatalf("after the move: %d sequence numbers from %d, want 1 from 11", got, first)
	}
	if n, _ := p.OutboundPackets(0x2222); n != 10 {
		t.Fatalf("counters lost in the move: %d", n)
	}
	if p.d.store.Retired() != 0 {
		t.Fatal("the moved SA's keys are queued for wiping")
	}
	// A rekey's new SA holds the policy; moving the old one leaves it.
	if err := p.InstallOutbound(childSA(0x4444, sad.Outbound, 1), full); err != nil {
		t.Fatal(err)
	}
	if err := p.MoveOutbound(0x2222, cfg.Local, netip.MustParseAddr("198.51.100.10"), sad.UDPEncap{SrcPort: 4500, DstPort: 61001}); err != nil {
		t.Fatal(err)
	}
	if pol.SA.Load().SPI != 0x4444 {
		t.Fatal("moving the replaced SA repointed the policy at it")
	}
	if err := p.MoveOutbound(0x9999, cfg.Local, remote, sad.UDPEncap{}); err == nil {
		t.Fatal("moved an SA that is not installed")
	}
	// Deleting the moved SA buries the copy, whose keys are wiped once.
	if err := p.Delete(0x2222, sad.Outbound); err != nil {
		t.Fatal(err)
	}
	if p.d.store.Retired() != 1 {
		t.Fatalf("%d SAs retired, want 1", p.d.store.Retired())
	}
}
