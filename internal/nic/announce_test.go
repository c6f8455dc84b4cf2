package nic

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// The vectors are scapy's (python3-scapy 2.5, Debian 12):
//
//	Ether(dst='ff:ff:ff:ff:ff:ff', src=MAC)/ARP(op=1, hwsrc=MAC, psrc=IP,
//	    hwdst='00:00:00:00:00:00', pdst=IP)
//	Ether(dst='33:33:00:00:00:01', src=MAC)/IPv6(src=IP, dst='ff02::1', hlim=255)/
//	    ICMPv6ND_NA(R=r, S=0, O=1, tgt=IP)/ICMPv6NDOptDstLLAddr(lladdr=MAC)
//
// with MAC 02:00:00:00:00:01 and IP 192.0.2.1 or 2001:db8:f::1.
func TestAnnouncementFrames(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"garp", GratuitousARP(mac, netip.MustParseAddr("192.0.2.1")),
			"ffffffffffff02000000000108060001080006040001020000000001c0000201000000000000c0000201"},
		{"na router", UnsolicitedNA(mac, netip.MustParseAddr("2001:db8:f::1"), true),
			"33330000000102000000000186dd6000000000203aff20010db8000f00000000000000000001ff020000000000000000000000000001" +
				"8800790ca000000020010db8000f000000000000000000010201020000000001"},
		{"na host", UnsolicitedNA(mac, netip.MustParseAddr("2001:db8:f::1"), false),
			"33330000000102000000000186dd6000000000203aff20010db8000f00000000000000000001ff020000000000000000000000000001" +
				"8800f90c2000000020010db8000f000000000000000000010201020000000001"},
		{"announcement v4-mapped", Announcement(mac, netip.MustParseAddr("::ffff:192.0.2.1")),
			"ffffffffffff02000000000108060001080006040001020000000001c0000201000000000000c0000201"},
		{"announcement v6", Announcement(mac, netip.MustParseAddr("2001:db8:f::1")),
			"33330000000102000000000186dd6000000000203aff20010db8000f00000000000000000001ff020000000000000000000000000001" +
				"8800790ca000000020010db8000f000000000000000000010201020000000001"},
	} {
		want, err := hex.DecodeString(c.want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got %x\nwant %x", c.name, c.got, want)
		}
	}
}
