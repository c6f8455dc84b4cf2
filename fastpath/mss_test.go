package fastpath

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// synFrame builds an Ethernet frame holding a TCP segment from src to dst
// with the given flags and options (padded with end-of-options to a
// multiple of 4) and a correct checksum.
func synFrame(src, dst string, flags byte, opts []byte) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	tcp := make([]byte, 20+len(opts)+6) // a little payload, odd length
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 0x01020304)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	copy(tcp[20:], opts)
	copy(tcp[20+len(opts):], "abcdef")
	var ip []byte
	if s.Is4() {
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6] = 0x40
		ip[8], ip[9] = 64, packet.ProtoTCP
		a, b := s.As4(), d.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		binary.BigEndian.PutUint16(ip[10:], packet.IPv4HeaderChecksum(ip))
		binary.BigEndian.PutUint16(tcp[16:], packet.Checksum(tcp, packet.PseudoSum(ip[12:16], ip[16:20], packet.ProtoTCP, len(tcp))))
	} else {
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6], ip[7] = packet.ProtoTCP, 64
		a, b := s.As16(), d.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
		binary.BigEndian.PutUint16(tcp[16:], packet.Checksum(tcp, packet.PseudoSum(ip[8:24], ip[24:40], packet.ProtoTCP, len(tcp))))
	}
	eth := make([]byte, 14)
	t := uint16(packet.EtherIPv4)
	if !s.Is4() {
		t = packet.EtherIPv6
	}
	binary.BigEndian.PutUint16(eth[12:], t)
	return append(append(eth, ip...), tcp...)
}

// tcpOK checks the TCP checksum of the IP packet ipb from scratch.
func tcpOK(ipb []byte) bool {
	ip, ok := packet.ParseIP(ipb)
	if !ok || ip.Proto != packet.ProtoTCP {
		return false
	}
	seg := ipb[ip.HdrLen:ip.TotalLen]
	var ps uint32
	if ip.V6 {
		ps = packet.PseudoSum(ipb[8:24], ipb[24:40], packet.ProtoTCP, len(seg))
	} else {
		ps = packet.PseudoSum(ipb[12:16], ipb[16:20], packet.ProtoTCP, len(seg))
	}
	return packet.Checksum(seg, ps) == 0
}

// mssOf returns the MSS option of the TCP segment in ipb, or -1.
func mssOf(ipb []byte) int {
	ip, _ := packet.ParseIP(ipb)
	tcp := ipb[ip.HdrLen:]
	opts := tcp[20 : int(tcp[12]>>4)*4]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0:
			return -1
		case 1:
			i++
		default:
			if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
				return -1
			}
			if opts[i] == 2 && opts[i+1] == 4 {
				return int(binary.BigEndian.Uint16(opts[i+2:]))
			}
			i += int(opts[i+1])
		}
	}
	return -1
}

func TestClampMSS(t *testing.T) {
	mss := []byte{2, 4, 0x05, 0xb4} // 1460
	sack := []byte{4, 2}
	ts := []byte{8, 10, 1, 2, 3, 4, 5, 6, 7, 8}
	cat := func(bs ...[]byte) []byte {
		var o []byte
		for _, b := range bs {
			o = append(o, b...)
		}
		return o
	}
	for _, tc := range []struct {
		name  string
		src   string
		opts  []byte
		clamp int
		want  int // MSS after; -1: none
		moved bool
	}{
		{"linux SYN", "198.18.1.2", cat(mss, sack, ts, []byte{1, 3, 3, 7}), 1400, 1400, true},
		{"after one no-op (odd offset)", "198.18.1.2", cat([]byte{1}, mss, []byte{1, 1, 1}), 1386, 1386, true},
		{"after three no-ops (odd offset)", "198.18.1.2", cat([]byte{1, 1, 1}, mss), 1000, 1000, true},
		{"IPv6", "2001:db8:a::2", cat(mss, sack, ts), 1340, 1340, true},
		{"already smaller", "198.18.1.2", cat(mss), 1500, 1460, false},
		{"equal", "198.18.1.2", cat(mss), 1460, 1460, false},
		{"no MSS option", "198.18.1.2", cat(sack, ts), 1000, -1, false},
		{"no options", "198.18.1.2", nil, 1000, -1, false},
		{"MSS after end of options", "198.18.1.2", cat([]byte{0, 0, 0, 0}, mss), 1000, -1, false},
		{"bad MSS length", "198.18.1.2", []byte{2, 3, 5, 0xb4}, 1000, -1, false},
		{"zero-length option", "198.18.1.2", cat([]byte{9, 0}, mss), 1000, -1, false},
		{"option past the header", "198.18.1.2", []byte{1, 1, 8, 10}, 1000, -1, false},
	} {
		dst := "198.18.2.2"
		if tc.src[0] == '2' {
			dst = "2001:db8:b::2"
		}
		f := synFrame(tc.src, dst, 0x02, tc.opts)
		ipb := f[packet.EthLen:]
		ip, _ := packet.ParseIP(ipb)
		if moved := clampMSS(ipb[ip.HdrLen:ip.TotalLen], tc.clamp); moved != tc.moved {
			t.Errorf("%s: changed %v, want %v", tc.name, moved, tc.moved)
		}
		if got := mssOf(ipb); got != tc.want && !(tc.want == -1 && got == 1460) {
			t.Errorf("%s: MSS %d, want %d", tc.name, got, tc.want)
		}
		if !tcpOK(ipb) {
			t.Errorf("%s: TCP checksum wrong after clamping", tc.name)
		}
	}
}

// TestPipelineMSSClamp: with mss_clamp auto, a SYN leaving through the
// tunnel and the SYN-ACK coming back both arrive with the MSS that fits
// the tunnel's MTU and good checksums; a policy's own setting (a number,
// or off) wins over the gateway's; non-SYN segments are never touched;
// and clamping allocates nothing.
func TestPipelineMSSClamp(t *testing.T) {
	opts := []byte{2, 4, 0x05, 0xb4, 4, 2, 1, 1}
	for _, o := range []pairOpts{{}, {udp: true, cross: true}, {v6: true, suite: "aes256-sha512"}} {
		p := newPair(t, o)
		withMTU(p, 1500)
		p.a.cfg.MSSClamp, p.b.cfg.MSSClamp = spd.MSSAuto, spd.MSSAuto
		want4 := esp.MaxInner(p.saAB, 1500, 20) - 40
		want6 := esp.MaxInner(p.saAB, 1500, 40) - 60
		for _, tc := range []struct {
			src, dst string
			flags    byte
			want     int
		}{
			{"198.18.1.2", "198.18.2.2", 0x02, want4},
			{"2001:db8:a::2", "2001:db8:b::2", 0x02, want6},
			{"198.18.1.2", "198.18.2.2", 0x10, 1460}, // an ACK: left alone
		} {
			p.aLAN.Inject(synFrame(tc.src, tc.dst, tc.flags, opts))
			p.a.Poll()
			carry(t, p.aWAN, p.bWAN)
			p.b.Poll()
			got := collect(p.bLAN)
			if len(got) != 1 {
				t.Fatalf("%+v: %d packets at B, want 1", o, len(got))
			}
			ipb := got[0][packet.EthLen:]
			if m := mssOf(ipb); m != tc.want || !tcpOK(ipb) {
				t.Errorf("%+v %s flags %#x: MSS %d (want %d), checksum good %v", o, tc.src, tc.flags, m, tc.want, tcpOK(ipb))
			}
		}
		// The SYN-ACK back: B clamps it leaving, and A clamps it arriving
		// (here to what B left it at: nothing more to do). Off at B shows
		// A's inbound clamp alone.
		p.b.cfg.MSSClamp = 0
		p.bLAN.Inject(synFrame("198.18.2.2", "198.18.1.2", 0x12, opts))
		p.b.Poll()
		carry(t, p.bWAN, p.aWAN)
		p.a.Poll()
		got := collect(p.aLAN)
		if len(got) != 1 {
			t.Fatalf("%+v: %d packets at A, want 1", o, len(got))
		}
		if m := mssOf(got[0][packet.EthLen:]); m != esp.MaxInner(p.inA, 1500, 20)-40 || !tcpOK(got[0][packet.EthLen:]) {
			t.Errorf("%+v: inbound SYN-ACK MSS %d, want %d", o, m, esp.MaxInner(p.inA, 1500, 20)-40)
		}
		// A policy's own clamp wins: 1200 on A's IPv4 policy, off on B's.
		pa := p.spdA.Policies()[0]
		pa.MSSClamp = 1200
		p.aLAN.Inject(synFrame("198.18.1.2", "198.18.2.2", 0x02, opts))
		p.a.Poll()
		carry(t, p.aWAN, p.bWAN)
		p.b.cfg.MSSClamp = spd.MSSAuto
		p.spdB.Policies()[0].MSSClamp = spd.MSSOff
		p.b.Poll()
		got = collect(p.bLAN)
		if len(got) != 1 || mssOf(got[0][packet.EthLen:]) != 1200 {
			t.Errorf("%+v: policy clamp 1200 not applied (B's inbound is off for the reverse policy)", o)
		}
		if s := p.a.Stats(); s.Counts[MSSClamped] == 0 {
			t.Errorf("%+v: MSSClamped not counted: %+v", o, s)
		}
		pa.MSSClamp = spd.MSSInherit
		p.spdB.Policies()[0].MSSClamp = spd.MSSInherit
		if o.suite != "" {
			// The HMAC suites keep their state in a sync.Pool, which
			// the race detector empties on purpose; fastpath/esp
			// checks their allocations.
			checkNoLeak(t, p)
			continue
		}
		// Zero allocations with clamping on, SYNs in every slot.
		syn := synFrame("198.18.1.2", "198.18.2.2", 0x02, opts)
		p.aWAN.Sink = true
		allocs := testing.AllocsPerRun(50, func() {
			for i := 0; i < Batch; i++ {
				p.aLAN.Inject(syn)
			}
			p.a.Poll()
		})
		if allocs != 0 {
			t.Fatalf("%+v: clamping poll allocates %v", o, allocs)
		}
		checkNoLeak(t, p)
	}
}
