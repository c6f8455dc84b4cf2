package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/xdpsec/xdpsec/internal/testlab"
)

// XDP actions (enum xdp_action).
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

func verdictName(v uint32) string {
	switch v {
	case 0:
		return "XDP_ABORTED"
	case xdpDrop:
		return "XDP_DROP"
	case xdpPass:
		return "XDP_PASS"
	case 3:
		return "XDP_TX"
	case xdpRedirect:
		return "XDP_REDIRECT"
	}
	return fmt.Sprint(v)
}

func requireRoot(t testing.TB) {
	t.Helper()
	testlab.RequireRoot(t, "CAP_BPF, CAP_NET_ADMIN: it loads XDP programs and runs BPF_PROG_TEST_RUN")
}

func loadForTest(t testing.TB, opts Options) *Objects {
	t.Helper()
	requireRoot(t)
	o, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// Addresses: the gateway's outside address and a peer, from the benchmarking
// range; protected prefixes from the documentation ranges.
var (
	gw4   = netip.MustParseAddr("198.18.0.1")
	peer4 = netip.MustParseAddr("198.18.0.2")
	gw6   = netip.MustParseAddr("2001:db8:ffff::1")
	peer6 = netip.MustParseAddr("2001:db8:ffff::2")
	host4 = netip.MustParseAddr("10.0.0.5")
	host6 = netip.MustParseAddr("fd00::5")

	spiKnown   uint32 = 0x0000c1a5
	spiKnown2  uint32 = 0xc0ffee01
	spiUnknown uint32 = 0xdeadbeef
)

// testSPD is the mirror used by the verdict tests. The 198.18/16 and
// 2001:db8:ffff::/48 PROTECT prefixes cover the gateway's own addresses, which
// are BYPASS as the one-arm documentation asks.
var testSPD = []SPDEntry{
	{netip.MustParsePrefix("198.51.100.0/24"), ActionProtect},
	{netip.MustParsePrefix("198.51.100.128/25"), ActionBypass},
	{netip.MustParsePrefix("203.0.113.0/24"), ActionDiscard},
	{netip.MustParsePrefix("192.0.2.0/24"), ActionDivert},
	{netip.MustParsePrefix("198.18.0.0/16"), ActionProtect},
	{netip.MustParsePrefix("198.18.0.1/32"), ActionBypass},
	{netip.MustParsePrefix("2001:db8:1::/48"), ActionProtect},
	{netip.MustParsePrefix("2001:db8:1:80::/64"), ActionBypass},
	{netip.MustParsePrefix("2001:db8:2::/48"), ActionDiscard},
	{netip.MustParsePrefix("2001:db8:3::/48"), ActionDivert},
	{netip.MustParsePrefix("2001:db8:ffff::/48"), ActionProtect},
	{netip.MustParsePrefix("2001:db8:ffff::1/128"), ActionBypass},
}

func setupState(t testing.TB, o *Objects) {
	t.Helper()
	if err := o.SyncSPIs([]uint32{spiKnown, spiKnown2}); err != nil {
		t.Fatal(err)
	}
	if err := o.SyncSPD(testSPD); err != nil {
		t.Fatal(err)
	}
}

type deltas map[Counter]uint64

type verdictCase struct {
	name  string
	frame []byte
	want  uint32
	delta deltas
}

// malformedCase marks, with transportOnly, frames whose IP header is intact
// (only the transport is cut short): the LAN program still classifies them.
type malformedCase struct {
	verdictCase
	transportOnly bool
}

// runCase runs one frame and checks the verdict and that the counters moved
// by exactly delta (every other counter unchanged).
func runCase(t *testing.T, o *Objects, prog *ebpf.Program, c verdictCase) {
	t.Helper()
	if err := o.SetVLAN(frameVID(c.frame)); err != nil {
		t.Fatal(err)
	}
	if err := o.SetServiceVLAN(frameSVID(c.frame), 0); err != nil {
		t.Fatal(err)
	}
	before, err := o.CounterValues()
	if err != nil {
		t.Fatal(err)
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: c.frame})
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	after, err := o.CounterValues()
	if err != nil {
		t.Fatal(err)
	}
	if ret != c.want {
		t.Errorf("verdict %s, want %s", verdictName(ret), verdictName(c.want))
	}
	for i := range after {
		got := after[i] - before[i]
		if want := c.delta[Counter(i)]; got != want {
			t.Errorf("counter %s moved by %d, want %d", Counter(i), got, want)
		}
	}
}

func both(vlan bool) string {
	if vlan {
		return "vlan"
	}
	return "untagged"
}

// wanCases are addressed to the gateway, so they hold for xdp_wan and, since
// the gateway's addresses are BYPASS in testSPD, for xdp_onearm too.
func wanCases() []verdictCase {
	var cs []verdictCase
	for _, vlan := range []bool{false, true} {
		v4 := func(proto uint8, payload []byte) []byte {
			return ether(vlan, etherTypeIPv4, ipv4(proto, peer4, gw4, payload, v4opts{}))
		}
		v6 := func(nh uint8, payload []byte) []byte {
			return ether(vlan, etherTypeIPv6, ipv6(nh, peer6, gw6, payload))
		}
		failClosed := deltas{CounterESPRedirect: 1, CounterXSKMissing: 1}
		failClosedUDP := deltas{CounterESPUDPRedirect: 1, CounterXSKMissing: 1}
		unknown := deltas{CounterESPUnknownSPI: 1}
		fragRedirect := deltas{CounterFragRedirect: 1, CounterXSKMissing: 1}
		pre := both(vlan) + "/"
		cs = append(cs,
			verdictCase{pre + "v4 esp known spi, no xsk: fail closed", v4(protoESP, esp(spiKnown, 1, 64)), xdpDrop, failClosed},
			verdictCase{pre + "v4 esp second known spi", v4(protoESP, esp(spiKnown2, 7, 64)), xdpDrop, failClosed},
			verdictCase{pre + "v4 esp unknown spi", v4(protoESP, esp(spiUnknown, 1, 64)), xdpDrop, unknown},
			verdictCase{pre + "v4 esp spi byte-swapped is unknown", v4(protoESP, esp(0xa5c10000, 1, 64)), xdpDrop, unknown},
			verdictCase{pre + "v6 esp known spi, no xsk: fail closed", v6(protoESP, esp(spiKnown, 1, 64)), xdpDrop, failClosed},
			verdictCase{pre + "v6 esp unknown spi", v6(protoESP, esp(spiUnknown, 1, 64)), xdpDrop, unknown},
			verdictCase{pre + "v4 esp-in-udp known spi", v4(protoUDP, udp(4500, 4500, esp(spiKnown, 1, 64))), xdpDrop, failClosedUDP},
			verdictCase{pre + "v4 esp-in-udp unknown spi", v4(protoUDP, udp(4500, 4500, esp(spiUnknown, 1, 64))), xdpDrop, unknown},
			verdictCase{pre + "v6 esp-in-udp known spi", v6(protoUDP, udp(40000, 4500, esp(spiKnown, 1, 64))), xdpDrop, failClosedUDP},
			verdictCase{pre + "v6 esp-in-udp unknown spi", v6(protoUDP, udp(40000, 4500, esp(spiUnknown, 1, 64))), xdpDrop, unknown},
			verdictCase{pre + "v4 ike on 4500 (non-esp marker)", v4(protoUDP, udp(4500, 4500, nonESPMarked(ikeHeader()))), xdpPass, deltas{CounterPassIKE: 1}},
			verdictCase{pre + "v6 ike on 4500 (non-esp marker)", v6(protoUDP, udp(4500, 4500, nonESPMarked(ikeHeader()))), xdpPass, deltas{CounterPassIKE: 1}},
			verdictCase{pre + "v4 ike on 500", v4(protoUDP, udp(500, 500, ikeHeader())), xdpPass, deltas{CounterPassIKE: 1}},
			verdictCase{pre + "v6 ike on 500", v6(protoUDP, udp(500, 500, ikeHeader())), xdpPass, deltas{CounterPassIKE: 1}},
			// Padded to the Ethernet minimum: only the UDP length says
			// the payload is one byte.
			verdictCase{pre + "v4 nat keepalive, padded frame", padMin(v4(protoUDP, udp(4500, 4500, []byte{0xff}))), xdpPass, deltas{CounterPassNATTKeepalive: 1}},
			verdictCase{pre + "v6 nat keepalive", v6(protoUDP, udp(4500, 4500, []byte{0xff})), xdpPass, deltas{CounterPassNATTKeepalive: 1}},
			verdictCase{pre + "v4 nat-t 1 byte not 0xff", padMin(v4(protoUDP, udp(4500, 4500, []byte{0x00}))), xdpPass, deltas{CounterPassNATTShort: 1}},
			verdictCase{pre + "v4 nat-t 3 bytes", padMin(v4(protoUDP, udp(4500, 4500, []byte{0xc1, 0xa5, 0x01}))), xdpPass, deltas{CounterPassNATTShort: 1}},
			verdictCase{pre + "v4 nat-t empty", padMin(v4(protoUDP, udp(4500, 4500, nil))), xdpPass, deltas{CounterPassNATTShort: 1}},
			verdictCase{pre + "v4 udp 53", v4(protoUDP, udp(53, 53, []byte("query"))), xdpPass, deltas{CounterPassOther: 1}},
			verdictCase{pre + "v4 esp to port 4501 is other udp", v4(protoUDP, udp(4500, 4501, esp(spiKnown, 1, 16))), xdpPass, deltas{CounterPassOther: 1}},
			verdictCase{pre + "v4 tcp", v4(protoTCP, make([]byte, 20)), xdpPass, deltas{CounterPassOther: 1}},
			verdictCase{pre + "v4 icmp", v4(protoICMP, []byte{8, 0, 0, 0, 0, 1, 0, 1}), xdpPass, deltas{CounterPassOther: 1}},
			verdictCase{pre + "arp", padMin(ether(vlan, etherTypeARP, arpRequest())), xdpPass, deltas{CounterPassOther: 1}},
			verdictCase{pre + "v6 neighbour solicitation", ether(vlan, etherTypeIPv6, ipv6(protoICMPv6, peer6, solicitedNode(gw6), neighborSolicitation(gw6))), xdpPass, deltas{CounterPassOther: 1}},
			// Outer fragments of ESP go to the workers' reassembly.
			verdictCase{pre + "v4 first fragment of esp", v4frag(vlan, protoESP, 0x2000, esp(spiKnown, 1, 64)), xdpDrop, fragRedirect},
			verdictCase{pre + "v4 non-first fragment of esp", v4frag(vlan, protoESP, 0x0010, make([]byte, 64)), xdpDrop, fragRedirect},
			verdictCase{pre + "v6 fragment header of esp", v6(protoFragment, fragHeader(protoESP, 0, true, esp(spiKnown, 1, 64))), xdpDrop, fragRedirect},
			verdictCase{pre + "v6 last fragment of esp", v6(protoFragment, fragHeader(protoESP, 185, false, make([]byte, 64))), xdpDrop, fragRedirect},
			// UDP fragments only when the first one was ESP-in-UDP (see
			// TestWANNATTFragments); the rest are the kernel's.
			verdictCase{pre + "v4 last fragment of unknown udp", v4frag(vlan, protoUDP, 0x00b9, make([]byte, 64)), xdpPass, deltas{CounterFragPass: 1}},
			verdictCase{pre + "v4 first fragment of ike on 4500", v4frag(vlan, protoUDP, 0x2000, udp(4500, 4500, nonESPMarked(ikeHeader()))), xdpPass, deltas{CounterFragPass: 1}},
			verdictCase{pre + "v4 first fragment of udp 53", v4frag(vlan, protoUDP, 0x2000, udp(53, 53, make([]byte, 64))), xdpPass, deltas{CounterFragPass: 1}},
			verdictCase{pre + "v6 fragment of tcp", v6(protoFragment, fragHeader(protoTCP, 0, true, make([]byte, 64))), xdpPass, deltas{CounterFragPass: 1}},
			verdictCase{pre + "v6 hop-by-hop before esp", v6(protoHopOpts, extHeader(protoESP, esp(spiKnown, 1, 64))), xdpPass, deltas{CounterIPv6ExtHdrPass: 1}},
			verdictCase{pre + "v6 destination options", v6(60, extHeader(protoUDP, udp(4500, 4500, esp(spiKnown, 1, 8)))), xdpPass, deltas{CounterIPv6ExtHdrPass: 1}},
			// The SPI sits after the options: reading at offset 20 would
			// see the option bytes instead.
			verdictCase{pre + "v4 ihl 6: spi after options is live", ether(vlan, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 32), v4opts{options: []byte{1, 1, 1, 0}})), xdpDrop, failClosed},
			verdictCase{pre + "v4 ihl 6: live spi inside options is ignored", ether(vlan, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiUnknown, 1, 32), v4opts{options: []byte{0x00, 0x00, 0xc1, 0xa5}})), xdpDrop, unknown},
			verdictCase{pre + "v4 ihl 15 with esp-in-udp", ether(vlan, etherTypeIPv4, ipv4(protoUDP, peer4, gw4, udp(4500, 4500, esp(spiKnown, 1, 32)), v4opts{options: make([]byte, 40)})), xdpDrop, failClosedUDP},
		)
		for _, m := range malformedCases(vlan) {
			cs = append(cs, m.verdictCase)
		}
	}
	return cs
}

func v4frag(vlan bool, proto uint8, fragOff uint16, payload []byte) []byte {
	return ether(vlan, etherTypeIPv4, ipv4(proto, peer4, gw4, payload, v4opts{fragOff: fragOff}))
}

// malformedCases are frames cut short or inconsistent: the kernel drops them,
// so the program passes them and counts.
func malformedCases(vlan bool) []malformedCase {
	mal := deltas{CounterMalformedPass: 1}
	pre := both(vlan) + "/malformed: "
	full4 := ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 64), v4opts{})
	full6 := ipv6(protoESP, peer6, gw6, esp(spiKnown, 1, 64))
	cut := func(b []byte, n int) []byte { return b[:n] }
	cs := []malformedCase{
		{verdictCase{pre + "v4 header cut at 19 bytes", ether(vlan, etherTypeIPv4, cut(full4, 19)), xdpPass, mal}, false},
		{verdictCase{pre + "v4 ihl 4", ether(vlan, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 16), v4opts{ihl: 4})), xdpPass, mal}, false},
		{verdictCase{pre + "v4 ihl 15 but 20-byte header", ether(vlan, etherTypeIPv4, cut(ipv4(protoESP, peer4, gw4, nil, v4opts{ihl: 15}), 20)), xdpPass, mal}, false},
		{verdictCase{pre + "v4 version 6 in ipv4 ethertype", ether(vlan, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 16), v4opts{version: 6})), xdpPass, mal}, false},
		{verdictCase{pre + "v4 esp header 7 bytes", ether(vlan, etherTypeIPv4, cut(full4, 27)), xdpPass, mal}, true},
		{verdictCase{pre + "v4 esp spi only", ether(vlan, etherTypeIPv4, cut(full4, 24)), xdpPass, mal}, true},
		{verdictCase{pre + "v4 udp header cut", ether(vlan, etherTypeIPv4, cut(ipv4(protoUDP, peer4, gw4, udp(4500, 4500, esp(spiKnown, 1, 8)), v4opts{}), 26)), xdpPass, mal}, true},
		{verdictCase{pre + "v4 udp length below 8", ether(vlan, etherTypeIPv4, ipv4(protoUDP, peer4, gw4, []byte{0x11, 0x94, 0x11, 0x94, 0, 7, 0, 0, 1, 2, 3, 4}, v4opts{})), xdpPass, mal}, true},
		{verdictCase{pre + "v4 esp-in-udp length says 72, 2 bytes present", ether(vlan, etherTypeIPv4, cut(ipv4(protoUDP, peer4, gw4, udp(4500, 4500, esp(spiKnown, 1, 56)), v4opts{}), 30)), xdpPass, mal}, true},
		{verdictCase{pre + "v6 header cut at 39 bytes", ether(vlan, etherTypeIPv6, cut(full6, 39)), xdpPass, mal}, false},
		{verdictCase{pre + "v6 version 4 in ipv6 ethertype", ether(vlan, etherTypeIPv6, append([]byte{0x40}, full6[1:]...)), xdpPass, mal}, false},
		{verdictCase{pre + "v6 esp header 4 bytes", ether(vlan, etherTypeIPv6, cut(full6, 44)), xdpPass, mal}, true},
		{verdictCase{pre + "v6 udp header cut", ether(vlan, etherTypeIPv6, cut(ipv6(protoUDP, peer6, gw6, udp(4500, 4500, esp(spiKnown, 1, 8))), 47)), xdpPass, mal}, true},
	}
	if vlan {
		// 14-byte Ethernet header claiming a tag, and two bytes of it.
		cs = append(cs, malformedCase{verdictCase{pre + "vlan tag cut", append(ether(false, etherTypeVLAN, nil), 0, 100), xdpPass, mal}, false})
	} else {
		// The kernel's test run needs 14 bytes; a bare Ethernet header is
		// the shortest frame it accepts.
		cs = append(cs, malformedCase{verdictCase{pre + "ethernet header only", ether(false, etherTypeIPv4, nil), xdpPass, mal}, false})
	}
	return cs
}

func TestWANVerdicts(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	for _, c := range wanCases() {
		t.Run(c.name, func(t *testing.T) { runCase(t, o, o.Program(RoleWAN), c) })
	}
}

func TestOneArmWANVerdicts(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	for _, c := range wanCases() {
		t.Run(c.name, func(t *testing.T) { runCase(t, o, o.Program(RoleOneArm), c) })
	}
}

// TestWANNATTFragments: later fragments of ESP-in-UDP carry no port; they
// follow their first fragment (remembered by source and id) for 5 s, in
// any order.
func TestWANNATTFragments(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	redirect := deltas{CounterFragRedirect: 1, CounterXSKMissing: 1}
	pass := deltas{CounterFragPass: 1}
	v6 := func(fh []byte) []byte { return ether(false, etherTypeIPv6, ipv6(protoFragment, peer6, gw6, fh)) }
	run := func(cs []verdictCase) {
		for _, c := range cs {
			t.Run(c.name, func(t *testing.T) { runCase(t, o, o.Program(RoleWAN), c) })
		}
	}
	run([]verdictCase{
		{"v4 later fragment before its first", v4frag(false, protoUDP, 0x00b9, make([]byte, 64)), xdpPass, pass},
		{"v4 first fragment of esp-in-udp", v4frag(false, protoUDP, 0x2000, udp(4500, 4500, esp(spiKnown, 1, 64))), xdpDrop, redirect},
		{"v4 last fragment after its first", v4frag(false, protoUDP, 0x00b9, make([]byte, 64)), xdpDrop, redirect},
		// Reordered: the middle one after the last still belongs.
		{"v4 middle fragment after the last", v4frag(false, protoUDP, 0x2040, make([]byte, 64)), xdpDrop, redirect},
		{"v6 later fragment before its first", v6(fragHeader(protoUDP, 185, false, make([]byte, 64))), xdpPass, pass},
		{"v6 first fragment of esp-in-udp", v6(fragHeader(protoUDP, 0, true, udp(40000, 4500, esp(spiKnown, 1, 64)))), xdpDrop, redirect},
		{"v6 later fragment after its first", v6(fragHeader(protoUDP, 185, false, make([]byte, 64))), xdpDrop, redirect},
		{"v6 first fragment of udp 53", v6(fragHeader(protoUDP, 0, true, udp(53, 53, make([]byte, 64)))), xdpPass, pass},
	})
	// Past NATT_FRAG_TTL_NS the key (source, IP id) is another
	// datagram's: the sender's id counter wrapped. Age the entries (0:
	// boot time) instead of waiting.
	var k [24]byte
	var v uint64
	for it := o.objs.NattFrags.Iterate(); it.Next(&k, &v); {
		if err := o.objs.NattFrags.Put(k, uint64(0)); err != nil {
			t.Fatal(err)
		}
	}
	run([]verdictCase{
		{"v4 later fragment of an aged set", v4frag(false, protoUDP, 0x2040, make([]byte, 64)), xdpPass, pass},
		{"v6 later fragment of an aged set", v6(fragHeader(protoUDP, 185, false, make([]byte, 64))), xdpPass, pass},
	})
}

func lanCases() []verdictCase {
	var cs []verdictCase
	for _, vlan := range []bool{false, true} {
		v4 := func(dst string) []byte {
			return ether(vlan, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr(dst), udp(40000, 53, []byte("plaintext")), v4opts{}))
		}
		v6 := func(dst string) []byte {
			return ether(vlan, etherTypeIPv6, ipv6(protoUDP, host6, netip.MustParseAddr(dst), udp(40000, 53, []byte("plaintext"))))
		}
		protect := deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}
		divert := deltas{CounterLANDivertRedirect: 1, CounterXSKMissing: 1}
		discard := deltas{CounterLANDiscard: 1}
		bypass := deltas{CounterLANBypass: 1}
		ll := deltas{CounterLANLinkLocalPass: 1}
		pre := both(vlan) + "/"
		cs = append(cs,
			verdictCase{pre + "v4 protect, no xsk: fail closed", v4("198.51.100.7"), xdpDrop, protect},
			verdictCase{pre + "v4 protect, first address", v4("198.51.100.0"), xdpDrop, protect},
			verdictCase{pre + "v4 longer bypass prefix wins", v4("198.51.100.200"), xdpPass, bypass},
			verdictCase{pre + "v4 discard", v4("203.0.113.9"), xdpDrop, discard},
			verdictCase{pre + "v4 divert, no xsk: fail closed", v4("192.0.2.77"), xdpDrop, divert},
			verdictCase{pre + "v4 no match", v4("10.1.1.1"), xdpPass, bypass},
			verdictCase{pre + "v4 just outside protect", v4("198.51.101.1"), xdpPass, bypass},
			verdictCase{pre + "v6 protect, no xsk: fail closed", v6("2001:db8:1::42"), xdpDrop, protect},
			verdictCase{pre + "v6 longer bypass prefix wins", v6("2001:db8:1:80::1"), xdpPass, bypass},
			verdictCase{pre + "v6 discard", v6("2001:db8:2:abcd::1"), xdpDrop, discard},
			verdictCase{pre + "v6 divert", v6("2001:db8:3::1"), xdpDrop, divert},
			verdictCase{pre + "v6 no match", v6("2001:db8:4::1"), xdpPass, bypass},
			// The destination is in every fragment: PROTECT fragments must not
			// reach the kernel in clear.
			verdictCase{pre + "v4 non-first fragment to protect", ether(vlan, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("198.51.100.7"), make([]byte, 64), v4opts{fragOff: 0x0020})), xdpDrop, protect},
			verdictCase{pre + "v6 fragment to protect", ether(vlan, etherTypeIPv6, ipv6(protoFragment, host6, netip.MustParseAddr("2001:db8:1::42"), fragHeader(protoUDP, 8, false, make([]byte, 64)))), xdpDrop, protect},
			verdictCase{pre + "v6 hop-by-hop to protect", ether(vlan, etherTypeIPv6, ipv6(protoHopOpts, host6, netip.MustParseAddr("2001:db8:1::42"), extHeader(protoUDP, udp(1, 2, nil)))), xdpDrop, protect},
			// LAN traffic that happens to look like ESP or IKE is plaintext
			// to be protected, not ours.
			verdictCase{pre + "v4 esp from lan to protect", ether(vlan, etherTypeIPv4, ipv4(protoESP, host4, netip.MustParseAddr("198.51.100.7"), esp(spiKnown, 1, 32), v4opts{})), xdpDrop, protect},
			verdictCase{pre + "v4 ike from lan to no match", ether(vlan, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("10.9.9.9"), udp(500, 500, ikeHeader()), v4opts{})), xdpPass, bypass},
			verdictCase{pre + "v6 neighbour solicitation", ether(vlan, etherTypeIPv6, ipv6(protoICMPv6, host6, solicitedNode(host6), neighborSolicitation(host6))), xdpPass, ll},
			verdictCase{pre + "v6 to link-local unicast", v6("fe80::1"), xdpPass, ll},
			verdictCase{pre + "v6 to interface-local multicast", v6("ff01::1"), xdpPass, ll},
			verdictCase{pre + "v6 to site-local multicast is looked up", v6("ff05::1:3"), xdpPass, bypass},
			verdictCase{pre + "v4 to 169.254.1.1", v4("169.254.1.1"), xdpPass, ll},
			verdictCase{pre + "v4 to 224.0.0.5", v4("224.0.0.5"), xdpPass, ll},
			verdictCase{pre + "v4 limited broadcast", v4("255.255.255.255"), xdpPass, ll},
			verdictCase{pre + "arp", padMin(ether(vlan, etherTypeARP, arpRequest())), xdpPass, deltas{CounterPassOther: 1}},
		)
		for _, m := range malformedCases(vlan) {
			// Frames whose destination cannot be read are malformed on the
			// LAN side too; the rest (transport cut short) are looked up,
			// the LAN program never reads past the IP header.
			if m.transportOnly {
				// Addressed to the gateway, a BYPASS /32 in testSPD.
				m.want, m.delta = xdpPass, deltas{CounterLANBypass: 1}
			}
			cs = append(cs, m.verdictCase)
		}
	}
	return cs
}

func TestLANVerdicts(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	for _, c := range lanCases() {
		t.Run(c.name, func(t *testing.T) { runCase(t, o, o.Program(RoleLAN), c) })
	}
}

// TestOneArmLANVerdicts: in one-arm mode a match on PROTECT/DIVERT/DISCARD
// acts as on the LAN; anything else gets the WAN rules.
func TestOneArmLANVerdicts(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	v4 := func(proto uint8, dst string, payload []byte) []byte {
		return ether(false, etherTypeIPv4, ipv4(proto, host4, netip.MustParseAddr(dst), payload, v4opts{}))
	}
	protect := deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}
	cases := []verdictCase{
		{"protect", v4(protoUDP, "198.51.100.7", udp(1, 53, nil)), xdpDrop, protect},
		{"discard", v4(protoUDP, "203.0.113.9", udp(1, 53, nil)), xdpDrop, deltas{CounterLANDiscard: 1}},
		{"divert", v4(protoUDP, "192.0.2.9", udp(1, 53, nil)), xdpDrop, deltas{CounterLANDivertRedirect: 1, CounterXSKMissing: 1}},
		{"ike to a protected peer is protected", v4(protoUDP, "198.18.0.2", udp(500, 500, ikeHeader())), xdpDrop, protect},
		{"esp to a protected peer is protected", v4(protoESP, "198.18.0.2", esp(spiKnown, 1, 32)), xdpDrop, protect},
		{"bypass then wan rules: udp", v4(protoUDP, "198.51.100.200", udp(1, 53, nil)), xdpPass, deltas{CounterPassOther: 1}},
		{"no match then wan rules: unknown esp", v4(protoESP, "10.7.7.7", esp(spiUnknown, 1, 32)), xdpDrop, deltas{CounterESPUnknownSPI: 1}},
		{"link-local then wan rules", ether(false, etherTypeIPv6, ipv6(protoICMPv6, host6, solicitedNode(host6), neighborSolicitation(host6))), xdpPass, deltas{CounterPassOther: 1}},
		{"fragment to protect", ether(false, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("198.51.100.7"), make([]byte, 32), v4opts{fragOff: 0x0004})), xdpDrop, protect},
		{"fragment to no match", ether(false, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("10.0.0.1"), make([]byte, 32), v4opts{fragOff: 0x0004})), xdpPass, deltas{CounterFragPass: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runCase(t, o, o.Program(RoleOneArm), c) })
	}
}

func TestNATTPortConfigurable(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	port, _, err := o.Config()
	if err != nil || port != DefaultNATTPort {
		t.Fatalf("default nat-t port %d (%v), want %d", port, err, DefaultNATTPort)
	}
	if err := o.SetNATTPort(14500); err != nil {
		t.Fatal(err)
	}
	f := func(dport uint16) []byte {
		return ether(false, etherTypeIPv4, ipv4(protoUDP, peer4, gw4, udp(4500, dport, esp(spiKnown, 1, 32)), v4opts{}))
	}
	runCase(t, o, o.Program(RoleWAN), verdictCase{"esp on 14500", f(14500), xdpDrop, deltas{CounterESPUDPRedirect: 1, CounterXSKMissing: 1}})
	runCase(t, o, o.Program(RoleWAN), verdictCase{"4500 is plain udp now", f(4500), xdpPass, deltas{CounterPassOther: 1}})
	runCase(t, o, o.Program(RoleWAN), verdictCase{"500 stays ike", f(500), xdpPass, deltas{CounterPassIKE: 1}})
	for _, bad := range []uint16{0, 500} {
		if err := o.SetNATTPort(bad); err == nil {
			t.Errorf("SetNATTPort(%d) accepted", bad)
		}
	}
}

func TestRedirectUnknownSPIFlag(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	if err := o.SetFlags(FlagRedirectUnknownSPI); err != nil {
		t.Fatal(err)
	}
	if _, fl, err := o.Config(); err != nil || fl != FlagRedirectUnknownSPI {
		t.Fatalf("flags %v (%v)", fl, err)
	}
	frame := ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiUnknown, 1, 32), v4opts{}))
	// Still dropped (no socket), but now through the redirect.
	runCase(t, o, o.Program(RoleWAN), verdictCase{"unknown spi redirected", frame, xdpDrop, deltas{CounterESPUnknownSPI: 1, CounterXSKMissing: 1}})
	if err := o.SetFlags(1 << 7); err == nil {
		t.Error("unknown flag accepted")
	}
}

// TestSPIAndSPDSync checks that the sync helpers replace content: what was
// live or protected before and is no longer listed stops matching.
func TestSPIAndSPDSync(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	wan, lan := o.Program(RoleWAN), o.Program(RoleLAN)
	espTo := func(spi uint32) []byte {
		return ether(false, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spi, 1, 32), v4opts{}))
	}
	lanTo := func(dst string) []byte {
		return ether(false, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr(dst), udp(1, 2, nil), v4opts{}))
	}
	live := deltas{CounterESPRedirect: 1, CounterXSKMissing: 1}
	unknown := deltas{CounterESPUnknownSPI: 1}

	if err := o.SyncSPIs([]uint32{spiKnown2, 0x00000101, 0x00000101}); err != nil {
		t.Fatal(err)
	}
	runCase(t, o, wan, verdictCase{"removed spi", espTo(spiKnown), xdpDrop, unknown})
	runCase(t, o, wan, verdictCase{"kept spi", espTo(spiKnown2), xdpDrop, live})
	runCase(t, o, wan, verdictCase{"added spi", espTo(0x101), xdpDrop, live})
	if err := o.SetSPILive(spiKnown2, false); err != nil {
		t.Fatal(err)
	}
	if err := o.SetSPILive(spiKnown2, false); err != nil {
		t.Fatalf("removing an absent spi: %v", err)
	}
	runCase(t, o, wan, verdictCase{"spi set dead", espTo(spiKnown2), xdpDrop, unknown})
	if err := o.SetSPILive(spiUnknown, true); err != nil {
		t.Fatal(err)
	}
	runCase(t, o, wan, verdictCase{"spi set live", espTo(spiUnknown), xdpDrop, live})
	if err := o.SyncSPIs(nil); err != nil {
		t.Fatal(err)
	}
	for _, spi := range []uint32{spiKnown, spiKnown2, 0x101, spiUnknown} {
		runCase(t, o, wan, verdictCase{fmt.Sprintf("all cleared %08x", spi), espTo(spi), xdpDrop, unknown})
	}

	// A fresh SPD: 198.51.100.0/24 becomes DISCARD (same key, new value),
	// its /25 BYPASS disappears, a new PROTECT arrives, v6 is emptied.
	if err := o.SyncSPD([]SPDEntry{
		{netip.MustParsePrefix("198.51.100.0/24"), ActionDiscard},
		{netip.MustParsePrefix("100.64.0.0/10"), ActionProtect},
	}); err != nil {
		t.Fatal(err)
	}
	runCase(t, o, lan, verdictCase{"changed action", lanTo("198.51.100.7"), xdpDrop, deltas{CounterLANDiscard: 1}})
	runCase(t, o, lan, verdictCase{"removed bypass", lanTo("198.51.100.200"), xdpDrop, deltas{CounterLANDiscard: 1}})
	runCase(t, o, lan, verdictCase{"removed divert", lanTo("192.0.2.1"), xdpPass, deltas{CounterLANBypass: 1}})
	runCase(t, o, lan, verdictCase{"new protect", lanTo("100.100.1.1"), xdpDrop, deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}})
	v6 := ether(false, etherTypeIPv6, ipv6(protoUDP, host6, netip.MustParseAddr("2001:db8:1::1"), udp(1, 2, nil)))
	runCase(t, o, lan, verdictCase{"v6 emptied", v6, xdpPass, deltas{CounterLANBypass: 1}})

	var n4, n6 int
	var k4 lpmKeyV4
	var k6 lpmKeyV6
	var v uint32
	for it := o.objs.SpdV4.Iterate(); it.Next(&k4, &v); {
		n4++
	}
	for it := o.objs.SpdV6.Iterate(); it.Next(&k6, &v); {
		n6++
	}
	if n4 != 2 || n6 != 0 {
		t.Errorf("tries hold %d v4 / %d v6 entries, want 2 / 0", n4, n6)
	}
}

// TestEveryPacketOneVerdict runs every crafted frame through every program
// and checks that exactly one verdict counter moves per packet, and that the
// verdict fits the counter.
func TestEveryPacketOneVerdict(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	var frames [][]byte
	for _, c := range slices.Concat(wanCases(), lanCases()) {
		frames = append(frames, c.frame)
	}
	for _, r := range []Role{RoleWAN, RoleLAN, RoleOneArm} {
		for i, f := range frames {
			if err := checkOneVerdict(o, r, f); err != nil {
				t.Errorf("%s frame %d: %v", r, i, err)
			}
		}
	}
}

// passCounters may only come with XDP_PASS; redirect counters only with
// XDP_DROP here (no socket is registered), together with CounterXSKMissing.
var (
	passCounters = []Counter{CounterPassOther, CounterPassIKE, CounterPassNATTKeepalive, CounterPassNATTShort,
		CounterLANBypass, CounterLANLinkLocalPass, CounterFragPass, CounterMalformedPass, CounterIPv6ExtHdrPass,
		CounterInBypass, CounterInDefaultPass, CounterVLANOtherPass}
	dropCounters = []Counter{CounterESPUnknownSPI, CounterLANDiscard, CounterInProtectDrop, CounterInDiscard,
		CounterInDefaultDrop, CounterInUnsureDrop}
	redirectCounters = []Counter{CounterESPRedirect, CounterESPUDPRedirect, CounterLANProtectRedirect, CounterLANDivertRedirect, CounterFragRedirect}
)

func checkOneVerdict(o *Objects, r Role, frame []byte) error {
	if err := o.SetVLAN(frameVID(frame)); err != nil {
		return err
	}
	if err := o.SetServiceVLAN(frameSVID(frame), 0); err != nil {
		return err
	}
	before, err := o.CounterValues()
	if err != nil {
		return err
	}
	ret, err := o.Program(r).Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return fmt.Errorf("test run: %w", err)
	}
	after, err := o.CounterValues()
	if err != nil {
		return err
	}
	moved := map[Counter]uint64{}
	var verdicts int
	var verdict Counter
	for i := range after {
		if d := after[i] - before[i]; d != 0 {
			moved[Counter(i)] = d
			if Counter(i) != CounterXSKMissing {
				verdicts++
				verdict = Counter(i)
			}
		}
	}
	if verdicts != 1 || moved[verdict] != 1 {
		return fmt.Errorf("%s: counters moved %v, want exactly one verdict counter +1", verdictName(ret), moved)
	}
	flags, err := o.flags()
	if err != nil {
		return err
	}
	redirects := slices.Contains(redirectCounters, verdict) ||
		(verdict == CounterESPUnknownSPI && flags&FlagRedirectUnknownSPI != 0)
	switch {
	case slices.Contains(passCounters, verdict):
		if ret != xdpPass || moved[CounterXSKMissing] != 0 {
			return fmt.Errorf("%s with %v", verdictName(ret), moved)
		}
	case redirects:
		if ret != xdpDrop || moved[CounterXSKMissing] != 1 {
			return fmt.Errorf("redirect without socket: %s with %v", verdictName(ret), moved)
		}
	case slices.Contains(dropCounters, verdict):
		if ret != xdpDrop || moved[CounterXSKMissing] != 0 {
			return fmt.Errorf("%s with %v", verdictName(ret), moved)
		}
	default:
		return fmt.Errorf("verdict counter %s not classified by the test", verdict)
	}
	if len(moved) > 2 {
		return fmt.Errorf("counters moved %v", slices.Sorted(maps.Keys(moved)))
	}
	return nil
}

func (o *Objects) flags() (Flags, error) {
	_, f, err := o.Config()
	return f, err
}

// TestVLANSteering: with a VLAN set, only its tagged frames are
// classified; untagged ones and other VLANs' go to the kernel, and so do
// tagged frames while none is set (they are a VLAN device's).
func TestVLANSteering(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	esp4 := ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 64), v4opts{})
	tagged := func(vid uint16) []byte {
		f := ether(true, etherTypeIPv4, esp4)
		binary.BigEndian.PutUint16(f[14:], vid)
		return f
	}
	other := deltas{CounterVLANOtherPass: 1}
	redirect := deltas{CounterESPRedirect: 1, CounterXSKMissing: 1}
	for _, tc := range []struct {
		vid   uint16
		frame []byte
		want  uint32
		delta deltas
	}{
		{100, tagged(100), xdpDrop, redirect},
		{100, tagged(0x2000 | 100), xdpDrop, redirect}, // priority bits are not the VID
		{100, tagged(200), xdpPass, other},
		{100, ether(false, etherTypeIPv4, esp4), xdpPass, other},
		{0, tagged(100), xdpPass, other},
		{0, ether(false, etherTypeIPv4, esp4), xdpDrop, redirect},
		{4094, tagged(4094), xdpDrop, redirect},
	} {
		for _, r := range []Role{RoleWAN, RoleLAN, RoleOneArm} {
			if r == RoleLAN && tc.want == xdpDrop {
				continue // ESP to the gateway is not the LAN program's
			}
			if err := o.SetVLAN(tc.vid); err != nil {
				t.Fatal(err)
			}
			before, _ := o.CounterValues()
			ret, err := o.Program(r).Run(&ebpf.RunOptions{Data: tc.frame})
			if err != nil {
				t.Fatal(err)
			}
			after, _ := o.CounterValues()
			if ret != tc.want {
				t.Errorf("%s vid %d frame tag %d: %s, want %s", r, tc.vid, frameVID(tc.frame), verdictName(ret), verdictName(tc.want))
			}
			for c, d := range tc.delta {
				if after[c]-before[c] != d {
					t.Errorf("%s vid %d frame tag %d: %s moved by %d, want %d", r, tc.vid, frameVID(tc.frame), c, after[c]-before[c], d)
				}
			}
		}
	}
	if err := o.SetVLAN(4095); err == nil {
		t.Error("SetVLAN(4095) accepted")
	}
}

// TestVLANTrunk: with the LAN and the WAN as two VLANs of one port (the
// one-arm program, SetTrunk), each tag has its role. The LAN's tag meets
// the SPD mirror only; the WAN's tag the WAN rules and the inbound SPD
// only, so PROTECT-bound cleartext on the WAN's tag is not taken for LAN
// traffic (a plain one-arm program would seal it), and spoofed cleartext
// from the peer's prefix on the LAN's tag is not taken for WAN traffic.
// Other tags, and untagged frames, stay the kernel's.
func TestVLANTrunk(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	syncTestInbound(t, o, false)
	withTag := func(vid uint16, f []byte) []byte {
		if vid == 0 {
			return ether(false, binary.BigEndian.Uint16(f[16:]), f[18:])
		}
		f = bytes.Clone(f)
		binary.BigEndian.PutUint16(f[14:], vid)
		return f
	}
	espF := ether(true, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 64), v4opts{}))
	lanF := ether(true, etherTypeIPv4, ipv4(protoUDP, host4, netip.MustParseAddr("198.51.100.7"), udp(40000, 53, []byte("plaintext")), v4opts{}))
	spoofF := ether(true, etherTypeIPv4, ipv4(protoUDP, netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("198.18.1.2"), udp(40000, 53, []byte("spoofed")), v4opts{}))
	espRedirect := deltas{CounterESPRedirect: 1, CounterXSKMissing: 1}
	protect := deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}
	other := deltas{CounterVLANOtherPass: 1}
	for _, tc := range []struct {
		name     string
		trunk    bool
		wan, lan uint16
		frame    []byte
		want     uint32
		delta    deltas
	}{
		{"esp on the WAN tag", true, 100, 10, withTag(100, espF), xdpDrop, espRedirect},
		{"esp on the LAN tag: LAN traffic", true, 100, 10, withTag(10, espF), xdpPass, deltas{CounterLANBypass: 1}},
		{"protect on the LAN tag", true, 100, 10, withTag(10, lanF), xdpDrop, protect},
		{"protect on the LAN tag, priority bits", true, 100, 10, withTag(0x6000|10, lanF), xdpDrop, protect},
		{"protect-bound cleartext on the WAN tag: inbound SPD", true, 100, 10, withTag(100, lanF), xdpDrop, deltas{CounterInDefaultDrop: 1}},
		{"spoofed site B on the WAN tag", true, 100, 10, withTag(100, spoofF), xdpDrop, deltas{CounterInProtectDrop: 1}},
		{"site B source on the LAN tag: LAN traffic, the SPD mirror decides", true, 100, 10, withTag(10, spoofF), xdpDrop, protect},
		{"another tag", true, 100, 10, withTag(200, lanF), xdpPass, other},
		{"untagged", true, 100, 10, withTag(0, lanF), xdpPass, other},
		{"LAN untagged: protect", true, 100, 0, withTag(0, lanF), xdpDrop, protect},
		{"LAN untagged: esp on the WAN tag", true, 100, 0, withTag(100, espF), xdpDrop, espRedirect},
		{"LAN untagged: spoofed on the WAN tag", true, 100, 0, withTag(100, spoofF), xdpDrop, deltas{CounterInProtectDrop: 1}},
		{"WAN untagged: esp", true, 0, 10, withTag(0, espF), xdpDrop, espRedirect},
		{"WAN untagged: protect on the LAN tag", true, 0, 10, withTag(10, lanF), xdpDrop, protect},
		{"WAN untagged: protect-bound cleartext untagged", true, 0, 10, withTag(0, lanF), xdpDrop, deltas{CounterInDefaultDrop: 1}},
		// Without a trunk, one VLAN carries both sides: the SPD first.
		{"one VLAN: protect on it is sealed", false, 100, 0, withTag(100, lanF), xdpDrop, protect},
		{"one VLAN: the LAN's tag is another", false, 100, 0, withTag(10, lanF), xdpPass, other},
	} {
		if err := o.SetVLAN(tc.wan); err != nil {
			t.Fatal(err)
		}
		if err := o.SetTrunk(tc.trunk, tc.lan); err != nil {
			t.Fatal(err)
		}
		runExact(t, o, RoleOneArm, tc.name, tc.frame, tc.want, tc.delta)
	}
	if err := o.SetTrunk(true, 4095); err == nil {
		t.Error("SetTrunk(4095) accepted")
	}
}

// qinqFrame wraps an untagged frame's payload in an 802.1ad service tag
// svid with an 802.1Q tag vid inside.
func qinqFrame(svid, vid uint16, etherType uint16, payload []byte) []byte {
	b := append([]byte(nil), macDst[:]...)
	b = append(b, macSrc[:]...)
	b = binary.BigEndian.AppendUint16(b, etherTypeQinQ)
	b = binary.BigEndian.AppendUint16(b, svid)
	b = binary.BigEndian.AppendUint16(b, etherTypeVLAN)
	b = binary.BigEndian.AppendUint16(b, vid)
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// TestVLANQinQ: with a service VLAN set (802.1ad 0x88a8 outside the
// 802.1Q VLAN), only frames whose two tags both match are classified; the
// same inner VLAN under another service tag, the inner tag alone, and
// other stacks go to the kernel. On a trunk the LAN's pair is the LAN's.
func TestVLANQinQ(t *testing.T) {
	o := loadForTest(t, Options{})
	setupState(t, o)
	syncTestInbound(t, o, false)
	esp4 := ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 64), v4opts{})
	lan4 := ipv4(protoUDP, host4, netip.MustParseAddr("198.51.100.7"), udp(40000, 53, []byte("plaintext")), v4opts{})
	single := func(tpid, vid uint16, p []byte) []byte {
		f := ether(true, etherTypeIPv4, p)
		binary.BigEndian.PutUint16(f[12:], tpid)
		binary.BigEndian.PutUint16(f[14:], vid)
		return f
	}
	dot1q2 := qinqFrame(100, 200, etherTypeIPv4, esp4)
	binary.BigEndian.PutUint16(dot1q2[12:], etherTypeVLAN) // 802.1Q in 802.1Q: not Q-in-Q
	espRedirect := deltas{CounterESPRedirect: 1, CounterXSKMissing: 1}
	protect := deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}
	other := deltas{CounterVLANOtherPass: 1}
	for _, tc := range []struct {
		name            string
		role            Role
		svid, vid       uint16
		trunk           bool
		lanSVID, lanVID uint16
		frame           []byte
		want            uint32
		delta           deltas
	}{
		{"wan: both tags", RoleWAN, 100, 200, false, 0, 0, qinqFrame(100, 200, etherTypeIPv4, esp4), xdpDrop, espRedirect},
		{"wan: priority bits", RoleWAN, 100, 200, false, 0, 0, qinqFrame(0xe000|100, 0x2000|200, etherTypeIPv4, esp4), xdpDrop, espRedirect},
		{"wan: another service tag", RoleWAN, 100, 200, false, 0, 0, qinqFrame(101, 200, etherTypeIPv4, esp4), xdpPass, other},
		{"wan: the inner tag alone", RoleWAN, 100, 200, false, 0, 0, single(etherTypeVLAN, 200, esp4), xdpPass, other},
		{"wan: 802.1Q in 802.1Q: the outer tag is the VLAN", RoleWAN, 100, 200, false, 0, 0, dot1q2, xdpPass, other},
		{"wan: no service VLAN set", RoleWAN, 0, 200, false, 0, 0, qinqFrame(100, 200, etherTypeIPv4, esp4), xdpPass, other},
		{"wan: one 802.1ad tag as before", RoleWAN, 0, 200, false, 0, 0, single(etherTypeQinQ, 200, esp4), xdpDrop, espRedirect},
		{"lan: both tags", RoleLAN, 100, 200, false, 0, 0, qinqFrame(100, 200, etherTypeIPv4, lan4), xdpDrop, protect},
		{"cut inner tag", RoleWAN, 100, 200, false, 0, 0, qinqFrame(100, 200, etherTypeIPv4, nil)[:20], xdpPass, deltas{CounterMalformedPass: 1}},
		{"trunk: LAN pair", RoleOneArm, 100, 200, true, 100, 10, qinqFrame(100, 10, etherTypeIPv4, lan4), xdpDrop, protect},
		{"trunk: WAN pair", RoleOneArm, 100, 200, true, 100, 10, qinqFrame(100, 200, etherTypeIPv4, esp4), xdpDrop, espRedirect},
		{"trunk: protect-bound on the WAN pair", RoleOneArm, 100, 200, true, 100, 10, qinqFrame(100, 200, etherTypeIPv4, lan4), xdpDrop, deltas{CounterInDefaultDrop: 1}},
		{"trunk: LAN's inner tag, wrong service tag", RoleOneArm, 100, 200, true, 100, 10, qinqFrame(300, 10, etherTypeIPv4, lan4), xdpPass, other},
		{"trunk: LAN single-tagged, WAN Q-in-Q", RoleOneArm, 100, 200, true, 0, 10, single(etherTypeVLAN, 10, lan4), xdpDrop, protect},
	} {
		if err := o.SetVLAN(tc.vid); err != nil {
			t.Fatal(err)
		}
		if err := o.SetTrunk(tc.trunk, tc.lanVID); err != nil {
			t.Fatal(err)
		}
		if err := o.SetServiceVLAN(tc.svid, tc.lanSVID); err != nil {
			t.Fatal(err)
		}
		runExact(t, o, tc.role, tc.name, tc.frame, tc.want, tc.delta) // unpadded: the cut one stays cut
	}
	if err := o.SetServiceVLAN(4095, 0); err == nil {
		t.Error("SetServiceVLAN(4095) accepted")
	}
}

// runExact runs frame through role's program and checks the verdict and
// that exactly the counters of delta moved, by their amounts.
func runExact(t *testing.T, o *Objects, role Role, name string, frame []byte, want uint32, delta deltas) {
	t.Helper()
	before, _ := o.CounterValues()
	ret, err := o.Program(role).Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := o.CounterValues()
	if ret != want {
		t.Errorf("%s: %s, want %s", name, verdictName(ret), verdictName(want))
	}
	for c := range after {
		if d := after[c] - before[c]; d != delta[Counter(c)] {
			t.Errorf("%s: %s moved by %d, want %d", name, Counter(c), d, delta[Counter(c)])
		}
	}
}
