package message

import (
	"encoding/binary"
	"fmt"
)

// AppendPayloads appends the encoding of a payload chain that is not a whole
// message: the plaintext of an SK payload, before ike/crypto pads and
// encrypts it. It returns the type of the first payload, which goes into the
// Encrypted payload's NextPayload. Encrypted payloads cannot be nested, so
// [*Encrypted] and [*EncryptedFragment] are refused. On error dst is
// returned truncated to its original length.
func AppendPayloads(dst []byte, ps []Payload) ([]byte, PayloadType, error) {
	start := len(dst)
	dst, _, err := appendChain(dst, ps, false, false)
	if err != nil {
		return dst[:start], PayloadNone, err
	}
	return dst, firstType(ps), nil
}

// appendChain appends the payloads of ps, chaining each one's Next Payload
// to the type of the one after it. In the outer chain (outer) an SK or SKF
// payload may come last; its Next Payload is its inner first payload. With
// aadOnly, that last payload's body after its fixed fields is left out and
// its length returned as omitted, so callers can build associated data
// without touching the ciphertext.
func appendChain(dst []byte, ps []Payload, outer, aadOnly bool) (_ []byte, omitted int, _ error) {
	if len(ps) > MaxPayloads {
		return dst, 0, encodeError("%d payloads, limit %d", len(ps), MaxPayloads)
	}
	for i, p := range ps {
		if p == nil {
			return dst, 0, encodeError("payload %d is nil", i)
		}
		t := p.Type()
		last := i == len(ps)-1
		next := PayloadNone
		if !last {
			if ps[i+1] == nil {
				return dst, 0, encodeError("payload %d is nil", i+1)
			}
			next = ps[i+1].Type()
		}
		var flags byte
		switch q := p.(type) {
		case *Encrypted:
			if !outer || !last {
				return dst, 0, encodeError("payload %d: SK must be the last payload of a message", i)
			}
			next = q.NextPayload
		case *EncryptedFragment:
			if !outer || !last {
				return dst, 0, encodeError("payload %d: SKF must be the last payload of a message", i)
			}
			next = q.NextPayload
		case *Unknown:
			if q.Critical {
				flags = criticalBit
			}
		default:
			// Only this package's SK/SKF types know how to chain past
			// themselves; a foreign type claiming those numbers would
			// produce a chain no decoder could follow.
			if t == PayloadNone || t == PayloadSK || t == PayloadSKF {
				return dst, 0, encodeError("payload %d: %T claims payload type %v", i, p, t)
			}
		}
		hdr := len(dst)
		dst = append(dst, byte(next), flags, 0, 0)
		var err error
		if aadOnly && last {
			// The fixed fields of SKF belong to the associated data; the
			// IV, ciphertext and ICV do not.
			var body []byte
			switch q := p.(type) {
			case *Encrypted:
				body = q.Body
			case *EncryptedFragment:
				if q.Number == 0 || q.Number > q.Total {
					return dst, 0, encodeError("SKF: fragment %d of %d", q.Number, q.Total)
				}
				dst = binary.BigEndian.AppendUint16(dst, q.Number)
				dst = binary.BigEndian.AppendUint16(dst, q.Total)
				body = q.Body
			}
			omitted = len(body)
		} else {
			dst, err = p.AppendBody(dst)
			if err != nil {
				return dst, 0, fmt.Errorf("payload %d (%v): %w", i, t, err)
			}
		}
		n := len(dst) - hdr + omitted
		if n > 0xffff {
			return dst, 0, encodeError("payload %d (%v): length %d exceeds 65535", i, t, n)
		}
		binary.BigEndian.PutUint16(dst[hdr+2:], uint16(n))
	}
	return dst, omitted, nil
}

// decodeChain decodes the payload chain in b whose first payload has type
// next. b must be owned by the result (callers copy the input first).
func decodeChain(b []byte, next PayloadType, outer bool) (Payloads, error) {
	var ps Payloads
	off := 0
	for next != PayloadNone {
		i := len(ps)
		if i == MaxPayloads {
			return nil, tooMany("payloads in chain", MaxPayloads)
		}
		if len(b)-off < genericHeaderLen {
			return nil, fmt.Errorf("payload %d (%v) at offset %d: %w", i, next, off,
				truncated("generic payload header", genericHeaderLen, len(b)-off))
		}
		nextNext := PayloadType(b[off])
		critical := b[off+1]&criticalBit != 0
		plen := int(binary.BigEndian.Uint16(b[off+2:]))
		if plen < genericHeaderLen || plen > len(b)-off {
			return nil, fmt.Errorf("payload %d (%v) at offset %d: %w", i, next, off,
				badLength("payload length", plen, len(b)-off))
		}
		body := b[off+genericHeaderLen : off+plen : off+plen]
		if (next == PayloadSK || next == PayloadSKF) && !outer {
			return nil, badValue("payload %d: %v inside an encrypted payload", i, next)
		}
		p, err := decodeBody(next, nextNext, critical, body)
		if err != nil {
			return nil, fmt.Errorf("payload %d (%v) at offset %d: %w", i, next, off, err)
		}
		ps = append(ps, p)
		off += plen
		if next == PayloadSK || next == PayloadSKF {
			// The Next Payload of SK/SKF names the first payload inside the
			// ciphertext; nothing may follow it in the clear.
			if off != len(b) {
				return nil, badValue("payload %d: %v is followed by %d bytes; it must be last",
					i, next, len(b)-off)
			}
			return ps, nil
		}
		next = nextNext
	}
	if off != len(b) {
		return nil, fmt.Errorf("%d bytes after the last payload: %w", len(b)-off, ErrLength)
	}
	return ps, nil
}

// decodeBody decodes one payload body of type t. nextType is the payload's
// own Next Payload field, which SK and SKF keep (it names the first inner
// payload).
func decodeBody(t, nextType PayloadType, critical bool, body []byte) (Payload, error) {
	switch t {
	case PayloadSA:
		return decodeSA(body)
	case PayloadKE:
		return decodeKeyExchange(body)
	case PayloadIDi, PayloadIDr:
		return decodeID(body, t == PayloadIDr)
	case PayloadCERT:
		e, data, err := decodeCertBody(body, "CERT")
		if err != nil {
			return nil, err
		}
		return &Cert{Encoding: e, Data: data}, nil
	case PayloadCERTREQ:
		e, data, err := decodeCertBody(body, "CERTREQ")
		if err != nil {
			return nil, err
		}
		return &CertReq{Encoding: e, Data: data}, nil
	case PayloadAUTH:
		return decodeAuth(body)
	case PayloadNonce:
		return decodeNonce(body)
	case PayloadNotify:
		return decodeNotify(body)
	case PayloadDelete:
		return decodeDelete(body)
	case PayloadVendor:
		return &VendorID{Data: opaque(body)}, nil
	case PayloadTSi, PayloadTSr:
		return decodeTrafficSelectors(body, t == PayloadTSr)
	case PayloadSK:
		return &Encrypted{NextPayload: nextType, Body: opaque(body)}, nil
	case PayloadSKF:
		return decodeEncryptedFragment(body, nextType)
	case PayloadCP:
		return decodeConfig(body)
	case PayloadEAP:
		return &EAP{Data: opaque(body)}, nil
	}
	if critical {
		return nil, &UnsupportedCriticalPayloadError{Type: t}
	}
	return &Unknown{PayloadType: t, Data: opaque(body)}, nil
}

// opaque returns b as a decoded field: nil when empty (so decoded and
// hand-built values compare equal) and capped, so that appending to one
// field can never overwrite the next one in the shared buffer.
func opaque(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}
