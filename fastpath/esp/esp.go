package esp

import (
	"crypto/subtle"
	"encoding/binary"
	"math/bits"
	"unsafe"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// HdrLen is the ESP header: SPI and sequence number (RFC 4303 §2).
const HdrLen = 8

// MaxTailRoom bounds TailRoom over every suite: 15 bytes of padding for
// AES-CBC, pad length and next header, a 32-byte ICV.
const MaxTailRoom = 15 + 2 + 32

// MaxHeadRoom bounds HeadRoom over every SA: IPv6, UDP, ESP, a 16-byte IV.
const MaxHeadRoom = packet.IPv6Len + packet.UDPLen + HdrLen + 16

// Scratch is the per-goroutine working memory of Encap and Decap. Nonces
// and AAD handed to a cipher.AEAD through its interface escape to the heap,
// so they live here, allocated once per worker, not per packet.
type Scratch struct {
	nonce [12]byte
	aad   [12]byte
	iv    [16]byte
	ctr   [16]byte
	icv   [32]byte
	hi    [4]byte
	flow  packet.InnerFlow // selectorsMatch's
}

// HeadRoom is how many bytes Encap writes in front of the inner packet's
// payload start for sa: the outer IP header (tunnel mode), UDP (RFC 3948),
// the ESP header and the IV.
func HeadRoom(sa *sad.SA) int {
	h := HdrLen + sa.Crypto.IV
	if sa.Encap.Enabled() {
		h += packet.UDPLen
	}
	if sa.Mode == sad.Tunnel {
		if sa.Local.Is4() {
			h += packet.IPv4MinLen
		} else {
			h += packet.IPv6Len
		}
	}
	return h
}

// TailRoom is the spare capacity the inner packet needs behind it for the
// ESP trailer and ICV.
func TailRoom(sa *sad.SA) int {
	return sa.Crypto.Align - 1 + 2 + sa.Crypto.ICV
}

// inexactOverlap reports whether x and y share memory without starting at
// the same address: the one overlap AEAD Seal/Open refuses (with a panic).
func inexactOverlap(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	xs := uintptr(unsafe.Pointer(&x[0]))
	ys := uintptr(unsafe.Pointer(&y[0]))
	if xs == ys {
		return false
	}
	return xs < ys+uintptr(len(y)) && ys < xs+uintptr(len(x))
}

// Encap builds the ESP packet that carries the IP packet inner under sa
// with sequence number seq (the caller reserved it with sa.ReserveSeq) and
// writes it at the start of out, returning its length. In tunnel mode the
// packet is the whole inner packet; in transport mode it is the payload
// behind inner's IP header, which Encap moves to the front.
//
// inner must have TailRoom(sa) bytes of spare capacity: the trailer is
// written there before sealing. out either starts exactly
// HeadRoom(sa) (tunnel) or HeadRoom(sa)+IP header length (transport) bytes
// before inner's payload in the same buffer, in which case the packet is
// sealed in place, or shares no memory with inner at all.
//
// In tunnel mode the gateway forwards the inner packet, so its TTL or hop
// limit is decremented, and ErrTTLExpired returned when it runs out.
func Encap(s *Scratch, out, inner []byte, sa *sad.SA, seq uint64) (int, sad.Reason) {
	var ip packet.IP
	if !ip.Parse(inner) {
		return 0, sad.ErrBadHeader
	}
	inner = inner[:ip.TotalLen]
	c := sa.Crypto

	var payload []byte // what gets encrypted, before the trailer
	var nh uint8
	var hdr int // bytes in out before the IV ends
	if sa.Mode == sad.Tunnel {
		payload = inner
		nh = packet.ProtoIPv4
		if ip.V6 {
			nh = packet.ProtoIPv6
		}
		hdr = HeadRoom(sa)
	} else {
		if ip.Fragment {
			// RFC 4303 §3.1.1: transport mode carries whole datagrams.
			return 0, sad.ErrBadHeader
		}
		if ip.V6 != sa.Local.Is6() && sa.Local.IsValid() {
			return 0, sad.ErrPolicy
		}
		payload = inner[ip.HdrLen:]
		nh = ip.Proto
		hdr = ip.HdrLen + HeadRoom(sa)
	}

	plen := len(payload) + 2
	padded := (plen + c.Align - 1) &^ (c.Align - 1)
	pad := padded - plen
	total := hdr + padded + c.ICV
	if cap(payload)-len(payload) < pad+2 || cap(out) < total || total > 0xffff {
		return 0, sad.ErrTooBig
	}
	out = out[:total]
	pt := payload[:padded]
	if inexactOverlap(out[hdr:], pt) {
		return 0, sad.ErrLength
	}
	if sa.Mode == sad.Tunnel {
		// Only now that nothing can refuse the packet any more: a refused
		// packet comes back unchanged.
		if r := decTTL(inner, ip.V6); r != sad.OK {
			return 0, r
		}
	}

	// Transport mode: move the IP header to the front first (it may
	// overlap where the ESP header goes when working in place).
	if sa.Mode == sad.Transport {
		copy(out, inner[:ip.HdrLen])
	}

	// Trailer: 1, 2, 3, … then pad length and next header (RFC 4303 §2.4).
	for i := 0; i < pad; i++ {
		pt[len(payload)+i] = byte(i + 1)
	}
	pt[padded-2] = byte(pad)
	pt[padded-1] = nh

	// Headers, from the ESP header outwards.
	espOff := hdr - c.IV - HdrLen
	// SPI and sequence number in one store: non-ESN AES-GCM reads them
	// back as its AAD with one 8-byte load.
	binary.BigEndian.PutUint64(out[espOff:], uint64(sa.SPI)<<32|seq&0xffffffff)
	if sa.Mode == sad.Tunnel {
		writeOuter(out, inner, ip.V6, sa, seq, total)
	} else {
		fixTransportHeader(out, ip, sa, total)
	}
	if sa.Encap.Enabled() {
		u := out[espOff-packet.UDPLen:]
		binary.BigEndian.PutUint16(u[0:], sa.Encap.SrcPort)
		binary.BigEndian.PutUint16(u[2:], sa.Encap.DstPort)
		binary.BigEndian.PutUint16(u[4:], uint16(total-(espOff-packet.UDPLen)))
		u[6], u[7] = 0, 0 // IPv4: zero checksum (RFC 3948 §2.1); IPv6 below
	}

	esp := out[espOff:]
	switch c.Suite.Cipher {
	case sad.CipherAESGCM, sad.CipherChaCha20Poly1305:
		// RFC 4106 §3.1 / RFC 7634 §2: the IV is the 64-bit sequence
		// number, unique within the SA since sequence numbers never wrap.
		binary.BigEndian.PutUint64(esp[HdrLen:], seq)
		s.setNonce(&c.Salt, seq)
		aad := aadFor(s, esp, sa.ESN, seq)
		c.AEAD.Seal(out[hdr:hdr], s.nonce[:], pt, aad)
	case sad.CipherAESCBC:
		iv := esp[HdrLen : HdrLen+16]
		s.iv = c.IVSeed
		binary.BigEndian.PutUint64(s.ctr[:8], seq)
		subtle.XORBytes(s.iv[8:], s.iv[8:], s.ctr[:8])
		c.Block.Encrypt(iv, s.iv[:])
		m := c.GetMAC()
		m.CBC.SetEncIV(iv)
		m.CBC.Enc.CryptBlocks(out[hdr:hdr+padded], pt)
		mac(m, s, esp[:HdrLen+16+padded], sa.ESN, seq, out[hdr+padded:total])
		c.PutMAC(m)
	case sad.CipherNull:
		copy(out[hdr:], pt)
		m := c.GetMAC()
		mac(m, s, esp[:HdrLen+padded], sa.ESN, seq, out[hdr+padded:total])
		c.PutMAC(m)
	}

	if sa.Encap.Enabled() && sa.Mode == sad.Tunnel && !sa.Local.Is4() ||
		sa.Encap.Enabled() && sa.Mode == sad.Transport && ip.V6 {
		setUDP6Checksum(out, espOff-packet.UDPLen, total)
	}
	return total, sad.OK
}

// setNonce writes the AEAD nonce, salt ‖ IV (RFC 4106 §4), with iv the
// 8 IV bytes read as a big-endian number. The stores are one of 8 bytes
// and one of 4, the widths of the loads the AES-GCM assembly reads the
// nonce with: a load that spans two stores cannot be forwarded from them
// and waits for both to reach the cache, on the critical path of the AES.
func (s *Scratch) setNonce(salt *[4]byte, iv uint64) {
	lo := uint64(binary.LittleEndian.Uint32(salt[:])) | uint64(bits.ReverseBytes32(uint32(iv>>32)))<<32
	binary.LittleEndian.PutUint64(s.nonce[0:], lo)
	binary.BigEndian.PutUint32(s.nonce[8:], uint32(iv))
}

// aadFor returns the AEAD associated data: SPI and sequence number, with
// the high 32 bits between them when ESN is on (RFC 4106 §5).
func aadFor(s *Scratch, esp []byte, esn bool, seq uint64) []byte {
	if !esn {
		return esp[:8:8] // the header as it is
	}
	copy(s.aad[:4], esp[:4])
	binary.BigEndian.PutUint32(s.aad[4:], uint32(seq>>32))
	copy(s.aad[8:12], esp[4:8])
	return s.aad[:12]
}

// mac writes the truncated HMAC over covered (ESP header through the end
// of the ciphertext), followed for ESN by the high sequence bits, which
// are counted but not sent (RFC 4303 §2.2.1), into icv.
func mac(m *sad.MAC, s *Scratch, covered []byte, esn bool, seq uint64, icv []byte) {
	m.H.Write(covered)
	if esn {
		binary.BigEndian.PutUint32(s.hi[:], uint32(seq>>32))
		m.H.Write(s.hi[:])
	}
	sum := m.H.Sum(m.Sum[:0])
	copy(icv, sum)
}

// decTTL decrements a forwarded packet's TTL / hop limit, keeping the IPv4
// header checksum right, and refuses a packet that would leave with 0.
func decTTL(b []byte, v6 bool) sad.Reason {
	if v6 {
		if b[7] <= 1 {
			return sad.ErrTTLExpired
		}
		b[7]--
		return sad.OK
	}
	// TTL and protocol are one 16-bit word of the checksum. The new word
	// is made in a register: reading it back after a byte store would
	// be a load the CPU cannot forward from that store.
	old := binary.BigEndian.Uint16(b[8:])
	if old>>8 <= 1 {
		return sad.ErrTTLExpired
	}
	ttlProto := old - 0x100
	binary.BigEndian.PutUint16(b[8:], ttlProto)
	cs := binary.BigEndian.Uint16(b[10:])
	binary.BigEndian.PutUint16(b[10:], packet.UpdateChecksum16(cs, old, ttlProto))
	return sad.OK
}

// tos returns the inner packet's DS field (DSCP and ECN).
func tos(inner []byte, v6 bool) byte {
	if v6 {
		return inner[0]<<4 | inner[1]>>4
	}
	return inner[1]
}

// writeOuter writes the tunnel's outer IP header at out[0:] from the
// SA's template. DSCP and ECN are copied from the inner header (RFC 4301
// §5.1.2.1; RFC 6040 §4.1 normal mode copies ECN, CE included).
func writeOuter(out, inner []byte, innerV6 bool, sa *sad.SA, seq uint64, total int) {
	ds := tos(inner, innerV6)
	if sa.OuterLen == packet.IPv4MinLen {
		var df uint32
		switch sa.DF {
		case sad.DFCopy:
			if innerV6 || inner[6]&0x40 != 0 {
				df = 0x4000
			}
		case sad.DFSet:
			df = 0x4000
		}
		// The ID need only be unique while fragments may exist; the
		// sequence number is unique per SA and costs nothing.
		id := uint32(uint16(seq))
		h := out[:packet.IPv4MinLen]
		copy(h, sa.OuterHdr[:packet.IPv4MinLen])
		h[1] = ds
		binary.BigEndian.PutUint16(h[2:], uint16(total))
		binary.BigEndian.PutUint16(h[4:], uint16(id))
		binary.BigEndian.PutUint16(h[6:], uint16(df))
		sum := sa.OuterSum + uint32(ds) + uint32(total) + id + df
		binary.BigEndian.PutUint16(h[10:], ^packet.Fold(sum))
		return
	}
	h := out[:packet.IPv6Len]
	copy(h, sa.OuterHdr[:packet.IPv6Len])
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(ds)<<20)
	binary.BigEndian.PutUint16(h[4:], uint16(total-packet.IPv6Len))
}

// fixTransportHeader rewrites the moved IP header of a transport-mode
// packet: protocol ESP (or UDP), new length, checksum.
func fixTransportHeader(out []byte, ip packet.IP, sa *sad.SA, total int) {
	proto := byte(packet.ProtoESP)
	if sa.Encap.Enabled() {
		proto = packet.ProtoUDP
	}
	if !ip.V6 {
		out[9] = proto
		binary.BigEndian.PutUint16(out[2:], uint16(total))
		out[10], out[11] = 0, 0
		binary.BigEndian.PutUint16(out[10:], packet.IPv4HeaderChecksum(out[:ip.HdrLen]))
		return
	}
	binary.BigEndian.PutUint16(out[4:], uint16(total-packet.IPv6Len))
	setLastNextHeader(out[:ip.HdrLen], proto)
}

// setLastNextHeader sets the next-header field of the last header in an
// IPv6 header chain (the fixed header plus the extension headers ParseIP
// walked) to proto.
func setLastNextHeader(h []byte, proto byte) {
	at, nh, off := 6, h[6], packet.IPv6Len
	for off+8 <= len(h) {
		l := 8
		if nh != packet.ProtoFragment {
			l = (int(h[off+1]) + 1) * 8
		}
		at, nh = off, h[off]
		off += l
	}
	h[at] = proto
}

// setUDP6Checksum fills the UDP checksum of an IPv6 packet, which IPv6
// makes mandatory (RFC 8200 §8.1).
func setUDP6Checksum(out []byte, udpOff, total int) {
	u := out[udpOff:total]
	u[6], u[7] = 0, 0
	cs := packet.Checksum(u, packet.PseudoSum(out[8:24], out[24:40], packet.ProtoUDP, len(u)))
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], cs)
}

// EncapLen is the length of the ESP packet Encap makes from an inner
// packet of innerLen bytes whose IP header is hdrLen bytes (transport
// mode keeps the header in front; tunnel mode ignores hdrLen).
func EncapLen(sa *sad.SA, innerLen, hdrLen int) int {
	c := sa.Crypto
	payload, h := innerLen, HeadRoom(sa)
	if sa.Mode == sad.Transport {
		payload -= hdrLen
		h += hdrLen
	}
	return h + (payload+2+c.Align-1)&^(c.Align-1) + c.ICV
}

// MaxInner is the largest inner packet (IP header of hdrLen included)
// whose ESP packet fits in mtu bytes; 0 if none does.
func MaxInner(sa *sad.SA, mtu, hdrLen int) int {
	c := sa.Crypto
	h := HeadRoom(sa)
	if sa.Mode == sad.Transport {
		h += hdrLen
	}
	room := mtu - h - c.ICV // for padded payload
	room &^= c.Align - 1
	payload := room - 2
	if sa.Mode == sad.Transport {
		payload += hdrLen
	}
	if payload < 0 {
		return 0
	}
	return payload
}
