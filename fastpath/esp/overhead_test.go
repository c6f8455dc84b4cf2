package esp

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
)

// TestMaxInnerPerSuite: the largest inner packet each encapsulation
// carries in a 1500-byte WAN, worked out by hand from the RFCs: outer
// header (20 IPv4, 40 IPv6), UDP 8 (RFC 3948), ESP header 8, IV (8 for
// GCM, RFC 4106 §3.1, and ChaCha20-Poly1305, RFC 7634 §2; 16 for CBC,
// RFC 3602 §3; none for NULL), the payload padded with pad length and next
// header to the cipher's block (4 for the stream-like ones, 16 for AES-CBC,
// RFC 4303 §2.4), and the ICV (16, 8 or 12 for GCM; 16 for Poly1305;
// half the hash for HMAC-SHA2, RFC 4868 §2.3). ESN adds nothing on the
// wire (RFC 4303 §2.2.1: the high half is only authenticated).
func TestMaxInnerPerSuite(t *testing.T) {
	for _, tc := range []struct {
		suite  string
		v6     bool // outer IPv6
		udp    bool
		esn    bool
		inner  int // MaxInner(1500) for an IPv4 inner packet
		inner6 int // and for an IPv6 one at WAN 1400 (the 1280 minimum fits)
	}{
		// 1500 - 20 - 8 - 8 - 16 = 1448, a multiple of 4, - 2 = 1446
		{suite: "aes128gcm16", inner: 1446, inner6: 1346},
		{suite: "aes128gcm16", esn: true, inner: 1446, inner6: 1346},
		{suite: "aes128gcm16", udp: true, inner: 1438, inner6: 1338},
		{suite: "aes128gcm16", v6: true, inner: 1426, inner6: 1326},
		{suite: "aes128gcm16", v6: true, udp: true, inner: 1418, inner6: 1318},
		{suite: "aes256gcm16", inner: 1446, inner6: 1346},
		// ICV 8: 1500-36-8 = 1456 -> 1454; ICV 12: 1452 -> 1450
		{suite: "aes128gcm8", inner: 1454, inner6: 1354},
		{suite: "aes128gcm12", inner: 1450, inner6: 1350},
		{suite: "chacha20poly1305", inner: 1446, inner6: 1346},
		{suite: "chacha20poly1305", udp: true, esn: true, inner: 1438, inner6: 1338},
		// CBC: IV 16, ICV 16 (sha256) / 24 (sha384) / 32 (sha512), blocks of 16:
		// 1500-44-16 = 1440 -> 1438; 1500-44-24 = 1432 -> 1424 -> 1422;
		// 1500-44-32 = 1424 -> 1422. At 1400: 1340 -> 1328 -> 1326, ...
		{suite: "aes128-sha256", inner: 1438, inner6: 1326},
		{suite: "aes256-sha384", inner: 1422, inner6: 1326},
		{suite: "aes256-sha512", inner: 1422, inner6: 1310},
		{suite: "aes256-sha512", udp: true, v6: true, inner: 1390, inner6: 1294},
		// NULL: no IV, ICV 16, blocks of 4: 1500-28-16 = 1456 -> 1454
		{suite: "null-sha256", inner: 1454, inner6: 1354},
	} {
		su, err := sad.ParseSuite(tc.suite)
		if err != nil {
			t.Fatal(err)
		}
		local, remote := "192.0.2.1", "192.0.2.2"
		if tc.v6 {
			local, remote = "2001:db8::1", "2001:db8::2"
		}
		c := sad.Config{SPI: 0x100, Dir: sad.Outbound, Mode: sad.Tunnel, ESN: tc.esn,
			Local: netip.MustParseAddr(local), Remote: netip.MustParseAddr(remote), Suite: su,
			Key: bytes.Repeat([]byte{1}, su.KeyLen()), IntegKey: bytes.Repeat([]byte{2}, su.IntegKeyLen())}
		if tc.udp {
			c.Encap = sad.UDPEncap{SrcPort: 4500, DstPort: 4500}
		}
		sa, err := sad.New(c)
		if err != nil {
			t.Fatal(err)
		}
		name := tc.suite
		if tc.v6 {
			name += "/outer6"
		}
		if tc.udp {
			name += "/udp"
		}
		if tc.esn {
			name += "/esn"
		}
		if got := MaxInner(sa, 1500, 20); got != tc.inner {
			t.Errorf("%s: MaxInner(1500) = %d, want %d", name, got, tc.inner)
		}
		if got := MaxInner(sa, 1400, 40); got != tc.inner6 {
			t.Errorf("%s: MaxInner(1400, IPv6 inner) = %d, want %d", name, got, tc.inner6)
		}
		// And the packet Encap really builds is that long.
		for _, n := range []int{tc.inner, tc.inner + 1} {
			inner := benchInner(make([]byte, 2048), n)
			var s Scratch
			m, r := Encap(&s, make([]byte, 2048), inner, sa, 1)
			if r != sad.OK {
				t.Fatalf("%s: Encap: %v", name, r)
			}
			if fits := m <= 1500; fits != (n == tc.inner) {
				t.Errorf("%s: a %d-byte inner packet makes %d bytes of ESP", name, n, m)
			}
		}
	}
}
