package fastpath

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// TestOuterFragment: over a WAN of 1280 (and 1300, 1350) bytes, an IPv6
// packet of up to 1280 bytes that does not fit once sealed leaves as
// outer fragments (IPv4 fragments or an IPv6 Fragment header, each at most
// the MTU), which the peer reassembles and opens: the packet arrives
// intact. A larger IPv6 packet gets "packet too big" saying 1280 and IPv4
// with DF its exact size, as before; nothing is fragmented for them. With
// a VLAN the fragments are tagged. Allocation-free.
func TestOuterFragment(t *testing.T) {
	for _, o := range []pairOpts{{}, {v6: true}, {udp: true}, {v6: true, udp: true}, {cross: true}, {suite: "aes256-sha512", v6: true}} {
		for _, mtu := range []int{1280, 1300, 1350} {
			t.Run(fmt.Sprintf("%s/v6=%v/udp=%v/cross=%v/%d", o.suite, o.v6, o.udp, o.cross, mtu), func(t *testing.T) {
				p := newPair(t, o)
				withMTU(p, mtu)
				p.a.cfg.WANVLAN, p.b.cfg.WANVLAN = 100, 100
				fit := esp.MaxInner(p.saAB, mtu, 40)
				var sizes []int // IPv6 total lengths that need the outer fragments
				for _, n := range []int{1280, 1279, 1272, fit + 1} {
					if n > fit && n <= 1280 {
						sizes = append(sizes, n)
					}
				}
				if len(sizes) == 0 {
					t.Skipf("a 1280-byte packet fits (MaxInner %d)", fit)
				}
				var want [][]byte
				for i, n := range sizes {
					f := frame("2001:db8:a::10", "2001:db8:b::20", n-48, uint32(i))
					want = append(want, f)
					p.aLAN.Inject(f)
				}
				p.aLAN.Inject(frame("2001:db8:a::10", "2001:db8:b::20", 1281-48, 90)) // past 1280: too big
				p.aLAN.Inject(frame("2001:db8:a::10", "2001:db8:b::20", 100, 91))     // fits: one ESP packet
				want = append(want, frame("2001:db8:a::10", "2001:db8:b::20", 100, 91))
				before := p.a.Stats()
				p.a.Poll()
				s := p.a.Stats()
				var frags, whole int
				p.aWAN.Drain(func(f []byte) {
					ip := untagged(t, f, 100)[14:]
					if len(ip) > mtu {
						t.Fatalf("a %d-byte packet on a %d-byte WAN", len(ip), mtu)
					}
					if o.v6 && ip[6] == packet.ProtoFragment || !o.v6 && binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
						frags++
						if !o.v6 && ip[6]&0x40 != 0 {
							t.Fatal("outer IPv4 fragment with DF")
						}
						if !o.v6 && packet.Checksum(ip[:20], 0) != 0 {
							t.Fatal("outer IPv4 fragment's header checksum")
						}
					} else {
						whole++
					}
					p.bWAN.Inject(f)
				})
				if frags != 2*len(sizes) || whole != 1 {
					t.Fatalf("%d fragments and %d whole ESP packets for %d packets to fragment; %+v", frags, whole, len(sizes), s)
				}
				if s.Counts[Fragmented]-before.Counts[Fragmented] != uint64(len(sizes)) || s.Counts[Fragments]-before.Counts[Fragments] != uint64(2*len(sizes)) {
					t.Errorf("fragmented +%d, fragments +%d", s.Counts[Fragmented]-before.Counts[Fragmented], s.Counts[Fragments]-before.Counts[Fragments])
				}
				back := collect(p.aLAN)
				if len(back) != 1 || back[0][14+40] != 2 || binary.BigEndian.Uint32(back[0][14+44:]) != 1280 {
					t.Fatalf("the 1281-byte packet: %d ICMP errors, want one packet-too-big of 1280", len(back))
				}
				for p.bWAN.Pending() > 0 {
					p.b.Poll()
				}
				got := collect(p.bLAN)
				if len(got) != len(want) {
					t.Fatalf("B delivered %d of %d; %+v", len(got), len(want), p.b.Stats())
				}
				// Reassembled in arrival order: the whole one overtakes.
				for _, g := range got {
					ok := false
					for _, w := range want {
						ok = ok || sameBeyondTTL(g[14:], w[14:])
					}
					if !ok {
						t.Fatalf("B delivered a packet that was not sent")
					}
				}
				if st := p.b.Stats().Reasm; st.Reassembled != uint64(len(sizes)) {
					t.Errorf("B reassembled %d, want %d", st.Reassembled, len(sizes))
				}

				f := frame("2001:db8:a::10", "2001:db8:b::20", 1280-48, 7)
				allocs := testing.AllocsPerRun(50, func() {
					p.aLAN.Inject(f)
					p.a.Poll()
					p.aWAN.Drain(nil)
				})
				// The HMAC suites' state lives in a sync.Pool that the race
				// detector empties on purpose: counted without it only.
				if allocs != 0 && !(raceEnabled && o.suite != "") {
					t.Errorf("%v allocations per fragmented packet", allocs)
				}
				checkNoLeak(t, p)
			})
		}
	}
}

// TestOuterFragmentRule: which packets the outer fragmentation takes.
func TestOuterFragmentRule(t *testing.T) {
	p := newPair(t, pairOpts{})
	sa := p.saAB
	for _, tc := range []struct {
		v6        bool
		total     int
		mtu       int
		transport bool
		want      bool
	}{
		{true, 1280, 1280, false, true},
		{true, 1281, 1280, false, false}, // too big: the sender can go to 1280
		{true, 1232, 1280, false, true},
		{false, 1280, 1280, false, false}, // IPv4: too big or split before sealing
		{true, 1280, 1280, true, false},   // transport mode: the gateway's own traffic
		{true, 1280, 100, false, false},   // more pieces than maxFrags
	} {
		ip := packet.IP{V6: tc.v6, TotalLen: tc.total, HdrLen: 40}
		if !tc.v6 {
			ip.HdrLen = 20
		}
		sa.Mode = sad.Tunnel
		if tc.transport {
			sa.Mode = sad.Transport
		}
		if got := postFragment(&ip, sa, tc.mtu); got != tc.want {
			t.Errorf("%+v: %v", tc, got)
		}
	}
}

// FuzzOuterFragment: any IPv6 packet size and WAN MTU (1280..1500): the
// packet arrives intact at the peer, whole, fragmented outside or as a
// "packet too big"; every frame on the WAN fits the MTU; no frame leaks.
func FuzzOuterFragment(f *testing.F) {
	for _, s := range [][2]uint16{{1280, 1280}, {1232, 1280}, {1281, 1280}, {100, 1280}, {1280, 1360}, {1279, 1301}} {
		f.Add(s[0], s[1], false)
		f.Add(s[0], s[1], true)
	}
	pairs := [2]*gwPair{newPair(f, pairOpts{}), newPair(f, pairOpts{v6: true, udp: true})}
	f.Fuzz(func(t *testing.T, size, mtu uint16, v6 bool) {
		if size < 48 || size > 1500 || mtu < 1280 || mtu > 1500 {
			return
		}
		p := pairs[0]
		if v6 {
			p = pairs[1]
		}
		withMTU(p, int(mtu))
		sent := frame("2001:db8:a::10", "2001:db8:b::20", int(size)-48, uint32(size))
		p.aLAN.Inject(sent)
		p.a.Poll()
		p.aWAN.Drain(func(b []byte) {
			if len(b)-14 > int(mtu) {
				t.Fatalf("%d bytes on a WAN of %d", len(b)-14, mtu)
			}
			p.bWAN.Inject(b)
		})
		for p.bWAN.Pending() > 0 {
			p.b.Poll()
		}
		got, back := collect(p.bLAN), collect(p.aLAN)
		switch {
		case len(got) == 1 && len(back) == 0:
			if !sameBeyondTTL(got[0][14:], sent[14:]) {
				t.Fatal("delivered a different packet")
			}
		case len(got) == 0 && len(back) <= 1 && size > minMTU6: // ICMP errors are rate-limited
		default:
			t.Fatalf("size %d mtu %d: %d delivered, %d ICMP errors", size, mtu, len(got), len(back))
		}
		checkNoLeak(t, p)
	})
}
