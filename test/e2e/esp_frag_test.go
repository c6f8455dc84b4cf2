package e2e

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// outerESP is one ESP (or ESP-in-UDP) packet gwA sent towards gwB, as
// captured on the WAN.
type outerESP struct {
	eth     []byte // the Ethernet header
	ip      []byte // the whole IP packet
	v6      bool
	hl      int    // IP header length (the gateways send no options or extension headers)
	payload []byte // the IP payload: ESP, or UDP and ESP
}

// pickOuterESP picks from frames the unfragmented IP packets longer than
// minLen bytes from src to dst carrying ESP, raw or (udp) in UDP to port natt
// with an SPI.
func pickOuterESP(frames [][]byte, src, dst netip.Addr, udp bool, natt uint16, minLen int) []outerESP {
	var out []outerESP
	for _, fr := range frames {
		if len(fr) < 14+40 {
			continue
		}
		e := outerESP{eth: fr[:14], ip: fr[14:]}
		var proto uint8
		var s, d netip.Addr
		switch binary.BigEndian.Uint16(fr[12:]) {
		case 0x0800:
			ihl := int(e.ip[0]&0x0f) * 4
			if e.ip[0]>>4 != 4 || ihl < 20 || binary.BigEndian.Uint16(e.ip[6:])&0x3fff != 0 {
				continue
			}
			e.hl, proto = ihl, e.ip[9]
			s, d = netip.AddrFrom4([4]byte(e.ip[12:16])), netip.AddrFrom4([4]byte(e.ip[16:20]))
			e.ip = e.ip[:min(len(e.ip), int(binary.BigEndian.Uint16(e.ip[2:])))]
		case 0x86dd:
			e.v6, e.hl, proto = true, 40, e.ip[6]
			s, d = netip.AddrFrom16([16]byte(e.ip[8:24])), netip.AddrFrom16([16]byte(e.ip[24:40]))
			e.ip = e.ip[:min(len(e.ip), 40+int(binary.BigEndian.Uint16(e.ip[4:])))]
		default:
			continue
		}
		if s != src || d != dst || len(e.ip) <= minLen {
			continue
		}
		e.payload = e.ip[e.hl:]
		if udp {
			if proto != 17 || len(e.payload) < 16 || binary.BigEndian.Uint16(e.payload[2:]) != natt ||
				binary.BigEndian.Uint32(e.payload[8:]) == 0 {
				continue
			}
		} else if proto != 50 {
			continue
		}
		out = append(out, e)
	}
	return out
}

// cut makes Ethernet frames of fragments of e with the IP identification
// id, one per payload range of spans (multiples of 8 but the last, which
// ends at the payload's end), as a router or a sender on a smaller-MTU
// path would (RFC 791 §3.2, RFC 8200 §4.5). Ranges may overlap, be tiny
// or leave holes: crafted sets.
func (e outerESP) cut(id uint32, spans [][2]int) [][]byte {
	var out [][]byte
	for _, sp := range spans {
		lo, hi := sp[0], min(sp[1], len(e.payload))
		more := hi < len(e.payload)
		fr := append([]byte(nil), e.eth...)
		if e.v6 {
			h := append([]byte(nil), e.ip[:40]...)
			binary.BigEndian.PutUint16(h[4:], uint16(8+hi-lo))
			h[6] = 44
			fh := make([]byte, 8)
			fh[0] = e.ip[6]
			fo := uint16(lo)
			if more {
				fo |= 1
			}
			binary.BigEndian.PutUint16(fh[2:], fo)
			binary.BigEndian.PutUint32(fh[4:], id)
			fr = append(append(fr, h...), fh...)
		} else {
			h := append([]byte(nil), e.ip[:e.hl]...)
			binary.BigEndian.PutUint16(h[2:], uint16(e.hl+hi-lo))
			binary.BigEndian.PutUint16(h[4:], uint16(id))
			fo := uint16(lo / 8)
			if more {
				fo |= 0x2000
			}
			binary.BigEndian.PutUint16(h[6:], fo)
			h[10], h[11] = 0, 0
			binary.BigEndian.PutUint16(h[10:], ipv4Checksum(h))
			fr = append(fr, h...)
		}
		out = append(out, append(fr, e.payload[lo:hi]...))
	}
	return out
}

// sendThroughKernel has node's kernel send each payload (an ESP packet,
// or UDP and ESP) from src to dst in a raw IP socket of protocol proto,
// letting it fragment them at the route's MTU as any IP stack that
// encrypts before it fragments does (DF clear for IPv4).
func (l *lab) sendThroughKernel(t *testing.T, node string, src, dst netip.Addr, proto int, payloads [][]byte) {
	t.Helper()
	err := l.inNetns(node, func() error {
		family := unix.AF_INET
		if src.Is6() {
			family = unix.AF_INET6
		}
		fd, err := unix.Socket(family, unix.SOCK_RAW, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var from, to unix.Sockaddr
		if src.Is6() {
			from, to = &unix.SockaddrInet6{Addr: src.As16()}, &unix.SockaddrInet6{Addr: dst.As16()}
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
		} else {
			from, to = &unix.SockaddrInet4{Addr: src.As4()}, &unix.SockaddrInet4{Addr: dst.As4()}
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		}
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, from); err != nil {
			return err
		}
		for _, p := range payloads {
			if err := unix.Sendto(fd, p, 0, to); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw send in %s: %v", node, err)
	}
}

// countFragments counts the IPv4 fragments and IPv6 packets with a
// Fragment header among frames.
func countFragments(frames [][]byte) int {
	n := 0
	for _, fr := range frames {
		if len(fr) < 14+40 {
			continue
		}
		switch binary.BigEndian.Uint16(fr[12:]) {
		case 0x0800:
			if binary.BigEndian.Uint16(fr[14+6:])&0x3fff != 0 {
				n++
			}
		case 0x86dd:
			if fr[14+6] == 44 {
				n++
			}
		}
	}
	return n
}

// countEchoRequests counts the whole ICMP echo requests from src with
// size bytes of data among frames.
func countEchoRequests(frames [][]byte, src netip.Addr, size int) int {
	n := 0
	for _, fr := range frames {
		if len(fr) < 14+28 || binary.BigEndian.Uint16(fr[12:]) != 0x0800 {
			continue
		}
		ip := fr[14:]
		if ip[9] == 1 && netip.AddrFrom4([4]byte(ip[12:16])) == src && binary.BigEndian.Uint16(ip[6:])&0x3fff == 0 &&
			int(binary.BigEndian.Uint16(ip[2:])) == 20+8+size && len(ip) >= 20+8+size && ip[20] == 8 {
			n++
		}
	}
	return n
}

// cleartextFragments are WAN frames (Ethernet header eth) that are not
// ESP for the gateway: later fragments of UDP from site A's prefix to
// hostB (IPv4 and IPv6), and a first fragment of ESP from site A's prefix
// addressed to hostB rather than to the gateway. The inbound SPD drops all
// three (in_protect_drop): a later fragment has no ports, and a fragment
// of ESP goes to reassembly only when it is addressed to the gateway.
func cleartextFragments(eth []byte) [][]byte {
	v4 := func(proto uint8, fo uint16, payload []byte) []byte {
		ip := make([]byte, 20, 20+len(payload))
		ip[0], ip[8], ip[9] = 0x45, 64, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
		binary.BigEndian.PutUint16(ip[4:], 0x7a11)
		binary.BigEndian.PutUint16(ip[6:], fo)
		a, b := netip.MustParseAddr(hostA4).As4(), netip.MustParseAddr(hostB4).As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip))
		f := append(append([]byte(nil), eth[:12]...), 0x08, 0x00)
		return append(append(f, ip...), payload...)
	}
	esp := make([]byte, 64)
	binary.BigEndian.PutUint32(esp, spiAB)
	binary.BigEndian.PutUint32(esp[4:], 1)
	ip6 := make([]byte, 48, 48+32)
	ip6[0], ip6[6], ip6[7] = 0x60, 44, 64
	binary.BigEndian.PutUint16(ip6[4:], 8+32)
	a6, b6 := netip.MustParseAddr(hostA6).As16(), netip.MustParseAddr(hostB6).As16()
	copy(ip6[8:], a6[:])
	copy(ip6[24:], b6[:])
	ip6[40] = 17
	binary.BigEndian.PutUint16(ip6[42:], 64) // offset 64, last
	binary.BigEndian.PutUint32(ip6[44:], 0x7a11)
	f6 := append(append([]byte(nil), eth[:12]...), 0x86, 0xdd)
	return [][]byte{
		v4(17, 8, make([]byte, 32)), // offset 64, last
		append(append(f6, ip6...), make([]byte, 32)...),
		v4(50, 0x2000, esp),
	}
}

// TestESPFragments: ESP that reaches a gateway in outer IP fragments is
// reassembled before decryption and every packet arrives whole at the host
// behind it; crafted bad fragment sets are dropped and each is counted;
// cleartext fragments stay with the inbound SPD. IPv4 and IPv6 outer
// headers, raw ESP and ESP-in-UDP.
//
// The fragments are real: gwA's ESP is captured on the WAN while the
// bridge holds it back (so gwB has not seen those sequence numbers), and
// gwA's kernel then sends the same ESP bytes again, from gwA's address, on
// a route whose MTU is smaller than the packets (576 for IPv4, DF clear;
// 1280 for IPv6), so that the kernel fragments them as a peer that
// encrypts and then fragments, or a router on the path, would.
func TestESPFragments(t *testing.T) {
	needLab(t)
	needNft(t)
	l := newLab(t, "")
	for _, c := range []struct {
		name string
		o    tunnelOpts
	}{
		{"ipv4-esp", tunnelOpts{}},
		{"ipv4-esp-in-udp", tunnelOpts{udp: true}},
		{"ipv6-esp", tunnelOpts{outer6: true}},
		{"ipv6-esp-in-udp", tunnelOpts{outer6: true, udp: true}},
	} {
		t.Run(c.name, func(t *testing.T) { testESPFragments(t, l, c.o) })
	}
}

func needNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("e2e lab: no nft (Debian's nftables; scripts/install-deps.sh installs it)")
	}
}

// espFragSizes: the ping payload, and the route MTU gwA's kernel
// fragments at, per outer family.
const (
	espFragPing = 1300
	espFragMTU4 = 576
	espFragMTU6 = 1280
)

func testESPFragments(t *testing.T, l *lab, o tunnelOpts) {
	// A short reassembly timeout, so incomplete sets are counted soon.
	o.top = "reassembly: {timeout: 1s}"
	a, b, keys := l.configs(t, o)
	gA := l.start(t, "gA", a)
	gB := l.start(t, "gB", b)
	defer l.stopClean(t, gB)
	defer l.stopClean(t, gA)
	l.warmUp(t, "hA", hostB4)

	src, dst := netip.MustParseAddr(keys.a), netip.MustParseAddr(keys.b)
	sel, ipt := "ip", "ip protocol esp"
	if o.outer6 {
		sel, ipt = "ip6", "ip6 nexthdr esp"
	}
	if o.udp {
		ipt = "udp dport 4500"
	}
	// Hold gwA's ESP on the bridge while capturing it on gwA's port.
	for _, cmd := range []string{
		"add table bridge espfrag",
		"add chain bridge espfrag hold { type filter hook forward priority 0 ; }",
		fmt.Sprintf("add rule bridge espfrag hold %s saddr %s %s daddr %s %s drop", sel, src, sel, dst, ipt),
	} {
		if out, err := l.run("wan", 5*time.Second, append([]string{"nft"}, strings.Fields(cmd)...)...); err != nil {
			t.Fatalf("nft %s: %v\n%s", cmd, err, out)
		}
	}
	c := l.captureFilter(t, "wan", "a0", 0, "src", "host", src.String())
	const good, crafted = 6, 2 // kernel-fragmented sets, crafted good sets
	l.run("hA", 10*time.Second, "ping", "-n", "-q", "-c", "12", "-i", "0.05", "-W", "1", "-s", fmt.Sprint(espFragPing), hostB4)
	pcap := c.stop()
	if out, err := l.run("wan", 5*time.Second, "nft", "delete", "table", "bridge", "espfrag"); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	frames, err := readPcap(pcap)
	if err != nil {
		t.Fatal(err)
	}
	mtu := espFragMTU4
	if o.outer6 {
		mtu = espFragMTU6
	}
	held := pickOuterESP(frames, src, dst, o.udp, 4500, mtu)
	if len(held) < good+crafted+3 {
		t.Fatalf("captured %d ESP packets over %d bytes from gwA to gwB, want %d:\n%s", len(held), mtu, good+crafted+3,
			strings.Join(tshark(t, pcap, nil), "\n"))
	}

	sa0, st0 := gB.showSAs(t)["in"], gB.showStats(t)
	wanCap := l.captureFilter(t, "wan", "b0", 0, "src", "host", src.String())
	hostCap := l.captureFilter(t, "hB", "eth0", 0, "icmp")

	// 1. Whole packets from fragments gwA's kernel made.
	route := []string{"ip", "route", "add", dst.String() + "/32", "dev", "wan0", "mtu", "lock", fmt.Sprint(mtu)}
	if o.outer6 {
		route = []string{"ip", "-6", "route", "add", dst.String() + "/128", "dev", "wan0", "mtu", fmt.Sprint(mtu)}
	}
	if out, err := l.run("gA", 5*time.Second, route...); err != nil {
		t.Fatalf("%v: %v\n%s", route, err, out)
	}
	var payloads [][]byte
	for _, e := range held[:good] {
		payloads = append(payloads, e.payload)
	}
	proto := 50
	if o.udp {
		proto = 17
	}
	l.sendThroughKernel(t, "gA", src, dst, proto, payloads)
	route[slices.Index(route, "add")] = "del"
	if out, err := l.run("gA", 5*time.Second, route...); err != nil {
		t.Fatalf("%v: %v\n%s", route, err, out)
	}
	// 2. Crafted good sets: out of order (for ESP-in-UDP the first
	// fragment must still come first: only it says the set is ESP-in-UDP,
	// see bpf/xdpsec.c wan_frag) and with a duplicate piece.
	spans := [][2]int{{0, 512}, {512, 1024}, {1024, 4096}}
	fr := held[good].cut(0xe5f00001, spans)
	if o.udp {
		fr[1], fr[2] = fr[2], fr[1]
	} else {
		fr[0], fr[2] = fr[2], fr[0]
	}
	fr = append(fr, held[good+1].cut(0xe5f00002, spans)...)
	fr = append(fr[:4], append([][]byte{fr[4]}, fr[4:]...)...) // the second set's middle piece twice
	l.sendRaw(t, "wan", "b0", fr)
	wantFrags := len(fr)
	waitCounter(t, gB, "reasm_reassembled", st0, good+crafted)
	wanFrames, err := readPcap(wanCap.stop())
	if err != nil {
		t.Fatal(err)
	}
	kernelFrags := countFragments(wanFrames) - len(fr)
	if kernelFrags < 2*good {
		t.Errorf("gwA's kernel sent %d fragments for %d packets over a %d-byte MTU", kernelFrags, good, mtu)
	}
	wantFrags += kernelFrags
	// tshark reassembles and decrypts what gwB received, independently.
	okICV, n := verifyESP(t, wanCap.file, keys.uat())
	if okICV != good+crafted || n != good+crafted {
		t.Errorf("tshark: %d of %d ESP packets (reassembled from the WAN capture) with good ICVs, want %d", okICV, n, good+crafted)
	}

	// 3. Bad sets, each from its own captured packet: overlapping pieces
	// (the set is dropped, RFC 5722, and its late last piece with it), a
	// tiny first fragment (its rest never completes: expires), and an
	// incomplete set (expires).
	base := held[good+crafted:]
	bad := base[0].cut(0xe5f00003, [][2]int{{0, 512}, {504, 1024}, {1024, 4096}})
	bad = append(bad, base[1].cut(0xe5f00004, [][2]int{{0, 16}, {16, 4096}})...)
	bad = append(bad, base[2].cut(0xe5f00005, [][2]int{{0, 512}, {512, 1024}})...)
	wantFrags += len(bad)
	// 4. Cleartext fragments the inbound SPD keeps out.
	clear := cleartextFragments(held[0].eth)
	l.sendRaw(t, "wan", "b0", append(bad, clear...))
	waitCounter(t, gB, "reasm_timeout", st0, 2)
	time.Sleep(100 * time.Millisecond)
	hostFrames, err := readPcap(hostCap.stop())
	if err != nil {
		t.Fatal(err)
	}

	sa1, st1 := gB.showSAs(t)["in"], gB.showStats(t)
	delta := func(name string) int { return int(workerCounter(st1, name) - workerCounter(st0, name)) }
	xdp := func(name string) int { return int(st1.XDP["wan"][name] - st0.XDP["wan"][name]) }
	if got := countEchoRequests(hostFrames, netip.MustParseAddr(hostA4), espFragPing); got != good+crafted {
		t.Errorf("hostB received %d whole %d-byte echo requests, want %d", got, espFragPing, good+crafted)
	}
	if d := int(sa1.Packets - sa0.Packets); d != good+crafted {
		t.Errorf("gwB's inbound SA opened %d packets, want %d", d, good+crafted)
	}
	if d := sa1.Drops["auth_failed"] - sa0.Drops["auth_failed"]; d != 0 {
		t.Errorf("%d ICV failures on reassembled packets", d)
	}
	for name, want := range map[string]int{
		"reasm_fragments":   wantFrags,
		"reasm_reassembled": good + crafted,
		"reasm_duplicate":   1,
		"reasm_overlap":     1,
		"reasm_late":        1,
		"reasm_tiny":        1,
		"reasm_timeout":     2,
		"reasm_malformed":   0,
		"reasm_too_big":     0,
		"reasm_evicted":     0,
	} {
		if got := delta(name); got != want {
			t.Errorf("%s +%d, want +%d", name, got, want)
		}
	}
	// Dropped fragments: the duplicate, the overlapping piece, the late
	// one, the tiny one.
	if d := int(st1.workerDrop("outer_fragment") - st0.workerDrop("outer_fragment")); d != 4 {
		t.Errorf("outer_fragment drops +%d, want +4", d)
	}
	if d := xdp("frag_redirect"); d != wantFrags {
		t.Errorf("XDP redirected %d fragments for reassembly, want %d", d, wantFrags)
	}
	if d := xdp("in_protect_drop"); d != len(clear) {
		t.Errorf("in_protect_drop +%d for %d cleartext fragments into site B, want +%d", d, len(clear), len(clear))
	}
	if d := xdp("frag_pass"); d != 0 {
		t.Errorf("frag_pass +%d: fragments went to gwB's kernel", d)
	}
	t.Logf("gwA's kernel: %d fragments for %d packets (MTU %d); %d crafted good fragments; tshark: %d/%d good ICVs; hostB: %d whole echo requests; gwB: reassembled +%d, frag_redirect +%d, overlap/late/tiny/timeout +%d/+%d/+%d/+%d, in_protect_drop +%d",
		kernelFrags, good, mtu, len(fr), okICV, n, countEchoRequests(hostFrames, netip.MustParseAddr(hostA4), espFragPing),
		delta("reasm_reassembled"), xdp("frag_redirect"), delta("reasm_overlap"), delta("reasm_late"), delta("reasm_tiny"),
		delta("reasm_timeout"), xdp("in_protect_drop"))
	if t.Failed() {
		t.Logf("gwB worker counters: %v\ndrops: %v\nxdp: %v", st1.Workers[0].Counters, st1.Workers[0].Drops, st1.XDP["wan"])
	}
	// The tunnel still works.
	if got := l.pingAll("hA", hostB4, 3); got != 3 {
		t.Errorf("ping after the fragments: %d of 3 answered", got)
	}
}

func workerCounter(s stats, name string) uint64 {
	var n uint64
	for _, w := range s.Workers {
		n += w.Counters[name]
	}
	return n
}

// waitCounter waits (up to 5 s) until the workers' counter name has grown
// by at least want since st0.
func waitCounter(t *testing.T, g *gateway, name string, st0 stats, want int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if int(workerCounter(g.showStats(t), name)-workerCounter(st0, name)) >= want {
			return
		}
	}
	t.Errorf("%s did not grow by %d within 5 s", name, want)
}
