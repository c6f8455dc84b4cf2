package crypto

import (
	"crypto/sha256"
	"crypto/sha512"
	"strings"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// unhex decodes hex written the way RFCs print it: spaces, newlines and
// any case allowed (testlab.Unhex).
var unhex = testlab.Unhex

func repeat(b byte, n int) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }

var sha256New = sha256.New

var sha512New384 = sha512.New384
