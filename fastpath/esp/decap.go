package esp

import (
	"crypto/subtle"
	"encoding/binary"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// Outer is what ParseOuter learns from a packet arriving on the
// unprotected side.
type Outer struct {
	IP     packet.IP
	ESPOff int // offset of the ESP header in the packet
	// ESPEnd is where the ESP packet ends: the IP total length for raw
	// ESP, the end of the UDP datagram (its length field) for ESP in UDP.
	ESPEnd int
	SPI    uint32 // host order
	UDP    bool   // carried in UDP (RFC 3948)
}

// ParseOuter finds the ESP header in the IP packet pkt: raw ESP (protocol
// 50) or ESP in UDP to nattPort. UDP to that port whose first four bytes
// are zero (the non-ESP marker: IKE) or that is a one-byte NAT keepalive
// (0xFF) is not ESP and comes back as ErrNotESP, as does anything else
// that is not ESP. Outer fragments are refused: reassembly is the
// kernel's job, and a gateway should not be doing it for ESP anyway.
//
// ESP in UDP ends where the UDP length says (RFC 768). A UDP length past
// the IP payload or below the header is ErrBadHeader; one short of the IP
// payload (bytes after the datagram that no header accounts for) is
// ErrLength: the lengths disagree and the packet is dropped and counted
// rather than opened with the trailing bytes taken for ciphertext.
func ParseOuter(pkt []byte, nattPort uint16, o *Outer) sad.Reason {
	ip := &o.IP
	if !ip.Parse(pkt) {
		return sad.ErrBadHeader
	}
	o.UDP = false
	if ip.Fragment {
		return sad.ErrFragment
	}
	off, end := ip.HdrLen, ip.TotalLen
	switch ip.Proto {
	case packet.ProtoESP:
	case packet.ProtoUDP:
		if off+packet.UDPLen > ip.TotalLen || binary.BigEndian.Uint16(pkt[off+2:]) != nattPort {
			return sad.ErrNotESP
		}
		ulen := int(binary.BigEndian.Uint16(pkt[off+4:]))
		if ulen < packet.UDPLen || off+ulen > ip.TotalLen {
			return sad.ErrBadHeader
		}
		if off+ulen != ip.TotalLen {
			return sad.ErrLength
		}
		end = off + ulen
		off += packet.UDPLen
		if ulen == packet.UDPLen+1 && pkt[off] == 0xff {
			return sad.ErrNotESP // NAT keepalive, RFC 3948 §2.3
		}
		if off+4 <= end && binary.BigEndian.Uint32(pkt[off:]) == 0 {
			return sad.ErrNotESP // non-ESP marker: IKE
		}
		o.UDP = true
	default:
		return sad.ErrNotESP
	}
	if off+HdrLen > end {
		return sad.ErrTooShort
	}
	o.ESPOff, o.ESPEnd = off, end
	o.SPI = binary.BigEndian.Uint32(pkt[off:])
	return sad.OK
}

// Decap checks, opens and strips the ESP packet pkt (its outer IP header
// first, as ParseOuter saw it in o) that arrived for sa, in place. It
// returns where the inner packet now lies in pkt. The order is that of
// RFC 4303 §3.4: anti-replay pre-check, ICV check (before any decryption
// for the HMAC suites, combined for the AEADs), window update only once
// the ICV verified, then padding, next header, and the SA's selectors.
//
// In tunnel mode the inner packet is forwarded, so its TTL / hop limit is
// decremented and the outer ECN combined into it (RFC 6040 §4.2). In
// transport mode the outer IP header is moved in front of the payload and
// fixed up.
func Decap(s *Scratch, pkt []byte, o *Outer, sa *sad.SA) (off, n int, r sad.Reason) {
	c := sa.Crypto
	esp := pkt[o.ESPOff:o.ESPEnd]
	ctLen := len(esp) - HdrLen - c.IV - c.ICV
	if ctLen < 2 {
		return 0, 0, sad.ErrTooShort
	}
	if c.Suite.Cipher == sad.CipherAESCBC && ctLen%16 != 0 {
		return 0, 0, sad.ErrLength
	}
	seqLo := binary.BigEndian.Uint32(esp[4:])
	seq := uint64(seqLo)
	if sa.Replay != nil {
		var ok bool
		if seq, ok = sa.Replay.Check(seqLo); !ok {
			return 0, 0, sad.ErrReplay
		}
	}
	ptOff := HdrLen + c.IV
	ct := esp[ptOff : ptOff+ctLen]

	switch c.Suite.Cipher {
	case sad.CipherAESGCM, sad.CipherChaCha20Poly1305:
		s.setNonce(&c.Salt, binary.BigEndian.Uint64(esp[HdrLen:]))
		aad := aadFor(s, esp, sa.ESN, seq)
		if _, err := c.AEAD.Open(ct[:0], s.nonce[:], esp[ptOff:], aad); err != nil {
			return 0, 0, sad.ErrAuth
		}
	case sad.CipherAESCBC, sad.CipherNull:
		m := c.GetMAC()
		mac(m, s, esp[:len(esp)-c.ICV], sa.ESN, seq, s.icv[:c.ICV])
		good := subtle.ConstantTimeCompare(s.icv[:c.ICV], esp[len(esp)-c.ICV:]) == 1
		if good && c.Suite.Cipher == sad.CipherAESCBC {
			m.CBC.SetDecIV(esp[HdrLen : HdrLen+16])
			m.CBC.Dec.CryptBlocks(ct, ct)
		}
		c.PutMAC(m)
		if !good {
			return 0, 0, sad.ErrAuth
		}
	default:
		return 0, 0, sad.ErrNoSA
	}
	if sa.Replay != nil && !sa.Replay.Commit(seq) {
		return 0, 0, sad.ErrReplay // a copy won the race on another worker
	}

	padLen := int(ct[ctLen-2])
	nh := ct[ctLen-1]
	if padLen+2 > ctLen {
		return 0, 0, sad.ErrBadPadding
	}
	data := ct[:ctLen-2-padLen]
	for i, b := range ct[len(data) : ctLen-2] {
		if b != byte(i+1) {
			return 0, 0, sad.ErrBadPadding
		}
	}
	if nh == packet.ProtoNoNext {
		return 0, 0, sad.ErrDummy // RFC 4303 §2.6: discard silently
	}
	dataOff := o.ESPOff + ptOff

	if sa.Mode == sad.Tunnel {
		if nh != packet.ProtoIPv4 && nh != packet.ProtoIPv6 {
			return 0, 0, sad.ErrBadNextHeader
		}
		var in packet.IP
		if !in.Parse(data) || in.V6 != (nh == packet.ProtoIPv6) {
			return 0, 0, sad.ErrBadHeader
		}
		// TFC padding (RFC 4303 §2.7) may follow the inner packet.
		data = data[:in.TotalLen]
		if r := combineECN(data, in.V6, outerECN(pkt, o.IP.V6)); r != sad.OK {
			return 0, 0, r
		}
		if r := decTTL(data, in.V6); r != sad.OK {
			return 0, 0, r
		}
		if !selectorsMatch(s, sa, data, &in) {
			return 0, 0, sad.ErrPolicy
		}
		return dataOff, len(data), sad.OK
	}

	// Transport: put the IP header back in front of the payload.
	h := o.IP.HdrLen
	newOff := dataOff - h
	copy(pkt[newOff:dataOff], pkt[:h])
	hdr := pkt[newOff:dataOff]
	total := h + len(data)
	if o.IP.V6 {
		binary.BigEndian.PutUint16(hdr[4:], uint16(total-packet.IPv6Len))
		setLastNextHeader(hdr, nh)
	} else {
		hdr[9] = nh
		binary.BigEndian.PutUint16(hdr[2:], uint16(total))
		hdr[10], hdr[11] = 0, 0
		binary.BigEndian.PutUint16(hdr[10:], packet.IPv4HeaderChecksum(hdr))
	}
	inner := pkt[newOff : newOff+total]
	var in packet.IP
	if !in.Parse(inner) {
		return 0, 0, sad.ErrBadHeader
	}
	if !selectorsMatch(s, sa, inner, &in) {
		return 0, 0, sad.ErrPolicy
	}
	return newOff, total, sad.OK
}

// selectorsMatch applies the SA's traffic selectors to a decapsulated
// packet (RFC 4301 §5.2 step 4). No selectors means the SA carries any.
//
// The flow lives in s: a local would be zeroed per packet (three 16-byte
// stores, where perf found a stall), though FlowInner sets every field.
func selectorsMatch(s *Scratch, sa *sad.SA, b []byte, ip *packet.IP) bool {
	if len(sa.Selectors) == 0 {
		return true
	}
	packet.FlowInner(b, ip, &s.flow)
	return sa.MatchInner(&s.flow)
}

// ECN codepoints (RFC 3168).
const (
	notECT = 0
	ect1   = 1
	ect0   = 2
	ce     = 3
)

func outerECN(pkt []byte, v6 bool) byte {
	if v6 {
		return (pkt[1] >> 4) & 3
	}
	return pkt[1] & 3
}

// combineECN applies RFC 6040 §4.2 at decapsulation: CE on the outer
// header marks an ECN-capable inner packet CE and drops a Not-ECT one;
// ECT(1) outside ECT(0) inside becomes ECT(1).
func combineECN(b []byte, v6 bool, outer byte) sad.Reason {
	inner := tos(b, v6) & 3
	var next byte
	switch {
	case outer == ce && inner == notECT:
		return sad.ErrECN
	case outer == ce:
		next = ce
	case outer == ect1 && inner == ect0:
		next = ect1
	default:
		return sad.OK
	}
	if v6 {
		b[1] = b[1]&^0x30 | next<<4
		return sad.OK
	}
	old := binary.BigEndian.Uint16(b[0:])
	word := old&^3 | uint16(next)
	binary.BigEndian.PutUint16(b[0:], word)
	cs := binary.BigEndian.Uint16(b[10:])
	binary.BigEndian.PutUint16(b[10:], packet.UpdateChecksum16(cs, old, word))
	return sad.OK
}
