package bpf

import (
	"net/netip"
	"testing"
)

// BenchmarkXDPCleartext is the WAN program's cost per cleartext packet
// with the inbound SPD on (the lab's policies, inboundPolicies), beside
// the ESP path it must not slow down and a baseline that only returns
// XDP_PASS. Run with -benchtime=200ms on shared machines.
func BenchmarkXDPCleartext(b *testing.B) {
	o := loadForTest(b, Options{})
	setupState(b, o)
	syncTestInbound(b, o, false)
	baseline := passProgram(b)
	v4 := func(src, dst netip.Addr, proto uint8, l4 []byte, frag uint16) []byte {
		return ether(false, etherTypeIPv4, ipv4(proto, src, dst, l4, v4opts{fragOff: frag}))
	}
	wan := o.Program(RoleWAN)
	benchRuns(b, []benchRun{
		{"baseline-pass", baseline, v4(peer4, gw4, protoESP, esp(spiKnown, 1, 1400), 0)},
		{"esp-live", wan, v4(peer4, gw4, protoESP, esp(spiKnown, 1, 1400), 0)},
		{"espinudp-live", wan, v4(peer4, gw4, protoUDP, udp(4500, 4500, esp(spiKnown, 1, 1400)), 0)},
		{"ike-to-gateway", wan, v4(peer4, gw4, protoUDP, udp(500, 500, ikeHeader()), 0)},
		{"tcp-to-gateway", wan, v4(peer4, gw4, protoTCP, tcpSYN(40000, 22), 0)},
		{"spoofed-udp", wan, v4(inHostB, inHostA, protoUDP, udp(1000, 2000, make([]byte, 64)), 0)},
		{"spoofed-later-fragment", wan, v4(inHostB, inHostA, protoUDP, make([]byte, 64), 0x0005)},
		{"spoofed-udp-v6", wan, ether(false, etherTypeIPv6, ipv6(protoUDP, inHostB6, inHostA6, udp(1000, 2000, make([]byte, 64))))},
		{"wan-src-to-lan-default", wan, v4(peer4, inHostA, protoUDP, udp(1000, 2000, make([]byte, 64)), 0)},
		{"ssh-bypass-4th-rule", wan, v4(inOutside, inMgmt, protoTCP, tcpSYN(40000, 22), 0)},
	})
}
