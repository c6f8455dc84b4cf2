package sad

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/fastpath/packet"
)

func TestReserveSeqNeverWraps(t *testing.T) {
	sa := testSA(t, 0x300)
	sa.SetSeq(1<<32 - 4)
	first, got := sa.ReserveSeq(2)
	if first != 1<<32-3 || got != 2 {
		t.Fatalf("got %d,%d", first, got)
	}
	if !sa.NeedsRekey() {
		t.Fatal("near the limit but no rekey asked")
	}
	first, got = sa.ReserveSeq(5)
	if first != 1<<32-1 || got != 1 {
		t.Fatalf("last number: got %d,%d", first, got)
	}
	if _, got = sa.ReserveSeq(1); got != 0 || !sa.SeqExhausted() {
		t.Fatal("sequence number wrapped or was not refused")
	}
	if _, got = sa.ReserveSeq(1); got != 0 {
		t.Fatal("refusal not sticky")
	}
}

// TestReserveSeqLimit: numbers above the limit a state store made durable
// are never handed out, and running into the limit is not exhaustion.
func TestReserveSeqLimit(t *testing.T) {
	sa := testSA(t, 0x303)
	if sa.SeqLimit() != 1<<32-1 {
		t.Fatalf("new SA limited at %d", sa.SeqLimit())
	}
	sa.SetSeq(100)
	sa.SetSeqLimit(103)
	if first, got := sa.ReserveSeq(5); first != 101 || got != 3 {
		t.Fatalf("got %d,%d, want 101,3", first, got)
	}
	if _, got := sa.ReserveSeq(1); got != 0 {
		t.Fatal("handed out a number above the limit")
	}
	if sa.SeqExhausted() || sa.NeedsRekey() || sa.SeqDrop() != ErrSeqUnreserved {
		t.Fatalf("limit taken for exhaustion: %v", sa.SeqDrop())
	}
	sa.SetSeqLimit(200)
	if first, got := sa.ReserveSeq(2); first != 104 || got != 2 {
		t.Fatalf("after raising the limit: %d,%d", first, got)
	}
	sa.SetSeqLimit(^uint64(0)) // clamped to the 32-bit space
	sa.SetSeq(1<<32 - 1)
	if _, got := sa.ReserveSeq(1); got != 0 || !sa.SeqExhausted() || sa.SeqDrop() != ErrSeqExhausted {
		t.Fatal("limit above the sequence space let the counter wrap")
	}
}

func TestReserveSeqESN(t *testing.T) {
	sa, err := New(Config{SPI: 0x301, Dir: Outbound, Mode: Tunnel,
		Local: netip.MustParseAddr("2001:db8::1"), Remote: netip.MustParseAddr("2001:db8::2"),
		Suite: AESGCM256, Key: make([]byte, 36), ESN: true})
	if err != nil {
		t.Fatal(err)
	}
	sa.SetSeq(1<<32 - 1)
	if first, got := sa.ReserveSeq(2); first != 1<<32 || got != 2 {
		t.Fatalf("ESN must go past 2^32: %d,%d", first, got)
	}
	if sa.NeedsRekey() {
		t.Fatal("ESN SA asked for rekey far from its limit")
	}
	sa.SetSeq(^uint64(0) - 1)
	if _, got := sa.ReserveSeq(3); got != 1 {
		t.Fatalf("got %d at the 2^64 limit", got)
	}
	if _, got := sa.ReserveSeq(1); got != 0 || !sa.SeqExhausted() {
		t.Fatal("ESN counter wrapped")
	}
}

func TestLifetimes(t *testing.T) {
	sa := testSA(t, 0x302)
	sa.Lifetime = Lifetime{Soft: Limits{Packets: 10, Time: time.Hour}, Hard: Limits{Packets: 20, Bytes: 1 << 20}}
	sa.Account(5, 500)
	if sa.NeedsRekey() || !sa.Usable() {
		t.Fatal("fresh SA asks for rekey")
	}
	sa.Account(5, 500)
	if !sa.NeedsRekey() || !sa.Usable() {
		t.Fatal("soft packet limit not applied")
	}
	sa.Account(10, 500)
	if sa.Usable() || !sa.Expired() {
		t.Fatal("hard packet limit not applied")
	}
	sb := testSA(t, 0x303)
	sb.Lifetime.Hard.Time = time.Minute
	sb.CheckTime(sb.Created.Add(59 * time.Second))
	if !sb.Usable() {
		t.Fatal("expired early")
	}
	sb.CheckTime(sb.Created.Add(time.Minute))
	if sb.Usable() {
		t.Fatal("hard time limit not applied")
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{SPI: 0x1000, Dir: Outbound, Mode: Tunnel,
		Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
		Suite: AESGCM128, Key: make([]byte, 20)}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"reserved spi", func(c *Config) { c.SPI = 7 }, "reserved"},
		{"no dir", func(c *Config) { c.Dir = 0 }, "direction"},
		{"mixed families", func(c *Config) { c.Remote = netip.MustParseAddr("2001:db8::1") }, "families"},
		{"no endpoints", func(c *Config) { c.Local = netip.Addr{} }, "addresses"},
		{"short key", func(c *Config) { c.Key = make([]byte, 16) }, "key is 16 bytes"},
		{"cbc without integ", func(c *Config) { c.Suite = Suite{Cipher: CipherAESCBC, KeyBits: 128}; c.Key = make([]byte, 16) }, "integrity"},
		{"gcm icv 10", func(c *Config) { c.Suite.ICVLen = 10 }, "icv"},
		{"small window", func(c *Config) { c.ReplayWindow = 16 }, "minimum"},
		{"esn without window", func(c *Config) { c.Dir = Inbound; c.ESN = true; c.NoReplay = true }, "replay window"},
		{"udp half", func(c *Config) { c.Encap = UDPEncap{DstPort: 4500} }, "both ports"},
	}
	for _, tc := range cases {
		c := good
		tc.mod(&c)
		_, err := New(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestParseSuite(t *testing.T) {
	for _, s := range []string{"aes128gcm16", "aes256gcm16", "aes128gcm8", "aes256gcm12", "chacha20poly1305",
		"aes128-sha256", "aes256-sha384", "aes256-sha512", "null-sha256"} {
		su, err := ParseSuite(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if su.String() != s {
			t.Errorf("%s printed as %s", s, su)
		}
	}
	for _, s := range []string{"aes128gcm10", "aes100gcm16", "des-md5", "aes128", "aes128gcm16x", ""} {
		if _, err := ParseSuite(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestSelectorMatch(t *testing.T) {
	s := Selector{Src: netip.MustParsePrefix("198.18.1.0/24"), Dst: netip.MustParsePrefix("198.19.0.0/16"),
		Proto: 17, DstPorts: PortRange{Lo: 5000, Hi: 5999}}
	k := packet.FlowKey{Src: netip.MustParseAddr("198.18.1.9"), Dst: netip.MustParseAddr("198.19.7.7"), Proto: 17, SrcPort: 1, DstPort: 5201}
	if !s.Matches(&k) {
		t.Fatal("should match")
	}
	k2 := k
	k2.DstPort = 6000
	k3 := k
	k3.Proto = 6
	k4 := k
	k4.Src = netip.MustParseAddr("198.18.2.1")
	for i, kk := range []packet.FlowKey{k2, k3, k4} {
		if s.Matches(&kk) {
			t.Errorf("case %d should not match", i)
		}
	}
	r := s.Reverse()
	if r.Src != s.Dst || r.SrcPorts != s.DstPorts {
		t.Fatal("reverse")
	}
	var any Selector
	if !any.Matches(&k) {
		t.Fatal("zero selector must match all")
	}
}

// natSA is an outbound tunnel SA in UDP 4500, the kind that moves.
func natSA(t *testing.T, spi uint32) *SA {
	t.Helper()
	sa, err := New(Config{SPI: spi, Dir: Outbound, Mode: Tunnel,
		Local: netip.MustParseAddr("192.0.2.1"), Remote: netip.MustParseAddr("192.0.2.2"),
		Encap: UDPEncap{SrcPort: 4500, DstPort: 4500}, Suite: AESGCM256, Key: make([]byte, 36)})
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

// TestMovedKeepsSeqLimit: the moved copy keeps the SA's sequence limit
// (SetSeqLimit): a copy that started from the zero limit sent nothing at
// all (seq_unreserved), and one past the limit would go beyond a durable
// mark.
func TestMovedKeepsSeqLimit(t *testing.T) {
	for _, limit := range []uint64{0, 10, 1<<32 - 1} {
		sa := natSA(t, 0x303)
		if limit != 1<<32-1 {
			sa.SetSeqLimit(limit)
		}
		if _, n := sa.ReserveSeq(3); n != int(min(limit, 3)) {
			t.Fatalf("limit %d: reserved %d before the move", limit, n)
		}
		n, err := sa.Moved(sa.Local, netip.MustParseAddr("198.51.100.7"), UDPEncap{SrcPort: 4500, DstPort: 31337})
		if err != nil {
			t.Fatal(err)
		}
		if n.SeqLimit() != limit {
			t.Fatalf("moved SA's limit %d, want %d", n.SeqLimit(), limit)
		}
		want := uint64(min(limit-min(limit, 3), 5))
		if first, got := n.ReserveSeq(5); uint64(got) != want || (got > 0 && first != 4) {
			t.Fatalf("limit %d: moved SA reserved %d from %d, want %d from 4", limit, got, first, want)
		}
	}
}

// TestMovedPathMTU: a copy that only moved port keeps the learned path
// MTU; one that moved to another address learns its own.
func TestMovedPathMTU(t *testing.T) {
	sa := natSA(t, 0x304)
	sa.LowerPathMTU(1400, time.Now())
	port, err := sa.Moved(sa.Local, sa.Remote, UDPEncap{SrcPort: 4500, DstPort: 31337})
	if err != nil {
		t.Fatal(err)
	}
	if port.PathMTU() != 1400 {
		t.Fatalf("port move: path MTU %d, want 1400", port.PathMTU())
	}
	addr, err := port.Moved(sa.Local, netip.MustParseAddr("198.51.100.7"), UDPEncap{SrcPort: 4500, DstPort: 4500})
	if err != nil {
		t.Fatal(err)
	}
	if addr.PathMTU() != 0 {
		t.Fatalf("address move: path MTU %d, want none", addr.PathMTU())
	}
}

// TestMovedNeverReusesSeq: moving an outbound SA to a new peer address
// and UDP port keeps its keys and continues its sequence numbers, while
// workers that still reserve on the old SA, concurrently, get none; no
// number is handed out twice.
func TestMovedNeverReusesSeq(t *testing.T) {
	sa := natSA(t, 0x302)
	stop := make(chan struct{})
	got := make(chan [][2]uint64)
	for range 4 {
		go func() {
			var mine [][2]uint64
			for {
				select {
				case <-stop:
					got <- mine
					return
				default:
				}
				if first, n := sa.ReserveSeq(3); n > 0 {
					mine = append(mine, [2]uint64{first, uint64(n)})
				}
			}
		}()
	}
	time.Sleep(2 * time.Millisecond)
	remote := netip.MustParseAddr("198.51.100.7")
	n, err := sa.Moved(sa.Local, remote, UDPEncap{SrcPort: 4500, DstPort: 31337})
	if err != nil {
		t.Fatal(err)
	}
	var all [][2]uint64
	for range 100 {
		if first, k := n.ReserveSeq(3); k > 0 {
			all = append(all, [2]uint64{first, uint64(k)})
		}
	}
	close(stop)
	for range 4 {
		all = append(all, <-got...)
	}
	used := map[uint64]bool{}
	for _, r := range all {
		for s := r[0]; s < r[0]+r[1]; s++ {
			if used[s] {
				t.Fatalf("sequence number %d handed out twice", s)
			}
			used[s] = true
		}
	}
	if len(used) < 300 {
		t.Fatalf("only %d sequence numbers handed out", len(used))
	}
	if _, got := sa.ReserveSeq(1); got != 0 {
		t.Fatal("the old SA still hands out sequence numbers")
	}
	if n.Remote != remote || n.Encap.DstPort != 31337 || n.Crypto != sa.Crypto || n.SPI != sa.SPI {
		t.Fatalf("moved SA: %v %+v", n.Remote, n.Encap)
	}
	if r := n.OuterHdr[16:20]; netip.AddrFrom4([4]byte(r)) != remote {
		t.Fatalf("outer header still sends to %v", netip.AddrFrom4([4]byte(r)))
	}
	if _, err := n.Moved(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), UDPEncap{}); err == nil {
		t.Fatal("moved across address families")
	}
}
