package ikeload

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// Config is one load run.
type Config struct {
	// Target is the responder's IKE address and port (500 in production).
	Target netip.AddrPort
	// NATTPort is the responder's NAT-T port; 0 means 4500.
	NATTPort uint16
	// N setups in all, at most C in flight.
	N, C int
	// PSK authenticates both ends (AUTH method 2). Never logged.
	PSK []byte
	// IKEProposal and ESPProposal are written in strongSwan's syntax; one
	// DH group must be named for IKE. Defaults: aes128gcm16-prfsha256-x25519
	// and aes128gcm16.
	IKEProposal, ESPProposal string
	// Sources are the local addresses setups are spread over, round
	// robin; they need not be configured on an interface (the sockets use
	// IP_FREEBIND) but replies must route back. Empty: one socket pair
	// whose address the kernel picks. Setups from one address differ by
	// their IKE SPIs.
	Sources []netip.Addr
	// LocalID is the initiator identity (IDi) as ike.ParseIdentity reads it;
	// "%d" in it is replaced by the setup's index, giving every IKE SA its
	// own identity. Default "load-%d.ikeload.test".
	LocalID string
	// RemoteID, if set, goes out as IDr.
	RemoteID string
	// TSi is the pool the initiator's traffic selectors come from: setup i
	// proposes the i-th host address of it (a /32 or /128), so Child SAs do
	// not overlap. TSr is proposed as it is. Defaults 100.64.0.0/10 and
	// 0.0.0.0/0.
	TSi, TSr netip.Prefix
	// Retransmit is the request schedule (RFC 7296 §2.1); defaults 1 s,
	// base 2, 3 retransmissions.
	Retransmit ike.Retransmit
	// KEReuse is how many setups one Diffie-Hellman private value serves
	// (RFC 7296 §2.12); 0 or 1 means a fresh one for every setup.
	KEReuse int
}

// DefaultIKEProposal and DefaultESPProposal are the benchmark's suites.
const (
	DefaultIKEProposal = "aes128gcm16-prfsha256-x25519"
	DefaultESPProposal = "aes128gcm16"
)

func (c *Config) withDefaults() Config {
	d := *c
	if d.NATTPort == 0 {
		d.NATTPort = 4500
	}
	if d.IKEProposal == "" {
		d.IKEProposal = DefaultIKEProposal
	}
	if d.ESPProposal == "" {
		d.ESPProposal = DefaultESPProposal
	}
	if d.LocalID == "" {
		d.LocalID = "load-%d.ikeload.test"
	}
	if !d.TSi.IsValid() {
		d.TSi = netip.MustParsePrefix("100.64.0.0/10")
	}
	if !d.TSr.IsValid() {
		d.TSr = netip.MustParsePrefix("0.0.0.0/0")
	}
	if d.Retransmit.Timeout <= 0 {
		d.Retransmit.Timeout = time.Second
	}
	if d.Retransmit.Base < 1 {
		d.Retransmit.Base = 2
	}
	if d.Retransmit.Tries <= 0 {
		d.Retransmit.Tries = 3
	}
	if d.KEReuse < 1 {
		d.KEReuse = 1
	}
	return d
}

// profile checks the configuration and builds what every setup shares.
func (c *Config) profile() (*profile, error) {
	if !c.Target.IsValid() || c.Target.Port() == 0 {
		return nil, errors.New("ikeload: target address and port required")
	}
	if c.N < 1 || c.C < 1 {
		return nil, fmt.Errorf("ikeload: N and C must be positive (N=%d C=%d)", c.N, c.C)
	}
	if len(c.PSK) == 0 {
		return nil, errors.New("ikeload: a PSK is required")
	}
	p := &profile{psk: c.PSK, tsr: c.TSr.Masked()}
	var err error
	if p.ike, err = ike.ParseProposal(message.ProtocolIKE, c.IKEProposal); err != nil {
		return nil, fmt.Errorf("ikeload: IKE proposal: %w", err)
	}
	if len(p.ike.DH) != 1 {
		return nil, fmt.Errorf("ikeload: IKE proposal %q must name exactly one key exchange group", c.IKEProposal)
	}
	p.group = p.ike.DH[0]
	if _, err := crypto.NewKeyExchange(p.group); err != nil {
		return nil, fmt.Errorf("ikeload: key exchange %v: %w", p.group, err)
	}
	if p.esp, err = ike.ParseProposal(message.ProtocolESP, c.ESPProposal); err != nil {
		return nil, fmt.Errorf("ikeload: ESP proposal: %w", err)
	}
	if len(p.esp.DH) != 0 {
		return nil, errors.New("ikeload: ESP PFS groups belong to CREATE_CHILD_SA, not to IKE_AUTH")
	}
	if p.localID, err = identityTemplate(c.LocalID); err != nil {
		return nil, err
	}
	if c.RemoteID != "" {
		if p.remoteID, err = ike.ParseIdentity(c.RemoteID); err != nil {
			return nil, fmt.Errorf("ikeload: remote identity: %w", err)
		}
	}
	pool := c.TSi.Masked()
	hostBits := pool.Addr().BitLen() - pool.Bits()
	if hostBits < 63 && uint64(c.N) > uint64(1)<<hostBits {
		return nil, fmt.Errorf("ikeload: TSi pool %v has fewer than %d addresses", pool, c.N)
	}
	p.tsi = func(i int) netip.Prefix {
		a := addAddr(pool.Addr(), uint64(i))
		return netip.PrefixFrom(a, a.BitLen())
	}
	return p, nil
}

// identityTemplate returns the identity of setup i.
func identityTemplate(tmpl string) (func(int) ike.Identity, error) {
	if !strings.Contains(tmpl, "%d") {
		id, err := ike.ParseIdentity(tmpl)
		if err != nil {
			return nil, fmt.Errorf("ikeload: local identity: %w", err)
		}
		return func(int) ike.Identity { return id }, nil
	}
	first, err := ike.ParseIdentity(strings.ReplaceAll(tmpl, "%d", "0"))
	if err != nil {
		return nil, fmt.Errorf("ikeload: local identity: %w", err)
	}
	if first.Type != iana.IDFQDN && first.Type != iana.IDRFC822Addr {
		return nil, fmt.Errorf("ikeload: a %%d identity template must be an FQDN or user@fqdn, not %q", tmpl)
	}
	return func(i int) ike.Identity {
		return ike.Identity{Type: first.Type, Data: []byte(strings.ReplaceAll(tmpl, "%d", strconv.Itoa(i)))}
	}, nil
}

// addAddr returns a+n, carrying across octets.
func addAddr(a netip.Addr, n uint64) netip.Addr {
	b := a.AsSlice()
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		v := uint64(b[i]) + n&0xff
		b[i] = byte(v)
		n = n>>8 + v>>8
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}

// SourcesFromPrefix returns k addresses of p starting at its first host
// address (the network address is skipped for IPv4 prefixes shorter than /31).
func SourcesFromPrefix(p netip.Prefix, k int) ([]netip.Addr, error) {
	p = p.Masked()
	start := p.Addr()
	hostBits := start.BitLen() - p.Bits()
	if start.Is4() && hostBits >= 2 {
		start = start.Next()
	}
	if k < 1 || hostBits < 63 && uint64(k) > uint64(1)<<hostBits-1 {
		return nil, fmt.Errorf("ikeload: %v cannot hold %d source addresses", p, k)
	}
	out := make([]netip.Addr, k)
	for i := range out {
		out[i] = addAddr(start, uint64(i))
	}
	return out, nil
}
