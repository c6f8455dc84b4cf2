package gcm

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"testing"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// unhex decodes a hex vector (testlab.Unhex).
var unhex = testlab.Unhex

// implementations lists every code path this build and CPU can run (the
// tag size no longer matters: both paths take 8, 12 and 16); tests run all
// of them so the fallback stays as tested as the fast path. Builds tagged
// purego (make test runs one) force New onto the fallback as well.
func implementations(tagSize int) []implementation {
	if useAsm {
		return []implementation{implAsm, implStdlib}
	}
	return []implementation{implStdlib}
}

func implName(i implementation) string {
	return [...]string{"asm", "stdlib"}[i]
}

// FIPS-197 Appendix A: the last four words of each expanded key.
func TestExpandKeyFIPS197AppendixA(t *testing.T) {
	tests := []struct {
		key, last string
		nr        int
	}{
		{"2b7e151628aed2a6abf7158809cf4f3c", "d014f9a8c9ee2589e13f0cc8b6630ca6", 10},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "e98ba06f448c773c8ecc720401002202", 12},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "fe4890d1e6188d0b046df344706c631e", 14},
	}
	for _, tc := range tests {
		key := unhex(t, tc.key)
		rk, nr := expandKey(key)
		if nr != tc.nr {
			t.Errorf("key %s: nr = %d, want %d", tc.key, nr, tc.nr)
		}
		if !bytes.Equal(rk[0][:], key[:16]) {
			t.Errorf("key %s: round key 0 = %x, want the key's first 16 bytes", tc.key, rk[0])
		}
		if got := hex.EncodeToString(rk[nr][:]); got != tc.last {
			t.Errorf("key %s: last round key = %s, want %s", tc.key, got, tc.last)
		}
	}
}

// gcmVectors: McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)",
// Appendix B, the test cases with 96-bit IVs (1–4, 7–10, 13–16), and four
// vectors from NIST CAVP gcmEncryptExtIV128.
var gcmVectors = []struct {
	name, key, nonce, pt, aad, ct, tag string
}{
	{"MV1", "00000000000000000000000000000000", "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
	{"MV2", "00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
	{"MV3", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
		"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985", "4d5c2af327cd64a62cf35abd2ba6fab4"},
	{"MV4", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
		"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091", "5bc94fbc3221a5db94fae95ae7121a47"},
	{"MV7", "000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "", "cd33b28ac773f74ba00ed1f312572435"},
	{"MV8", "000000000000000000000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "", "98e7247c07f0fe411c267e4384b0f600", "2ff58d80033927ab8ef4d4587514f0fb"},
	{"MV9", "feffe9928665731c6d6a8f9467308308feffe9928665731c", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
		"3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256", "9924a7c8587336bfb118024db8674a14"},
	{"MV10", "feffe9928665731c6d6a8f9467308308feffe9928665731c", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
		"3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710", "2519498e80f1478f37ba55bd6d27618c"},
	{"MV13", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
	{"MV14", "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
	{"MV15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "",
		"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad", "b094dac5d93471bdec1a502270e3cc6c"},
	{"MV16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
		"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", "76fc6ece0f4e1768cddf8853bb2d551b"},
	{"CAVP-empty", "11754cd72aec309bf52f7687212e8957", "3c819d9a9bed087615030b65", "", "", "", "250327c674aaf477aef2675748cf6971"},
	{"CAVP-aad1", "fbe3467cc254f81be8e78d765a2e6333", "c6697351ff4aec29cdbaabf2", "", "67", "", "3659cdc25288bf499ac736c03bfc1159"},
	{"CAVP-aad13", "8a7f9d80d08ad0bd5a20fb689c88f9fc", "88b7b27d800937fda4f47301", "", "50edd0503e0d7b8c91608eb5a1", "", "ed6f65322a4740011f91d2aae22dd44e"},
	{"CAVP-pt16", "7fddb57453c241d03efbed3ac44e371c", "ee283a3fc75575e33efd4887", "d5de42b461646c255c87bd2962d3b9a2", "", "2ccda4a5415cb91e135c2a0f78c9b2fd", "b36d1df9b9d5e596f83e8b7f52971cb3"},
}

// TestKnownAnswers checks every vector on every path with 16-, 12- and
// 8-byte tags: RFC 4106 §6 truncates the same tag, so the shorter tags are
// prefixes of the published one.
func TestKnownAnswers(t *testing.T) {
	for _, v := range gcmVectors {
		key, nonce := unhex(t, v.key), unhex(t, v.nonce)
		pt, aad, ct, tag := unhex(t, v.pt), unhex(t, v.aad), unhex(t, v.ct), unhex(t, v.tag)
		// The transcription is checked against crypto/cipher too, so a typo
		// here cannot hide behind a matching bug in this package.
		block, _ := aes.NewCipher(key)
		std, _ := cipher.NewGCM(block)
		if got := std.Seal(nil, nonce, pt, aad); !bytes.Equal(got, append(append([]byte{}, ct...), tag...)) {
			t.Fatalf("%s: vector disagrees with crypto/cipher: %x", v.name, got)
		}
		for _, ts := range []int{16, 12, 8} {
			want := append(append([]byte{}, ct...), tag[:ts]...)
			for _, impl := range implementations(ts) {
				a, err := newWith(key, ts, impl)
				if err != nil {
					t.Fatal(err)
				}
				got := a.Seal(nil, nonce, pt, aad)
				if !bytes.Equal(got, want) {
					t.Errorf("%s tag %d %s: Seal = %x, want %x", v.name, ts, implName(impl), got, want)
				}
				opened, err := a.Open(nil, nonce, want, aad)
				if err != nil || !bytes.Equal(opened, pt) {
					t.Errorf("%s tag %d %s: Open = %x, %v; want %x", v.name, ts, implName(impl), opened, err, pt)
				}
			}
		}
	}
}

// TestMulSlowIdentity: 1·H = H and H·1 = H for the multiplication New
// builds the assembly's table of powers with (the assembly's known-answer
// tests check the rest).
func TestMulSlowIdentity(t *testing.T) {
	r := newRand(1)
	one := fieldElement{1 << 63, 0}
	for i := 0; i < 50; i++ {
		h := fieldElement{r.Uint64(), r.Uint64()}
		if got := mulSlow(one, h); got != h {
			t.Fatalf("1·H = %x, want %x", got, h)
		}
		if got := mulSlow(h, one); got != h {
			t.Fatalf("H·1 = %x, want %x", got, h)
		}
	}
}

func TestNewRejectsBadParameters(t *testing.T) {
	for _, kl := range []int{0, 1, 15, 17, 20, 31, 33, 64} {
		if _, err := New(make([]byte, kl), 16); err == nil {
			t.Errorf("New accepted a %d-byte key", kl)
		}
	}
	for _, ts := range []int{-1, 0, 4, 7, 9, 10, 11, 13, 14, 15, 17, 32} {
		if _, err := New(make([]byte, 16), ts); err == nil {
			t.Errorf("New accepted tag size %d", ts)
		}
	}
	a, err := New(make([]byte, 32), 12)
	if err != nil {
		t.Fatal(err)
	}
	var aead cipher.AEAD = a
	if aead.NonceSize() != 12 || aead.Overhead() != 12 {
		t.Errorf("NonceSize, Overhead = %d, %d; want 12, 12", aead.NonceSize(), aead.Overhead())
	}
}
