package packet

import (
	"net/netip"
	"testing"
)

// TestFlowKeyEqual: Equal agrees with == on keys that differ in each field
// in turn (including an IPv4 address against its IPv4-mapped IPv6 form,
// which == tells apart) and on equal keys.
func TestFlowKeyEqual(t *testing.T) {
	base := FlowKey{
		Src: netip.MustParseAddr("198.18.1.10"), Dst: netip.MustParseAddr("198.18.2.20"),
		Proto: ProtoUDP, SrcPort: 1000, DstPort: 2000,
	}
	alter := []func(k *FlowKey){
		func(k *FlowKey) {},
		func(k *FlowKey) { k.Src = netip.MustParseAddr("198.18.1.11") },
		func(k *FlowKey) { k.Dst = netip.MustParseAddr("198.18.2.21") },
		func(k *FlowKey) { k.Src = netip.MustParseAddr("::ffff:198.18.1.10") },
		func(k *FlowKey) { k.Dst = netip.MustParseAddr("2001:db8::20") },
		func(k *FlowKey) { k.Proto = ProtoTCP },
		func(k *FlowKey) { k.SrcPort = 1001 },
		func(k *FlowKey) { k.DstPort = 2001 },
		func(k *FlowKey) { k.Src = netip.Addr{} },
	}
	for i, f := range alter {
		k := base
		f(&k)
		if got, want := base.Equal(&k), base == k; got != want || k.Equal(&base) != want {
			t.Errorf("case %d: Equal = %v, == says %v", i, got, want)
		}
	}
}
