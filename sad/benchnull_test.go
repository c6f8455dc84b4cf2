package sad

import (
	"bytes"
	"net/netip"
	"testing"
)

func benchSA(t *testing.T, suite string) *SA {
	t.Helper()
	s, err := ParseSuite(suite)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "b", SPI: 0x1001, Dir: Outbound, Mode: Tunnel, Suite: s,
		Key:    make([]byte, s.KeyLen()),
		Local:  netip.MustParseAddr("192.0.2.1"),
		Remote: netip.MustParseAddr("192.0.2.2")}
	if s.IntegKeyLen() > 0 {
		cfg.IntegKey = make([]byte, s.IntegKeyLen())
	}
	sa, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// The null transform frames as the suite does (ICV length, in-place
// Open), moves the bytes unchanged, allocates nothing, and is refused for
// non-AEAD suites.
func TestBenchNullCipher(t *testing.T) {
	sa := benchSA(t, "aes128gcm16")
	if err := sa.BenchNullCipher(); err != nil {
		t.Fatal(err)
	}
	a := sa.Crypto.AEAD
	if a.Overhead() != 16 || a.NonceSize() != 12 {
		t.Fatalf("overhead %d nonce %d", a.Overhead(), a.NonceSize())
	}
	pt := []byte("sixty-four bytes of an inner packet, more or less, to be sealed.")
	nonce := make([]byte, 12)
	buf := make([]byte, 0, 256)
	ct := a.Seal(buf, nonce, pt, nil)
	if len(ct) != len(pt)+16 || !bytes.Equal(ct[:len(pt)], pt) || !bytes.Equal(ct[len(pt):], make([]byte, 16)) {
		t.Fatalf("seal: %x", ct)
	}
	got, err := a.Open(ct[:0], nonce, ct, nil)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := a.Open(nil, nonce, ct[:15], nil); err == nil {
		t.Fatal("open of a short ciphertext succeeded")
	}
	if n := testing.AllocsPerRun(100, func() {
		ct = a.Seal(buf[:0], nonce, pt, nil)
		_, _ = a.Open(ct[:0], nonce, ct, nil)
	}); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
	if err := benchSA(t, "aes128-sha256").BenchNullCipher(); err == nil {
		t.Fatal("null cipher accepted for a non-AEAD suite")
	}
}
