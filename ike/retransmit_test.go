package ike

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// TestForgedRetransmitNotAnswered: a copy of an answered request resends
// the cached response only if it passes the integrity check; one with a
// flipped bit (anyone who saw the SPIs and message ID could send it) gets
// nothing and is counted.
func TestForgedRetransmitNotAnswered(t *testing.T) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	i, r := upPair(t, ci, cr)
	var mu sync.Mutex
	var req []byte
	i.conn.setMangle(func(h message.Header, data []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if h.Exchange == message.ExchangeInformational && !h.IsResponse() && req == nil {
			req = append([]byte(nil), data...)
		}
		return data
	})
	if err := i.e.ping(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	i.conn.setMangle(nil)
	mu.Lock()
	defer mu.Unlock()
	if req == nil {
		t.Fatal("no INFORMATIONAL request seen")
	}
	pi, _ := i.conn.Ports()
	pr, _ := r.conn.Ports()
	send := func(b []byte) {
		t.Helper()
		if err := i.conn.Conn.Send(transport.Packet{Data: b, Local: netip.AddrPortFrom(i.addr, pi), Remote: netip.AddrPortFrom(r.addr, pr)}); err != nil {
			t.Fatal(err)
		}
	}
	answered := r.conn.sent("INFORMATIONAL/resp")
	forged := append([]byte(nil), req...)
	forged[len(forged)-1] ^= 1 // the ICV
	send(forged)
	waitFor(t, "the forged retransmission counted", func() bool { return r.e.Stats().ForgedRetransmits == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := r.conn.sent("INFORMATIONAL/resp"); n != answered {
		t.Fatalf("a forged retransmission was answered (%d responses, had %d)", n, answered)
	}
	send(req)
	waitFor(t, "the genuine retransmission answered", func() bool { return r.conn.sent("INFORMATIONAL/resp") == answered+1 })
	if n := r.e.Stats().ForgedRetransmits; n != 1 {
		t.Fatalf("ForgedRetransmits = %d after a genuine retransmission, want 1", n)
	}
}

// TestQuietLogAllow: at most quietPerKind lines of a kind and
// quietPerSecond of all kinds a second; what was held back is summed up
// in one "N similar messages suppressed" line.
func TestQuietLogAllow(t *testing.T) {
	var buf logBuffer
	q := quietLog{log: slog.New(slog.NewTextHandler(&buf, nil))}
	for i := range quietPerKind {
		if !q.allow(noisyUnknownPeer) {
			t.Fatalf("line %d refused", i)
		}
	}
	for range 7 {
		if q.allow(noisyUnknownPeer) {
			t.Fatal("a line past the kind's share was allowed")
		}
	}
	allowed := 0
	for k := noisyBadCookie; k < noisyKinds; k++ {
		if q.allow(k) {
			allowed++
		}
	}
	if allowed != quietPerSecond-quietPerKind {
		t.Fatalf("%d lines of other kinds allowed, want %d", allowed, quietPerSecond-quietPerKind)
	}
	held := 7 + int(noisyKinds-noisyBadCookie) - allowed
	waitFor(t, "the summary", func() bool { return strings.Contains(buf.String(), "similar messages suppressed") })
	if want := fmt.Sprintf("%d similar messages suppressed", held); !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), "unknown_peer=7") {
		t.Fatalf("summary %q, want %q with unknown_peer=7", buf.String(), want)
	}
	q.window = time.Now().Add(-2 * time.Second)
	if !q.allow(noisyUnknownPeer) {
		t.Fatal("refused in the next second")
	}
	q.stop()
}
