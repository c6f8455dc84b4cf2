package gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// Tag geometry: the first TagLen bytes of the UDP payload.
const (
	TagLen   = 16
	TagMagic = 0x7867656e // "xgen"
)

// MaxFrame is the largest frame the generator writes: what fits an AF_XDP
// frame after the headroom.
const MaxFrame = fastpath.FrameSize - fastpath.Headroom

// MaxFlows bounds Config.Flows: every flow costs one template per size.
const MaxFlows = 1 << 16

// IMIX is the simple IMIX cycle (7×64 : 4×570 : 1×1518), interleaved
// smoothly so any 12 consecutive packets hold the exact mix.
var IMIX = imixCycle()

func imixCycle() []int {
	// Smooth weighted round-robin: each step every size gains its weight
	// and the richest one is sent and pays the total, which spreads the
	// big frames out instead of sending them in a clump.
	sizes := []int{64, 570, 1518}
	weight := []int{7, 4, 1}
	cur := make([]int, len(sizes))
	out := make([]int, 0, 12)
	for range 12 {
		best := 0
		for i := range sizes {
			cur[i] += weight[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= 12
		out = append(out, sizes[best])
	}
	return out
}

// ParseSize reads a --size value: a frame size in bytes or "imix". It
// returns the cycle of sizes to send.
func ParseSize(s string) ([]int, error) {
	if strings.EqualFold(s, "imix") {
		return append([]int(nil), IMIX...), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("size %q: want a frame size in bytes or imix", s)
	}
	if n < 60 || n > MaxFrame {
		return nil, fmt.Errorf("size %d: want 60..%d bytes (Ethernet frame without FCS)", n, MaxFrame)
	}
	return []int{n}, nil
}

// Vary says what distinguishes the flows.
type Vary int

const (
	// VarySrcPort gives flow i source port SrcPort+i.
	VarySrcPort Vary = iota
	// VarySrcAddr gives flow i source address Src+i.
	VarySrcAddr
)

// ParseVary reads "port" or "addr".
func ParseVary(s string) (Vary, error) {
	switch s {
	case "port", "sport", "src-port":
		return VarySrcPort, nil
	case "addr", "src", "src-addr":
		return VarySrcAddr, nil
	}
	return 0, fmt.Errorf("vary %q: want port or addr", s)
}

func (v Vary) String() string {
	if v == VarySrcAddr {
		return "addr"
	}
	return "port"
}

// Config is what the generator sends.
type Config struct {
	SrcMAC, DstMAC   net.HardwareAddr
	Src, Dst         netip.Addr // both IPv4 or both IPv6
	SrcPort, DstPort uint16
	// Flows is the number of flows (1..MaxFlows), sent round-robin.
	Flows int
	Vary  Vary
	// Sizes is the cycle of frame sizes (from ParseSize).
	Sizes []int
}

// template is one flow's frame at one size, checksums done with a zero
// sequence number, and the partial UDP sum to finish per packet.
type template struct {
	frame []byte
	sum   uint32 // pseudo-header + UDP header (checksum 0) + payload, seq 0
	csOff int    // offset of the UDP checksum; 0 when untagged
}

// Generator writes the packets of a Config in a fixed order: packet k
// belongs to flow k mod Flows and has size Sizes[k mod len(Sizes)]; each
// flow numbers its packets from 0. It is for one goroutine.
type Generator struct {
	tmpl    []template // [flow*len(sizeIdx) + size index]
	nsizes  int
	cycle   []int // size index per cycle step
	seq     []uint64
	flow    int
	step    int
	seqOff  int // offset of the sequence number in a frame
	packets uint64
}

// NewGenerator builds the templates of c.
func NewGenerator(c Config) (*Generator, error) {
	if len(c.SrcMAC) != 6 || len(c.DstMAC) != 6 {
		return nil, errors.New("generator: source and destination MAC must be 6 bytes")
	}
	src, dst := c.Src.Unmap(), c.Dst.Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("generator: source %v and destination %v must be addresses of one family", c.Src, c.Dst)
	}
	if c.Flows < 1 || c.Flows > MaxFlows {
		return nil, fmt.Errorf("generator: %d flows: want 1..%d", c.Flows, MaxFlows)
	}
	if len(c.Sizes) == 0 || len(c.Sizes) > 1024 {
		return nil, errors.New("generator: want 1..1024 sizes in the cycle")
	}
	hdr := packet.EthLen + packet.IPv4MinLen + packet.UDPLen
	if src.Is6() {
		hdr = packet.EthLen + packet.IPv6Len + packet.UDPLen
	}
	g := &Generator{seq: make([]uint64, c.Flows), seqOff: hdr + 8}
	var distinct []int
	for _, sz := range c.Sizes {
		if sz < hdr || sz > MaxFrame {
			return nil, fmt.Errorf("generator: frame size %d: want %d..%d for %s/UDP", sz, hdr, MaxFrame, family(src))
		}
		idx := -1
		for i, d := range distinct {
			if d == sz {
				idx = i
			}
		}
		if idx < 0 {
			idx = len(distinct)
			distinct = append(distinct, sz)
		}
		g.cycle = append(g.cycle, idx)
	}
	g.nsizes = len(distinct)
	if c.Vary == VarySrcAddr {
		if last, ok := addAddr(src, c.Flows-1); !ok || !last.IsValid() {
			return nil, fmt.Errorf("generator: %d source addresses from %v overflow the address space", c.Flows, src)
		}
	} else if int(c.SrcPort)+c.Flows-1 > 0xffff {
		return nil, fmt.Errorf("generator: %d source ports from %d overflow 65535", c.Flows, c.SrcPort)
	}
	// One backing array for all templates keeps them close in memory.
	total := 0
	for _, sz := range distinct {
		total += sz
	}
	buf := make([]byte, total*c.Flows)
	g.tmpl = make([]template, c.Flows*g.nsizes)
	for f := range c.Flows {
		fsrc, sport := src, c.SrcPort
		if c.Vary == VarySrcAddr {
			fsrc, _ = addAddr(src, f)
		} else {
			sport += uint16(f)
		}
		for i, sz := range distinct {
			t := &g.tmpl[f*g.nsizes+i]
			t.frame, buf = buf[:sz:sz], buf[sz:]
			t.sum, t.csOff = buildFrame(t.frame, c.SrcMAC, c.DstMAC, fsrc, dst, sport, c.DstPort, uint32(f))
		}
	}
	return g, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// addAddr returns a+n, and false when that wraps around.
func addAddr(a netip.Addr, n int) (netip.Addr, bool) {
	b := a.AsSlice()
	carry := uint64(n)
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		v := uint64(b[i]) + carry&0xff
		carry >>= 8
		b[i] = byte(v)
		carry += v >> 8
	}
	if carry > 0 {
		return netip.Addr{}, false
	}
	r, _ := netip.AddrFromSlice(b)
	return r, true
}

// buildFrame writes a whole frame with sequence number 0 into b and
// returns the UDP partial sum without the sequence number (and the offset
// of the UDP checksum field, or 0 when the frame has no room for a tag).
func buildFrame(b []byte, smac, dmac net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, flow uint32) (uint32, int) {
	clear(b)
	copy(b[0:6], dmac)
	copy(b[6:12], smac)
	var ip, u []byte
	if src.Is4() {
		binary.BigEndian.PutUint16(b[12:], packet.EtherIPv4)
		ip = b[packet.EthLen:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF: the generator never wants fragments
		ip[8] = 64
		ip[9] = packet.ProtoUDP
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], packet.IPv4HeaderChecksum(ip[:packet.IPv4MinLen]))
		u = ip[packet.IPv4MinLen:]
	} else {
		binary.BigEndian.PutUint16(b[12:], packet.EtherIPv6)
		ip = b[packet.EthLen:]
		// The flow label carries the flow, so receivers that hash on it
		// spread the flows over their queues.
		binary.BigEndian.PutUint32(ip[0:], 6<<28|flow&0xfffff)
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ip)-packet.IPv6Len))
		ip[6] = packet.ProtoUDP
		ip[7] = 64
		s16, d16 := src.As16(), dst.As16()
		copy(ip[8:24], s16[:])
		copy(ip[24:40], d16[:])
		u = ip[packet.IPv6Len:]
	}
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	payload := u[packet.UDPLen:]
	tagged := len(payload) >= TagLen
	if tagged {
		binary.BigEndian.PutUint32(payload[0:], TagMagic)
		binary.BigEndian.PutUint32(payload[4:], flow)
		// The rest stays zero: the sequence number and the padding.
	}
	var sa, da []byte
	if src.Is4() {
		sa, da = ip[12:16], ip[16:20]
	} else {
		sa, da = ip[8:24], ip[24:40]
	}
	sum := packet.Sum(u, packet.PseudoSum(sa, da, packet.ProtoUDP, len(u)))
	cs := ^packet.Fold(sum)
	if cs == 0 {
		cs = 0xffff // RFC 768: zero means "no checksum" (and is forbidden over IPv6)
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	if !tagged {
		return sum, 0
	}
	return sum, len(b) - len(u) + 6
}

// Fill writes the next packet at the start of frame (which must hold
// MaxFrame bytes, or at least the largest size) and returns its length.
// It allocates nothing: a copy of the template, the sequence number, and
// the UDP checksum finished from the template's partial sum.
func (g *Generator) Fill(frame []byte) int {
	f := g.flow
	t := &g.tmpl[f*g.nsizes+g.cycle[g.step]]
	n := copy(frame, t.frame)
	if t.csOff != 0 {
		seq := g.seq[f]
		s := frame[g.seqOff : g.seqOff+8]
		binary.BigEndian.PutUint64(s, seq)
		cs := ^packet.Fold(packet.Sum(s, t.sum))
		if cs == 0 {
			cs = 0xffff
		}
		binary.BigEndian.PutUint16(frame[t.csOff:], cs)
	}
	g.seq[f]++
	if g.flow++; g.flow == len(g.seq) {
		g.flow = 0
	}
	if g.step++; g.step == len(g.cycle) {
		g.step = 0
	}
	g.packets++
	return n
}

// Unfill takes back the last n packets Fill wrote (ones the TX ring
// refused), so their sequence numbers are sent again rather than read as
// loss by the sink.
func (g *Generator) Unfill(n int) {
	if n <= 0 {
		return
	}
	for range min(uint64(n), g.packets) {
		if g.flow == 0 {
			g.flow = len(g.seq)
		}
		g.flow--
		if g.step == 0 {
			g.step = len(g.cycle)
		}
		g.step--
		g.seq[g.flow]--
		g.packets--
	}
}

// Packets is how many packets Fill has written (less those taken back).
func (g *Generator) Packets() uint64 { return g.packets }

// Flows is the number of flows.
func (g *Generator) Flows() int { return len(g.seq) }
