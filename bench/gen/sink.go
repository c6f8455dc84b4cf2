package gen

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

// Sequence window geometry: a ring of windowWords 64-bit words, of which
// the word holding the highest sequence number is shared with the newest
// packets, so WindowPackets sequence numbers below the highest are always
// tracked exactly (RFC 6479's layout).
const (
	windowWords   = 16
	WindowPackets = (windowWords - 1) * 64
)

type flowState struct {
	top    uint64 // one above the highest sequence number seen
	bitmap [windowWords]uint64
}

// SinkStats are a sink's counters.
type SinkStats struct {
	// Packets and Bytes count every frame offered (Bytes: frame lengths,
	// no FCS).
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Tagged counts the generator's packets with a tag; Untagged, the
	// generator's UDP packets too small for one; Other, anything else
	// (not UDP to our port, bad tag, flow beyond the sink's limit).
	Tagged   uint64 `json:"tagged"`
	Untagged uint64 `json:"untagged"`
	Other    uint64 `json:"other"`
	// BadChecksum counts frames whose IPv4 header or UDP checksum is
	// wrong (only with Verify).
	BadChecksum uint64 `json:"bad_checksum"`
	// Lost is how many sequence numbers are missing now: gaps not (yet)
	// filled by late packets. Reordered counts packets that arrived below
	// the highest sequence number of their flow and filled a gap (Late:
	// those so far below it that the window no longer knew them, assumed
	// to fill a gap). Duplicates are packets seen before.
	Lost       uint64 `json:"lost"`
	Reordered  uint64 `json:"reordered"`
	Late       uint64 `json:"late"`
	Duplicates uint64 `json:"duplicates"`
	// Flows is how many flows have been seen.
	Flows int `json:"flows"`
}

// Sink accounts received frames. Observe is for one goroutine; Stats may
// be called from any other.
type Sink struct {
	dstPort uint16 // 0: any
	verify  bool
	flows   []*flowState
	nflows  atomic.Int64

	packets, bytes, tagged, untagged, other, badsum atomic.Uint64
	missing, reordered, late, dups                  atomic.Uint64
}

// NewSink returns a sink that tracks flows 0..maxFlows-1 (at most
// MaxFlows; other flows count as Other), of UDP packets to dstPort (0:
// any port). With verify it checks the IPv4 header and UDP checksums,
// which costs a pass over every packet.
func NewSink(maxFlows int, dstPort uint16, verify bool) *Sink {
	maxFlows = max(1, min(maxFlows, MaxFlows))
	return &Sink{dstPort: dstPort, verify: verify, flows: make([]*flowState, maxFlows)}
}

// Observe accounts one Ethernet frame. It never fails: a frame that is
// not the generator's is counted as Other.
func (s *Sink) Observe(b []byte) {
	s.packets.Add(1)
	s.bytes.Add(uint64(len(b)))
	flow, seq, tagged, ok := s.parse(b)
	switch {
	case !ok:
		s.other.Add(1)
	case !tagged:
		s.untagged.Add(1)
	default:
		s.tagged.Add(1)
		s.account(flow, seq)
	}
}

// parse finds the tag of a generator frame.
func (s *Sink) parse(b []byte) (flow uint32, seq uint64, tagged, ok bool) {
	if len(b) < packet.EthLen {
		return 0, 0, false, false
	}
	et := binary.BigEndian.Uint16(b[12:])
	if et != packet.EtherIPv4 && et != packet.EtherIPv6 {
		return 0, 0, false, false
	}
	ipb := b[packet.EthLen:]
	ip, good := packet.ParseIP(ipb)
	if !good || ip.V6 != (et == packet.EtherIPv6) || ip.Proto != packet.ProtoUDP || ip.Fragment {
		return 0, 0, false, false
	}
	u := ipb[ip.HdrLen:ip.TotalLen]
	if len(u) < packet.UDPLen || int(binary.BigEndian.Uint16(u[4:])) != len(u) {
		return 0, 0, false, false
	}
	if s.dstPort != 0 && binary.BigEndian.Uint16(u[2:]) != s.dstPort {
		return 0, 0, false, false
	}
	if s.verify {
		var sa, da []byte
		if ip.V6 {
			sa, da = ipb[8:24], ipb[24:40]
		} else {
			sa, da = ipb[12:16], ipb[16:20]
			if packet.Checksum(ipb[:ip.HdrLen], 0) != 0 {
				s.badsum.Add(1)
				return 0, 0, false, false
			}
		}
		if cs := binary.BigEndian.Uint16(u[6:]); (cs != 0 || ip.V6) &&
			packet.Checksum(u, packet.PseudoSum(sa, da, packet.ProtoUDP, len(u))) != 0 {
			s.badsum.Add(1)
			return 0, 0, false, false
		}
	}
	p := u[packet.UDPLen:]
	if len(p) < TagLen {
		return 0, 0, false, true
	}
	if binary.BigEndian.Uint32(p) != TagMagic {
		return 0, 0, false, false
	}
	flow = binary.BigEndian.Uint32(p[4:])
	if flow >= uint32(len(s.flows)) {
		return 0, 0, false, false
	}
	return flow, binary.BigEndian.Uint64(p[8:]), true, true
}

// account updates the flow's window for seq. Each flow numbers its
// packets from 0, so a flow whose first packets were lost shows them as
// a gap.
func (s *Sink) account(flow uint32, seq uint64) {
	st := s.flows[flow]
	if st == nil {
		// Bounded by maxFlows, and once per flow.
		st = new(flowState)
		s.flows[flow] = st
		s.nflows.Add(1)
	}
	bit := uint64(1) << (seq & 63)
	if seq >= st.top {
		s.missing.Add(seq - st.top)
		// Clear the words that enter the window: those after the one
		// holding top-1 (already in use), up to the one holding seq.
		first := (st.top + 63) / 64
		last := seq / 64
		if last >= first && last-first >= windowWords {
			first = last - windowWords + 1
		}
		for w := first; w <= last; w++ {
			st.bitmap[w%windowWords] = 0
		}
		st.bitmap[(seq/64)%windowWords] |= bit
		st.top = seq + 1
		return
	}
	if st.top-seq > WindowPackets {
		// Too old to tell a duplicate from a late packet: the generator
		// never repeats, so take it as late.
		s.late.Add(1)
		s.fill()
		return
	}
	w := &st.bitmap[(seq/64)%windowWords]
	if *w&bit != 0 {
		s.dups.Add(1)
		return
	}
	*w |= bit
	s.reordered.Add(1)
	s.fill()
}

// fill takes one from the missing count: a late packet filled a gap.
func (s *Sink) fill() {
	for {
		m := s.missing.Load()
		if m == 0 || s.missing.CompareAndSwap(m, m-1) {
			return
		}
	}
}

// generated is how many of the generator's packets (tagged or not) the
// sink has seen.
func (s *Sink) generated() uint64 { return s.tagged.Load() + s.untagged.Load() }

// Stats returns the counters now.
func (s *Sink) Stats() SinkStats {
	return SinkStats{
		Packets:     s.packets.Load(),
		Bytes:       s.bytes.Load(),
		Tagged:      s.tagged.Load(),
		Untagged:    s.untagged.Load(),
		Other:       s.other.Load(),
		BadChecksum: s.badsum.Load(),
		Lost:        s.missing.Load(),
		Reordered:   s.reordered.Load(),
		Late:        s.late.Load(),
		Duplicates:  s.dups.Load(),
		Flows:       int(s.nflows.Load()),
	}
}
