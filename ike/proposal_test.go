package ike

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

func TestParseProposal(t *testing.T) {
	ike, esp := message.ProtocolIKE, message.ProtocolESP
	tests := []struct {
		proto message.ProtocolID
		in    string
		want  Proposal
		str   string
	}{
		{ike, "aes256gcm16-prfsha384-ecp384", Proposal{Protocol: ike, Encr: []Encr{{iana.EncrAESGCM16, 256}}, PRF: []iana.PRFID{iana.PRFHMACSHA2_384}, DH: []iana.GroupID{iana.GroupECP384}}, "aes256gcm16-prfsha384-ecp384"},
		{ike, "aes128-sha256-modp2048", Proposal{Protocol: ike, Encr: []Encr{{iana.EncrAESCBC, 128}}, Integ: []iana.IntegID{iana.IntegHMACSHA2_256_128}, PRF: []iana.PRFID{iana.PRFHMACSHA2_256}, DH: []iana.GroupID{iana.GroupMODP2048}}, "aes128-sha256-prfsha256-modp2048"},
		{ike, "AES256-SHA512-SHA384-prfsha256-x25519-modp3072", Proposal{Protocol: ike, Encr: []Encr{{iana.EncrAESCBC, 256}}, Integ: []iana.IntegID{iana.IntegHMACSHA2_512_256, iana.IntegHMACSHA2_384_192}, PRF: []iana.PRFID{iana.PRFHMACSHA2_256}, DH: []iana.GroupID{iana.GroupCurve25519, iana.GroupMODP3072}}, "aes256-sha512-sha384-prfsha256-x25519-modp3072"},
		// strongSwan reads an integrity keyword after an AEAD as the PRF.
		{ike, "aes128gcm16-sha256-ecp256", Proposal{Protocol: ike, Encr: []Encr{{iana.EncrAESGCM16, 128}}, PRF: []iana.PRFID{iana.PRFHMACSHA2_256}, DH: []iana.GroupID{iana.GroupECP256}}, "aes128gcm16-prfsha256-ecp256"},
		{ike, "chacha20poly1305-prfsha512-ecp521-modp4096", Proposal{Protocol: ike, Encr: []Encr{{iana.EncrChaCha20Poly1305, 256}}, PRF: []iana.PRFID{iana.PRFHMACSHA2_512}, DH: []iana.GroupID{iana.GroupECP521, iana.GroupMODP4096}}, "chacha20poly1305-prfsha512-ecp521-modp4096"},
		{esp, "aes128gcm16-x25519", Proposal{Protocol: esp, Encr: []Encr{{iana.EncrAESGCM16, 128}}, DH: []iana.GroupID{iana.GroupCurve25519}}, "aes128gcm16-x25519"},
		{esp, "aes128gcm16-aes256gcm12-esn-noesn", Proposal{Protocol: esp, Encr: []Encr{{iana.EncrAESGCM16, 128}, {iana.EncrAESGCM12, 256}}, ESN: []bool{true, false}}, "aes128gcm16-aes256gcm12-esn-noesn"},
		{esp, "aes256-sha384", Proposal{Protocol: esp, Encr: []Encr{{iana.EncrAESCBC, 256}}, Integ: []iana.IntegID{iana.IntegHMACSHA2_384_192}}, "aes256-sha384"},
		{esp, "aes-sha256-ecp256", Proposal{Protocol: esp, Encr: []Encr{{iana.EncrAESCBC, 128}}, Integ: []iana.IntegID{iana.IntegHMACSHA2_256_128}, DH: []iana.GroupID{iana.GroupECP256}}, "aes128-sha256-ecp256"},
		{esp, "aes192gcm8", Proposal{Protocol: esp, Encr: []Encr{{iana.EncrAESGCM8, 192}}}, "aes192gcm8"},
	}
	for _, tc := range tests {
		got, err := ParseProposal(tc.proto, tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("%q: String %q, want %q", tc.in, s, tc.str)
		}
	}
	bad := []struct {
		proto message.ProtocolID
		in    string
	}{
		{ike, ""}, {ike, "aes128gcm16-ecp256"}, {ike, "aes128-sha256"}, {ike, "aes128-modp2048"},
		{ike, "aes128-aes128gcm16-sha256-modp2048"}, {ike, "aes128-sha1-modp2048"}, {ike, "3des-sha256-modp2048"},
		{ike, "aes128-sha256-modp1024"}, {ike, "aes128-sha256-modp2048-esn"}, {esp, "aes128gcm16-sha256"},
		{esp, "aes128-prfsha256"}, {esp, "aes256"}, {esp, "aes128gcm16--x25519"}, {message.ProtocolAH, "sha256"},
	}
	for _, tc := range bad {
		if p, err := ParseProposal(tc.proto, tc.in); err == nil {
			t.Errorf("%v %q: accepted as %v", tc.proto, tc.in, p)
		}
	}
	ps, err := ParseProposals(ike, "aes128gcm16-prfsha256-x25519, aes256-sha256-modp2048")
	if err != nil || len(ps) != 2 || ps[1].String() != "aes256-sha256-prfsha256-modp2048" {
		t.Fatalf("ParseProposals: %v %v", ps, err)
	}
}

func TestSelectProposal(t *testing.T) {
	parse := func(proto message.ProtocolID, s string) []Proposal { return mustProposals(t, proto, s) }
	wire := func(ps []Proposal, withDH bool) []message.Proposal {
		return wireSA(ps, []byte{1, 2, 3, 4}, withDH).Proposals
	}
	tests := []struct {
		name         string
		proto        message.ProtocolID
		ours, theirs string
		withDH       bool
		want         string // Selected.String, "" for no proposal
		num          uint8
	}{
		{"our order wins", message.ProtocolIKE, "aes256gcm16-prfsha384-ecp384, aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-x25519, aes256gcm16-prfsha384-ecp384", true, "aes256gcm16-prfsha384-ecp384", 2},
		{"algorithm order within", message.ProtocolIKE, "aes256-aes128-sha384-sha256-prfsha256-modp3072-modp2048", "aes128-aes256-sha256-sha384-prfsha256-modp2048-modp3072", true, "aes256-sha384-prfsha256-modp3072", 1},
		{"no common group", message.ProtocolIKE, "aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-ecp256", true, "", 0},
		{"no common cipher", message.ProtocolESP, "aes128gcm16", "aes256gcm16", false, "", 0},
		{"esn", message.ProtocolESP, "aes128gcm16-esn-noesn", "aes128gcm16-noesn-esn", false, "aes128gcm16-esn", 1},
		{"esn refused", message.ProtocolESP, "aes128gcm16-esn", "aes128gcm16", false, "", 0},
		{"pfs group ignored in IKE_AUTH", message.ProtocolESP, "aes128gcm16-x25519", "aes128gcm16", false, "aes128gcm16-noesn", 1},
		{"pfs group must match in CREATE_CHILD_SA", message.ProtocolESP, "aes128gcm16-x25519", "aes128gcm16-ecp256", true, "", 0},
	}
	for _, tc := range tests {
		sel, err := selectProposal(parse(tc.proto, tc.ours), wire(parse(tc.proto, tc.theirs), tc.withDH || tc.proto == message.ProtocolIKE), tc.withDH)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: selected %v", tc.name, sel)
			}
			continue
		}
		if err != nil || sel.String() != tc.want || sel.Number != tc.num {
			t.Errorf("%s: got %v #%d (%v), want %s #%d", tc.name, sel, sel.Number, err, tc.want, tc.num)
		}
	}
	// A proposal with a transform type we do not know is skipped whole.
	theirs := wire(parse(message.ProtocolIKE, "aes128gcm16-prfsha256-x25519"), true)
	theirs[0].Transforms = append(theirs[0].Transforms, message.Transform{Type: iana.TransformAddKE1, ID: 36})
	if sel, err := selectProposal(parse(message.ProtocolIKE, "aes128gcm16-prfsha256-x25519"), theirs, true); err == nil {
		t.Errorf("selected %v with an unknown transform type", sel)
	}
}

func TestParseTrafficSelector(t *testing.T) {
	tests := []struct {
		in   string
		want TrafficSelector
	}{
		{"198.18.1.0/24", TrafficSelector{Prefix: netip.MustParsePrefix("198.18.1.0/24")}},
		{"198.18.1.7/24", TrafficSelector{Prefix: netip.MustParsePrefix("198.18.1.0/24")}},
		{"198.18.1.7", TrafficSelector{Prefix: netip.MustParsePrefix("198.18.1.7/32")}},
		{"2001:db8::/32[udp]", TrafficSelector{Prefix: netip.MustParsePrefix("2001:db8::/32"), Proto: 17}},
		{"10.0.0.0/8[tcp/443]", TrafficSelector{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Proto: 6, Ports: sad.PortRange{Lo: 443, Hi: 443}}},
		{"10.0.0.0/8[47]", TrafficSelector{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Proto: 47}},
		{"10.0.0.0/8[udp/1000-2000]", TrafficSelector{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Proto: 17, Ports: sad.PortRange{Lo: 1000, Hi: 2000}}},
	}
	for _, tc := range tests {
		got, err := ParseTrafficSelector(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0.0/8[tcp", "10.0.0.0/8[foo]", "10.0.0.0/8[tcp/70000]", "10.0.0.0/8[tcp/9-1]", "10.0.0.0/8[256]"} {
		if ts, err := ParseTrafficSelector(bad); err == nil {
			t.Errorf("%q accepted as %+v", bad, ts)
		}
	}
}

func TestRangePrefixes(t *testing.T) {
	tests := []struct {
		start, end string
		want       []string
	}{
		{"10.0.0.0", "10.0.0.255", []string{"10.0.0.0/24"}},
		{"10.0.0.1", "10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"2001:db8::", "2001:db8::ffff", []string{"2001:db8::/112"}},
		{"192.0.2.7", "192.0.2.7", []string{"192.0.2.7/32"}},
	}
	for _, tc := range tests {
		var got []string
		for _, p := range rangePrefixes(netip.MustParseAddr(tc.start), netip.MustParseAddr(tc.end)) {
			got = append(got, p.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s-%s: %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
	// The worst IPv6 range stays bounded.
	if n := len(rangePrefixes(netip.MustParseAddr("::1"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"))); n > maxPrefixesPerRange {
		t.Fatalf("%d prefixes", n)
	}
}

func TestIntersectTS(t *testing.T) {
	a := mustTS(t, "10.0.0.0/16[tcp]")[0].wire()
	b := mustTS(t, "10.0.5.0/24[tcp/80]")[0].wire()
	r, ok := intersectTS(a, b)
	if !ok || r.StartAddr != netip.MustParseAddr("10.0.5.0") || r.EndAddr != netip.MustParseAddr("10.0.5.255") || r.StartPort != 80 || r.EndPort != 80 || r.IPProtocol != 6 {
		t.Fatalf("%+v %v", r, ok)
	}
	for _, pair := range [][2]string{{"10.0.0.0/16[tcp]", "10.0.0.0/16[udp]"}, {"10.0.0.0/16", "10.1.0.0/16"}, {"10.0.0.0/16", "2001:db8::/32"}, {"10.0.0.0/8[tcp/1-10]", "10.0.0.0/8[tcp/11-20]"}} {
		if r, ok := intersectTS(mustTS(t, pair[0])[0].wire(), mustTS(t, pair[1])[0].wire()); ok {
			t.Errorf("%v: %+v", pair, r)
		}
	}
}

func TestParseIdentity(t *testing.T) {
	for in, want := range map[string]Identity{
		"gw.example":       {iana.IDFQDN, []byte("gw.example")},
		"admin@gw.example": {iana.IDRFC822Addr, []byte("admin@gw.example")},
		"192.0.2.1":        {iana.IDIPv4Addr, []byte{192, 0, 2, 1}},
		"2001:db8::1":      {iana.IDIPv6Addr, netip.MustParseAddr("2001:db8::1").AsSlice()},
	} {
		got, err := ParseIdentity(in)
		if err != nil || !reflect.DeepEqual(got, want) || got.String() != in {
			t.Errorf("%q: %+v (%v) %q", in, got, err, got.String())
		}
	}
}

func TestSignatureMethodWithoutRFC7427(t *testing.T) {
	octets := []byte("signed octets of a test")
	for _, tc := range []struct {
		key  string
		want iana.AuthMethod
	}{{"rsa", iana.AuthRSASignature}, {"ecdsa", iana.AuthECDSASHA256P256}, {"ecdsa384", iana.AuthECDSASHA384P384}} {
		k := genKey(t, tc.key)
		m, s, err := signatureMethod(k.Public(), nil)
		if err != nil || m != tc.want {
			t.Fatalf("%s: method %v (%v), want %v", tc.key, m, err, tc.want)
		}
		sig, err := crypto.SignAuth(m, s, k, octets)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := crypto.VerifyAuth(m, k.Public(), octets, sig); err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		// With RFC 7427 announced, method 14.
		if m, _, err := signatureMethod(k.Public(), crypto.SupportedHashAlgorithms()); err != nil || m != iana.AuthDigitalSignature {
			t.Fatalf("%s: %v %v", tc.key, m, err)
		}
	}
}
