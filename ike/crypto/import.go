package crypto

import "fmt"

// ImportIKEKeys builds IKEKeys from keys another process derived (a
// cluster standby taking over an IKE SA): the seven keys are copied into
// one buffer that Destroy wipes, after their lengths are checked against
// the suite. The caller still owns (and wipes) its slices.
func ImportIKEKeys(s Suite, skd, skai, skar, skei, sker, skpi, skpr []byte) (*IKEKeys, error) {
	if err := s.ValidateIKE(); err != nil {
		return nil, err
	}
	p, err := NewPRF(s.PRF)
	if err != nil {
		return nil, err
	}
	pk, ik, ek := p.KeyLen(), s.IntegKeyLen(), s.EncrKeyLen()
	want := []int{pk, ik, ik, ek, ek, pk, pk}
	in := [][]byte{skd, skai, skar, skei, sker, skpi, skpr}
	total := 0
	for i, b := range in {
		if len(b) != want[i] {
			return nil, fmt.Errorf("ike/crypto: imported IKE key %d: %d octets, want %d for %v", i, len(b), want[i], s)
		}
		total += len(b)
	}
	buf := make([]byte, 0, total)
	for _, b := range in {
		buf = append(buf, b...)
	}
	k := &IKEKeys{Suite: s, buf: buf}
	take := func(n int) []byte {
		b := buf[:n:n]
		buf = buf[n:]
		return b
	}
	k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr = take(pk), take(ik), take(ik), take(ek), take(ek), take(pk), take(pk)
	return k, nil
}
