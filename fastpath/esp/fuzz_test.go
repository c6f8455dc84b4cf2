package esp_test

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/xdpsec/xdpsec/fastpath/esp"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/replay"
)

// fuzzDecapSAs are the SAs FuzzDecap throws packets at: several suites,
// both modes, both families, raw and UDP, with and without ESN. The first
// input byte picks one.
var fuzzDecapSAs = []pairOpts{
	{suite: "aes128gcm16", ms: modeSpecs[0], spi: 0x3000},
	{suite: "chacha20poly1305", ms: modeSpecs[6], spi: 0x3001},
	{suite: "aes128gcm8", ms: modeSpecs[1], udp: true, spi: 0x3002},
	{suite: "aes256-sha384", ms: modeSpecs[0], udp: true, esn: true, spi: 0x3003},
	{suite: "null-sha256", ms: modeSpecs[5], spi: 0x3004},
	{suite: "aes128gcm12", ms: modeSpecs[2], esn: true, spi: 0x3005},
	{suite: "aes256-sha512", ms: modeSpecs[7], spi: 0x3006},
}

// fuzzWindow is the inbound window of the fuzzed SAs: small, so giving
// each input a fresh one is cheap.
const fuzzWindow = 64

// fuzzPairs caches FuzzDecap's pairs: building one sets up two AEADs or
// HMACs and the reference, several times the cost of a Decap. What an input
// may change in a pair's SAs is the inbound replay window (and counters);
// fuzzDecapPair gives the cached pair a fresh window per input, so the
// outcome still depends on the input alone.
var fuzzPairs = map[int]*pair{}

func fuzzDecapPair(tb testing.TB, sel uint8) *pair {
	i := int(sel) % len(fuzzDecapSAs)
	p := fuzzPairs[i]
	if p == nil {
		o := fuzzDecapSAs[i]
		o.window = fuzzWindow
		p = newPair(tb, o)
		fuzzPairs[i] = p
	}
	w, err := replay.New(fuzzWindow, p.opts.esn)
	if err != nil {
		tb.Fatal(err)
	}
	p.in.Replay = w
	return p
}

// FuzzDecap feeds arbitrary outer packets to ParseOuter and Decap. Besides
// never panicking, it holds Decap to a second, independent implementation
// (refSA, on the standard library): Decap may accept only what the
// reference authenticates, must not call an authentic packet a forgery,
// and must return the same inner packet. Forging needs the key, so the
// only accepted inputs are Encap outputs from the seeds with their ESP
// bytes intact; everything the fuzzer changes elsewhere (outer header, UDP
// header, trailing bytes) must leave the answer right or refuse cleanly.
// Each input gets a fresh inbound SA, so the outcome depends on the input
// alone.
func FuzzDecap(f *testing.F) {
	var s esp.Scratch
	for i := range fuzzDecapSAs {
		p := fuzzDecapPair(f, uint8(i))
		for j, size := range []int{0, 13, 200} {
			e, r := encap(f, &s, p.out, p.inner(size, 0x02, false), uint64(j+1), true)
			if r != sad.OK {
				f.Fatalf("seed %d: %v", i, r)
			}
			f.Add(uint8(i), bytes.Clone(e.pkt))
		}
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1})

	f.Fuzz(func(t *testing.T, sel uint8, pkt []byte) {
		p := fuzzDecapPair(t, sel)
		in := withCap(pkt)
		var o esp.Outer
		if r := esp.ParseOuter(in, nattPort, &o); r != sad.OK {
			return
		}
		if o.ESPOff < 0 || o.ESPOff+8 > o.ESPEnd || o.ESPEnd > o.IP.TotalLen || o.IP.TotalLen > len(pkt) {
			t.Fatalf("ParseOuter: ESP at %d..%d, total %d, in %d bytes", o.ESPOff, o.ESPEnd, o.IP.TotalLen, len(pkt))
		}
		espb := bytes.Clone(pkt[o.ESPOff:o.ESPEnd])
		seqLo := binary.BigEndian.Uint32(espb[4:])
		// A new window infers high-order bits 0 (RFC 4303 Appendix A2.2),
		// except for the last W numbers of the first subspace, which it
		// takes for the previous one, which does not exist.
		edge := p.opts.esn && seqLo > 1<<32-fuzzWindow
		refPT, authentic := p.ref.open(espb, uint64(seqLo))
		authentic = authentic && seqLo != 0

		var scratch esp.Scratch
		off, n, r := esp.Decap(&scratch, in, &o, p.in)
		switch {
		case r == sad.OK && !authentic:
			t.Fatalf("Decap accepted a packet the reference rejects: % x", pkt)
		case authentic && r == sad.ErrReplay && !edge,
			authentic && (r == sad.ErrAuth || r == sad.ErrTooShort || r == sad.ErrLength):
			t.Fatalf("Decap refused an authentic packet: %v", r)
		case r != sad.OK && !authentic:
			// Decap works in place: what it leaves behind after refusing a
			// forgery must still be a forgery, or anything that sees the
			// dropped buffer (a mirror, a capture, a retry) gets a packet
			// that passes.
			if _, _, r2 := esp.Decap(&scratch, in, &o, p.in); r2 == sad.OK {
				t.Fatalf("a packet refused with %v passes Decap the second time: % x", r, pkt)
			}
			return
		case r != sad.OK:
			return
		}
		if off < 0 || n < 0 || off+n > len(pkt) {
			t.Fatalf("Decap returned [%d:%d] of a %d-byte packet", off, off+n, len(pkt))
		}
		got := in[off : off+n]
		padLen, nh := int(refPT[len(refPT)-2]), refPT[len(refPT)-1]
		data := refPT[:len(refPT)-2-padLen]
		if p.opts.ms.mode == sad.Transport {
			hl := o.IP.HdrLen
			if len(got) < hl || !bytes.Equal(got[hl:], data) {
				t.Fatalf("transport payload\n got % x\nwant % x", got, data)
			}
			if !o.IP.V6 && (got[9] != nh || !ipv4HeaderOK(got)) {
				t.Fatalf("transport header % x: want protocol %d, valid checksum", got[:hl], nh)
			}
			return
		}
		// Tunnel: the reference's inner packet, forwarded once more; only
		// the ECN bits may differ (the outer header's marks, RFC 6040).
		want := forwarded(data[:len(got)])
		if tosOf(got)&^3 != tosOf(want)&^3 {
			t.Fatalf("inner DSCP changed: % x, want % x", got[:2], want[:2])
		}
		setTOS(want, tosOf(got))
		if !bytes.Equal(got, want) {
			t.Fatalf("inner packet\n got % x\nwant % x", got, want)
		}
	})
}

// rtPairs caches the pairs of FuzzRoundTrip by configuration, so sequence
// numbers and windows move on as they would in a long-lived SA.
var rtPairs = struct {
	sync.Mutex
	m map[[4]int]*pair
}{m: map[[4]int]*pair{}}

func rtPair(tb testing.TB, suite, mode int, esn, udp bool) *pair {
	rtPairs.Lock()
	defer rtPairs.Unlock()
	k := [4]int{suite, mode, b2i(esn), b2i(udp)}
	if p := rtPairs.m[k]; p != nil {
		return p
	}
	p := newPair(tb, pairOpts{suite: allSuites[suite], ms: modeSpecs[mode], esn: esn, udp: udp})
	if esn {
		// Start a little below 2^32 so long runs cross into the next
		// subspace of the extended sequence number.
		start := uint64(1)<<32 - 500
		p.out.SetSeq(start)
		p.in.Replay.Commit(start)
	}
	rtPairs.m[k] = p
	return p
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzRoundTrip: any payload, size, suite, mode, ESN, UDP and buffer
// arrangement: Encap builds a packet the reference opens to the right
// plaintext, and Decap gives the inner packet back.
func FuzzRoundTrip(f *testing.F) {
	for i := range allSuites {
		for j := range modeSpecs {
			f.Add([]byte{byte(i*31 + j), 0xa5, 0x5a}, uint16(i*97+j*13), uint8(i), uint8(j), i%2 == 0, j%3 == 0, (i+j)%2 == 0)
		}
	}
	f.Add([]byte{}, uint16(1400), uint8(0), uint8(0), true, true, true)
	f.Add([]byte{0xff}, uint16(0), uint8(5), uint8(7), false, false, false)

	f.Fuzz(func(t *testing.T, data []byte, size uint16, suite, mode uint8, esn, udp, inPlace bool) {
		si, mi := int(suite)%len(allSuites), int(mode)%len(modeSpecs)
		p := rtPair(t, si, mi, esn, udp)
		var tos uint8
		var df bool
		if len(data) > 1 {
			tos, df = data[0], data[1]&1 != 0
		}
		inner := buildInner(innerOpts{
			v6: p.opts.ms.inner6, hbh: p.opts.ms.hbh, src: p.isrc, dst: p.idst,
			payload: int(size) % 1401, tos: tos, df: df, data: data,
		})
		seq, got := p.out.ReserveSeq(1)
		if got != 1 {
			t.Skip("sequence space of the cached SA used up")
		}
		var s esp.Scratch
		e, r := encap(t, &s, p.out, inner, seq, inPlace)
		if r != sad.OK {
			t.Fatalf("%s %s esn=%v udp=%v: encap %d-byte packet: %v", allSuites[si], modeSpecs[mi].name, esn, udp, len(inner), r)
		}
		p.checkEncap(t, e)
		// Every DS value round-trips: ECN is copied outwards (RFC 6040
		// normal mode), so CE inside comes back CE.
		p.checkDecap(t, &s, e)
	})
}
