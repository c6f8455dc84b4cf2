package fastpath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// tagged inserts an 802.1Q tag with tci into an Ethernet frame.
func tagged(f []byte, tci uint16) []byte {
	out := append([]byte(nil), f[:12]...)
	out = binary.BigEndian.AppendUint16(out, packet.EtherVLAN)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, f[12:]...)
}

// untagged checks f carries exactly the tag vid and returns it without.
func untagged(t *testing.T, f []byte, vid uint16) []byte {
	t.Helper()
	if len(f) < 18 || binary.BigEndian.Uint16(f[12:]) != packet.EtherVLAN || binary.BigEndian.Uint16(f[14:]) != vid {
		t.Fatalf("frame % x is not tagged %d", f[:min(len(f), 18)], vid)
	}
	return append(append([]byte(nil), f[:12]...), f[16:]...)
}

// TestPipelineVLAN: gateway A's LAN is VLAN 10, its WAN VLAN 100; B's LAN
// VLAN 20. Tagged LAN frames are sealed and leave tagged 100, B opens them
// and delivers them tagged 20, intact; bypassed traffic keeps its payload
// and takes the WAN's tag; frames without the side's tag are dropped.
func TestPipelineVLAN(t *testing.T) {
	for _, o := range []pairOpts{{}, {cross: true}, {v6: true, udp: true}} {
		p := newPair(t, o)
		p.a.cfg.LANVLAN, p.a.cfg.WANVLAN = 10, 100
		p.b.cfg.LANVLAN, p.b.cfg.WANVLAN = 20, 100
		var sent [][]byte
		for i := range 40 {
			f := frame("198.18.1.10", "198.18.2.20", 20+i*13, uint32(i))
			if i%2 == 1 {
				f = frame("2001:db8:a::10", "2001:db8:b::20", 20+i*13, uint32(i))
			}
			sent = append(sent, f)
			// Priority bits (PCP 5) are not part of the VLAN.
			if !p.aLAN.Inject(tagged(f, 5<<13|10)) {
				t.Fatal("inject")
			}
		}
		for p.aLAN.Pending() > 0 {
			p.a.Poll()
		}
		n := 0
		p.aWAN.Drain(func(f []byte) {
			untagged(t, f, 100)
			p.bWAN.Inject(f)
			n++
		})
		if n != len(sent) {
			t.Fatalf("%+v: A sent %d frames, want %d; stats %+v", o, n, len(sent), p.a.Stats())
		}
		for p.bWAN.Pending() > 0 {
			p.b.Poll()
		}
		got := collect(p.bLAN)
		if len(got) != len(sent) {
			t.Fatalf("%+v: B delivered %d, want %d; stats %+v", o, len(got), len(sent), p.b.Stats())
		}
		for i, f := range got {
			plain := untagged(t, f, 20)
			if !sameBeyondTTL(plain[14:], sent[i][14:]) {
				t.Fatalf("%+v: frame %d differs after the tunnel", o, i)
			}
		}

		// Bypass: the management prefix leaves in clear, tagged 100.
		mgmt := frame("198.18.1.10", "203.0.113.5", 64, 7)
		p.aLAN.Inject(tagged(mgmt, 10))
		p.a.Poll()
		out := collect(p.aWAN)
		if len(out) != 1 || !sameBeyondTTL(untagged(t, out[0], 100)[14:], mgmt[14:]) {
			t.Fatalf("%+v: bypassed frame: %d frames", o, len(out))
		}

		// Strays: untagged, or another VLAN.
		before := p.a.Stats()
		p.aLAN.Inject(sent[0])
		p.aLAN.Inject(tagged(sent[0], 11))
		p.a.Poll()
		after := p.a.Stats()
		if len(collect(p.aWAN)) != 0 || after.Counts[NotIP]-before.Counts[NotIP] != 2 || after.Drops[sad.ErrBadHeader]-before.Drops[sad.ErrBadHeader] != 2 {
			t.Errorf("%+v: strays: not_ip +%d, bad_header +%d", o, after.Counts[NotIP]-before.Counts[NotIP], after.Drops[sad.ErrBadHeader]-before.Drops[sad.ErrBadHeader])
		}
	}
}

// sameBeyondTTL compares two IP packets past the fields a router changes
// (TTL or hop limit, and the IPv4 checksum): addresses and payload.
func sameBeyondTTL(a, b []byte) bool {
	rest := 8 // IPv6: everything after the hop limit
	if b[0]>>4 == 4 {
		rest = 12 // IPv4: after TTL, protocol and checksum
	}
	return len(a) == len(b) && bytes.Equal(a[rest:], b[rest:])
}

// TestVLANNoAllocs: tagging and untagging a batch allocate nothing.
func TestVLANNoAllocs(t *testing.T) {
	p := newPair(t, pairOpts{})
	w := p.a
	f := tagged(frame("198.18.1.10", "198.18.2.20", 100, 1), 10)
	var pkts [4]Packet
	for i := range pkts {
		pkts[i] = Packet{Frame: make([]byte, 2048), Off: Headroom, Len: len(f)}
		copy(pkts[i].Frame[Headroom:], f)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if w.untag(p.aLAN, pkts[:], 10) != len(pkts) {
			t.Fatal("untag dropped frames")
		}
		tag(pkts[:], 10)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	if !bytes.Equal(pkts[0].Data(), f) {
		t.Error("untag then tag changed the frame")
	}
}

// withTags tags f with vid inside service tag svid (0: none; both 0:
// untagged).
func withTags(f []byte, svid, vid uint16) []byte {
	if vid == 0 && svid == 0 {
		return f
	}
	out := append([]byte(nil), f[:12]...)
	if svid != 0 {
		out = binary.BigEndian.AppendUint16(out, etherQinQ)
		out = binary.BigEndian.AppendUint16(out, svid)
	}
	out = binary.BigEndian.AppendUint16(out, packet.EtherVLAN)
	out = binary.BigEndian.AppendUint16(out, vid)
	return append(out, f[12:]...)
}

// stackOf is the tag stack a frame carries ("svid.vid", "0.0" untagged)
// and the frame without it.
func stackOf(f []byte) (string, []byte) {
	s, v, k := frameTags(f)
	if k <= 0 {
		return "0.0", f
	}
	return fmt.Sprintf("%d.%d", s, v), append(append([]byte(nil), f[:12]...), f[12+k:]...)
}

// TestPipelineTrunk: gateway B on one port that carries its LAN and its
// WAN as two VLANs (one-arm, LANVLAN != WANVLAN; either may be untagged).
// One mixed batch: ESP from A on the WAN's tag is opened and leaves on the
// LAN's tag; site B's traffic on the LAN's tag is sealed and leaves on the
// WAN's; cleartext on the WAN's tag that B's SPD would seal (as a plain
// one-arm gateway does) is dropped instead, ESP on the LAN's tag is LAN
// traffic (no policy: discarded), another tag is a stray. Replies reach
// A's LAN intact, and a trunk batch allocates nothing.
func TestPipelineTrunk(t *testing.T) {
	for _, tc := range []struct{ lanS, lan, wanS, wan uint16 }{
		{0, 20, 0, 100}, {0, 0, 0, 100}, {0, 20, 0, 0},
		{300, 20, 300, 100}, {300, 20, 301, 20}, {0, 20, 300, 100}, {300, 20, 0, 0}, // Q-in-Q
	} {
		p := newPair(t, pairOpts{})
		p.a.cfg.WANSVLAN, p.a.cfg.WANVLAN = tc.wanS, tc.wan
		lanTag, wanTag := fmt.Sprintf("%d.%d", tc.lanS, tc.lan), fmt.Sprintf("%d.%d", tc.wanS, tc.wan)
		pool := NewMemPool(512)
		arm := pool.Port(256)
		tab := sad.NewTable(0)
		tab.Add(p.inB)
		b := NewWorker(1, Config{LAN: arm, WAN: arm, Inbound: tab, SPD: p.spdB, LANVLAN: tc.lan, WANVLAN: tc.wan,
			LANSVLAN: tc.lanS, WANSVLAN: tc.wanS,
			LANHop: StaticHop{Src: macB, Dst: macH}, WANHop: StaticHop{Src: macB, Dst: macA}})
		var toB, toA [][]byte
		for i := range 6 {
			f := frame("198.18.1.10", "198.18.2.20", 30+i*17, uint32(i))
			r := frame("198.18.2.20", "198.18.1.10", 40+i*11, uint32(100+i))
			if i%2 == 1 {
				f = frame("2001:db8:a::10", "2001:db8:b::20", 30+i*17, uint32(i))
				r = frame("2001:db8:b::20", "2001:db8:a::10", 40+i*11, uint32(100+i))
			}
			toB, toA = append(toB, f), append(toA, r)
			p.aLAN.Inject(f)
		}
		p.a.Poll()
		var esp [][]byte
		p.aWAN.Drain(func(f []byte) { esp = append(esp, append([]byte(nil), f...)) })
		if len(esp) != len(toB) {
			t.Fatalf("%+v: A sealed %d", tc, len(esp))
		}
		// Interleave: ESP on the WAN's tag, B's LAN traffic on the LAN's.
		for i := range esp {
			if st, _ := stackOf(esp[i]); st != wanTag {
				t.Fatalf("%+v: A's ESP tagged %s", tc, st)
			}
			arm.Inject(esp[i])
			arm.Inject(withTags(toA[i], tc.lanS, tc.lan))
		}
		spoof := frame("198.18.2.20", "198.18.1.10", 50, 999) // B's SPD would seal it
		arm.Inject(withTags(spoof, tc.wanS, tc.wan))
		_, espOnLAN := stackOf(esp[0])
		arm.Inject(withTags(espOnLAN, tc.lanS, tc.lan))
		arm.Inject(withTags(toA[0], tc.lanS, 11))
		before := b.Stats()
		b.Poll()
		s := b.Stats()
		if s.Counts[Decaps] != uint64(len(esp)) || s.Counts[Encaps] != uint64(len(toA)) {
			t.Fatalf("%+v: decaps %d encaps %d; %+v", tc, s.Counts[Decaps], s.Counts[Encaps], s)
		}
		if d := s.Drops[sad.ErrNotESP] - before.Drops[sad.ErrNotESP]; d != 1 {
			t.Errorf("%+v: cleartext on the WAN's tag: not_esp +%d, want 1; %+v", tc, d, s)
		}
		if d := s.Drops[sad.ErrDiscard] - before.Drops[sad.ErrDiscard]; d != 1 {
			t.Errorf("%+v: ESP on the LAN's tag: discard +%d, want 1", tc, d)
		}
		if d := s.Counts[NotIP] - before.Counts[NotIP]; d != 1 {
			t.Errorf("%+v: tag 11: not_ip +%d, want 1", tc, d)
		}
		var plain, sealed [][]byte
		for _, f := range collect(arm) {
			switch st, rest := stackOf(f); st {
			case lanTag:
				plain = append(plain, rest)
			case wanTag:
				sealed = append(sealed, rest)
			default:
				t.Fatalf("%+v: B sent a frame tagged %s", tc, st)
			}
		}
		if len(plain) != len(toB) || len(sealed) != len(toA) {
			t.Fatalf("%+v: B sent %d on the LAN's tag, %d on the WAN's; want %d, %d", tc, len(plain), len(sealed), len(toB), len(toA))
		}
		for i, f := range plain {
			if !sameBeyondTTL(f[14:], toB[i][14:]) {
				t.Fatalf("%+v: frame %d differs after the tunnel", tc, i)
			}
		}
		for _, f := range sealed {
			ip := f[14:]
			if ip[0]>>4 != 4 || ip[9] != packet.ProtoESP {
				t.Fatalf("%+v: B sent cleartext on the WAN's tag: % x", tc, ip[:20])
			}
			p.aWAN.Inject(withTags(f, tc.wanS, tc.wan))
		}
		p.a.Poll()
		got := collect(p.aLAN)
		if len(got) != len(toA) {
			t.Fatalf("%+v: A delivered %d of %d replies; %+v", tc, len(got), len(toA), p.a.Stats())
		}
		for i, f := range got {
			if !sameBeyondTTL(f[14:], toA[i][14:]) {
				t.Fatalf("%+v: reply %d differs", tc, i)
			}
		}

		// A trunk batch of both sides allocates nothing.
		fl, fw := withTags(toA[0], tc.lanS, tc.lan), withTags(spoof, tc.wanS, tc.wan)
		allocs := testing.AllocsPerRun(50, func() {
			for range Batch / 2 {
				arm.Inject(fl)
				arm.Inject(fw)
			}
			b.Poll()
			arm.Drain(nil)
		})
		if allocs != 0 {
			t.Errorf("%+v: %v allocations per trunk batch", tc, allocs)
		}
		arm.Drain(nil)
		if f := pool.Free(); f != 512 {
			t.Errorf("%+v: frame leak: %d of 512 free", tc, f)
		}
	}
}

// FuzzVLANUntag: any frame through the receive side's tag parsing, on a
// trunk (LAN 20, WAN 100; LAN untagged) and on one VLAN: no panic, a kept
// frame has lost exactly its side's tag, and every frame is either kept
// or counted.
func FuzzVLANUntag(f *testing.F) {
	base := frame("198.18.1.10", "198.18.2.20", 16, 1)
	f.Add(base)
	f.Add(tagged(base, 20))
	f.Add(tagged(base, 100))
	f.Add(tagged(base, 0x6000|100))
	f.Add(tagged(base, 0))
	f.Add(tagged(tagged(base, 20), 100))
	f.Add(withTags(base, 300, 100))
	f.Add(withTags(base, 300, 100)[:19])
	f.Add(base[:15])
	f.Add([]byte{})
	pool := NewMemPool(4)
	arm := pool.Port(4)
	mk := func(lan, wan uint16) *Worker {
		return NewWorker(0, Config{LAN: arm, WAN: arm, LANVLAN: lan, WANVLAN: wan})
	}
	ws := []*Worker{mk(20, 100), mk(0, 100), mk(100, 100)}
	q := NewWorker(0, Config{LAN: arm, WAN: arm, LANVLAN: 20, WANVLAN: 100, LANSVLAN: 300, WANSVLAN: 300})
	ws = append(ws, q, NewWorker(0, Config{LAN: arm, WAN: arm, LANVLAN: 100, WANVLAN: 100, LANSVLAN: 300, WANSVLAN: 300}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > FrameSize-Headroom {
			return
		}
		for _, w := range ws {
			var pkts [1]Packet
			if arm.Alloc(pkts[:]) != 1 {
				t.Fatal("no frame")
			}
			p := &pkts[0]
			p.Off, p.Len = Headroom, len(b)
			copy(p.Frame[Headroom:], b)
			before := w.local.Counts[NotIP]
			n := w.untag(arm, pkts[:], w.cfg.WANVLAN)
			if n == 0 {
				if w.local.Counts[NotIP] != before+1 {
					t.Fatalf("dropped uncounted")
				}
				continue
			}
			d := pkts[0].Data()
			k := len(b) - pkts[0].Len
			if k != 0 && k != vlanLen && k != 2*vlanLen || len(d) < packet.EthLen {
				t.Fatalf("kept %d bytes of %d", pkts[0].Len, len(b))
			}
			if !bytes.Equal(d[12:], b[12+k:]) || !bytes.Equal(d[:12], b[:12]) {
				t.Fatal("untagged frame is not the rest of the tagged one")
			}
			arm.Free(pkts[:1])
		}
	})
}
