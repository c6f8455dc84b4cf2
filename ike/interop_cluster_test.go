package ike

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/iketest"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
	"github.com/xdpsec/xdpsec/internal/swantest"
	"github.com/xdpsec/xdpsec/internal/testlab"
)

// takeoverConf is charon's swanctl.conf for TestStrongSwanTakeover: charon
// initiates "tous" to xdpsec, with DPD every second.
func takeoverConf() string {
	return `connections {
	tous {
		local_addrs = ` + labCharon + `
		remote_addrs = ` + labOurs + `
		proposals = aes256-sha256-modp2048
		dpd_delay = 1s
		local { auth = psk
			id = charon2.test }
		remote { auth = psk
			id = xdpsec2.test }
		children { tous { local_ts = ` + charonNet2 + `
			remote_ts = ` + ourNet2 + `
			esp_proposals = aes256-sha256 } }
	}
}
secrets {
	ike-b {
		id-a = charon2.test
		id-b = xdpsec2.test
		secret = "` + labPSK + `"
	}
}
`
}

// TestStrongSwanTakeover: charon 5.9.8 brings an IKE SA up with our active
// engine A, which exports it to the standby B; A dies, B takes its
// address and activates the IKE SA. charon's DPD is answered by B, charon
// rekeys the Child SA and the IKE SA with B, B rekeys them too, and charon
// never sends a second IKE_SA_INIT: its IKE SA is the same one until its
// rekey. It also records whether charon announces RFC 6311 support.
// Variants leave B one exchange behind: charon's last DPD answered by A,
// or A's last request answered by charon, without B hearing of it (B has
// the request, whose start is replicated at once, not the answer).
func TestStrongSwanTakeover(t *testing.T) {
	testlab.RequireRoot(t, "strongSwan interop: network namespaces")
	swantest.Need(t)
	for _, lag := range []string{"none", "peer-ahead", "we-ahead"} {
		t.Run(lag, func(t *testing.T) { strongSwanTakeover(t, lag) })
	}
}

func strongSwanTakeover(t *testing.T, lag string) {
	dir := t.TempDir()
	id := "xtko" + testlab.Tag()
	ours := testlab.NewNetns(t, id+"o", testlab.LoUp)
	nsCharon := testlab.NewNetns(t, id+"c", testlab.LoUp)
	testlab.Veth(t, &testlab.End{NS: ours, Name: id + "a", Addr: netip.MustParsePrefix(labOurs + "/24")},
		&testlab.End{NS: nsCharon, Name: id + "b", Addr: netip.MustParsePrefix(labCharon + "/24")}, 0)
	nsCharon.IP(t, "addr", "add", "198.18.14.1/24", "dev", "lo")
	charon := swantest.StartCharon(t, nsCharon, swantest.CharonConfig{
		Dir: dir, Settings: []string{"install_routes = no", "retransmit_tries = 3", "retransmit_timeout = 1.0"},
		Swanctl: takeoverConf(), Stop: 3 * time.Second,
	})
	l := &swanLab{t: t, dir: dir, ours: ours, charon: charon}
	addr := netip.MustParseAddr(labOurs)
	psk := func() []byte { return []byte(labPSK) }
	conn := Connection{
		Name: "fromcharon", LocalAddr: addr, RemoteAddr: netip.MustParseAddr(labCharon),
		Local: AuthConfig{ID: mustID(t, "xdpsec2.test"), PSK: psk()}, Remote: AuthConfig{ID: mustID(t, "charon2.test"), PSK: psk()},
		IKEProposals: mustProposals(t, message.ProtocolIKE, "aes256-sha256-modp2048"),
		Children: []ChildConfig{{Name: "net2", LocalTS: mustTS(t, ourNet2), RemoteTS: mustTS(t, charonNet2),
			ESPProposals: mustProposals(t, message.ProtocolESP, "aes256-sha256")}},
	}
	exports := make(chan IKESAState, 1024)
	var pushed, imported atomic.Int64 // exports sent to B, and taken by it
	var importMu sync.Mutex           // an Import and the Activate never overlap
	activated := false
	var holdMu sync.Mutex
	hold, held := false, 0
	mk := func(name string, tc transport.Conn, export func(IKESAState)) *peer {
		p := &peer{inst: NewMemInstaller(), conn: &lossyConn{Conn: tc, count: map[string]int{}, msgs: map[string]int{}}, log: &logBuffer{}}
		c := conn
		c.Local.PSK, c.Remote.PSK = psk(), psk()
		e, err := New(Config{Connections: []Connection{c}, Export: export,
			Logger: slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}, p.conn, p.inst)
		if err != nil {
			t.Fatal(err)
		}
		p.e = e
		t.Cleanup(func() {
			e.Close()
			if t.Failed() {
				t.Logf("log of %s:\n%s", name, p.log.String())
			}
		})
		return p
	}
	ua := l.listenIn(addr)
	a := mk("active", ua, func(s IKESAState) {
		holdMu.Lock()
		defer holdMu.Unlock()
		if hold && s.PendingRequest == nil { // a request's start is replicated at once
			held++
			s.Wipe()
			return
		}
		pushed.Add(1)
		exports <- s
	})
	sw := iketest.NewSwitchConn(500, 4500)
	b := mk("standby", sw, nil)
	importDone := make(chan struct{})
	go func() {
		defer close(importDone)
		for s := range exports {
			// Like the daemon's follower, which stops at the take: an
			// export still queued when B is activated is dropped.
			importMu.Lock()
			if !activated {
				if err := b.e.Import(s); err != nil {
					t.Errorf("import: %v", err)
				}
			}
			importMu.Unlock()
			s.Wipe()
			imported.Add(1)
		}
	}()
	t.Cleanup(func() { close(exports); <-importDone })

	l.swanctl("--initiate", "--child", "tous", "--timeout", "10")
	list := charon.WaitSA(t, "tous", 5*time.Second, func(list string) bool { return reSwanIKE.MatchString(list) })
	spis := reSwanIKE.FindStringSubmatch(list)
	waitFor(t, "the standby to hold the IKE SA", func() bool {
		la, lb := a.e.List(), b.e.List()
		return len(la) == 1 && len(lb) == 1 && la[0].SPIi == lb[0].SPIi && len(lb[0].Children) == 1 && b.e.Standby() == 1
	})
	time.Sleep(2500 * time.Millisecond) // charon's DPDs, answered by A and exported
	waitFor(t, "B to hold A's state", func() bool {
		var same bool
		a.e.do(ctx(t), func() {
			for _, sa := range a.e.sas {
				b.e.do(ctx(t), func() {
					sb := b.e.sas[sa.localSPI()]
					same = sb != nil && sb.nextMID == sa.nextMID && sb.peerMID == sa.peerMID
				})
			}
		})
		return same
	})
	holdMu.Lock()
	hold = lag != "none"
	holdMu.Unlock()
	switch lag {
	case "peer-ahead":
		resp := a.conn.sent("INFORMATIONAL/resp")
		waitFor(t, "charon's next DPD answered by A", func() bool { return a.conn.sent("INFORMATIONAL/resp") > resp })
	case "we-ahead":
		if err := a.e.Ping(ctx(t), "fromcharon"); err != nil {
			t.Fatal(err)
		}
	}
	if lag != "none" {
		waitFor(t, "an export withheld", func() bool { holdMu.Lock(); defer holdMu.Unlock(); return held > 0 })
	}

	// What A exported (its request in flight in "we-ahead") has reached B
	// before A dies: the test is about the lag it chose, not a queue's.
	waitFor(t, "B to import every export sent", func() bool { return pushed.Load() == imported.Load() })

	// A dies; B takes its address and the IKE SA.
	a.e.Close()
	ua.Close()
	ub := l.listenIn(addr)
	t.Cleanup(func() { ub.Close() })
	sw.Attach(ub)
	importMu.Lock()
	activated = true
	n := b.e.Activate(nil)
	importMu.Unlock()
	if n != 1 {
		t.Fatalf("activated %d IKE SAs", n)
	}
	dpd0 := b.conn.sent("INFORMATIONAL/resp")
	waitFor(t, "charon's DPD answered by B", func() bool { return b.conn.sent("INFORMATIONAL/resp") > dpd0 })
	if got := reSwanIKE.FindStringSubmatch(l.swanctl("--list-sas", "--ike", "tous")); got == nil || got[1] != spis[1] || got[2] != spis[2] {
		t.Fatalf("charon's IKE SA changed at the takeover: %v -> %v", spis, got)
	}
	childOf := func() uint32 {
		if li := b.e.List(); len(li) == 1 && len(li[0].Children) == 1 {
			return li[0].Children[0].SPIIn
		}
		return 0
	}
	c0 := childOf()
	l.swanctl("--rekey", "--child", "tous")
	waitFor(t, "charon's Child SA rekey with B", func() bool { c := childOf(); return c != 0 && c != c0 })
	if err := b.e.RekeyChildren(ctx(t), "fromcharon", "net2"); err != nil {
		t.Fatal(err)
	}
	l.swanctl("--rekey", "--ike", "tous")
	waitFor(t, "charon's IKE SA rekey with B", func() bool {
		li := b.e.List()
		return len(li) == 1 && li[0].SPIi != 0 && strings.ToLower(spis[1]) != hex16(li[0].SPIi)
	})
	if err := b.e.RekeyIKE(ctx(t), "fromcharon"); err != nil {
		t.Fatal(err)
	}
	if err := b.e.Ping(ctx(t), "fromcharon"); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "charon.log"))
	if n := strings.Count(string(log), "generating IKE_SA_INIT request"); n != 1 {
		t.Fatalf("charon sent %d IKE_SA_INIT requests, want 1", n)
	}
	if n := b.conn.sent("IKE_SA_INIT/resp") + b.conn.sent("IKE_SA_INIT/req"); n != 0 {
		t.Fatalf("B sent %d IKE_SA_INIT messages", n)
	}
	if lag == "peer-ahead" && !strings.Contains(b.log.String(), "one ahead") {
		t.Fatal("B did not take charon's request one ahead")
	}
	if lag == "we-ahead" && !strings.Contains(string(log), "received retransmit of request with ID") {
		t.Fatal("charon did not answer B's probe from its cache")
	}
	t.Logf("charon announces RFC 6311 (MSG_ID_SYN_SUP in its IKE_AUTH): %v", strings.Contains(string(log), "MSG_ID_SYN_SUP"))
	t.Logf("charon's IKE_AUTH request: %s", grepLines(string(log), "generating IKE_AUTH request"))
}
