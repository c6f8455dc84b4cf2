package spd

import (
	"encoding/binary"
	"net/netip"
	"unsafe"
)

// addrRepr mirrors the layout of netip.Addr: the address as a big-endian
// 128-bit number in two words (IPv4 in its IPv4-mapped IPv6 form) and a
// handle standing for family and zone.
type addrRepr struct {
	hi, lo uint64
	z      unsafe.Pointer
}

// reprOK says addrRepr matches netip.Addr on this Go release. Reading the
// words directly saves As16's store and reload of 16 bytes through the
// stack, a store-forwarding stall that cost about 7 ns per address when
// measured; if a release changes the layout, the check fails and words
// falls back to As16 (TestAddrRepr then fails, to say so).
var reprOK = checkRepr()

func checkRepr() bool {
	if unsafe.Sizeof(netip.Addr{}) != unsafe.Sizeof(addrRepr{}) {
		return false
	}
	for _, s := range []string{"2001:db8:1:2:3:4:5:6", "ffee:ddcc:bbaa:9988:7766:5544:3322:1100", "::ffff:192.0.2.1", "192.0.2.1", "::", "fe80::1%eth0"} {
		a := netip.MustParseAddr(s)
		hi, lo := wordsSlow(&a)
		r := (*addrRepr)(unsafe.Pointer(&a))
		if r.hi != hi || r.lo != lo {
			return false
		}
	}
	return true
}

// words returns a's 128 bits, IPv4 as ::ffff:a.b.c.d, so an IPv4 address
// is uint32(lo).
func words(a *netip.Addr) (hi, lo uint64) {
	if reprOK {
		// Safe: same size and layout, checked at start-up; read only.
		r := (*addrRepr)(unsafe.Pointer(a))
		return r.hi, r.lo
	}
	return wordsSlow(a)
}

func wordsSlow(a *netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// keyWords returns a prefix or address in the index's own 128-bit form:
// left-aligned, IPv4 in the top 32 bits of hi, so that a /n mask is the
// same operation for both families.
func keyWords(a netip.Addr) (hi, lo uint64) {
	h, l := words(&a)
	if a.Is4() {
		return uint64(uint32(l)) << 32, 0
	}
	return h, l
}
