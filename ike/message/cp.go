package message

import (
	"encoding/binary"
	"fmt"
)

// Config is the Configuration payload, CP (RFC 7296 §3.15).
type Config struct {
	CFGType    CFGType
	Attributes []ConfigAttribute
}

// ConfigAttribute is one configuration attribute (RFC 7296 §3.15.1). An
// empty Value is how a CFG_REQUEST asks for an attribute.
type ConfigAttribute struct {
	Type  ConfigAttributeType // 15 bits; the reserved high bit is dropped on decode
	Value []byte
}

// Type returns PayloadCP.
func (*Config) Type() PayloadType { return PayloadCP }

// AppendBody appends the CFG type, three reserved octets and the attributes.
func (c *Config) AppendBody(dst []byte) ([]byte, error) {
	if len(c.Attributes) > MaxConfigAttributes {
		return dst, encodeError("CP: %d attributes, limit %d", len(c.Attributes), MaxConfigAttributes)
	}
	dst = append(dst, byte(c.CFGType), 0, 0, 0)
	for i, a := range c.Attributes {
		if a.Type > 0x7fff {
			return dst, encodeError("CP: attribute %d: type %#x does not fit 15 bits", i, a.Type)
		}
		if len(a.Value) > 0xffff {
			return dst, encodeError("CP: attribute %d: value of %d bytes", i, len(a.Value))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(a.Type))
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(a.Value)))
		dst = append(dst, a.Value...)
	}
	return dst, nil
}

func decodeConfig(b []byte) (*Config, error) {
	if len(b) < 4 {
		return nil, truncated("CP", 4, len(b))
	}
	c := &Config{CFGType: CFGType(b[0])}
	off := 4
	for off < len(b) {
		i := len(c.Attributes)
		if i == MaxConfigAttributes {
			return nil, tooMany("CP attributes", MaxConfigAttributes)
		}
		if len(b)-off < 4 {
			return nil, fmt.Errorf("CP: attribute %d: %w", i, truncated("attribute header", 4, len(b)-off))
		}
		// The high bit is reserved (§3.15.1: ignored on receipt).
		t := ConfigAttributeType(binary.BigEndian.Uint16(b[off:]) & 0x7fff)
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		if n > len(b)-off-4 {
			return nil, fmt.Errorf("CP: attribute %d: %w", i, badLength("attribute length", n, len(b)-off-4))
		}
		c.Attributes = append(c.Attributes, ConfigAttribute{Type: t, Value: opaque(b[off+4 : off+4+n])})
		off += 4 + n
	}
	return c, nil
}
