package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

func withMTU(p *gwPair, mtu int) {
	for _, w := range []*Worker{p.a, p.b} {
		w.cfg.WANMTU = mtu
		w.cfg.ICMPSrc4 = netip.MustParseAddr("198.18.1.1")
		w.cfg.ICMPSrc6 = netip.MustParseAddr("2001:db8:a::1")
	}
}

// TestTooBig: an IPv4 packet with DF and an IPv6 packet that will not fit
// the WAN MTU once encapsulated get an ICMP error back to their sender,
// carrying the largest inner size that does fit; nothing goes to the WAN.
func TestTooBig(t *testing.T) {
	p := newPair(t, pairOpts{})
	withMTU(p, 1400)
	fit := esp.MaxInner(p.saAB, 1400, 20)
	p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", fit-28, 1))   // fits exactly
	p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", fit-28+1, 2)) // one byte too many, DF set
	big6 := frame("2001:db8:a::10", "2001:db8:b::20", 1400, 3)
	p.aLAN.Inject(big6)
	p.a.Poll()
	if n := len(collect(p.aWAN)); n != 1 {
		t.Fatalf("%d packets on the WAN, want only the one that fits", n)
	}
	back := collect(p.aLAN)
	if len(back) != 2 {
		t.Fatalf("%d ICMP errors, want 2; %+v", len(back), p.a.Stats())
	}
	v4 := back[0][14:]
	if v4[9] != packet.ProtoICMP || v4[20] != 3 || v4[21] != 4 {
		t.Fatalf("not an ICMP frag-needed: % x", v4[:24])
	}
	if mtu := binary.BigEndian.Uint16(v4[26:]); int(mtu) != fit {
		t.Fatalf("ICMP says MTU %d, want %d", mtu, fit)
	}
	if !bytes.Equal(v4[16:20], []byte{198, 18, 1, 10}) || packet.Checksum(v4[:20], 0) != 0 || packet.Checksum(v4[20:], 0) != 0 {
		t.Fatal("ICMP v4 addressed or summed wrong")
	}
	if len(v4) > 576 {
		t.Fatalf("ICMP v4 error is %d bytes, over 576", len(v4))
	}
	v6 := back[1][14:]
	if v6[6] != packet.ProtoICMPv6 || v6[40] != 2 {
		t.Fatalf("not an ICMPv6 packet too big")
	}
	if mtu := binary.BigEndian.Uint32(v6[44:]); mtu != 1280 && int(mtu) != esp.MaxInner(p.saAB, 1400, 40) {
		t.Fatalf("ICMPv6 MTU %d", mtu)
	}
	if packet.Checksum(v6[40:], packet.PseudoSum(v6[8:24], v6[24:40], packet.ProtoICMPv6, len(v6)-40)) != 0 {
		t.Fatal("ICMPv6 checksum")
	}
	if !bytes.Equal(v6[48:48+40], big6[14:14+40]) {
		t.Fatal("ICMPv6 does not quote the offending header")
	}
	s := p.a.Stats()
	if s.Counts[ICMPTooBig] != 2 || s.Drops[sad.ErrTooBig] != 2 {
		t.Fatalf("stats %+v", s)
	}
	checkNoLeak(t, p)
}

// TestTooBigRateLimit: ICMP errors are rate-limited per worker, the
// packets dropped and counted all the same.
func TestTooBigRateLimit(t *testing.T) {
	p := newPair(t, pairOpts{})
	withMTU(p, 1000)
	p.a.cfg.ICMPRate = 5
	for i := 0; i < 40; i++ {
		p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 1200, uint32(i)))
	}
	p.a.Poll()
	if n := len(collect(p.aLAN)); n != 5 {
		t.Fatalf("%d ICMP errors at a rate of 5/s", n)
	}
	if d := p.a.Stats().Drops[sad.ErrTooBig]; d != 40 {
		t.Fatalf("%d too-big drops, want 40", d)
	}
	checkNoLeak(t, p)
}

// TestPreFragment: an IPv4 packet without DF that will not fit is split
// before encryption; each fragment travels in its own ESP packet within
// the MTU, and the far side delivers fragments that reassemble to the
// original packet.
func TestPreFragment(t *testing.T) {
	for _, cross := range []bool{false, true} {
		p := newPair(t, pairOpts{cross: cross})
		const mtu = 600
		withMTU(p, mtu)
		orig := frame("198.18.1.10", "198.18.2.20", 1600, 9)
		orig[14+6] = 0 // DF clear
		binary.BigEndian.PutUint16(orig[14+10:], 0)
		binary.BigEndian.PutUint16(orig[14+10:], packet.IPv4HeaderChecksum(orig[14:34]))
		want := append([]byte(nil), orig[14:]...)
		p.aLAN.Inject(orig)
		p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", 100, 10)) // a small one beside it
		p.a.Poll()
		var n int
		p.aWAN.Drain(func(f []byte) {
			if len(f)-14 > mtu {
				t.Fatalf("ESP packet of %d bytes over the %d MTU", len(f)-14, mtu)
			}
			p.bWAN.Inject(f)
			n++
		})
		per := (esp.MaxInner(p.saAB, mtu, 20) - 20) &^ 7
		frags := (len(want) - 20 + per - 1) / per
		if frags < 3 || n != frags+1 {
			t.Fatalf("cross=%v: %d ESP packets, want %d fragments and the small packet; %+v", cross, n, frags, p.a.Stats())
		}
		p.b.Poll()
		got := collect(p.bLAN)
		if len(got) != frags+1 {
			t.Fatalf("B delivered %d", len(got))
		}
		// Reassemble the fragments (every delivered packet but the small one).
		data := make([]byte, len(want)-20)
		seen := 0
		for _, f := range got {
			ip := f[14:]
			if packet.Checksum(ip[:20], 0) != 0 {
				t.Fatal("fragment header checksum")
			}
			fo := binary.BigEndian.Uint16(ip[6:])
			if fo&0x3fff == 0 {
				continue // the small packet
			}
			off := int(fo&0x1fff) * 8
			seen += copy(data[off:], ip[20:binary.BigEndian.Uint16(ip[2:])])
		}
		if seen != len(data) || !bytes.Equal(data, want[20:]) {
			t.Fatalf("fragments do not reassemble to the original (%d of %d bytes)", seen, len(data))
		}
		if s := p.a.Stats(); s.Counts[Fragmented] != 1 || s.Counts[Fragments] != uint64(frags) {
			t.Fatalf("stats %+v", s)
		}
		checkNoLeak(t, p)
	}
}

// TestPathMTUPerSA: a path MTU learned for the SA (ICMP from the path,
// RFC 4301 §8.2) lowers the MTU for that SA's packets below the WAN's:
// the "too big" carries the smaller size; SetWANMTU changes the WAN MTU
// at the next poll.
func TestPathMTUPerSA(t *testing.T) {
	p := newPair(t, pairOpts{})
	withMTU(p, 1500)
	send := func(n int) (wan int, icmpMTU int) {
		p.aLAN.Inject(frame("198.18.1.10", "198.18.2.20", n-28, 1))
		p.a.Poll()
		wan = len(collect(p.aWAN))
		if back := collect(p.aLAN); len(back) == 1 {
			icmpMTU = int(binary.BigEndian.Uint16(back[0][14+26:]))
		}
		return
	}
	fit := esp.MaxInner(p.saAB, 1500, 20)
	if w, m := send(fit); w != 1 || m != 0 {
		t.Fatalf("at the WAN MTU: %d sent, ICMP %d", w, m)
	}
	p.saAB.LowerPathMTU(1300, time.Now())
	if w, m := send(fit); w != 0 || m != esp.MaxInner(p.saAB, 1300, 20) {
		t.Fatalf("after path MTU 1300: %d sent, ICMP says %d, want %d", w, m, esp.MaxInner(p.saAB, 1300, 20))
	}
	if w, _ := send(esp.MaxInner(p.saAB, 1300, 20)); w != 1 {
		t.Fatal("a packet that fits the path MTU was not sent")
	}
	p.a.SetWANMTU(1200) // the WAN itself shrinks below the path MTU
	if w, m := send(1200); w != 0 || m != esp.MaxInner(p.saAB, 1200, 20) {
		t.Fatalf("after SetWANMTU(1200): %d sent, ICMP says %d", w, m)
	}
	checkNoLeak(t, p)
}
