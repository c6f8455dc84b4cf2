package message

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// raw is one payload for building hostile messages: body verbatim, with an
// optional lie in the generic header's length.
type raw struct {
	t      PayloadType
	flags  byte
	body   []byte
	length int // generic header length field; 0 means the true length
}

// build assembles header + payloads without any of the encoder's checks.
func build(ps ...raw) []byte {
	b := make([]byte, HeaderLen)
	binary.BigEndian.PutUint64(b, 0x0102030405060708)
	b[17], b[18] = Version2, byte(ExchangeIKESAInit)
	if len(ps) > 0 {
		b[16] = byte(ps[0].t)
	}
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].t
		}
		n := p.length
		if n == 0 {
			n = 4 + len(p.body)
		}
		b = append(b, byte(next), p.flags, byte(n>>8), byte(n))
		b = append(b, p.body...)
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u16(v int) []byte { return []byte{byte(v >> 8), byte(v)} }

// proposal builds a proposal substructure from its parts.
func proposal(marker byte, spi []byte, count int, transforms ...[]byte) []byte {
	body := cat(transforms...)
	n := 8 + len(spi) + len(body)
	return cat([]byte{marker, 0}, u16(n), []byte{1, 1, byte(len(spi)), byte(count)}, spi, body)
}

func transform(marker byte, attrs ...[]byte) []byte {
	a := cat(attrs...)
	return cat([]byte{marker, 0}, u16(8+len(a)), []byte{1, 0, 0, 20}, a)
}

var keyLen = []byte{0x80, 0x0e, 0x00, 0x80}

func TestMalformed(t *testing.T) {
	valid := build(raw{t: PayloadVendor, body: []byte("abcd")})
	withLength := func(b []byte, n uint32) []byte {
		c := bytes.Clone(b)
		binary.BigEndian.PutUint32(c[24:], n)
		return c
	}
	manyVIDs := make([]raw, MaxPayloads+1)
	for i := range manyVIDs {
		manyVIDs[i] = raw{t: PayloadVendor}
	}
	var manyProposals [][]byte
	for i := 0; i <= MaxProposals; i++ {
		m := byte(moreProposals)
		if i == MaxProposals {
			m = lastSubstruct
		}
		manyProposals = append(manyProposals, proposal(m, nil, 0))
	}
	var manyAttrs [][]byte
	for i := 0; i <= MaxAttributes; i++ {
		manyAttrs = append(manyAttrs, keyLen)
	}
	ipv4Sel := []byte{7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255}

	tests := []struct {
		name string
		in   []byte
		want error // a sentinel for errors.Is, or a typed error for errors.As
	}{
		{"empty", nil, ErrTruncated},
		{"truncated header", valid[:HeaderLen-1], ErrTruncated},
		{"IKEv1 version", func() []byte { c := bytes.Clone(valid); c[17] = 0x10; return c }(), &InvalidMajorVersionError{}},
		{"IKEv3 version", func() []byte { c := bytes.Clone(valid); c[17] = 0x30; return c }(), &InvalidMajorVersionError{}},
		{"length field below header", withLength(valid, 27), ErrLength},
		{"length field beyond datagram", withLength(valid, uint32(len(valid)+1)), ErrLength},
		{"length field short of datagram", withLength(valid, uint32(len(valid)-1)), ErrLength},
		{"length field huge", withLength(valid, 0xffffffff), ErrLength},
		{"first payload missing", func() []byte { c := bytes.Clone(valid[:HeaderLen]); return withLength(c, HeaderLen) }(), ErrTruncated},
		{"payload header truncated", withLength(valid[:HeaderLen+3], HeaderLen+3), ErrTruncated},
		{"payload length below 4", build(raw{t: PayloadVendor, body: []byte("abcd"), length: 3}), ErrLength},
		{"payload length beyond message", build(raw{t: PayloadVendor, body: []byte("abcd"), length: 9}), ErrLength},
		{"trailing bytes after chain", build(raw{t: PayloadVendor, body: []byte("abcd"), length: 6}), ErrLength},
		{"too many payloads", build(manyVIDs...), ErrTooMany},
		{"critical unknown", build(raw{t: 49, flags: 0x80, body: []byte("x")}), &UnsupportedCriticalPayloadError{Type: 49}},
		{"critical unknown after known", build(raw{t: PayloadVendor}, raw{t: 250, flags: 0x80}), &UnsupportedCriticalPayloadError{Type: 250}},

		{"SA empty", build(raw{t: PayloadSA}), ErrValue},
		{"SA proposal header truncated", build(raw{t: PayloadSA, body: make([]byte, 7)}), ErrTruncated},
		{"proposal length below 8", build(raw{t: PayloadSA, body: []byte{0, 0, 0, 7, 1, 1, 0, 0}}), ErrLength},
		{"proposal length beyond SA", build(raw{t: PayloadSA, body: []byte{0, 0, 0, 9, 1, 1, 0, 0}}), ErrLength},
		{"proposal marked last, more follow", build(raw{t: PayloadSA, body: cat(proposal(0, nil, 0), proposal(0, nil, 0))}), ErrValue},
		{"proposal announces more, none follow", build(raw{t: PayloadSA, body: proposal(2, nil, 0)}), ErrValue},
		{"proposal marker invalid", build(raw{t: PayloadSA, body: proposal(3, nil, 0)}), ErrValue},
		{"too many proposals", build(raw{t: PayloadSA, body: cat(manyProposals...)}), ErrTooMany},
		{"proposal SPI beyond proposal", build(raw{t: PayloadSA, body: []byte{0, 0, 0, 8, 1, 1, 4, 0}}), ErrTruncated},
		{"transform count beyond proposal", build(raw{t: PayloadSA, body: proposal(0, nil, 2, transform(0))}), ErrTruncated},
		{"transform count over limit", build(raw{t: PayloadSA, body: proposal(0, nil, MaxTransforms+1, transform(0))}), ErrTooMany},
		{"transform count 255, no data", build(raw{t: PayloadSA, body: proposal(0, nil, 255)}), ErrTooMany},
		{"transform length below 8", build(raw{t: PayloadSA, body: proposal(0, nil, 1, []byte{0, 0, 0, 7, 1, 0, 0, 20})}), ErrLength},
		{"transform length beyond proposal", build(raw{t: PayloadSA, body: proposal(0, nil, 1, []byte{0, 0, 0, 12, 1, 0, 0, 20})}), ErrLength},
		{"transform marker says more", build(raw{t: PayloadSA, body: proposal(0, nil, 1, transform(3))}), ErrValue},
		{"transform marker says last early", build(raw{t: PayloadSA, body: proposal(0, nil, 2, transform(0), transform(0))}), ErrValue},
		{"bytes after transforms", build(raw{t: PayloadSA, body: proposal(0, nil, 1, transform(0), []byte{0, 0, 0, 0})}), ErrLength},
		{"attribute header truncated", build(raw{t: PayloadSA, body: proposal(0, nil, 1, transform(0, []byte{0x80, 0x0e, 0}))}), ErrTruncated},
		{"TLV attribute overflows transform", build(raw{t: PayloadSA, body: proposal(0, nil, 1, transform(0, []byte{0x00, 0x0e, 0x00, 0x05, 1, 2, 3, 4}))}), ErrLength},
		{"TLV attribute length 0xffff", build(raw{t: PayloadSA, body: proposal(0, nil, 1, transform(0, []byte{0x00, 0x01, 0xff, 0xff}))}), ErrLength},
		{"too many attributes", build(raw{t: PayloadSA, body: proposal(0, nil, 1, transform(0, manyAttrs...))}), ErrTooMany},

		{"KE truncated", build(raw{t: PayloadKE, body: []byte{0, 14, 0}}), ErrTruncated},
		{"IDi truncated", build(raw{t: PayloadIDi, body: []byte{2, 0, 0}}), ErrTruncated},
		{"IDr truncated", build(raw{t: PayloadIDr}), ErrTruncated},
		{"CERT empty", build(raw{t: PayloadCERT}), ErrTruncated},
		{"CERTREQ empty", build(raw{t: PayloadCERTREQ}), ErrTruncated},
		{"AUTH truncated", build(raw{t: PayloadAUTH, body: []byte{2, 0, 0}}), ErrTruncated},
		{"nonce too short", build(raw{t: PayloadNonce, body: make([]byte, 15)}), ErrValue},
		{"nonce too long", build(raw{t: PayloadNonce, body: make([]byte, 257)}), ErrValue},
		{"notify truncated", build(raw{t: PayloadNotify, body: []byte{0, 0, 0x40}}), ErrTruncated},
		{"notify SPI beyond payload", build(raw{t: PayloadNotify, body: []byte{3, 4, 0x40, 0x09, 1, 2, 3}}), ErrTruncated},
		{"delete truncated", build(raw{t: PayloadDelete, body: []byte{1, 0, 0}}), ErrTruncated},
		{"delete IKE with SPI size", build(raw{t: PayloadDelete, body: []byte{1, 4, 0, 0}}), ErrValue},
		{"delete IKE with SPI count", build(raw{t: PayloadDelete, body: []byte{1, 0, 0, 1}}), ErrValue},
		{"delete ESP SPI size 8", build(raw{t: PayloadDelete, body: cat([]byte{3, 8, 0, 1}, make([]byte, 8))}), ErrValue},
		{"delete count beyond payload", build(raw{t: PayloadDelete, body: cat([]byte{3, 4, 0, 2}, make([]byte, 4))}), ErrLength},
		{"delete count 65535, no SPIs", build(raw{t: PayloadDelete, body: []byte{3, 4, 0xff, 0xff}}), ErrLength},
		{"delete bytes after SPIs", build(raw{t: PayloadDelete, body: cat([]byte{3, 4, 0, 1}, make([]byte, 5))}), ErrLength},
		{"TS truncated", build(raw{t: PayloadTSi, body: []byte{1, 0, 0}}), ErrTruncated},
		{"TS count beyond payload", build(raw{t: PayloadTSi, body: cat([]byte{2, 0, 0, 0}, ipv4Sel)}), ErrTruncated},
		{"TS count over limit", build(raw{t: PayloadTSr, body: []byte{MaxTrafficSelectors + 1, 0, 0, 0}}), ErrTooMany},
		{"TS selector length below 4", build(raw{t: PayloadTSi, body: []byte{1, 0, 0, 0, 7, 0, 0, 3}}), ErrLength},
		{"TS selector length beyond payload", build(raw{t: PayloadTSi, body: []byte{1, 0, 0, 0, 9, 0, 0, 9, 1, 2, 3, 4}}), ErrLength},
		{"TS IPv4 range of wrong length", build(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, []byte{7, 0, 0, 20}, make([]byte, 16))}), ErrLength},
		{"TS IPv6 range of IPv4 length", build(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, []byte{8}, ipv4Sel[1:])}), ErrLength},
		{"TS bytes after selectors", build(raw{t: PayloadTSi, body: cat([]byte{1, 0, 0, 0}, ipv4Sel, []byte{0})}), ErrLength},
		{"CP truncated", build(raw{t: PayloadCP, body: []byte{1, 0, 0}}), ErrTruncated},
		{"CP attribute header truncated", build(raw{t: PayloadCP, body: []byte{1, 0, 0, 0, 0, 1, 0}}), ErrTruncated},
		{"CP attribute overflows payload", build(raw{t: PayloadCP, body: []byte{1, 0, 0, 0, 0, 1, 0, 4, 10, 0}}), ErrLength},
		{"SK not last", build(raw{t: PayloadSK, body: make([]byte, 30)}, raw{t: PayloadVendor}), ErrValue},
		{"SKF truncated", build(raw{t: PayloadSKF, body: []byte{0, 1, 0}}), ErrTruncated},
		{"SKF number 0", build(raw{t: PayloadSKF, body: []byte{0, 0, 0, 1}}), ErrValue},
		{"SKF total 0", build(raw{t: PayloadSKF, body: []byte{0, 1, 0, 0}}), ErrValue},
		{"SKF number over total", build(raw{t: PayloadSKF, body: []byte{0, 3, 0, 2}}), ErrValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.in)
			if err == nil {
				t.Fatalf("Decode succeeded: %#v", m)
			}
			if m != nil {
				t.Errorf("Decode returned a message with error %v", err)
			}
			switch want := tt.want.(type) {
			case *UnsupportedCriticalPayloadError:
				var got *UnsupportedCriticalPayloadError
				if !errors.As(err, &got) || got.Type != want.Type {
					t.Fatalf("error %v, want %v", err, want)
				}
			case *InvalidMajorVersionError:
				var got *InvalidMajorVersionError
				if !errors.As(err, &got) || got.Version != tt.in[17] {
					t.Fatalf("error %v, want InvalidMajorVersionError", err)
				}
				h, herr := DecodeHeader(tt.in)
				if !errors.As(herr, &got) || h.SPIi != 0x0102030405060708 || h.Exchange != ExchangeIKESAInit {
					t.Fatalf("DecodeHeader must return the header with the version error: %+v, %v", h, herr)
				}
			default:
				if !errors.Is(err, tt.want) {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
				if !errors.Is(err, ErrInvalidSyntax) {
					t.Fatalf("error %v does not wrap ErrInvalidSyntax", err)
				}
			}
		})
	}
}

func TestDecodePayloadsRejectsNestedEncryption(t *testing.T) {
	for _, pt := range []PayloadType{PayloadSK, PayloadSKF} {
		b := []byte{0, 0, 0, 8, 0, 1, 0, 1}
		if _, err := DecodePayloads(pt, b); !errors.Is(err, ErrValue) {
			t.Errorf("%v inside SK: %v", pt, err)
		}
	}
	if ps, err := DecodePayloads(PayloadNone, nil); err != nil || len(ps) != 0 {
		t.Errorf("empty chain: %v, %v", ps, err)
	}
	if _, err := DecodePayloads(PayloadNone, []byte{0}); !errors.Is(err, ErrLength) {
		t.Errorf("bytes with no payload: %v", err)
	}
}

// TestTruncationsAndCorruptions walks every truncation and every single
// octet corruption of the strongSwan captures and the hand-built layouts:
// decoding must never panic; a truncation (with the header length patched
// to match) must fail; whatever decodes must re-encode and decode to the
// same message.
func TestTruncationsAndCorruptions(t *testing.T) {
	var inputs [][]byte
	for _, sc := range scenarios {
		for _, c := range loadCaptures(t, sc) {
			inputs = append(inputs, c.raw)
		}
	}
	for _, l := range []string{saInitLayout, skLayout, skfLayout} {
		inputs = append(inputs, unhex(t, l))
	}
	for _, in := range inputs {
		for n := HeaderLen; n < len(in); n++ {
			c := bytes.Clone(in[:n])
			binary.BigEndian.PutUint32(c[24:], uint32(n))
			if _, err := Decode(c); err == nil {
				t.Fatalf("truncation to %d of %x decoded", n, in)
			}
		}
		for i := range in {
			for _, v := range []byte{0x00, 0xff, in[i] ^ 0x01, in[i] ^ 0x80} {
				c := bytes.Clone(in)
				c[i] = v
				checkStable(t, c)
			}
		}
	}
}

// checkStable is the property FuzzDecode enforces: decode, and if that
// succeeds, encode → decode gives the same message and the same bytes.
func checkStable(t testing.TB, b []byte) {
	t.Helper()
	m, err := Decode(b)
	// The raw walk must agree with Decode on well-formedness of the chain.
	if _, lerr := LocateEncrypted(b, 8, 16); lerr == nil && err == nil && !lastIsEncrypted(m.Payloads) {
		t.Fatalf("LocateEncrypted found SK in %x that Decode did not", b)
	}
	if err != nil {
		if m != nil {
			t.Fatalf("message and error %v", err)
		}
		return
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatalf("decoded message does not encode: %v\ninput %x", err, b)
	}
	m2, err := Decode(out)
	if err != nil {
		t.Fatalf("re-encoded message does not decode: %v\ninput %x\nencoded %x", err, b, out)
	}
	m.Length = m2.Length
	if !reflect.DeepEqual(m, m2) {
		t.Fatalf("decode→encode→decode changed the message\ninput %x\nencoded %x", b, out)
	}
	out2, err := m2.Encode()
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("encoding not stable: %v\n%x\n%x", err, out, out2)
	}
	if lastIsEncrypted(m.Payloads) {
		if _, err := m.AppendAssociatedData(nil); err != nil {
			t.Fatalf("AppendAssociatedData: %v", err)
		}
	}
}

func lastIsEncrypted(ps Payloads) bool {
	return len(ps) > 0 && isEncrypted(ps[len(ps)-1])
}
