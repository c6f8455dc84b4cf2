package esp_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/sad"
)

// This file is the independent check of Encap and Decap: every packet is
// built by Encap, opened a second time by a reference ESP implementation
// written here from the RFCs on the standard library alone (refSA), and
// then handed to ParseOuter+Decap on a separately keyed inbound SA. The
// reference also seals hand-made plaintexts, which is how the bad-input
// tests reach the checks that sit behind the ICV.

// allSuites are the suites of the matrix, written as operators write them.
var allSuites = []string{
	"aes128gcm16", "aes256gcm16", "aes128gcm8", "aes128gcm12", "chacha20poly1305",
	"aes128-sha256", "aes256-sha384", "aes256-sha512", "null-sha256",
}

// Addresses: the two gateways (or hosts in transport mode) and the two
// protected networks behind them. Documentation ranges only.
var (
	gw4A   = netip.MustParseAddr("192.0.2.1")
	gw4B   = netip.MustParseAddr("198.51.100.1")
	gw6A   = netip.MustParseAddr("2001:db8:1::1")
	gw6B   = netip.MustParseAddr("2001:db8:2::1")
	host4S = netip.MustParseAddr("203.0.113.5")
	host4D = netip.MustParseAddr("203.0.113.77")
	host6S = netip.MustParseAddr("2001:db8:a::5")
	host6D = netip.MustParseAddr("2001:db8:b::7")
)

const (
	ipProtoUDP  = 17
	ipProtoESP  = 50
	ipProtoIPv4 = 4
	ipProtoIPv6 = 41
	ipProtoHBH  = 0
	ipProtoNone = 59
	nattPort    = 4500
	outerTTL    = 37 // not the default, so the test sees it came from the SA
)

// modeSpec is one column of the mode matrix.
type modeSpec struct {
	name   string
	mode   sad.Mode
	outer6 bool // tunnel: the outer family; transport: the packet's family
	inner6 bool
	hbh    bool // the inner IPv6 packet carries a hop-by-hop options header
}

var modeSpecs = []modeSpec{
	{"4in4", sad.Tunnel, false, false, false},
	{"6in6", sad.Tunnel, true, true, false},
	{"4in6", sad.Tunnel, true, false, false},
	{"6in4", sad.Tunnel, false, true, false},
	{"6in6hbh", sad.Tunnel, true, true, true},
	{"transport4", sad.Transport, false, false, false},
	{"transport6", sad.Transport, true, true, false},
	{"transport6hbh", sad.Transport, true, true, true},
}

// ---------------------------------------------------------------------------
// Checksums, written here rather than taken from fastpath/packet so the
// test does not check the code with itself (RFC 1071, the plain loop).

func sum16(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold16(acc uint32) uint16 {
	for acc>>16 != 0 {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// ipv4HeaderOK reports whether an IPv4 header's checksum verifies.
func ipv4HeaderOK(h []byte) bool {
	ihl := int(h[0]&0x0f) * 4
	return fold16(sum16(h[:ihl], 0)) == 0xffff
}

func setIPv4Checksum(h []byte) {
	ihl := int(h[0]&0x0f) * 4
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^fold16(sum16(h[:ihl], 0)))
}

func pseudo(src, dst netip.Addr, proto uint8, length int) uint32 {
	s, d := src.AsSlice(), dst.AsSlice()
	acc := sum16(s, 0)
	acc = sum16(d, acc)
	return acc + uint32(proto) + uint32(length)
}

// udpChecksum returns the checksum to put in a UDP header whose checksum
// field is zero (0 becomes 0xffff, RFC 768).
func udpChecksum(src, dst netip.Addr, udp []byte) uint16 {
	c := ^fold16(sum16(udp, pseudo(src, dst, ipProtoUDP, len(udp))))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// udpChecksumOK verifies a UDP checksum in place.
func udpChecksumOK(src, dst netip.Addr, udp []byte) bool {
	return fold16(sum16(udp, pseudo(src, dst, ipProtoUDP, len(udp)))) == 0xffff
}

// ---------------------------------------------------------------------------
// Inner packets.

type innerOpts struct {
	v6       bool
	hbh      bool
	src, dst netip.Addr
	payload  int   // UDP payload bytes
	tos      uint8 // DSCP<<2 | ECN
	ttl      uint8
	df       bool
	fill     byte // payload pattern seed
	srcPort  uint16
	dstPort  uint16
	data     []byte // payload bytes, repeated as needed; nil: a pattern from fill
}

// buildInner makes a well-formed IPv4 or IPv6 UDP packet with valid
// checksums; len == cap, the caller places it.
func buildInner(o innerOpts) []byte {
	if o.ttl == 0 {
		o.ttl = 64
	}
	if o.srcPort == 0 {
		o.srcPort, o.dstPort = 40000, 5201
	}
	ulen := 8 + o.payload
	var p []byte
	var udp []byte
	if !o.v6 {
		p = make([]byte, 20+ulen)
		p[0], p[1] = 0x45, o.tos
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:], 0x1234)
		if o.df {
			p[6] = 0x40
		}
		p[8], p[9] = o.ttl, ipProtoUDP
		a, b := o.src.As4(), o.dst.As4()
		copy(p[12:], a[:])
		copy(p[16:], b[:])
		setIPv4Checksum(p[:20])
		udp = p[20:]
	} else {
		ext := 0
		if o.hbh {
			ext = 8
		}
		p = make([]byte, 40+ext+ulen)
		binary.BigEndian.PutUint32(p[0:], 6<<28|uint32(o.tos)<<20|0x12345)
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		p[6], p[7] = ipProtoUDP, o.ttl
		if o.hbh {
			p[6] = ipProtoHBH
			// Next header UDP, length 0 (8 bytes), one PadN option of 4.
			copy(p[40:48], []byte{ipProtoUDP, 0, 1, 4, 0, 0, 0, 0})
		}
		a, b := o.src.As16(), o.dst.As16()
		copy(p[8:], a[:])
		copy(p[24:], b[:])
		udp = p[40+ext:]
	}
	binary.BigEndian.PutUint16(udp[0:], o.srcPort)
	binary.BigEndian.PutUint16(udp[2:], o.dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(ulen))
	for i := 8; i < ulen; i++ {
		if len(o.data) > 0 {
			udp[i] = o.data[(i-8)%len(o.data)]
		} else {
			udp[i] = o.fill + byte(i*7)
		}
	}
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(o.src, o.dst, udp))
	return p
}

// ipHdrLen is the length of the IP header chain of a packet we built.
func ipHdrLen(p []byte) int {
	if p[0]>>4 == 4 {
		return int(p[0]&0x0f) * 4
	}
	if p[6] == ipProtoHBH {
		return 40 + (int(p[41])+1)*8
	}
	return 40
}

// forwarded returns p as a forwarding hop leaves it: TTL or hop limit one
// lower, the IPv4 checksum recomputed from scratch.
func forwarded(p []byte) []byte {
	q := bytes.Clone(p)
	if q[0]>>4 == 4 {
		q[8]--
		setIPv4Checksum(q[:20])
	} else {
		q[7]--
	}
	return q
}

// tosOf reads the DS field (DSCP and ECN) of an IP packet.
func tosOf(p []byte) uint8 {
	if p[0]>>4 == 4 {
		return p[1]
	}
	return p[0]<<4 | p[1]>>4
}

// setTOS writes the DS field, fixing the IPv4 checksum.
func setTOS(p []byte, tos uint8) {
	if p[0]>>4 == 4 {
		p[1] = tos
		setIPv4Checksum(p)
		return
	}
	p[0] = p[0]&0xf0 | tos>>4
	p[1] = p[1]&0x0f | tos<<4
}

// ---------------------------------------------------------------------------
// The reference ESP implementation (RFC 4303 §2, RFC 4106 §3-5, RFC 7634
// §2, RFC 3602, RFC 4868, RFC 2410), keyed from the raw key bytes.

type refSA struct {
	suite      sad.Suite
	key, integ []byte
	spi        uint32
	esn        bool
}

func (r *refSA) ivLen() int {
	switch r.suite.Cipher {
	case sad.CipherAESCBC:
		return 16
	case sad.CipherNull:
		return 0
	}
	return 8
}

func (r *refSA) icvLen() int {
	switch r.suite.Integ {
	case sad.IntegHMACSHA256:
		return 16
	case sad.IntegHMACSHA384:
		return 24
	case sad.IntegHMACSHA512:
		return 32
	}
	if r.suite.ICVLen == 0 {
		return 16
	}
	return r.suite.ICVLen
}

func (r *refSA) align() int {
	if r.suite.Cipher == sad.CipherAESCBC {
		return 16
	}
	return 4
}

func (r *refSA) aad(seq uint64) []byte {
	a := binary.BigEndian.AppendUint32(nil, r.spi)
	if r.esn {
		a = binary.BigEndian.AppendUint32(a, uint32(seq>>32))
	}
	return binary.BigEndian.AppendUint32(a, uint32(seq))
}

// aead returns the AEAD with its full tag (16 bytes); 8 and 12 byte ICVs
// are the leftmost bytes of the GCM tag (NIST SP 800-38D §5.2.1.2).
func (r *refSA) aead() (cipher.AEAD, []byte) {
	k := r.key[:len(r.key)-4]
	salt := r.key[len(r.key)-4:]
	if r.suite.Cipher == sad.CipherChaCha20Poly1305 {
		a, err := chacha20poly1305.New(k)
		if err != nil {
			panic(err)
		}
		return a, salt
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return a, salt
}

func (r *refSA) mac(covered []byte, seq uint64) []byte {
	var h func() hash.Hash
	switch r.suite.Integ {
	case sad.IntegHMACSHA256:
		h = sha256.New
	case sad.IntegHMACSHA384:
		h = sha512.New384
	default:
		h = sha512.New
	}
	m := hmac.New(h, r.integ)
	m.Write(covered)
	if r.esn {
		// RFC 4303 §2.2.1: the high bits are counted, not sent.
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(seq>>32)))
	}
	return m.Sum(nil)[:r.icvLen()]
}

// seal builds the ESP packet (SPI through ICV) around pt, which already
// holds whatever padding, pad length and next header the caller wants.
func (r *refSA) seal(seq uint64, iv, pt []byte) []byte {
	hdr := binary.BigEndian.AppendUint32(nil, r.spi)
	hdr = binary.BigEndian.AppendUint32(hdr, uint32(seq))
	hdr = append(hdr, iv...)
	switch r.suite.Cipher {
	case sad.CipherAESGCM, sad.CipherChaCha20Poly1305:
		a, salt := r.aead()
		nonce := append(bytes.Clone(salt), iv...)
		ct := a.Seal(nil, nonce, pt, r.aad(seq))
		ct = ct[:len(pt)+r.icvLen()]
		return append(hdr, ct...)
	case sad.CipherAESCBC:
		b, _ := aes.NewCipher(r.key)
		ct := make([]byte, len(pt))
		cipher.NewCBCEncrypter(b, iv).CryptBlocks(ct, pt)
		p := append(hdr, ct...)
		return append(p, r.mac(p, seq)...)
	default:
		p := append(hdr, pt...)
		return append(p, r.mac(p, seq)...)
	}
}

// open verifies and decrypts an ESP packet (SPI through ICV) received with
// the full sequence number seq; it returns the plaintext with its trailer.
func (r *refSA) open(p []byte, seq uint64) ([]byte, bool) {
	iv, icv := r.ivLen(), r.icvLen()
	if len(p) < 8+iv+icv {
		return nil, false
	}
	if binary.BigEndian.Uint32(p) != r.spi || binary.BigEndian.Uint32(p[4:]) != uint32(seq) {
		return nil, false
	}
	ct := p[8+iv : len(p)-icv]
	tag := p[len(p)-icv:]
	switch r.suite.Cipher {
	case sad.CipherAESGCM, sad.CipherChaCha20Poly1305:
		a, salt := r.aead()
		nonce := append(bytes.Clone(salt), p[8:16]...)
		if icv == 16 {
			pt, err := a.Open(nil, nonce, p[16:], r.aad(seq))
			return pt, err == nil
		}
		// Short GCM tags: decrypt with the GCM counter (J0+1 onwards),
		// re-seal and compare the leftmost ICV bytes.
		b, _ := aes.NewCipher(r.key[:len(r.key)-4])
		ctr := append(bytes.Clone(nonce), 0, 0, 0, 2)
		pt := make([]byte, len(ct))
		cipher.NewCTR(b, ctr).XORKeyStream(pt, ct)
		full := a.Seal(nil, nonce, pt, r.aad(seq))
		if subtle.ConstantTimeCompare(full[len(pt):len(pt)+icv], tag) != 1 {
			return nil, false
		}
		return pt, true
	case sad.CipherAESCBC:
		if !hmac.Equal(r.mac(p[:len(p)-icv], seq), tag) || len(ct)%16 != 0 {
			return nil, false
		}
		b, _ := aes.NewCipher(r.key)
		pt := make([]byte, len(ct))
		cipher.NewCBCDecrypter(b, p[8:24]).CryptBlocks(pt, ct)
		return pt, true
	default:
		if !hmac.Equal(r.mac(p[:len(p)-icv], seq), tag) {
			return nil, false
		}
		return bytes.Clone(ct), true
	}
}

// withCap copies b into a buffer with esp.MaxTailRoom spare capacity, as a
// received frame in a UMEM chunk would have.
func withCap(b []byte) []byte {
	return append(make([]byte, 0, len(b)+esp.MaxTailRoom), b...)
}

// withTrailer appends the RFC 4303 §2.4 trailer with the least padding
// that aligns to align: 1, 2, 3, …, pad length, next header.
func withTrailer(data []byte, align int, nh uint8) []byte {
	pad := (align - (len(data)+2)%align) % align
	pt := bytes.Clone(data)
	for i := 1; i <= pad; i++ {
		pt = append(pt, byte(i))
	}
	return append(pt, byte(pad), nh)
}

// ---------------------------------------------------------------------------
// SA pairs.

type pairOpts struct {
	suite  string
	ms     modeSpec
	esn    bool
	udp    bool
	spi    uint32
	window int
	// inSelectors are the inbound SA's selectors (none = any).
	inSelectors []sad.Selector
	df          sad.DFMode
	noReplay    bool
}

type pair struct {
	opts    pairOpts
	out, in *sad.SA
	ref     *refSA
	local   netip.Addr // outer source (tunnel) / packet source (transport)
	remote  netip.Addr
	isrc    netip.Addr // inner addresses
	idst    netip.Addr
}

// testKeys returns deterministic key material: both SAs of a pair, and the
// reference, are keyed from the same bytes, each copy made separately.
func testKeys(su sad.Suite, seed byte) (key, integ []byte) {
	key = make([]byte, su.KeyLen())
	for i := range key {
		key[i] = seed + byte(i)*13
	}
	integ = make([]byte, su.IntegKeyLen())
	for i := range integ {
		integ[i] = seed ^ 0x5c + byte(i)*7
	}
	return key, integ
}

func newPair(tb testing.TB, o pairOpts) *pair {
	tb.Helper()
	su, err := sad.ParseSuite(o.suite)
	if err != nil {
		tb.Fatal(err)
	}
	if o.spi == 0 {
		o.spi = 0x1000 + uint32(len(o.suite))
	}
	p := &pair{opts: o}
	if o.ms.outer6 {
		p.local, p.remote = gw6A, gw6B
	} else {
		p.local, p.remote = gw4A, gw4B
	}
	switch {
	case o.ms.mode == sad.Transport:
		p.isrc, p.idst = p.local, p.remote
	case o.ms.inner6:
		p.isrc, p.idst = host6S, host6D
	default:
		p.isrc, p.idst = host4S, host4D
	}
	var enc sad.UDPEncap
	if o.udp {
		enc = sad.UDPEncap{SrcPort: nattPort, DstPort: nattPort}
	}
	mk := func(dir sad.Direction) *sad.SA {
		key, integ := testKeys(su, byte(o.spi))
		cfg := sad.Config{
			SPI: o.spi, Dir: dir, Mode: o.ms.mode,
			Local: p.local, Remote: p.remote, Encap: enc,
			Suite: su, Key: key, IntegKey: integ,
			ESN: o.esn, ReplayWindow: o.window, NoReplay: o.noReplay,
			TTL: outerTTL, DF: o.df,
		}
		if dir == sad.Inbound {
			cfg.Local, cfg.Remote = p.remote, p.local
			cfg.Selectors = o.inSelectors
		}
		sa, err := sad.New(cfg)
		if err != nil {
			tb.Fatalf("sad.New(%s %v): %v", o.suite, dir, err)
		}
		return sa
	}
	p.out, p.in = mk(sad.Outbound), mk(sad.Inbound)
	key, integ := testKeys(su, byte(o.spi))
	p.ref = &refSA{suite: su, key: key, integ: integ, spi: o.spi, esn: o.esn}
	return p
}

// inner builds a packet that fits the pair: inner addresses, family.
func (p *pair) inner(payload int, tos uint8, df bool) []byte {
	return buildInner(innerOpts{
		v6: p.opts.ms.inner6, hbh: p.opts.ms.hbh, src: p.isrc, dst: p.idst,
		payload: payload, tos: tos, df: df, fill: byte(payload),
	})
}

// ---------------------------------------------------------------------------
// One encapsulation with its buffers.

type encapped struct {
	buf  []byte // the whole buffer the ESP packet lies in
	pkt  []byte // the ESP packet (outer IP header first)
	seq  uint64
	orig []byte // the inner packet as given, before Encap touched it
}

// encap runs Encap on a copy of inner, in place or into a separate buffer.
// Capacity is esp.MaxTailRoom behind the packet in both cases, which the
// package documents as enough for every suite.
func encap(tb testing.TB, s *esp.Scratch, sa *sad.SA, inner []byte, seq uint64, inPlace bool) (encapped, sad.Reason) {
	tb.Helper()
	e := encapped{seq: seq, orig: bytes.Clone(inner)}
	hr := esp.HeadRoom(sa)
	var in, out []byte
	if inPlace {
		e.buf = make([]byte, hr+len(inner)+esp.MaxTailRoom)
		copy(e.buf[hr:], inner)
		in = e.buf[hr : hr+len(inner)]
		out = e.buf
	} else {
		ib := make([]byte, len(inner)+esp.MaxTailRoom)
		copy(ib, inner)
		in = ib[:len(inner)]
		e.buf = make([]byte, esp.MaxHeadRoom+60+len(inner)+esp.MaxTailRoom)
		out = e.buf
	}
	n, r := esp.Encap(s, out, in, sa, seq)
	if r == sad.OK {
		if n <= 0 || n > len(e.buf) {
			tb.Fatalf("Encap returned length %d for a %d-byte buffer", n, len(e.buf))
		}
		e.pkt = e.buf[:n]
	}
	return e, r
}

// decap runs ParseOuter and Decap and returns the inner packet.
func decap(s *esp.Scratch, pkt []byte, sa *sad.SA) ([]byte, sad.Reason) {
	var o esp.Outer
	if r := esp.ParseOuter(pkt, nattPort, &o); r != sad.OK {
		return nil, r
	}
	off, n, r := esp.Decap(s, pkt, &o, sa)
	if r != sad.OK {
		return nil, r
	}
	if off < 0 || n < 0 || off+n > len(pkt) {
		panic(fmt.Sprintf("Decap returned [%d:%d] outside a %d-byte packet", off, off+n, len(pkt)))
	}
	return pkt[off : off+n], sad.OK
}

// layout says where the parts of an ESP packet built for pair p lie.
type layout struct {
	ipLen  int // outer IP header chain
	udpOff int // -1 without UDP
	espOff int
}

func (p *pair) layout(orig []byte) layout {
	l := layout{udpOff: -1}
	switch {
	case p.opts.ms.mode == sad.Transport:
		l.ipLen = ipHdrLen(orig)
	case p.opts.ms.outer6:
		l.ipLen = 40
	default:
		l.ipLen = 20
	}
	l.espOff = l.ipLen
	if p.opts.udp {
		l.udpOff = l.ipLen
		l.espOff += 8
	}
	return l
}

// checkEncap checks every field of an ESP packet Encap built against what
// the RFCs ask for, and opens it with the reference implementation.
func (p *pair) checkEncap(t *testing.T, e encapped) {
	t.Helper()
	pkt, orig := e.pkt, e.orig
	n := len(pkt)
	l := p.layout(orig)
	tunnel := p.opts.ms.mode == sad.Tunnel
	wantProto := uint8(ipProtoESP)
	if p.opts.udp {
		wantProto = ipProtoUDP
	}
	if !p.opts.ms.outer6 {
		h := pkt[:l.ipLen]
		if h[0]>>4 != 4 || int(binary.BigEndian.Uint16(h[2:])) != n || h[9] != wantProto || !ipv4HeaderOK(h) {
			t.Fatalf("outer IPv4 header % x: want version 4, length %d, protocol %d, valid checksum", h, n, wantProto)
		}
		if tunnel {
			df := h[6]&0x40 != 0
			wantDF := p.opts.ms.inner6 || orig[6]&0x40 != 0 // DFCopy
			switch {
			case h[0] != 0x45, h[1] != tosOf(orig), h[8] != outerTTL,
				binary.BigEndian.Uint16(h[6:])&^0x4000 != 0, df != wantDF,
				netip.AddrFrom4([4]byte(h[12:16])) != p.local, netip.AddrFrom4([4]byte(h[16:20])) != p.remote:
				t.Fatalf("outer IPv4 header % x: want DS %#x copied, TTL %d, DF %v, no fragment bits, %v -> %v",
					h, tosOf(orig), outerTTL, wantDF, p.local, p.remote)
			}
		} else {
			// Transport: the packet's own header, with protocol, length and
			// checksum changed and nothing else.
			for i := 0; i < l.ipLen; i++ {
				if i == 2 || i == 3 || i == 9 || i == 10 || i == 11 {
					continue
				}
				if h[i] != orig[i] {
					t.Fatalf("transport IPv4 header byte %d changed: % x, was % x", i, h, orig[:l.ipLen])
				}
			}
		}
	} else {
		h := pkt[:l.ipLen]
		if h[0]>>4 != 6 || int(binary.BigEndian.Uint16(h[4:])) != n-40 {
			t.Fatalf("outer IPv6 header % x: want payload length %d", h, n-40)
		}
		if tunnel {
			flow := binary.BigEndian.Uint32(h) & 0xfffff
			if tosOf(h) != tosOf(orig) || flow != 0 || h[6] != wantProto || h[7] != outerTTL ||
				netip.AddrFrom16([16]byte(h[8:24])) != p.local || netip.AddrFrom16([16]byte(h[24:40])) != p.remote {
				t.Fatalf("outer IPv6 header % x: want traffic class %#x copied, next header %d, hop limit %d, %v -> %v",
					h, tosOf(orig), wantProto, outerTTL, p.local, p.remote)
			}
		} else {
			nhAt := 6
			if p.opts.ms.hbh {
				nhAt = 40
			}
			for i := 0; i < l.ipLen; i++ {
				if i == 4 || i == 5 || i == nhAt {
					continue
				}
				if h[i] != orig[i] {
					t.Fatalf("transport IPv6 header byte %d changed: % x, was % x", i, h, orig[:l.ipLen])
				}
			}
			if h[nhAt] != wantProto {
				t.Fatalf("transport IPv6: next header at %d is %d, want %d", nhAt, h[nhAt], wantProto)
			}
		}
	}
	if l.udpOff >= 0 {
		u := pkt[l.udpOff:]
		sp, dp, ul := binary.BigEndian.Uint16(u), binary.BigEndian.Uint16(u[2:]), int(binary.BigEndian.Uint16(u[4:]))
		cs := binary.BigEndian.Uint16(u[6:])
		if sp != nattPort || dp != nattPort || ul != n-l.udpOff {
			t.Fatalf("UDP header % x: want ports %d, length %d", u[:8], nattPort, n-l.udpOff)
		}
		src, dst := p.local, p.remote
		if p.opts.ms.outer6 {
			// RFC 8200 §8.1: mandatory over IPv6, and it must verify.
			if cs == 0 || !udpChecksumOK(src, dst, u) {
				t.Fatalf("UDP over IPv6: checksum %#04x does not verify", cs)
			}
		} else if cs != 0 {
			// RFC 3948 §2.1: zero over IPv4.
			t.Fatalf("UDP over IPv4: checksum %#04x, want 0", cs)
		}
	}
	espb := pkt[l.espOff:]
	if binary.BigEndian.Uint32(espb) != p.opts.spi || binary.BigEndian.Uint32(espb[4:]) != uint32(e.seq) {
		t.Fatalf("ESP header % x: want SPI %#x seq %#x", espb[:8], p.opts.spi, uint32(e.seq))
	}
	if p.out.Crypto.Suite.IsAEAD() && binary.BigEndian.Uint64(espb[8:]) != e.seq {
		t.Fatalf("AEAD IV % x: want the 64-bit sequence number %#x (RFC 4106 §3.1)", espb[8:16], e.seq)
	}
	ctLen := len(espb) - 8 - p.ref.ivLen() - p.ref.icvLen()
	if ctLen <= 0 || ctLen%p.ref.align() != 0 {
		t.Fatalf("encrypted part is %d bytes, want a positive multiple of %d", ctLen, p.ref.align())
	}
	pt, ok := p.ref.open(espb, e.seq)
	if !ok {
		t.Fatalf("the reference implementation rejects Encap's ICV (seq %#x)", e.seq)
	}
	var want []byte
	if tunnel {
		nh := uint8(ipProtoIPv4)
		if p.opts.ms.inner6 {
			nh = ipProtoIPv6
		}
		want = withTrailer(forwarded(orig), p.ref.align(), nh)
	} else {
		hl := ipHdrLen(orig)
		nh := orig[9]
		if p.opts.ms.outer6 {
			nh = ipProtoUDP
		}
		want = withTrailer(orig[hl:], p.ref.align(), nh)
	}
	if !bytes.Equal(pt, want) {
		t.Fatalf("plaintext with trailer:\n got % x\nwant % x", pt, want)
	}
}

// wantDecap is the packet Decap should hand back: in tunnel mode the inner
// packet as the second gateway forwards it (RFC 4301 §5.1.2.1: both the
// encapsulator and the decapsulator decrement TTL), in transport mode the
// original packet exactly.
func (p *pair) wantDecap(orig []byte) []byte {
	if p.opts.ms.mode == sad.Tunnel {
		return forwarded(forwarded(orig))
	}
	return orig
}

// checkDecap runs ParseOuter+Decap on e and compares with wantDecap.
func (p *pair) checkDecap(t *testing.T, s *esp.Scratch, e encapped) {
	t.Helper()
	got, r := decap(s, e.pkt, p.in)
	if r != sad.OK {
		t.Fatalf("decap (seq %#x): %v", e.seq, r)
	}
	want := p.wantDecap(e.orig)
	if !bytes.Equal(got, want) {
		t.Fatalf("decapsulated packet:\n got % x\nwant % x", got, want)
	}
	if got[0]>>4 == 4 && !ipv4HeaderOK(got) {
		t.Fatalf("decapsulated IPv4 header checksum is wrong: % x", got[:20])
	}
	hl := ipHdrLen(got)
	var src, dst netip.Addr
	if got[0]>>4 == 4 {
		src, dst = netip.AddrFrom4([4]byte(got[12:16])), netip.AddrFrom4([4]byte(got[16:20]))
	} else {
		src, dst = netip.AddrFrom16([16]byte(got[8:24])), netip.AddrFrom16([16]byte(got[24:40]))
	}
	if !udpChecksumOK(src, dst, got[hl:]) {
		t.Fatalf("decapsulated UDP checksum does not verify")
	}
}

// matrixSizes are the inner UDP payload sizes of the matrix.
func matrixSizes() []int {
	s := make([]int, 0, 82)
	for i := 0; i <= 80; i++ {
		s = append(s, i)
	}
	return append(s, 1400)
}

// TestRoundTripMatrix: modes × suites × ESN × UDP × in place/separate ×
// sizes. Each packet is checked field by field, opened by the reference
// implementation, then decapsulated on a separately keyed inbound SA.
func TestRoundTripMatrix(t *testing.T) {
	sizes := matrixSizes()
	for _, suite := range allSuites {
		for _, ms := range modeSpecs {
			for _, esn := range []bool{false, true} {
				for _, udp := range []bool{false, true} {
					name := fmt.Sprintf("%s/%s/esn=%v/udp=%v", suite, ms.name, esn, udp)
					t.Run(name, func(t *testing.T) {
						p := newPair(t, pairOpts{suite: suite, ms: ms, esn: esn, udp: udp})
						if esn {
							// Cross the 2^32 boundary in the middle of the
							// run, so the high-order bits reach the AAD
							// or the ICV input. The receiver's window is
							// restored to the sender's state first.
							start := uint64(1)<<32 - 60
							p.out.SetSeq(start)
							if !p.in.Replay.Commit(start) {
								t.Fatal("cannot restore the inbound window")
							}
						}
						var s esp.Scratch
						for _, inPlace := range []bool{true, false} {
							for _, size := range sizes {
								// Cycle DSCP/ECN and DF so the copies are seen.
								tos := uint8(0xb8 | size&3)
								inner := p.inner(size, tos, size&4 != 0)
								seq, got := p.out.ReserveSeq(1)
								if got != 1 {
									t.Fatal("sequence space exhausted")
								}
								e, r := encap(t, &s, p.out, inner, seq, inPlace)
								if r != sad.OK {
									t.Fatalf("size %d in place %v: encap: %v", size, inPlace, r)
								}
								p.checkEncap(t, e)
								p.checkDecap(t, &s, e)
							}
						}
						if esn && p.in.Replay.Top()>>32 != 1 {
							t.Fatalf("window top %#x: the run should have crossed 2^32", p.in.Replay.Top())
						}
					})
				}
			}
		}
	}
}

// TestEncapExactTailRoom: Encap must succeed in place with exactly
// HeadRoom(sa) in front of the inner packet and TailRoom(sa) behind it,
// which is what the package documents as sufficient.
func TestEncapExactTailRoom(t *testing.T) {
	for _, suite := range allSuites {
		for _, ms := range []modeSpec{modeSpecs[0], modeSpecs[5]} {
			t.Run(suite+"/"+ms.name, func(t *testing.T) {
				p := newPair(t, pairOpts{suite: suite, ms: ms})
				var s esp.Scratch
				for _, size := range []int{0, 1, 2, 3, 17, 100} {
					inner := p.inner(size, 0, false)
					hr, tr := esp.HeadRoom(p.out), esp.TailRoom(p.out)
					buf := make([]byte, hr+len(inner)+tr)
					copy(buf[hr:], inner)
					seq, _ := p.out.ReserveSeq(1)
					n, r := esp.Encap(&s, buf, buf[hr:hr+len(inner)], p.out, seq)
					if r != sad.OK {
						t.Fatalf("payload %d: Encap with exactly TailRoom(sa)=%d spare bytes: %v", size, tr, r)
					}
					e := encapped{buf: buf, pkt: buf[:n], seq: seq, orig: inner}
					p.checkEncap(t, e)
				}
			})
		}
	}
}

// TestEncapSeparateExactOut: into a separate buffer, an out of exactly the
// packet's length is enough, and one byte less is ErrTooBig, not a panic.
func TestEncapSeparateExactOut(t *testing.T) {
	for _, suite := range allSuites {
		p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0]})
		var s esp.Scratch
		inner := p.inner(33, 0, false)
		e, r := encap(t, &s, p.out, inner, 1, false)
		if r != sad.OK {
			t.Fatalf("%s: %v", suite, r)
		}
		need := len(e.pkt)
		for _, c := range []struct {
			size int
			want sad.Reason
		}{{need, sad.OK}, {need - 1, sad.ErrTooBig}} {
			ib := make([]byte, len(inner), len(inner)+esp.MaxTailRoom)
			copy(ib, inner)
			out := make([]byte, c.size)
			if _, r := esp.Encap(&s, out, ib, p.out, 2); r != c.want {
				t.Errorf("%s: out of %d bytes (packet %d): %v, want %v", suite, c.size, len(e.pkt), r, c.want)
			}
		}
	}
}

// TestOuterDF: the outer IPv4 DF bit in tunnel mode (RFC 4301 §8.1).
func TestOuterDF(t *testing.T) {
	cases := []struct {
		mode    sad.DFMode
		inner6  bool
		innerDF bool
		want    bool
	}{
		{sad.DFCopy, false, true, true},
		{sad.DFCopy, false, false, false},
		{sad.DFCopy, true, false, true}, // IPv6 never fragments en route
		{sad.DFSet, false, false, true},
		{sad.DFSet, false, true, true},
		{sad.DFClear, false, true, false},
		{sad.DFClear, true, false, false},
	}
	for _, c := range cases {
		ms := modeSpecs[0]
		if c.inner6 {
			ms = modeSpecs[3] // 6in4
		}
		p := newPair(t, pairOpts{suite: "aes128gcm16", ms: ms, df: c.mode})
		var s esp.Scratch
		e, r := encap(t, &s, p.out, p.inner(10, 0, c.innerDF), 1, true)
		if r != sad.OK {
			t.Fatal(r)
		}
		if got := e.pkt[6]&0x40 != 0; got != c.want {
			t.Errorf("DF mode %d, inner v6 %v DF %v: outer DF %v, want %v", c.mode, c.inner6, c.innerDF, got, c.want)
		}
		if !ipv4HeaderOK(e.pkt[:20]) {
			t.Errorf("outer checksum wrong")
		}
	}
}

// ---------------------------------------------------------------------------
// Bad input. Each case gives its own Reason, never a panic.

// outerAround builds an outer IP (and UDP) header for an ESP packet.
func outerAround(v6, udp bool, src, dst netip.Addr, espb []byte, tos uint8) []byte {
	var p []byte
	proto := uint8(ipProtoESP)
	body := espb
	if udp {
		proto = ipProtoUDP
		u := make([]byte, 8, 8+len(espb))
		binary.BigEndian.PutUint16(u, nattPort)
		binary.BigEndian.PutUint16(u[2:], nattPort)
		binary.BigEndian.PutUint16(u[4:], uint16(8+len(espb)))
		body = append(u, espb...)
		if v6 {
			binary.BigEndian.PutUint16(body[6:], udpChecksum(src, dst, body))
		}
	}
	if !v6 {
		p = make([]byte, 20, 20+len(body)+esp.MaxTailRoom)
		p[0], p[1] = 0x45, tos
		binary.BigEndian.PutUint16(p[2:], uint16(20+len(body)))
		p[8], p[9] = 64, proto
		a, b := src.As4(), dst.As4()
		copy(p[12:], a[:])
		copy(p[16:], b[:])
		setIPv4Checksum(p)
	} else {
		p = make([]byte, 40, 40+len(body)+esp.MaxTailRoom)
		binary.BigEndian.PutUint32(p, 6<<28|uint32(tos)<<20)
		binary.BigEndian.PutUint16(p[4:], uint16(len(body)))
		p[6], p[7] = proto, 64
		a, b := src.As16(), dst.As16()
		copy(p[8:], a[:])
		copy(p[24:], b[:])
	}
	return append(p, body...)
}

// crafted seals pt (trailer included) for pair p with the reference and
// wraps it in an outer header as the pair's peer would send it.
func (p *pair) crafted(seq uint64, pt []byte) []byte {
	var iv []byte // any IV will do; NULL has none
	if n := p.ref.ivLen(); n > 0 {
		iv = make([]byte, n)
		binary.BigEndian.PutUint64(iv[n-8:], seq)
		iv[0] ^= 0xa5
	}
	return outerAround(p.opts.ms.outer6, p.opts.udp, p.local, p.remote, p.ref.seal(seq, iv, pt), 0)
}

func TestDecapBadInput(t *testing.T) {
	for _, suite := range allSuites {
		t.Run(suite, func(t *testing.T) {
			tun := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0]})
			tr := newPair(t, pairOpts{suite: suite, ms: modeSpecs[5]})
			align := tun.ref.align()
			good := tun.inner(20, 0, false)
			goodTr := tr.inner(20, 0, false)
			ttl1 := bytes.Clone(good)
			ttl1[8] = 1
			setIPv4Checksum(ttl1[:20])
			badPad := withTrailer(good, align, ipProtoIPv4)
			if badPad[len(badPad)-2] == 0 {
				t.Fatal("the vector needs padding")
			}
			badPad[len(badPad)-3]++ // last pad byte no longer its index
			longPad := withTrailer(good, align, ipProtoIPv4)
			longPad[len(longPad)-2] = byte(len(longPad)) // pad length beyond the payload
			cases := []struct {
				name string
				p    *pair
				pt   []byte
				want sad.Reason
			}{
				{"control", tun, withTrailer(good, align, ipProtoIPv4), sad.OK},
				{"control transport", tr, withTrailer(goodTr[20:], align, ipProtoUDP), sad.OK},
				{"bad padding bytes", tun, badPad, sad.ErrBadPadding},
				{"pad length too long", tun, longPad, sad.ErrBadPadding},
				{"tunnel next header UDP", tun, withTrailer(good, align, ipProtoUDP), sad.ErrBadNextHeader},
				{"tunnel next header 6 for v4", tun, withTrailer(good, align, 6), sad.ErrBadNextHeader},
				{"tunnel IPv6 next header, IPv4 inside", tun, withTrailer(good, align, ipProtoIPv6), sad.ErrBadHeader},
				{"tunnel garbage inner", tun, withTrailer([]byte{0x45, 1, 2, 3, 4, 5}, align, ipProtoIPv4), sad.ErrBadHeader},
				{"tunnel empty inner", tun, withTrailer(nil, align, ipProtoIPv4), sad.ErrBadHeader},
				{"dummy packet tunnel", tun, withTrailer([]byte{9, 9, 9}, align, ipProtoNone), sad.ErrDummy},
				{"dummy packet transport", tr, withTrailer(nil, align, ipProtoNone), sad.ErrDummy},
				{"inner TTL 1", tun, withTrailer(ttl1, align, ipProtoIPv4), sad.ErrTTLExpired},
			}
			var s esp.Scratch
			for i, c := range cases {
				pkt := c.p.crafted(uint64(100+i), c.pt)
				if _, r := decap(&s, pkt, c.p.in); r != c.want {
					t.Errorf("%s: %v, want %v", c.name, r, c.want)
				}
			}
		})
	}
}

// TestDecapTruncated: every truncation of a good packet is refused, with
// ErrTooShort below the minimum and never OK.
func TestDecapTruncated(t *testing.T) {
	for _, suite := range allSuites {
		for _, udp := range []bool{false, true} {
			p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0], udp: udp, noReplay: true})
			var s esp.Scratch
			e, r := encap(t, &s, p.out, p.inner(30, 0, false), 7, true)
			if r != sad.OK {
				t.Fatal(r)
			}
			l := p.layout(e.orig)
			min := l.espOff + 8 + p.ref.ivLen() + p.ref.icvLen() + 2
			for cut := 0; cut < len(e.pkt); cut++ {
				pkt := withCap(e.pkt[:cut])
				if cut >= 20 {
					// Keep the IP (and UDP) lengths consistent with the cut.
					binary.BigEndian.PutUint16(pkt[2:], uint16(cut))
					setIPv4Checksum(pkt[:20])
					if udp && cut >= 28 {
						binary.BigEndian.PutUint16(pkt[24:], uint16(cut-20))
					}
				}
				_, r := decap(&s, pkt, p.in)
				switch {
				case r == sad.OK:
					t.Fatalf("%s udp=%v: truncated to %d accepted", suite, udp, cut)
				case cut >= l.espOff && cut < min && r != sad.ErrTooShort:
					t.Errorf("%s udp=%v: truncated to %d (< %d): %v, want too_short", suite, udp, cut, min, r)
				case cut >= min && r != sad.ErrAuth && r != sad.ErrLength:
					t.Errorf("%s udp=%v: truncated to %d: %v, want auth_failed or bad_length", suite, udp, cut, r)
				}
			}
			if p.ref.suite.Cipher == sad.CipherAESCBC {
				// A ciphertext that is not whole blocks is ErrLength.
				pkt := withCap(e.pkt[:len(e.pkt)-1])
				binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
				setIPv4Checksum(pkt[:20])
				if udp {
					binary.BigEndian.PutUint16(pkt[24:], uint16(len(pkt)-20))
				}
				if _, r := decap(&s, pkt, p.in); r != sad.ErrLength {
					t.Errorf("%s: ciphertext not whole blocks: %v, want bad_length", suite, r)
				}
			}
		}
	}
}

// TestDecapBitFlips flips every bit of every byte of the ESP packet (SPI,
// sequence number, IV, ciphertext, ICV): each must fail authentication,
// none may move the replay window, and the untouched packet still opens.
func TestDecapBitFlips(t *testing.T) {
	for _, suite := range allSuites {
		for _, esn := range []bool{false, true} {
			p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0], esn: esn})
			var s esp.Scratch
			// 0x1001: no single bit flip turns it into the invalid 0.
			e, r := encap(t, &s, p.out, p.inner(21, 0, false), 0x1001, true)
			if r != sad.OK {
				t.Fatal(r)
			}
			l := p.layout(e.orig)
			for i := l.espOff; i < len(e.pkt); i++ {
				for bit := 0; bit < 8; bit++ {
					pkt := withCap(e.pkt)
					pkt[i] ^= 1 << bit
					if _, r := decap(&s, pkt, p.in); r != sad.ErrAuth {
						t.Fatalf("%s esn=%v: bit %d of ESP byte %d flipped: %v, want auth_failed",
							suite, esn, bit, i-l.espOff, r)
					}
				}
			}
			if p.in.Replay.Top() != 0 {
				t.Fatalf("%s: failed packets moved the window to %d", suite, p.in.Replay.Top())
			}
			p.checkDecap(t, &s, e)
		}
	}
}

// TestDecapFailureLeavesNoAuthenticPacket: a packet that failed Decap must
// not be left in the buffer as one that passes. Decap works in place, so
// this is about what it writes before it knows the packet is bad.
func TestDecapFailureLeavesNoAuthenticPacket(t *testing.T) {
	for _, suite := range allSuites {
		p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0]})
		var s esp.Scratch
		e, r := encap(t, &s, p.out, p.inner(40, 0, false), 9, true)
		if r != sad.OK {
			t.Fatal(r)
		}
		forged := bytes.Clone(e.buf)[:len(e.pkt)]
		forged[len(forged)-1] ^= 0x55 // a guess at the ICV
		icv := bytes.Clone(forged[len(forged)-p.ref.icvLen():])
		if _, r := decap(&s, forged, p.in); r != sad.ErrAuth {
			t.Fatalf("%s: forged ICV: %v", suite, r)
		}
		if got := forged[len(forged)-p.ref.icvLen():]; !bytes.Equal(got, icv) {
			t.Errorf("%s: the failed Decap rewrote the received ICV from % x to % x", suite, icv, got)
		}
		if _, r := decap(&s, forged, p.in); r == sad.OK {
			t.Errorf("%s: the buffer of a packet that failed authentication now passes it: "+
				"Decap left the correct ICV for the attacker's ciphertext in place", suite)
		}
	}
}

// TestReplay: the same packet twice, and a packet far below the window.
func TestReplay(t *testing.T) {
	for _, suite := range allSuites {
		for _, esn := range []bool{false, true} {
			p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0], esn: esn, window: 64})
			var s esp.Scratch
			old, r := encap(t, &s, p.out, p.inner(5, 0, false), 1, true)
			if r != sad.OK {
				t.Fatal(r)
			}
			oldPkt := bytes.Clone(old.buf)[:len(old.pkt)]
			cur, _ := encap(t, &s, p.out, p.inner(5, 0, false), 5000, true)
			curPkt := bytes.Clone(cur.buf)[:len(cur.pkt)]
			p.checkDecap(t, &s, cur)
			if _, r := decap(&s, curPkt, p.in); r != sad.ErrReplay {
				t.Errorf("%s esn=%v: same packet twice: %v, want replay", suite, esn, r)
			}
			// Far below the window. Without ESN that is a replay. With ESN
			// the receiver must take it for a packet of the next 2^32
			// subspace (RFC 4303 Appendix A2.2), and the ICV then fails.
			wantOld := sad.ErrReplay
			if esn {
				wantOld = sad.ErrAuth
			}
			if _, r := decap(&s, oldPkt, p.in); r != wantOld {
				t.Errorf("%s esn=%v: packet 4999 below the top of a 64-wide window: %v, want %v", suite, esn, r, wantOld)
			}
			if top := p.in.Replay.Top(); top != 5000 {
				t.Errorf("%s esn=%v: window top %d after a refused old packet, want 5000", suite, esn, top)
			}
			// Inside the window, out of order: accepted once.
			mid, _ := encap(t, &s, p.out, p.inner(5, 0, false), 4990, true)
			midPkt := bytes.Clone(mid.buf)[:len(mid.pkt)]
			p.checkDecap(t, &s, mid)
			if _, r := decap(&s, midPkt, p.in); r != sad.ErrReplay {
				t.Errorf("%s esn=%v: in-window packet twice: %v, want replay", suite, esn, r)
			}
		}
	}
}

// TestSelectors: an inbound packet outside the SA's selectors is dropped
// after decryption (RFC 4301 §5.2 step 4), in both modes.
func TestSelectors(t *testing.T) {
	for _, ms := range []modeSpec{modeSpecs[0], modeSpecs[1], modeSpecs[5], modeSpecs[7]} {
		src, dst := host4S, host4D
		if ms.mode == sad.Transport {
			src, dst = gw4A, gw4B
			if ms.outer6 {
				src, dst = gw6A, gw6B
			}
		} else if ms.inner6 {
			src, dst = host6S, host6D
		}
		sel := []sad.Selector{{
			Src: netip.PrefixFrom(src, src.BitLen()), Dst: netip.PrefixFrom(dst, dst.BitLen()),
			Proto: ipProtoUDP, DstPorts: sad.PortRange{Lo: 5201, Hi: 5201},
		}}
		p := newPair(t, pairOpts{suite: "aes256gcm16", ms: ms, inSelectors: sel})
		var s esp.Scratch
		e, r := encap(t, &s, p.out, p.inner(12, 0, false), 1, true)
		if r != sad.OK {
			t.Fatal(r)
		}
		p.checkDecap(t, &s, e)

		other := buildInner(innerOpts{v6: ms.inner6, hbh: ms.hbh, src: src, dst: dst, payload: 12, dstPort: 5202, srcPort: 1})
		e, r = encap(t, &s, p.out, other, 2, true)
		if r != sad.OK {
			t.Fatal(r)
		}
		if _, r := decap(&s, e.pkt, p.in); r != sad.ErrPolicy {
			t.Errorf("%s: port 5202 outside the selector: %v, want policy_mismatch", ms.name, r)
		}
		if ms.mode == sad.Tunnel {
			stranger := netip.MustParseAddr("203.0.113.99")
			if ms.inner6 {
				stranger = netip.MustParseAddr("2001:db8:c::9")
			}
			other = buildInner(innerOpts{v6: ms.inner6, src: stranger, dst: dst, payload: 12})
			e, _ = encap(t, &s, p.out, other, 3, true)
			if _, r := decap(&s, e.pkt, p.in); r != sad.ErrPolicy {
				t.Errorf("%s: source outside the selector: %v, want policy_mismatch", ms.name, r)
			}
		}
	}
}

// TestTTL: a packet that would leave a gateway with TTL 0 is refused on
// either side of the tunnel.
func TestTTL(t *testing.T) {
	for _, ms := range []modeSpec{modeSpecs[0], modeSpecs[1]} {
		p := newPair(t, pairOpts{suite: "aes128gcm16", ms: ms})
		var s esp.Scratch
		for _, c := range []struct {
			ttl        uint8
			encap, dec sad.Reason
		}{{0, sad.ErrTTLExpired, 0}, {1, sad.ErrTTLExpired, 0}, {2, sad.OK, sad.ErrTTLExpired}, {3, sad.OK, sad.OK}} {
			inner := buildInner(innerOpts{v6: ms.inner6, src: p.isrc, dst: p.idst, payload: 3, ttl: c.ttl})
			if c.ttl == 0 {
				// buildInner treats 0 as the default: set it by hand.
				if ms.inner6 {
					inner[7] = 0
				} else {
					inner[8] = 0
					setIPv4Checksum(inner[:20])
				}
			}
			seq, _ := p.out.ReserveSeq(1)
			e, r := encap(t, &s, p.out, inner, seq, true)
			if r != c.encap {
				t.Errorf("%s TTL %d: encap %v, want %v", ms.name, c.ttl, r, c.encap)
				continue
			}
			if r != sad.OK {
				continue
			}
			if _, r := decap(&s, e.pkt, p.in); r != c.dec {
				t.Errorf("%s TTL %d: decap %v, want %v", ms.name, c.ttl, r, c.dec)
			}
		}
	}
}

// TestECNDecap is the RFC 6040 §4.2 decapsulation table (normal mode).
func TestECNDecap(t *testing.T) {
	const (
		notECT = 0
		ect1   = 1
		ect0   = 2
		ce     = 3
	)
	cases := []struct {
		outer, inner uint8
		want         uint8 // the inner ECN after decapsulation
		drop         bool
	}{
		{notECT, notECT, notECT, false},
		{ect0, notECT, notECT, false},
		{ect1, notECT, notECT, false},
		{ce, notECT, 0, true},
		{notECT, ect0, ect0, false},
		{ect0, ect0, ect0, false},
		{ect1, ect0, ect1, false},
		{ce, ect0, ce, false},
		{notECT, ect1, ect1, false},
		{ect0, ect1, ect1, false},
		{ect1, ect1, ect1, false},
		{ce, ect1, ce, false},
		{notECT, ce, ce, false},
		{ect0, ce, ce, false},
		{ect1, ce, ce, false},
		{ce, ce, ce, false},
	}
	for _, ms := range []modeSpec{modeSpecs[0], modeSpecs[1], modeSpecs[2], modeSpecs[3]} {
		p := newPair(t, pairOpts{suite: "chacha20poly1305", ms: ms})
		var s esp.Scratch
		for _, c := range cases {
			const dscp = 0x28 << 2 // AF11-ish: any non-zero DSCP must survive
			seq, _ := p.out.ReserveSeq(1)
			e, r := encap(t, &s, p.out, p.inner(16, dscp|c.inner, false), seq, true)
			if r != sad.OK {
				t.Fatal(r)
			}
			// The outer header is not authenticated: a router on the way
			// may have marked it.
			setTOS(e.pkt, dscp|c.outer)
			got, r := decap(&s, e.pkt, p.in)
			if c.drop {
				if r != sad.ErrECN {
					t.Errorf("%s outer %d inner %d: %v, want ecn_ce_on_not_ect", ms.name, c.outer, c.inner, r)
				}
				continue
			}
			if r != sad.OK {
				t.Errorf("%s outer %d inner %d: %v", ms.name, c.outer, c.inner, r)
				continue
			}
			if tos := tosOf(got); tos != dscp|c.want {
				t.Errorf("%s outer %d inner %d: inner DS %#x, want %#x", ms.name, c.outer, c.inner, tos, dscp|c.want)
			}
			if got[0]>>4 == 4 && !ipv4HeaderOK(got) {
				t.Errorf("%s outer %d inner %d: inner checksum not updated", ms.name, c.outer, c.inner)
			}
			want := p.wantDecap(e.orig)
			setTOS(want, dscp|c.want)
			if !bytes.Equal(got, want) {
				t.Errorf("%s outer %d inner %d: inner packet\n got % x\nwant % x", ms.name, c.outer, c.inner, got, want)
			}
		}
	}
}

// TestParseOuter: what is not ESP, or not whole, is told apart before any
// SA is looked up.
func TestParseOuter(t *testing.T) {
	p := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[0], udp: true})
	var s esp.Scratch
	e, r := encap(t, &s, p.out, p.inner(10, 0, false), 1, true)
	if r != sad.OK {
		t.Fatal(r)
	}
	espb := e.pkt[28:]
	mk := func(f func([]byte) []byte) []byte { return f(withCap(e.pkt)) }
	udpPayload := func(b []byte) []byte {
		return outerAround(false, true, gw4A, gw4B, b, 0)
	}
	// trailing appends n bytes to the IP payload and raises the IP total
	// length to cover them, leaving the UDP length as it was.
	trailing := func(n int) []byte {
		b := append(bytes.Clone(e.pkt), make([]byte, n)...)
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		setIPv4Checksum(b[:20])
		return b
	}
	frag := func(v6 bool) []byte {
		if !v6 {
			return mk(func(b []byte) []byte { b[6] |= 0x20; setIPv4Checksum(b[:20]); return b })
		}
		raw := outerAround(true, false, gw6A, gw6B, espb, 0)
		// Insert a fragment header (offset 0, M=1) between IPv6 and ESP.
		f := append(bytes.Clone(raw[:40]), ipProtoESP, 0, 0, 1, 0, 0, 0, 1)
		f = append(f, raw[40:]...)
		f[6] = 44
		binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
		return f
	}
	cases := []struct {
		name string
		pkt  []byte
		want sad.Reason
	}{
		{"good ESP-in-UDP", e.pkt, sad.OK},
		{"good raw ESP", outerAround(false, false, gw4A, gw4B, espb, 0), sad.OK},
		{"good raw ESP over IPv6", outerAround(true, false, gw6A, gw6B, espb, 0), sad.OK},
		{"NAT keepalive", udpPayload([]byte{0xff}), sad.ErrNotESP},
		{"non-ESP marker (IKE)", udpPayload(append([]byte{0, 0, 0, 0}, espb...)), sad.ErrNotESP},
		{"UDP to another port", mk(func(b []byte) []byte { b[22], b[23] = 0x01, 0xf4; return b }), sad.ErrNotESP},
		{"TCP", mk(func(b []byte) []byte { b[9] = 6; setIPv4Checksum(b[:20]); return b }), sad.ErrNotESP},
		{"IPv4 more fragments", frag(false), sad.ErrFragment},
		{"IPv4 fragment offset", mk(func(b []byte) []byte { b[7] = 1; setIPv4Checksum(b[:20]); return b }), sad.ErrFragment},
		{"IPv6 fragment header", frag(true), sad.ErrFragment},
		{"UDP length beyond the packet", mk(func(b []byte) []byte { b[24], b[25] = 0xff, 0xff; return b }), sad.ErrBadHeader},
		{"UDP length below 8", mk(func(b []byte) []byte { b[24], b[25] = 0, 7; return b }), sad.ErrBadHeader},
		// RFC 768: the datagram ends where the UDP length says. Bytes
		// after it inside the IP payload are not ciphertext (issue 13).
		{"UDP length short of the IP payload", trailing(8), sad.ErrLength},
		{"UDP length one short of the IP payload", trailing(1), sad.ErrLength},
		{"IP total length beyond the data", mk(func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; return b }), sad.ErrBadHeader},
		{"version 5", mk(func(b []byte) []byte { b[0] = 0x55; return b }), sad.ErrBadHeader},
		{"empty", nil, sad.ErrBadHeader},
		{"ESP header cut short", outerAround(false, false, gw4A, gw4B, espb[:7], 0), sad.ErrTooShort},
		{"ESP-in-UDP header cut short", udpPayload(espb[:6]), sad.ErrTooShort},
	}
	for _, c := range cases {
		var o esp.Outer
		if r := esp.ParseOuter(c.pkt, nattPort, &o); r != c.want {
			t.Errorf("%s: %v, want %v", c.name, r, c.want)
		} else if r == sad.OK && (o.SPI != p.opts.spi || !bytes.Equal(c.pkt[o.ESPOff:o.ESPOff+8], espb[:8])) {
			t.Errorf("%s: SPI %#x at offset %d", c.name, o.SPI, o.ESPOff)
		}
	}
}

// TestEncapBadInput: Encap refuses, with its own reason, what it cannot
// carry.
func TestEncapBadInput(t *testing.T) {
	tun := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[0]})
	tr := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[5]})
	tr6 := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[6]})
	var s esp.Scratch
	run := func(sa *sad.SA, inner []byte, out []byte) sad.Reason {
		in := make([]byte, len(inner), len(inner)+esp.MaxTailRoom)
		copy(in, inner)
		if out == nil {
			out = make([]byte, 2*len(inner)+200)
		}
		_, r := esp.Encap(&s, out, in, sa, 1)
		return r
	}
	fragment := tr.inner(10, 0, false)
	fragment[6] |= 0x20
	setIPv4Checksum(fragment[:20])

	big := buildInner(innerOpts{src: host4S, dst: host4D, payload: 65535 - 28})
	cases := []struct {
		name string
		r    sad.Reason
		want sad.Reason
	}{
		{"not IP", run(tun.out, []byte{0x12, 0x34}, nil), sad.ErrBadHeader},
		{"empty", run(tun.out, nil, nil), sad.ErrBadHeader},
		{"length beyond data", run(tun.out, tun.inner(10, 0, false)[:30], nil), sad.ErrBadHeader},
		{"no room in out", run(tun.out, tun.inner(10, 0, false), make([]byte, 40)), sad.ErrTooBig},
		{"beyond 65535", run(tun.out, big, make([]byte, 70000)), sad.ErrTooBig},
		{"transport fragment", run(tr.out, fragment, nil), sad.ErrBadHeader},
		{"transport v4 packet on a v6 SA", run(tr6.out, tr.inner(10, 0, false), nil), sad.ErrPolicy},
	}
	for _, c := range cases {
		if c.r != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.r, c.want)
		}
	}

	// No tail room for the trailer.
	inner := tun.inner(10, 0, false)
	if _, r := esp.Encap(&s, make([]byte, 200), inner[:len(inner):len(inner)], tun.out, 1); r != sad.ErrTooBig {
		t.Errorf("no tail room: %v, want too_big", r)
	}
	// out overlapping the inner packet anywhere but at the exact place.
	for _, shift := range []int{-1, 1, 8, 30} {
		const at = 10
		hr := esp.HeadRoom(tun.out)
		buf := make([]byte, 300)
		inner := tun.inner(10, 0, false)
		copy(buf[at+hr:], inner)
		if _, r := esp.Encap(&s, buf[at+shift:], buf[at+hr:at+hr+len(inner)], tun.out, 1); r != sad.ErrLength {
			t.Errorf("out shifted by %d: %v, want bad_length", shift, r)
		}
	}
}

// TestSeqExhaustion: sequence numbers never wrap (RFC 4303 §3.3.3).
func TestSeqExhaustion(t *testing.T) {
	for _, esn := range []bool{false, true} {
		p := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[0], esn: esn})
		last := uint64(1)<<32 - 1
		if esn {
			last = ^uint64(0)
		}
		p.out.SetSeq(last - 3)
		if first, got := p.out.ReserveSeq(5); first != last-2 || got != 3 {
			t.Errorf("esn=%v: ReserveSeq(5) near the end: %#x, %d; want %#x, 3", esn, first, got, last-2)
		}
		if p.out.SeqExhausted() {
			t.Errorf("esn=%v: exhausted before a refusal", esn)
		}
		if !p.out.NeedsRekey() {
			t.Errorf("esn=%v: no rekey wanted with the sequence space used up", esn)
		}
		if first, got := p.out.ReserveSeq(1); first != 0 || got != 0 {
			t.Errorf("esn=%v: ReserveSeq past the end: %#x, %d; want 0, 0", esn, first, got)
		}
		if !p.out.SeqExhausted() || !p.out.NeedsRekey() {
			t.Errorf("esn=%v: SeqExhausted %v NeedsRekey %v, want both", esn, p.out.SeqExhausted(), p.out.NeedsRekey())
		}
		p.out.SetSeq(last)
		if _, got := p.out.ReserveSeq(1); got != 0 {
			t.Errorf("esn=%v: SetSeq(max) then ReserveSeq gave %d", esn, got)
		}
	}
	// A counter restored beyond the space (SetSeq is how a saved SA comes
	// back) must not hand out numbers that wrap on the wire.
	p0 := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[0]})
	p0.out.SetSeq(1 << 32)
	if first, got := p0.out.ReserveSeq(1); got != 0 {
		t.Errorf("non-ESN SA restored at 2^32: ReserveSeq gave %#x (%d), which goes on the wire as %#x",
			first, got, uint32(first))
	}
	// A fresh SA far from its limit wants no rekey.
	p := newPair(t, pairOpts{suite: "aes128gcm16", ms: modeSpecs[0]})
	if _, got := p.out.ReserveSeq(10); got != 10 || p.out.NeedsRekey() || p.out.SeqExhausted() {
		t.Errorf("fresh SA: got %d, NeedsRekey %v, SeqExhausted %v", got, p.out.NeedsRekey(), p.out.SeqExhausted())
	}
}

// TestCBCIVs: AES-CBC IVs must be unpredictable (RFC 3602 §3): at least
// never repeated and not the sequence number in the clear.
func TestCBCIVs(t *testing.T) {
	p := newPair(t, pairOpts{suite: "aes128-sha256", ms: modeSpecs[0]})
	q := newPair(t, pairOpts{suite: "aes128-sha256", ms: modeSpecs[0]}) // same keys
	var s esp.Scratch
	seen := map[string]bool{}
	for seq := uint64(1); seq <= 200; seq++ {
		e, r := encap(t, &s, p.out, p.inner(1, 0, false), seq, false)
		if r != sad.OK {
			t.Fatal(r)
		}
		iv := string(e.pkt[28:44])
		if seen[iv] {
			t.Fatalf("IV repeated at seq %d", seq)
		}
		seen[iv] = true
		if binary.BigEndian.Uint64(e.pkt[36:44]) == seq || binary.BigEndian.Uint64(e.pkt[28:36]) == seq {
			t.Fatalf("IV carries the sequence number in the clear: % x", e.pkt[28:44])
		}
	}
	// Two SAs with the same key must not produce the same IV stream.
	e1, _ := encap(t, &s, p.out, p.inner(1, 0, false), 1000, false)
	e2, _ := encap(t, &s, q.out, q.inner(1, 0, false), 1000, false)
	if bytes.Equal(e1.pkt[28:44], e2.pkt[28:44]) {
		t.Errorf("two SAs gave the same IV for the same sequence number")
	}
}

// TestReasonsDistinct: every Reason names a different cause.
func TestReasonsDistinct(t *testing.T) {
	seen := map[string]sad.Reason{}
	for r := sad.OK; r < sad.NumReasons; r++ {
		name := r.String()
		if prev, dup := seen[name]; dup {
			t.Errorf("reasons %d and %d are both %q", prev, r, name)
		}
		seen[name] = r
	}
}

// raceEnabled reports whether the test binary was built with -race: the
// race detector makes sync.Pool drop items on purpose, so the HMAC suites
// allocate there and the allocation test would measure the detector.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// TestZeroAllocs: neither Encap nor Decap allocates, on any suite, in
// either mode, once warm.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled() {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items on purpose)")
	}
	for _, suite := range allSuites {
		for _, ms := range []modeSpec{modeSpecs[0], modeSpecs[7]} {
			for _, udp := range []bool{false, true} {
				p := newPair(t, pairOpts{suite: suite, ms: ms, udp: udp, esn: true})
				s := new(esp.Scratch)
				inner := p.inner(100, 0, false)
				hr := esp.HeadRoom(p.out)
				buf := make([]byte, hr+len(inner)+esp.MaxTailRoom)
				var o esp.Outer
				seq := uint64(0)
				var fail sad.Reason
				encOnly := func() {
					seq++
					copy(buf[hr:], inner)
					if _, r := esp.Encap(s, buf, buf[hr:hr+len(inner)], p.out, seq); r != sad.OK {
						fail = r
					}
				}
				both := func() {
					seq++
					copy(buf[hr:], inner)
					n, r := esp.Encap(s, buf, buf[hr:hr+len(inner)], p.out, seq)
					if r != sad.OK {
						fail = r
						return
					}
					if r := esp.ParseOuter(buf[:n], nattPort, &o); r != sad.OK {
						fail = r
						return
					}
					if _, _, r := esp.Decap(s, buf[:n], &o, p.in); r != sad.OK {
						fail = r
					}
				}
				for i := 0; i < 50; i++ { // warm the pools
					both()
				}
				e := testing.AllocsPerRun(200, encOnly)
				b := testing.AllocsPerRun(200, both)
				if fail != sad.OK {
					t.Fatalf("%s %s: %v", suite, ms.name, fail)
				}
				if e != 0 || b != 0 {
					t.Errorf("%s %s udp=%v: %.1f allocs per Encap, %.1f per Encap+Decap; want 0", suite, ms.name, udp, e, b)
				}
			}
		}
	}
}

// TestTFCPadding: in tunnel mode the inner packet's own length says where
// it ends, so TFC padding between it and the ESP padding (RFC 4303 §2.7)
// is dropped on receive.
func TestTFCPadding(t *testing.T) {
	for _, suite := range allSuites {
		for _, ms := range []modeSpec{modeSpecs[0], modeSpecs[1]} {
			p := newPair(t, pairOpts{suite: suite, ms: ms})
			inner := p.inner(30, 0, false)
			tfc := append(bytes.Clone(inner), make([]byte, 77)...)
			nh := uint8(ipProtoIPv4)
			if ms.inner6 {
				nh = ipProtoIPv6
			}
			var s esp.Scratch
			got, r := decap(&s, withCap(p.crafted(1, withTrailer(tfc, p.ref.align(), nh))), p.in)
			if r != sad.OK {
				t.Fatalf("%s %s: %v", suite, ms.name, r)
			}
			if want := forwarded(inner); !bytes.Equal(got, want) {
				t.Fatalf("%s %s: with TFC padding\n got % x\nwant % x", suite, ms.name, got, want)
			}
		}
	}
}

// TestTransportIPv4Options: a transport-mode IPv4 packet with options
// keeps them, ahead of the ESP header, and gets them back.
func TestTransportIPv4Options(t *testing.T) {
	for _, suite := range allSuites {
		for _, udp := range []bool{false, true} {
			p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[5], udp: udp})
			plain := p.inner(25, 0, true)
			// Insert 8 bytes of options (a record-route-free NOP run and EOL).
			opt := append(bytes.Clone(plain[:20]), 1, 1, 1, 1, 1, 1, 1, 0)
			opt = append(opt, plain[20:]...)
			opt[0] = 0x47
			binary.BigEndian.PutUint16(opt[2:], uint16(len(opt)))
			setIPv4Checksum(opt[:28])
			var s esp.Scratch
			for _, inPlace := range []bool{true, false} {
				seq, _ := p.out.ReserveSeq(1)
				e, r := encap(t, &s, p.out, opt, seq, inPlace)
				if r != sad.OK {
					t.Fatalf("%s: %v", suite, r)
				}
				if !bytes.Equal(e.pkt[20:28], opt[20:28]) || !ipv4HeaderOK(e.pkt) {
					t.Fatalf("%s: options not kept in front of ESP: % x", suite, e.pkt[:32])
				}
				p.checkEncap(t, e)
				p.checkDecap(t, &s, e)
			}
		}
	}
}

// TestDecapNoSpareCapacity: a received packet that ends exactly where its
// buffer ends (a full frame) must still be opened.
func TestDecapNoSpareCapacity(t *testing.T) {
	for _, suite := range allSuites {
		p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0]})
		var s esp.Scratch
		e, r := encap(t, &s, p.out, p.inner(50, 0, false), 1, false)
		if r != sad.OK {
			t.Fatal(r)
		}
		pkt := bytes.Clone(e.pkt)
		pkt = pkt[:len(pkt):len(pkt)]
		if _, r := decap(&s, pkt, p.in); r != sad.OK {
			t.Errorf("%s: authentic packet filling its buffer: %v", suite, r)
		}
	}
}

// TestConcurrent: several workers share each SA, each with its own
// Scratch, reserving sequence numbers in batches and decapsulating in an
// interleaved order; every packet must be accepted exactly once. Run with
// -race, it also checks that the pooled HMAC/CBC state is not shared.
func TestConcurrent(t *testing.T) {
	const workers, perWorker = 4, 200
	for _, suite := range allSuites {
		p := newPair(t, pairOpts{suite: suite, ms: modeSpecs[0], esn: true})
		pkts := make(chan []byte, workers*perWorker)
		var wg sync.WaitGroup
		errs := make(chan string, workers*perWorker)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				var s esp.Scratch
				for i := 0; i < perWorker; i += 8 {
					first, got := p.out.ReserveSeq(8)
					for k := 0; k < got; k++ {
						inner := p.inner(w*10+k, 0, false)
						buf := make([]byte, esp.HeadRoom(p.out)+len(inner)+esp.MaxTailRoom)
						hr := esp.HeadRoom(p.out)
						copy(buf[hr:], inner)
						n, r := esp.Encap(&s, buf, buf[hr:hr+len(inner)], p.out, first+uint64(k))
						if r != sad.OK {
							errs <- fmt.Sprintf("encap: %v", r)
							continue
						}
						pkts <- buf[:n]
					}
				}
			}(w)
		}
		wg.Wait()
		close(pkts)
		var all [][]byte
		for b := range pkts {
			all = append(all, b)
		}
		var ok atomic.Int64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				var s esp.Scratch
				// Each worker tries every packet, in its own order: exactly
				// one of them may win each.
				for i := range all {
					b := withCap(all[(i*7+w*31)%len(all)])
					if _, r := decap(&s, b, p.in); r == sad.OK {
						ok.Add(1)
					} else if r != sad.ErrReplay {
						errs <- fmt.Sprintf("decap: %v", r)
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Fatalf("%s: %s", suite, e)
		}
		if got := ok.Load(); got != int64(len(all)) || len(all) != workers*perWorker {
			t.Fatalf("%s: %d of %d packets accepted (%d sent)", suite, got, len(all), workers*perWorker)
		}
	}
}
