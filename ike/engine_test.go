package ike

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

func TestPSKProposals(t *testing.T) {
	tests := []struct {
		ike, esp string
		esn      bool
		suite    sad.Suite
	}{
		{"aes128gcm16-prfsha256-x25519", "aes128gcm16", false, sad.AESGCM128},
		{"aes256-sha256-modp2048", "aes256-sha256", false, sad.Suite{Cipher: sad.CipherAESCBC, KeyBits: 256, Integ: sad.IntegHMACSHA256}},
		{"chacha20poly1305-prfsha512-ecp256", "chacha20poly1305-esn", true, sad.ChaCha20},
		{"aes256gcm16-prfsha384-ecp384", "aes256gcm16-esn-noesn", true, sad.AESGCM256},
		{"aes128-sha512-ecp521", "aes128-sha384-noesn", false, sad.Suite{Cipher: sad.CipherAESCBC, KeyBits: 128, Integ: sad.IntegHMACSHA384}},
	}
	for _, tc := range tests {
		t.Run(tc.ike+"/"+tc.esp, func(t *testing.T) {
			ci, cr := pskPair(t, tc.ike, tc.esp)
			i, r := startPair(t, ci, cr)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			checkPairs(t, i.inst, r.inst, 1)
			in := i.inst.Inbound()[0]
			if in.Suite != tc.suite || in.ESN != tc.esn || in.Mode != sad.Tunnel || in.Encap.Enabled() {
				t.Fatalf("installed %v esn=%v mode=%v encap=%+v, want %v esn=%v tunnel", in.Suite, in.ESN, in.Mode, in.Encap, tc.suite, tc.esn)
			}
			// Inbound before outbound, on both sides.
			for _, p := range []*peer{i, r} {
				log := p.inst.Log()
				if len(log) != 2 || !strings.HasPrefix(log[0], "in ") || !strings.HasPrefix(log[1], "out ") {
					t.Fatalf("install order %v", log)
				}
			}
			li, lr := i.e.List(), r.e.List()
			if len(li) != 1 || len(lr) != 1 || li[0].State != StateEstablished || lr[0].State != StateEstablished {
				t.Fatalf("List: %+v / %+v", li, lr)
			}
			if li[0].SPIi != lr[0].SPIi || li[0].SPIr != lr[0].SPIr || li[0].Proposal != lr[0].Proposal || li[0].Proposal == "" {
				t.Fatalf("IKE SAs differ: %+v / %+v", li[0], lr[0])
			}
			ch := li[0].Children
			if len(ch) != 1 || ch[0].SPIIn != lr[0].Children[0].SPIOut || ch[0].SPIOut != lr[0].Children[0].SPIIn {
				t.Fatalf("children: %+v / %+v", ch, lr[0].Children)
			}
			// The responder's selectors: out 198.18.2.0/24 -> 198.18.1.0/24.
			pol := r.inst.Policies(r.inst.Outbound()[0].SPI)
			want := sad.Selector{Src: netip.MustParsePrefix("198.18.2.0/24"), Dst: netip.MustParsePrefix("198.18.1.0/24"),
				SrcPorts: sad.PortRange{Lo: 0, Hi: 0xffff}, DstPorts: sad.PortRange{Lo: 0, Hi: 0xffff}}
			if len(pol) != 1 || pol[0] != want {
				t.Fatalf("responder policy %+v, want %+v", pol, want)
			}
			if strings.Contains(i.log.String()+r.log.String(), "test pre-shared key") {
				t.Fatal("PSK in the log")
			}
		})
	}
}

func TestCertificateAuth(t *testing.T) {
	for _, kinds := range [][2]string{{"ecdsa", "ecdsa"}, {"rsa", "ecdsa384"}, {"ecdsa", "rsa"}} {
		t.Run(kinds[0]+"-"+kinds[1], func(t *testing.T) {
			pki := newPKI(t)
			ki, kr := genKey(t, kinds[0]), genKey(t, kinds[1])
			certI, certR := pki.issue(t, "initiator.test", ki), pki.issue(t, "responder.test", kr)
			ci, cr := pskPair(t, "aes256gcm16-prfsha384-ecp384", "aes256gcm16")
			ci.Local = AuthConfig{ID: mustID(t, "initiator.test"), Certificate: certI, Key: ki}
			ci.Remote = AuthConfig{ID: mustID(t, "responder.test"), CAs: pki.store}
			cr.Local = AuthConfig{ID: mustID(t, "responder.test"), Certificate: certR, Key: kr}
			cr.Remote = AuthConfig{ID: mustID(t, "initiator.test"), CAs: pki.store}
			i, r := startPair(t, ci, cr)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			checkPairs(t, i.inst, r.inst, 1)
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		pki, other := newPKI(t), newPKI(t)
		ki, kr := genKey(t, "ecdsa"), genKey(t, "ecdsa")
		ci, cr := pskPair(t, "aes128gcm16-prfsha256-ecp256", "aes128gcm16")
		ci.Local = AuthConfig{ID: mustID(t, "initiator.test"), Certificate: other.issue(t, "initiator.test", ki), Key: ki}
		ci.Remote = AuthConfig{CAs: pki.store}
		cr.Local = AuthConfig{ID: mustID(t, "responder.test"), Certificate: pki.issue(t, "responder.test", kr), Key: kr}
		cr.Remote = AuthConfig{CAs: pki.store}
		i, r := startPair(t, ci, cr)
		if err := i.e.Initiate(ctx(t), "test"); err == nil {
			t.Fatal("IKE SA with an untrusted certificate came up")
		}
		if !hasLine(r.log.String(), "authentication of the peer failed") || len(r.inst.Inbound()) != 0 {
			t.Fatalf("responder log lacks the failure line or installed SAs:\n%s", r.log.String())
		}
	})
}

func TestInvalidKERetry(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519-ecp256", "aes128gcm16")
	cr.IKEProposals = mustProposals(t, message.ProtocolIKE, "aes128gcm16-prfsha256-ecp256")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if n := i.conn.sent("IKE_SA_INIT/req"); n != 2 {
		t.Fatalf("sent %d IKE_SA_INIT requests, want 2 (one retry after INVALID_KE_PAYLOAD)", n)
	}
	if l := i.e.List(); len(l) != 1 || !strings.Contains(l[0].Proposal, "ecp256") {
		t.Fatalf("List %+v", l)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
}

func TestNoProposalChosen(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	cr.IKEProposals = mustProposals(t, message.ProtocolIKE, "aes256-sha384-modp3072")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err == nil {
		t.Fatal("IKE SA came up without a common proposal")
	}
	rl := r.log.String()
	if !hasLine(rl, "no IKE proposal chosen") || !hasLine(rl, "ENCR_AES_GCM_16_128") || !hasLine(rl, "aes256-sha384-prfsha384-modp3072") {
		t.Fatalf("responder log lacks a line with both sides' proposals:\n%s", rl)
	}
	if !hasLine(i.log.String(), "peer chose none of our IKE proposals") {
		t.Fatalf("initiator log:\n%s", i.log.String())
	}
	if len(i.e.List())+len(r.e.List()) != 0 || r.e.HalfOpen() != 0 {
		t.Fatal("state left behind")
	}
}

func TestWrongPSK(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	cr.Remote.PSK = []byte("another key entirely, not ours!!")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err == nil {
		t.Fatal("IKE SA came up with different PSKs")
	}
	rl, il := r.log.String(), i.log.String()
	if strings.Count(rl, "authentication of the peer failed") != 1 {
		t.Fatalf("responder log:\n%s", rl)
	}
	if strings.Count(il, "AUTHENTICATION_FAILED") != 1 {
		t.Fatalf("initiator log:\n%s", il)
	}
	if strings.Contains(rl+il, "test pre-shared key") || strings.Contains(rl+il, "another key") {
		t.Fatal("PSK in the log")
	}
	waitFor(t, "responder SA gone", func() bool { return len(r.e.List()) == 0 })
	if len(i.inst.Inbound())+len(r.inst.Inbound()) != 0 {
		t.Fatal("SAs installed after failed authentication")
	}
	if len(i.e.spis) != 0 {
		t.Fatal("initiator kept its SPI reservation")
	}
}

func TestTrafficSelectorNarrowing(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.Children[0].LocalTS = mustTS(t, "10.0.0.0/16")
	ci.Children[0].RemoteTS = mustTS(t, "10.1.0.0/16")
	cr.Children[0].LocalTS = mustTS(t, "10.1.2.0/24[tcp/443]")
	cr.Children[0].RemoteTS = mustTS(t, "10.0.0.0/8")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	out := i.inst.Outbound()[0]
	want := sad.Selector{Src: netip.MustParsePrefix("10.0.0.0/16"), Dst: netip.MustParsePrefix("10.1.2.0/24"), Proto: 6,
		SrcPorts: sad.PortRange{Lo: 0, Hi: 0xffff}, DstPorts: sad.PortRange{Lo: 443, Hi: 443}}
	if pol := i.inst.Policies(out.SPI); len(pol) != 1 || pol[0] != want {
		t.Fatalf("initiator policy %+v, want %+v", pol, want)
	}
	if in := i.inst.Inbound()[0]; len(in.Selectors) != 1 || in.Selectors[0] != want.Reverse() {
		t.Fatalf("inbound selectors %+v", in.Selectors)
	}
}

func TestTSUnacceptable(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	cr.Children[0].RemoteTS = mustTS(t, "192.0.2.0/24")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatalf("IKE SA should come up without its child: %v", err)
	}
	if !hasLine(i.log.String(), "TS_UNACCEPTABLE") || !hasLine(r.log.String(), "traffic selectors unacceptable") {
		t.Fatalf("logs:\n%s\n%s", i.log.String(), r.log.String())
	}
	if l := i.e.List(); len(l) != 1 || l[0].State != StateEstablished || len(l[0].Children) != 0 {
		t.Fatalf("List %+v", l)
	}
	if len(i.inst.Log())+len(r.inst.Log()) != 0 || len(i.e.spis)+len(r.e.spis) != 0 {
		t.Fatal("SAs or SPIs left behind")
	}
}

func TestESPNoProposalChosen(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	cr.Children[0].ESPProposals = mustProposals(t, message.ProtocolESP, "aes256-sha512")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if !hasLine(r.log.String(), "no ESP proposal chosen") || !hasLine(i.log.String(), "NO_PROPOSAL_CHOSEN") {
		t.Fatalf("logs:\n%s\n%s", i.log.String(), r.log.String())
	}
}

func TestTransportMode(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.Children[0].Mode, cr.Children[0].Mode = sad.Transport, sad.Transport
	ci.Children[0].LocalTS, ci.Children[0].RemoteTS = mustTS(t, "127.0.0.1/32"), mustTS(t, "127.0.0.2/32")
	cr.Children[0].LocalTS, cr.Children[0].RemoteTS = mustTS(t, "127.0.0.2/32"), mustTS(t, "127.0.0.1/32")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	for _, c := range append(i.inst.Inbound(), r.inst.Outbound()...) {
		if c.Mode != sad.Transport {
			t.Fatalf("SA %08x in %v mode", c.SPI, c.Mode)
		}
	}
	// A tunnel-mode responder refuses transport: the initiator notices.
	ci2, cr2 := ci, cr
	cr2.Children = []ChildConfig{cr.Children[0]}
	cr2.Children[0].Mode = sad.Tunnel
	i2, _ := startPair(t, ci2, cr2)
	if err := i2.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if !hasLine(i2.log.String(), "transport mode") || len(i2.inst.Inbound()) != 0 {
		t.Fatalf("initiator accepted tunnel mode for a transport child:\n%s", i2.log.String())
	}
}

func TestForceEncapNATT(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.ForceEncap = true
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	_, iNATT := i.conn.Ports()
	_, rNATT := r.conn.Ports()
	in := i.inst.Inbound()[0]
	if in.Encap != (sad.UDPEncap{SrcPort: iNATT, DstPort: rNATT}) {
		t.Fatalf("initiator SA encap %+v, want %d->%d", in.Encap, iNATT, rNATT)
	}
	li, lr := i.e.List(), r.e.List()
	if !li[0].NATT || !lr[0].NATT || !li[0].Children[0].UDPEncap {
		t.Fatalf("not on NAT-T: %+v / %+v", li[0], lr[0])
	}
	// Later exchanges run on NAT-T too.
	if err := i.e.ping(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
}

func TestDelete(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fromResp bool
		child    bool
	}{{"child-by-initiator", false, true}, {"child-by-responder", true, true}, {"ike-by-initiator", false, false}, {"ike-by-responder", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
			i, r := startPair(t, ci, cr)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			a, b := i, r
			if tc.fromResp {
				a, b = r, i
			}
			var err error
			if tc.child {
				err = a.e.terminateChild(ctx(t), "test", "net")
			} else {
				err = a.e.Terminate(ctx(t), "test")
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "SAs deleted on the peer", func() bool { return len(b.inst.Inbound())+len(b.inst.Outbound()) == 0 })
			if n := len(a.inst.Inbound()) + len(a.inst.Outbound()); n != 0 {
				t.Fatalf("%d SAs left", n)
			}
			wantIKE := 0
			if tc.child {
				wantIKE = 1
			}
			waitFor(t, "IKE SA state", func() bool { return len(a.e.List()) == wantIKE && len(b.e.List()) == wantIKE })
			if tc.child {
				if err := a.e.ping(ctx(t), "test"); err != nil {
					t.Fatalf("IKE SA dead after deleting its child: %v", err)
				}
			}
			if len(i.e.spis)+len(r.e.spis) != 0 {
				t.Fatal("inbound SPIs still reserved")
			}
		})
	}
}

func TestRetransmitAndDuplicate(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := startPair(t, ci, cr)
	// Lose the first IKE_SA_INIT and IKE_AUTH responses: the initiator
	// retransmits, and the responder must answer both duplicates from its
	// cache rather than run the exchanges twice.
	r.conn.setDrop(func(h message.Header, n int) bool {
		return h.IsResponse() && n == 0 && (h.Exchange == message.ExchangeIKESAInit || h.Exchange == message.ExchangeIKEAuth)
	})
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if n := i.conn.sent("IKE_SA_INIT/req"); n != 2 {
		t.Fatalf("IKE_SA_INIT sent %d times, want 2", n)
	}
	if n := i.conn.sent("IKE_AUTH/req"); n != 2 {
		t.Fatalf("IKE_AUTH sent %d times, want 2", n)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	if l := r.inst.Log(); len(l) != 2 {
		t.Fatalf("responder installed %v: the duplicate was processed again", l)
	}
	if !hasLine(r.log.String(), "retransmitted request, resending response") {
		t.Fatal("responder did not answer the duplicate from its cache")
	}
	// A liveness request whose answer is lost: retransmitted and answered.
	r.conn.setDrop(func(h message.Header, n int) bool {
		return h.IsResponse() && h.Exchange == message.ExchangeInformational && n == 0
	})
	if err := i.e.ping(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if n := i.conn.sent("INFORMATIONAL/req"); n != 2 {
		t.Fatalf("INFORMATIONAL sent %d times, want 2", n)
	}
}

func TestGiveUp(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := startPair(t, ci, cr)
	r.conn.setDrop(func(h message.Header, n int) bool { return true })
	err := i.e.Initiate(ctx(t), "test")
	if err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("Initiate: %v", err)
	}
	// 1 + Tries sends with Tries = 3.
	if n := i.conn.sent("IKE_SA_INIT/req"); n != 4 {
		t.Fatalf("sent %d times, want 4", n)
	}
	if len(i.e.List()) != 0 {
		t.Fatal("IKE SA kept after giving up")
	}
}

func TestKeyLog(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := startPair(t, ci, cr)
	var kl, ke logBuffer
	i.e.keylogIKE, i.e.keylogESP = &kl, &ke // before anything runs on the loop
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	lines := strings.Split(strings.TrimSpace(kl.String()), "\n")
	if len(lines) != 1 || strings.Count(ke.String(), "\n") != 2 {
		t.Fatalf("key logs:\n%s\n%s", kl.String(), ke.String())
	}
	l := i.e.List()[0]
	if !strings.HasPrefix(lines[0], strings.ToLower(hex16(l.SPIi))+","+hex16(l.SPIr)+",") || !strings.Contains(lines[0], `"AES-GCM-128 with 16 octet ICV [RFC5282]"`) {
		t.Fatalf("ikev2_decryption_table row %q", lines[0])
	}
	in := i.inst.Inbound()[0]
	if !strings.Contains(ke.String(), `"IPv4","127.0.0.2","127.0.0.1","0x`+hex8(in.SPI)+`","AES-GCM with 16 octet ICV [RFC4106]","0x`+hexb(in.Key)+`","NULL"`) {
		t.Fatalf("esp_sa rows:\n%s", ke.String())
	}
}

func hex16(v uint64) string { return strings.ToLower(strings.TrimSpace(fmtHex(v, 16))) }
func hex8(v uint32) string  { return fmtHex(uint64(v), 8) }
func fmtHex(v uint64, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}
func hexb(b []byte) string {
	var s bytes.Buffer
	for _, x := range b {
		s.WriteString(fmtHex(uint64(x), 2))
	}
	return s.String()
}

func TestIPv6(t *testing.T) {
	lo := netip.MustParseAddr("::1")
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.LocalAddr, ci.RemoteAddr, cr.LocalAddr, cr.RemoteAddr = lo, lo, lo, lo
	ci.Children[0].LocalTS, ci.Children[0].RemoteTS = mustTS(t, "2001:db8:1::/48"), mustTS(t, "2001:db8:2::/48")
	cr.Children[0].LocalTS, cr.Children[0].RemoteTS = mustTS(t, "2001:db8:2::/64"), mustTS(t, "2001:db8:1::/48")
	ci.ForceEncap = true
	i, r := startPairAt(t, ci, cr, lo, lo)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	out := i.inst.Outbound()[0]
	want := sad.Selector{Src: netip.MustParsePrefix("2001:db8:1::/48"), Dst: netip.MustParsePrefix("2001:db8:2::/64"),
		SrcPorts: sad.PortRange{Lo: 0, Hi: 0xffff}, DstPorts: sad.PortRange{Lo: 0, Hi: 0xffff}}
	if pol := i.inst.Policies(out.SPI); len(pol) != 1 || pol[0] != want || !out.Encap.Enabled() || out.Remote != lo {
		t.Fatalf("SA %+v, policy %+v", out, pol)
	}
}
