// Package gcm is the AES-GCM AEAD used by the ESP data plane (RFC 4106:
// AES-GCM with an 8-, 12- or 16-octet ICV and a 12-octet nonce built from
// the SA salt and the 8-octet IV). It implements the Galois/Counter Mode of
// NIST SP 800-38D (§6 for GCTR, GHASH and the tag, §7.1/§7.2 for the
// authenticated encryption and decryption functions) restricted to 96-bit
// IVs, and satisfies crypto/cipher.AEAD.
//
// Why it exists: the standard library's GCM spends most of its time on
// per-call overhead for packet-sized inputs. On amd64 CPUs with AVX-512,
// VAES and VPCLMULQDQ this package runs one assembly routine for the
// counter-mode keystream (16 blocks per iteration, masked loads and stores
// for the tail, so short packets never fall back to block-at-a-time code)
// and one for the tag (GHASH over AAD ‖ ciphertext ‖ lengths with up to 32
// blocks per reduction, a packet of up to 224 bytes with at most 16 bytes of
// AAD in a single reduction, the tag mask E(K, J0) computed alongside);
// Seal of up to 224 bytes with up to 16 of AAD (ESP's packets up to ~200
// bytes) makes keystream, tag mask and tag in one call. Open runs in one pass at every length: up to 224 bytes it computes tag
// and keystream together and writes the plaintext only once the tag
// matched; longer messages (with up to 16 bytes of AAD, ESP's 8 or 12) are
// hashed and decrypted 256 bytes at a time, each chunk loaded once, and a
// message whose tag fails has its plaintext zeroed before Open returns.
// (Longer AAD takes the tag first and decrypts after.) Elsewhere,
// and in builds tagged purego (which the tests use to force this path on
// any CPU), it uses crypto/cipher's GCM, which runs in constant time: for
// 12- and 16-byte tags directly, for 8-byte tags by computing the 16-byte
// tag, truncating it and comparing in constant time (two passes on Open).
// No path looks anything up in a table indexed by secret data.
//
// Key material: the AES key schedule is expanded per FIPS-197 §5.2 at New
// and, together with the powers of the hash key H, is read-only afterwards,
// so one *AEAD is safe for concurrent use by any number of goroutines.
package gcm
