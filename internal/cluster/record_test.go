package cluster

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/sad"
)

// testRecord is a negotiated outbound Child SA whose key bytes are
// recognisable (fill) for the scans below.
func testRecord(spi uint32, dir sad.Direction, fill byte) Record {
	key := bytes.Repeat([]byte{fill}, 36) // AES-256 key + salt
	return Record{
		Config: sad.Config{
			SPI: spi, Dir: dir, Mode: sad.Tunnel,
			Local: netip.MustParseAddr("203.0.113.10"), Remote: netip.MustParseAddr("198.51.100.7"),
			Encap: sad.UDPEncap{SrcPort: 4500, DstPort: 4501},
			Suite: sad.AESGCM256, Key: key, ESN: true, ReplayWindow: 960,
			Lifetime: sad.Lifetime{Soft: sad.Limits{Time: 50 * time.Minute, Bytes: 1 << 40}, Hard: sad.Limits{Time: time.Hour, Packets: 1 << 50}},
			Selectors: []sad.Selector{{Src: netip.MustParsePrefix("10.1.0.0/16"), Dst: netip.MustParsePrefix("2001:db8::/32"),
				Proto: 17, SrcPorts: sad.PortRange{Lo: 1, Hi: 2}, DstPorts: sad.PortRange{Lo: 53, Hi: 53}}},
			TTL: 60, DF: sad.DFSet, ReqID: 7, Name: "branch1/net",
		},
		Bound:   []sad.Selector{{Src: netip.MustParsePrefix("10.1.2.0/24"), Dst: netip.MustParsePrefix("10.9.0.0/16")}},
		Created: time.Unix(1700000000, 123),
	}
}

// testSA is testRecord's SA, as a node installs it.
func testSA(t *testing.T, spi uint32, dir sad.Direction) *sad.SA {
	t.Helper()
	sa, err := sad.New(testRecord(spi, dir, 0xa5).Config)
	if err != nil {
		t.Fatal(err)
	}
	return sa
}

func TestRecordRoundTrip(t *testing.T) {
	for _, rec := range []Record{testRecord(0x1234, sad.Outbound, 0xa5), testRecord(0x4321, sad.Inbound, 0x5a), {
		Config: sad.Config{SPI: 0x999, Dir: sad.Outbound, Mode: sad.Transport, Suite: sad.Suite{Cipher: sad.CipherAESCBC, KeyBits: 128, Integ: sad.IntegHMACSHA256},
			Key: bytes.Repeat([]byte{1}, 16), IntegKey: bytes.Repeat([]byte{2}, 32), NoReplay: true},
		Static: true,
	}} {
		b, err := rec.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatalf("%08x: %v", rec.Config.SPI, err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, rec)
		}
		// Every truncation and every trailing byte is refused.
		for i := range b {
			if _, err := decodeRecord(b[:i]); err == nil {
				t.Fatalf("%08x: truncated at %d accepted", rec.Config.SPI, i)
			}
		}
		if _, err := decodeRecord(append(b, 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	r := testRecord(0x1234, sad.Outbound, 0xa5)
	b, _ := r.encode()
	f.Add(b)
	f.Add([]byte(recordMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes and makes an SA.
		again, err := rec.encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		if _, err := sad.New(rec.Config); err != nil {
			t.Fatalf("decoded record is no SA: %v", err)
		}
	})
}

func TestSealer(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	s, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("the keys of an SA")
	a, b := s.Seal("/k/1", plain), s.Seal("/k/1", plain)
	if bytes.Equal(a[1:13], b[1:13]) {
		t.Fatal("two seals share a nonce")
	}
	if p, err := s.Open("/k/1", a); err != nil || !bytes.Equal(p, plain) {
		t.Fatalf("open: %q %v", p, err)
	}
	if bytes.Contains(a, plain) || bytes.Contains(a, key) {
		t.Fatal("sealed value holds the plaintext or the cluster key")
	}
	for i := range a {
		c := bytes.Clone(a)
		c[i] ^= 1
		if _, err := s.Open("/k/1", c); err == nil {
			t.Fatalf("tampered byte %d accepted", i)
		}
	}
	if _, err := s.Open("/k/2", a); err == nil {
		t.Fatal("a value moved to another key opened")
	}
	other, _ := NewSealer(bytes.Repeat([]byte{0x43}, 32))
	if _, err := other.Open("/k/1", a); err == nil {
		t.Fatal("opened under another cluster key")
	}
	if _, err := s.Open("/k/1", a[:12]); err == nil {
		t.Fatal("short value opened")
	}
	if _, err := NewSealer(key[:16]); err == nil {
		t.Fatal("16-byte cluster key accepted")
	}
}
