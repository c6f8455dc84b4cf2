package crypto

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"strings"
	"testing"
)

// unhex decodes hex written the way RFCs print it: spaces, newlines and
// any case allowed.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex fixture %q: %v", s, err)
	}
	return b
}

func repeat(b byte, n int) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }

var sha256New = sha256.New

var sha512New384 = sha512.New384
