package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/packet"
	"github.com/xdpsec/xdpsec/sad"
)

// The benchmarks measure the ESP transform next to the bare AEAD on the
// same sizes, in the same run, so the ratio survives a noisy machine.
// Sizes are inner IP packet sizes; IMIX cycles 7×64, 4×570, 1×1518.

var benchSizes = []int{64, 512, 1400}

var imix = []int{64, 64, 64, 64, 64, 64, 64, 570, 570, 570, 570, 1518}

// benchSuites are the suites benchmarked; the targets are set on the first.
var benchSuites = []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha256"}

// benchInner writes an IPv4/UDP packet of total length n into b.
func benchInner(b []byte, n int) []byte {
	p := b[:n]
	for i := range p {
		p[i] = byte(i)
	}
	p[0], p[1] = 0x45, 0
	binary.BigEndian.PutUint16(p[2:], uint16(n))
	binary.BigEndian.PutUint16(p[4:], 1)
	p[6], p[7] = 0x40, 0
	p[8], p[9] = 64, packet.ProtoUDP
	p[10], p[11] = 0, 0
	copy(p[12:16], []byte{198, 18, 1, 10})
	copy(p[16:20], []byte{198, 19, 1, 10})
	binary.BigEndian.PutUint16(p[10:], packet.IPv4HeaderChecksum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 5201)
	binary.BigEndian.PutUint16(p[24:], uint16(n-20))
	p[26], p[27] = 0, 0
	return p
}

func benchSA(tb testing.TB, suite string, dir sad.Direction) *sad.SA {
	su, err := sad.ParseSuite(suite)
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, su.KeyLen())
	for i := range key {
		key[i] = byte(i + 1)
	}
	ik := make([]byte, su.IntegKeyLen())
	for i := range ik {
		ik[i] = byte(0x40 + i)
	}
	sa, err := sad.New(sad.Config{
		SPI: 0x1000, Dir: dir, Mode: sad.Tunnel,
		Local:  netip.MustParseAddr("192.0.2.1"),
		Remote: netip.MustParseAddr("192.0.2.2"),
		Suite:  su, Key: key, IntegKey: ik,
		ReplayWindow: 4096,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return sa
}

func sizeName(n int) string {
	if n < 0 {
		return "imix"
	}
	return fmt.Sprint(n)
}

// BenchmarkAEADSeal is the baseline: bare AES-GCM-128 Seal, 8-byte AAD.
func BenchmarkAEADSeal(b *testing.B) {
	for _, n := range append(benchSizes, -1) {
		b.Run("size="+sizeName(n), func(b *testing.B) {
			blk, _ := aes.NewCipher(make([]byte, 16))
			g, _ := cipher.NewGCM(blk)
			buf := make([]byte, 2048)
			out := make([]byte, 2048)
			nonce := make([]byte, 12)
			ad := make([]byte, 8)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sz := n
				if n < 0 {
					sz = imix[i%len(imix)]
				}
				binary.BigEndian.PutUint64(nonce[4:], uint64(i))
				g.Seal(out[:0], nonce, buf[:sz], ad)
			}
		})
	}
}

// BenchmarkAEADOpen is the baseline: bare AES-GCM-128 Open.
func BenchmarkAEADOpen(b *testing.B) {
	for _, n := range append(benchSizes, -1) {
		b.Run("size="+sizeName(n), func(b *testing.B) {
			blk, _ := aes.NewCipher(make([]byte, 16))
			g, _ := cipher.NewGCM(blk)
			nonce := make([]byte, 12)
			ad := make([]byte, 8)
			sizes := []int{n}
			if n < 0 {
				sizes = imix
			}
			cts := make([][]byte, len(sizes))
			for i, sz := range sizes {
				cts[i] = g.Seal(nil, nonce, make([]byte, sz), ad)
			}
			out := make([]byte, 2048)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := g.Open(out[:0], nonce, cts[i%len(cts)], ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncap is ESP encapsulation, tunnel mode, from the inner packet
// into a separate frame (the crossing case: the AEAD's output is the copy).
func BenchmarkEncap(b *testing.B) {
	for _, suite := range benchSuites {
		for _, n := range append(benchSizes, -1) {
			b.Run(suite+"/size="+sizeName(n), func(b *testing.B) {
				sa := benchSA(b, suite, sad.Outbound)
				sizes := []int{n}
				if n < 0 {
					sizes = imix
				}
				inners := make([][]byte, len(sizes))
				for i, sz := range sizes {
					inners[i] = benchInner(make([]byte, 2048), sz)
				}
				out := make([]byte, 2048)
				var s Scratch
				var ttlSum [4]byte
				copy(ttlSum[:], inners[0][8:12])
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					in := inners[i%len(inners)]
					// Restore TTL and checksum: the forwarder decrements it.
					copy(in[8:12], ttlSum[:])
					seq, _ := sa.ReserveSeq(1)
					if _, r := Encap(&s, out, in, sa, seq); r != sad.OK {
						b.Fatal(r)
					}
				}
			})
		}
	}
}

// BenchmarkDecap is ESP decapsulation in place with the replay window on.
// A pool of packets with fresh sequence numbers is opened once each and
// rebuilt, off the clock, when used up.
func BenchmarkDecap(b *testing.B) {
	const pool = 512
	for _, suite := range benchSuites {
		for _, n := range append(benchSizes, -1) {
			b.Run(suite+"/size="+sizeName(n), func(b *testing.B) {
				out := benchSA(b, suite, sad.Outbound)
				in := benchSA(b, suite, sad.Inbound)
				sizes := []int{n}
				if n < 0 {
					sizes = imix
				}
				var s Scratch
				frames := make([][]byte, pool)
				lens := make([]int, pool)
				inner := make([]byte, 2048)
				fill := func() {
					for i := range frames {
						if frames[i] == nil {
							frames[i] = make([]byte, 2048)
						}
						p := benchInner(inner, sizes[i%len(sizes)])
						seq, _ := out.ReserveSeq(1)
						m, r := Encap(&s, frames[i], p, out, seq)
						if r != sad.OK {
							b.Fatal(r)
						}
						lens[i] = m
					}
				}
				fill()
				var o Outer
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					k := i % pool
					if k == 0 && i > 0 {
						b.StopTimer()
						fill()
						b.StartTimer()
					}
					pkt := frames[k][:lens[k]]
					if r := ParseOuter(pkt, 4500, &o); r != sad.OK {
						b.Fatal(r)
					}
					if _, _, r := Decap(&s, pkt, &o, in); r != sad.OK {
						b.Fatal(r)
					}
				}
			})
		}
	}
}
