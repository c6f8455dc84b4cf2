package crypto

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/ike/iana"
)

// TrustStore verifies peer certificates against the CA certificates the
// operator configured, and nothing else: no system roots are consulted.
type TrustStore struct {
	roots *x509.CertPool
	n     int
}

// NewTrustStore returns a store trusting exactly cas. It refuses an empty
// list, because crypto/x509 would fall back to the system roots.
func NewTrustStore(cas ...*x509.Certificate) (*TrustStore, error) {
	if len(cas) == 0 {
		return nil, errors.New("ike/crypto: a trust store needs at least one CA certificate")
	}
	pool := x509.NewCertPool()
	for i, c := range cas {
		if c == nil {
			return nil, fmt.Errorf("ike/crypto: CA certificate %d is nil", i)
		}
		pool.AddCert(c)
	}
	return &TrustStore{roots: pool, n: len(cas)}, nil
}

// Verify builds a chain from leaf through intermediates (the peer's other
// CERT payloads) to one of the configured CAs, valid at time at (zero means
// now), and returns it leaf first. Extended key usage is not restricted:
// deployed IKE certificates carry serverAuth, clientAuth, ipsecIKE or none
// (RFC 4945 §5.1.3.12 even advises CAs to leave EKU out), and strongSwan does
// not insist on any either. Name checks are MatchID's job.
func (t *TrustStore) Verify(leaf *x509.Certificate, intermediates []*x509.Certificate, at time.Time) ([]*x509.Certificate, error) {
	if t == nil || t.roots == nil {
		return nil, errors.New("ike/crypto: no trust store configured")
	}
	if leaf == nil {
		return nil, errors.New("ike/crypto: no end-entity certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		if c != nil {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("ike/crypto: certificate %q: %w", leaf.Subject, err)
	}
	return chains[0], nil
}

// ErrIDMismatch is returned (wrapped) when an identity is not bound to the
// certificate.
var ErrIDMismatch = errors.New("ike/crypto: identity does not match the certificate")

// MatchID checks that the identity of an ID payload (type and data, i.e. the
// payload body after the 3 reserved octets) is one the certificate vouches
// for (RFC 4945 §3.1, §5.1.3.5):
//
//   - ID_IPV4_ADDR, ID_IPV6_ADDR: an IP address subjectAltName.
//   - ID_FQDN: a dNSName subjectAltName, compared without regard to ASCII
//     case; wildcards are not expanded.
//   - ID_RFC822_ADDR: an rfc822Name subjectAltName, the domain part without
//     regard to case.
//   - ID_DER_ASN1_DN: the subject: the same DER, or the same RDNs with string
//     values equal after case folding and whitespace normalisation.
//
// Other ID types (ID_KEY_ID, ID_DER_ASN1_GN) cannot be tied to a certificate
// this way and fail.
func MatchID(cert *x509.Certificate, t iana.IDType, data []byte) error {
	if cert == nil {
		return errors.New("ike/crypto: no certificate")
	}
	switch t {
	case iana.IDIPv4Addr, iana.IDIPv6Addr:
		want := 4
		if t == iana.IDIPv6Addr {
			want = 16
		}
		if len(data) != want {
			return fmt.Errorf("ike/crypto: %v of %d octets", t, len(data))
		}
		id, _ := netip.AddrFromSlice(data)
		for _, ip := range cert.IPAddresses {
			a, ok := netip.AddrFromSlice(ip)
			if ok && a.Unmap() == id {
				return nil
			}
		}
	case iana.IDFQDN:
		for _, n := range cert.DNSNames {
			if strings.EqualFold(n, string(data)) {
				return nil
			}
		}
	case iana.IDRFC822Addr:
		for _, n := range cert.EmailAddresses {
			if emailEqual(n, string(data)) {
				return nil
			}
		}
	case iana.IDDERASN1DN:
		if bytes.Equal(data, cert.RawSubject) {
			return nil
		}
		if dnEqual(data, cert.RawSubject) {
			return nil
		}
	default:
		return fmt.Errorf("ike/crypto: %v cannot be matched against a certificate", t)
	}
	return fmt.Errorf("%w: %v %s, certificate %q", ErrIDMismatch, t, printableID(t, data), cert.Subject)
}

// printableID renders ID data for error messages (identities are not
// secret, but raw DER is unreadable).
func printableID(t iana.IDType, data []byte) string {
	switch t {
	case iana.IDIPv4Addr, iana.IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(data); ok {
			return a.String()
		}
	case iana.IDFQDN, iana.IDRFC822Addr:
		return fmt.Sprintf("%q", data)
	case iana.IDDERASN1DN:
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(data, &rdn); err == nil && len(rest) == 0 {
			return fmt.Sprintf("%q", rdn.String())
		}
	}
	return fmt.Sprintf("%x", data)
}

// emailEqual compares mailbox addresses: the local part exactly, the domain
// without regard to case (RFC 5280 §4.2.1.6).
func emailEqual(a, b string) bool {
	ai, bi := strings.LastIndexByte(a, '@'), strings.LastIndexByte(b, '@')
	if ai < 0 || bi < 0 {
		return a == b
	}
	return a[:ai] == b[:bi] && strings.EqualFold(a[ai:], b[bi:])
}

// dnEqual compares two DER distinguished names RDN by RDN. Attribute values
// that are strings compare after folding case and collapsing white space, a
// simplified form of the RFC 4518 preparation that matches how peers
// commonly write the same DN with different string types or case.
func dnEqual(a, b []byte) bool {
	var ra, rb pkix.RDNSequence
	if rest, err := asn1.Unmarshal(a, &ra); err != nil || len(rest) != 0 {
		return false
	}
	if rest, err := asn1.Unmarshal(b, &rb); err != nil || len(rest) != 0 {
		return false
	}
	if len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		if !rdnEqual(ra[i], rb[i]) {
			return false
		}
	}
	return true
}

// rdnEqual compares two RDNs as sets of attributes.
func rdnEqual(a, b pkix.RelativeDistinguishedNameSET) bool {
	if len(a) != len(b) {
		return false
	}
	used := make([]bool, len(b))
outer:
	for _, x := range a {
		for j, y := range b {
			if !used[j] && attrEqual(x, y) {
				used[j] = true
				continue outer
			}
		}
		return false
	}
	return true
}

func attrEqual(x, y pkix.AttributeTypeAndValue) bool {
	if !x.Type.Equal(y.Type) {
		return false
	}
	xs, xok := x.Value.(string)
	ys, yok := y.Value.(string)
	if xok && yok {
		return strings.EqualFold(strings.Join(strings.Fields(xs), " "), strings.Join(strings.Fields(ys), " "))
	}
	xd, errx := asn1.Marshal(x.Value)
	yd, erry := asn1.Marshal(y.Value)
	return errx == nil && erry == nil && bytes.Equal(xd, yd)
}
