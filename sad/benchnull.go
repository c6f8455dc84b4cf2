package sad

import (
	"errors"
	"fmt"
)

// nullAEAD is the transform of the lab's ceiling (scripts/bench-lab.sh,
// mode ceiling): it moves the bytes from the receive frame to the
// transmit frame and frames them as the AEAD suite would (same nonce,
// same ICV length, zero ICV), but neither encrypts nor authenticates.
// What is left of the data plane's cost without it is the ceiling the
// AES-GCM figures are read against. Reachable only through
// SA.BenchNullCipher, which the daemon calls only for a configuration
// with bench_null_cipher that `xdpsec run --bench` started.
type nullAEAD struct{ icv int }

var errNullShort = errors.New("sad: bench null cipher: shorter than its ICV")

func (nullAEAD) NonceSize() int  { return 12 }
func (n nullAEAD) Overhead() int { return n.icv }

func (n nullAEAD) Seal(dst, nonce, plaintext, aad []byte) []byte {
	ret, out := grow(dst, len(plaintext)+n.icv)
	copy(out, plaintext)
	clear(out[len(plaintext):])
	return ret
}

func (n nullAEAD) Open(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < n.icv {
		return nil, errNullShort
	}
	pt := ciphertext[:len(ciphertext)-n.icv]
	ret, out := grow(dst, len(pt))
	if len(pt) > 0 && &out[0] != &pt[0] { // in place (decap): nothing to move
		copy(out, pt)
	}
	return ret, nil
}

// grow extends in by n bytes, reusing its capacity (no allocation when it
// suffices, as crypto/cipher's AEADs), and returns the whole and the new part.
func grow(in []byte, n int) (head, tail []byte) {
	total := len(in) + n
	if cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}

// BenchNullCipher replaces the SA's AEAD with the bench-only null
// transform (see nullAEAD). Call it before the SA is published; it
// refuses SAs of non-AEAD suites.
func (sa *SA) BenchNullCipher() error {
	if sa.Crypto == nil || sa.Crypto.AEAD == nil {
		return fmt.Errorf("sa %08x: bench_null_cipher needs an AEAD suite", sa.SPI)
	}
	sa.Crypto.AEAD = nullAEAD{icv: sa.Crypto.ICV}
	return nil
}
