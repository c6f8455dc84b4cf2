package crypto

// Zero overwrites b with zeros. Use it on every secret byte slice once it is
// no longer needed: shared secrets, SKEYSEED, derived keys, pre-shared keys
// read from configuration. It does not reach copies made elsewhere.
func Zero(b []byte) {
	clear(b)
}
