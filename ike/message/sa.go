package message

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// Substructure markers of RFC 7296 §3.3.1 and §3.3.2: the first octet of a
// proposal or transform says whether another one follows.
const (
	lastSubstruct      = 0
	moreProposals      = 2
	moreTransforms     = 3
	proposalHeaderLen  = 8
	transformHeaderLen = 8
	attributeHeaderLen = 4
	attributeFormatTV  = 0x8000 // AF bit: Type/Value format
)

// SA is the Security Association payload (RFC 7296 §3.3): one or more
// proposals, in the order of preference of the sender.
type SA struct {
	Proposals []Proposal
}

// Proposal is a proposal substructure (RFC 7296 §3.3.1).
type Proposal struct {
	// Number is the Proposal Num: 1, 2, ... in a request; in a response the
	// number of the proposal accepted. Encoded as given.
	Number   uint8
	Protocol ProtocolID
	// SPI is the sending entity's SPI: empty in IKE_SA_INIT, 8 octets for an
	// IKE SA rekey, 4 for ESP and AH.
	SPI        []byte
	Transforms []Transform
}

// Transform is a transform substructure (RFC 7296 §3.3.2).
type Transform struct {
	Type       iana.TransformType
	ID         TransformID
	Attributes []Attribute
}

// Attribute is a transform attribute (RFC 7296 §3.3.5). In Type/Value
// format (TV) the value is the 16-bit Value; otherwise (TLV) it is Data.
type Attribute struct {
	Type  AttributeType // without the Attribute Format bit; at most 0x7fff
	TV    bool
	Value uint16 // TV format only
	Data  []byte // TLV format only
}

// KeyLengthAttribute returns the Key Length attribute (TV format) for a key
// of the given number of bits, as variable-key-size ciphers such as
// ENCR_AES_CBC and ENCR_AES_GCM_* require (RFC 7296 §3.3.5).
func KeyLengthAttribute(bits uint16) Attribute {
	return Attribute{Type: AttributeKeyLength, TV: true, Value: bits}
}

// KeyLength returns the value of the transform's Key Length attribute, in
// bits.
func (t *Transform) KeyLength() (bits uint16, ok bool) {
	for _, a := range t.Attributes {
		if a.Type == AttributeKeyLength && a.TV {
			return a.Value, true
		}
	}
	return 0, false
}

// String names the transform as strongSwan logs do, e.g.
// "ENCR_AES_GCM_16_128" for AES-GCM with a 128-bit key.
func (t *Transform) String() string {
	s := iana.TransformIDString(t.Type, uint16(t.ID))
	if bits, ok := t.KeyLength(); ok {
		s += "_" + strconv.Itoa(int(bits))
	}
	return s
}

// String lists the proposal's transforms, e.g.
// "IKE:ENCR_AES_GCM_16_128/PRF_HMAC_SHA2_256/CURVE_25519".
func (p *Proposal) String() string {
	var sb strings.Builder
	sb.WriteString(p.Protocol.String())
	sb.WriteByte(':')
	for i := range p.Transforms {
		if i > 0 {
			sb.WriteByte('/')
		}
		sb.WriteString(p.Transforms[i].String())
	}
	return sb.String()
}

// Type returns PayloadSA.
func (*SA) Type() PayloadType { return PayloadSA }

// AppendBody appends the proposals.
func (sa *SA) AppendBody(dst []byte) ([]byte, error) {
	if len(sa.Proposals) == 0 {
		return dst, encodeError("SA: no proposals")
	}
	if len(sa.Proposals) > MaxProposals {
		return dst, encodeError("SA: %d proposals, limit %d", len(sa.Proposals), MaxProposals)
	}
	for i := range sa.Proposals {
		p := &sa.Proposals[i]
		marker := byte(moreProposals)
		if i == len(sa.Proposals)-1 {
			marker = lastSubstruct
		}
		if len(p.SPI) > 0xff {
			return dst, encodeError("SA: proposal %d: SPI of %d bytes", i, len(p.SPI))
		}
		if len(p.Transforms) > MaxTransforms {
			return dst, encodeError("SA: proposal %d: %d transforms, limit %d",
				i, len(p.Transforms), MaxTransforms)
		}
		start := len(dst)
		dst = append(dst, marker, 0, 0, 0, p.Number, byte(p.Protocol),
			byte(len(p.SPI)), byte(len(p.Transforms)))
		dst = append(dst, p.SPI...)
		for j := range p.Transforms {
			var err error
			dst, err = p.Transforms[j].appendTo(dst, j == len(p.Transforms)-1)
			if err != nil {
				return dst, fmt.Errorf("SA: proposal %d: transform %d: %w", i, j, err)
			}
		}
		if err := putLength(dst, start, "SA: proposal"); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func (t *Transform) appendTo(dst []byte, last bool) ([]byte, error) {
	marker := byte(moreTransforms)
	if last {
		marker = lastSubstruct
	}
	if len(t.Attributes) > MaxAttributes {
		return dst, encodeError("%d attributes, limit %d", len(t.Attributes), MaxAttributes)
	}
	start := len(dst)
	dst = append(dst, marker, 0, 0, 0, byte(t.Type), 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(t.ID))
	for k := range t.Attributes {
		a := &t.Attributes[k]
		if a.Type > 0x7fff {
			return dst, encodeError("attribute %d: type %#x does not fit 15 bits", k, a.Type)
		}
		if a.TV {
			if len(a.Data) != 0 {
				return dst, encodeError("attribute %d: TV format cannot carry Data", k)
			}
			dst = binary.BigEndian.AppendUint16(dst, uint16(a.Type)|attributeFormatTV)
			dst = binary.BigEndian.AppendUint16(dst, a.Value)
			continue
		}
		if len(a.Data) > 0xffff {
			return dst, encodeError("attribute %d: %d bytes of data", k, len(a.Data))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(a.Type))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(a.Data)))
		dst = append(dst, a.Data...)
	}
	return dst, putLength(dst, start, "transform")
}

// putLength writes len(dst)-start into the 16-bit length field at
// dst[start+2:], the place it has in proposals, transforms and selectors.
func putLength(dst []byte, start int, what string) error {
	n := len(dst) - start
	if n > 0xffff {
		return encodeError("%s: length %d exceeds 65535", what, n)
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
	return nil
}

func decodeSA(b []byte) (*SA, error) {
	if len(b) == 0 {
		return nil, badValue("SA: no proposals")
	}
	sa := &SA{}
	off := 0
	for off < len(b) {
		i := len(sa.Proposals)
		if i == MaxProposals {
			return nil, tooMany("SA: proposals", MaxProposals)
		}
		if len(b)-off < proposalHeaderLen {
			return nil, fmt.Errorf("SA: proposal %d: %w", i,
				truncated("proposal header", proposalHeaderLen, len(b)-off))
		}
		marker := b[off]
		plen := int(binary.BigEndian.Uint16(b[off+2:]))
		if plen < proposalHeaderLen || plen > len(b)-off {
			return nil, fmt.Errorf("SA: proposal %d: %w", i,
				badLength("proposal length", plen, len(b)-off))
		}
		p, err := decodeProposal(b[off : off+plen])
		if err != nil {
			return nil, fmt.Errorf("SA: proposal %d: %w", i, err)
		}
		sa.Proposals = append(sa.Proposals, p)
		off += plen
		switch {
		case marker == lastSubstruct && off != len(b):
			return nil, badValue("SA: proposal %d marked last but %d bytes follow", i, len(b)-off)
		case marker == moreProposals && off == len(b):
			return nil, badValue("SA: proposal %d announces another one but the payload ends", i)
		case marker != lastSubstruct && marker != moreProposals:
			return nil, badValue("SA: proposal %d: last-substructure octet %d", i, marker)
		}
	}
	return sa, nil
}

func decodeProposal(b []byte) (Proposal, error) {
	p := Proposal{Number: b[4], Protocol: ProtocolID(b[5])}
	spiSize := int(b[6])
	count := int(b[7])
	off := proposalHeaderLen
	if spiSize > len(b)-off {
		return p, truncated("SPI", spiSize, len(b)-off)
	}
	p.SPI = opaque(b[off : off+spiSize])
	off += spiSize
	if count > MaxTransforms {
		return p, tooMany("transforms", MaxTransforms)
	}
	// Each transform takes at least 8 bytes: checking this before the
	// allocation keeps the count field from sizing memory the input does
	// not pay for.
	if count*transformHeaderLen > len(b)-off {
		return p, truncated(strconv.Itoa(count)+" transforms", count*transformHeaderLen, len(b)-off)
	}
	if count > 0 {
		p.Transforms = make([]Transform, 0, count)
	}
	for j := range count {
		if len(b)-off < transformHeaderLen {
			return p, fmt.Errorf("transform %d: %w", j,
				truncated("transform header", transformHeaderLen, len(b)-off))
		}
		marker := b[off]
		tlen := int(binary.BigEndian.Uint16(b[off+2:]))
		if tlen < transformHeaderLen || tlen > len(b)-off {
			return p, fmt.Errorf("transform %d: %w", j, badLength("transform length", tlen, len(b)-off))
		}
		want := byte(moreTransforms)
		if j == count-1 {
			want = lastSubstruct
		}
		if marker != want {
			return p, badValue("transform %d of %d: last-substructure octet %d, want %d",
				j, count, marker, want)
		}
		t := Transform{
			Type: iana.TransformType(b[off+4]),
			ID:   TransformID(binary.BigEndian.Uint16(b[off+6:])),
		}
		attrs, err := decodeAttributes(b[off+transformHeaderLen : off+tlen])
		if err != nil {
			return p, fmt.Errorf("transform %d: %w", j, err)
		}
		t.Attributes = attrs
		p.Transforms = append(p.Transforms, t)
		off += tlen
	}
	if off != len(b) {
		return p, fmt.Errorf("%d bytes after %d transforms: %w", len(b)-off, count, ErrLength)
	}
	return p, nil
}

func decodeAttributes(b []byte) ([]Attribute, error) {
	var attrs []Attribute
	off := 0
	for off < len(b) {
		k := len(attrs)
		if k == MaxAttributes {
			return nil, tooMany("transform attributes", MaxAttributes)
		}
		if len(b)-off < attributeHeaderLen {
			return nil, fmt.Errorf("attribute %d: %w", k,
				truncated("attribute header", attributeHeaderLen, len(b)-off))
		}
		typ := binary.BigEndian.Uint16(b[off:])
		v := binary.BigEndian.Uint16(b[off+2:])
		a := Attribute{Type: AttributeType(typ &^ attributeFormatTV)}
		if typ&attributeFormatTV != 0 {
			a.TV = true
			a.Value = v
			off += attributeHeaderLen
		} else {
			n := int(v)
			if n > len(b)-off-attributeHeaderLen {
				return nil, fmt.Errorf("attribute %d: %w", k,
					badLength("attribute value length", n, len(b)-off-attributeHeaderLen))
			}
			a.Data = opaque(b[off+attributeHeaderLen : off+attributeHeaderLen+n])
			off += attributeHeaderLen + n
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}
