package message

import (
	"net/netip"
	"testing"
)

func TestCheckNAT(t *testing.T) {
	const spiI, spiR = 0x1122334455667788, 0x99aabbccddeeff00
	local := netip.MustParseAddrPort("192.0.2.1:500")
	remote := netip.MustParseAddrPort("198.51.100.2:500")
	other := netip.MustParseAddrPort("203.0.113.9:4500")
	natd := func(typ NotifyType, ap netip.AddrPort) Payload {
		return &Notify{NotifyType: typ, Data: NATDetectionHash(spiI, spiR, ap)}
	}
	for _, tc := range []struct {
		name                         string
		ps                           Payloads
		peerNAT, localNAT, supported bool
	}{
		{"no NAT", Payloads{natd(NotifyNATDetectionSourceIP, remote), natd(NotifyNATDetectionDestinationIP, local)}, false, false, true},
		{"peer behind NAT", Payloads{natd(NotifyNATDetectionSourceIP, other), natd(NotifyNATDetectionDestinationIP, local)}, true, false, true},
		{"we are behind NAT", Payloads{natd(NotifyNATDetectionSourceIP, remote), natd(NotifyNATDetectionDestinationIP, other)}, false, true, true},
		{"one of several source hashes matches", Payloads{natd(NotifyNATDetectionSourceIP, other), natd(NotifyNATDetectionSourceIP, remote), natd(NotifyNATDetectionDestinationIP, local)}, false, false, true},
		{"no destination hash: no NAT-T", Payloads{natd(NotifyNATDetectionSourceIP, other)}, false, false, false},
		{"none", nil, false, false, false},
	} {
		p, l, s := CheckNAT(tc.ps, spiI, spiR, local, remote)
		if p != tc.peerNAT || l != tc.localNAT || s != tc.supported {
			t.Errorf("%s: CheckNAT = %v, %v, %v; want %v, %v, %v", tc.name, p, l, s, tc.peerNAT, tc.localNAT, tc.supported)
		}
	}
}
