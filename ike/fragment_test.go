package ike

import (
	"bytes"
	gocrypto "crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/ike/transport"
)

// fragSAs builds an engine (loop not running) with one established
// responder IKE SA under the IKE proposal ike, and its mirror image: a
// copy with the initiator's role, sharing the keys. Both negotiated
// fragmentation.
func fragSAs(t testing.TB, ike string) (e *Engine, resp, init *ikeSA) {
	t.Helper()
	e = fuzzEngine(t, ike)
	resp = e.newSA(e.conns[0], false, fuzzLocal, fuzzRemote)
	cr := *e.conns[0]
	// Fixed SPIs and nonces give fixed keys, so the fuzz corpus's sealed
	// datagrams verify in every run.
	delete(e.sas, resp.spiR)
	resp.spiI, resp.spiR = 0x0102030405060708, 0x1112131415161718
	e.sas[resp.spiR] = resp
	sel, err := selectProposal(cr.IKEProposals, []message.Proposal{cr.IKEProposals[0].Wire(1, nil, true)}, true)
	if err != nil {
		t.Fatal(err)
	}
	resp.sel, resp.ni, resp.nr = sel, bytes.Repeat([]byte{0x11}, 32), bytes.Repeat([]byte{0x22}, 32)
	if err := resp.deriveKeys(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	resp.state = StateEstablished
	resp.fragment = true
	mirror := *resp
	mirror.initiator = true
	mirror.local, mirror.remote = resp.remote, resp.local
	return e, resp, &mirror
}

// bigPayloads is an INFORMATIONAL body of about n octets in two payloads,
// with random content so a misplaced octet shows.
func bigPayloads(n int) []message.Payload {
	a, b := make([]byte, n/2), make([]byte, n-n/2)
	rand.Read(a)
	rand.Read(b)
	return []message.Payload{notify(message.NotifyType(40001), a), &message.VendorID{Data: b}}
}

func samePayloads(t *testing.T, got message.Payloads, want []message.Payload) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d payloads, want %d", len(got), len(want))
	}
	for i := range want {
		g, _ := got[i].AppendBody(nil)
		w, _ := want[i].AppendBody(nil)
		if got[i].Type() != want[i].Type() || !bytes.Equal(g, w) {
			t.Fatalf("payload %d differs (%v, %d octets; want %v, %d octets)", i, got[i].Type(), len(g), want[i].Type(), len(w))
		}
	}
}

// feed hands datagrams to rcv as messages of direction dir and returns the
// payloads of the message they complete; it fails if one completes early.
func feed(t *testing.T, rcv *ikeSA, dir int, msgs [][]byte) (message.Payloads, bool) {
	t.Helper()
	for i, raw := range msgs {
		m, err := message.Decode(raw)
		if err != nil {
			t.Fatalf("datagram %d does not decode: %v", i, err)
		}
		ps, complete, err := rcv.openMessage(raw, m, dir)
		if complete {
			if err != nil {
				t.Fatalf("datagram %d: %v", i, err)
			}
			if i != len(msgs)-1 {
				t.Fatalf("message complete after %d of %d datagrams", i+1, len(msgs))
			}
			return ps, true
		}
	}
	return nil, false
}

// TestFragmentRoundTrip: a message bigger than the fragment size leaves as
// SKF fragments that each fit the size and open on their own, in both
// roles and with an AEAD and a CBC+HMAC suite; the receiver gets the same
// payloads whether the fragments come in order, reversed, or with
// duplicates, and keeps no state afterwards. A small message stays whole.
func TestFragmentRoundTrip(t *testing.T) {
	for _, suite := range []string{"aes128gcm16-prfsha256-x25519", "aes256-sha384-prfsha384-ecp256"} {
		for _, initiatorSends := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/initiator-sends=%v", suite, initiatorSends), func(t *testing.T) {
				e, resp, init := fragSAs(t, suite)
				snd, rcv, dir := init, resp, fragRequest
				if !initiatorSends {
					snd, rcv, dir = resp, init, fragResponse
				}
				want := bigPayloads(6000)
				msgs, err := snd.encode(message.ExchangeInformational, !initiatorSends, 7, want)
				if err != nil {
					t.Fatal(err)
				}
				limit := DefaultFragmentSize - 28
				if len(msgs) < 5 {
					t.Fatalf("6000 octets in %d datagrams", len(msgs))
				}
				for i, raw := range msgs {
					if len(raw) > limit {
						t.Fatalf("fragment %d is %d octets, over %d", i+1, len(raw), limit)
					}
					h, _ := message.DecodeHeader(raw)
					if h.NextPayload != message.PayloadSKF || h.MessageID != 7 || h.Exchange != message.ExchangeInformational {
						t.Fatalf("fragment %d header %+v", i+1, h)
					}
					f := lastFragment(mustDecode(t, raw))
					if f == nil || int(f.Number) != i+1 || int(f.Total) != len(msgs) {
						t.Fatalf("fragment %d: %+v", i+1, f)
					}
					if (i == 0) != (f.NextPayload != message.PayloadNone) {
						t.Fatalf("fragment %d names next payload %v", i+1, f.NextPayload)
					}
				}
				orders := map[string][][]byte{"in-order": msgs}
				var rev, dup [][]byte
				for i := len(msgs) - 1; i >= 0; i-- {
					rev = append(rev, msgs[i])
				}
				orders["reversed"] = rev
				for _, m := range msgs[:len(msgs)-1] {
					dup = append(dup, m, m)
				}
				orders["duplicates"] = append(dup, msgs[len(msgs)-1])
				for _, name := range []string{"in-order", "reversed", "duplicates"} {
					before := e.FragmentStats()
					got, ok := feed(t, rcv, dir, orders[name])
					if !ok {
						t.Fatalf("%s: message never completed", name)
					}
					samePayloads(t, got, want)
					if rcv.frags != nil {
						t.Fatalf("%s: reassembly state left behind", name)
					}
					after := e.FragmentStats()
					if after.Reassembled != before.Reassembled+1 || after.FragmentsAccepted != before.FragmentsAccepted+uint64(len(msgs)) {
						t.Fatalf("%s: counters %+v -> %+v", name, before, after)
					}
					if name == "duplicates" && after.Duplicate != before.Duplicate+uint64(len(msgs)-1) {
						t.Fatalf("duplicates counted %d, want %d", after.Duplicate-before.Duplicate, len(msgs)-1)
					}
				}
				small, err := snd.encode(message.ExchangeInformational, !initiatorSends, 8, bigPayloads(500))
				if err != nil || len(small) != 1 || mustDecode(t, small[0]).Get(message.PayloadSK) == nil {
					t.Fatalf("small message: %d datagrams, %v", len(small), err)
				}
				snd.fragment = false
				whole, err := snd.encode(message.ExchangeInformational, !initiatorSends, 9, want)
				if err != nil || len(whole) != 1 {
					t.Fatalf("without fragmentation: %d datagrams, %v", len(whole), err)
				}
			})
		}
	}
}

func mustDecode(t testing.TB, raw []byte) *message.Message {
	t.Helper()
	m, err := message.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sealFragment seals one SKF message of snd with any Number and Total (the
// sender side never makes inconsistent ones; a peer with the keys can).
func sealFragment(t testing.TB, snd *ikeSA, mid uint32, number, total uint16, first message.PayloadType, piece []byte) []byte {
	t.Helper()
	out, done, err := snd.sealer()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	h := message.Header{SPIi: snd.spiI, SPIr: snd.spiR, Exchange: message.ExchangeInformational, MessageID: mid}
	if snd.initiator {
		h.Flags |= message.FlagInitiator
	}
	bodyLen := out.SealedLen(len(piece))
	m := message.Message{Header: h, Payloads: message.Payloads{&message.EncryptedFragment{NextPayload: first, Number: number, Total: total, Body: make([]byte, bodyLen)}}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	prefix := b[:len(b)-bodyLen]
	msg, err := out.Seal(append([]byte(nil), prefix...), prefix, piece)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// offer hands one datagram to rcv's request reassembly.
func offer(t *testing.T, rcv *ikeSA, raw []byte) (message.Payloads, bool, error) {
	t.Helper()
	return rcv.openMessage(raw, mustDecode(t, raw), fragRequest)
}

// TestFragmentForged: a fragment whose ICV does not verify (a flipped
// ciphertext bit, or a Total Fragments changed in the authenticated
// header) is dropped and counted before anything of it is kept, so it can
// neither fill a slot nor restart the partial message; the genuine
// fragments still complete it.
func TestFragmentForged(t *testing.T) {
	e, resp, init := fragSAs(t, "aes128gcm16-prfsha256-x25519")
	want := bigPayloads(3000)
	msgs, err := init.encode(message.ExchangeInformational, false, 3, want)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("%d fragments, %v", len(msgs), err)
	}
	if _, done, err := offer(t, resp, msgs[0]); done || err != nil {
		t.Fatalf("fragment 1: done %v, %v", done, err)
	}
	flipped := append([]byte(nil), msgs[1]...)
	flipped[len(flipped)-40] ^= 1
	moreTotal := append([]byte(nil), msgs[1]...)
	moreTotal[message.HeaderLen+4+3] = 9 // Total Fragments 3 -> 9
	for name, raw := range map[string][]byte{"flipped bit": flipped, "changed total": moreTotal} {
		before := e.FragmentStats().Integrity
		if _, done, err := offer(t, resp, raw); done || err == nil {
			t.Fatalf("%s: accepted (done %v)", name, done)
		}
		if e.FragmentStats().Integrity != before+1 {
			t.Fatalf("%s: not counted as an integrity failure", name)
		}
		r := resp.frags.r[fragRequest]
		if r == nil || r.total != 3 || r.have != 1 {
			t.Fatalf("%s: partial message changed: %+v", name, r)
		}
	}
	got, ok := feed(t, resp, fragRequest, msgs[1:])
	if !ok {
		t.Fatal("genuine fragments did not complete the message")
	}
	samePayloads(t, got, want)
}

// TestFragmentLimits: fragments on an SA without fragmentation, a Total
// Fragments over the limit, a message growing over the size limit, a
// smaller or larger Total Fragments, a newer message ID and a timeout are
// all handled per RFC 7383 §2.6, counted, and leave at most one bounded
// partial message per direction.
func TestFragmentLimits(t *testing.T) {
	e, resp, init := fragSAs(t, "aes128gcm16-prfsha256-x25519")
	piece := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	vendor := func(n int) []byte {
		// A Vendor ID payload chain of n octets in total.
		b, first, err := message.AppendPayloads(nil, []message.Payload{&message.VendorID{Data: piece(n - 4)}})
		if err != nil || first != message.PayloadVendor {
			t.Fatal(err)
		}
		return b
	}
	stats := func() FragmentStats { return e.FragmentStats() }

	resp.fragment = false
	if _, done, err := offer(t, resp, sealFragment(t, init, 1, 1, 2, message.PayloadVendor, piece(10))); done || err == nil || stats().NotNegotiated != 1 {
		t.Fatalf("accepted without negotiation: done %v, %v, %+v", done, err, stats())
	}
	resp.fragment = true
	if resp.frags != nil {
		t.Fatal("state kept for a refused fragment")
	}

	if _, done, err := offer(t, resp, sealFragment(t, init, 1, 1, maxFragments+1, message.PayloadVendor, piece(10))); done || err == nil || stats().TooMany != 1 {
		t.Fatalf("Total Fragments %d accepted: %v, %+v", maxFragments+1, err, stats())
	}

	// Three 30000-octet fragments: the third would pass 65535 octets.
	big := vendor(30000)
	for n := uint16(1); n <= 3; n++ {
		_, done, err := offer(t, resp, sealFragment(t, init, 1, n, 3, message.PayloadVendor, big))
		if done || (n < 3) != (err == nil) {
			t.Fatalf("fragment %d of 30000 octets: done %v, %v", n, done, err)
		}
	}
	if stats().TooLarge != 1 || resp.frags != nil {
		t.Fatalf("oversized message kept: %+v", stats())
	}

	// Total Fragments 3, then 2 (dropped), then 4 (restart), which then
	// completes with its own fragments.
	offer(t, resp, sealFragment(t, init, 1, 1, 3, message.PayloadVendor, piece(10)))
	if _, _, err := offer(t, resp, sealFragment(t, init, 1, 2, 2, message.PayloadVendor, piece(10))); err == nil || stats().TotalMismatch != 1 {
		t.Fatalf("smaller Total Fragments accepted: %+v", stats())
	}
	chain := vendor(400)
	for n := uint16(1); n <= 4; n++ {
		ps, done, err := offer(t, resp, sealFragment(t, init, 1, n, 4, message.PayloadVendor, chain[(n-1)*100:n*100]))
		if err != nil || done != (n == 4) {
			t.Fatalf("refragmented fragment %d: done %v, %v", n, done, err)
		}
		if n == 1 && (stats().Restarted != 1 || resp.frags.r[fragRequest].total != 4) {
			t.Fatalf("larger Total Fragments did not restart: %+v", stats())
		}
		if done && (len(ps) != 1 || ps[0].Type() != message.PayloadVendor) {
			t.Fatalf("reassembled %v", ps)
		}
	}

	// A partial message under an older message ID gives way to a newer one.
	offer(t, resp, sealFragment(t, init, 2, 1, 2, message.PayloadVendor, piece(10)))
	offer(t, resp, sealFragment(t, init, 3, 1, 2, message.PayloadVendor, make([]byte, 10)))
	if r := resp.frags.r[fragRequest]; r.mid != 3 || r.have != 1 || stats().Restarted != 2 {
		t.Fatalf("newer message ID: %+v, %+v", r, stats())
	}

	// Garbage that decrypts but does not decode is counted once complete.
	if _, done, err := offer(t, resp, sealFragment(t, init, 3, 2, 2, 0, make([]byte, 10))); !done || err == nil || stats().Malformed != 1 {
		t.Fatalf("malformed reassembly: done %v, %v, %+v", done, err, stats())
	}

	// Timeout: the timer posts to the loop, which this test runs by hand.
	e.fragTimeout = 20 * time.Millisecond
	offer(t, resp, sealFragment(t, init, 4, 1, 2, message.PayloadVendor, piece(10)))
	select {
	case f := <-e.events:
		f()
	case <-time.After(5 * time.Second):
		t.Fatal("reassembly timer never fired")
	}
	if resp.frags != nil || stats().Timeout != 1 {
		t.Fatalf("partial message outlived its timeout: %+v", stats())
	}

	// Destroying the SA wipes a partial message.
	offer(t, resp, sealFragment(t, init, 5, 1, 2, message.PayloadVendor, piece(10)))
	r := resp.frags.r[fragRequest]
	resp.destroy()
	if resp.frags != nil || r.parts != nil {
		t.Fatal("partial message survived the SA")
	}
}

// TestFragmentSizes: every fragment of messages of many lengths, under
// both suite kinds and with the NAT-T marker, fills at most the fragment
// size as an IPv4 datagram, and fragments are used only when the whole
// message would not fit.
func TestFragmentSizes(t *testing.T) {
	for _, suite := range []string{"aes128gcm16-prfsha256-x25519", "aes256-sha256-prfsha256-ecp256"} {
		_, resp, init := fragSAs(t, suite)
		for _, size := range []int{MinFragmentSize, 1000, DefaultFragmentSize} {
			init.conn.FragmentSize = size
			for _, natt := range []bool{false, true} {
				init.local = fuzzLocal
				if natt {
					init.local = netip.AddrPortFrom(fuzzLocal.Addr(), 4500)
				}
				limit := size - 28
				if natt {
					limit -= 4
				}
				for n := 100; n < 4000; n += 97 {
					want := bigPayloads(n)
					msgs, err := init.encode(message.ExchangeInformational, false, 1, want)
					if err != nil {
						t.Fatal(err)
					}
					for i, raw := range msgs {
						if len(raw) > limit {
							t.Fatalf("%s size %d natt %v, %d octets: datagram %d is %d octets, over %d", suite, size, natt, n, i, len(raw), limit)
						}
					}
					init.fragment = false
					whole, err := init.encode(message.ExchangeInformational, false, 1, want)
					init.fragment = true
					if err != nil {
						t.Fatal(err)
					}
					if (len(msgs) > 1) != (len(whole[0]) > limit) {
						t.Fatalf("%d-octet message in %d fragments with a limit of %d", len(whole[0]), len(msgs), limit)
					}
					if len(msgs) > 1 {
						got, ok := feed(t, resp, fragRequest, msgs)
						if !ok {
							t.Fatal("did not reassemble")
						}
						samePayloads(t, got, want)
					}
				}
			}
		}
		init.conn.FragmentSize = 0
	}
}

// chainPKI is a four-certificate chain, root CA -> two intermediate CAs ->
// a leaf for each end, all RSA-4096, so that an IKE_AUTH carrying a leaf
// and both intermediates is several kilobytes: far over a 1280-octet path.
type chainPKI struct {
	root          *x509.Certificate
	intermediates []*x509.Certificate // the one nearest the leaves first, as sent
	leafI, leafR  *x509.Certificate
	keyI, keyR    gocrypto.Signer
}

func newChainPKI(t testing.TB) *chainPKI {
	t.Helper()
	keys := make([]*rsa.PrivateKey, 5)
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = rsa.GenerateKey(rand.Reader, 4096) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	var parent *x509.Certificate
	var parentKey gocrypto.Signer
	mk := func(serial int64, name string, ca bool, key *rsa.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{Organization: []string{"xdpsec test"}, CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		}
		if ca {
			tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
			tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		} else {
			tmpl.DNSNames = []string{name}
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
		issuer, issuerKey := parent, parentKey
		if issuer == nil {
			issuer, issuerKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p := &chainPKI{keyI: keys[3], keyR: keys[4]}
	p.root = mk(1, "xdpsec test root CA", true, keys[0])
	parent, parentKey = p.root, keys[0]
	int1 := mk(2, "xdpsec test intermediate CA 1", true, keys[1])
	parent, parentKey = int1, keys[1]
	int2 := mk(3, "xdpsec test intermediate CA 2", true, keys[2])
	parent, parentKey = int2, keys[2]
	p.leafI = mk(4, "initiator.test", false, keys[3])
	p.leafR = mk(5, "responder.test", false, keys[4])
	p.intermediates = []*x509.Certificate{int2, int1}
	return p
}

// chainPair is pskPair with the chain's certificates: each end sends its
// leaf and both intermediates and trusts only the root.
func chainPair(t testing.TB, p *chainPKI) (Connection, Connection) {
	ci, cr := pskPair(t, "aes128gcm16-prfsha256-x25519", "aes128gcm16")
	ci.Local = AuthConfig{ID: mustID(t, "initiator.test"), Certificate: p.leafI, Intermediates: p.intermediates, Key: p.keyI}
	ci.Remote = AuthConfig{ID: mustID(t, "responder.test"), CAs: []*x509.Certificate{p.root}}
	cr.Local = AuthConfig{ID: mustID(t, "responder.test"), Certificate: p.leafR, Intermediates: p.intermediates, Key: p.keyR}
	cr.Remote = AuthConfig{ID: mustID(t, "initiator.test"), CAs: []*x509.Certificate{p.root}}
	return ci, cr
}

// TestFragmentCertChainMTU1280 is issue 5's test between two engines: a
// four-certificate RSA-4096 chain over a path of MTU 1280 that drops IP
// fragments (lossyConn.pathMTU). With fragmentation (the default) the
// IKE_AUTH messages go out as fragments that fit and the tunnel comes up,
// also when a fragment of the request and one of the response are lost
// (retransmission resends every fragment, and only fragment 1 of the
// retransmitted request makes the responder resend its answer). With
// fragmentation off at either end the same IKE_AUTH cannot cross.
func TestFragmentCertChainMTU1280(t *testing.T) {
	pki := newChainPKI(t)
	type tc struct {
		name             string
		offI, offR, lose bool
	}
	for _, c := range []tc{
		{name: "fragmented"},
		{name: "fragmented/lost-fragments", lose: true},
		{name: "initiator-off", offI: true},
		{name: "responder-off", offR: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ci, cr := chainPair(t, pki)
			ci.NoFragmentation, cr.NoFragmentation = c.offI, c.offR
			i, r := startPair(t, ci, cr)
			for _, p := range []*peer{i, r} {
				p.conn.pathMTU.Store(1280)
			}
			if c.lose {
				i.conn.setDrop(func(h message.Header, n int) bool {
					return h.Exchange == message.ExchangeIKEAuth && n == 1 // fragment 2 of the first request
				})
				r.conn.setDrop(func(h message.Header, n int) bool {
					return h.Exchange == message.ExchangeIKEAuth && n == 2 // fragment 3 of the first response
				})
			}
			err := i.e.Initiate(ctx(t), "test")
			si, sr := i.e.FragmentStats(), r.e.FragmentStats()
			t.Logf("initiator %+v\nresponder %+v\noversized datagrams dropped: %d, %d", si, sr, i.conn.tooBig.Load(), r.conn.tooBig.Load())
			if c.offI || c.offR {
				if err == nil {
					t.Fatal("IKE_AUTH crossed a 1280-octet path without fragmentation: the test proves nothing")
				}
				if i.conn.tooBig.Load() == 0 || si.FragmentsSent != 0 || sr.FragmentsSent != 0 {
					t.Fatalf("expected oversized, unfragmented IKE_AUTH; stats %+v %+v", si, sr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder's Child SA", func() bool { return len(r.inst.Outbound()) == 1 })
			checkPairs(t, i.inst, r.inst, 1)
			if i.conn.tooBig.Load() != 0 || r.conn.tooBig.Load() != 0 {
				t.Fatalf("oversized datagrams sent: %d, %d", i.conn.tooBig.Load(), r.conn.tooBig.Load())
			}
			// Each IKE_AUTH carries three RSA-4096 certificates and a
			// 512-octet signature: at least four fragments of 1280.
			if si.MessagesSent < 1 || si.FragmentsSent < 4 || sr.MessagesSent < 1 || sr.FragmentsSent < 4 ||
				si.Reassembled != 1 || sr.Reassembled != 1 {
				t.Fatalf("fragment counters: initiator %+v, responder %+v", si, sr)
			}
			if si.Integrity+sr.Integrity+si.NotNegotiated+sr.NotNegotiated+si.Malformed+sr.Malformed != 0 {
				t.Fatalf("fragments dropped: %+v, %+v", si, sr)
			}
			if c.lose {
				if si.MessagesSent < 2 || sr.MessagesSent < 2 || si.Duplicate == 0 || sr.Duplicate == 0 {
					t.Fatalf("no retransmission of all fragments: %+v, %+v", si, sr)
				}
			}
			// The rest of the SA's life uses small messages: a liveness
			// check crosses unfragmented.
			if err := i.e.ping(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			if i.e.FragmentStats().MessagesSent != si.MessagesSent {
				t.Fatal("an empty INFORMATIONAL was fragmented")
			}
		})
	}
}

// FuzzReassembly feeds a responder IKE SA with fragmentation a sequence of
// datagrams through the engine's receive path: fragments sealed with the
// SA's keys with any Fragment Number, Total Fragments, message ID and
// content (what a peer holding the keys can send), and raw datagrams (what
// anyone can). It must never panic, and the reassembly state must stay
// within its bounds and consistent after every datagram.
//
// Each record is either
//
//	even op | message ID delta | Number (2) | Total (2) | first payload | length (2) | inner octets
//	odd op  | length (2) | datagram
func FuzzReassembly(f *testing.F) {
	for _, s := range reassemblySeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { runReassemblyInput(t, data) })
}

// runReassemblyInput is FuzzReassembly's body; it returns the engine's
// fragment counters.
func runReassemblyInput(t *testing.T, data []byte) FragmentStats {
	e, resp, init := fragSAs(t, "aes128gcm16-prfsha256-x25519")
	defer resp.destroy()
	mc := e.conn.(*memConn)
	for len(data) > 0 && resp.state != StateDead {
		op := data[0]
		data = data[1:]
		var raw []byte
		if op%2 == 0 {
			if len(data) < 8 {
				break
			}
			mid := resp.peerMID + uint32(data[0]%3) - 1
			total := 1 + binary.BigEndian.Uint16(data[3:])%(maxFragments+8)
			number := 1 + binary.BigEndian.Uint16(data[1:])%total
			first := message.PayloadType(data[5])
			n := min(int(binary.BigEndian.Uint16(data[6:])%4096), len(data)-8)
			raw = sealFragment(t, init, mid, number, total, first, data[8:8+n])
			data = data[8+n:]
		} else {
			if len(data) < 2 {
				break
			}
			n := min(int(binary.BigEndian.Uint16(data)%4096), len(data)-2)
			raw = data[2 : 2+n]
			data = data[2+n:]
		}
		e.receive(transport.Packet{Data: raw, Local: fuzzLocal, Remote: fuzzRemote})
		mc.take()
		checkReassembly(t, resp)
	}
	return e.FragmentStats()
}

// TestReassemblySeeds checks that FuzzReassembly's seeds reach what they
// are for: each of the first three completes the fragmented request, the
// fourth hits the limits and the Total Fragments rules.
func TestReassemblySeeds(t *testing.T) {
	seeds := reassemblySeeds(t)
	for i, s := range seeds[:3] {
		if st := runReassemblyInput(t, s); st.Reassembled != 1 || st.Integrity != 0 {
			t.Fatalf("seed %d: %+v", i, st)
		}
	}
	st := runReassemblyInput(t, seeds[3])
	// The last record's message ID is not the one the responder expects,
	// so it never reaches reassembly.
	if st.TooMany != 1 || st.TotalMismatch != 1 || st.Restarted != 1 || st.FragmentsAccepted != 2 {
		t.Fatalf("limits seed: %+v", st)
	}
}

// checkReassembly asserts the bounds and bookkeeping of sa's partial
// messages.
func checkReassembly(t *testing.T, sa *ikeSA) {
	t.Helper()
	if sa.frags == nil {
		return
	}
	if sa.frags.r[0] == nil && sa.frags.r[1] == nil {
		t.Fatal("empty fragment state kept")
	}
	for _, r := range sa.frags.r {
		if r == nil {
			continue
		}
		have, size := 0, 0
		for _, p := range r.parts {
			if p != nil {
				have++
				size += len(p)
			}
		}
		if r.total == 0 || int(r.total) > maxFragments || len(r.parts) != int(r.total) || have != int(r.have) ||
			have >= int(r.total) || size != r.size || size > maxReassembledLen {
			t.Fatalf("reassembly state out of bounds: total %d, %d parts, have %d (counted %d), size %d (counted %d)",
				r.total, len(r.parts), r.have, have, r.size, size)
		}
	}
}

// reassemblySeeds are FuzzReassembly inputs: a real fragmented
// INFORMATIONAL request as raw datagrams, in order and reversed; the same
// request as sealed-fragment records; and records that hit the limits.
func reassemblySeeds(t testing.TB) [][]byte {
	_, _, init := fragSAs(t, "aes128gcm16-prfsha256-x25519")
	ps := []message.Payload{notify(message.NotifyType(40001), bytes.Repeat([]byte{0xa5}, 1500)), &message.VendorID{Data: bytes.Repeat([]byte{0x5a}, 1500)}}
	msgs, err := init.encode(message.ExchangeInformational, false, 0, ps)
	if err != nil || len(msgs) < 2 {
		t.Fatalf("%d fragments, %v", len(msgs), err)
	}
	rawRec := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16([]byte{1}, uint16(len(b))), b...) }
	fragRec := func(delta byte, number, total uint16, first message.PayloadType, inner []byte) []byte {
		r := []byte{0, delta}
		r = binary.BigEndian.AppendUint16(r, number-1)
		r = binary.BigEndian.AppendUint16(r, total-1)
		r = append(r, byte(first))
		r = binary.BigEndian.AppendUint16(r, uint16(len(inner)))
		return append(r, inner...)
	}
	var inOrder, reversed, sealed, limits []byte
	for i := range msgs {
		inOrder = append(inOrder, rawRec(msgs[i])...)
		reversed = append(reversed, rawRec(msgs[len(msgs)-1-i])...)
	}
	inner, first, err := message.AppendPayloads(nil, ps)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var fp message.PayloadType
		if i == 0 {
			fp = first
		}
		sealed = append(sealed, fragRec(1, uint16(i+1), 3, fp, inner[i*1000:min((i+1)*1000, len(inner))])...)
	}
	limits = append(limits, fragRec(1, 1, maxFragments+1, first, inner[:10])...)
	limits = append(limits, fragRec(1, 1, 3, first, inner[:100])...)
	limits = append(limits, fragRec(1, 2, 2, 0, inner[100:200])...)
	limits = append(limits, fragRec(1, 1, 4, first, inner[:100])...)
	limits = append(limits, fragRec(2, 1, 2, first, inner[:100])...)
	return [][]byte{inOrder, reversed, sealed, limits}
}
