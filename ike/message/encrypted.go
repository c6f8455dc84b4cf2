package message

import (
	"encoding/binary"
	"fmt"
)

// Encrypted is the Encrypted and Authenticated payload, SK
// (RFC 7296 §3.14). Its body stays opaque here: ike/crypto seals and opens
// it, and [DecodePayloads] decodes the plaintext.
type Encrypted struct {
	// NextPayload is the type of the first payload inside the ciphertext;
	// it is the SK payload's own Next Payload field.
	NextPayload PayloadType
	// Body is Initialization Vector | ciphertext (encrypted payloads,
	// padding and Pad Length) | Integrity Checksum Data.
	Body []byte
}

// Type returns PayloadSK.
func (*Encrypted) Type() PayloadType { return PayloadSK }

// AppendBody appends the body unchanged.
func (e *Encrypted) AppendBody(dst []byte) ([]byte, error) { return append(dst, e.Body...), nil }

// Split cuts the body into IV, ciphertext and ICV, given the IV and ICV
// lengths of the negotiated transforms. The results alias Body.
func (e *Encrypted) Split(ivLen, icvLen int) (iv, ciphertext, icv []byte, err error) {
	return splitBody(e.Body, ivLen, icvLen)
}

// EncryptedFragment is the Encrypted Fragment payload, SKF (RFC 7383 §2.5):
// one fragment of a message's SK payload, protected on its own.
type EncryptedFragment struct {
	// NextPayload is the first inner payload type in fragment 1 and zero in
	// the others (decoding keeps whatever the sender wrote).
	NextPayload PayloadType
	Number      uint16 // Fragment Number, 1 to Total
	Total       uint16 // Total Fragments
	Body        []byte // IV | ciphertext | ICV, as in SK
}

// Type returns PayloadSKF.
func (*EncryptedFragment) Type() PayloadType { return PayloadSKF }

// AppendBody appends the fragment number, the total and the body.
func (f *EncryptedFragment) AppendBody(dst []byte) ([]byte, error) {
	if f.Number == 0 || f.Number > f.Total {
		return dst, encodeError("SKF: fragment %d of %d", f.Number, f.Total)
	}
	dst = binary.BigEndian.AppendUint16(dst, f.Number)
	dst = binary.BigEndian.AppendUint16(dst, f.Total)
	return append(dst, f.Body...), nil
}

// Split cuts the body into IV, ciphertext and ICV; see [Encrypted.Split].
func (f *EncryptedFragment) Split(ivLen, icvLen int) (iv, ciphertext, icv []byte, err error) {
	return splitBody(f.Body, ivLen, icvLen)
}

func decodeEncryptedFragment(b []byte, next PayloadType) (*EncryptedFragment, error) {
	if len(b) < 4 {
		return nil, truncated("SKF", 4, len(b))
	}
	f := &EncryptedFragment{
		NextPayload: next,
		Number:      binary.BigEndian.Uint16(b),
		Total:       binary.BigEndian.Uint16(b[2:]),
		Body:        opaque(b[4:]),
	}
	// RFC 7383 §2.5: neither field may be zero, and the number may not
	// exceed the total.
	if f.Number == 0 || f.Total == 0 || f.Number > f.Total {
		return nil, badValue("SKF: fragment %d of %d", f.Number, f.Total)
	}
	return f, nil
}

// splitBody cuts IV | ciphertext | ICV. The ciphertext cannot be empty: it
// always holds at least the Pad Length octet (RFC 7296 §3.14).
func splitBody(body []byte, ivLen, icvLen int) (iv, ciphertext, icv []byte, err error) {
	if ivLen < 0 || icvLen < 0 {
		return nil, nil, nil, fmt.Errorf("ike/message: negative IV (%d) or ICV (%d) length", ivLen, icvLen)
	}
	if len(body) < ivLen+icvLen+1 {
		return nil, nil, nil, truncated("encrypted payload body", ivLen+icvLen+1, len(body))
	}
	ctEnd := len(body) - icvLen
	return body[:ivLen:ivLen], body[ivLen:ctEnd:ctEnd], body[ctEnd:len(body):len(body)], nil
}

// EncryptedLayout locates the protected regions of an encoded message whose
// last payload is SK or SKF. Every slice aliases the message and is capped
// at its own end, so ike/crypto can seal or open in place: write the IV,
// encrypt into Ciphertext, write the ICV.
type EncryptedLayout struct {
	// AssociatedData is the message from the IKE header through the SK
	// payload's generic header (RFC 5282 §5.1), or through the SKF payload's
	// Total Fragments field (RFC 7383 §2.5): what an AEAD authenticates.
	AssociatedData []byte
	IV             []byte
	Ciphertext     []byte
	ICV            []byte
	// Authenticated is the message up to the ICV: what a separate integrity
	// transform covers (RFC 7296 §3.14).
	Authenticated []byte
	// NextPayload is the SK/SKF Next Payload field: the first inner payload.
	NextPayload PayloadType
	// Fragment is set for SKF; Number and Total are then its fields.
	Fragment      bool
	Number, Total uint16
}

// LocateEncrypted finds the SK or SKF payload of the encoded message msg and
// returns its regions, given the IV and ICV lengths of the negotiated
// transforms. It walks only the generic payload headers, checking them as
// [Decode] does, so it works the same on a received datagram and on a
// message just built by [Message.AppendEncode] with a placeholder body.
func LocateEncrypted(msg []byte, ivLen, icvLen int) (EncryptedLayout, error) {
	h, err := DecodeHeader(msg)
	if err != nil {
		return EncryptedLayout{}, err
	}
	if int64(h.Length) != int64(len(msg)) {
		return EncryptedLayout{}, badLength("IKE header length field", int(h.Length), len(msg))
	}
	next := h.NextPayload
	off := HeaderLen
	for i := 0; ; i++ {
		if next == PayloadNone {
			return EncryptedLayout{}, fmt.Errorf("ike/message: message has no SK or SKF payload")
		}
		if i == MaxPayloads {
			return EncryptedLayout{}, tooMany("payloads in chain", MaxPayloads)
		}
		if len(msg)-off < genericHeaderLen {
			return EncryptedLayout{}, fmt.Errorf("payload %d (%v): %w", i, next,
				truncated("generic payload header", genericHeaderLen, len(msg)-off))
		}
		plen := int(binary.BigEndian.Uint16(msg[off+2:]))
		if plen < genericHeaderLen || plen > len(msg)-off {
			return EncryptedLayout{}, fmt.Errorf("payload %d (%v): %w", i, next,
				badLength("payload length", plen, len(msg)-off))
		}
		if next != PayloadSK && next != PayloadSKF {
			next = PayloadType(msg[off])
			off += plen
			continue
		}
		if off+plen != len(msg) {
			return EncryptedLayout{}, badValue("payload %d: %v is not the last payload", i, next)
		}
		l := EncryptedLayout{NextPayload: PayloadType(msg[off])}
		bodyStart := off + genericHeaderLen
		if next == PayloadSKF {
			if plen < genericHeaderLen+4 {
				return EncryptedLayout{}, truncated("SKF", 4, plen-genericHeaderLen)
			}
			l.Fragment = true
			l.Number = binary.BigEndian.Uint16(msg[bodyStart:])
			l.Total = binary.BigEndian.Uint16(msg[bodyStart+2:])
			bodyStart += 4
		}
		l.IV, l.Ciphertext, l.ICV, err = splitBody(msg[bodyStart:], ivLen, icvLen)
		if err != nil {
			return EncryptedLayout{}, err
		}
		l.AssociatedData = msg[:bodyStart:bodyStart]
		end := len(msg) - icvLen
		l.Authenticated = msg[:end:end]
		return l, nil
	}
}
