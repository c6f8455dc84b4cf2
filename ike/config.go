package ike

import (
	gocrypto "crypto"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/internal/enum"
	"github.com/xdpsec/xdpsec/sad"
)

// Identity is an IKE identity (the ID payload), written as strongSwan's
// "id" setting: an IP address, an FQDN, user@domain (RFC822), or an
// X.500 distinguished name given as DER.
type Identity struct {
	Type iana.IDType
	Data []byte
}

// ParseIdentity reads an identity the way strongSwan guesses its type from
// the text: an IP address, user@fqdn as RFC822, anything else as an FQDN.
// Distinguished names are given with IdentityDN.
func ParseIdentity(s string) (Identity, error) {
	if s == "" {
		return Identity{}, errors.New("empty identity")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			b := a.As4()
			return Identity{iana.IDIPv4Addr, b[:]}, nil
		}
		b := a.As16()
		return Identity{iana.IDIPv6Addr, b[:]}, nil
	}
	if strings.Contains(s, "@") {
		return Identity{iana.IDRFC822Addr, []byte(s)}, nil
	}
	return Identity{iana.IDFQDN, []byte(s)}, nil
}

// IdentityDN is the ID_DER_ASN1_DN identity of a certificate's subject.
func IdentityDN(cert *x509.Certificate) Identity {
	return Identity{iana.IDDERASN1DN, cert.RawSubject}
}

func (id Identity) String() string {
	switch id.Type {
	case iana.IDIPv4Addr, iana.IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case iana.IDFQDN, iana.IDRFC822Addr:
		return string(id.Data)
	}
	return fmt.Sprintf("%v:%x", id.Type, id.Data)
}

func (id Identity) equal(t iana.IDType, data []byte) bool {
	return id.Type == t && string(id.Data) == string(data)
}

// AuthConfig says how one end authenticates. Exactly one of PSK or
// (Certificate and Key) is set for the local end; for the remote end PSK
// or CAs.
type AuthConfig struct {
	// ID is this end's identity. For the remote end an empty ID (zero Type)
	// accepts any identity the authentication proves.
	ID Identity
	// PSK is the pre-shared key (AUTH method 2). It is wiped by
	// Engine.Close.
	PSK []byte
	// Certificate and Key are our end-entity certificate and its private key;
	// Intermediates are sent after it in CERT payloads.
	Certificate   *x509.Certificate
	Intermediates []*x509.Certificate
	Key           gocrypto.Signer
	// CAs are the certification authorities that may vouch for the peer's
	// certificate (remote end only); no system roots are ever used. Their
	// key hashes also go out in CERTREQ payloads, which peers such as
	// strongSwan (send_cert = ifasked) need before they send a certificate.
	CAs []*x509.Certificate

	trust *crypto.TrustStore
}

// certReq returns the CERTREQ payload naming our CAs: the SHA-1 hashes of
// their SubjectPublicKeyInfo (RFC 7296 §3.7).
func (a *AuthConfig) certReq() *message.CertReq {
	if len(a.CAs) == 0 {
		return nil
	}
	cr := &message.CertReq{Encoding: message.CertX509Signature}
	for _, ca := range a.CAs {
		h := sha1.Sum(ca.RawSubjectPublicKeyInfo)
		cr.Data = append(cr.Data, h[:]...)
	}
	return cr
}

func (a *AuthConfig) usesPSK() bool { return len(a.PSK) > 0 }

// TrafficSelector is one traffic selector as configured: an address
// prefix, optionally restricted to an IP protocol and a port range.
type TrafficSelector struct {
	Prefix netip.Prefix
	Proto  uint8
	Ports  sad.PortRange // zero: any
}

// ParseTrafficSelector reads "198.18.1.0/24", "198.18.1.0/24[tcp/443]" or
// "2001:db8::/64[udp]" (strongSwan's local_ts/remote_ts syntax).
func ParseTrafficSelector(s string) (TrafficSelector, error) {
	var ts TrafficSelector
	pfx, rest, hasRest := strings.Cut(s, "[")
	if hasRest {
		var ok bool
		if rest, ok = strings.CutSuffix(rest, "]"); !ok {
			return ts, fmt.Errorf("traffic selector %q: missing ']'", s)
		}
	}
	p, err := netip.ParsePrefix(pfx)
	if err != nil {
		a, err2 := netip.ParseAddr(pfx)
		if err2 != nil {
			return ts, fmt.Errorf("traffic selector %q: %w", s, err)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	ts.Prefix = p.Masked()
	if rest == "" {
		return ts, nil
	}
	proto, port, _ := strings.Cut(rest, "/")
	switch proto {
	case "", "any":
	case "tcp":
		ts.Proto = 6
	case "udp":
		ts.Proto = 17
	case "icmp":
		ts.Proto = 1
	case "ipv6-icmp", "icmp6":
		ts.Proto = 58
	case "sctp":
		ts.Proto = 132
	default:
		n, err := strconv.ParseUint(proto, 10, 8)
		if err != nil {
			return ts, fmt.Errorf("traffic selector %q: unknown protocol %q", s, proto)
		}
		ts.Proto = uint8(n)
	}
	if port != "" && port != "any" {
		lo, hi, isRange := strings.Cut(port, "-")
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return ts, fmt.Errorf("traffic selector %q: bad port %q", s, port)
		}
		h := l
		if isRange {
			if h, err = strconv.ParseUint(hi, 10, 16); err != nil || h < l {
				return ts, fmt.Errorf("traffic selector %q: bad port range %q", s, port)
			}
		}
		ts.Ports = sad.PortRange{Lo: uint16(l), Hi: uint16(h)}
	}
	return ts, nil
}

// ChildConfig is one Child SA of a connection (strongSwan's "children").
type ChildConfig struct {
	Name         string
	LocalTS      []TrafficSelector
	RemoteTS     []TrafficSelector
	Mode         sad.Mode // zero means tunnel
	ESPProposals []Proposal
	// ReplayWindow is the inbound anti-replay window in packets; 0 means
	// DefaultReplayWindow. Lifetime goes into the installed sad.Config as
	// it is. Lifetime.Soft.Time rekeys the Child SA (jittered up to 10% earlier)
	// and Lifetime.Hard.Time deletes it; the byte and packet limits are
	// counted by the data plane, which reports them through Engine.Expire.
	ReplayWindow int
	Lifetime     sad.Lifetime
}

// DefaultReplayWindow is the inbound anti-replay window of a Child SA whose
// ChildConfig names none. It is smaller than sad.DefaultReplayWindow (4096),
// the default for statically configured SAs, because a gateway holds one per
// IKE SA and tens of thousands of them (issue 4: 100,000 in 1 GiB). 960 is
// the largest window whose sad/replay ring has 32 slots of 8 bytes: the ring
// needs more than size/32 slots, rounded up to a power of two, so 1024
// already takes 64 and 4096 takes 256. The ring plus its padding is then
// 512 bytes per Child SA, against 768 for 1024 and 2304 for 4096. 960 is
// still 15 times the default RFC 4303 §3.4.3 prefers (64; strongSwan uses
// 32) and tolerates 15 RX batches of 64 packets of reordering between
// workers, about 1 ms of a 10 Gbit/s flow of 1400-byte packets. A tunnel
// that needs more says so in its config.
const DefaultReplayWindow = 960

// StartAction says what happens to a connection once it is loaded.
type StartAction uint8

const (
	StartNone  StartAction = iota // wait for the peer (or an explicit Initiate)
	StartStart                    // initiate at once
	// StartTrap installs the children's policies as traps: the first packet
	// that matches one with no SA starts the negotiation (Engine.Acquire).
	StartTrap
)

// Connection is one configured peer (strongSwan's "connections" entry).
type Connection struct {
	Name string
	// LocalAddr is the gateway's address for this peer; RemoteAddr the
	// peer's. An invalid RemoteAddr accepts any peer as responder (it cannot
	// then be initiated). RemotePort defaults to the engine's IKE port.
	LocalAddr, RemoteAddr netip.Addr
	RemotePort            uint16
	Local, Remote         AuthConfig
	IKEProposals          []Proposal
	Children              []ChildConfig
	StartAction           StartAction
	// ForceEncap makes the Child SAs use UDP encapsulation even without a
	// NAT (strongSwan's "encap = yes"): we send a NAT_DETECTION_SOURCE_IP
	// that cannot match, so the peer believes us behind a NAT and both ends
	// move to the NAT-T port (RFC 7296 §2.23 allows faking it so).
	ForceEncap bool
	// LocalAddrs, when set, are all the gateway's addresses for this peer
	// (strongSwan's local_addrs), either family, LocalAddr ignored: the
	// connection answers on any of them and initiates from the first of
	// the remote's family that reaches it (Config.Reachable). Empty:
	// LocalAddr alone.
	LocalAddrs []netip.Addr
	// RemoteAddrs, when set, are the peer's addresses (strongSwan's
	// remote_addrs; RemoteAddr is then the first): the connection accepts
	// the peer from any of them and initiates to the first it has a
	// local address for that reaches it. Empty: RemoteAddr alone.
	RemoteAddrs []netip.Addr

	// IKERekeyTime is the soft lifetime of the connection's IKE SAs: the
	// end that reaches it first rekeys the IKE SA (RFC 7296 §2.18), at a
	// time jittered up to 10% earlier so both ends rarely start at once.
	// IKELifetime is the hard limit: an IKE SA still alive then is deleted.
	// Zero disables either.
	IKERekeyTime, IKELifetime time.Duration
	// DPDDelay is the liveness interval (RFC 7296 §2.4): when nothing
	// authenticated arrived from the peer for this long — no IKE message
	// and, where the installer reports it (UsageInstaller), no ESP on the
	// connection's Child SAs — an empty INFORMATIONAL request goes out;
	// when it goes unanswered through the retransmission schedule,
	// DPDAction is taken. Zero disables DPD.
	DPDDelay  time.Duration
	DPDAction DPDAction
	// Keepalive is how long the IKE SA's UDP flow may stay idle while we
	// are behind a NAT before a NAT-T keepalive goes out (RFC 3948 §2.3):
	// a NAT forgets an idle UDP mapping, often within 30 s. Idle means we
	// sent no IKE message and, where the installer reports it
	// (OutboundUsageInstaller), no ESP on the Child SAs. Zero takes
	// DefaultKeepalive; negative disables keepalives.
	Keepalive time.Duration
	// CloseAction is what happens when the peer deletes the IKE SA or a
	// Child SA that was not being replaced by a rekey (strongSwan's
	// close_action): a peer shutting down or restarting does so.
	CloseAction CloseAction
	// MaxChildren caps the Child SAs one IKE SA may carry; a peer's
	// CREATE_CHILD_SA beyond it is answered with NO_ADDITIONAL_SAS
	// (RFC 7296 §1.3). Default 64.
	MaxChildren int

	// NoFragmentation turns IKE message fragmentation (RFC 7383) off: we
	// neither announce IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT nor
	// accept Encrypted Fragment payloads. It is on by default, as a big
	// IKE_AUTH (a certificate chain) otherwise depends on IP fragments,
	// which many paths drop.
	NoFragmentation bool
	// FragmentSize is the largest IP datagram (IP and UDP headers and the
	// non-ESP marker included) a fragment may fill; messages that would
	// not fit in one are fragmented once fragmentation is negotiated.
	// Zero means DefaultFragmentSize.
	FragmentSize int
}

// DefaultFragmentSize is the IP datagram size our IKE fragments fill by
// default: 1280 octets, the minimum MTU every IPv6 link must carry
// (RFC 8200 §5), which RFC 7383 §2.5.1 suggests for IPv6 and which in
// practice also crosses IPv4 paths (tunnels, PPPoE and VPN overlays sit
// well above it). It is strongSwan's default (charon.fragment_size) too.
// RFC 7383's IPv4 floor of 576 would be safer still but triples the
// fragments of a certificate chain; a path that needs it sets
// FragmentSize.
const DefaultFragmentSize = 1280

// MinFragmentSize is the smallest FragmentSize accepted: the IPv4 minimum
// reassembly size (RFC 791), below which no IP path is required to work
// and the fixed overhead of each fragment would dominate.
const MinFragmentSize = 576

// fragmentation reports whether we offer and accept RFC 7383 fragments.
func (c *Connection) fragmentation() bool { return !c.NoFragmentation }

func (c *Connection) fragmentSize() int {
	if c.FragmentSize > 0 {
		return c.FragmentSize
	}
	return DefaultFragmentSize
}

// DPDAction is what happens to a connection whose peer is found dead
// (strongSwan's dpd_action).
type DPDAction uint8

const (
	// DPDClear removes the IKE SA and its Child SAs.
	DPDClear DPDAction = iota
	// DPDRestart removes them and initiates the connection again, retrying
	// until the peer answers.
	DPDRestart
	// DPDTrap removes the SAs but leaves the connection's policies in the
	// data plane (through TrapInstaller), so matching traffic is dropped
	// and can trigger a new negotiation rather than leak.
	DPDTrap
)

var dpdActionNames = [...]string{DPDClear: "clear", DPDRestart: "restart", DPDTrap: "trap"}

func (a DPDAction) String() string { return enum.Name(a, dpdActionNames[:], "dpdaction") }

func (c *Connection) maxChildren() int {
	if c.MaxChildren > 0 {
		return c.MaxChildren
	}
	return 64
}

// Validate checks the connection for what the exchanges need and builds
// the trust store of the remote CAs.
func (c *Connection) Validate() error {
	if c.Name == "" {
		return errors.New("connection without a name")
	}
	if len(c.IKEProposals) == 0 {
		return fmt.Errorf("connection %s: no IKE proposals", c.Name)
	}
	for _, p := range c.IKEProposals {
		if p.Protocol != message.ProtocolIKE || len(p.DH) == 0 || len(p.PRF) == 0 {
			return fmt.Errorf("connection %s: proposal %s is not a complete IKE proposal", c.Name, p)
		}
	}
	if !c.Local.usesPSK() && (c.Local.Certificate == nil || c.Local.Key == nil) {
		return fmt.Errorf("connection %s: local auth needs a PSK or a certificate and key", c.Name)
	}
	if !c.Remote.usesPSK() {
		if len(c.Remote.CAs) == 0 {
			return fmt.Errorf("connection %s: remote auth needs a PSK or CAs", c.Name)
		}
		if c.Remote.trust == nil {
			t, err := crypto.NewTrustStore(c.Remote.CAs...)
			if err != nil {
				return fmt.Errorf("connection %s: %w", c.Name, err)
			}
			c.Remote.trust = t
		}
	}
	if c.Local.ID.Type == 0 {
		return fmt.Errorf("connection %s: no local identity", c.Name)
	}
	if err := c.validateLocals(); err != nil {
		return err
	}
	for _, ch := range c.Children {
		if ch.Name == "" {
			return fmt.Errorf("connection %s: child without a name", c.Name)
		}
		if len(ch.LocalTS) == 0 || len(ch.RemoteTS) == 0 {
			return fmt.Errorf("connection %s: child %s needs local and remote traffic selectors", c.Name, ch.Name)
		}
		if len(ch.ESPProposals) == 0 {
			return fmt.Errorf("connection %s: child %s has no ESP proposals", c.Name, ch.Name)
		}
	}
	if (c.StartAction == StartStart || c.StartAction == StartTrap) && !c.RemoteAddr.IsValid() {
		return fmt.Errorf("connection %s: start and trap need a remote address", c.Name)
	}
	if c.FragmentSize != 0 && (c.FragmentSize < MinFragmentSize || c.FragmentSize > 65535) {
		return fmt.Errorf("connection %s: fragment size %d is outside %d to 65535", c.Name, c.FragmentSize, MinFragmentSize)
	}
	return nil
}

// Retransmit sets the retransmission schedule of requests (RFC 7296 §2.1):
// the n-th retransmission goes out Timeout × Base^n after the previous
// send, and the exchange gives up Tries retransmissions later (strongSwan's
// retransmit_timeout, retransmit_base, retransmit_tries).
type Retransmit struct {
	Timeout time.Duration // default 500 ms
	Base    float64       // default 2
	Tries   int           // default 5
}

func (r Retransmit) withDefaults() Retransmit {
	if r.Timeout <= 0 {
		r.Timeout = 500 * time.Millisecond
	}
	if r.Base < 1 {
		r.Base = 2
	}
	if r.Tries <= 0 {
		r.Tries = 5
	}
	return r
}

// delay returns the wait after the n-th send (n = 0 for the first).
func (r Retransmit) delay(n int) time.Duration {
	d := float64(r.Timeout)
	for range n {
		d *= r.Base
	}
	return time.Duration(d)
}
