package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// fuzzSPD widens testSPD with broad prefixes so random destinations hit
// every action, including link-scoped ones under a PROTECT default.
var fuzzSPD = append([]SPDEntry{
	{netip.MustParsePrefix("0.0.0.0/1"), ActionDivert},
	{netip.MustParsePrefix("::/0"), ActionProtect},
}, testSPD...)

// FuzzXDP feeds arbitrary frames to the three programs (through
// BPF_PROG_TEST_RUN, so the parser under test is the C one, as the verifier
// accepted it). For every program exactly one verdict counter must move and
// the verdict must fit it; for xdp_lan, whose decision depends only on the
// Ethernet and IP headers, the verdict and counters must equal an
// independent longest-prefix-match model.
func FuzzXDP(f *testing.F) {
	for _, c := range append(wanCases(), lanCases()...) {
		f.Add(c.frame)
	}
	// Q-in-Q stacks: both tags, and cut in the inner tag.
	q := qinqFrame(100, 200, etherTypeIPv4, ipv4(protoESP, peer4, gw4, esp(spiKnown, 1, 64), v4opts{}))
	f.Add(q)
	f.Add(q[:21])
	requireRoot(f)
	o, err := Load(Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { o.Close() })
	if err := o.SyncSPIs([]uint32{spiKnown, spiKnown2}); err != nil {
		f.Fatal(err)
	}
	if err := o.SyncSPD(fuzzSPD); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		// BPF_PROG_TEST_RUN wants an Ethernet header and a frame that fits
		// a page with XDP headroom; keep to a standard MTU.
		if len(frame) < 14 || len(frame) > 1514 {
			t.Skip()
		}
		for _, r := range []Role{RoleWAN, RoleLAN, RoleOneArm} {
			if err := checkOneVerdict(o, r, frame); err != nil {
				t.Fatalf("%s: %v\nframe %x", r, err, frame)
			}
		}
		want, wantDelta := lanModel(frame, fuzzSPD)
		c := verdictCase{name: "model", frame: frame, want: want, delta: wantDelta}
		if err := runModelCase(o, c); err != nil {
			t.Fatalf("lan: %v\nframe %x", err, frame)
		}
	})
}

func runModelCase(o *Objects, c verdictCase) error {
	before, err := o.CounterValues()
	if err != nil {
		return err
	}
	ret, err := o.Program(RoleLAN).Run(&ebpf.RunOptions{Data: c.frame})
	if err != nil {
		return err
	}
	after, err := o.CounterValues()
	if err != nil {
		return err
	}
	if ret != c.want {
		return fmt.Errorf("verdict %s, model says %s", verdictName(ret), verdictName(c.want))
	}
	for i := range after {
		if got, want := after[i]-before[i], c.delta[Counter(i)]; got != want {
			return fmt.Errorf("counter %s moved %d, model says %d", Counter(i), got, want)
		}
	}
	return nil
}

// lanModel is what xdp_lan must do with frame (no socket registered), from
// RFC 791 / RFC 8200 header rules and the SPD entries by longest prefix.
func lanModel(frame []byte, spd []SPDEntry) (uint32, deltas) {
	malformed := deltas{CounterMalformedPass: 1}
	off := 14
	et := binary.BigEndian.Uint16(frame[12:])
	if et == etherTypeVLAN || et == etherTypeQinQ {
		if len(frame) < 18 {
			return xdpPass, malformed
		}
		outer := et
		et = binary.BigEndian.Uint16(frame[16:])
		off = 18
		if outer == etherTypeQinQ && et == etherTypeVLAN { // Q-in-Q: a second tag
			if len(frame) < 22 {
				return xdpPass, malformed
			}
			et = binary.BigEndian.Uint16(frame[20:])
			off = 22
		}
		// The program is set to the frame's tags (checkOneVerdict), but
		// VID 4095 cannot be set (frameVID gives 0): another VLAN's.
		if settable(frameVID(frame)) != binary.BigEndian.Uint16(frame[off-4:])&0x0fff ||
			qinq(frame) && frameSVID(frame) != binary.BigEndian.Uint16(frame[14:])&0x0fff {
			return xdpPass, deltas{CounterVLANOtherPass: 1}
		}
	}
	var dst netip.Addr
	switch et {
	case etherTypeIPv4:
		if len(frame) < off+20 || frame[off]>>4 != 4 {
			return xdpPass, malformed
		}
		ihl := int(frame[off] & 0x0f)
		if ihl < 5 || len(frame) < off+ihl*4 {
			return xdpPass, malformed
		}
		dst = netip.AddrFrom4([4]byte(frame[off+16 : off+20]))
	case etherTypeIPv6:
		if len(frame) < off+40 || frame[off]>>4 != 6 {
			return xdpPass, malformed
		}
		dst = netip.AddrFrom16([16]byte(frame[off+24 : off+40]))
	default:
		return xdpPass, deltas{CounterPassOther: 1}
	}
	if linkScoped(dst) {
		return xdpPass, deltas{CounterLANLinkLocalPass: 1}
	}
	best, action := -1, ActionBypass
	for _, e := range spd {
		if e.Prefix.Contains(dst) && e.Prefix.Bits() > best {
			best, action = e.Prefix.Bits(), e.Action
		}
	}
	switch action {
	case ActionProtect:
		return xdpDrop, deltas{CounterLANProtectRedirect: 1, CounterXSKMissing: 1}
	case ActionDivert:
		return xdpDrop, deltas{CounterLANDivertRedirect: 1, CounterXSKMissing: 1}
	case ActionDiscard:
		return xdpDrop, deltas{CounterLANDiscard: 1}
	}
	return xdpPass, deltas{CounterLANBypass: 1}
}

// linkScoped: destinations routers never forward (RFC 3927, RFC 5771
// 224.0.0.0/24, RFC 919 limited broadcast, RFC 4291 link-local unicast and
// interface/link-local multicast scopes).
func linkScoped(a netip.Addr) bool {
	for _, p := range []string{"169.254.0.0/16", "224.0.0.0/24", "255.255.255.255/32", "fe80::/10"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return true
		}
	}
	if a.Is6() {
		b := a.As16()
		scope := b[1] & 0x0f
		return b[0] == 0xff && (scope == 1 || scope == 2)
	}
	return false
}
