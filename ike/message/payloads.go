package message

import (
	"encoding/binary"
	"fmt"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// Nonce sizes allowed by RFC 7296 §3.9.
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// KeyExchange is the Key Exchange payload, KE (RFC 7296 §3.4).
type KeyExchange struct {
	Group iana.GroupID // the key exchange method of Data
	Data  []byte       // public value or KEM share
}

// Type returns PayloadKE.
func (*KeyExchange) Type() PayloadType { return PayloadKE }

// AppendBody appends the group number, two reserved octets and the data.
func (ke *KeyExchange) AppendBody(dst []byte) ([]byte, error) {
	dst = binary.BigEndian.AppendUint16(dst, uint16(ke.Group))
	dst = append(dst, 0, 0)
	return append(dst, ke.Data...), nil
}

func decodeKeyExchange(b []byte) (*KeyExchange, error) {
	if len(b) < 4 {
		return nil, truncated("KE", 4, len(b))
	}
	return &KeyExchange{
		Group: iana.GroupID(binary.BigEndian.Uint16(b)),
		Data:  opaque(b[4:]),
	}, nil
}

// ID is an Identification payload, IDi or IDr (RFC 7296 §3.5). Its body,
// from [ID.AppendBody], is the RestOfInitIDPayload / RestOfRespIDPayload
// that the AUTH computation of §2.15 signs.
type ID struct {
	Responder bool // IDr when set, IDi otherwise
	IDType    iana.IDType
	Data      []byte
}

// Type returns PayloadIDr or PayloadIDi.
func (id *ID) Type() PayloadType {
	if id.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

// AppendBody appends the ID type, three reserved octets and the data.
func (id *ID) AppendBody(dst []byte) ([]byte, error) {
	dst = append(dst, byte(id.IDType), 0, 0, 0)
	return append(dst, id.Data...), nil
}

func decodeID(b []byte, responder bool) (*ID, error) {
	if len(b) < 4 {
		return nil, truncated("ID", 4, len(b))
	}
	return &ID{Responder: responder, IDType: iana.IDType(b[0]), Data: opaque(b[4:])}, nil
}

// Cert is the Certificate payload, CERT (RFC 7296 §3.6).
type Cert struct {
	Encoding CertEncoding
	Data     []byte
}

// Type returns PayloadCERT.
func (*Cert) Type() PayloadType { return PayloadCERT }

// AppendBody appends the encoding octet and the certificate data.
func (c *Cert) AppendBody(dst []byte) ([]byte, error) {
	return append(append(dst, byte(c.Encoding)), c.Data...), nil
}

// CertReq is the Certificate Request payload, CERTREQ (RFC 7296 §3.7). For
// X.509 encodings Data is a concatenation of SHA-1 hashes of trusted CAs'
// public keys.
type CertReq struct {
	Encoding CertEncoding
	Data     []byte
}

// Type returns PayloadCERTREQ.
func (*CertReq) Type() PayloadType { return PayloadCERTREQ }

// AppendBody appends the encoding octet and the certification authority data.
func (c *CertReq) AppendBody(dst []byte) ([]byte, error) {
	return append(append(dst, byte(c.Encoding)), c.Data...), nil
}

func decodeCertBody(b []byte, what string) (CertEncoding, []byte, error) {
	if len(b) < 1 {
		return 0, nil, truncated(what, 1, len(b))
	}
	return CertEncoding(b[0]), opaque(b[1:]), nil
}

// Auth is the Authentication payload, AUTH (RFC 7296 §3.8).
type Auth struct {
	Method iana.AuthMethod
	Data   []byte
}

// Type returns PayloadAUTH.
func (*Auth) Type() PayloadType { return PayloadAUTH }

// AppendBody appends the method, three reserved octets and the data.
func (a *Auth) AppendBody(dst []byte) ([]byte, error) {
	dst = append(dst, byte(a.Method), 0, 0, 0)
	return append(dst, a.Data...), nil
}

func decodeAuth(b []byte) (*Auth, error) {
	if len(b) < 4 {
		return nil, truncated("AUTH", 4, len(b))
	}
	return &Auth{Method: iana.AuthMethod(b[0]), Data: opaque(b[4:])}, nil
}

// Nonce is the Nonce payload, Ni or Nr (RFC 7296 §3.9). Data must be 16 to
// 256 octets long; decoding enforces that, as the RFC requires.
type Nonce struct {
	Data []byte
}

// Type returns PayloadNonce.
func (*Nonce) Type() PayloadType { return PayloadNonce }

// AppendBody appends the nonce.
func (n *Nonce) AppendBody(dst []byte) ([]byte, error) {
	if len(n.Data) < MinNonceLen || len(n.Data) > MaxNonceLen {
		return dst, encodeError("nonce of %d bytes, want %d to %d", len(n.Data), MinNonceLen, MaxNonceLen)
	}
	return append(dst, n.Data...), nil
}

func decodeNonce(b []byte) (*Nonce, error) {
	if len(b) < MinNonceLen || len(b) > MaxNonceLen {
		return nil, badValue("nonce of %d bytes, want %d to %d", len(b), MinNonceLen, MaxNonceLen)
	}
	return &Nonce{Data: opaque(b)}, nil
}

// Notify is the Notify payload, N (RFC 7296 §3.10).
type Notify struct {
	Protocol   ProtocolID // the SA the notification concerns; ProtocolNone if none
	SPI        []byte     // that SA's SPI, empty if none
	NotifyType NotifyType
	Data       []byte
}

// Type returns PayloadNotify.
func (*Notify) Type() PayloadType { return PayloadNotify }

// AppendBody appends protocol, SPI size, type, SPI and data.
func (n *Notify) AppendBody(dst []byte) ([]byte, error) {
	if len(n.SPI) > 0xff {
		return dst, encodeError("notify: SPI of %d bytes", len(n.SPI))
	}
	dst = append(dst, byte(n.Protocol), byte(len(n.SPI)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(n.NotifyType))
	dst = append(dst, n.SPI...)
	return append(dst, n.Data...), nil
}

func decodeNotify(b []byte) (*Notify, error) {
	if len(b) < 4 {
		return nil, truncated("notify", 4, len(b))
	}
	spiSize := int(b[1])
	if spiSize > len(b)-4 {
		return nil, truncated("notify SPI", spiSize, len(b)-4)
	}
	return &Notify{
		Protocol:   ProtocolID(b[0]),
		NotifyType: NotifyType(binary.BigEndian.Uint16(b[2:])),
		SPI:        opaque(b[4 : 4+spiSize]),
		Data:       opaque(b[4+spiSize:]),
	}, nil
}

// KEGroup returns the key exchange method an INVALID_KE_PAYLOAD notification
// asks for: its data is that group's two-octet number (RFC 7296 §3.10.1).
func (n *Notify) KEGroup() (iana.GroupID, error) {
	if n.NotifyType != NotifyInvalidKEPayload {
		return 0, fmt.Errorf("notify %v carries no group", n.NotifyType)
	}
	if len(n.Data) != 2 {
		return 0, badValue("INVALID_KE_PAYLOAD data of %d bytes, want 2", len(n.Data))
	}
	return iana.GroupID(binary.BigEndian.Uint16(n.Data)), nil
}

// HashAlgorithms returns the list a SIGNATURE_HASH_ALGORITHMS notification
// carries: two octets per algorithm (RFC 7427 §4). The result is bounded by
// the notification's length.
func (n *Notify) HashAlgorithms() ([]iana.HashAlgorithm, error) {
	if n.NotifyType != NotifySignatureHashAlgorithms {
		return nil, fmt.Errorf("notify %v carries no hash algorithms", n.NotifyType)
	}
	if len(n.Data)%2 != 0 {
		return nil, badValue("SIGNATURE_HASH_ALGORITHMS data of odd length %d", len(n.Data))
	}
	hs := make([]iana.HashAlgorithm, len(n.Data)/2)
	for i := range hs {
		hs[i] = iana.HashAlgorithm(binary.BigEndian.Uint16(n.Data[2*i:]))
	}
	return hs, nil
}

// Delete is the Delete payload, D (RFC 7296 §3.11). Deleting the IKE SA
// carries no SPIs (the SPI Size is 0); deleting ESP or AH SAs carries their
// four-octet inbound SPIs.
type Delete struct {
	Protocol ProtocolID
	SPIs     []uint32
}

// Type returns PayloadDelete.
func (*Delete) Type() PayloadType { return PayloadDelete }

// AppendBody appends protocol, SPI size, count and SPIs. The SPI size is 0
// for an IKE SA and 4 otherwise.
func (d *Delete) AppendBody(dst []byte) ([]byte, error) {
	size := byte(4)
	if d.Protocol == ProtocolIKE {
		if len(d.SPIs) != 0 {
			return dst, encodeError("delete: IKE SA deletion carries no SPIs, have %d", len(d.SPIs))
		}
		size = 0
	}
	if len(d.SPIs) > 0xffff {
		return dst, encodeError("delete: %d SPIs", len(d.SPIs))
	}
	dst = append(dst, byte(d.Protocol), size)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(d.SPIs)))
	for _, spi := range d.SPIs {
		dst = binary.BigEndian.AppendUint32(dst, spi)
	}
	return dst, nil
}

func decodeDelete(b []byte) (*Delete, error) {
	if len(b) < 4 {
		return nil, truncated("delete", 4, len(b))
	}
	d := &Delete{Protocol: ProtocolID(b[0])}
	size := int(b[1])
	count := int(binary.BigEndian.Uint16(b[2:]))
	rest := b[4:]
	switch {
	case d.Protocol == ProtocolIKE && (size != 0 || count != 0):
		// §3.11: the IKE SA's SPIs are in the header; SPI size MUST be 0.
		return nil, badValue("delete IKE SA with SPI size %d and %d SPIs", size, count)
	case d.Protocol != ProtocolIKE && size != 4:
		return nil, badValue("delete %v SA with SPI size %d, want 4", d.Protocol, size)
	}
	// Comparing with the bytes present before allocating: the count alone
	// never sizes memory.
	if count*size != len(rest) {
		return nil, badLength("delete SPIs", count*size, len(rest))
	}
	if count > 0 {
		d.SPIs = make([]uint32, count)
		for i := range d.SPIs {
			d.SPIs[i] = binary.BigEndian.Uint32(rest[4*i:])
		}
	}
	return d, nil
}

// VendorID is the Vendor ID payload, V (RFC 7296 §3.12).
type VendorID struct {
	Data []byte
}

// Type returns PayloadVendor.
func (*VendorID) Type() PayloadType { return PayloadVendor }

// AppendBody appends the vendor ID.
func (v *VendorID) AppendBody(dst []byte) ([]byte, error) { return append(dst, v.Data...), nil }

// EAP is the Extensible Authentication payload (RFC 7296 §3.16); the EAP
// message it carries is opaque here.
type EAP struct {
	Data []byte
}

// Type returns PayloadEAP.
func (*EAP) Type() PayloadType { return PayloadEAP }

// AppendBody appends the EAP message.
func (e *EAP) AppendBody(dst []byte) ([]byte, error) { return append(dst, e.Data...), nil }

// Unknown is a payload of a type this package does not decode, received
// with the critical bit clear (RFC 7296 §2.5: skip it). Encoding writes it
// back unchanged, with the critical bit if Critical is set.
type Unknown struct {
	PayloadType PayloadType
	Critical    bool
	Data        []byte
}

// Type returns the payload's type.
func (u *Unknown) Type() PayloadType { return u.PayloadType }

// AppendBody appends the raw body.
func (u *Unknown) AppendBody(dst []byte) ([]byte, error) { return append(dst, u.Data...), nil }
