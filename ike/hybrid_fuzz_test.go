package ike

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

const fuzzHybrid = "aes128gcm16-prfsha256-x25519-ke1_mlkem768-ke2_ecp256"

// hybridResponder builds an engine (loop not running) whose connection is
// hybrid, with one responder IKE SA: established when established is set,
// else between IKE_SA_INIT and IKE_INTERMEDIATE.
func hybridResponder(t testing.TB, established bool) (*Engine, *ikeSA) {
	t.Helper()
	e := fuzzEngine(t, fuzzHybrid)
	cr := *e.conns[0]
	sa := e.newSA(e.conns[0], false, fuzzLocal, fuzzRemote)
	sa.spiI = 0x0102030405060708
	sel, err := selectProposal(cr.IKEProposals, []message.Proposal{cr.IKEProposals[0].Wire(1, nil, true)}, true)
	if err != nil {
		t.Fatal(err)
	}
	sa.sel, sa.ni, sa.nr = sel, newNonce(), newNonce()
	if err := sa.deriveKeys(make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	sa.remoteID = cr.Remote.ID
	if established {
		sa.state = StateEstablished
	} else {
		sa.startHybrid()
	}
	return e, sa
}

// encodeSeed writes payloads the way the fuzz targets read them: the
// first payload's type, then the chain.
func encodeSeed(t testing.TB, ps ...message.Payload) []byte {
	b, first, err := message.AppendPayloads(nil, ps)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{byte(first)}, b...)
}

func keSeed(t testing.TB, g iana.GroupID) *message.KeyExchange {
	kex, err := crypto.NewKeyExchange(g)
	if err != nil {
		t.Fatal(err)
	}
	return &message.KeyExchange{Group: g, Data: kex.PublicKey()}
}

func intermediateSeeds(t testing.TB) [][]byte {
	return [][]byte{
		encodeSeed(t, keSeed(t, iana.GroupMLKEM768)),
		encodeSeed(t, keSeed(t, iana.GroupECP256)),
		encodeSeed(t, notify(message.NotifyInvalidSyntax, nil)),
	}
}

// FuzzIntermediate feeds IKE_INTERMEDIATE request payloads (as they come
// out of an authenticated SK payload) to the responder of a hybrid IKE SA
// in set-up: it must never panic, must answer every request, and must
// never move on more key exchanges than were negotiated.
func FuzzIntermediate(f *testing.F) {
	for _, s := range intermediateSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ps, err := message.DecodePayloads(message.PayloadType(data[0]), data[1:])
		if err != nil {
			return
		}
		e, sa := hybridResponder(t, false)
		for range 3 {
			if sa.state == StateDead {
				break
			}
			resp, after := respondIntermediate(sa, ps)
			if len(resp) == 0 {
				t.Fatal("request left unanswered")
			}
			if after != nil {
				after()
			}
			if pq := e.hybrid[sa]; pq != nil && pq.done+len(pq.pending) != 2 {
				t.Fatalf("%d exchanges done and %d pending of 2", pq.done, len(pq.pending))
			}
		}
	})
}

func followupSeeds(t testing.TB) [][]byte {
	ike := mustProposals(t, message.ProtocolIKE, fuzzHybrid)
	return [][]byte{
		encodeSeed(t, wireSA(ike, []byte{1, 2, 3, 4, 5, 6, 7, 8}, true), &message.Nonce{Data: newNonce()}, keSeed(t, iana.GroupCurve25519)),
		encodeSeed(t, keSeed(t, iana.GroupMLKEM768), notify(message.NotifyAdditionalKeyExchange, []byte("12345678"))),
		encodeSeed(t, keSeed(t, iana.GroupECP256), notify(message.NotifyAdditionalKeyExchange, []byte("12345678"))),
	}
}

// FuzzFollowupKE feeds CREATE_CHILD_SA and IKE_FOLLOWUP_KE request
// payloads to an established hybrid IKE SA's responder. A follow-up request
// takes its link from the state the engine holds (a fuzzer cannot guess a
// random link), so the paths past the link check are reached. It must
// never panic, must answer every request, and must keep at most one
// half-made rekey and two IKE SAs.
func FuzzFollowupKE(f *testing.F) {
	for _, s := range followupSeeds(f) {
		f.Add(s)
	}
	e, sa := hybridResponder(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		ps, err := message.DecodePayloads(message.PayloadType(data[0]), data[1:])
		if err != nil {
			return
		}
		var resp []message.Payload
		if saP, ok := ps.Get(message.PayloadSA).(*message.SA); ok && len(saP.Proposals) > 0 && saP.Proposals[0].Protocol == message.ProtocolIKE {
			resp, _ = respondRekeyIKE(sa, ps)
		} else {
			if st := e.followups[sa]; st != nil {
				for _, p := range ps {
					if n, ok := p.(*message.Notify); ok && n.NotifyType == message.NotifyAdditionalKeyExchange {
						n.Data = st.link
					}
				}
			}
			resp, _ = respondFollowupKE(sa, ps)
		}
		if len(resp) == 0 {
			t.Fatal("request left unanswered")
		}
		if len(e.followups) > 1 || len(e.sas) > 2 {
			t.Fatalf("%d half-made rekeys, %d IKE SAs", len(e.followups), len(e.sas))
		}
		if next := sa.ikeSuccessor; next != nil {
			// Undo a completed rekey so later inputs start over.
			next.destroy()
			sa.ikeSuccessor = nil
		}
	})
}

// TestHybridFuzzSeeds checks that the seeds reach the success paths, and
// (with XDPSEC_WRITE_SEEDS=1) writes them to testdata/fuzz.
func TestHybridFuzzSeeds(t *testing.T) {
	e, sa := hybridResponder(t, false)
	for i, s := range intermediateSeeds(t)[:2] {
		ps, err := message.DecodePayloads(message.PayloadType(s[0]), s[1:])
		if err != nil {
			t.Fatal(err)
		}
		resp, after := respondIntermediate(sa, ps)
		if len(resp) != 1 || resp[0].Type() != message.PayloadKE || after == nil {
			t.Fatalf("intermediate seed %d: %v", i, resp)
		}
		after()
	}
	if e.hybrid[sa] == nil || e.hybrid[sa].done != 2 {
		t.Fatal("the intermediate seeds did not run both exchanges")
	}

	e, sa = hybridResponder(t, true)
	for i, s := range followupSeeds(t) {
		ps, err := message.DecodePayloads(message.PayloadType(s[0]), s[1:])
		if err != nil {
			t.Fatal(err)
		}
		var resp []message.Payload
		if i == 0 {
			resp, _ = respondRekeyIKE(sa, ps)
		} else {
			ps.Notify(message.NotifyAdditionalKeyExchange).Data = e.followups[sa].link
			resp, _ = respondFollowupKE(sa, ps)
		}
		for _, p := range resp {
			if n, ok := p.(*message.Notify); ok && n.NotifyType.IsError() {
				t.Fatalf("followup seed %d refused: %v", i, n.NotifyType)
			}
		}
	}
	if sa.ikeSuccessor == nil || sa.ikeSuccessor.state != StateEstablished || len(e.followups) != 0 {
		t.Fatal("the followup seeds did not complete the rekey")
	}

	if os.Getenv("XDPSEC_WRITE_SEEDS") == "1" {
		for name, seeds := range map[string][][]byte{"FuzzIntermediate": intermediateSeeds(t), "FuzzFollowupKE": followupSeeds(t)} {
			dir := filepath.Join("testdata", "fuzz", name)
			os.MkdirAll(dir, 0o755)
			for i, s := range seeds {
				body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
