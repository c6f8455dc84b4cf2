package message

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode checks that Decode never panics on any input and that what it
// accepts survives decode → encode → decode unchanged (see checkStable).
// Seeds: the strongSwan captures and the hand-built layouts, added here and
// also committed under testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, sc := range scenarios {
		for _, c := range loadCaptures(f, sc) {
			f.Add(c.raw)
		}
	}
	for _, l := range []string{saInitLayout, skLayout, skfLayout} {
		f.Add(unhex(f, l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStable(t, b)
	})
}

// FuzzDecodePayloads does the same for decrypted inner chains. Seeds: the
// decrypted IKE_AUTH and INFORMATIONAL contents of the strongSwan captures
// (opened here with their lab keys, and committed under
// testdata/fuzz/FuzzDecodePayloads) and the hand-built inner layout.
func FuzzDecodePayloads(f *testing.F) {
	f.Add(uint8(PayloadIDi), unhex(f, innerLayout))
	f.Add(uint8(PayloadNone), []byte{})
	for _, sc := range scenarios {
		for _, c := range decryptCaptures(f, sc) {
			f.Add(uint8(c.first), c.plain)
		}
	}
	f.Fuzz(func(t *testing.T, first uint8, b []byte) {
		ps, err := DecodePayloads(PayloadType(first), b)
		if err != nil {
			if ps != nil {
				t.Fatalf("payloads and error %v", err)
			}
			return
		}
		out, next, err := AppendPayloads(nil, ps)
		if err != nil {
			t.Fatalf("decoded chain does not encode: %v\ninput %x", err, b)
		}
		ps2, err := DecodePayloads(next, out)
		if err != nil {
			t.Fatalf("re-encoded chain does not decode: %v\ninput %x\nencoded %x", err, b, out)
		}
		if !reflect.DeepEqual(ps, ps2) {
			t.Fatalf("decode→encode→decode changed the chain\ninput %x\nencoded %x", b, out)
		}
		out2, _, err := AppendPayloads(nil, ps2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}
