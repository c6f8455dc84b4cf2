package ike

import (
	"testing"

	"github.com/xdpsec/xdpsec/ike/message"
)

// FuzzParseProposal checks that the strongSwan proposal parser never panics
// and that whatever it accepts prints back to text it parses to the same
// proposal.
func FuzzParseProposal(f *testing.F) {
	for _, s := range []string{"aes256gcm16-prfsha384-ecp384", "aes128gcm16-x25519", "aes256-sha256-modp2048", "chacha20poly1305-esn-noesn", "aes128-sha1", "-", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, ike bool) {
		proto := message.ProtocolESP
		if ike {
			proto = message.ProtocolIKE
		}
		p, err := ParseProposal(proto, s)
		if err != nil {
			return
		}
		q, err := ParseProposal(proto, p.String())
		if err != nil || q.String() != p.String() {
			t.Fatalf("%q -> %q -> %q (%v)", s, p.String(), q.String(), err)
		}
		_ = p.wire(1, nil, true)
	})
}

// FuzzParseTrafficSelector checks the local_ts/remote_ts parser.
func FuzzParseTrafficSelector(f *testing.F) {
	for _, s := range []string{"198.18.1.0/24", "10.0.0.0/8[tcp/443]", "2001:db8::/32[udp/1-2]", "1.2.3.4[47]", "[", "]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseTrafficSelector(s)
		if err != nil {
			return
		}
		w := ts.wire()
		if w.StartAddr.Compare(w.EndAddr) > 0 || w.StartPort > w.EndPort {
			t.Fatalf("%q: inverted range %+v", s, w)
		}
		if n := len(rangePrefixes(w.StartAddr, w.EndAddr)); n != 1 {
			t.Fatalf("%q: a prefix became %d prefixes", s, n)
		}
	})
}
