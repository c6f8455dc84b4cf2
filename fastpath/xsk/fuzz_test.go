package xsk

import (
	"testing"
	"unsafe"

	"github.com/xdpsec/xdpsec/fastpath"
	"golang.org/x/sys/unix"
)

const fuzzFrames = 8

// checkLedger verifies the UMEM's bookkeeping against itself: the free
// list has no duplicates and matches the ledger and counters, and every
// frame is somewhere.
func checkLedger(t *testing.T, u *umem, fill int) {
	t.Helper()
	var seen [fuzzFrames]bool
	for _, a := range u.free {
		i := a / fastpath.FrameSize
		if a%fastpath.FrameSize != 0 || i >= fuzzFrames || seen[i] || u.state[i] != stFree {
			t.Fatalf("free list entry %#x: duplicate, unaligned or not free (%v)", a, u.free)
		}
		seen[i] = true
	}
	var lg [stTx + 1]int
	for _, st := range u.state {
		lg[st]++
	}
	if lg[stFree] != len(u.free) || int(u.nfree.Load()) != len(u.free) {
		t.Fatalf("free: ledger %d, list %d, counter %d", lg[stFree], len(u.free), u.nfree.Load())
	}
	if lg[stWorker] != int(u.held.Load()) || lg[stFill] != fill {
		t.Fatalf("held: ledger %d counter %d; fill: ledger %d want %d", lg[stWorker], u.held.Load(), lg[stFill], fill)
	}
	if lg[stFree]+lg[stWorker]+lg[stFill]+lg[stTx] != u.frames {
		t.Fatalf("ledger %v does not cover %d frames", lg, u.frames)
	}
}

// FuzzLedger drives a UMEM's free list through a sequence of allocs,
// frees, double frees and frees of foreign frames, as a confused worker
// might, and checks that the bookkeeping never breaks.
func FuzzLedger(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0x05, 0x02, 0x03})
	f.Add([]byte{0x0c, 0x0c, 0x0c, 0x01, 0x01, 0x02, 0x02, 0x03, 0x07})
	// One UMEM's memory and one foreign frame for every input: allocating
	// and clearing 18 KiB per input cost more than the operations.
	mem := make([]byte, fuzzFrames*fastpath.FrameSize)
	foreign := make([]byte, fastpath.FrameSize)
	f.Fuzz(func(t *testing.T, ops []byte) {
		u := initUMEM(mem, fuzzFrames)
		var held, freed []fastpath.Packet
		var buf [4]fastpath.Packet
		for _, op := range ops {
			arg := int(op >> 2)
			bad := u.bad.Load()
			switch op & 3 {
			case 0: // alloc up to 4
				n := u.alloc(buf[:arg%4+1])
				for _, p := range buf[:n] {
					if p.Off != fastpath.Headroom || p.Len != 0 || len(p.Frame) != fastpath.FrameSize {
						t.Fatalf("alloc gave %+v", p)
					}
				}
				held = append(held, buf[:n]...)
			case 1: // free one the worker holds
				if len(held) == 0 {
					continue
				}
				i := arg % len(held)
				saved := held[i]
				u.release(held[i : i+1])
				if u.bad.Load() != bad {
					t.Fatalf("valid free counted as bad")
				}
				freed = append(freed, saved)
				held = append(held[:i], held[i+1:]...)
			case 2: // free one again
				if len(freed) == 0 {
					continue
				}
				p := freed[arg%len(freed)]
				// Legitimately held again if it was reallocated since.
				if u.state[p.Addr/fastpath.FrameSize] == stWorker {
					continue
				}
				u.release([]fastpath.Packet{p})
				if u.bad.Load() != bad+1 {
					t.Fatalf("double free of %#x accepted", p.Addr)
				}
			case 3: // a frame from elsewhere claiming a UMEM address
				u.release([]fastpath.Packet{{Frame: foreign, Addr: uint64(arg) * 512}})
				if u.bad.Load() != bad+1 {
					t.Fatalf("foreign frame at %#x accepted", arg*512)
				}
			}
			checkLedger(t, u, 0)
		}
	})
}

// FuzzRxDesc feeds arbitrary RX descriptors, as the kernel would write
// them, to the check that turns them into packets: nothing may escape the
// frame or hand out a frame that was not posted for receive.
func FuzzRxDesc(f *testing.F) {
	f.Add(uint64(0x100), uint32(60), uint32(0))
	f.Add(uint64(3*fastpath.FrameSize+256), uint32(1514), uint32(0))
	f.Add(uint64(fastpath.FrameSize-1), uint32(2), uint32(0))
	f.Add(uint64(fuzzFrames*fastpath.FrameSize), uint32(60), uint32(0))
	f.Add(uint64(0x900), uint32(60), uint32(unix.XDP_PKT_CONTD))
	f.Fuzz(func(t *testing.T, addr uint64, n, opts uint32) {
		u := initUMEM(make([]byte, fuzzFrames*fastpath.FrameSize), fuzzFrames)
		// Post all but the last frame for receive, as refill would.
		posted := fuzzFrames - 1
		for range posted {
			a := u.free[len(u.free)-1]
			u.free = u.free[:len(u.free)-1]
			u.state[a/fastpath.FrameSize] = stFill
		}
		u.nfree.Store(int64(len(u.free)))
		var p fastpath.Packet
		d := unix.XDPDesc{Addr: addr, Len: n, Options: opts}
		ok := u.rxPacket(&d, &p)
		if ok {
			u.held.Add(1)
			posted--
			if p.Off < 0 || p.Len <= 0 || p.Off+p.Len > len(p.Frame) || len(p.Frame) != fastpath.FrameSize {
				t.Fatalf("packet %+v escapes its frame", p)
			}
			start := uintptr(unsafe.Pointer(unsafe.SliceData(p.Frame)))
			base := uintptr(unsafe.Pointer(unsafe.SliceData(u.mem)))
			if start-base != uintptr(p.Addr) || p.Addr+uint64(p.Off) != addr {
				t.Fatalf("packet %+v does not match descriptor %#x", p, addr)
			}
			if p.Addr/fastpath.FrameSize == fuzzFrames-1 {
				t.Fatal("handed out a frame that was never posted")
			}
		} else if u.state[min(addr/fastpath.FrameSize, fuzzFrames-1)] == stFree && addr/fastpath.FrameSize < fuzzFrames-1 {
			posted-- // a posted frame with a bad length went back to the free list
		}
		checkLedger(t, u, posted)
	})
}
