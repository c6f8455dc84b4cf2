package fastpath

import (
	"bytes"
	"encoding/binary"
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
