package message

import (
	"crypto/sha1"
	"encoding/binary"
	"net/netip"
)

// NATDetectionHash is the data of a NAT_DETECTION_SOURCE_IP or
// NAT_DETECTION_DESTINATION_IP notification: SHA-1(SPIi | SPIr | IP |
// Port) of the address the message leaves from or goes to (RFC 7296
// §2.23). In IKE_SA_INIT's request SPIr is zero.
func NATDetectionHash(spiI, spiR uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [18]byte
	binary.BigEndian.PutUint64(b[:8], spiI)
	binary.BigEndian.PutUint64(b[8:16], spiR)
	h.Write(b[:16])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[16:], ap.Port())
	h.Write(b[16:])
	return h.Sum(nil)
}
