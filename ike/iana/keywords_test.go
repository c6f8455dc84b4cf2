package iana

import "testing"

func TestEncrKeywords(t *testing.T) {
	for _, c := range []struct {
		kw   string
		id   EncrID
		bits int
		ok   bool
		back string // EncrKeyword(id, bits); "" when it is kw
	}{
		{"aes", EncrAESCBC, 128, true, "aes128"},
		{"aes192", EncrAESCBC, 192, true, ""},
		{"aes256gcm16", EncrAESGCM16, 256, true, ""},
		{"aes128gcm12", EncrAESGCM12, 128, true, ""},
		{"aes192gcm8", EncrAESGCM8, 192, true, ""},
		{"aes256gcm", EncrAESGCM16, 256, true, "aes256gcm16"},
		{"chacha20poly1305", EncrChaCha20Poly1305, 256, true, ""},
		{"aes512", 0, 0, false, ""},
		{"aes128gcm7", 0, 0, false, ""},
		{"null", 0, 0, false, ""},
	} {
		id, bits, ok := ParseEncrKeyword(c.kw)
		if id != c.id || bits != c.bits || ok != c.ok {
			t.Errorf("ParseEncrKeyword(%q) = %v, %d, %v", c.kw, id, bits, ok)
		}
		if !ok {
			continue
		}
		want := c.back
		if want == "" {
			want = c.kw
		}
		if got := EncrKeyword(id, bits); got != want {
			t.Errorf("EncrKeyword(%v, %d) = %q, want %q", id, bits, got, want)
		}
	}
	if got := EncrKeyword(Encr3DES, 192); got != "" {
		t.Errorf("EncrKeyword(3DES) = %q", got)
	}
}

func TestIntegPRFGroupKeywords(t *testing.T) {
	for kw, want := range map[string]IntegID{"sha256": IntegHMACSHA2_256_128, "sha2_384": IntegHMACSHA2_384_192, "sha512": IntegHMACSHA2_512_256} {
		if id, ok := ParseIntegKeyword(kw); !ok || id != want {
			t.Errorf("ParseIntegKeyword(%q) = %v, %v", kw, id, ok)
		}
	}
	if _, ok := ParseIntegKeyword("md5"); ok {
		t.Error("md5 accepted")
	}
	if IntegKeyword(IntegHMACSHA2_384_192) != "sha384" || IntegKeyword(IntegNone) != "" {
		t.Error("IntegKeyword")
	}
	for kw, want := range map[string]PRFID{"prfsha256": PRFHMACSHA2_256, "prfsha2_384": PRFHMACSHA2_384, "prfsha512": PRFHMACSHA2_512} {
		if id, ok := ParsePRFKeyword(kw); !ok || id != want {
			t.Errorf("ParsePRFKeyword(%q) = %v, %v", kw, id, ok)
		}
	}
	for _, kw := range []string{"prf", "prfmd5", "sha256", "pr"} {
		if _, ok := ParsePRFKeyword(kw); ok {
			t.Errorf("ParsePRFKeyword(%q) accepted", kw)
		}
	}
	if PRFKeyword(PRFHMACSHA2_512) != "prfsha512" || PRFKeyword(PRFHMACMD5) != "prf" {
		t.Error("PRFKeyword")
	}
	if p, ok := PRFOfInteg(IntegHMACSHA2_384_192); !ok || p != PRFHMACSHA2_384 {
		t.Error("PRFOfInteg")
	}
	for _, c := range []struct {
		kw         string
		id         GroupID
		additional bool
	}{{"x25519", GroupCurve25519, false}, {"curve25519", GroupCurve25519, false}, {"ecp384", GroupECP384, false}, {"mlkem768", GroupMLKEM768, true}} {
		if id, add, ok := ParseGroupKeyword(c.kw); !ok || id != c.id || add != c.additional {
			t.Errorf("ParseGroupKeyword(%q) = %v, %v, %v", c.kw, id, add, ok)
		}
	}
	if _, _, ok := ParseGroupKeyword(""); ok {
		t.Error("empty group keyword accepted")
	}
	if GroupKeyword(GroupCurve25519) != "x25519" || GroupKeyword(GroupMODP1024) != "" {
		t.Error("GroupKeyword")
	}
}
