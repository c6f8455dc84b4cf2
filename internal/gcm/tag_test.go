package gcm

import "testing"

// TestTagEqual: for each tag size, equal tags compare equal and a tag with
// any one bit flipped, at every position, does not; bytes of want past the
// tag size do not matter.
func TestTagEqual(t *testing.T) {
	for _, n := range []int{8, 12, 16, 13} {
		var want [16]byte
		for i := range want {
			want[i] = byte(0xa5 ^ i*37)
		}
		tag := append([]byte(nil), want[:n]...)
		if !tagEqual(&want, tag) {
			t.Fatalf("size %d: equal tags differ", n)
		}
		w2 := want
		for i := n; i < 16; i++ {
			w2[i] ^= 0xff
		}
		if !tagEqual(&w2, tag) {
			t.Fatalf("size %d: bytes past the tag were compared", n)
		}
		for i := 0; i < n; i++ {
			for b := 0; b < 8; b++ {
				tag[i] ^= 1 << b
				if tagEqual(&want, tag) {
					t.Fatalf("size %d: bit %d of byte %d flipped, still equal", n, b, i)
				}
				tag[i] ^= 1 << b
			}
		}
	}
}
