package esp_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
)

// pcapWriter writes the classic libpcap file format (not pcapng): a
// 24-byte global header, then a 16-byte record header before each frame.
// It exists so tshark can read what Encap produced; nothing else needs it.
type pcapWriter struct {
	f   *os.File
	w   *bufio.Writer
	n   int // frames written
	err error
}

const (
	pcapMagic       = 0xa1b2c3d4 // microsecond timestamps, written in host order
	pcapLinkEther   = 1          // LINKTYPE_ETHERNET
	pcapSnapLen     = 65535
	pcapVersionMaj  = 2
	pcapVersionMin  = 4
	pcapRecordHdr   = 16
	pcapGlobalHdr   = 24
	ethAddrLen      = 6
	ethTypeIPv4     = 0x0800
	ethTypeIPv6     = 0x86dd
	ethernetHdrSize = 14
)

func newPcapWriter(path string) (*pcapWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("pcap %s: %w", path, err)
	}
	p := &pcapWriter{f: f, w: bufio.NewWriter(f)}
	var h [pcapGlobalHdr]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], pcapVersionMaj)
	binary.LittleEndian.PutUint16(h[6:], pcapVersionMin)
	// thiszone and sigfigs stay zero.
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], pcapLinkEther)
	_, p.err = p.w.Write(h[:])
	return p, nil
}

// writeIP frames an IP packet in Ethernet (fixed documentation-style MACs,
// the EtherType from the IP version) and appends it as the next record.
func (p *pcapWriter) writeIP(ip []byte) {
	if p.err != nil {
		return
	}
	frame := make([]byte, ethernetHdrSize+len(ip))
	copy(frame[0:ethAddrLen], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(frame[ethAddrLen:2*ethAddrLen], []byte{0x02, 0, 0, 0, 0, 0x01})
	et := uint16(ethTypeIPv4)
	if len(ip) > 0 && ip[0]>>4 == 6 {
		et = ethTypeIPv6
	}
	binary.BigEndian.PutUint16(frame[12:], et)
	copy(frame[ethernetHdrSize:], ip)

	var h [pcapRecordHdr]byte
	// One frame per millisecond from the epoch: deterministic files.
	binary.LittleEndian.PutUint32(h[0:], uint32(p.n/1000))
	binary.LittleEndian.PutUint32(h[4:], uint32(p.n%1000)*1000)
	binary.LittleEndian.PutUint32(h[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(frame)))
	if _, err := p.w.Write(h[:]); err != nil {
		p.err = err
		return
	}
	if _, err := p.w.Write(frame); err != nil {
		p.err = err
		return
	}
	p.n++
}

// Close flushes and closes the file, returning the first error seen.
func (p *pcapWriter) Close() error {
	if err := p.w.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	if err := p.f.Close(); err != nil && p.err == nil {
		p.err = err
	}
	if p.err != nil {
		return fmt.Errorf("pcap %s: %w", p.f.Name(), p.err)
	}
	return nil
}
