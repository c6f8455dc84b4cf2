package ike

import (
	"fmt"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/sad"
)

// The key logs write rows Wireshark reads from two files of its
// configuration directory: "ikev2_decryption_table" (IKE SA keys, so the
// SK payloads decrypt) and "esp_sa" (ESP keys). They exist for debugging
// interop problems and are off by default: anyone who reads them can
// decrypt the logged SAs. Ciphers Wireshark cannot decrypt (ChaCha20-
// Poly1305) are left out.

func wiresharkIKEEncr(s crypto.Suite) string {
	switch s.Encr {
	case iana.EncrAESCBC:
		return fmt.Sprintf("AES-CBC-%d [RFC3602]", s.KeyBits)
	case iana.EncrAESGCM8:
		return fmt.Sprintf("AES-GCM-%d with 8 octet ICV [RFC5282]", s.KeyBits)
	case iana.EncrAESGCM12:
		return fmt.Sprintf("AES-GCM-%d with 12 octet ICV [RFC5282]", s.KeyBits)
	case iana.EncrAESGCM16:
		return fmt.Sprintf("AES-GCM-%d with 16 octet ICV [RFC5282]", s.KeyBits)
	}
	return "" // Wireshark cannot decrypt it (ChaCha20-Poly1305)
}

func wiresharkIKEInteg(i iana.IntegID) string {
	switch i {
	case iana.IntegHMACSHA2_256_128:
		return "HMAC_SHA2_256_128 [RFC4868]"
	case iana.IntegHMACSHA2_384_192:
		return "HMAC_SHA2_384_192 [RFC4868]"
	case iana.IntegHMACSHA2_512_256:
		return "HMAC_SHA2_512_256 [RFC4868]"
	}
	return "NONE [RFC4306]"
}

// logIKEKeys writes the IKE SA's row of Wireshark's ikev2_decryption_table.
func (e *Engine) logIKEKeys(sa *ikeSA) {
	if e.keylogIKE == nil {
		return
	}
	k := sa.keys
	encr := wiresharkIKEEncr(k.Suite)
	if encr == "" {
		return
	}
	fmt.Fprintf(e.keylogIKE, "%016x,%016x,%x,%x,\"%s\",%x,%x,\"%s\"\n",
		sa.spiI, sa.spiR, k.SKei, k.SKer, encr, k.SKai, k.SKar, wiresharkIKEInteg(k.Suite.Integ))
}

// logESPKeys writes one SA's row of Wireshark's esp_sa table.
func (e *Engine) logESPKeys(sa *ikeSA, c *childSA, dir sad.Direction, s sad.Suite, k crypto.ESPKeys) {
	if e.keylogESP == nil {
		return
	}
	var encr, integ string
	switch s.Cipher {
	case sad.CipherAESGCM:
		encr, integ = fmt.Sprintf("AES-GCM with %d octet ICV [RFC4106]", s.ICV()), "NULL"
	case sad.CipherAESCBC:
		encr = "AES-CBC [RFC3602]"
		switch s.Integ {
		case sad.IntegHMACSHA256:
			integ = "HMAC-SHA-256-128 [RFC4868]"
		case sad.IntegHMACSHA384:
			integ = "HMAC-SHA-384-192 [RFC4868]"
		case sad.IntegHMACSHA512:
			integ = "HMAC-SHA-512-256 [RFC4868]"
		}
	default:
		return
	}
	src, dst, spi := sa.remote.Addr(), sa.local.Addr(), c.inSPI
	if dir == sad.Outbound {
		src, dst, spi = dst, src, c.outSPI
	}
	fam := "IPv4"
	if src.Is6() {
		fam = "IPv6"
	}
	fmt.Fprintf(e.keylogESP, "\"%s\",\"%s\",\"%s\",\"0x%08x\",\"%s\",\"0x%x\",\"%s\",\"0x%x\"\n",
		fam, src, dst, spi, encr, k.Encr, integ, k.Integ)
}
