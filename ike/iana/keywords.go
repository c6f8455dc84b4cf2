package iana

import "strconv"

// strongSwan's proposal keywords for the numbers of this package, as
// swanctl.conf's proposals and esp_proposals write them: the one table that
// IKE proposals (ike.ParseProposal) and static SAs (sad.ParseSuite) both
// read. Each parser keeps its own grammar (keywords joined by '-', which
// transform types it takes); the spelling of a transform is here.

// aesModes are the AES encryption transforms with the keyword suffix after
// "aes<bits>".
var aesModes = []struct {
	id     EncrID
	suffix string
}{
	{EncrAESCBC, ""},
	{EncrAESGCM8, "gcm8"},
	{EncrAESGCM12, "gcm12"},
	{EncrAESGCM16, "gcm16"},
}

// aesKeyBits are the AES key sizes a keyword may name.
var aesKeyBits = []int{128, 192, 256}

// EncrKeyword is the keyword of an encryption transform with its key size:
// aes128, aes256gcm16, chacha20poly1305. It is "" for a transform without
// one.
func EncrKeyword(id EncrID, keyBits int) string {
	if id == EncrChaCha20Poly1305 {
		return "chacha20poly1305"
	}
	for _, m := range aesModes {
		if m.id == id {
			return "aes" + strconv.Itoa(keyBits) + m.suffix
		}
	}
	return ""
}

// ParseEncrKeyword reads an encryption keyword: those EncrKeyword writes
// for 128-, 192- and 256-bit AES and for ChaCha20-Poly1305, and
// strongSwan's short forms aes (aes128) and aes<bits>gcm (aes<bits>gcm16).
// A caller that takes only the written forms compares with EncrKeyword.
func ParseEncrKeyword(kw string) (id EncrID, keyBits int, ok bool) {
	switch kw {
	case "aes":
		return EncrAESCBC, 128, true
	case "chacha20poly1305":
		return EncrChaCha20Poly1305, 256, true
	}
	for _, bits := range aesKeyBits {
		for _, m := range aesModes {
			if kw == EncrKeyword(m.id, bits) {
				return m.id, bits, true
			}
		}
		if kw == "aes"+strconv.Itoa(bits)+"gcm" {
			return EncrAESGCM16, bits, true
		}
	}
	return 0, 0, false
}

// integKeywords are the integrity keywords, the written form first and
// strongSwan's other spelling second.
var integKeywords = []struct {
	id        IntegID
	kw, alias string
}{
	{IntegHMACSHA2_256_128, "sha256", "sha2_256"},
	{IntegHMACSHA2_384_192, "sha384", "sha2_384"},
	{IntegHMACSHA2_512_256, "sha512", "sha2_512"},
}

// IntegKeyword is the keyword of an integrity transform (sha256), "" for
// one without.
func IntegKeyword(id IntegID) string {
	for _, k := range integKeywords {
		if k.id == id {
			return k.kw
		}
	}
	return ""
}

// ParseIntegKeyword reads an integrity keyword (sha256 or sha2_256, ...).
func ParseIntegKeyword(kw string) (IntegID, bool) {
	for _, k := range integKeywords {
		if kw == k.kw || kw == k.alias {
			return k.id, true
		}
	}
	return 0, false
}

// prfIntegs pairs each PRF with the integrity transform of the same hash:
// its keyword is "prf" and the integrity keyword (prfsha256, prfsha2_256),
// and strongSwan derives an IKE proposal's PRFs from its integrity
// keywords when it names none.
var prfIntegs = []struct {
	prf   PRFID
	integ IntegID
}{
	{PRFHMACSHA2_256, IntegHMACSHA2_256_128},
	{PRFHMACSHA2_384, IntegHMACSHA2_384_192},
	{PRFHMACSHA2_512, IntegHMACSHA2_512_256},
}

// PRFOfInteg is the PRF of the integrity transform's hash.
func PRFOfInteg(id IntegID) (PRFID, bool) {
	for _, p := range prfIntegs {
		if p.integ == id {
			return p.prf, true
		}
	}
	return 0, false
}

// PRFKeyword is the keyword of a PRF (prfsha256), "prf" for one without.
func PRFKeyword(id PRFID) string {
	for _, p := range prfIntegs {
		if p.prf == id {
			return "prf" + IntegKeyword(p.integ)
		}
	}
	return "prf"
}

// ParsePRFKeyword reads a PRF keyword (prfsha256 or prfsha2_256, ...).
func ParsePRFKeyword(kw string) (PRFID, bool) {
	if len(kw) > 3 && kw[:3] == "prf" {
		if i, ok := ParseIntegKeyword(kw[3:]); ok {
			return PRFOfInteg(i)
		}
	}
	return 0, false
}

// groupKeywords are the key exchange keywords. additional marks the methods
// strongSwan takes only as an additional key exchange (ke1_mlkem768, RFC
// 9370), not as the key exchange of IKE_SA_INIT or of a Child SA.
var groupKeywords = []struct {
	id         GroupID
	kw, alias  string
	additional bool
}{
	{GroupMODP2048, "modp2048", "", false},
	{GroupMODP3072, "modp3072", "", false},
	{GroupMODP4096, "modp4096", "", false},
	{GroupECP256, "ecp256", "", false},
	{GroupECP384, "ecp384", "", false},
	{GroupECP521, "ecp521", "", false},
	{GroupCurve25519, "x25519", "curve25519", false},
	{GroupMLKEM768, "mlkem768", "", true},
	{GroupMLKEM1024, "mlkem1024", "", true},
}

// GroupKeyword is the keyword of a key exchange method (x25519,
// mlkem768), "" for one without.
func GroupKeyword(id GroupID) string {
	for _, k := range groupKeywords {
		if k.id == id {
			return k.kw
		}
	}
	return ""
}

// ParseGroupKeyword reads a key exchange keyword (x25519 or curve25519,
// ...); additional is true for a method strongSwan takes only as an
// additional key exchange.
func ParseGroupKeyword(kw string) (id GroupID, additional, ok bool) {
	for _, k := range groupKeywords {
		if kw == k.kw || (k.alias != "" && kw == k.alias) {
			return k.id, k.additional, true
		}
	}
	return 0, false, false
}
