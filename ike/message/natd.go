package message

import (
	"crypto/sha1"
	"crypto/subtle"
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

// CheckNAT compares the peer's NAT detection data with the addresses the
// message really travelled between. It returns whether the peer's side and
// our side are behind a NAT, and whether the peer supports NAT-T at all.
func CheckNAT(ps Payloads, spiI, spiR uint64, local, remote netip.AddrPort) (peerNAT, localNAT, supported bool) {
	srcWant := NATDetectionHash(spiI, spiR, remote)
	dstWant := NATDetectionHash(spiI, spiR, local)
	var srcSeen, dstSeen, srcMatch, dstMatch bool
	for p := range ps.All(PayloadNotify) {
		n := p.(*Notify)
		switch n.NotifyType {
		case NotifyNATDetectionSourceIP:
			srcSeen = true
			if subtle.ConstantTimeCompare(n.Data, srcWant) == 1 {
				srcMatch = true
			}
		case NotifyNATDetectionDestinationIP:
			dstSeen = true
			if subtle.ConstantTimeCompare(n.Data, dstWant) == 1 {
				dstMatch = true
			}
		}
	}
	if !srcSeen || !dstSeen {
		return false, false, false
	}
	return !srcMatch, !dstMatch, true
}
