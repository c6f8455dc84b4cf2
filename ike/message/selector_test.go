package message

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestPrefixSelector(t *testing.T) {
	for _, tc := range []struct {
		prefix     string
		typ        TSType
		start, end string
	}{
		{"10.1.0.0/16", TSIPv4AddrRange, "10.1.0.0", "10.1.255.255"},
		{"10.1.2.3/16", TSIPv4AddrRange, "10.1.0.0", "10.1.255.255"}, // host bits masked
		{"192.0.2.7/32", TSIPv4AddrRange, "192.0.2.7", "192.0.2.7"},
		{"0.0.0.0/0", TSIPv4AddrRange, "0.0.0.0", "255.255.255.255"},
		{"10.0.0.0/13", TSIPv4AddrRange, "10.0.0.0", "10.7.255.255"},
		{"2001:db8::/64", TSIPv6AddrRange, "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"},
		{"::/0", TSIPv6AddrRange, "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	} {
		s := PrefixSelector(netip.MustParsePrefix(tc.prefix))
		if s.Type != tc.typ || s.StartAddr.String() != tc.start || s.EndAddr.String() != tc.end ||
			s.IPProtocol != 0 || s.StartPort != 0 || s.EndPort != 0xffff {
			t.Errorf("%s: %+v, want %v %s-%s any protocol and port", tc.prefix, s, tc.typ, tc.start, tc.end)
		}
	}
}

// The vectors are Python's hashlib.sha1 over the RFC 7296 §2.23 layout
// (SPIi, SPIr, address, port, big-endian), not this package's code.
func TestNATDetectionHash(t *testing.T) {
	for _, tc := range []struct {
		spiI, spiR uint64
		ap, want   string
	}{
		{0x0102030405060708, 0, "192.0.2.1:500", "644b4575455bd6fcc1efe2be8162a9218e448e5f"},
		{0x0102030405060708, 0x1112131415161718, "[2001:db8::1]:4500", "1ee24423bf8f59515e0265c6d0f08be3d038f7e5"},
		// A v4-mapped address hashes as the IPv4 address it is.
		{0x0102030405060708, 0, "[::ffff:192.0.2.1]:500", "644b4575455bd6fcc1efe2be8162a9218e448e5f"},
	} {
		if got := hex.EncodeToString(NATDetectionHash(tc.spiI, tc.spiR, netip.MustParseAddrPort(tc.ap))); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.ap, got, tc.want)
		}
	}
}
