package crypto

import (
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/iana"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func issue(t *testing.T, tmpl *x509.Certificate, parent *testCA) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	}
	signer, parentCert := gocrypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func newCA(t *testing.T, name string, parent *testCA) *testCA {
	c, k := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(72 * time.Hour)}, parent)
	return &testCA{c, k}
}

func TestTrustStoreVerify(t *testing.T) {
	root := newCA(t, "xdpsec test root", nil)
	inter := newCA(t, "xdpsec test intermediate", root)
	other := newCA(t, "someone else's root", nil)
	leaf, _ := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "gw"}}, inter)
	clientOnly, _ := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "roadwarrior"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, inter)
	ipsecIKE, _ := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "peer"},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 17}}}, inter)
	past := time.Now().Add(-48 * time.Hour)
	expired, _ := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "old"}, NotBefore: past, NotAfter: past.Add(time.Hour)}, inter)

	ts, err := NewTrustStore(root.cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*x509.Certificate{leaf, clientOnly, ipsecIKE} {
		chain, err := ts.Verify(c, []*x509.Certificate{inter.cert}, time.Time{})
		if err != nil {
			t.Errorf("%s: %v", c.Subject.CommonName, err)
			continue
		}
		if len(chain) != 3 || chain[0] != c || !chain[2].Equal(root.cert) {
			t.Errorf("%s: chain of %d", c.Subject.CommonName, len(chain))
		}
	}
	if _, err := ts.Verify(leaf, nil, time.Time{}); err == nil {
		t.Error("verified without the intermediate")
	}
	if _, err := ts.Verify(expired, []*x509.Certificate{inter.cert}, time.Time{}); err == nil {
		t.Error("expired certificate verified")
	}
	if _, err := ts.Verify(expired, []*x509.Certificate{inter.cert}, past.Add(30*time.Minute)); err != nil {
		t.Errorf("expired certificate at a time it was valid: %v", err)
	}
	ts2, _ := NewTrustStore(other.cert)
	if _, err := ts2.Verify(leaf, []*x509.Certificate{inter.cert}, time.Time{}); err == nil {
		t.Error("verified against an unrelated CA")
	}
	if _, err := NewTrustStore(); err == nil {
		t.Error("empty trust store accepted")
	}
	if _, err := ts.Verify(nil, nil, time.Time{}); err == nil {
		t.Error("nil leaf verified")
	}
}

// rawDN encodes a DN with the given string values as UTF8String, so it
// differs in DER from what crypto/x509 writes (PrintableString).
func rawDN(t *testing.T, attrs ...[2]string) []byte {
	var seq pkix.RDNSequence
	oids := map[string]asn1.ObjectIdentifier{"C": {2, 5, 4, 6}, "O": {2, 5, 4, 10}, "CN": {2, 5, 4, 3}}
	for _, a := range attrs {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oids[a[0]],
			Value: asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte(a[1])}}})
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestMatchID(t *testing.T) {
	ca := newCA(t, "root", nil)
	leaf, _ := issue(t, &x509.Certificate{
		Subject:        pkix.Name{Country: []string{"DE"}, Organization: []string{"Example GmbH"}, CommonName: "gw.example.net"},
		DNSNames:       []string{"gw.example.net", "vpn.example.net"},
		IPAddresses:    []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("2001:db8::1")},
		EmailAddresses: []string{"ops@Example.NET"},
	}, ca)
	ok := []struct {
		t    iana.IDType
		data []byte
	}{
		{iana.IDIPv4Addr, []byte{192, 0, 2, 1}},
		{iana.IDIPv6Addr, net.ParseIP("2001:db8::1")},
		{iana.IDFQDN, []byte("vpn.example.net")},
		{iana.IDFQDN, []byte("GW.Example.Net")},
		{iana.IDRFC822Addr, []byte("ops@example.net")},
		{iana.IDDERASN1DN, leaf.RawSubject},
		{iana.IDDERASN1DN, rawDN(t, [2]string{"C", "DE"}, [2]string{"O", "example  gmbh"}, [2]string{"CN", "GW.example.net"})},
	}
	for _, c := range ok {
		if err := MatchID(leaf, c.t, c.data); err != nil {
			t.Errorf("%v %q: %v", c.t, c.data, err)
		}
	}
	bad := []struct {
		t    iana.IDType
		data []byte
	}{
		{iana.IDIPv4Addr, []byte{192, 0, 2, 2}},
		{iana.IDIPv4Addr, []byte{192, 0, 2}},
		{iana.IDIPv6Addr, net.ParseIP("2001:db8::2")},
		{iana.IDIPv6Addr, []byte{192, 0, 2, 1}},
		{iana.IDFQDN, []byte("example.net")},
		{iana.IDFQDN, []byte("gw.example.net.evil")},
		{iana.IDRFC822Addr, []byte("OPS@example.net")},
		{iana.IDRFC822Addr, []byte("gw.example.net")},
		{iana.IDDERASN1DN, rawDN(t, [2]string{"C", "DE"}, [2]string{"O", "Other GmbH"}, [2]string{"CN", "gw.example.net"})},
		{iana.IDDERASN1DN, rawDN(t, [2]string{"C", "DE"}, [2]string{"O", "Example GmbH"})},
		{iana.IDDERASN1DN, rawDN(t, [2]string{"O", "Example GmbH"}, [2]string{"C", "DE"}, [2]string{"CN", "gw.example.net"})},
		{iana.IDDERASN1DN, []byte{0x30, 0x80}},
		{iana.IDKeyID, []byte("gw")},
		{iana.IDDERASN1GN, []byte{0x30, 0}},
	}
	for _, c := range bad {
		err := MatchID(leaf, c.t, c.data)
		if err == nil {
			t.Errorf("%v %x matched", c.t, c.data)
		}
		if (c.t == iana.IDFQDN || c.t == iana.IDDERASN1DN) && !errors.Is(err, ErrIDMismatch) {
			t.Errorf("%v %x: %v, want ErrIDMismatch", c.t, c.data, err)
		}
	}
	if err := MatchID(nil, iana.IDFQDN, []byte("x")); err == nil {
		t.Error("nil certificate matched")
	}
}

// End to end: a peer signs AUTH with its certificate's key; we verify the
// chain, the identity and the signature.
func TestCertificateAuthentication(t *testing.T) {
	root := newCA(t, "root", nil)
	leaf, key := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "peer"}, DNSNames: []string{"peer.example"}}, root)
	ts, _ := NewTrustStore(root.cert)
	if _, err := ts.Verify(leaf, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := MatchID(leaf, iana.IDFQDN, []byte("peer.example")); err != nil {
		t.Fatal(err)
	}
	octets := []byte("signed octets")
	scheme, _ := SelectSignatureScheme(leaf.PublicKey, SupportedHashAlgorithms())
	auth, err := SignAuth(iana.AuthDigitalSignature, scheme, key, octets)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := VerifyAuth(iana.AuthDigitalSignature, leaf.PublicKey, octets, auth); err != nil || s != SigECDSASHA256 {
		t.Errorf("verify: %v, %v", s, err)
	}
}
