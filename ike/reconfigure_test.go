package ike

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/message"
)

// TestReconfigure: the engine's live reconfiguration. Removing a
// connection deletes its IKE SA with the peer (which then holds nothing)
// and takes it out of the gate's view; adding it back with start_action
// start brings it up by itself; replacing it without its child deletes
// that child's SAs with the peer and keeps the IKE SA; replacing it with
// a new ESP proposal keeps the Child SA until a rekey, which uses the new
// one; a start_action changed to start initiates; SetDefence changes the
// cookie policy the gate reads.
func TestReconfigure(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16, aes256gcm16")
	ci.Children[0].ESPProposals = mustProposals(t, message.ProtocolESP, "aes128gcm16")
	i, r := upPair(t, ci, cr)
	if err := i.e.AddConnection(ctx(t), ci); err == nil {
		t.Error("a second connection of the same name was added")
	}
	// Replace with a new proposal: nothing happens until the rekey.
	spi := i.e.List()[0].Children[0].SPIIn
	c2 := ci
	c2.Local.PSK, c2.Remote.PSK = append([]byte(nil), ci.Local.PSK...), append([]byte(nil), ci.Remote.PSK...)
	c2.Children = slices.Clone(ci.Children)
	c2.Children[0].ESPProposals = mustProposals(t, message.ProtocolESP, "aes256gcm16")
	if err := i.e.ReplaceConnection(ctx(t), c2); err != nil {
		t.Fatal(err)
	}
	if ls := i.e.List(); ls[0].Children[0].SPIIn != spi || !strings.HasPrefix(ls[0].Children[0].Proposal, "aes128gcm16") {
		t.Errorf("a replaced connection's Child SA changed before its rekey: %+v", ls[0].Children)
	}
	if err := i.e.RekeyChildren(ctx(t), "test", "net"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	if p := i.e.List()[0].Children[0].Proposal; !strings.HasPrefix(p, "aes256gcm16") {
		t.Errorf("after the rekey: %s, want aes256gcm16", p)
	}
	// Replace without the child: its SAs go, the IKE SA stays.
	c3 := c2
	c3.Children = []ChildConfig{c2.Children[0]}
	c3.Children[0].Name = "other"
	if err := i.e.ReplaceConnection(ctx(t), c3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dropped child's SAs gone on both ends", func() bool {
		return len(i.inst.Active()) == 0 && len(r.inst.Active()) == 0 && len(r.inst.Inbound()) == 0
	})
	if ls := i.e.List(); len(ls) != 1 || ls[0].State != StateEstablished {
		t.Errorf("the IKE SA did not stay: %+v", ls)
	}
	// Remove: deleted with the peer, gone from the gate.
	if !i.e.acceptsPeer(addrI, addrR) {
		t.Fatal("the gate does not know the connection")
	}
	if err := i.e.RemoveConnection(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if len(i.e.List()) != 0 || len(r.e.List()) != 0 || len(i.e.Connections()) != 0 {
		t.Errorf("after RemoveConnection: %d and %d IKE SAs, connections %v", len(i.e.List()), len(r.e.List()), i.e.Connections())
	}
	if i.e.acceptsPeer(addrI, addrR) {
		t.Error("the gate still admits the removed connection's peer")
	}
	if err := i.e.RemoveConnection(ctx(t), "test"); err == nil {
		t.Error("removing an unknown connection succeeded")
	}
	// Added back with start_action none: it waits; its start_action
	// changed to start: it comes up by itself.
	if err := i.e.AddConnection(ctx(t), ci); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(i.e.List()); n != 0 {
		t.Errorf("a connection added with start_action none has %d IKE SAs", n)
	}
	c4 := ci
	c4.StartAction = StartStart
	if err := i.e.ReplaceConnection(ctx(t), c4); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	// The gate's cookie policy.
	if i.e.cookiesRequired() {
		t.Fatal("cookies required with no load")
	}
	if err := i.e.SetDefence(ctx(t), Defence{CookiesAlways: true}); err != nil {
		t.Fatal(err)
	}
	if !i.e.cookiesRequired() {
		t.Error("SetDefence(CookiesAlways) did not reach the gate")
	}
}

// TestSameAsLiveChange: what a reload counts as unchanged (SameAs:
// every setting, keys and certificates by their encoding) and what it
// can apply to running SAs (LiveChange) rather than set the connection
// up again.
func TestSameAsLiveChange(t *testing.T) {
	pki := newPKI(t)
	key := genKey(t, "ecdsa")
	cert := pki.issue(t, "gw.test", key)
	base := func() Connection {
		c, _ := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
		c.Remote.PSK = nil
		c.Remote.CAs = []*x509.Certificate{pki.ca}
		return c
	}
	for _, tc := range []struct {
		name       string
		edit       func(c *Connection)
		same, live bool
	}{
		{"identical", func(*Connection) {}, true, true},
		{"the same CA parsed again", func(c *Connection) {
			ca, _ := x509.ParseCertificate(pki.ca.Raw)
			c.Remote.CAs = []*x509.Certificate{ca}
		}, true, true},
		{"psk", func(c *Connection) { c.Local.PSK = []byte("another pre-shared key, long enough") }, false, true},
		{"certificate and key", func(c *Connection) {
			c.Local.PSK, c.Local.Certificate, c.Local.Key = nil, cert, key
		}, false, true},
		{"another CA", func(c *Connection) { c.Remote.CAs = []*x509.Certificate{newPKI(t).ca} }, false, true},
		{"esp proposal", func(c *Connection) {
			c.Children = slices.Clone(c.Children)
			c.Children[0].ESPProposals = mustProposals(t, message.ProtocolESP, "aes256gcm16")
		}, false, true},
		{"rekey time", func(c *Connection) { c.IKERekeyTime = time.Hour }, false, true},
		{"start action", func(c *Connection) { c.StartAction = StartTrap }, false, true},
		{"traffic selectors", func(c *Connection) {
			c.Children = slices.Clone(c.Children)
			c.Children[0].RemoteTS = mustTS(t, "198.18.3.0/24")
		}, false, false},
		{"child added", func(c *Connection) {
			c.Children = append(slices.Clone(c.Children), c.Children[0])
			c.Children[1].Name = "two"
		}, false, false},
		{"remote address", func(c *Connection) { c.RemoteAddr = addrI }, false, false},
		{"encap", func(c *Connection) { c.ForceEncap = true }, false, false},
	} {
		a, b := base(), base()
		tc.edit(&b)
		if got := a.SameAs(&b); got != tc.same {
			t.Errorf("%s: SameAs %v, want %v", tc.name, got, tc.same)
		}
		if got := a.LiveChange(&b); got != tc.live {
			t.Errorf("%s: LiveChange %v, want %v", tc.name, got, tc.live)
		}
	}
}
