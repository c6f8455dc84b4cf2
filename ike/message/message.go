package message

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math"
)

// HeaderLen is the length of the IKE header (RFC 7296 §3.1).
const HeaderLen = 28

// genericHeaderLen is the length of the generic payload header (§3.2).
const genericHeaderLen = 4

// criticalBit is the Critical flag in the second octet of the generic
// payload header.
const criticalBit = 0x80

// Header is the IKE header (RFC 7296 §3.1).
type Header struct {
	SPIi, SPIr uint64 // initiator's and responder's IKE SPIs, big-endian on the wire
	// NextPayload is the type of the first payload. Decoding fills it in;
	// encoding recomputes it from the payloads.
	NextPayload PayloadType
	// Version is the version octet: major version in the high nibble, minor
	// in the low one. Zero encodes as Version2.
	Version   uint8
	Exchange  ExchangeType
	Flags     Flags
	MessageID uint32
	// Length is the whole message's length as decoded; encoding recomputes it.
	Length uint32
}

// IsResponse reports whether the Response flag is set.
func (h *Header) IsResponse() bool { return h.Flags.Has(FlagResponse) }

// IsInitiator reports whether the Initiator flag is set: the message comes
// from the original initiator of the IKE SA.
func (h *Header) IsInitiator() bool { return h.Flags.Has(FlagInitiator) }

// DecodeHeader decodes the IKE header at the start of b. It checks that the
// header is complete, that its major version is 2 and that its length field
// covers at least the header; it does not compare the length with len(b), so
// it also serves to peek at a datagram before deciding what to do with it.
//
// For a major version other than 2 it returns the decoded header together
// with an [*InvalidMajorVersionError], so that the caller can answer with
// INVALID_MAJOR_VERSION (RFC 7296 §2.5).
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, truncated("IKE header", HeaderLen, len(b))
	}
	h := Header{
		SPIi:        binary.BigEndian.Uint64(b[0:8]),
		SPIr:        binary.BigEndian.Uint64(b[8:16]),
		NextPayload: PayloadType(b[16]),
		Version:     b[17],
		Exchange:    ExchangeType(b[18]),
		Flags:       Flags(b[19]),
		MessageID:   binary.BigEndian.Uint32(b[20:24]),
		Length:      binary.BigEndian.Uint32(b[24:28]),
	}
	if h.Version>>4 != 2 {
		return h, &InvalidMajorVersionError{Version: h.Version}
	}
	if h.Length < HeaderLen {
		return h, badLength("IKE header length field", int(h.Length), HeaderLen)
	}
	return h, nil
}

// appendHeader appends h with the given next payload and length.
func (h *Header) appendHeader(dst []byte, next PayloadType, length uint32) []byte {
	v := h.Version
	if v == 0 {
		v = Version2
	}
	dst = binary.BigEndian.AppendUint64(dst, h.SPIi)
	dst = binary.BigEndian.AppendUint64(dst, h.SPIr)
	dst = append(dst, byte(next), v, byte(h.Exchange), byte(h.Flags))
	dst = binary.BigEndian.AppendUint32(dst, h.MessageID)
	return binary.BigEndian.AppendUint32(dst, length)
}

// Payload is one IKEv2 payload. The concrete types of this package are
// [*SA], [*KeyExchange], [*ID], [*Cert], [*CertReq], [*Auth], [*Nonce],
// [*Notify], [*Delete], [*VendorID], [*TrafficSelectors], [*Encrypted],
// [*Config], [*EAP], [*EncryptedFragment] and [*Unknown].
type Payload interface {
	// Type is the payload type, written into the Next Payload field of
	// whatever precedes the payload.
	Type() PayloadType
	// AppendBody appends the payload's body, everything after its generic
	// payload header, to dst.
	AppendBody(dst []byte) ([]byte, error)
}

// Payloads is a payload chain, in wire order.
type Payloads []Payload

// Get returns the first payload of type t, or nil.
func (ps Payloads) Get(t PayloadType) Payload {
	for _, p := range ps {
		if p.Type() == t {
			return p
		}
	}
	return nil
}

// All yields every payload of type t, in order.
func (ps Payloads) All(t PayloadType) iter.Seq[Payload] {
	return func(yield func(Payload) bool) {
		for _, p := range ps {
			if p.Type() == t && !yield(p) {
				return
			}
		}
	}
}

// Notify returns the first Notify payload of notify type t, or nil.
func (ps Payloads) Notify(t NotifyType) *Notify {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// Message is an IKEv2 message: the header and its (outer) payload chain. In
// a protected message the chain ends with an [*Encrypted] or
// [*EncryptedFragment] payload whose content ike/crypto opens; the payloads
// inside are decoded separately with [DecodePayloads].
type Message struct {
	Header
	Payloads Payloads
}

// Get returns the first payload of type t, or nil.
func (m *Message) Get(t PayloadType) Payload { return m.Payloads.Get(t) }

// Notify returns the first Notify payload of notify type t, or nil.
func (m *Message) Notify(t NotifyType) *Notify { return m.Payloads.Notify(t) }

// Decode decodes a whole IKEv2 message, as carried in one UDP datagram (after
// the non-ESP marker on port 4500 has been removed).
//
// Checks: the header is complete, its major version is 2 and its length
// equals len(b); every payload's length covers its generic header and stays
// inside the message, and every structure inside a payload stays inside its
// payload; the chain ends exactly at the end of the message; an SK or SKF
// payload is last (its Next Payload names the first inner payload, so the
// outer chain stops there). An unknown payload with the critical bit set
// gives [*UnsupportedCriticalPayloadError]; other failures wrap
// [ErrInvalidSyntax] (or [*InvalidMajorVersionError]).
//
// Decode copies b once; the result does not alias it.
func Decode(b []byte) (*Message, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return nil, err
	}
	if int64(h.Length) != int64(len(b)) {
		return nil, badLength("IKE header length field", int(h.Length), len(b))
	}
	buf := make([]byte, len(b))
	copy(buf, b)
	ps, err := decodeChain(buf[HeaderLen:], h.NextPayload, true)
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// DecodePayloads decodes a payload chain that starts with a payload of type
// first: the decrypted content of an SK payload (without padding and pad
// length) or a reassembled fragmented message, with first taken from the
// Encrypted payload's NextPayload. The checks are those of [Decode]; an SK
// or SKF payload inside the chain is an error. DecodePayloads copies b once;
// the result does not alias it.
func DecodePayloads(first PayloadType, b []byte) (Payloads, error) {
	buf := make([]byte, len(b))
	copy(buf, b)
	return decodeChain(buf, first, false)
}

// Encode encodes m into a new buffer. See [Message.AppendEncode].
func (m *Message) Encode() ([]byte, error) {
	return m.AppendEncode(nil)
}

// AppendEncode appends the encoding of m to dst. Every length field and
// every Next Payload field (the header's included) is computed from the
// payloads; m.NextPayload and m.Length are ignored. An [*Encrypted] or
// [*EncryptedFragment] payload must be last, and its NextPayload is written
// as its generic header's Next Payload. On error dst is returned truncated
// to its original length.
func (m *Message) AppendEncode(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = m.appendHeader(dst, firstType(m.Payloads), 0)
	dst, _, err := appendChain(dst, m.Payloads, true, false)
	if err != nil {
		return dst[:start], fmt.Errorf("encode %v message: %w", m.Exchange, err)
	}
	n := len(dst) - start
	if n > math.MaxUint32 {
		return dst[:start], encodeError("message length %d", n)
	}
	binary.BigEndian.PutUint32(dst[start+24:], uint32(n))
	return dst, nil
}

// AppendAssociatedData appends the bytes that the AEAD of the message's SK
// (or SKF) payload authenticates without encrypting: the IKE header and any
// payloads before the SK payload, through the SK payload's generic header
// (RFC 5282 §5.1), and for an SKF payload also its Fragment Number and Total
// Fragments fields (RFC 7383 §2.5). Length fields are those of the encoded
// message, so the last payload's Body must already have its final length
// (IV, ciphertext and ICV); its content is not read. It fails unless the
// last payload is an [*Encrypted] or [*EncryptedFragment].
//
// For an integrity transform used with a plain cipher the ICV covers the
// whole message up to the ICV instead; [LocateEncrypted] returns that region
// of an encoded message.
func (m *Message) AppendAssociatedData(dst []byte) ([]byte, error) {
	if n := len(m.Payloads); n == 0 || !isEncrypted(m.Payloads[n-1]) {
		return dst, encodeError("associated data: last payload is not SK or SKF")
	}
	start := len(dst)
	dst = m.appendHeader(dst, firstType(m.Payloads), 0)
	dst, omitted, err := appendChain(dst, m.Payloads, true, true)
	if err != nil {
		return dst[:start], fmt.Errorf("associated data: %w", err)
	}
	n := len(dst) - start + omitted
	if n > math.MaxUint32 {
		return dst[:start], encodeError("message length %d", n)
	}
	binary.BigEndian.PutUint32(dst[start+24:], uint32(n))
	return dst, nil
}

func firstType(ps []Payload) PayloadType {
	if len(ps) == 0 || ps[0] == nil {
		return PayloadNone
	}
	return ps[0].Type()
}

func isEncrypted(p Payload) bool {
	switch p.(type) {
	case *Encrypted, *EncryptedFragment:
		return true
	}
	return false
}
