package cluster

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// IKE SA records: an established IKE SA as ike.IKESAState exports it,
// under /xdpsec/CLUSTER/groups/GROUP/ike/SPIi-SPIr (16 hex digits each),
// in a strict binary format (fuzzed), sealed like the Child SA records.

// ikeRecordMagic starts an encoded IKE SA record (version 1).
const ikeRecordMagic = "xik1"

// Limits a decoder holds an IKE SA record to.
const (
	maxIKEKeyLen   = 64  // the longest PRF or cipher key, salt included
	maxNonceLen    = 256 // RFC 7296 §3.9
	maxRespFrags   = 128 // fragments of one cached response
	maxRespLen     = 65535
	maxIDLen       = 4096 // a DN
	maxIKEChildren = 1024
	maxTSData      = 255
)

// IKE SA record flags.
const (
	ikeFlagInitiator = 1 << iota
	ikeFlagNATLocal
	ikeFlagNATRemote
	ikeFlagNATHere
	ikeFlagFragment
	ikeFlagAll = 1<<iota - 1
)

func (k keys) ikes(g string) string { return k.group(g) + "ike/" }
func (k keys) ikeSA(g string, spiI, spiR uint64) string {
	return fmt.Sprintf("%s%016x-%016x", k.ikes(g), spiI, spiR)
}

func appendAddrPort(b []byte, a netip.AddrPort) []byte {
	return binary.BigEndian.AppendUint16(appendAddr(b, a.Addr()), a.Port())
}

func appendTime(b []byte, t time.Time) []byte {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(ns))
}

func appendTS(b []byte, ts []message.TrafficSelector) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(ts)))
	for _, t := range ts {
		b = append(b, byte(t.Type), t.IPProtocol)
		b = binary.BigEndian.AppendUint16(b, t.StartPort)
		b = binary.BigEndian.AppendUint16(b, t.EndPort)
		b = appendAddr(b, t.StartAddr)
		b = appendAddr(b, t.EndAddr)
		b = appendBytes(b, t.Data)
	}
	return b
}

// encodeIKE writes s in the IKE SA record format; the caller wipes the
// result once sealed (it holds the keys). A Deleted state is not a record.
func encodeIKE(s *ike.IKESAState) ([]byte, error) {
	keys := [][]byte{s.SKd, s.SKai, s.SKar, s.SKei, s.SKer, s.SKpi, s.SKpr}
	tooBig := s.Deleted || len(s.Connection) > maxNameLen || len(s.Ni) > maxNonceLen || len(s.Nr) > maxNonceLen ||
		len(s.LastResponse) > maxRespFrags || len(s.RemoteID.Data) > maxIDLen || len(s.Children) > maxIKEChildren
	for _, k := range keys {
		tooBig = tooBig || len(k) > maxIKEKeyLen
	}
	tooBig = tooBig || len(s.PendingRequest) > maxRespFrags
	for _, m := range slices.Concat(s.LastResponse, s.PendingRequest) {
		tooBig = tooBig || len(m) > maxRespLen
	}
	for _, c := range s.Children {
		tooBig = tooBig || len(c.Name) > maxNameLen || len(c.LocalTS) > maxSelectors || len(c.RemoteTS) > maxSelectors
		for _, t := range append(append([]message.TrafficSelector(nil), c.LocalTS...), c.RemoteTS...) {
			tooBig = tooBig || len(t.Data) > maxTSData
		}
	}
	if tooBig {
		return nil, fmt.Errorf("ike sa %016x_i %016x_r: not a record (deleted or too large)", s.SPIi, s.SPIr)
	}
	b := make([]byte, 0, 512)
	b = append(b, ikeRecordMagic...)
	var f byte
	for i, v := range []bool{s.Initiator, s.NATLocal, s.NATRemote, s.NATHere, s.Fragment} {
		if v {
			f |= 1 << i
		}
	}
	b = append(b, f)
	b = appendBytes(b, []byte(s.Connection))
	b = binary.BigEndian.AppendUint64(b, s.SPIi)
	b = binary.BigEndian.AppendUint64(b, s.SPIr)
	b = appendAddrPort(b, s.Local)
	b = appendAddrPort(b, s.Remote)
	for _, v := range []uint16{uint16(s.Encr), s.KeyBits, uint16(s.Integ), uint16(s.PRF), uint16(s.DH)} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	b = append(b, s.AddKE[:]...)
	b = append(b, s.AddKESlots)
	for _, k := range keys {
		b = appendBytes(b, k)
	}
	b = appendBytes(b, s.Ni)
	b = appendBytes(b, s.Nr)
	b = binary.BigEndian.AppendUint32(b, s.NextMID)
	b = binary.BigEndian.AppendUint32(b, s.PeerMID)
	for _, ms := range [][][]byte{s.LastResponse, s.PendingRequest} {
		b = append(b, byte(len(ms)))
		for _, m := range ms {
			b = appendBytes(b, m)
		}
	}
	b = append(b, byte(s.RemoteID.Type))
	b = appendBytes(b, s.RemoteID.Data)
	b = appendTime(b, s.Created)
	b = appendTime(b, s.Established)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Children)))
	for _, c := range s.Children {
		b = appendBytes(b, []byte(c.Name))
		b = binary.BigEndian.AppendUint32(b, c.InSPI)
		b = binary.BigEndian.AppendUint32(b, c.OutSPI)
		b = binary.BigEndian.AppendUint32(b, c.ReqID)
		b = append(b, byte(c.Mode))
		b = binary.BigEndian.AppendUint16(b, c.Encap.SrcPort)
		b = binary.BigEndian.AppendUint16(b, c.Encap.DstPort)
		for _, v := range []uint16{uint16(c.Encr), c.KeyBits, uint16(c.Integ), uint16(c.DH)} {
			b = binary.BigEndian.AppendUint16(b, v)
		}
		var esn byte
		if c.ESN {
			esn = 1
		}
		b = append(b, esn)
		b = appendTS(b, c.LocalTS)
		b = appendTS(b, c.RemoteTS)
		b = appendTime(b, c.Created)
	}
	return b, nil
}

func (r *reader) addrPort() netip.AddrPort {
	a := r.addr()
	p := r.u16()
	if !a.IsValid() {
		r.err = errRecord
	}
	return netip.AddrPortFrom(a, p)
}

func (r *reader) time() time.Time {
	if ns := int64(r.u64()); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

func (r *reader) ts() []message.TrafficSelector {
	n := int(r.u16())
	if n > maxSelectors {
		r.err = errRecord
		return nil
	}
	var out []message.TrafficSelector
	for i := 0; i < n && r.err == nil; i++ {
		t := message.TrafficSelector{Type: message.TSType(r.u8()), IPProtocol: r.u8(), StartPort: r.u16(), EndPort: r.u16()}
		t.StartAddr, t.EndAddr = r.addr(), r.addr()
		if d := r.bytes(maxTSData); len(d) > 0 {
			t.Data = d
		}
		out = append(out, t)
	}
	return out
}

// decodeIKE parses an encoded IKE SA record; on error it wipes what it
// read.
func decodeIKE(b []byte) (s ike.IKESAState, err error) {
	rd := &reader{b: b}
	defer func() {
		if err != nil {
			s.Wipe()
			s = ike.IKESAState{}
		}
	}()
	if string(rd.take(len(ikeRecordMagic))) != ikeRecordMagic {
		return s, errRecord
	}
	f := rd.u8()
	s.Initiator, s.NATLocal, s.NATRemote, s.NATHere, s.Fragment =
		f&ikeFlagInitiator != 0, f&ikeFlagNATLocal != 0, f&ikeFlagNATRemote != 0, f&ikeFlagNATHere != 0, f&ikeFlagFragment != 0
	s.Connection = string(rd.bytes(maxNameLen))
	s.SPIi, s.SPIr = rd.u64(), rd.u64()
	s.Local, s.Remote = rd.addrPort(), rd.addrPort()
	s.Encr, s.KeyBits, s.Integ, s.PRF, s.DH = iana.EncrID(rd.u16()), rd.u16(), iana.IntegID(rd.u16()), iana.PRFID(rd.u16()), iana.GroupID(rd.u16())
	copy(s.AddKE[:], rd.take(len(s.AddKE)))
	s.AddKESlots = rd.u8()
	for _, k := range []*[]byte{&s.SKd, &s.SKai, &s.SKar, &s.SKei, &s.SKer, &s.SKpi, &s.SKpr} {
		*k = rd.bytes(maxIKEKeyLen)
	}
	s.Ni, s.Nr = rd.bytes(maxNonceLen), rd.bytes(maxNonceLen)
	s.NextMID, s.PeerMID = rd.u32(), rd.u32()
	for _, ms := range []*[][]byte{&s.LastResponse, &s.PendingRequest} {
		n := int(rd.u8())
		if n > maxRespFrags {
			return s, errRecord
		}
		for i := 0; i < n && rd.err == nil; i++ {
			*ms = append(*ms, rd.bytes(maxRespLen))
		}
	}
	s.RemoteID.Type = iana.IDType(rd.u8())
	s.RemoteID.Data = rd.bytes(maxIDLen)
	s.Created, s.Established = rd.time(), rd.time()
	nc := int(rd.u16())
	if nc > maxIKEChildren {
		return s, errRecord
	}
	for i := 0; i < nc && rd.err == nil; i++ {
		c := ike.ChildSAState{Name: string(rd.bytes(maxNameLen)), InSPI: rd.u32(), OutSPI: rd.u32(), ReqID: rd.u32(), Mode: sad.Mode(rd.u8())}
		c.Encap = sad.UDPEncap{SrcPort: rd.u16(), DstPort: rd.u16()}
		c.Encr, c.KeyBits, c.Integ, c.DH = iana.EncrID(rd.u16()), rd.u16(), iana.IntegID(rd.u16()), iana.GroupID(rd.u16())
		switch rd.u8() {
		case 0:
		case 1:
			c.ESN = true
		default:
			return s, errRecord
		}
		c.LocalTS, c.RemoteTS = rd.ts(), rd.ts()
		c.Created = rd.time()
		s.Children = append(s.Children, c)
	}
	switch {
	case rd.err != nil:
		return s, rd.err
	case len(rd.b) != 0, f&^ikeFlagAll != 0, s.Connection == "", s.SPIi == 0, s.SPIr == 0:
		return s, errRecord
	}
	return s, nil
}
