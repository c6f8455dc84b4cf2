package ike

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

func TestParseProposalAddKE(t *testing.T) {
	tests := []struct {
		in    string
		addKE [maxAddKE][]iana.GroupID
	}{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", [maxAddKE][]iana.GroupID{{iana.GroupMLKEM768}}},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", [maxAddKE][]iana.GroupID{{iana.GroupMLKEM768, groupNone}}},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_ecp384-ke7_mlkem1024",
			[maxAddKE][]iana.GroupID{{iana.GroupMLKEM768}, {iana.GroupECP384}, 6: {iana.GroupMLKEM1024}}},
	}
	for _, tc := range tests {
		p, err := ParseProposal(message.ProtocolIKE, tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		for n := range maxAddKE {
			if !slices.Equal(p.AddKE[n], tc.addKE[n]) {
				t.Fatalf("%s: ADDKE%d = %v, want %v", tc.in, n+1, p.AddKE[n], tc.addKE[n])
			}
		}
		if p.String() != tc.in {
			t.Fatalf("String() = %q, want %q", p.String(), tc.in)
		}
	}
	for _, bad := range []struct {
		proto message.ProtocolID
		in    string
	}{
		{message.ProtocolESP, "aes256gcm16-x25519-ke1_mlkem768"}, // needs IKE_FOLLOWUP_KE
		{message.ProtocolIKE, "aes256gcm16-prfsha384-x25519-ke8_mlkem768"},
		{message.ProtocolIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem512"},
		{message.ProtocolIKE, "aes256gcm16-prfsha384-x25519-ke0_mlkem768"},
		{message.ProtocolIKE, "aes256gcm16-prfsha384-ke1_mlkem768"}, // no main key exchange
	} {
		if _, err := ParseProposal(bad.proto, bad.in); err == nil {
			t.Fatalf("%s parsed", bad.in)
		}
	}
}

func TestProposalWireAddKE(t *testing.T) {
	p := mustProposals(t, message.ProtocolIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke3_ecp256")[0]
	w := p.Wire(1, nil, true)
	want := []message.Transform{
		{Type: iana.TransformAddKE1, ID: message.TransformID(iana.GroupMLKEM768)},
		{Type: iana.TransformAddKE1, ID: 0},
		{Type: iana.TransformAddKE3, ID: message.TransformID(iana.GroupECP256)},
	}
	var got []message.Transform
	for _, tr := range w.Transforms {
		if tr.Type >= iana.TransformAddKE1 {
			got = append(got, message.Transform{Type: tr.Type, ID: tr.ID})
		}
	}
	if !slices.EqualFunc(got, want, func(a, b message.Transform) bool { return a.Type == b.Type && a.ID == b.ID }) {
		t.Fatalf("ADDKE transforms %v, want %v", got, want)
	}
	// Through the codec and back: the peer's parser sees the same slots.
	enc, first, err := message.AppendPayloads(nil, []message.Payload{&message.SA{Proposals: []message.Proposal{w}}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := message.DecodePayloads(first, enc)
	if err != nil {
		t.Fatal(err)
	}
	dec := ps[0].(*message.SA)
	tt := groupTransforms(&dec.Proposals[0])
	if tt.other || !slices.Equal(tt.addKE[0], []iana.GroupID{iana.GroupMLKEM768, groupNone}) || !slices.Equal(tt.addKE[2], []iana.GroupID{iana.GroupECP256}) {
		t.Fatalf("decoded ADDKE %v", tt.addKE)
	}
	// The Child SA of IKE_AUTH carries no key exchange of any kind.
	for _, tr := range p.Wire(1, nil, false).Transforms {
		if tr.Type == iana.TransformDH || tr.Type >= iana.TransformAddKE1 {
			t.Fatalf("withDH=false sent %v", tr.Type)
		}
	}
}

func TestSelectProposalAddKE(t *testing.T) {
	const (
		hybrid   = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
		optional = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none"
		classic  = "aes256gcm16-prfsha384-x25519"
	)
	tests := []struct {
		ours, theirs string
		ok           bool
		addKE        []iana.GroupID
		sentSlot1    bool // the answer carries an ADDKE1 transform
	}{
		{hybrid, hybrid, true, []iana.GroupID{iana.GroupMLKEM768}, true},
		{hybrid, classic, false, nil, false},
		{classic, hybrid, false, nil, false},
		{optional, classic, true, nil, false},
		{classic, optional, true, nil, true}, // NONE chosen, and said so
		{hybrid, optional, true, []iana.GroupID{iana.GroupMLKEM768}, true},
		{"aes256gcm16-prfsha384-x25519-ke1_none-ke1_mlkem768", optional, true, nil, true}, // our preference wins
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem1024-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_mlkem1024", true, []iana.GroupID{iana.GroupMLKEM1024}, true},
		// The main exchange is not repeated in a slot.
		{"aes256gcm16-prfsha384-x25519-ke1_x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_x25519-ke1_mlkem768", true, []iana.GroupID{iana.GroupMLKEM768}, true},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_ecp384", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_ecp384", true, []iana.GroupID{iana.GroupMLKEM768, iana.GroupECP384}, true},
		// Hybrid first, classical second: a classical peer gets the second.
		{hybrid + "," + classic, classic, true, nil, false},
	}
	for _, tc := range tests {
		ours := mustProposals(t, message.ProtocolIKE, tc.ours)
		theirs := wireSA(mustProposals(t, message.ProtocolIKE, tc.theirs), nil, true).Proposals
		s, err := selectProposal(ours, theirs, true)
		if (err == nil) != tc.ok {
			t.Fatalf("%s vs %s: err %v, want ok=%v", tc.ours, tc.theirs, err, tc.ok)
		}
		if err != nil {
			continue
		}
		if !slices.Equal(s.addKEs(), tc.addKE) {
			t.Fatalf("%s vs %s: additional key exchanges %v, want %v", tc.ours, tc.theirs, s.addKEs(), tc.addKE)
		}
		w := s.wire(message.ProtocolIKE, nil).Proposals[0]
		var slot1 []message.TransformID
		for _, tr := range w.Transforms {
			if tr.Type == iana.TransformAddKE1 {
				slot1 = append(slot1, tr.ID)
			}
		}
		if tc.sentSlot1 != (len(slot1) == 1) || len(slot1) > 1 {
			t.Fatalf("%s vs %s: answer's ADDKE1 transforms %v", tc.ours, tc.theirs, slot1)
		}
		// The initiator accepts the answer against its own proposals.
		if _, err := selectProposal(mustProposals(t, message.ProtocolIKE, tc.theirs), []message.Proposal{w}, true); err != nil {
			t.Fatalf("%s vs %s: initiator rejects the answer %v: %v", tc.ours, tc.theirs, w.String(), err)
		}
	}
	// A CREATE_CHILD_SA for ESP: a required ADDKE cannot be met (we have
	// no IKE_FOLLOWUP_KE), an optional one is answered with NONE.
	esp := mustProposals(t, message.ProtocolESP, "aes256gcm16-x25519")
	req := wireSA(esp, []byte{1, 2, 3, 4}, true).Proposals
	req[0].Transforms = append(req[0].Transforms, message.Transform{Type: iana.TransformAddKE1, ID: message.TransformID(iana.GroupMLKEM768)})
	if _, err := selectProposal(esp, req, true); err == nil {
		t.Fatal("ESP proposal with a required ADDKE1 was selected")
	}
	req[0].Transforms = append(req[0].Transforms, message.Transform{Type: iana.TransformAddKE1, ID: 0})
	if s, err := selectProposal(esp, req, true); err != nil || len(s.addKEs()) != 0 {
		t.Fatalf("ESP proposal with an optional ADDKE1: %v %v", s, err)
	}
	// The rekey of a classical IKE SA offers the configured proposals;
	// that of a hybrid one only hybrid ones, NONE taken out.
	sa := &ikeSA{conn: &Connection{IKEProposals: mustProposals(t, message.ProtocolIKE, hybrid+","+optional+","+classic)}}
	if got := describeOurs(rekeyOffer(sa)); got != hybrid+", "+optional+", "+classic {
		t.Fatalf("classical SA's rekey offers %s", got)
	}
	sa.sel.addKE[0] = uint8(iana.GroupMLKEM768)
	if got := describeOurs(rekeyOffer(sa)); got != hybrid+", "+hybrid {
		t.Fatalf("hybrid SA's rekey offers %s", got)
	}
}

func TestWithLegacyCopies(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none",
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none, aes256gcm16-prfsha384-x25519"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke2_ecp256", // ADDKE2 required: no copy
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke2_ecp256"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none, aes256gcm16-prfsha384-x25519", // present already
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none, aes256gcm16-prfsha384-x25519"},
		{"aes128gcm16-prfsha256-ecp256", "aes128gcm16-prfsha256-ecp256"},
	} {
		if got := describeOurs(withLegacyCopies(mustProposals(t, message.ProtocolIKE, tc.in))); got != tc.want {
			t.Fatalf("%s: sent %s, want %s", tc.in, got, tc.want)
		}
	}
	// The RFC 9370 responder still meets the hybrid original first.
	i, r := hybridPair(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	if n := r.conn.sent("IKE_INTERMEDIATE/resp"); n != 1 {
		t.Fatalf("%d IKE_INTERMEDIATE exchanges, want 1", n)
	}
}

// hybridPair sets up two engines with a hybrid IKE proposal.
func hybridPair(t *testing.T, ikeI, ikeR string) (*peer, *peer) {
	t.Helper()
	ci, cr := pskPair(t, ikeI, "aes256gcm16")
	cr.IKEProposals = mustProposals(t, message.ProtocolIKE, ikeR)
	return startPair(t, ci, cr)
}

func TestHybridEstablish(t *testing.T) {
	tests := []struct {
		name, ikeI, ikeR string
		rounds           int
		proposal         string
	}{
		{"mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", 1,
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768"},
		{"two-rounds", "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp384", "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp384", 2,
			"aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp384"},
		{"cbc-mlkem1024", "aes256-sha256-ecp256-ke1_mlkem1024", "aes256-sha256-ecp256-ke1_mlkem1024", 1,
			"aes256-sha256-prfsha256-ecp256-ke1_mlkem1024"},
		{"optional-declined", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519", 0,
			"aes256gcm16-prfsha384-x25519"},
		{"fallback-proposal", "aes256gcm16-prfsha384-x25519-ke1_mlkem768,aes128gcm16-prfsha256-ecp256", "aes128gcm16-prfsha256-ecp256", 0,
			"aes128gcm16-prfsha256-ecp256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i, r := hybridPair(t, tc.ikeI, tc.ikeR)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			checkPairs(t, i.inst, r.inst, 1)
			if n, m := i.conn.sent("IKE_INTERMEDIATE/req"), r.conn.sent("IKE_INTERMEDIATE/resp"); n != tc.rounds || m != tc.rounds {
				t.Fatalf("IKE_INTERMEDIATE requests %d, responses %d, want %d", n, m, tc.rounds)
			}
			li, lr := i.e.List(), r.e.List()
			if li[0].Proposal != tc.proposal || lr[0].Proposal != tc.proposal {
				t.Fatalf("proposal %q / %q, want %q", li[0].Proposal, lr[0].Proposal, tc.proposal)
			}
			if got := strings.Count(i.log.String(), "IKE_INTERMEDIATE done"); got != tc.rounds {
				t.Fatalf("%d IKE_INTERMEDIATE rounds logged, want %d", got, tc.rounds)
			}
		})
	}
}

// TestHybridLoss drops the first IKE_INTERMEDIATE request and the first
// response: retransmissions (the responder answers a repeated request from
// its cache, under the keys before the update) still bring the SA up.
func TestHybridLoss(t *testing.T) {
	i, r := hybridPair(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
	drop := func(h message.Header, n int) bool { return h.Exchange == message.ExchangeIKEIntermediate && n == 0 }
	i.conn.setDrop(drop)
	r.conn.setDrop(drop)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
	if n, m := i.conn.sent("IKE_INTERMEDIATE/req"), r.conn.sent("IKE_INTERMEDIATE/resp"); n != 3 || m != 2 {
		t.Fatalf("sent %d IKE_INTERMEDIATE requests and %d responses, want 3 and 2", n, m)
	}
}

// TestHybridAnswerWithTwoMethods: an IKE_SA_INIT answer that names two
// methods for one ADDKE type is not a selection; the initiator gives up.
func TestHybridAnswerWithTwoMethods(t *testing.T) {
	offer := mustProposals(t, message.ProtocolIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_mlkem1024")
	w := offer[0].Wire(1, nil, true)
	if oneAddKEEach(&w) {
		t.Fatal("two ADDKE1 methods taken as one")
	}
	sel, err := selectProposal(offer, []message.Proposal{w}, true)
	if err != nil {
		t.Fatal(err)
	}
	a := sel.wire(message.ProtocolIKE, nil).Proposals[0]
	if !oneAddKEEach(&a) {
		t.Fatalf("our own answer %v names two methods", a.String())
	}
}

// TestHybridKeysDiffer checks that the additional exchange changes the
// keys: the same IKE_SA_INIT secrets without IKE_INTERMEDIATE would give
// other SK_* and so other Child SA keys.
func TestHybridKeysDiffer(t *testing.T) {
	i, r := hybridPair(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
	var pre, post []byte
	done := make(chan struct{})
	i.conn.setMangle(func(h message.Header, data []byte) []byte {
		// Runs on the initiator's loop: before the IKE_INTERMEDIATE
		// request the keys are IKE_SA_INIT's, before IKE_AUTH the final.
		sa := i.e.sas[h.SPIi]
		switch {
		case sa == nil:
		case h.Exchange == message.ExchangeIKEIntermediate:
			pre = append([]byte(nil), sa.keys.SKd...)
		case h.Exchange == message.ExchangeIKEAuth && post == nil:
			post = append([]byte(nil), sa.keys.SKd...)
			close(done)
		}
		return data
	})
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	<-done
	if len(pre) == 0 || len(pre) != len(post) || string(pre) == string(post) {
		t.Fatalf("SK_d before and after IKE_INTERMEDIATE: %d/%d octets, equal=%v", len(pre), len(post), string(pre) == string(post))
	}
	waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
	checkPairs(t, i.inst, r.inst, 1)
}

// TestHybridTamperedIntermediate changes an IKE_INTERMEDIATE response in
// flight, re-sealed with the right keys so that only IntAuth can notice
// (RFC 9242 §3.3.2): IKE_AUTH must fail. The same re-sealing without the
// change must still work, so the failure is the change's doing.
func TestHybridTamperedIntermediate(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		name := "resealed"
		if tamper {
			name = "tampered"
		}
		t.Run(name, func(t *testing.T) {
			i, r := hybridPair(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
			var resealed int
			r.conn.setMangle(func(h message.Header, data []byte) []byte {
				if h.Exchange != message.ExchangeIKEIntermediate || !h.IsResponse() {
					return data
				}
				sa := r.e.sas[h.SPIr] // on the responder's loop, keys not yet moved on
				ps, err := openOwn(sa, data)
				if err != nil {
					t.Errorf("opening our own IKE_INTERMEDIATE response: %v", err)
					return data
				}
				if tamper {
					// An unknown status notify: the initiator ignores it,
					// the keys stay the same, only IntAuth_r differs.
					ps = append(ps, notify(message.NotifyType(40960), []byte("x")))
				}
				pq := r.e.hybrid[sa]
				delete(r.e.hybrid, sa) // seal without folding the copy into our own chain
				out, err := sa.encode(h.Exchange, true, h.MessageID, ps)
				r.e.hybrid[sa] = pq
				if err != nil {
					t.Errorf("re-sealing: %v", err)
					return data
				}
				if len(out) != 1 {
					t.Errorf("re-sealed IKE_INTERMEDIATE response went out in %d fragments", len(out))
					return data
				}
				resealed++
				return out[0]
			})
			err := i.e.Initiate(ctx(t), "test")
			if !tamper {
				if err != nil {
					t.Fatalf("re-sealed unchanged message: %v", err)
				}
				waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
				checkPairs(t, i.inst, r.inst, 1)
				return
			}
			if err == nil {
				t.Fatal("IKE_AUTH succeeded over a tampered IKE_INTERMEDIATE")
			}
			waitFor(t, "responder log", func() bool { return hasLine(r.log.String(), "authentication of the peer failed") })
			if len(i.inst.Inbound())+len(r.inst.Inbound()) != 0 {
				t.Fatal("Child SA installed after failed authentication")
			}
			if !errors.Is(err, errSilentFail) && !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") && !strings.Contains(err.Error(), "exchange failed") {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

// openOwn decrypts a message this SA just sealed (with its outbound keys).
func openOwn(sa *ikeSA, raw []byte) ([]message.Payload, error) {
	p, err := sa.protector(true)
	if err != nil {
		return nil, err
	}
	defer p.Destroy()
	m, err := message.Decode(raw)
	if err != nil {
		return nil, err
	}
	lay, err := message.LocateEncrypted(raw, p.IVLen(), p.ICVLen())
	if err != nil {
		return nil, err
	}
	plain, err := p.Open(nil, lay.AssociatedData, raw[len(lay.AssociatedData):])
	if err != nil {
		return nil, err
	}
	sk := m.Payloads[len(m.Payloads)-1].(*message.Encrypted)
	return message.DecodePayloads(sk.NextPayload, plain)
}

// TestHybridRequired: a responder that insists on ML-KEM refuses a
// classical initiator, and the other way round.
func TestHybridRequired(t *testing.T) {
	for _, tc := range []struct{ ikeI, ikeR string }{
		{"aes256gcm16-prfsha384-x25519", "aes256gcm16-prfsha384-x25519-ke1_mlkem768"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519"},
	} {
		i, r := hybridPair(t, tc.ikeI, tc.ikeR)
		if err := i.e.Initiate(ctx(t), "test"); err == nil {
			t.Fatalf("%s vs %s established", tc.ikeI, tc.ikeR)
		}
		if !hasLine(r.log.String(), "no IKE proposal chosen") {
			t.Fatalf("%s vs %s: responder log lacks the refusal:\n%s", tc.ikeI, tc.ikeR, r.log.String())
		}
	}
}

// TestHybridSkippedIntermediate: an initiator that goes to IKE_AUTH
// without the negotiated IKE_INTERMEDIATE gets no IKE SA.
func TestHybridSkippedIntermediate(t *testing.T) {
	i, r := hybridPair(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
	// The initiator forgets the negotiated exchanges as soon as it has
	// queued them: it then runs IKE_AUTH under the IKE_SA_INIT keys.
	i.conn.setMangle(func(h message.Header, data []byte) []byte {
		if h.Exchange == message.ExchangeIKEIntermediate && !h.IsResponse() {
			sa := i.e.sas[h.SPIi]
			i.e.hybrid[sa].pending = nil
			sa.pending.task = &authTask{}
			out, err := sa.encode(message.ExchangeIKEAuth, false, h.MessageID, mustBuild(t, sa))
			if err != nil {
				t.Error(err)
				return data
			}
			if len(out) != 1 {
				t.Errorf("IKE_AUTH went out in %d fragments", len(out))
				return data
			}
			sa.pending.raw = out
			return out[0]
		}
		return data
	})
	if err := i.e.Initiate(ctx(t), "test"); err == nil {
		t.Fatal("IKE SA established without the additional key exchange")
	}
	waitFor(t, "responder refusal", func() bool {
		return hasLine(r.log.String(), "IKE_AUTH before the negotiated additional key exchanges")
	})
	if len(r.inst.Inbound()) != 0 {
		t.Fatal("responder installed a Child SA")
	}
}

func mustBuild(t *testing.T, sa *ikeSA) []message.Payload {
	ps, err := (&authTask{}).build(sa)
	if err != nil {
		t.Error(err)
	}
	return ps
}

// TestHybridIKERekey rekeys a hybrid IKE SA, by either end: the
// CREATE_CHILD_SA exchange carries X25519 and IKE_FOLLOWUP_KE the ML-KEM
// exchange (two of them with two ADDKE slots, RFC 9370 §2.2.4); the Child
// SA moves to the new IKE SA, whose keys work (a Child SA rekey on it
// gives both ends the same keys).
func TestHybridIKERekey(t *testing.T) {
	for _, tc := range []struct {
		name, ike string
		rounds    int
	}{
		{"mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", 1},
		{"mlkem768-ecp384", "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp384", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, r := hybridPair(t, tc.ike, tc.ike)
			if err := i.e.Initiate(ctx(t), "test"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "responder outbound SA", func() bool { return len(r.inst.Outbound()) == 1 })
			child := i.inst.Inbound()[0].SPI
			for _, by := range []*peer{i, r} {
				old := by.e.List()[0]
				if err := by.e.RekeyIKE(ctx(t), "test"); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "old IKE SA gone on both sides", func() bool {
					li, lr := i.e.List(), r.e.List()
					return len(li) == 1 && len(lr) == 1 && li[0].SPIi != old.SPIi && li[0].SPIi == lr[0].SPIi &&
						li[0].State == StateEstablished && lr[0].State == StateEstablished
				})
				if got := by.conn.sent("IKE_FOLLOWUP_KE/req"); got != tc.rounds {
					t.Fatalf("%d IKE_FOLLOWUP_KE requests, want %d", got, tc.rounds)
				}
				li, lr := i.e.List()[0], r.e.List()[0]
				if li.Proposal != lr.Proposal || !strings.Contains(li.Proposal, "ke1_mlkem768") {
					t.Fatalf("rekeyed IKE SA: %q / %q", li.Proposal, lr.Proposal)
				}
				if len(li.Children) != 1 || li.Children[0].SPIIn != child {
					t.Fatalf("Child SA did not move: %+v", li.Children)
				}
			}
			// The new IKE SA's SK_d agrees on both ends.
			if err := i.e.rekeyChildSPI(ctx(t), child); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "one Child SA pair", func() bool {
				return len(i.inst.Outbound()) == 1 && len(r.inst.Outbound()) == 1 && len(i.inst.Inbound()) == 1 &&
					len(r.inst.Inbound()) == 1 && i.inst.Inbound()[0].SPI != child
			})
			checkPairs(t, i.inst, r.inst, 1)
			if hasLine(i.log.String()+r.log.String(), "IKE SA rekey failed") {
				t.Fatal("a rekey failed on the way")
			}
		})
	}
}

// TestHybridRekeyRefusals: a classical rekey of a hybrid IKE SA is
// refused, and an IKE_FOLLOWUP_KE without our link finds no state.
func TestHybridRekeyRefusals(t *testing.T) {
	const hybrid = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	ci, cr := pskPair(t, hybrid+", aes256gcm16-prfsha384-x25519", "aes256gcm16")
	i, r := startPair(t, ci, cr)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	got := make(chan [2][]message.Payload, 1)
	r.e.post(func() {
		for _, sa := range r.e.sas {
			if sa.state != StateEstablished {
				continue
			}
			classic := mustProposals(t, message.ProtocolIKE, "aes256gcm16-prfsha384-x25519")
			a, _ := respondRekeyIKE(sa, message.Payloads{
				wireSA(classic, []byte{1, 2, 3, 4, 5, 6, 7, 8}, true),
				&message.Nonce{Data: newNonce()},
				&message.KeyExchange{Group: iana.GroupCurve25519, Data: make([]byte, 32)},
			})
			b, _ := respondFollowupKE(sa, message.Payloads{
				&message.KeyExchange{Group: iana.GroupMLKEM768, Data: make([]byte, 1184)},
				notify(message.NotifyAdditionalKeyExchange, []byte("made up")),
			})
			got <- [2][]message.Payload{a, b}
			return
		}
		got <- [2][]message.Payload{}
	})
	select {
	case ps := <-got:
		if len(ps[0]) != 1 || ps[0][0].(*message.Notify).NotifyType != message.NotifyNoProposalChosen {
			t.Fatalf("classical rekey of a hybrid SA answered with %v", ps[0])
		}
		if len(ps[1]) != 1 || ps[1][0].(*message.Notify).NotifyType != message.NotifyStateNotFound {
			t.Fatalf("stray IKE_FOLLOWUP_KE answered with %v", ps[1])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("engine did not run the check")
	}
	if !hasLine(r.log.String(), "refusing rather than lose them") {
		t.Fatal("the refusal was not logged as such")
	}
}

// TestHybridIKERekeyCollisions rekeys a hybrid IKE SA from both ends at
// once, ten times: the collision rules of RFC 7296 §2.8.1 hold with the
// IKE_FOLLOWUP_KE exchanges in between, and no Child SA traffic is lost
// (lossless checks the installer's switch-overs).
func TestHybridIKERekeyCollisions(t *testing.T) {
	const h = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	ci, cr := pskPair(t, h, "aes128gcm16-x25519")
	var l lossless
	i, r := startPairWith(t, ci, cr, addrI, addrR, l.wrap)
	if err := i.e.Initiate(ctx(t), "test"); err != nil {
		t.Fatal(err)
	}
	steady(t, i, r, 1)
	l.arm()
	seen := map[uint64]bool{}
	for n := range 10 {
		var wg sync.WaitGroup
		for _, p := range []*peer{i, r} {
			wg.Add(1)
			go func() { defer wg.Done(); p.e.RekeyIKE(ctx(t), "test") }()
		}
		wg.Wait()
		var li []IKESAInfo
		waitFor(t, fmt.Sprintf("round %d: one IKE SA on each end", n), func() bool {
			li = i.e.List()
			lr := r.e.List()
			return len(li) == 1 && len(lr) == 1 && li[0].SPIi == lr[0].SPIi && li[0].SPIr == lr[0].SPIr &&
				li[0].State == StateEstablished && lr[0].State == StateEstablished && !seen[li[0].SPIi]
		})
		seen[li[0].SPIi] = true
		steady(t, i, r, 1)
		if err := i.e.rekeyChildSPI(ctx(t), childSPI(t, i)); err != nil {
			t.Fatalf("round %d: Child SA rekey on the new IKE SA: %v", n, err)
		}
		steady(t, i, r, 1)
	}
	l.result(t)
	t.Logf("%d IKE rekey collisions", strings.Count(i.log.String()+r.log.String(), "IKE rekey collision:"))
}
