package daemon

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// icmpTooBig builds an ICMP "too big" (from its type byte) quoting an ESP
// packet from src to dst with spi, raw or in UDP to port, with quote bytes
// of the quoted packet past its IP header.
func icmpTooBig(v6 bool, mtu int, src, dst string, udp bool, port uint16, spi uint32, quote int) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	var b []byte
	var ip []byte
	if v6 {
		b = []byte{2, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[4:], uint32(mtu))
		ip = make([]byte, 40)
		ip[0] = 0x60
		ip[6] = 50
		a, c := s.As16(), d.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], c[:])
	} else {
		b = []byte{3, 4, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(b[6:], uint16(mtu))
		ip = make([]byte, 20)
		ip[0] = 0x45
		ip[6] = 0x40
		ip[9] = 50
		a, c := s.As4(), d.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], c[:])
	}
	var l4 []byte
	if udp {
		if v6 {
			ip[6] = 17
		} else {
			ip[9] = 17
		}
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], port)
		binary.BigEndian.PutUint16(l4[2:], port)
	}
	esp := make([]byte, 8)
	binary.BigEndian.PutUint32(esp, spi)
	rest := append(l4, esp...)
	rest = append(rest, make([]byte, 64)...)
	return append(append(b, ip...), rest[:quote]...)
}

func TestParseTooBig(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		v6   bool
		ok   bool
		want tooBig
	}{
		{"v4 raw ESP", icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", false, 0, 0x1001, 8), false, true,
			tooBig{MTU: 1400, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), SPI: 0x1001}},
		{"v4 ESP in UDP", icmpTooBig(false, 1300, "192.0.2.1", "192.0.2.2", true, 4500, 0x1001, 16), false, true,
			tooBig{MTU: 1300, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), SPI: 0x1001, UDP: true, DstPort: 4500}},
		{"v6 raw ESP", icmpTooBig(true, 1380, "2001:db8:f::1", "2001:db8:f::2", false, 0, 0x2001, 8), true, true,
			tooBig{MTU: 1380, Src: netip.MustParseAddr("2001:db8:f::1"), Dst: netip.MustParseAddr("2001:db8:f::2"), SPI: 0x2001}},
		{"v6 ESP in UDP", icmpTooBig(true, 1380, "2001:db8:f::1", "2001:db8:f::2", true, 4500, 0x2001, 12), true, true,
			tooBig{MTU: 1380, Src: netip.MustParseAddr("2001:db8:f::1"), Dst: netip.MustParseAddr("2001:db8:f::2"), SPI: 0x2001, UDP: true, DstPort: 4500}},
		{"RFC 792 quote too short for UDP's SPI", icmpTooBig(false, 1300, "192.0.2.1", "192.0.2.2", true, 4500, 0x1001, 8), false, false, tooBig{}},
		{"MTU 0 (pre-RFC 1191 router)", icmpTooBig(false, 0, "192.0.2.1", "192.0.2.2", false, 0, 0x1001, 8), false, false, tooBig{}},
		{"SPI 0", icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", false, 0, 0, 8), false, false, tooBig{}},
		{"truncated", icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", false, 0, 0x1001, 8)[:20], false, false, tooBig{}},
		{"not ESP", func() []byte {
			b := icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", false, 0, 0x1001, 8)
			b[8+9] = 6
			return b
		}(), false, false, tooBig{}},
		{"port unreachable", func() []byte {
			b := icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", false, 0, 0x1001, 8)
			b[1] = 3
			return b
		}(), false, false, tooBig{}},
		{"v4 message read as v6", icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", false, 0, 0x1001, 8), true, false, tooBig{}},
	} {
		got, ok := parseTooBig(tc.msg, tc.v6)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestLearnPMTU: a report lowers only the SA it quotes (SPI, addresses
// and encapsulation all matching), and ages out.
func TestLearnPMTU(t *testing.T) {
	mk := func(spi uint32, udp bool) *sad.SA {
		c := sad.Config{SPI: spi, Dir: sad.Outbound, Mode: sad.Tunnel,
			Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
			Suite: sad.AESGCM128, Key: make([]byte, 20)}
		if udp {
			c.Encap = sad.UDPEncap{SrcPort: 4500, DstPort: 4500}
		}
		sa, err := sad.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return sa
	}
	raw, udp := mk(0x1001, false), mk(0x1002, true)
	var pols []*spd.Policy
	for i, sa := range []*sad.SA{raw, udp} {
		p := &spd.Policy{Name: "p", Action: spd.Protect, Selector: sad.Selector{Dst: netip.MustParsePrefix([]string{"198.18.2.0/24", "198.18.3.0/24"}[i])}}
		p.SA.Store(sa)
		pols = append(pols, p)
	}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), spd: spd.New()}
	if err := d.spd.Replace(pols); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, msg := range [][]byte{
		icmpTooBig(false, 1300, "192.0.2.1", "192.0.2.9", false, 0, 0x1001, 8),    // another peer
		icmpTooBig(false, 1300, "192.0.2.1", "192.0.2.2", true, 4500, 0x1001, 16), // raw SA's SPI, but in UDP
		icmpTooBig(false, 1300, "192.0.2.1", "192.0.2.2", true, 4501, 0x1002, 16), // another port
	} {
		r, ok := parseTooBig(msg, false)
		if !ok {
			t.Fatal("test message not parsed")
		}
		d.learnPMTU(r, now)
	}
	if raw.PathMTU() != 0 || udp.PathMTU() != 0 {
		t.Fatal("a report that quotes no SA of ours changed one")
	}
	r, _ := parseTooBig(icmpTooBig(false, 1300, "192.0.2.1", "192.0.2.2", true, 4500, 0x1002, 16), false)
	d.learnPMTU(r, now)
	if udp.PathMTU() != 1300 || raw.PathMTU() != 0 {
		t.Fatalf("path MTUs %d/%d, want 0/1300", raw.PathMTU(), udp.PathMTU())
	}
	if c := d.pmtu.snapshot(); c["reports"] != 4 || c["learned"] != 1 || c["unmatched"] != 3 {
		t.Fatalf("counters %v", c)
	}
	d.agePMTU(now.Add(sad.PMTUAge + time.Second))
	if udp.PathMTU() != 0 {
		t.Fatal("not aged")
	}
}

func FuzzParseTooBig(f *testing.F) {
	f.Add(icmpTooBig(false, 1400, "192.0.2.1", "192.0.2.2", true, 4500, 0x1001, 16), false)
	f.Add(icmpTooBig(true, 1400, "2001:db8::1", "2001:db8::2", false, 0, 0x1001, 8), true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		if r, ok := parseTooBig(b, v6); ok && (r.SPI == 0 || r.MTU == 0) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
