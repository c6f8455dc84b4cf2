package fastpath

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
)

// TestPipelineForgedNeverDelivered: ESP packets on both sides of the
// short Open's 224 bytes (beyond it the one-pass Open decrypts before it
// knows the tag) with a flipped bit in the ciphertext or in the tag are
// dropped and counted as authentication failures, nothing reaches the
// LAN, and no plaintext is left in gateway B's frames: a failed Open wipes
// what it decrypted, in place or in the LAN frame the packet was copied
// to (cross).
func TestPipelineForgedNeverDelivered(t *testing.T) {
	for _, cross := range []bool{false, true} {
		for _, n := range []int{100, 300, 1400} {
			t.Run(fmt.Sprintf("cross=%v/size=%d", cross, n), func(t *testing.T) {
				p := newPair(t, pairOpts{cross: cross})
				in := frame("198.18.1.1", "198.18.2.2", n-28, 7)
				p.aLAN.Inject(in)
				p.a.Poll()
				out := collect(p.aWAN)
				if len(out) != 1 {
					t.Fatalf("gateway A sent %d frames, want 1", len(out))
				}
				good := out[0]
				// Ethernet, outer IPv4, ESP header and IV, then ciphertext.
				for _, at := range []int{14 + 20 + 16 + 40, len(good) - 1} {
					bad := append([]byte(nil), good...)
					bad[at] ^= 0x10
					p.bWAN.Inject(bad)
				}
				p.b.Poll()
				if got := collect(p.bLAN); len(got) != 0 {
					t.Fatalf("delivered %d forged packets", len(got))
				}
				if s := p.b.Stats(); s.Drops[sad.ErrAuth] != 2 || s.Counts[Decaps] != 0 {
					t.Fatalf("auth drops %d decaps %d, want 2 and 0", s.Drops[sad.ErrAuth], s.Counts[Decaps])
				}
				// The UDP payload behind its 4-byte id: bytes no ciphertext
				// or zeroed frame holds.
				marker := in[14+28+8 : 14+28+8+48]
				for _, port := range []*MemPort{p.bWAN, p.bLAN} {
					if bytes.Contains(port.pool.mem, marker) {
						t.Fatal("plaintext of a forged packet left in gateway B's frame memory")
					}
				}
				checkNoLeak(t, p)
			})
		}
	}
}
