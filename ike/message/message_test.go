package message

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// unhex decodes hex written with spaces, newlines and "|" separators so the
// expected layouts below can follow the RFC figures field by field (testlab.Unhex).
var unhex = testlab.Unhex

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func fill(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

// The layouts below were written by hand from the figures of RFC 7296 §3.1
// to §3.16 and RFC 7383 §2.5, and cross-checked by dissecting them with
// Wireshark 4.0's ISAKMP dissector (text2pcap + tshark -V).

// saInitLayout: IKE header (Figure 4) | SA (Figures 6, 7, 8, 9) | KE
// (Figure 10) | Ni (Figure 15) | N (Figure 16) | V (Figure 18).
const saInitLayout = `
0102030405060708 0000000000000000 | 21 | 20 | 22 | 08 | 00000000 | 00000088
22 00 0028
  00 00 0024 | 01 | 01 | 00 | 03
    03 00 000c | 01 | 00 | 0014 | 800e 0100
    03 00 0008 | 02 | 00 | 0005
    00 00 0008 | 04 | 00 | 0013
28 00 000c | 0013 | 0000 | deadbeef
29 00 0014 | 000102030405060708090a0b0c0d0e0f
2b 00 001c | 00 | 00 | 4004 | 1111111111111111111111111111111111111111
00 00 0008 | 78647073
`

func saInitMessage() *Message {
	return &Message{
		Header: Header{SPIi: 0x0102030405060708, Version: Version2, Exchange: ExchangeIKESAInit,
			Flags: FlagInitiator},
		Payloads: Payloads{
			&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtocolIKE, Transforms: []Transform{
				{Type: iana.TransformEncr, ID: TransformID(iana.EncrAESGCM16), Attributes: []Attribute{KeyLengthAttribute(256)}},
				{Type: iana.TransformPRF, ID: TransformID(iana.PRFHMACSHA2_256)},
				{Type: iana.TransformDH, ID: TransformID(iana.GroupECP256)},
			}}}},
			&KeyExchange{Group: iana.GroupECP256, Data: []byte{0xde, 0xad, 0xbe, 0xef}},
			&Nonce{Data: seq(16, 0)},
			&Notify{NotifyType: NotifyNATDetectionSourceIP, Data: fill(20, 0x11)},
			&VendorID{Data: []byte("xdps")},
		},
	}
}

// innerLayout: the plaintext of an SK payload carrying every other payload
// type: IDi (Figure 11) | CERT (12) | CERTREQ (13) | AUTH (14) | SA with an
// ESP proposal and SPI | TSi, TSr (Figures 19, 20) | N with an SPI | D
// (Figure 17) | CP (Figures 21, 22) | EAP (Figure 24).
const innerLayout = `
25 00 000c | 02 | 000000 | 612e6263
26 00 0008 | 04 | 308201
27 00 0019 | 04 | 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
21 00 0010 | 02 | 000000 | 7777777777777777
2c 00 0024
  00 00 0020 | 01 | 03 | 04 | 02 | c0ffee01
    03 00 000c | 01 | 00 | 0014 | 800e 0080
    00 00 0008 | 05 | 00 | 0000
2d 00 0018 | 01 | 000000
  07 | 06 | 0010 | 0000 | ffff | c0000200 | c00002ff
29 00 0030 | 01 | 000000
  08 | 11 | 0028 | 01f4 | 01f4 | 20010db8000000000000000000000000 | 20010db800000000000000000000ffff
2a 00 000c | 03 | 04 | 4009 | deadbeef
2f 00 0010 | 03 | 04 | 0002 | 00000001 | ffffffff
30 00 0018 | 02 | 000000
  0001 0004 c000020a
  0003 0004 c0000235
00 00 0009 | 0107000501
`

func innerPayloads() Payloads {
	return Payloads{
		&ID{IDType: iana.IDFQDN, Data: []byte("a.bc")},
		&Cert{Encoding: CertX509Signature, Data: []byte{0x30, 0x82, 0x01}},
		&CertReq{Encoding: CertX509Signature, Data: fill(20, 0x5a)},
		&Auth{Method: iana.AuthSharedKeyMIC, Data: fill(8, 0x77)},
		&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtocolESP, SPI: []byte{0xc0, 0xff, 0xee, 0x01},
			Transforms: []Transform{
				{Type: iana.TransformEncr, ID: TransformID(iana.EncrAESGCM16), Attributes: []Attribute{KeyLengthAttribute(128)}},
				{Type: iana.TransformESN, ID: TransformID(iana.ESNNo)},
			}}}},
		&TrafficSelectors{Selectors: []TrafficSelector{{
			Type: TSIPv4AddrRange, IPProtocol: 6, StartPort: 0, EndPort: 65535,
			StartAddr: netip.MustParseAddr("192.0.2.0"), EndAddr: netip.MustParseAddr("192.0.2.255"),
		}}},
		&TrafficSelectors{Responder: true, Selectors: []TrafficSelector{{
			Type: TSIPv6AddrRange, IPProtocol: 17, StartPort: 500, EndPort: 500,
			StartAddr: netip.MustParseAddr("2001:db8::"), EndAddr: netip.MustParseAddr("2001:db8::ffff"),
		}}},
		&Notify{Protocol: ProtocolESP, SPI: []byte{0xde, 0xad, 0xbe, 0xef}, NotifyType: NotifyRekeySA},
		&Delete{Protocol: ProtocolESP, SPIs: []uint32{1, 0xffffffff}},
		&Config{CFGType: CFGReply, Attributes: []ConfigAttribute{
			{Type: ConfigInternalIP4Address, Value: []byte{192, 0, 2, 10}},
			{Type: ConfigInternalIP4DNS, Value: []byte{192, 0, 2, 53}},
		}},
		&EAP{Data: []byte{0x01, 0x07, 0x00, 0x05, 0x01}},
	}
}

// skLayout: IKE header | SK (Figure 21 of §3.14): IV 8 | ciphertext 4 | ICV 16.
const skLayout = `
8877665544332211 1122334455667788 | 2e | 20 | 23 | 08 | 00000001 | 0000003c
23 00 0020 | 0101010101010101 | 02020202 | 03030303030303030303030303030303
`

// skfLayout: IKE header | SKF (RFC 7383 Figure 2): fragment 1 of 2.
const skfLayout = `
8877665544332211 1122334455667788 | 35 | 20 | 23 | 08 | 00000001 | 0000003d
23 00 0021 | 0001 | 0002 | 0101010101010101 | 02 | 03030303030303030303030303030303
`

func skMessage() *Message {
	return &Message{
		Header: Header{SPIi: 0x8877665544332211, SPIr: 0x1122334455667788, Version: Version2,
			Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1},
		Payloads: Payloads{&Encrypted{NextPayload: PayloadIDi,
			Body: append(append(fill(8, 1), fill(4, 2)...), fill(16, 3)...)}},
	}
}

func skfMessage() *Message {
	return &Message{
		Header: Header{SPIi: 0x8877665544332211, SPIr: 0x1122334455667788, Version: Version2,
			Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1},
		Payloads: Payloads{&EncryptedFragment{NextPayload: PayloadIDi, Number: 1, Total: 2,
			Body: append(append(fill(8, 1), 2), fill(16, 3)...)}},
	}
}

// withDecodedHeader fills in what decoding reports and encoding computes.
func withDecodedHeader(m *Message, length int) *Message {
	c := *m
	c.Length = uint32(length)
	c.NextPayload = firstType(m.Payloads)
	return &c
}

func TestLayouts(t *testing.T) {
	tests := []struct {
		name   string
		layout string
		msg    *Message
	}{
		{"IKE_SA_INIT", saInitLayout, saInitMessage()},
		{"SK", skLayout, skMessage()},
		{"SKF", skfLayout, skfMessage()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.layout)
			got, err := tt.msg.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode\n got %x\nwant %x", got, want)
			}
			m, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if w := withDecodedHeader(tt.msg, len(want)); !reflect.DeepEqual(m, w) {
				t.Fatalf("Decode\n got %#v\nwant %#v", m, w)
			}
		})
	}
	t.Run("inner chain", func(t *testing.T) {
		want := unhex(t, innerLayout)
		got, first, err := AppendPayloads([]byte("prefix"), innerPayloads())
		if err != nil {
			t.Fatal(err)
		}
		if first != PayloadIDi || !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Fatalf("AppendPayloads first %v\n got %x\nwant %x", first, got[6:], want)
		}
		ps, err := DecodePayloads(PayloadIDi, want)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ps, innerPayloads()) {
			t.Fatalf("DecodePayloads\n got %#v\nwant %#v", ps, innerPayloads())
		}
	})
}

// TestRoundTripEveryPayload encodes a message per payload type (and per
// variant worth keeping apart), decodes it and encodes it again.
func TestRoundTripEveryPayload(t *testing.T) {
	v4 := netip.MustParseAddr
	payloads := map[string]Payload{
		"SA multi-proposal": &SA{Proposals: []Proposal{
			{Number: 1, Protocol: ProtocolIKE, SPI: seq(8, 1), Transforms: []Transform{
				{Type: iana.TransformEncr, ID: TransformID(iana.EncrAESCBC), Attributes: []Attribute{KeyLengthAttribute(256)}},
				{Type: iana.TransformEncr, ID: TransformID(iana.EncrAESCBC), Attributes: []Attribute{KeyLengthAttribute(128)}},
				{Type: iana.TransformInteg, ID: TransformID(iana.IntegHMACSHA2_512_256)},
				{Type: iana.TransformPRF, ID: TransformID(iana.PRFHMACSHA2_512)},
				{Type: iana.TransformDH, ID: TransformID(iana.GroupMODP4096)},
				{Type: iana.TransformAddKE1, ID: TransformID(iana.GroupMLKEM768)},
			}},
			{Number: 2, Protocol: ProtocolIKE, SPI: seq(8, 1), Transforms: []Transform{
				{Type: iana.TransformEncr, ID: TransformID(iana.EncrChaCha20Poly1305)},
				{Type: iana.TransformPRF, ID: TransformID(iana.PRFHMACSHA2_384)},
				{Type: iana.TransformDH, ID: TransformID(iana.GroupCurve25519)},
			}},
		}},
		"SA TLV attribute": &SA{Proposals: []Proposal{{Number: 1, Protocol: ProtocolAH, SPI: seq(4, 9),
			Transforms: []Transform{{Type: iana.TransformInteg, ID: TransformID(iana.IntegHMACSHA2_384_192),
				Attributes: []Attribute{{Type: 0x4242, Data: []byte("tlv")}, {Type: 0x0001}}}}}}},
		"SA empty proposal": &SA{Proposals: []Proposal{{Number: 7, Protocol: ProtocolESP, SPI: seq(4, 1)}}},
		"KE":                &KeyExchange{Group: iana.GroupMLKEM768, Data: seq(255, 0)},
		"KE empty":          &KeyExchange{Group: iana.GroupNone},
		"IDi":               &ID{IDType: iana.IDIPv4Addr, Data: []byte{198, 18, 0, 1}},
		"IDr":               &ID{Responder: true, IDType: iana.IDNull},
		"CERT":              &Cert{Encoding: CertX509Signature, Data: seq(100, 0)},
		"CERTREQ":           &CertReq{Encoding: CertX509Signature},
		"AUTH":              &Auth{Method: iana.AuthDigitalSignature, Data: seq(64, 0)},
		"Nonce max":         &Nonce{Data: seq(256, 0)},
		"N cookie":          &Notify{NotifyType: NotifyCookie, Data: seq(32, 0)},
		"N IKE SPI":         &Notify{Protocol: ProtocolIKE, SPI: seq(8, 0), NotifyType: NotifyInvalidIKESPI},
		"N transport":       &Notify{Protocol: ProtocolESP, NotifyType: NotifyUseTransportMode},
		"D IKE":             &Delete{Protocol: ProtocolIKE},
		"D AH":              &Delete{Protocol: ProtocolAH, SPIs: []uint32{0x01020304}},
		"D ESP none":        &Delete{Protocol: ProtocolESP},
		"V":                 &VendorID{Data: seq(16, 0)},
		"V empty":           &VendorID{},
		"TSi multi": &TrafficSelectors{Selectors: []TrafficSelector{
			{Type: TSIPv4AddrRange, StartAddr: v4("0.0.0.0"), EndAddr: v4("255.255.255.255"), EndPort: 65535},
			{Type: TSIPv6AddrRange, IPProtocol: 58, StartPort: 0x8000, EndPort: 0x80ff,
				StartAddr: v4("::ffff:192.0.2.1"), EndAddr: v4("::ffff:192.0.2.1")},
			{Type: TSSecLabel, IPProtocol: 0, Data: []byte("system_u:object_r:ipsec_spd_t:s0")},
		}},
		"TSr empty": &TrafficSelectors{Responder: true},
		"CP request": &Config{CFGType: CFGRequest, Attributes: []ConfigAttribute{
			{Type: ConfigInternalIP4Address}, {Type: ConfigInternalIP6Address}, {Type: ConfigSupportedAttributes}}},
		"CP empty":        &Config{CFGType: CFGAck},
		"EAP":             &EAP{Data: []byte{2, 7, 0, 9, 1, 'u', 's', 'e', 'r'}},
		"Unknown":         &Unknown{PayloadType: PayloadGSPM, Data: seq(5, 0)},
		"Unknown IKEv1#":  &Unknown{PayloadType: 13, Data: nil},
		"Unknown private": &Unknown{PayloadType: 200, Data: seq(3, 0)},
	}
	for name, p := range payloads {
		t.Run(name, func(t *testing.T) {
			for _, ps := range []Payloads{{p}, {p, &VendorID{Data: []byte("after")}}} {
				m := &Message{Header: Header{SPIi: 1, SPIr: 2, Version: 0x2f, Exchange: ExchangeCreateChildSA,
					Flags: FlagResponse | 0x01, MessageID: 0xfffffffe}, Payloads: ps}
				b, err := m.Encode()
				if err != nil {
					t.Fatal(err)
				}
				got, err := Decode(b)
				if err != nil {
					t.Fatalf("Decode(%x): %v", b, err)
				}
				if w := withDecodedHeader(m, len(b)); !reflect.DeepEqual(got, w) {
					t.Fatalf("round trip\n got %#v\nwant %#v", got.Payloads[0], w.Payloads[0])
				}
				again, err := got.Encode()
				if err != nil || !bytes.Equal(again, b) {
					t.Fatalf("re-encode %x, %v\nwant %x", again, err, b)
				}
			}
		})
	}
}

func TestEmptyMessage(t *testing.T) {
	// An IKE header alone: next payload NONE, length 28.
	m := &Message{Header: Header{SPIi: 5, Exchange: ExchangeInformational}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "0000000000000005 0000000000000000 00 20 25 00 00000000 0000001c")
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x want %x", b, want)
	}
	got, err := Decode(b)
	if err != nil || len(got.Payloads) != 0 || got.Version != Version2 {
		t.Fatalf("Decode: %+v, %v", got, err)
	}
}

func TestDecodeDoesNotAliasInput(t *testing.T) {
	b := unhex(t, saInitLayout)
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0xee
	}
	if ke := m.Get(PayloadKE).(*KeyExchange); !bytes.Equal(ke.Data, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Fatalf("KE data changed with the input: %x", ke.Data)
	}
	// Appending to a decoded field must not spill into the next one.
	n := m.Get(PayloadNonce).(*Nonce)
	_ = append(n.Data, 0xff)
	if nt := m.Notify(NotifyNATDetectionSourceIP); nt.Data[0] != 0x11 {
		t.Fatal("append to one field overwrote another")
	}
}

func TestCriticalBit(t *testing.T) {
	// A known payload with the critical bit set decodes normally (§2.5: the
	// bit is ignored for understood types) and encodes without it.
	b := unhex(t, "0000000000000001 0000000000000000 2b 20 25 00 00000000 00000024 00 80 0008 61626364")
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := m.Payloads[0].(*VendorID); !ok || string(v.Data) != "abcd" {
		t.Fatalf("got %#v", m.Payloads[0])
	}
	// An unknown one without the bit is kept; with it, refused.
	for _, tc := range []struct {
		flags byte
		want  error
	}{{0x00, nil}, {0x7f, nil}, {0x80, &UnsupportedCriticalPayloadError{Type: 49}}, {0xff, &UnsupportedCriticalPayloadError{Type: 49}}} {
		b := unhex(t, "0000000000000001 0000000000000000 31 20 25 00 00000000 00000024 00 00 0008 61626364")
		b[29] = tc.flags
		m, err := Decode(b)
		if tc.want == nil {
			if err != nil {
				t.Fatalf("flags %#x: %v", tc.flags, err)
			}
			u := m.Payloads[0].(*Unknown)
			if u.PayloadType != PayloadGSPM || u.Critical || string(u.Data) != "abcd" {
				t.Fatalf("flags %#x: %#v", tc.flags, u)
			}
			continue
		}
		var uc *UnsupportedCriticalPayloadError
		if !errors.As(err, &uc) || *uc != *tc.want.(*UnsupportedCriticalPayloadError) {
			t.Fatalf("flags %#x: err %v, want %v", tc.flags, err, tc.want)
		}
		if errors.Is(err, ErrInvalidSyntax) {
			t.Errorf("unsupported critical payload must not read as INVALID_SYNTAX")
		}
	}
	// Encoding an Unknown with Critical sets the bit, and our own decoder
	// then refuses it.
	m = &Message{Payloads: Payloads{&Unknown{PayloadType: 250, Critical: true}}}
	b, err = m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if b[HeaderLen+1] != 0x80 {
		t.Fatalf("critical bit not set: %x", b)
	}
	if _, err := Decode(b); !errors.As(err, new(*UnsupportedCriticalPayloadError)) {
		t.Fatalf("Decode: %v", err)
	}
}

func TestAssociatedData(t *testing.T) {
	tests := []struct {
		name   string
		msg    *Message
		layout string
		aadLen int
	}{
		// Header (28) + SK generic header (4).
		{"SK", skMessage(), skLayout, HeaderLen + 4},
		// Header (28) + SKF generic header (4) + number and total (4).
		{"SKF", skfMessage(), skfLayout, HeaderLen + 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full := unhex(t, tt.layout)
			aad, err := tt.msg.AppendAssociatedData([]byte{0xaa})
			if err != nil {
				t.Fatal(err)
			}
			if aad[0] != 0xaa || !bytes.Equal(aad[1:], full[:tt.aadLen]) {
				t.Fatalf("AppendAssociatedData\n got %x\nwant %x", aad[1:], full[:tt.aadLen])
			}
			l, err := LocateEncrypted(full, 8, 16)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(l.AssociatedData, full[:tt.aadLen]) ||
				!bytes.Equal(l.IV, fill(8, 1)) ||
				!bytes.Equal(l.ICV, fill(16, 3)) ||
				!bytes.Equal(l.Authenticated, full[:len(full)-16]) ||
				l.NextPayload != PayloadIDi || l.Fragment != (tt.name == "SKF") {
				t.Fatalf("LocateEncrypted: %+v", l)
			}
			if l.Fragment && (l.Number != 1 || l.Total != 2) {
				t.Fatalf("fragment %d/%d", l.Number, l.Total)
			}
			// In place: the regions are views of the message, capped so
			// appending to one cannot run into the next.
			l.Ciphertext[0] ^= 0xff
			if full[tt.aadLen+8] != 0x02^0xff {
				t.Fatal("Ciphertext is not a view of the message")
			}
			if cap(l.AssociatedData) != len(l.AssociatedData) || cap(l.IV) != len(l.IV) ||
				cap(l.Ciphertext) != len(l.Ciphertext) {
				t.Fatal("regions not capped")
			}
		})
	}
	t.Run("preceding payloads", func(t *testing.T) {
		// Payloads before SK belong to the associated data too (RFC 5282).
		m := skMessage()
		m.Payloads = append(Payloads{&Notify{NotifyType: NotifyCookie, Data: seq(8, 0)}}, m.Payloads...)
		full, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		aad, err := m.AppendAssociatedData(nil)
		if err != nil {
			t.Fatal(err)
		}
		l, err := LocateEncrypted(full, 8, 16)
		if err != nil {
			t.Fatal(err)
		}
		if want := full[:HeaderLen+16+4]; !bytes.Equal(aad, want) || !bytes.Equal(l.AssociatedData, want) {
			t.Fatalf("aad %x\nlocated %x\nwant %x", aad, l.AssociatedData, want)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, err := saInitMessage().AppendAssociatedData(nil); !errors.Is(err, ErrEncode) {
			t.Errorf("no SK: %v", err)
		}
		bad := &Message{Payloads: Payloads{&EncryptedFragment{Number: 2, Total: 1}}}
		if _, err := bad.AppendAssociatedData(nil); !errors.Is(err, ErrEncode) {
			t.Errorf("SKF 2 of 1: %v", err)
		}
		if _, err := LocateEncrypted(unhex(t, saInitLayout), 8, 16); err == nil {
			t.Error("LocateEncrypted without SK succeeded")
		}
		if _, err := LocateEncrypted(unhex(t, skLayout), 8, 24); !errors.Is(err, ErrTruncated) {
			t.Errorf("body shorter than IV+ICV+1: %v", err)
		}
		if _, err := LocateEncrypted(unhex(t, skLayout)[:40], 8, 16); !errors.Is(err, ErrLength) {
			t.Errorf("truncated message: %v", err)
		}
		if _, _, _, err := skMessage().Payloads[0].(*Encrypted).Split(-1, 16); err == nil {
			t.Error("negative IV length accepted")
		}
	})
}

func TestSplit(t *testing.T) {
	e := &Encrypted{Body: seq(29, 0)}
	iv, ct, icv, err := e.Split(8, 16)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(iv, seq(8, 0)) || !bytes.Equal(ct, seq(5, 8)) || !bytes.Equal(icv, seq(16, 13)) {
		t.Fatalf("iv %x ct %x icv %x", iv, ct, icv)
	}
	// The ciphertext always holds the Pad Length octet.
	if _, _, _, err := (&Encrypted{Body: seq(24, 0)}).Split(8, 16); !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty ciphertext: %v", err)
	}
	f := &EncryptedFragment{Number: 1, Total: 1, Body: seq(17, 0)}
	if iv, ct, icv, err := f.Split(0, 16); err != nil || len(iv) != 0 || len(ct) != 1 || len(icv) != 16 {
		t.Fatalf("SKF split: %x %x %x %v", iv, ct, icv, err)
	}
}

func TestHelpers(t *testing.T) {
	m := saInitMessage()
	if m.Get(PayloadKE) == nil || m.Get(PayloadAUTH) != nil {
		t.Error("Get")
	}
	if m.Notify(NotifyNATDetectionSourceIP) == nil || m.Notify(NotifyCookie) != nil {
		t.Error("Notify")
	}
	n := 0
	for range m.Payloads.All(PayloadNotify) {
		n++
	}
	if n != 1 {
		t.Errorf("All yielded %d", n)
	}
	for range m.Payloads.All(PayloadSA) {
		break // stopping early must be safe
	}
	tr := m.Get(PayloadSA).(*SA).Proposals[0].Transforms[0]
	if bits, ok := tr.KeyLength(); !ok || bits != 256 {
		t.Errorf("KeyLength %d %v", bits, ok)
	}
	if _, ok := (&Transform{Type: iana.TransformPRF, ID: TransformID(iana.PRFHMACSHA2_256)}).KeyLength(); ok {
		t.Error("KeyLength on PRF")
	}
	p := m.Get(PayloadSA).(*SA).Proposals[0]
	if s := p.String(); s != "IKE:ENCR_AES_GCM_16_256/PRF_HMAC_SHA2_256/ECP_256" {
		t.Errorf("Proposal.String %q", s)
	}
	if !m.IsInitiator() || m.IsResponse() {
		t.Error("flags")
	}
	if _, err := (&Notify{NotifyType: NotifyInvalidKEPayload, Data: []byte{0}}).KEGroup(); !errors.Is(err, ErrValue) {
		t.Errorf("KEGroup short: %v", err)
	}
	if _, err := (&Notify{NotifyType: NotifyCookie}).KEGroup(); err == nil {
		t.Error("KEGroup on COOKIE")
	}
	if _, err := (&Notify{NotifyType: NotifySignatureHashAlgorithms, Data: []byte{0, 2, 0}}).HashAlgorithms(); !errors.Is(err, ErrValue) {
		t.Errorf("HashAlgorithms odd: %v", err)
	}
	if _, err := (&Notify{NotifyType: NotifyCookie}).HashAlgorithms(); err == nil {
		t.Error("HashAlgorithms on COOKIE")
	}
	if !NotifyNoProposalChosen.IsError() || NotifyCookie.IsError() {
		t.Error("IsError")
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{ExchangeIKESAInit.String(), "IKE_SA_INIT"},
		{ExchangeIKEIntermediate.String(), "IKE_INTERMEDIATE"},
		{ExchangeType(99).String(), "EXCHANGE(99)"},
		{(FlagInitiator | FlagResponse).String(), "I|R"},
		{Flags(0).String(), "0"},
		{Flags(0x41).String(), "0x41"},
		{PayloadNonce.String(), "No"},
		{PayloadSKF.String(), "SKF"},
		{PayloadType(7).String(), "PAYLOAD(7)"},
		{ProtocolESP.String(), "ESP"},
		{CertX509Signature.String(), "X509_SIGNATURE"},
		{NotifyIKEv2FragmentationSupported.String(), "IKEV2_FRAGMENTATION_SUPPORTED"},
		{NotifyType(12345).String(), "NOTIFY(12345)"},
		{TSIPv6AddrRange.String(), "TS_IPV6_ADDR_RANGE"},
		{CFGReply.String(), "CFG_REPLY"},
		{ConfigInternalIP6Subnet.String(), "INTERNAL_IP6_SUBNET"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name string
		ps   Payloads
	}{
		{"nil payload", Payloads{nil}},
		{"nil next payload", Payloads{&VendorID{}, nil}},
		{"SK not last", Payloads{&Encrypted{Body: seq(30, 0)}, &VendorID{}}},
		{"SKF not last", Payloads{&EncryptedFragment{Number: 1, Total: 1}, &VendorID{}}},
		{"SKF number 0", Payloads{&EncryptedFragment{Number: 0, Total: 1}}},
		{"SKF number over total", Payloads{&EncryptedFragment{Number: 3, Total: 2}}},
		{"SA without proposals", Payloads{&SA{}}},
		{"SA too many proposals", Payloads{&SA{Proposals: make([]Proposal, MaxProposals+1)}}},
		{"SA SPI too long", Payloads{&SA{Proposals: []Proposal{{SPI: make([]byte, 256)}}}}},
		{"SA too many transforms", Payloads{&SA{Proposals: []Proposal{{Transforms: make([]Transform, MaxTransforms+1)}}}}},
		{"attribute type 16 bits", Payloads{&SA{Proposals: []Proposal{{Transforms: []Transform{{Attributes: []Attribute{{Type: 0x8000, TV: true}}}}}}}}},
		{"TV attribute with data", Payloads{&SA{Proposals: []Proposal{{Transforms: []Transform{{Attributes: []Attribute{{Type: 1, TV: true, Data: []byte{1}}}}}}}}}},
		{"TLV attribute too long", Payloads{&SA{Proposals: []Proposal{{Transforms: []Transform{{Attributes: []Attribute{{Type: 1, Data: make([]byte, 70000)}}}}}}}}},
		{"too many attributes", Payloads{&SA{Proposals: []Proposal{{Transforms: []Transform{{Attributes: make([]Attribute, MaxAttributes+1)}}}}}}},
		{"proposal over 64k", Payloads{&SA{Proposals: []Proposal{{Transforms: []Transform{
			{Attributes: []Attribute{{Type: 1, Data: make([]byte, 40000)}}},
			{Attributes: []Attribute{{Type: 1, Data: make([]byte, 40000)}}}}}}}}},
		{"nonce short", Payloads{&Nonce{Data: make([]byte, 15)}}},
		{"nonce long", Payloads{&Nonce{Data: make([]byte, 257)}}},
		{"notify SPI too long", Payloads{&Notify{SPI: make([]byte, 256)}}},
		{"delete IKE with SPIs", Payloads{&Delete{Protocol: ProtocolIKE, SPIs: []uint32{1}}}},
		{"TS v4 type v6 address", Payloads{&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, StartAddr: v6, EndAddr: v6}}}}},
		{"TS v6 type v4 address", Payloads{&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv6AddrRange, StartAddr: v4, EndAddr: v6}}}}},
		{"TS zero address", Payloads{&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, StartAddr: v4}}}}},
		{"TS zone", Payloads{&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv6AddrRange, StartAddr: v6.WithZone("eth0"), EndAddr: v6}}}}},
		{"TS address type with data", Payloads{&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, StartAddr: v4, EndAddr: v4, Data: []byte{1}}}}}},
		{"TS too many", Payloads{&TrafficSelectors{Selectors: make([]TrafficSelector, MaxTrafficSelectors+1)}}},
		{"CP type 16 bits", Payloads{&Config{Attributes: []ConfigAttribute{{Type: 0x8001}}}}},
		{"CP value too long", Payloads{&Config{Attributes: []ConfigAttribute{{Type: 1, Value: make([]byte, 0x10000)}}}}},
		{"CP too many", Payloads{&Config{Attributes: make([]ConfigAttribute, MaxConfigAttributes+1)}}},
		{"payload over 64k", Payloads{&VendorID{Data: make([]byte, 0x10000)}}},
		{"too many payloads", make(Payloads, MaxPayloads+1)},
		{"foreign type claims SK", Payloads{foreign{PayloadSK}}},
		{"foreign type claims NONE", Payloads{foreign{PayloadNone}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{Payloads: tt.ps}
			dst := []byte("keep")
			out, err := m.AppendEncode(dst)
			if !errors.Is(err, ErrEncode) {
				t.Fatalf("AppendEncode error %v, want ErrEncode", err)
			}
			if string(out) != "keep" {
				t.Errorf("dst not restored: %q", out)
			}
		})
	}
	t.Run("SK in inner chain", func(t *testing.T) {
		if _, _, err := AppendPayloads(nil, Payloads{&Encrypted{}}); !errors.Is(err, ErrEncode) {
			t.Fatalf("AppendPayloads: %v", err)
		}
	})
}

type foreign struct{ t PayloadType }

func (f foreign) Type() PayloadType                     { return f.t }
func (f foreign) AppendBody(dst []byte) ([]byte, error) { return dst, nil }
