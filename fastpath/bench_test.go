package fastpath

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"testing"
)

// The pipeline benchmarks run whole worker polls of 64 packets through
// in-memory ports, next to the bare AES-GCM-128 Seal/Open of the inner
// packet size in the same run. One op is one packet. Whether the copy of
// each frame into the port's memory is on the clock is the rx flavour
// (see rxModes below).

var pipeSizes = []int{64, 512, 1400, -1}

var pipeIMIX = []int{64, 64, 64, 64, 64, 64, 64, 570, 570, 570, 570, 1518}

func pipeName(n int) string {
	if n < 0 {
		return "size=imix"
	}
	return fmt.Sprintf("size=%d", n)
}

// innerFrames returns the Ethernet frames whose IP packets have the sizes
// of the benchmark (IPv4/UDP, one flow).
func innerFrames(n int) [][]byte {
	sizes := []int{n}
	if n < 0 {
		sizes = pipeIMIX
	}
	var fs [][]byte
	for _, sz := range sizes {
		fs = append(fs, frame("198.18.1.10", "198.18.2.20", sz-28, 1))
	}
	return fs
}

func BenchmarkBareSeal(b *testing.B) {
	for _, n := range pipeSizes {
		b.Run(pipeName(n), func(b *testing.B) {
			blk, _ := aes.NewCipher(make([]byte, 16))
			g, _ := cipher.NewGCM(blk)
			fs := innerFrames(n)
			out := make([]byte, 2048)
			nonce, ad := make([]byte, 12), make([]byte, 8)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				binary.BigEndian.PutUint64(nonce[4:], uint64(i))
				g.Seal(out[:0], nonce, fs[i%len(fs)][14:], ad)
			}
		})
	}
}

func BenchmarkBareOpen(b *testing.B) {
	for _, n := range pipeSizes {
		b.Run(pipeName(n), func(b *testing.B) {
			blk, _ := aes.NewCipher(make([]byte, 16))
			g, _ := cipher.NewGCM(blk)
			fs := innerFrames(n)
			nonce, ad := make([]byte, 12), make([]byte, 8)
			cts := make([][]byte, len(fs))
			for i, f := range fs {
				cts[i] = g.Seal(nil, nonce, f[14:], ad)
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

// The pipeline benchmarks come in two flavours of receive:
//
//   - rx=staged: the frames are already in port memory when the clock
//     runs, as a zero-copy AF_XDP NIC DMAs them, and the worker only
//     takes descriptors off its ring. This is the worker's own cost.
//   - rx=copy: every frame is copied into port memory on the clock, as a
//     copy-mode AF_XDP socket (veth, drivers without zero copy) does on
//     the receiving CPU.
//
// Staged rings hold stageN frames (a ring's worth), refilled off the
// clock. The copy flavour injects from a pool of copyPool ESP frames (a
// NIC ring or two) through ports of the default size.
const (
	stageN   = 256
	copyPool = 2048
)

var rxModes = []string{"staged", "copy"}

// BenchmarkPipelineEncap: LAN RX → SPD → SA → seq → encap+seal → WAN TX.
func BenchmarkPipelineEncap(b *testing.B) {
	for _, rx := range rxModes {
		for _, n := range pipeSizes {
			b.Run("rx="+rx+"/"+pipeName(n), func(b *testing.B) {
				o := pairOpts{frames: 2 * stageN, depth: stageN}
				if rx == "copy" {
					o = pairOpts{}
				}
				p := newPair(b, o)
				p.aWAN.Sink = true
				fs := innerFrames(n)
				batch := make([][]byte, stageN)
				for j := range batch {
					batch[j] = fs[j%len(fs)]
				}
				b.ReportAllocs()
				b.ResetTimer()
				if rx == "copy" {
					for i := 0; i < b.N; i += Batch {
						p.aLAN.InjectBatch(batch[:Batch])
						p.a.Poll()
					}
				} else {
					for i := 0; i < b.N; i += stageN {
						b.StopTimer()
						p.aLAN.InjectBatch(batch)
						b.StartTimer()
						for p.a.Poll() > 0 {
						}
					}
				}
				b.StopTimer()
				if s := p.a.Stats(); s.Counts[Encaps] == 0 || s.Drops != [len(s.Drops)]uint64{} {
					b.Fatalf("stats %+v", s)
				}
			})
		}
	}
}

// BenchmarkPipelineDecap: WAN RX → SPI → SA → replay → open → decap →
// selectors → LAN TX. ESP frames come from gateway A, made off the clock
// in pools of stageN with ever-increasing sequence numbers.
func BenchmarkPipelineDecap(b *testing.B) {
	for _, rx := range rxModes {
		for _, n := range pipeSizes {
			b.Run("rx="+rx+"/"+pipeName(n), func(b *testing.B) {
				o, pool := pairOpts{frames: 2 * stageN, depth: stageN}, stageN
				if rx == "copy" {
					o, pool = pairOpts{}, copyPool
				}
				p := newPair(b, o)
				p.bLAN.Sink = true
				fs := innerFrames(n)
				esp := make([][]byte, 0, pool)
				// The ESP frames are copied into buffers made once: a fresh
				// slice per frame per refill kept the garbage collector
				// busy, and its pauses and write barriers landed on the
				// clock (more so the bigger the frames).
				bufs := make([][]byte, pool+Batch)
				for j := range bufs {
					bufs[j] = make([]byte, 0, 2048)
				}
				in := make([][]byte, Batch)
				k := 0
				refill := func() {
					esp = esp[:0]
					for len(esp) < pool {
						for j := range in {
							in[j] = fs[k%len(fs)]
							k++
						}
						p.aLAN.InjectBatch(in)
						p.a.Poll()
						p.aWAN.Drain(func(f []byte) { esp = append(esp, append(bufs[len(esp)][:0], f...)) })
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				if rx == "copy" {
					m := pool
					for i := 0; i < b.N; i += Batch {
						if m+Batch > len(esp) {
							b.StopTimer()
							refill()
							m = 0
							b.StartTimer()
						}
						p.bWAN.InjectBatch(esp[m : m+Batch])
						m += Batch
						p.b.Poll()
					}
				} else {
					for i := 0; i < b.N; i += stageN {
						b.StopTimer()
						refill()
						p.bWAN.InjectBatch(esp)
						b.StartTimer()
						for p.b.Poll() > 0 {
						}
					}
				}
				b.StopTimer()
				if s := p.b.Stats(); s.Counts[Decaps] == 0 || s.Drops != [len(s.Drops)]uint64{} {
					b.Fatalf("stats %+v", s)
				}
			})
		}
	}
}
