package message

import (
	"os"
	"path/filepath"
	"testing"
)

// The codec is on the slow path; these keep an eye on its allocations.
// Run with -benchmem -benchtime=200ms.

func benchInput(b *testing.B, scenario, file string) []byte {
	raw, err := os.ReadFile(filepath.Join(strongswanDir, scenario, file))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkDecodeIKESAInit(b *testing.B) {
	raw := benchInput(b, "aes128gcm16-prfsha256-x25519", "01-ike_sa_init-m0-request.bin")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeIKESAInit(b *testing.B) {
	m, err := Decode(benchInput(b, "aes128gcm16-prfsha256-x25519", "01-ike_sa_init-m0-request.bin"))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = m.AppendEncode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocateEncrypted(b *testing.B) {
	raw := benchInput(b, "aes128gcm16-prfsha256-x25519", "05-ike_auth-m1-response.bin")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LocateEncrypted(raw, 8, 16); err != nil {
			b.Fatal(err)
		}
	}
}
