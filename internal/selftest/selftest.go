// Package selftest runs two gateways' data planes back to back in memory
// — gateway A's workers protect sample traffic, gateway B's open it — for
// every suite asked for, checks that every packet arrives intact and that
// replayed and forged packets are refused, and prints the counters. It is
// what `xdpsec selftest` and `make demo` (before a lab exists) run: a
// check that the crypto and the pipeline work on this machine, with no
// privileges and no network.
package selftest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// Options say what to run.
type Options struct {
	Packets int    // per suite
	Suites  string // comma-separated, strongSwan style
	Out     io.Writer
}

// Report sums up a run.
type Report struct {
	Packets, Suites int
	Elapsed         time.Duration
}

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0xa}
	macB = [6]byte{2, 0, 0, 0, 0, 0xb}
	macH = [6]byte{2, 0, 0, 0, 0, 0x1}
)

// Run runs the self test.
func Run(o Options) (Report, error) {
	if o.Packets <= 0 {
		o.Packets = 1000
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	var rep Report
	start := time.Now()
	for _, name := range strings.Split(o.Suites, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		su, err := sad.ParseSuite(name)
		if err != nil {
			return rep, err
		}
		if err := runSuite(su, o); err != nil {
			return rep, fmt.Errorf("%s: %w", name, err)
		}
		rep.Suites++
		rep.Packets += o.Packets
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

type gateway struct {
	w        *fastpath.Worker
	lan, wan *fastpath.MemPort
	out, in  *sad.SA
}

func newSA(su sad.Suite, spi uint32, dir sad.Direction, local, remote netip.Addr, key, ik []byte, sel []sad.Selector, udp bool) (*sad.SA, error) {
	c := sad.Config{SPI: spi, Dir: dir, Mode: sad.Tunnel, Local: local, Remote: remote,
		Suite: su, Key: key, IntegKey: ik, Selectors: sel, ESN: true, Name: "selftest"}
	if udp {
		c.Encap = sad.UDPEncap{SrcPort: 4500, DstPort: 4500}
	}
	return sad.New(c)
}

func runSuite(su sad.Suite, o Options) error {
	gwA, gwB := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	netA, netB := netip.MustParsePrefix("198.18.1.0/24"), netip.MustParsePrefix("198.18.2.0/24")
	net6A, net6B := netip.MustParsePrefix("2001:db8:a::/48"), netip.MustParsePrefix("2001:db8:b::/48")
	selAB := []sad.Selector{{Src: netA, Dst: netB}, {Src: net6A, Dst: net6B}}
	selBA := []sad.Selector{{Src: netB, Dst: netA}, {Src: net6B, Dst: net6A}}
	// Fresh random keys each run, as IKE would make them.
	k1, k2 := make([]byte, su.KeyLen()), make([]byte, su.KeyLen())
	i1, i2 := make([]byte, su.IntegKeyLen()), make([]byte, su.IntegKeyLen())
	for _, b := range [][]byte{k1, k2, i1, i2} {
		rand.Read(b)
	}
	mk := func(spiOut, spiIn uint32, local, remote netip.Addr, kOut, iOut, kIn, iIn []byte, selOut, selIn []sad.Selector, lanHop, wanHop fastpath.Hop) (*gateway, error) {
		out, err := newSA(su, spiOut, sad.Outbound, local, remote, kOut, iOut, selOut, true)
		if err != nil {
			return nil, err
		}
		in, err := newSA(su, spiIn, sad.Inbound, local, remote, kIn, iIn, selIn, true)
		if err != nil {
			return nil, err
		}
		d := spd.New()
		var ps []*spd.Policy
		for _, s := range selOut {
			p := &spd.Policy{Name: "site", Selector: s, Action: spd.Protect}
			p.SA.Store(out)
			ps = append(ps, p)
		}
		if err := d.Replace(ps); err != nil {
			return nil, err
		}
		tab := sad.NewTable(1)
		if err := tab.Add(in); err != nil {
			return nil, err
		}
		pool := fastpath.NewMemPool(2048)
		g := &gateway{lan: pool.Port(1024), wan: pool.Port(1024), out: out, in: in}
		g.w = fastpath.NewWorker(0, fastpath.Config{LAN: g.lan, WAN: g.wan, Inbound: tab, SPD: d,
			LANHop: fastpath.StaticHop(lanHop), WANHop: fastpath.StaticHop(wanHop)})
		return g, nil
	}
	a, err := mk(0xa0001, 0xb0001, gwA, gwB, k1, i1, k2, i2, selAB, selBA, fastpath.Hop{Src: macA, Dst: macH}, fastpath.Hop{Src: macA, Dst: macB})
	if err != nil {
		return err
	}
	b, err := mk(0xb0001, 0xa0001, gwB, gwA, k2, i2, k1, i1, selBA, selAB, fastpath.Hop{Src: macB, Dst: macH}, fastpath.Hop{Src: macB, Dst: macA})
	if err != nil {
		return err
	}

	imix := []int{64, 64, 64, 64, 64, 64, 64, 570, 570, 570, 570, 1400}
	var captured [][]byte
	sent := 0
	for sent < o.Packets {
		var batch [][]byte
		for i := 0; i < fastpath.Batch && sent < o.Packets; i++ {
			var f []byte
			if sent%3 == 2 {
				f = udpFrame("2001:db8:a::10", "2001:db8:b::20", imix[sent%len(imix)], uint32(sent))
			} else {
				f = udpFrame("198.18.1.10", "198.18.2.20", imix[sent%len(imix)], uint32(sent))
			}
			batch = append(batch, f)
			sent++
		}
		a.lan.InjectBatch(batch)
		a.w.Poll()
		var esp [][]byte
		a.wan.Drain(func(f []byte) { esp = append(esp, append([]byte(nil), f...)) })
		if len(esp) != len(batch) {
			return fmt.Errorf("gateway A sent %d of %d packets", len(esp), len(batch))
		}
		if len(captured) < 64 {
			captured = append(captured, esp[0])
		}
		b.wan.InjectBatch(esp)
		b.w.Poll()
		got := 0
		var bad error
		b.lan.Drain(func(f []byte) {
			want := batch[got]
			if len(f) != len(want) || !bytes.Equal(f[14+20:], want[14+20:]) && want[12] == 8 {
				bad = fmt.Errorf("packet %d arrived changed", got)
			}
			got++
		})
		if bad != nil {
			return bad
		}
		if got != len(batch) {
			return fmt.Errorf("gateway B delivered %d of %d packets: %+v", got, len(batch), b.w.Stats())
		}
	}
	// Attacks. Replay captured packets: each is refused, as a replay or
	// (ESN, far below the window, taken for the next epoch) as an ICV
	// failure. Then forge a fresh packet: refused as an ICV failure, and
	// the genuine one still gets in afterwards.
	before := b.w.Stats()
	b.wan.InjectBatch(captured)
	for b.wan.Pending() > 0 {
		b.w.Poll()
	}
	a.lan.Inject(udpFrame("198.18.1.10", "198.18.2.20", 100, 1<<31))
	a.w.Poll()
	var fresh []byte
	a.wan.Drain(func(f []byte) { fresh = append([]byte(nil), f...) })
	forged := append([]byte(nil), fresh...)
	forged[len(forged)-20] ^= 0x80
	b.wan.Inject(forged)
	b.w.Poll()
	b.wan.Inject(fresh)
	b.w.Poll()
	delivered := 0
	b.lan.Drain(func([]byte) { delivered++ })
	after := b.w.Stats()
	refused := after.Drops[sad.ErrReplay] + after.Drops[sad.ErrAuth] - before.Drops[sad.ErrReplay] - before.Drops[sad.ErrAuth]
	if refused != uint64(len(captured))+1 || delivered != 1 {
		return fmt.Errorf("attacks: %d of %d replayed/forged packets refused, %d genuine delivered (want 1)", refused, len(captured)+1, delivered)
	}
	printSA(o.Out, su, a, b)
	return nil
}

// printSA prints the counters the way `show crypto ipsec sa` does.
func printSA(w io.Writer, su sad.Suite, a, b *gateway) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "suite %v\n", su)
	for _, g := range []struct {
		name string
		gw   *gateway
	}{{"gateway A", a}, {"gateway B", b}} {
		out, in := g.gw.out.Counters.Snapshot(), g.gw.in.Counters.Snapshot()
		fmt.Fprintf(tw, "  %s\tout spi %#08x\t#pkts encaps: %d\tbytes: %d\tseq: %d\n", g.name, g.gw.out.SPI, out.Packets, out.Bytes, g.gw.out.Seq())
		fmt.Fprintf(tw, "  \tin  spi %#08x\t#pkts decaps: %d\tbytes: %d\treplay drops: %d\tauth failures: %d\n", g.gw.in.SPI, in.Packets, in.Bytes, in.Drops[sad.ErrReplay], in.Drops[sad.ErrAuth])
	}
	tw.Flush()
}

// udpFrame builds an Ethernet/IP/UDP frame whose IP packet is size bytes.
func udpFrame(src, dst string, size int, id uint32) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	hl := 20
	if s.Is6() {
		hl = 40
		if size < 48+4 {
			size = 52
		}
	}
	ip := make([]byte, size)
	udp := ip[hl:]
	binary.BigEndian.PutUint16(udp[0:], 40000+uint16(id%1000))
	binary.BigEndian.PutUint16(udp[2:], 5201)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	for i := 8; i < len(udp); i++ {
		udp[i] = byte(i)
	}
	binary.BigEndian.PutUint32(udp[8:], id)
	var sum uint32
	if s.Is4() {
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(size))
		ip[6], ip[8], ip[9] = 0x40, 64, packet.ProtoUDP
		a4, b4 := s.As4(), d.As4()
		copy(ip[12:], a4[:])
		copy(ip[16:], b4[:])
		binary.BigEndian.PutUint16(ip[10:], packet.IPv4HeaderChecksum(ip[:20]))
		sum = packet.PseudoSum(ip[12:16], ip[16:20], packet.ProtoUDP, len(udp))
	} else {
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
		ip[6], ip[7] = packet.ProtoUDP, 64
		a16, b16 := s.As16(), d.As16()
		copy(ip[8:], a16[:])
		copy(ip[24:], b16[:])
		sum = packet.PseudoSum(ip[8:24], ip[24:40], packet.ProtoUDP, len(udp))
	}
	cs := packet.Checksum(udp, sum)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)
	eth := make([]byte, 14, 14+size)
	copy(eth, macA[:])
	copy(eth[6:], macH[:])
	if s.Is4() {
		binary.BigEndian.PutUint16(eth[12:], packet.EtherIPv4)
	} else {
		binary.BigEndian.PutUint16(eth[12:], packet.EtherIPv6)
	}
	return append(eth, ip...)
}
