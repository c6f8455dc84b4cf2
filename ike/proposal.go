package ike

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/xdpsec/xdpsec/ike/crypto"
	"github.com/xdpsec/xdpsec/ike/iana"
	"github.com/xdpsec/xdpsec/ike/message"
)

// Encr is an encryption transform with its key length.
type Encr struct {
	ID      iana.EncrID
	KeyBits int // 128, 192 or 256 for AES; 256 for ChaCha20-Poly1305
}

func (e Encr) aead() bool {
	return e.ID != iana.EncrAESCBC
}

// Proposal is one proposal as configured: every transform type lists the
// algorithms acceptable for it, in order of preference. A proposal for
// an IKE SA has Encr, PRF and DH (and Integ unless the cipher is an AEAD);
// one for ESP has Encr, Integ for non-AEAD ciphers, optional DH groups
// (PFS, used by CREATE_CHILD_SA) and ESN choices.
//
// AddKE are the additional key exchanges of RFC 9370 (IKE only): slot n
// is transform type ADDKE(n+1), run in IKE_INTERMEDIATE exchange n+1 after
// IKE_SA_INIT. A slot lists acceptable methods in order of preference;
// iana.GroupID 0 in it is NONE, which makes the exchange optional. An
// empty slot is not sent and accepts only NONE from the peer.
type Proposal struct {
	Protocol message.ProtocolID
	Encr     []Encr
	Integ    []iana.IntegID
	PRF      []iana.PRFID
	DH       []iana.GroupID
	ESN      []bool // ESP only; empty means "no ESN"
	AddKE    [maxAddKE][]iana.GroupID
}

// maxAddKE is the number of additional key exchange transform types
// (ADDKE1 to ADDKE7, RFC 9370 §2.2.1).
const maxAddKE = 7

// groupNone is the NONE transform of an ADDKE type (RFC 9370 §2.2.1).
const groupNone iana.GroupID = 0

// hasAddKE reports whether the proposal asks for any additional key
// exchange (a slot that is not just NONE).
func (p *Proposal) hasAddKE() bool {
	for _, slot := range p.AddKE {
		for _, g := range slot {
			if g != groupNone {
				return true
			}
		}
	}
	return false
}

// addKETransform is the transform type of ADDKE slot n (0-based).
func addKETransform(n int) iana.TransformType {
	return iana.TransformAddKE1 + iana.TransformType(n)
}

// String writes the proposal back in strongSwan's syntax.
func (p Proposal) String() string {
	var parts []string
	for _, e := range p.Encr {
		parts = append(parts, encrToken(e))
	}
	for _, i := range p.Integ {
		parts = append(parts, iana.IntegKeyword(i))
	}
	for _, f := range p.PRF {
		parts = append(parts, iana.PRFKeyword(f))
	}
	for _, g := range p.DH {
		parts = append(parts, iana.GroupKeyword(g))
	}
	for n, slot := range p.AddKE {
		for _, g := range slot {
			parts = append(parts, fmt.Sprintf("ke%d_%s", n+1, addKEToken(g)))
		}
	}
	for _, e := range p.ESN {
		if e {
			parts = append(parts, "esn")
		} else {
			parts = append(parts, "noesn")
		}
	}
	return strings.Join(parts, "-")
}

func addKEToken(g iana.GroupID) string {
	if g == groupNone {
		return "none"
	}
	if t := iana.GroupKeyword(g); t != "" {
		return t
	}
	return fmt.Sprintf("ke%d", g)
}

func encrToken(e Encr) string {
	if t := iana.EncrKeyword(e.ID, e.KeyBits); t != "" {
		return t
	}
	return fmt.Sprintf("encr%d", e.ID)
}

// parseAddKE reads a "keN_method" keyword; ok is false for other keywords.
// An ADDKE slot takes ML-KEM (the reason the slots exist), every other
// method with a keyword, and none, as strongSwan 6 accepts them (its syntax:
// ke1_mlkem768, ke2_none).
func parseAddKE(tok string) (slot int, g iana.GroupID, ok bool, err error) {
	if len(tok) < 5 || !strings.HasPrefix(tok, "ke") || tok[3] != '_' || tok[2] < '1' || tok[2] > '0'+maxAddKE {
		return 0, 0, false, nil
	}
	name := tok[4:]
	if name == "none" {
		return int(tok[2] - '1'), groupNone, true, nil
	}
	if g, _, ok := iana.ParseGroupKeyword(name); ok {
		return int(tok[2] - '1'), g, true, nil
	}
	return 0, 0, true, fmt.Errorf("unknown key exchange method %q in %q", name, tok)
}

// ParseProposal reads one proposal in strongSwan's syntax: transform
// keywords joined by '-' (aes128, aes192, aes256, aes128gcm16, aes256gcm12,
// chacha20poly1305; sha256, sha384, sha512; prfsha256, prfsha384,
// prfsha512; modp2048, modp3072, modp4096, ecp256, ecp384, ecp521, x25519;
// esn, noesn; for IKE, ke1_mlkem768 to ke7_... and keN_none for the
// additional key exchanges of RFC 9370, as strongSwan 6 writes them).
// Several keywords of one type are alternatives, in order of
// preference. For IKE, integrity keywords also stand for the PRF of the
// same hash when no prf keyword is given, as in strongSwan; an AEAD-only
// IKE proposal must name its PRF. protocol is message.ProtocolIKE or
// message.ProtocolESP.
func ParseProposal(protocol message.ProtocolID, s string) (Proposal, error) {
	p := Proposal{Protocol: protocol}
	if protocol != message.ProtocolIKE && protocol != message.ProtocolESP {
		return p, fmt.Errorf("proposal %q: protocol %v not supported", s, protocol)
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return p, fmt.Errorf("empty proposal")
	}
	for tok := range strings.SplitSeq(s, "-") {
		if id, bits, ok := iana.ParseEncrKeyword(tok); ok {
			p.Encr = appendNew(p.Encr, Encr{id, bits})
			continue
		}
		if i, ok := iana.ParseIntegKeyword(tok); ok {
			p.Integ = appendNew(p.Integ, i)
			continue
		}
		if f, ok := iana.ParsePRFKeyword(tok); ok {
			if protocol != message.ProtocolIKE {
				return p, fmt.Errorf("proposal %q: %q is an IKE transform", s, tok)
			}
			p.PRF = appendNew(p.PRF, f)
			continue
		}
		if g, additional, ok := iana.ParseGroupKeyword(tok); ok && !additional {
			p.DH = appendNew(p.DH, g)
			continue
		}
		if slot, g, ok, err := parseAddKE(tok); ok {
			if err != nil {
				return p, fmt.Errorf("proposal %q: %w", s, err)
			}
			if protocol != message.ProtocolIKE {
				// A Child SA with additional key exchanges needs
				// IKE_FOLLOWUP_KE (RFC 9370 §2.2.4), which we do not
				// implement: refusing the configuration beats a Child SA
				// that quietly has only the classical exchange.
				return p, fmt.Errorf("proposal %q: %q: additional key exchanges for ESP (IKE_FOLLOWUP_KE) are not supported", s, tok)
			}
			p.AddKE[slot] = appendNew(p.AddKE[slot], g)
			continue
		}
		if tok == "esn" || tok == "noesn" {
			if protocol != message.ProtocolESP {
				return p, fmt.Errorf("proposal %q: %q is an ESP transform", s, tok)
			}
			p.ESN = appendNew(p.ESN, tok == "esn")
			continue
		}
		return p, fmt.Errorf("proposal %q: unknown keyword %q", s, tok)
	}
	if len(p.Encr) == 0 {
		return p, fmt.Errorf("proposal %q: no encryption algorithm", s)
	}
	var aead, plain bool
	for _, e := range p.Encr {
		if e.aead() {
			aead = true
		} else {
			plain = true
		}
	}
	if aead && plain {
		// RFC 7296 §3.3: combined-mode and plain ciphers go in separate
		// proposals, because one has integrity and the other must not.
		return p, fmt.Errorf("proposal %q: mixes AEAD and non-AEAD ciphers", s)
	}
	if aead && len(p.Integ) > 0 {
		if protocol == message.ProtocolIKE && len(p.PRF) == 0 {
			// strongSwan reads sha* after an AEAD as the PRF.
			for _, i := range p.Integ {
				if f, ok := iana.PRFOfInteg(i); ok {
					p.PRF = appendNew(p.PRF, f)
				}
			}
			p.Integ = nil
		} else {
			return p, fmt.Errorf("proposal %q: an AEAD cipher takes no integrity algorithm", s)
		}
	}
	if plain && len(p.Integ) == 0 {
		return p, fmt.Errorf("proposal %q: AES-CBC needs an integrity algorithm", s)
	}
	if protocol == message.ProtocolIKE {
		if len(p.PRF) == 0 {
			if aead {
				return p, fmt.Errorf("proposal %q: an AEAD IKE proposal must name its PRF (e.g. prfsha256)", s)
			}
			for _, i := range p.Integ {
				if f, ok := iana.PRFOfInteg(i); ok {
					p.PRF = appendNew(p.PRF, f)
				}
			}
		}
		if len(p.DH) == 0 {
			return p, fmt.Errorf("proposal %q: an IKE proposal needs a key exchange group", s)
		}
	}
	return p, nil
}

// ParseProposals reads a comma-separated list of proposals, as strongSwan's
// "proposals" and "esp_proposals" settings hold.
func ParseProposals(protocol message.ProtocolID, s string) ([]Proposal, error) {
	var out []Proposal
	for part := range strings.SplitSeq(s, ",") {
		p, err := ParseProposal(protocol, part)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// Wire encodes the proposal as an SA payload proposal numbered num. withDH
// false leaves the key exchange transforms out (the Child SA of IKE_AUTH
// has none, RFC 7296 §1.2). ChaCha20-Poly1305 gets no Key Length attribute
// (RFC 7634 §2); every AES transform does (RFC 7296 §3.3.5).
func (p Proposal) Wire(num uint8, spi []byte, withDH bool) message.Proposal {
	w := message.Proposal{Number: num, Protocol: p.Protocol, SPI: spi}
	for _, e := range p.Encr {
		t := message.Transform{Type: iana.TransformEncr, ID: message.TransformID(e.ID)}
		if e.ID != iana.EncrChaCha20Poly1305 {
			t.Attributes = []message.Attribute{message.KeyLengthAttribute(uint16(e.KeyBits))}
		}
		w.Transforms = append(w.Transforms, t)
	}
	for _, f := range p.PRF {
		w.Transforms = append(w.Transforms, message.Transform{Type: iana.TransformPRF, ID: message.TransformID(f)})
	}
	for _, i := range p.Integ {
		w.Transforms = append(w.Transforms, message.Transform{Type: iana.TransformInteg, ID: message.TransformID(i)})
	}
	if withDH {
		for _, g := range p.DH {
			w.Transforms = append(w.Transforms, message.Transform{Type: iana.TransformDH, ID: message.TransformID(g)})
		}
		for n, slot := range p.AddKE {
			for _, g := range slot {
				w.Transforms = append(w.Transforms, message.Transform{Type: addKETransform(n), ID: message.TransformID(g)})
			}
		}
	}
	if p.Protocol == message.ProtocolESP {
		esn := p.ESN
		if len(esn) == 0 {
			esn = []bool{false}
		}
		for _, e := range esn {
			id := iana.ESNNo
			if e {
				id = iana.ESNYes
			}
			w.Transforms = append(w.Transforms, message.Transform{Type: iana.TransformESN, ID: message.TransformID(id)})
		}
	}
	return w
}

// wireSA encodes a list of proposals as an SA payload.
func wireSA(ps []Proposal, spi []byte, withDH bool) *message.SA {
	sa := &message.SA{}
	for i, p := range ps {
		sa.Proposals = append(sa.Proposals, p.Wire(uint8(i+1), spi, withDH))
	}
	return sa
}

// selected is the outcome of proposal selection: one algorithm per type.
type selected struct {
	Number uint8 // the peer's proposal number
	// addKE are the additional key exchanges (RFC 9370) by ADDKE slot,
	// zero (NONE) where the slot was NONE or absent. One octet each:
	// the selection only ever holds methods of our own proposals, which
	// ParseProposal limits to ones we implement, all below 256; that keeps
	// the struct (in every IKE and Child SA) at its size without them.
	addKE [maxAddKE]uint8
	SPI   []byte
	Encr  Encr
	Integ iana.IntegID
	PRF   iana.PRFID
	DH    iana.GroupID // 0 when none was negotiated
	ESN   bool
	// addKESlots has bit n set when the peer's proposal carried
	// ADDKE(n+1), so the answer carries it too (RFC 7296 §3.3.6: one
	// transform of each type offered).
	addKESlots uint8
}

// AddKE returns the method selected for ADDKE slot n (0-based), groupNone
// for none.
func (s *selected) AddKE(n int) iana.GroupID { return iana.GroupID(s.addKE[n]) }

// addKEs returns the additional key exchanges to run, in order, NONE
// slots left out (RFC 9370 §2.2.2).
func (s selected) addKEs() []iana.GroupID {
	var out []iana.GroupID
	for _, g := range s.addKE {
		if g != 0 {
			out = append(out, iana.GroupID(g))
		}
	}
	return out
}

// sameAlgorithms reports whether two selections agree on every algorithm
// (not on the peer's proposal number or SPI).
func (s selected) sameAlgorithms(o selected) bool {
	return s.Encr == o.Encr && s.Integ == o.Integ && s.PRF == o.PRF && s.DH == o.DH && s.ESN == o.ESN && s.addKE == o.addKE
}

// Suite returns the ike/crypto suite of the selection.
func (s selected) Suite() crypto.Suite {
	return crypto.Suite{Encr: s.Encr.ID, KeyBits: s.Encr.KeyBits, Integ: s.Integ, PRF: s.PRF}
}

// String writes the selection in strongSwan's syntax.
func (s selected) String() string {
	p := Proposal{Protocol: message.ProtocolESP, Encr: []Encr{s.Encr}}
	if s.Integ != iana.IntegNone {
		p.Integ = []iana.IntegID{s.Integ}
	}
	if s.PRF != 0 {
		p.Protocol = message.ProtocolIKE
		p.PRF = []iana.PRFID{s.PRF}
	}
	if s.DH != 0 {
		p.DH = []iana.GroupID{s.DH}
	}
	for n, g := range s.addKE {
		if g != 0 {
			p.AddKE[n] = []iana.GroupID{iana.GroupID(g)}
		}
	}
	if p.Protocol == message.ProtocolESP {
		p.ESN = []bool{s.ESN}
	}
	return p.String()
}

// wire encodes the selection as the single proposal of a response.
func (s selected) wire(protocol message.ProtocolID, spi []byte) *message.SA {
	p := Proposal{Protocol: protocol, Encr: []Encr{s.Encr}}
	if s.Integ != iana.IntegNone {
		p.Integ = []iana.IntegID{s.Integ}
	}
	if protocol == message.ProtocolIKE {
		p.PRF = []iana.PRFID{s.PRF}
	} else {
		p.ESN = []bool{s.ESN}
	}
	if s.DH != 0 {
		p.DH = []iana.GroupID{s.DH}
	}
	for n, g := range s.addKE {
		if g != 0 || s.addKESlots&(1<<n) != 0 {
			p.AddKE[n] = []iana.GroupID{iana.GroupID(g)}
		}
	}
	return &message.SA{Proposals: []message.Proposal{p.Wire(s.Number, spi, true)}}
}

var errNoProposal = errors.New("no acceptable proposal")

// theirTransforms groups one received proposal's transforms by type.
type theirTransforms struct {
	encr  []Encr
	integ []iana.IntegID
	prf   []iana.PRFID
	dh    []iana.GroupID
	esn   []bool
	addKE [maxAddKE][]iana.GroupID
	other bool // a transform type we do not know: the proposal cannot be taken
}

func groupTransforms(wp *message.Proposal) theirTransforms {
	var t theirTransforms
	for i := range wp.Transforms {
		tr := &wp.Transforms[i]
		switch tr.Type {
		case iana.TransformEncr:
			bits, ok := tr.KeyLength()
			if !ok && iana.EncrID(tr.ID) == iana.EncrChaCha20Poly1305 {
				bits, ok = 256, true
			}
			if ok {
				t.encr = append(t.encr, Encr{iana.EncrID(tr.ID), int(bits)})
			}
		case iana.TransformInteg:
			t.integ = append(t.integ, iana.IntegID(tr.ID))
		case iana.TransformPRF:
			t.prf = append(t.prf, iana.PRFID(tr.ID))
		case iana.TransformDH:
			t.dh = append(t.dh, iana.GroupID(tr.ID))
		case iana.TransformESN:
			t.esn = append(t.esn, iana.ESNID(tr.ID) == iana.ESNYes)
		case iana.TransformAddKE1, iana.TransformAddKE2, iana.TransformAddKE3, iana.TransformAddKE4,
			iana.TransformAddKE5, iana.TransformAddKE6, iana.TransformAddKE7:
			n := int(tr.Type - iana.TransformAddKE1)
			if len(t.addKE[n]) < 64 { // bounded: a slot needs no more alternatives
				t.addKE[n] = append(t.addKE[n], iana.GroupID(tr.ID))
			}
		default:
			t.other = true
		}
	}
	return t
}

// pick returns the first of ours that theirs contains.
func pick[T comparable](ours, theirs []T) (T, bool) {
	for _, o := range ours {
		if slices.Contains(theirs, o) {
			return o, true
		}
	}
	var zero T
	return zero, false
}

// selectProposal picks, in our order of preference (as strongSwan does by
// default), the first of our proposals that one of theirs can match, and
// within it our most preferred algorithm of each type (RFC 7296 §2.7).
// withDH false ignores key exchange transforms (the Child SA of IKE_AUTH).
func selectProposal(ours []Proposal, theirs []message.Proposal, withDH bool) (selected, error) {
	for _, o := range ours {
		for i := range theirs {
			wp := &theirs[i]
			if wp.Protocol != o.Protocol {
				continue
			}
			t := groupTransforms(wp)
			if t.other {
				continue
			}
			var s selected
			var ok bool
			// A copy: the peer's SPI lives as long as the SA, and a slice
			// of the decoded message would keep all of it alive.
			s.Number, s.SPI = wp.Number, slices.Clone(wp.SPI)
			if s.Encr, ok = pick(o.Encr, t.encr); !ok {
				continue
			}
			if !s.Encr.aead() {
				if s.Integ, ok = pick(o.Integ, t.integ); !ok {
					continue
				}
			} else if len(t.integ) > 0 && !slices.Contains(t.integ, iana.IntegNone) {
				continue
			}
			if o.Protocol == message.ProtocolIKE {
				if s.PRF, ok = pick(o.PRF, t.prf); !ok {
					continue
				}
			}
			if o.Protocol == message.ProtocolIKE || (withDH && (len(o.DH) > 0 || len(t.dh) > 0)) {
				if s.DH, ok = pick(o.DH, t.dh); !ok {
					continue
				}
			}
			if withDH && !pickAddKE(&s, &o, &t) {
				continue
			}
			if o.Protocol == message.ProtocolESP {
				ourESN := o.ESN
				if len(ourESN) == 0 {
					ourESN = []bool{false}
				}
				theirESN := t.esn
				if len(theirESN) == 0 {
					theirESN = []bool{false}
				}
				if s.ESN, ok = pick(ourESN, theirESN); !ok {
					continue
				}
			}
			return s, nil
		}
	}
	return selected{}, errNoProposal
}

// oneAddKEEach reports whether an answer's proposal names at most one
// method per ADDKE type, as a selection must (RFC 7296 §3.3.6): with two,
// the ends could run different exchanges.
func oneAddKEEach(p *message.Proposal) bool {
	t := groupTransforms(p)
	for _, slot := range t.addKE {
		if len(slot) > 1 {
			return false
		}
	}
	return true
}

// pickAddKE selects the additional key exchanges (RFC 9370 §2.2.1): per
// ADDKE type our most preferred method that the peer offers, where a type
// missing from either side stands for NONE alone. A method already chosen
// for the main exchange or an earlier slot is not chosen again: the same
// exchange twice adds nothing. It reports false when some slot cannot
// match, which rules the proposal out.
func pickAddKE(s *selected, o *Proposal, t *theirTransforms) bool {
	none := []iana.GroupID{groupNone}
	for n := range maxAddKE {
		ours, theirs := o.AddKE[n], t.addKE[n]
		if len(ours) == 0 {
			ours = none
		}
		if len(theirs) == 0 {
			theirs = none
		} else {
			s.addKESlots |= 1 << n
		}
		found := false
		for _, g := range ours {
			if !slices.Contains(theirs, g) {
				continue
			}
			if g > 0xff {
				continue // not one we implement (see selected.addKE)
			}
			if g != groupNone && (g == s.DH || slices.Contains(s.addKE[:n], uint8(g))) {
				continue
			}
			s.addKE[n], found = uint8(g), true
			break
		}
		if !found {
			return false
		}
	}
	return true
}

// describeProposals lists received proposals for a log line.
func describeProposals(ps []message.Proposal) string {
	var parts []string
	for i := range ps {
		parts = append(parts, ps[i].String())
	}
	return strings.Join(parts, ", ")
}

func describeOurs(ps []Proposal) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, ", ")
}
