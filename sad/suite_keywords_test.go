package sad

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// TestParseSuiteKeywords reads testdata/suite_keywords.txt: ParseSuite's
// answer (the suite, its String, or the error) for 209 spellings, recorded
// before the keywords moved to ike/iana's table shared with IKE proposals.
// The move changed no answer; a keyword change must show up here.
func TestParseSuiteKeywords(t *testing.T) {
	f, err := os.Open("testdata/suite_keywords.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		in, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("line %d: no tab", n+1)
		}
		in, err1 := strconv.Unquote(in)
		want, err2 := strconv.Unquote(want)
		if err1 != nil || err2 != nil {
			t.Fatalf("line %d: %v %v", n+1, err1, err2)
		}
		su, err := ParseSuite(in)
		got := fmt.Sprintf("%d/%d/%d/%d %s", su.Cipher, su.KeyBits, su.Integ, su.ICVLen, su)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != want {
			t.Errorf("ParseSuite(%q) = %s, want %s", in, got, want)
		}
	}
	if n < 200 {
		t.Fatalf("only %d cases", n)
	}
}

func TestSuiteOf(t *testing.T) {
	for _, c := range []struct {
		encr  iana.EncrID
		bits  int
		integ iana.IntegID
		want  string // the suite's String, or the error
	}{
		{iana.EncrAESGCM8, 128, iana.IntegNone, "aes128gcm8"},
		{iana.EncrAESGCM12, 192, iana.IntegNone, "aes192gcm12"},
		{iana.EncrAESGCM16, 256, iana.IntegHMACSHA2_256_128, "aes256gcm16"},
		{iana.EncrChaCha20Poly1305, 256, iana.IntegNone, "chacha20poly1305"},
		{iana.EncrAESCBC, 256, iana.IntegHMACSHA2_384_192, "aes256-sha384"},
		{iana.EncrAESCBC, 128, iana.IntegNone, "integrity NONE not supported by the data plane"},
		{iana.EncrAESCBC, 128, iana.IntegHMACSHA196, "integrity AUTH_HMAC_SHA1_96 not supported by the data plane"},
		{iana.EncrAESCTR, 128, iana.IntegNone, "cipher ENCR_AES_CTR not supported by the data plane"},
	} {
		su, err := SuiteOf(c.encr, c.bits, c.integ)
		got := su.String()
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("SuiteOf(%v, %d, %v) = %q, want %q", c.encr, c.bits, c.integ, got, c.want)
		}
	}
}
