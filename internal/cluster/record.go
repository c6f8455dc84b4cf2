package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

// Record is a Child SA as a standby needs it to install it: its whole
// configuration (keys included), whether it is static, the selectors a
// negotiated outbound SA was bound with, and when it was made. It travels
// only sealed (Sealer): its encoding holds the keys.
type Record struct {
	Config  sad.Config
	Static  bool
	Bound   []sad.Selector
	Created time.Time
}

// recordMagic starts an encoded Record (version 1).
const recordMagic = "xsa1"

// Limits a decoder holds a record to: no more than a real SA has.
const (
	maxKeyLen    = 64
	maxSelectors = 256
	maxNameLen   = 255
)

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, 0)
	}
	s := a.AsSlice()
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendPrefix(b []byte, p netip.Prefix) []byte {
	b = appendAddr(b, p.Addr())
	if !p.IsValid() {
		return b
	}
	return append(b, byte(p.Bits()))
}

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func appendSelectors(b []byte, ss []sad.Selector) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ss)))
	for _, s := range ss {
		b = appendPrefix(b, s.Src)
		b = appendPrefix(b, s.Dst)
		b = append(b, s.Proto)
		for _, p := range []uint16{s.SrcPorts.Lo, s.SrcPorts.Hi, s.DstPorts.Lo, s.DstPorts.Hi} {
			b = binary.BigEndian.AppendUint16(b, p)
		}
	}
	return b
}

func appendLimits(b []byte, l sad.Limits) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(l.Time))
	b = binary.BigEndian.AppendUint64(b, l.Bytes)
	return binary.BigEndian.AppendUint64(b, l.Packets)
}

// Record flags.
const (
	flagESN = 1 << iota
	flagNoReplay
	flagStatic
)

// encode writes r in the record format; the caller wipes the result once
// sealed (it holds the keys).
func (r *Record) encode() ([]byte, error) {
	c := &r.Config
	if len(c.Key) > maxKeyLen || len(c.IntegKey) > maxKeyLen || len(c.Selectors) > maxSelectors ||
		len(r.Bound) > maxSelectors || len(c.Name) > maxNameLen || c.ReplayWindow < 0 {
		return nil, fmt.Errorf("sa %08x: too large to replicate", c.SPI)
	}
	b := make([]byte, 0, 256+len(c.Selectors)*48+len(r.Bound)*48)
	b = append(b, recordMagic...)
	b = binary.BigEndian.AppendUint32(b, c.SPI)
	b = append(b, byte(c.Dir), byte(c.Mode))
	b = appendAddr(b, c.Local)
	b = appendAddr(b, c.Remote)
	b = binary.BigEndian.AppendUint16(b, c.Encap.SrcPort)
	b = binary.BigEndian.AppendUint16(b, c.Encap.DstPort)
	b = append(b, byte(c.Suite.Cipher))
	b = binary.BigEndian.AppendUint16(b, uint16(c.Suite.KeyBits))
	b = append(b, byte(c.Suite.Integ), byte(c.Suite.ICVLen))
	b = appendBytes(b, c.Key)
	b = appendBytes(b, c.IntegKey)
	var f byte
	if c.ESN {
		f |= flagESN
	}
	if c.NoReplay {
		f |= flagNoReplay
	}
	if r.Static {
		f |= flagStatic
	}
	b = append(b, f)
	b = binary.BigEndian.AppendUint32(b, uint32(c.ReplayWindow))
	b = appendLimits(b, c.Lifetime.Soft)
	b = appendLimits(b, c.Lifetime.Hard)
	b = appendSelectors(b, c.Selectors)
	b = append(b, c.TTL, byte(c.DF))
	b = binary.BigEndian.AppendUint32(b, c.ReqID)
	b = appendBytes(b, []byte(c.Name))
	b = appendSelectors(b, r.Bound)
	var created int64
	if !r.Created.IsZero() {
		created = r.Created.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(created)), nil
}

var errRecord = errors.New("malformed sa record")

// reader decodes a record; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = errRecord
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte    { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

func (r *reader) addr() netip.Addr {
	n := int(r.u8())
	if n == 0 {
		return netip.Addr{}
	}
	if n != 4 && n != 16 {
		r.err = errRecord
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(r.take(n))
	return a
}

func (r *reader) prefix() netip.Prefix {
	a := r.addr()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	p := netip.PrefixFrom(a, int(r.u8())) // unmasked, as it was written
	if !p.IsValid() {
		r.err = errRecord
	}
	return p
}

func (r *reader) bytes(limit int) []byte {
	n := int(r.u16())
	if n > limit {
		r.err = errRecord
		return nil
	}
	return append([]byte(nil), r.take(n)...)
}

func (r *reader) selectors() []sad.Selector {
	n := int(r.u16())
	if n > maxSelectors {
		r.err = errRecord
		return nil
	}
	var ss []sad.Selector
	for i := 0; i < n && r.err == nil; i++ {
		s := sad.Selector{Src: r.prefix(), Dst: r.prefix(), Proto: r.u8()}
		s.SrcPorts = sad.PortRange{Lo: r.u16(), Hi: r.u16()}
		s.DstPorts = sad.PortRange{Lo: r.u16(), Hi: r.u16()}
		ss = append(ss, s)
	}
	return ss
}

func (r *reader) limits() sad.Limits {
	return sad.Limits{Time: time.Duration(r.u64()), Bytes: r.u64(), Packets: r.u64()}
}

// decodeRecord parses an encoded Record and checks it as sad.New would;
// on error it wipes what it read.
func decodeRecord(b []byte) (Record, error) {
	rd := &reader{b: b}
	var rec Record
	c := &rec.Config
	if string(rd.take(len(recordMagic))) != recordMagic {
		return rec, errRecord
	}
	c.SPI = rd.u32()
	c.Dir, c.Mode = sad.Direction(rd.u8()), sad.Mode(rd.u8())
	c.Local, c.Remote = rd.addr(), rd.addr()
	c.Encap = sad.UDPEncap{SrcPort: rd.u16(), DstPort: rd.u16()}
	c.Suite.Cipher = sad.Cipher(rd.u8())
	c.Suite.KeyBits = int(rd.u16())
	c.Suite.Integ, c.Suite.ICVLen = sad.Integ(rd.u8()), int(rd.u8())
	c.Key = rd.bytes(maxKeyLen)
	c.IntegKey = rd.bytes(maxKeyLen)
	f := rd.u8()
	c.ESN, c.NoReplay, rec.Static = f&flagESN != 0, f&flagNoReplay != 0, f&flagStatic != 0
	c.ReplayWindow = int(rd.u32())
	c.Lifetime.Soft, c.Lifetime.Hard = rd.limits(), rd.limits()
	c.Selectors = rd.selectors()
	c.TTL, c.DF = rd.u8(), sad.DFMode(rd.u8())
	c.ReqID = rd.u32()
	c.Name = string(rd.bytes(maxNameLen))
	rec.Bound = rd.selectors()
	if ns := int64(rd.u64()); ns != 0 {
		rec.Created = time.Unix(0, ns)
	}
	err := rd.err
	if err == nil && len(rd.b) != 0 {
		err = errRecord
	}
	if err == nil && f&^(flagESN|flagNoReplay|flagStatic) != 0 {
		err = errRecord
	}
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		rec.wipe()
		return Record{}, err
	}
	return rec, nil
}

func (r *Record) wipe() {
	clear(r.Config.Key)
	clear(r.Config.IntegKey)
}
