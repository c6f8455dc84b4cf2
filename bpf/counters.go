package bpf

import (
	"fmt"

	"github.com/xdpsec/xdpsec/internal/enum"
)

// Counter indexes the XDP program's per-CPU counters (C enum counter).
type Counter uint32

// Verdict counters: every packet increments exactly one of these.
const (
	// CounterPassOther: not IP, or IP the gateway does not steer (ARP,
	// ICMP/ICMPv6 incl. ND, other UDP, TCP, ...); to the kernel.
	CounterPassOther = Counter(xdpsecCounterCNT_PASS_OTHER)
	// CounterPassIKE: UDP 500, or the NAT-T port with the non-ESP marker.
	CounterPassIKE = Counter(xdpsecCounterCNT_PASS_IKE)
	// CounterPassNATTKeepalive: a 1-byte 0xFF NAT-keepalive (RFC 3948 section 2.3).
	CounterPassNATTKeepalive = Counter(xdpsecCounterCNT_PASS_NATT_KEEPALIVE)
	// CounterPassNATTShort: NAT-T port payload of 1..3 bytes that is not a
	// keepalive (or 0 bytes); too short to hold an SPI.
	CounterPassNATTShort = Counter(xdpsecCounterCNT_PASS_NATT_SHORT)
	// CounterESPRedirect: ESP (IP protocol 50) with a live SPI, redirected.
	CounterESPRedirect = Counter(xdpsecCounterCNT_ESP_REDIRECT)
	// CounterESPUnknownSPI: ESP or ESP-in-UDP whose SPI is not live.
	CounterESPUnknownSPI = Counter(xdpsecCounterCNT_ESP_UNKNOWN_SPI)
	// CounterESPUDPRedirect: ESP-in-UDP with a live SPI, redirected.
	CounterESPUDPRedirect = Counter(xdpsecCounterCNT_ESPUDP_REDIRECT)
	// CounterLANProtectRedirect: destination matched a PROTECT prefix.
	CounterLANProtectRedirect = Counter(xdpsecCounterCNT_LAN_PROTECT_REDIRECT)
	// CounterLANDivertRedirect: destination matched a DIVERT prefix.
	CounterLANDivertRedirect = Counter(xdpsecCounterCNT_LAN_DIVERT_REDIRECT)
	// CounterLANDiscard: destination matched a DISCARD prefix; dropped.
	CounterLANDiscard = Counter(xdpsecCounterCNT_LAN_DISCARD)
	// CounterLANBypass: LAN packet matched BYPASS or nothing; to the kernel.
	CounterLANBypass = Counter(xdpsecCounterCNT_LAN_BYPASS)
	// CounterLANLinkLocalPass: LAN packet to a link-scoped destination.
	CounterLANLinkLocalPass = Counter(xdpsecCounterCNT_LAN_LINK_LOCAL_PASS)
	// CounterFragPass: WAN IPv4 fragment or IPv6 Fragment header of
	// anything but ESP and ESP-in-UDP; to the kernel.
	CounterFragPass = Counter(xdpsecCounterCNT_FRAG_PASS)
	// CounterMalformedPass: a header was truncated or inconsistent; to the
	// kernel, which drops it.
	CounterMalformedPass = Counter(xdpsecCounterCNT_MALFORMED_PASS)
	// CounterIPv6ExtHdrPass: WAN IPv6 packet whose first next header is an
	// extension header (hop-by-hop, routing, destination options, AH, ...);
	// not walked, to the kernel.
	CounterIPv6ExtHdrPass = Counter(xdpsecCounterCNT_IPV6EXTHDR_PASS)
	// CounterFragRedirect: WAN outer fragment of ESP, or of ESP-in-UDP
	// (known by its first fragment), redirected for reassembly.
	CounterFragRedirect = Counter(xdpsecCounterCNT_FRAG_REDIRECT)
	// CounterFenceDrop: an ARP request or Neighbor Solicitation for a
	// cluster group address whose lease ran out here (Objects.Fence);
	// dropped, so a dead daemon's kernel stops answering for it.
	CounterFenceDrop = Counter(xdpsecCounterCNT_FENCE_DROP)
)

// Inbound SPD verdicts: WAN cleartext (not ESP with an SPI) that is not
// addressed to the gateway itself nor link-scoped, decided by the inbound
// side of the SPD (see SyncInbound).
const (
	// CounterInProtectDrop: inside a PROTECT policy, so only accepted
	// through an SA (RFC 4301 section 5.2); dropped.
	CounterInProtectDrop = Counter(xdpsecCounterCNT_IN_PROTECT_DROP)
	// CounterInDiscard: a DISCARD policy; dropped.
	CounterInDiscard = Counter(xdpsecCounterCNT_IN_DISCARD)
	// CounterInBypass: a BYPASS policy; to the kernel.
	CounterInBypass = Counter(xdpsecCounterCNT_IN_BYPASS)
	// CounterInDefaultDrop: no policy, default_action discard; dropped.
	CounterInDefaultDrop = Counter(xdpsecCounterCNT_IN_DEFAULT_DROP)
	// CounterInDefaultPass: no policy, default bypass; to the kernel.
	CounterInDefaultPass = Counter(xdpsecCounterCNT_IN_DEFAULT_PASS)
	// CounterInUnsureDrop: the policy that could match needs ports or a
	// protocol the packet does not show (a later fragment, IPv6 extension
	// headers, a cut transport header), or the rules were truncated; dropped.
	CounterInUnsureDrop = Counter(xdpsecCounterCNT_IN_UNSURE_DROP)
)

// CounterVLANOtherPass: a frame of another 802.1Q VLAN than the one set
// with SetVLAN (or untagged while one is set, or tagged while none is):
// the kernel's VLAN devices', passed unclassified.
const CounterVLANOtherPass = Counter(xdpsecCounterCNT_VLAN_OTHER_PASS)

// CounterXSKMissing is not a verdict: it counts redirects (a subset of the
// *Redirect counters, plus unknown SPIs under FlagRedirectUnknownSPI) that
// were dropped because no socket was registered for the receive queue.
const CounterXSKMissing = Counter(xdpsecCounterCNT_XSK_MISSING)

// NumCounters is the number of counters the program keeps.
const NumCounters = int(xdpsecCounterCNT_MAX)

// counterNames are the metric-friendly names: the C enumerator in lower case
// without its CNT_ prefix (TestCounterNamesMatchBTF holds us to that).
var counterNames = [NumCounters]string{
	CounterPassOther:          "pass_other",
	CounterPassIKE:            "pass_ike",
	CounterPassNATTKeepalive:  "pass_natt_keepalive",
	CounterPassNATTShort:      "pass_natt_short",
	CounterESPRedirect:        "esp_redirect",
	CounterESPUnknownSPI:      "esp_unknown_spi",
	CounterESPUDPRedirect:     "espudp_redirect",
	CounterLANProtectRedirect: "lan_protect_redirect",
	CounterLANDivertRedirect:  "lan_divert_redirect",
	CounterLANDiscard:         "lan_discard",
	CounterLANBypass:          "lan_bypass",
	CounterLANLinkLocalPass:   "lan_link_local_pass",
	CounterFragPass:           "frag_pass",
	CounterMalformedPass:      "malformed_pass",
	CounterIPv6ExtHdrPass:     "ipv6_exthdr_pass",
	CounterXSKMissing:         "xsk_missing",
	CounterInProtectDrop:      "in_protect_drop",
	CounterInDiscard:          "in_discard",
	CounterInBypass:           "in_bypass",
	CounterInDefaultDrop:      "in_default_drop",
	CounterInDefaultPass:      "in_default_pass",
	CounterInUnsureDrop:       "in_unsure_drop",
	CounterVLANOtherPass:      "vlan_other_pass",
	CounterFragRedirect:       "frag_redirect",
	CounterFenceDrop:          "fence_drop",
}

func (c Counter) String() string { return enum.Name(c, counterNames[:], "counter") }

// CounterValues is a snapshot of all counters, summed over CPUs and indexed
// by Counter.
type CounterValues [NumCounters]uint64

// Map returns the snapshot keyed by counter name.
func (v *CounterValues) Map() map[string]uint64 {
	m := make(map[string]uint64, NumCounters)
	for i, n := range v {
		m[counterNames[i]] = n
	}
	return m
}

// CounterValues reads every counter and sums its per-CPU slots.
func (o *Objects) CounterValues() (CounterValues, error) {
	var (
		out    CounterValues
		perCPU []uint64
	)
	for i := range out {
		if err := o.objs.Counters.Lookup(uint32(i), &perCPU); err != nil {
			return out, fmt.Errorf("read counter %s: %w", Counter(i), err)
		}
		var sum uint64
		for _, n := range perCPU {
			sum += n
		}
		out[i] = sum
	}
	return out, nil
}

// Counters returns the counters keyed by name (see Counter.String).
func (o *Objects) Counters() (map[string]uint64, error) {
	v, err := o.CounterValues()
	if err != nil {
		return nil, err
	}
	return v.Map(), nil
}
