package replay

import (
	"encoding/binary"
	"math"
	"testing"
)

// fuzzSizes are the window sizes FuzzWindow picks from (not 2^20: each jump
// there recycles 2^16 slots, which only slows the fuzzer down).
var fuzzSizes = [8]int{32, 64, 96, 128, 1000, 1024, 4096, 65536}

// fuzzStarts are where the window's top may start, so that inputs reach the
// 2^32 boundaries and the top of the 64-bit space quickly.
var fuzzStarts = [4]uint64{0, 1<<32 - 300, 7<<32 - 5, math.MaxUint64 - 1<<33}

// FuzzWindow reads its input as a configuration byte and then a stream of
// operations, runs them on a Window and on the brute-force model, and fails
// on the first difference.
//
// Config byte: bits 0-2 pick the size, bit 3 turns ESN on, bits 4-5 pick the
// starting top (ESN only). Each operation is an opcode byte and its operand:
//
//	op&3 == 0: Check(low32(top) + int8)                     1 byte
//	op&3 == 1: Check(uint32)                                4 bytes
//	op&3 == 2: Check(low32(top) - uint16)                   2 bytes
//	op&3 == 3: Commit(top + int32), or with op&8 Commit(uint64) 4 or 8 bytes
//
// After a Check that passes, op&4 says whether the ICV verified and Commit
// follows.
func FuzzWindow(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzWindow.
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 1<<12 {
			return
		}
		cfg := data[0]
		data = data[1:]
		esn := cfg&8 != 0
		w, err := New(fuzzSizes[cfg&7], esn)
		if err != nil {
			t.Fatal(err)
		}
		m := newModel(uint64(w.Size()), esn)
		if start := fuzzStarts[cfg>>4&3]; esn && start != 0 {
			jumpTo(w, start)
			m.top = start
			m.seen[start] = true
		}
		for op := 0; len(data) > 0; op++ {
			code := data[0]
			data = data[1:]
			var low uint32
			switch code & 3 {
			case 0:
				if len(data) < 1 {
					return
				}
				low = uint32(m.top) + uint32(int8(data[0]))
				data = data[1:]
			case 1:
				if len(data) < 4 {
					return
				}
				low = binary.BigEndian.Uint32(data)
				data = data[4:]
			case 2:
				if len(data) < 2 {
					return
				}
				low = uint32(m.top) - uint32(binary.BigEndian.Uint16(data))
				data = data[2:]
			case 3:
				var seq uint64
				if code&8 != 0 {
					if len(data) < 8 {
						return
					}
					seq = binary.BigEndian.Uint64(data)
					data = data[8:]
				} else {
					if len(data) < 4 {
						return
					}
					seq = m.top + uint64(int64(int32(binary.BigEndian.Uint32(data))))
					data = data[4:]
				}
				if got, want := w.Commit(seq), m.commit(seq); got != want {
					t.Fatalf("op %d: Commit(%#x) = %v, model %v (top %#x)", op, seq, got, want, w.Top())
				}
				if w.Top() != m.top {
					t.Fatalf("op %d: Top() = %#x, model %#x", op, w.Top(), m.top)
				}
				continue
			}
			seq, ok := w.Check(low)
			mseq, mok := m.check(low)
			if seq != mseq || ok != mok {
				t.Fatalf("op %d: Check(%#x) = (%#x, %v), model (%#x, %v) (top %#x)", op, low, seq, ok, mseq, mok, m.top)
			}
			if ok && code&4 != 0 {
				if got, want := w.Commit(seq), m.commit(seq); got != want {
					t.Fatalf("op %d: Commit(%#x) = %v, model %v (top %#x)", op, seq, got, want, w.Top())
				}
				if w.Top() != m.top {
					t.Fatalf("op %d: Top() = %#x, model %#x", op, w.Top(), m.top)
				}
			}
		}
	})
}
