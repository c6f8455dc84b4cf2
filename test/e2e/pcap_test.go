package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// readPcap returns the frames of a classic pcap file (what tcpdump -w
// writes), Ethernet link type only. Lengths are bounded by the snap length
// the file declares.
func readPcap(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var gh [24]byte
	if _, err := io.ReadFull(f, gh[:]); err != nil {
		return nil, fmt.Errorf("pcap %s: header: %w", path, err)
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(gh[:]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("pcap %s: not a pcap file", path)
	}
	snap := bo.Uint32(gh[16:])
	if lt := bo.Uint32(gh[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap %s: link type %d, want Ethernet (1)", path, lt)
	}
	if snap == 0 || snap > 1<<18 {
		snap = 1 << 18
	}
	var frames [][]byte
	for {
		var rh [16]byte
		if _, err := io.ReadFull(f, rh[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return frames, nil // tcpdump killed mid-record: keep what is whole
			}
			return nil, err
		}
		n := bo.Uint32(rh[8:])
		if n > snap {
			return nil, fmt.Errorf("pcap %s: record of %d bytes beyond the snap length %d", path, n, snap)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(f, b); err != nil {
			return frames, nil
		}
		frames = append(frames, b)
	}
}

// espFrame is an IPv4 ESP (or ESP-in-UDP) frame seen on the WAN.
type espFrame struct {
	frame  []byte
	espOff int // offset of the SPI in frame
	src    [4]byte
	dst    [4]byte
}

// espFrames picks the IPv4 frames carrying ESP from src to dst, raw or in
// UDP to port natt.
func espFrames(frames [][]byte, src, dst [4]byte, natt uint16) []espFrame {
	var out []espFrame
	for _, fr := range frames {
		if len(fr) < 14+20 || binary.BigEndian.Uint16(fr[12:]) != 0x0800 {
			continue
		}
		ip := fr[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 {
			continue
		}
		if [4]byte(ip[12:16]) != src || [4]byte(ip[16:20]) != dst {
			continue
		}
		off := 14 + ihl
		switch ip[9] {
		case 50:
		case 17:
			if binary.BigEndian.Uint16(ip[ihl+2:]) != natt || len(ip) < ihl+16 {
				continue
			}
			off += 8
		default:
			continue
		}
		out = append(out, espFrame{frame: fr, espOff: off, src: src, dst: dst})
	}
	return out
}

// clone copies the frame for editing.
func (e espFrame) clone() espFrame {
	c := e
	c.frame = append([]byte(nil), e.frame...)
	return c
}

// truncate cuts the frame to keep bytes of ESP and fixes the IP (and UDP)
// lengths and the IPv4 header checksum, so the packet is well formed down
// to its too-short ESP payload.
func (e *espFrame) truncate(keep int) {
	e.frame = e.frame[:e.espOff+keep]
	ip := e.frame[14:]
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] == 17 {
		binary.BigEndian.PutUint16(ip[ihl+4:], uint16(len(ip)-ihl))
		binary.BigEndian.PutUint16(ip[ihl+6:], 0) // no UDP checksum (allowed over IPv4)
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip[:ihl]))
}

func ipv4Checksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
