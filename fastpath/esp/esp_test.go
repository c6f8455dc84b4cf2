package esp

import (
	"bytes"
	"testing"

	"github.com/xdpsec/xdpsec/sad"
)

// TestEncapDecapSmoke is the quick check that the benchmark set-up itself
// round-trips; the full matrix lives in roundtrip_test.go.
func TestEncapDecapSmoke(t *testing.T) {
	for _, suite := range benchSuites {
		out := benchSA(t, suite, sad.Outbound)
		in := benchSA(t, suite, sad.Inbound)
		var s Scratch
		for _, n := range []int{28, 64, 511, 1400} {
			p := benchInner(make([]byte, 2048), n)
			want := append([]byte(nil), p...)
			want[8] -= 2 // forwarded by both gateways: TTL decremented twice
			frame := make([]byte, 2048)
			seq, _ := out.ReserveSeq(1)
			m, r := Encap(&s, frame, p, out, seq)
			if r != sad.OK {
				t.Fatalf("%s/%d: encap: %v", suite, n, r)
			}
			var o Outer
			if r := ParseOuter(frame[:m], 4500, &o); r != sad.OK {
				t.Fatalf("%s/%d: parse: %v", suite, n, r)
			}
			off, k, r := Decap(&s, frame[:m], &o, in)
			if r != sad.OK {
				t.Fatalf("%s/%d: decap: %v", suite, n, r)
			}
			got := frame[off : off+k]
			// The checksum was updated along with the TTL; compare the rest.
			if !bytes.Equal(got[:8], want[:8]) || got[8] != want[8] || !bytes.Equal(got[12:], want[12:]) {
				t.Fatalf("%s/%d: inner packet changed", suite, n)
			}
			if _, _, r := Decap(&s, frame[:m], &o, in); r != sad.ErrReplay {
				t.Fatalf("%s/%d: second decap: %v, want replay", suite, n, r)
			}
		}
	}
}

func TestEncapLenMaxInner(t *testing.T) {
	for _, suite := range benchSuites {
		sa := benchSA(t, suite, sad.Outbound)
		var s Scratch
		for n := 28; n < 1500; n += 37 {
			p := benchInner(make([]byte, 2048), n)
			m, r := Encap(&s, make([]byte, 2048), p, sa, 1)
			if r != sad.OK || m != EncapLen(sa, n, 20) {
				t.Fatalf("%s/%d: Encap made %d bytes, EncapLen says %d", suite, n, m, EncapLen(sa, n, 20))
			}
		}
		for _, mtu := range []int{576, 1280, 1400, 1500, 9000} {
			mi := MaxInner(sa, mtu, 20)
			if EncapLen(sa, mi, 20) > mtu || EncapLen(sa, mi+1, 20) <= mtu {
				t.Fatalf("%s: MaxInner(%d) = %d is not the largest fit", suite, mtu, mi)
			}
		}
	}
}
