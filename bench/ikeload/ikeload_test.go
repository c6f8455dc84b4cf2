package ikeload

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

func TestScheduleHonoursConcurrency(t *testing.T) {
	for _, tc := range []struct{ n, c, wantMax int }{
		{n: 1, c: 1, wantMax: 1},
		{n: 50, c: 1, wantMax: 1},
		{n: 50, c: 8, wantMax: 8},
		{n: 5, c: 32, wantMax: 5}, // never more workers than setups
		{n: 200, c: 32, wantMax: 32},
	} {
		var inFlight, maxSeen atomic.Int64
		var mu sync.Mutex
		seen := make([]int, tc.n)
		workers := map[int]bool{}
		schedule(context.Background(), tc.n, tc.c, func(w, i int) {
			cur := inFlight.Add(1)
			for m := maxSeen.Load(); cur > m && !maxSeen.CompareAndSwap(m, cur); m = maxSeen.Load() {
			}
			time.Sleep(2 * time.Millisecond) // hold the slot so overlap happens
			inFlight.Add(-1)
			mu.Lock()
			seen[i]++
			workers[w] = true
			mu.Unlock()
		})
		if got := int(maxSeen.Load()); got != tc.wantMax {
			t.Errorf("n=%d c=%d: max in flight %d, want %d", tc.n, tc.c, got, tc.wantMax)
		}
		for i, k := range seen {
			if k != 1 {
				t.Errorf("n=%d c=%d: index %d ran %d times", tc.n, tc.c, i, k)
			}
		}
		for w := range workers {
			if w < 0 || w >= tc.c {
				t.Errorf("worker id %d out of range [0,%d)", w, tc.c)
			}
		}
	}
}

func TestScheduleStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran, lateStarts atomic.Int64
	var canceled atomic.Bool
	schedule(ctx, 100000, 4, func(_, i int) {
		if canceled.Load() {
			lateStarts.Add(1)
		}
		if ran.Add(1) == 10 {
			cancel()
			canceled.Store(true)
		}
	})
	// Once cancel has returned, each of the other three workers may start
	// at most the one call it had already taken; nothing after that.
	if n := lateStarts.Load(); n > 3 {
		t.Fatalf("%d calls started after the cancel, want at most 3", n)
	}
	if n := ran.Load(); n < 10 || n >= 100000 {
		t.Fatalf("ran %d calls, want the run to stop soon after 10", n)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	// The worked examples of the nearest-rank method on Wikipedia's
	// "Percentile" page.
	five := ms(15, 20, 35, 40, 50)
	ten := ms(3, 6, 7, 8, 8, 10, 13, 15, 16, 20)
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		data []time.Duration
		p    float64
		want time.Duration
	}{
		{five, 5, 15 * time.Millisecond},
		{five, 30, 20 * time.Millisecond},
		{five, 40, 20 * time.Millisecond},
		{five, 50, 35 * time.Millisecond},
		{five, 100, 50 * time.Millisecond},
		{ten, 25, 7 * time.Millisecond},
		{ten, 50, 8 * time.Millisecond},
		{ten, 75, 15 * time.Millisecond},
		{ten, 100, 20 * time.Millisecond},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 90, 90 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{nil, 50, 0},
	} {
		if got := percentile(tc.data, tc.p); got != tc.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", tc.data, tc.p, got, tc.want)
		}
	}
}

func TestReportFinish(t *testing.T) {
	r := &Report{Duration: 2 * time.Second, Failures: map[string]int{CauseTimeoutInit: 3, "IKE_AUTH: AUTHENTICATION_FAILED": 1}}
	lats := []time.Duration{4, 1, 3, 2}
	r.finish(lats)
	if r.Succeeded != 4 || r.Failed != 4 || r.SetupsPerSecond != 2 {
		t.Fatalf("succeeded %d failed %d rate %v, want 4, 4, 2", r.Succeeded, r.Failed, r.SetupsPerSecond)
	}
	if r.Latency.P50 != 2 || r.Latency.Max != 4 || r.Latency.Mean != 2 {
		t.Fatalf("latency %+v", r.Latency)
	}
	var b strings.Builder
	if err := r.WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"setups_per_second": 2`) {
		t.Fatalf("json %q, %v", b.String(), err)
	}
	b.Reset()
	if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "timeout IKE_SA_INIT") {
		t.Fatalf("text %q, %v", b.String(), err)
	}
}

func TestConfigProfile(t *testing.T) {
	base := Config{Target: netip.MustParseAddrPort("192.0.2.1:500"), N: 10, C: 2, PSK: []byte("k")}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no target", func(c *Config) { c.Target = netip.AddrPort{} }, "target"},
		{"zero C", func(c *Config) { c.C = 0 }, "positive"},
		{"no psk", func(c *Config) { c.PSK = nil }, "PSK"},
		{"two groups", func(c *Config) { c.IKEProposal = "aes128gcm16-prfsha256-x25519-ecp256" }, "exactly one"},
		{"esp pfs", func(c *Config) { c.ESPProposal = "aes128gcm16-x25519" }, "PFS"},
		{"small pool", func(c *Config) { c.TSi = netip.MustParsePrefix("10.0.0.0/30") }, "fewer than"},
		{"ip template", func(c *Config) { c.LocalID = "10.0.0.%d" }, "FQDN"},
		{"bad proposal", func(c *Config) { c.IKEProposal = "rot13" }, "IKE proposal"},
	} {
		c := base
		tc.mod(&c)
		d := c.withDefaults()
		_, err := d.profile()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
		}
	}
	d := base.withDefaults()
	p, err := d.profile()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.tsi(258); got != netip.MustParsePrefix("100.64.1.2/32") {
		t.Errorf("tsi(258) = %v", got)
	}
	if id := p.localID(7); string(id.Data) != "load-7.ikeload.test" || id.Type != iana.IDFQDN {
		t.Errorf("localID(7) = %v", id)
	}
}

func TestSourcesFromPrefix(t *testing.T) {
	got, err := SourcesFromPrefix(netip.MustParsePrefix("198.18.0.0/16"), 3)
	if err != nil || len(got) != 3 || got[0].String() != "198.18.0.1" || got[2].String() != "198.18.0.3" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := SourcesFromPrefix(netip.MustParsePrefix("198.18.0.0/30"), 4); err == nil {
		t.Fatal("4 sources from a /30 accepted")
	}
	if a := addAddr(netip.MustParseAddr("10.0.0.255"), 1); a.String() != "10.0.1.0" {
		t.Fatalf("carry: %v", a)
	}
}

func TestChosenRejectsWhatWasNotOffered(t *testing.T) {
	offer, err := ike.ParseProposal(message.ProtocolIKE, "aes128gcm16-prfsha256-x25519")
	if err != nil {
		t.Fatal(err)
	}
	ok := offer.Wire(1, nil, true)
	suite, g, err := chosen(offer, &message.SA{Proposals: []message.Proposal{ok}}, message.ProtocolIKE)
	if err != nil || g != iana.GroupCurve25519 || suite.Encr != iana.EncrAESGCM16 || suite.KeyBits != 128 || suite.PRF != iana.PRFHMACSHA2_256 {
		t.Fatalf("own proposal: %+v %v %v", suite, g, err)
	}
	other, _ := ike.ParseProposal(message.ProtocolIKE, "aes256gcm16-prfsha256-x25519")
	twoEncr := offer.Wire(1, nil, true)
	twoEncr.Transforms = append(twoEncr.Transforms, twoEncr.Transforms[0])
	for name, sa := range map[string]*message.SA{
		"other key length": {Proposals: []message.Proposal{other.Wire(1, nil, true)}},
		"two proposals":    {Proposals: []message.Proposal{ok, ok}},
		"two encr":         {Proposals: []message.Proposal{twoEncr}},
		"none":             nil,
	} {
		if _, _, err := chosen(offer, sa, message.ProtocolIKE); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRunAgainstXdpsec runs n=50 setups against an in-process xdpsec
// responder on loopback (high ports, so no privileges are needed), checks
// the generator's report and that the responder holds 50 IKE SAs with one
// Child SA each.
func TestRunAgainstXdpsec(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	psk := []byte("ikeload test key")
	srv, err := ServeXdpsec(ServeConfig{Addr: lo, IKEPort: 0, NATTPort: 0, PSK: psk, HalfOpenLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ip, np := srv.Ports()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		Target: netip.AddrPortFrom(lo, ip), NATTPort: np, N: 50, C: 8, PSK: psk,
		KEReuse: 4, Retransmit: ike.Retransmit{Timeout: 2 * time.Second, Tries: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Succeeded != 50 || rep.Failed != 0 {
		t.Fatalf("succeeded %d, failed %d: %v", rep.Succeeded, rep.Failed, rep.Examples)
	}
	if rep.MaxInFlight < 1 || rep.MaxInFlight > 8 {
		t.Errorf("max in flight %d, want 1..8", rep.MaxInFlight)
	}
	if rep.SetupsPerSecond <= 0 || rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
		t.Errorf("rate %v latency %+v", rep.SetupsPerSecond, rep.Latency)
	}
	// The responder installs the outbound half after it has sent the
	// IKE_AUTH response, so the last one may lag the generator a little.
	in, out := srv.Installer.Counts()
	for deadline := time.Now().Add(2 * time.Second); out < 50 && time.Now().Before(deadline); in, out = srv.Installer.Counts() {
		time.Sleep(5 * time.Millisecond)
	}
	if in != 50 || out != 50 {
		t.Errorf("responder installed %d inbound and %d outbound SAs, want 50 each", in, out)
	}
	sas := srv.Engine.List()
	if len(sas) != 50 {
		t.Fatalf("responder has %d IKE SAs, want 50", len(sas))
	}
	ids := map[string]bool{}
	for _, sa := range sas {
		if sa.State != ike.StateEstablished || len(sa.Children) != 1 {
			t.Errorf("SA %x: state %v, %d children", sa.SPIi, sa.State, len(sa.Children))
		}
		ids[sa.RemoteID] = true
	}
	if len(ids) != 50 {
		t.Errorf("%d distinct initiator identities, want 50", len(ids))
	}

	// Several source addresses (IP_FREEBIND; all of 127/8 is local) and
	// one shared identity: the responder tells the SAs apart by SPI.
	srcs, err := SourcesFromPrefix(netip.MustParsePrefix("127.0.1.0/24"), 3)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Run(ctx, Config{Target: netip.AddrPortFrom(lo, ip), NATTPort: np, N: 9, C: 3, PSK: psk,
		Sources: srcs, LocalID: "shared@ikeload.test"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Succeeded != 9 {
		t.Fatalf("multi-source: succeeded %d: %v", rep.Succeeded, rep.Examples)
	}
	peers := map[netip.Addr]int{}
	for _, sa := range srv.Engine.List() {
		if sa.RemoteID == "shared@ikeload.test" {
			peers[sa.Remote.Addr()]++
		}
	}
	for _, a := range srcs {
		if peers[a] != 3 {
			t.Errorf("source %v: %d IKE SAs at the responder, want 3 (%v)", a, peers[a], peers)
		}
	}

	// A wrong key fails every setup with the responder's notification.
	rep, err = Run(ctx, Config{Target: netip.AddrPortFrom(lo, ip), NATTPort: np, N: 3, C: 3, PSK: []byte("wrong")})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failures["IKE_AUTH: AUTHENTICATION_FAILED"] != 3 {
		t.Errorf("wrong PSK: failures %v", rep.Failures)
	}
	// A proposal the responder does not have fails in IKE_SA_INIT.
	rep, err = Run(ctx, Config{Target: netip.AddrPortFrom(lo, ip), NATTPort: np, N: 2, C: 1, PSK: psk, IKEProposal: "aes256gcm16-prfsha384-ecp384"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failures["IKE_SA_INIT: NO_PROPOSAL_CHOSEN"] != 2 {
		t.Errorf("wrong proposal: failures %v", rep.Failures)
	}
}

// TestRunTimesOut checks retransmission counting and the timeout cause
// against a port where nothing answers.
func TestRunTimesOut(t *testing.T) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	port := uint16(sink.LocalAddr().(*net.UDPAddr).Port)
	rep, err := Run(context.Background(), Config{
		Target: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), NATTPort: port, N: 2, C: 2, PSK: []byte("k"),
		Retransmit: ike.Retransmit{Timeout: 20 * time.Millisecond, Base: 1, Tries: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failures[CauseTimeoutInit] != 2 || rep.Retransmissions != 4 {
		t.Fatalf("failures %v, retransmissions %d; want 2 timeouts, 4 retransmissions", rep.Failures, rep.Retransmissions)
	}
}

func TestSetupErrorWraps(t *testing.T) {
	base := errors.New("boom")
	e := &setupError{cause: CauseLocal, err: base}
	if !errors.Is(e, base) || e.Error() != "local error: boom" {
		t.Fatalf("%v", e)
	}
}
