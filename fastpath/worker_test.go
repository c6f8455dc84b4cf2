package fastpath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0xa}
	macB = [6]byte{2, 0, 0, 0, 0, 0xb}
	macH = [6]byte{2, 0, 0, 0, 0, 0x1}
)

// gwPair is two gateways, A and B, each a worker with LAN and WAN ports,
// with one SA pair and a PROTECT policy each way.
type gwPair struct {
	a, b       *Worker
	aLAN, aWAN *MemPort
	bLAN, bWAN *MemPort
	saAB, saBA *sad.SA // outbound SAs
	inB, inA   *sad.SA // inbound SAs
	spdA, spdB *spd.SPD
}

type pairOpts struct {
	suite string
	v6    bool // outer IPv6
	udp   bool
	cross bool // LAN and WAN on different memories
	// frames and depth size each pool and each port's queues (defaults
	// 1024 and 256); benchmarks that stage whole rings ahead use more.
	frames, depth int
	batch         int // Config.Batch of both workers
}

func mkSA(t testing.TB, spi uint32, dir sad.Direction, local, remote string, o pairOpts, sel []sad.Selector) *sad.SA {
	t.Helper()
	su, err := sad.ParseSuite(o.suite)
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{byte(spi)}, su.KeyLen())
	ik := bytes.Repeat([]byte{byte(spi >> 1)}, su.IntegKeyLen())
	c := sad.Config{SPI: spi, Dir: dir, Mode: sad.Tunnel,
		Local: netip.MustParseAddr(local), Remote: netip.MustParseAddr(remote),
		Suite: su, Key: key, IntegKey: ik, Selectors: sel}
	if o.udp {
		c.Encap = sad.UDPEncap{SrcPort: 4500, DstPort: 4500}
	}
	sa, err := sad.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func newPair(t testing.TB, o pairOpts) *gwPair {
	t.Helper()
	if o.suite == "" {
		o.suite = "aes128gcm16"
	}
	wa, wb := "192.0.2.1", "192.0.2.2"
	if o.v6 {
		wa, wb = "2001:db8::1", "2001:db8::2"
	}
	netA4, netB4 := netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("198.18.2.0/24")
	netA6, netB6 := netip.MustParsePrefix("2001:db8:a::/48"), netip.MustParsePrefix("2001:db8:b::/48")
	selAB := []sad.Selector{{Src: netA4, Dst: netB4}, {Src: netA6, Dst: netB6}}
	selBA := []sad.Selector{{Src: netB4, Dst: netA4}, {Src: netB6, Dst: netA6}}
	p := &gwPair{}
	p.saAB = mkSA(t, 0x1001, sad.Outbound, wa, wb, o, selAB)
	p.inB = mkSA(t, 0x1001, sad.Inbound, wb, wa, o, selAB)
	p.saBA = mkSA(t, 0x2002, sad.Outbound, wb, wa, o, selBA)
	p.inA = mkSA(t, 0x2002, sad.Inbound, wa, wb, o, selBA)

	mkSPD := func(out *sad.SA, sel []sad.Selector) *spd.SPD {
		d := spd.New()
		var ps []*spd.Policy
		for _, s := range sel {
			pol := &spd.Policy{Name: "site", Selector: s, Action: spd.Protect}
			pol.SA.Store(out)
			ps = append(ps, pol)
		}
		// Management traffic in clear, a hole to drop, then nothing.
		ps = append(ps,
			&spd.Policy{Name: "mgmt", Selector: sad.Selector{Dst: netip.MustParsePrefix("203.0.113.0/24")}, Action: spd.Bypass},
			&spd.Policy{Name: "blackhole", Selector: sad.Selector{Dst: netip.MustParsePrefix("198.51.100.0/24")}, Action: spd.Discard},
			&spd.Policy{Name: "trap", Selector: sad.Selector{Dst: netip.MustParsePrefix("198.18.9.0/24")}, Action: spd.Protect},
		)
		if err := d.Replace(ps); err != nil {
			t.Fatal(err)
		}
		return d
	}
	p.spdA, p.spdB = mkSPD(p.saAB, selAB), mkSPD(p.saBA, selBA)
	tabA, tabB := sad.NewTable(0), sad.NewTable(0)
	tabA.Add(p.inA)
	tabB.Add(p.inB)

	if o.frames == 0 {
		o.frames = 1024
	}
	if o.depth == 0 {
		o.depth = 256
	}
	mk := func() (lan, wan *MemPort) {
		pl := NewMemPool(o.frames)
		lan = pl.Port(o.depth)
		if o.cross {
			wan = NewMemPool(o.frames).Port(o.depth)
		} else {
			wan = pl.Port(o.depth)
		}
		return
	}
	p.aLAN, p.aWAN = mk()
	p.bLAN, p.bWAN = mk()
	p.a = NewWorker(0, Config{LAN: p.aLAN, WAN: p.aWAN, Inbound: tabA, SPD: p.spdA,
		LANHop: StaticHop{Src: macA, Dst: macH}, WANHop: StaticHop{Src: macA, Dst: macB}, Batch: o.batch})
	p.b = NewWorker(0, Config{LAN: p.bLAN, WAN: p.bWAN, Inbound: tabB, SPD: p.spdB,
		LANHop: StaticHop{Src: macB, Dst: macH}, WANHop: StaticHop{Src: macB, Dst: macA}, Batch: o.batch})
	return p
}

// frame builds an Ethernet+IP+UDP frame from src to dst with n bytes of
// payload tagged with id.
func frame(src, dst string, n int, id uint32) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	var ip []byte
	udpLen := 8 + n
	if s.Is4() {
		ip = make([]byte, 20+udpLen)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		ip[6] = 0x40
		ip[8], ip[9] = 64, packet.ProtoUDP
		a, b := s.As4(), d.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		binary.BigEndian.PutUint16(ip[10:], packet.IPv4HeaderChecksum(ip[:20]))
	} else {
		ip = make([]byte, 40+udpLen)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6], ip[7] = packet.ProtoUDP, 64
		a, b := s.As16(), d.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
	}
	h := len(ip) - udpLen
	u := ip[h:]
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], 5201)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen))
	for i := 8; i < len(u); i++ {
		u[i] = byte(i)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(u[8:], id)
	}
	eth := make([]byte, 14, 14+len(ip))
	copy(eth[0:6], macA[:])
	copy(eth[6:12], macH[:])
	t := uint16(packet.EtherIPv4)
	if !s.Is4() {
		t = packet.EtherIPv6
	}
	binary.BigEndian.PutUint16(eth[12:], t)
	return append(eth, ip...)
}

// carry moves what a port sent into another port's receive queue.
func carry(t testing.TB, from, to *MemPort) int {
	n := 0
	from.Drain(func(f []byte) {
		if !to.Inject(f) {
			t.Fatal("inject failed")
		}
		n++
	})
	return n
}

func collect(p *MemPort) [][]byte {
	var out [][]byte
	p.Drain(func(f []byte) { out = append(out, append([]byte(nil), f...)) })
	return out
}

func TestPipelineTunnel(t *testing.T) {
	for _, o := range []pairOpts{
		{}, {v6: true}, {udp: true}, {v6: true, udp: true}, {cross: true}, {suite: "chacha20poly1305", cross: true, udp: true},
		{suite: "aes256-sha512"}, {suite: "aes128gcm8"},
	} {
		name := fmt.Sprintf("%s/v6=%v/udp=%v/cross=%v", o.suite, o.v6, o.udp, o.cross)
		t.Run(name, func(t *testing.T) {
			p := newPair(t, o)
			const n = 150 // more than two batches
			var sent [][]byte
			for i := 0; i < n; i++ {
				var f []byte
				if i%2 == 0 {
					f = frame("198.18.1.10", "198.18.2.20", 10+i*7, uint32(i))
				} else {
					f = frame("2001:db8:a::10", "2001:db8:b::20", 10+i*7, uint32(i))
				}
				sent = append(sent, f)
				if !p.aLAN.Inject(f) {
					t.Fatal("inject")
				}
			}
			for p.aLAN.Pending() > 0 {
				p.a.Poll()
			}
			var wire [][]byte
			p.aWAN.Drain(func(f []byte) {
				wire = append(wire, append([]byte(nil), f...))
				p.bWAN.Inject(f)
			})
			if len(wire) != n {
				t.Fatalf("A sent %d ESP frames, want %d; stats %+v", len(wire), n, p.a.Stats())
			}
			for i, f := range wire {
				if !bytes.Equal(f[0:6], macB[:]) || !bytes.Equal(f[6:12], macA[:]) {
					t.Fatalf("frame %d: wrong MACs", i)
				}
				ipb := f[14:]
				proto := ipb[9]
				if ipb[0]>>4 == 6 {
					proto = ipb[6]
				}
				want := byte(packet.ProtoESP)
				if o.udp {
					want = packet.ProtoUDP
				}
				if proto != want {
					t.Fatalf("frame %d: outer protocol %d, want %d", i, proto, want)
				}
				// No plaintext leak: the payload tag must not appear.
				if bytes.Contains(f, sent[i][14+28+4:]) && len(sent[i]) > 14+28+12 {
					t.Fatalf("frame %d carries its plaintext", i)
				}
			}
			for p.bWAN.Pending() > 0 {
				p.b.Poll()
			}
			got := collect(p.bLAN)
			if len(got) != n {
				t.Fatalf("B delivered %d, want %d; stats %+v", len(got), n, p.b.Stats())
			}
			for i := range got {
				in := sent[i][14:]
				out := got[i][14:]
				if len(in) != len(out) {
					t.Fatalf("packet %d: length %d want %d", i, len(out), len(in))
				}
				ttlAt := 8
				if in[0]>>4 == 6 {
					ttlAt = 7
				}
				if out[ttlAt] != in[ttlAt]-2 {
					t.Fatalf("packet %d: ttl %d want %d", i, out[ttlAt], in[ttlAt]-2)
				}
				rest := 8 // IPv6: everything after the hop limit
				if in[0]>>4 == 4 {
					rest = 12 // IPv4: after TTL, protocol and checksum
				}
				if !bytes.Equal(in[:ttlAt], out[:ttlAt]) || !bytes.Equal(in[rest:], out[rest:]) {
					t.Fatalf("packet %d: inner packet changed", i)
				}
				if in[0]>>4 == 4 && packet.Checksum(out[:20], 0) != 0 {
					t.Fatalf("packet %d: bad inner IPv4 checksum after forwarding", i)
				}
			}
			sa, sb := p.a.Stats(), p.b.Stats()
			if sa.Counts[Encaps] != n || sb.Counts[Decaps] != n || p.saAB.Counters.Packets.Load() != n || p.inB.Counters.Packets.Load() != n {
				t.Fatalf("counters: A %+v B %+v", sa, sb)
			}
			if p.saAB.Seq() != n {
				t.Fatalf("sequence numbers used %d, want %d", p.saAB.Seq(), n)
			}
			// Replay: the whole capture again is dropped and counted.
			for _, f := range wire {
				p.bWAN.Inject(f)
			}
			for p.bWAN.Pending() > 0 {
				p.b.Poll()
			}
			if got := collect(p.bLAN); len(got) != 0 {
				t.Fatalf("replayed packets delivered: %d", len(got))
			}
			if d := p.b.Stats().Drops[sad.ErrReplay]; d != n {
				t.Fatalf("replay drops %d, want %d", d, n)
			}
			checkNoLeak(t, p)
		})
	}
}

// checkNoLeak asserts every frame is back in its pool.
func checkNoLeak(t testing.TB, p *gwPair) {
	t.Helper()
	for _, port := range []*MemPort{p.aLAN, p.aWAN, p.bLAN, p.bWAN} {
		port.Drain(nil)
	}
	for _, port := range []*MemPort{p.aLAN, p.aWAN, p.bLAN, p.bWAN} {
		if f := port.pool.Free(); f != len(port.pool.mem)/FrameSize {
			t.Fatalf("frame leak: %d of %d free", f, len(port.pool.mem)/FrameSize)
		}
	}
}

func TestPipelinePolicyActions(t *testing.T) {
	p := newPair(t, pairOpts{})
	inject := func(src, dst string) { p.aLAN.Inject(frame(src, dst, 32, 1)) }
	inject("198.18.1.1", "203.0.113.5")  // bypass
	inject("198.18.1.1", "198.51.100.5") // discard
	inject("198.18.1.1", "198.18.9.9")   // protect, no SA yet
	inject("198.18.1.1", "198.18.77.7")  // no policy: default discard
	garbage := frame("198.18.1.1", "198.18.2.2", 32, 1)
	garbage[14] = 0x99 // not IP
	p.aLAN.Inject(garbage)
	for p.aLAN.Pending() > 0 {
		p.a.Poll()
	}
	out := collect(p.aWAN)
	if len(out) != 1 {
		t.Fatalf("%d frames left, want only the bypassed one", len(out))
	}
	if !bytes.Equal(out[0][14+16:14+20], []byte{203, 0, 113, 5}) || out[0][14+9] != packet.ProtoUDP {
		t.Fatal("bypass frame altered")
	}
	s := p.a.Stats()
	if s.Counts[Bypassed] != 1 || s.Drops[sad.ErrDiscard] != 2 || s.Drops[sad.ErrNoSA] != 1 || s.Drops[sad.ErrBadHeader] != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkNoLeak(t, p)
}

func TestPipelineInboundGarbage(t *testing.T) {
	p := newPair(t, pairOpts{})
	// A real packet to corrupt.
	p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 100, 1))
	p.a.Poll()
	good := collect(p.aWAN)[0]
	unknown := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(unknown[14+20:], 0xdead)
	forged := append([]byte(nil), good...)
	forged[len(forged)-1] ^= 1
	short := append([]byte(nil), good[:14+20+6]...)
	binary.BigEndian.PutUint16(short[14+2:], 26)
	short[14+10], short[14+11] = 0, 0
	for _, f := range [][]byte{unknown, forged, short, good} {
		p.bWAN.Inject(f)
	}
	p.b.Poll()
	got := collect(p.bLAN)
	if len(got) != 1 {
		t.Fatalf("delivered %d, want the one good packet", len(got))
	}
	s := p.b.Stats()
	if s.Drops[sad.ErrUnknownSPI] != 1 || s.Drops[sad.ErrAuth] != 1 || s.Drops[sad.ErrTooShort] != 1 {
		t.Fatalf("drops %v", s.Drops)
	}
	if p.inB.Counters.Drops[sad.ErrAuth].Load() != 1 {
		t.Fatal("per-SA auth failure not counted")
	}
	checkNoLeak(t, p)
}

func TestPipelineOneArm(t *testing.T) {
	p := newPair(t, pairOpts{})
	// Gateway B in one-arm mode: one port for both sides.
	pool := NewMemPool(512)
	arm := pool.Port(256)
	tab := sad.NewTable(0)
	tab.Add(p.inB)
	b := NewWorker(1, Config{LAN: arm, WAN: arm, Inbound: tab, SPD: p.spdB,
		LANHop: StaticHop{Src: macB, Dst: macH}, WANHop: StaticHop{Src: macB, Dst: macA}})
	p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, 7))
	p.a.Poll()
	carry(t, p.aWAN, arm)
	arm.Inject(frame("198.18.2.2", "198.18.1.1", 64, 8)) // reply, to protect
	b.Poll()
	out := collect(arm)
	if len(out) != 2 {
		t.Fatalf("one-arm sent %d, want 2; %+v", len(out), b.Stats())
	}
	s := b.Stats()
	if s.Counts[Decaps] != 1 || s.Counts[Encaps] != 1 {
		t.Fatalf("one-arm stats %+v", s)
	}
}

// TestPipelineSeqLimit: the worker never seals above the SA's durable
// limit; what it cannot number is a counted drop, and allocation-free.
func TestPipelineSeqLimit(t *testing.T) {
	p := newPair(t, pairOpts{})
	p.saAB.SetSeq(10)
	p.saAB.SetSeqLimit(12)
	for i := 0; i < 5; i++ {
		p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 20, uint32(i)))
	}
	p.a.Poll()
	if n := len(collect(p.aWAN)); n != 2 {
		t.Fatalf("sent %d with two numbers reserved, want 2", n)
	}
	if d := p.a.Stats().Drops[sad.ErrSeqUnreserved]; d != 3 || p.saAB.Seq() != 12 {
		t.Fatalf("unreserved drops %d, seq %d", d, p.saAB.Seq())
	}
	if p.saAB.SeqExhausted() {
		t.Fatal("the limit was taken for exhaustion")
	}
	// Refusing at the limit allocates nothing either.
	f := frame("198.18.1.1", "198.18.2.2", 20, 1)
	allocs := testing.AllocsPerRun(50, func() {
		for i := 0; i < Batch; i++ {
			p.aLAN.Inject(f)
		}
		p.a.Poll()
	})
	if allocs != 0 {
		t.Fatalf("refusing at the limit allocates %v", allocs)
	}
	p.saAB.SetSeqLimit(100)
	p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 20, 9))
	p.a.Poll()
	if n := len(collect(p.aWAN)); n != 1 || p.saAB.Seq() != 13 {
		t.Fatalf("after the limit rose: sent %d, seq %d", n, p.saAB.Seq())
	}
	checkNoLeak(t, p)
}

func TestPipelineExpiredAndExhausted(t *testing.T) {
	p := newPair(t, pairOpts{})
	p.saAB.SetSeq(1<<32 - 2) // room for one more
	for i := 0; i < 3; i++ {
		p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 20, uint32(i)))
	}
	p.a.Poll()
	if n := len(collect(p.aWAN)); n != 1 {
		t.Fatalf("sent %d past the sequence limit, want 1", n)
	}
	if d := p.a.Stats().Drops[sad.ErrSeqExhausted]; d != 2 || !p.saAB.NeedsRekey() {
		t.Fatalf("exhaustion drops %d", d)
	}
	p.saBA.Kill()
	p.bLAN.Inject(frame("198.18.2.2", "198.18.1.1", 20, 1))
	p.b.Poll()
	if n := len(collect(p.bWAN)); n != 0 || p.b.Stats().Drops[sad.ErrExpired] != 1 {
		t.Fatal("dead SA still used")
	}
	checkNoLeak(t, p)
}

// TestPipelineZeroAllocs: steady-state polls allocate nothing, outbound
// and inbound, both in place and crossing memories.
func TestPipelineZeroAllocs(t *testing.T) {
	for _, o := range []pairOpts{{}, {cross: true}, {udp: true, v6: true}} {
		p := newPair(t, o)
		f := frame("198.18.1.1", "198.18.2.2", 64, 1)
		// Capture ESP frames to feed B.
		var esp [][]byte
		for i := 0; i < 256; i++ {
			p.aLAN.Inject(f)
			p.a.Poll()
			p.aWAN.Drain(func(b []byte) { esp = append(esp, append([]byte(nil), b...)) })
		}
		p.aWAN.Sink, p.bLAN.Sink = true, true
		allocs := testing.AllocsPerRun(100, func() {
			for i := 0; i < Batch; i++ {
				p.aLAN.Inject(f)
			}
			p.a.Poll()
		})
		if allocs != 0 {
			t.Fatalf("%+v: outbound poll allocates %v", o, allocs)
		}
		k := 0
		allocs = testing.AllocsPerRun(3, func() {
			for i := 0; i < Batch; i++ {
				p.bWAN.Inject(esp[k%len(esp)])
				k++
			}
			p.b.Poll()
		})
		if allocs != 0 {
			t.Fatalf("%+v: inbound poll allocates %v", o, allocs)
		}
		if p.b.Stats().Counts[Decaps] == 0 {
			t.Fatal("inbound did nothing")
		}
	}
}

// TestPipelineSPIRuns: the worker looks an SPI up once per run of equal
// SPIs in a batch; a replay within a run is still refused, unknown SPIs
// (0 among them) between runs of a known one are each refused, and the
// known one is found again after them.
func TestPipelineSPIRuns(t *testing.T) {
	p := newPair(t, pairOpts{})
	for i := 0; i < 3; i++ {
		p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, uint32(i)))
	}
	p.a.Poll()
	good := collect(p.aWAN)
	if len(good) != 3 {
		t.Fatalf("gateway A sent %d, want 3", len(good))
	}
	withSPI := func(f []byte, spi uint32) []byte {
		g := append([]byte(nil), f...)
		binary.BigEndian.PutUint32(g[14+20:], spi)
		return g
	}
	for _, f := range [][]byte{good[0], good[0], withSPI(good[1], 0xdead), withSPI(good[1], 0xdead), good[1],
		withSPI(good[2], 0), good[2]} {
		p.bWAN.Inject(f)
	}
	p.b.Poll()
	if got := len(collect(p.bLAN)); got != 3 {
		t.Fatalf("delivered %d, want 3", got)
	}
	if s := p.b.Stats(); s.Counts[Decaps] != 3 || s.Drops[sad.ErrUnknownSPI] != 3 || s.Drops[sad.ErrReplay] != 1 {
		t.Fatalf("decaps %d, unknown SPI %d, replays %d; want 3, 3 and 1 (the repeated first packet)",
			s.Counts[Decaps], s.Drops[sad.ErrUnknownSPI], s.Drops[sad.ErrReplay])
	}
	// A deleted SA is refused even when the lookup before it was cached.
	p.aLAN.Inject(frame("198.18.1.1", "198.18.2.2", 64, 9))
	p.a.Poll()
	late := collect(p.aWAN)
	p.inB.Kill()
	p.bWAN.Inject(late[0])
	p.b.Poll()
	if got := len(collect(p.bLAN)); got != 0 || p.b.Stats().Drops[sad.ErrExpired] != 1 {
		t.Fatalf("killed SA still used: delivered %d, stats %+v", got, p.b.Stats())
	}
	checkNoLeak(t, p)
}

// TestPipelineBatch: Config.Batch sets how many packets one poll takes
// from a port (out-of-range values mean Batch), and a batch of MaxBatch
// goes through both directions allocation-free.
func TestPipelineBatch(t *testing.T) {
	for _, tt := range []struct {
		batch, want int
		cross       bool
	}{{0, Batch, false}, {-1, Batch, false}, {MaxBatch + 1, Batch, false}, {16, 16, false}, {MaxBatch, MaxBatch, false}, {MaxBatch, MaxBatch, true}} {
		p := newPair(t, pairOpts{batch: tt.batch, depth: 2 * MaxBatch, frames: 4 * MaxBatch, cross: tt.cross})
		f := frame("198.18.1.1", "198.18.2.2", 64, 1)
		for range 2 * MaxBatch {
			p.aLAN.Inject(f)
		}
		if n := p.a.Poll(); n != tt.want {
			t.Fatalf("batch %d: one poll took %d, want %d", tt.batch, n, tt.want)
		}
		var esp [][]byte
		p.aWAN.Drain(func(b []byte) { esp = append(esp, append([]byte(nil), b...)) })
		if len(esp) != tt.want {
			t.Fatalf("batch %d: sealed %d, want %d", tt.batch, len(esp), tt.want)
		}
		for p.a.Poll() > 0 {
		}
		collect(p.aWAN)
		if tt.batch != MaxBatch {
			continue
		}
		p.aWAN.Sink, p.bLAN.Sink = true, true
		allocs := testing.AllocsPerRun(50, func() {
			for range MaxBatch {
				p.aLAN.Inject(f)
			}
			p.a.Poll()
		})
		if allocs != 0 {
			t.Fatalf("batch %d: outbound poll allocates %v", tt.batch, allocs)
		}
		allocs = testing.AllocsPerRun(5, func() {
			for _, e := range esp {
				p.bWAN.Inject(e)
			}
			p.b.Poll()
		})
		if allocs != 0 {
			t.Fatalf("batch %d: inbound poll allocates %v", tt.batch, allocs)
		}
		if d := p.b.Stats().Counts[Decaps]; d == 0 {
			t.Fatal("inbound did nothing")
		}
	}
}
