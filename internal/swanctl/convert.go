package swanctl

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/internal/config"
)

// Options steer the conversion where swanctl.conf says nothing.
type Options struct {
	// LAN and WAN are the interfaces written under interfaces:
	// (swanctl.conf has none); empty: lan0 and wan0, with a comment.
	LAN, WAN string
	// LocalAddr is the local_addr of connections whose local_addrs give
	// no address (absent, %any, only names or ranges).
	LocalAddr string
	// PSKFiles: pre-shared keys go to Result.Secrets and the YAML reads
	// them with psk_file: PSKPrefix+NAME; else with psk_env.
	PSKFiles  bool
	PSKPrefix string
	// Dir is the swanctl directory that relative certificate and key
	// names are found in (x509/, x509ca/, private/, rsa/, ecdsa/,
	// pkcs8/); empty: the directory of the root file.
	Dir string
}

// Secret is a pre-shared key to write to its own file (mode 0600).
type Secret struct {
	Name string // file name, for psk_file
	Data []byte
}

// Result is a converted configuration.
type Result struct {
	YAML    []byte
	Secrets []Secret
	// Env lists the psk_env variables the YAML reads (PSKFiles false)
	// and which secret section each takes.
	Env []string
	// Dropped counts the settings written as comments.
	Dropped int
	// Connections counts the connections converted, Skipped those
	// written as comments.
	Connections, Skipped int
}

// Strongswan's defaults where xdpsec's differ: written explicitly.
const (
	defaultIKERekey   = 4 * time.Hour
	defaultChildRekey = time.Hour
)

type converter struct {
	opt  Options
	root *Section
	out  strings.Builder
	res  Result
	psks []pskEntry
	used map[string]bool // secret file / env names taken
}

type pskEntry struct {
	sec  *Section
	ids  []string
	data []byte
	err  string
}

// Convert turns the parsed swanctl.conf into xdpsec YAML.
func Convert(root *Section, opt Options) (*Result, error) {
	if opt.Dir == "" {
		opt.Dir = filepath.Dir(root.File)
	}
	c := &converter{opt: opt, root: root, used: map[string]bool{}}
	c.header()
	var top []string
	if sec := root.Sub("secrets"); sec != nil {
		top = append(top, c.secrets(sec)...)
	}
	for _, kv := range root.Settings {
		top = append(top, c.drop(kv, "a top-level setting swanctl does not define"))
	}
	for _, s := range root.Sections {
		switch s.Name {
		case "connections", "secrets":
		case "pools":
			top = append(top, c.dropSection(s, "address pools (virtual IPs, configuration payloads) are not implemented"))
		case "authorities":
			top = append(top, c.dropSection(s, "authorities (CRL/OCSP URIs) are not implemented: give the CA as auth.ca"))
		default:
			if !referenced(root, s.Name) {
				top = append(top, c.dropSection(s, "a section swanctl does not define"))
			}
		}
	}
	for _, t := range top {
		c.out.WriteString(t + "\n")
	}
	conns := root.Sub("connections")
	if conns == nil || len(conns.Sections) == 0 {
		c.out.WriteString("# swanctl.conf defines no connections\n")
	} else {
		head := c.out.Len()
		for _, kv := range conns.Settings {
			c.out.WriteString(c.drop(kv, "a setting directly in connections {}") + "\n")
		}
		for _, cs := range conns.Sections {
			c.connection(cs)
		}
		if c.res.Connections > 0 {
			// The list's key goes before its entries (and comments).
			all := c.out.String()
			c.out.Reset()
			c.out.WriteString(all[:head] + "connections:\n" + all[head:])
		}
	}
	c.res.YAML = []byte(c.out.String())
	return &c.res, nil
}

// referenced reports whether some section inherits from the top-level
// section name (a template: its settings reach the sections that name it).
func referenced(s *Section, name string) bool {
	for _, r := range s.Refs {
		if r == name {
			return true
		}
	}
	for _, c := range s.Sections {
		if referenced(c, name) {
			return true
		}
	}
	return false
}

func (c *converter) header() {
	fmt.Fprintf(&c.out, "# xdpsec configuration imported from %s by `xdpsec import swanctl`.\n", filepath.Base(c.root.File))
	c.out.WriteString("# Settings xdpsec cannot carry over are comments naming their swanctl.conf line.\n")
	lan, wan := c.opt.LAN, c.opt.WAN
	if lan == "" || wan == "" {
		c.out.WriteString("# swanctl.conf names no interfaces: set lan and wan (or give --lan and --wan).\n")
		if lan == "" {
			lan = "lan0"
		}
		if wan == "" {
			wan = "wan0"
		}
	}
	fmt.Fprintf(&c.out, "interfaces:\n  lan: %s\n  wan: %s\n", yq(lan), yq(wan))
}

// where is "file:line" of a setting, relative names kept short.
func where(file string, line int) string { return fmt.Sprintf("%s:%d", filepath.Base(file), line) }

// drop is the comment for a setting not carried over. Values of keys that
// may hold secrets are never written.
func (c *converter) drop(kv *Setting, why string) string {
	c.res.Dropped++
	v := kv.Value
	if isSecretKey(kv.Key) {
		v = "(secret not shown)"
	}
	return fmt.Sprintf("# %s: %s = %s: not carried over: %s", where(kv.File, kv.Line), kv.Key, oneLine(v), why)
}

func (c *converter) dropSection(s *Section, why string) string {
	c.res.Dropped++
	return fmt.Sprintf("# %s: section %s { }: not carried over: %s", where(s.File, s.Line), oneLine(s.Name), why)
}

func isSecretKey(k string) bool {
	return k == "secret" || k == "pin" || strings.HasPrefix(k, "secret")
}

// oneLine keeps a value on one comment line, quoting it when it holds
// anything unusual.
func oneLine(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return strconv.QuoteToASCII(s)
		}
	}
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// yq writes a YAML scalar, quoted unless it is plainly safe.
func yq(s string) string {
	if s == "" {
		return `""`
	}
	safe := true
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("._/@-+", b) >= 0 || (b == ':' && i > 0)) {
			safe = false
			break
		}
	}
	switch strings.ToLower(s) {
	case "yes", "no", "true", "false", "on", "off", "null", "y", "n", "~":
		safe = false
	}
	if safe && strings.IndexByte("-+.@", s[0]) < 0 {
		return s
	}
	return strconv.QuoteToASCII(s)
}

// secrets reads the secrets section: IKE pre-shared keys are kept for the
// connections; the rest is commented.
func (c *converter) secrets(sec *Section) []string {
	var out []string
	for _, kv := range sec.Settings {
		out = append(out, c.drop(kv, "a setting directly in secrets {}"))
	}
	for _, s := range sec.Sections {
		switch {
		case strings.HasPrefix(s.Name, "ike"):
			e := pskEntry{sec: s}
			var secret *Setting
			for _, kv := range s.Settings {
				switch {
				case kv.Key == "secret":
					secret = kv
				case strings.HasPrefix(kv.Key, "id"):
					if kv.Value != "" {
						e.ids = append(e.ids, kv.Value)
					}
				default:
					out = append(out, c.drop(kv, "not a key of an ike secret"))
				}
			}
			for _, sub := range s.Sections {
				out = append(out, c.dropSection(sub, "not part of an ike secret"))
			}
			if secret == nil {
				out = append(out, c.dropSection(s, "no secret in it"))
				continue
			}
			e.data, e.err = decodeSecret(secret.Value)
			c.psks = append(c.psks, e)
		case strings.HasPrefix(s.Name, "private"), strings.HasPrefix(s.Name, "rsa"), strings.HasPrefix(s.Name, "ecdsa"),
			strings.HasPrefix(s.Name, "pkcs8"), strings.HasPrefix(s.Name, "pkcs12"):
			out = append(out, c.dropSection(s, "encrypted private keys are not supported: decrypt the key (mode 0600) and name it in auth.key"))
		case strings.HasPrefix(s.Name, "eap"), strings.HasPrefix(s.Name, "xauth"), strings.HasPrefix(s.Name, "ntlm"):
			out = append(out, c.dropSection(s, "EAP and XAuth are not implemented"))
		case strings.HasPrefix(s.Name, "ppk"):
			out = append(out, c.dropSection(s, "postquantum preshared keys (RFC 8784) are not implemented; ke1_mlkem768 proposals are"))
		case strings.HasPrefix(s.Name, "token"):
			out = append(out, c.dropSection(s, "smartcard (PKCS#11) keys are not supported"))
		default:
			out = append(out, c.dropSection(s, "an unknown kind of secret"))
		}
	}
	return out
}

// decodeSecret reads a secret value: 0x hex, 0s base64, else the text.
func decodeSecret(v string) ([]byte, string) {
	switch {
	case len(v) > 2 && strings.EqualFold(v[:2], "0x"):
		b, err := hex.DecodeString(strings.NewReplacer(":", "", " ", "").Replace(v[2:]))
		if err != nil {
			return nil, "its 0x value is not hex"
		}
		return b, ""
	case len(v) > 2 && strings.EqualFold(v[:2], "0s"):
		b, err := base64.StdEncoding.DecodeString(v[2:])
		if err != nil {
			return nil, "its 0s value is not base64"
		}
		return b, ""
	}
	return []byte(v), ""
}

// conn is one connection being converted.
type conn struct {
	name                   string
	sec                    *Section
	localAddr, remoteAddr  string
	localAddrs             []string // every address of local_addrs; localAddr is one of them
	remoteAddrs            []string // every address of remote_addrs; remoteAddr is the first
	localID, remoteID      string
	lines                  []string // YAML lines after name, indented 4
	notes                  []string // comments
	fatal                  []string // why it cannot be converted
	startAction, closeAct  string
	dpdAction              string
	childStart, childClose []string
}

func (k *conn) line(format string, args ...any) {
	k.lines = append(k.lines, fmt.Sprintf(format, args...))
}

// connection converts one connection; one that cannot work is written
// whole as a comment.
func (c *converter) connection(s *Section) {
	k := &conn{name: s.Name, sec: s}
	get := func(key string) *Setting {
		kv := s.Get(key)
		if kv == nil || kv.Value == "" {
			return nil
		}
		return kv
	}
	var proposals []string
	if kv := get("version"); kv != nil && kv.Value == "1" {
		k.fatal = append(k.fatal, where(kv.File, kv.Line)+": IKEv1 is not implemented")
	}
	for _, kv := range s.Settings {
		if kv.Value == "" {
			continue // an empty assignment restores the default
		}
		switch kv.Key {
		case "version":
			if kv.Value != "0" && kv.Value != "2" && kv.Value != "1" {
				k.notes = append(k.notes, c.drop(kv, "not 0, 1 or 2"))
			}
		case "local_addrs":
			// xdpsec listens on every address given; names, subnets
			// and ranges it cannot bind are comments.
			var rest []string
			k.localAddrs, rest = splitAddrs(kv.Value)
			if len(rest) > 0 {
				k.notes = append(k.notes, c.drop(kv, fmt.Sprintf("xdpsec binds addresses (%s), not names, subnets, ranges or %%any (%s)",
					orNone(strings.Join(k.localAddrs, ", ")), strings.Join(rest, ", "))))
			}
		case "remote_addrs":
			// Every address of the peer is carried over; %any alone is
			// any peer (no remote_addr); names and ranges are comments.
			var rest []string
			k.remoteAddrs, rest = splitAddrs(kv.Value)
			if len(k.remoteAddrs) > 0 {
				k.remoteAddr = k.remoteAddrs[0]
			}
			if len(rest) > 0 {
				k.notes = append(k.notes, c.drop(kv, fmt.Sprintf("xdpsec takes remote addresses (%s), not names, subnets, ranges or %%any (%s)",
					orNone(strings.Join(k.remoteAddrs, ", ")), strings.Join(rest, ", "))))
			}
		case "remote_port":
			k.line("remote_port: %s", yq(kv.Value))
		case "local_port":
			if kv.Value != "500" {
				k.notes = append(k.notes, c.drop(kv, "xdpsec's IKE port is the daemon's (500, 4500 for NAT-T)"))
			}
		case "proposals":
			proposals = c.proposals(&k.notes, kv, message.ProtocolIKE)
		case "encap":
			if b, ok := parseBool(kv.Value); ok {
				k.line("encap: %t", b)
			} else {
				k.notes = append(k.notes, c.drop(kv, "not yes or no"))
			}
		case "dpd_delay":
			if d, ok := parseTime(kv.Value); ok {
				k.line("dpd_delay: %s", fmtDuration(d))
			} else {
				k.notes = append(k.notes, c.drop(kv, "not a time"))
			}
		case "fragmentation":
			switch kv.Value {
			case "yes":
				k.line("fragmentation: true")
			case "no":
				k.line("fragmentation: false")
			case "accept":
				k.line("fragmentation: true")
				k.notes = append(k.notes, c.drop(kv, "xdpsec accepts fragments and also sends them (as yes)"))
			default:
				k.notes = append(k.notes, c.drop(kv, "force is IKEv1 only"))
			}
		case "rekey_time", "over_time", "reauth_time", "rand_time":
			// below, together
		case "mobike":
			k.notes = append(k.notes, c.drop(kv, "MOBIKE (RFC 4555) is not implemented: address changes need a new IKE SA"))
		case "dpd_timeout":
			k.notes = append(k.notes, c.drop(kv, "IKEv1 only; xdpsec declares a peer dead after the retransmission schedule (retransmit:)"))
		case "keyingtries":
			k.notes = append(k.notes, c.drop(kv, "xdpsec retries per the retransmission schedule; dpd_action/close_action restart re-initiate"))
		case "unique":
			k.notes = append(k.notes, c.drop(kv, "uniqueness policies are not implemented (xdpsec replaces stale IKE SAs on INITIAL_CONTACT)"))
		case "vips", "pools":
			k.notes = append(k.notes, c.drop(kv, "virtual IPs and configuration payloads are not implemented"))
		case "aggressive":
			k.notes = append(k.notes, c.drop(kv, "IKEv1 only"))
		case "pull", "dscp", "childless", "send_certreq", "send_cert", "ppk_id", "ppk_required", "if_id_in", "if_id_out",
			"mediation", "mediated_by", "mediation_peer":
			k.notes = append(k.notes, c.drop(kv, "not implemented in xdpsec"))
		default:
			k.notes = append(k.notes, c.drop(kv, "unknown connection setting"))
		}
	}
	c.lifetimeIKE(k, s)
	k.localAddr = localForRemote(k.localAddrs, k.remoteAddr)
	if k.localAddr == "" {
		if c.opt.LocalAddr != "" {
			k.localAddr = c.opt.LocalAddr
			k.notes = append(k.notes, fmt.Sprintf("# local_addr %s from --local-addr: swanctl.conf gives no local address", c.opt.LocalAddr))
		} else {
			k.fatal = append(k.fatal, where(s.File, s.Line)+": no local address in local_addrs (xdpsec binds specific addresses, not %any: give --local-addr)")
		}
	}
	if proposals == nil && get("proposals") == nil {
		proposals = c.defaultProposals(k, message.ProtocolIKE)
	}
	if len(proposals) == 0 {
		k.fatal = append(k.fatal, "no IKE proposal xdpsec implements")
	}
	auth := c.auth(k, s)
	children := c.children(k, s)
	if len(children) == 0 {
		k.fatal = append(k.fatal, "no child xdpsec can carry")
	}
	for _, sub := range s.Sections {
		switch {
		case sub.Name == "children", strings.HasPrefix(sub.Name, "local"), strings.HasPrefix(sub.Name, "remote"):
		default:
			k.notes = append(k.notes, c.dropSection(sub, "unknown connection section"))
		}
	}
	k.startAction = merged(k, "start_action", k.childStart, "none")
	k.closeAct = merged(k, "close_action", k.childClose, "none")
	if k.remoteAddr == "" && (k.startAction != "none" || k.closeAct != "none") {
		k.notes = append(k.notes, fmt.Sprintf("# start_action %s and close_action %s need a remote address: written as none", k.startAction, k.closeAct))
		k.startAction, k.closeAct = "none", "none"
	}

	// Write it.
	var b []string
	b = append(b, "  - name: "+yq(k.name))
	if len(k.localAddrs) > 1 {
		b = append(b, "    local_addrs: ["+strings.Join(k.localAddrs, ", ")+"]")
	} else if k.localAddr != "" {
		b = append(b, "    local_addr: "+k.localAddr)
	}
	if len(k.remoteAddrs) > 1 {
		b = append(b, "    remote_addrs: ["+strings.Join(k.remoteAddrs, ", ")+"]")
	} else if k.remoteAddr != "" {
		b = append(b, "    remote_addr: "+k.remoteAddr)
	}
	if k.localID != "" {
		b = append(b, "    local_id: "+yq(k.localID))
	}
	if k.remoteID != "" {
		b = append(b, "    remote_id: "+yq(k.remoteID))
	}
	b = append(b, auth...)
	if len(proposals) > 0 {
		b = append(b, "    ike_proposals: ["+strings.Join(proposals, ", ")+"]")
	}
	if k.startAction != "none" {
		b = append(b, "    start_action: "+k.startAction)
	}
	if k.closeAct != "none" {
		b = append(b, "    close_action: "+k.closeAct)
	}
	if k.dpdAction != "" {
		b = append(b, "    dpd_action: "+k.dpdAction)
	}
	for _, l := range k.lines {
		b = append(b, "    "+l)
	}
	b = append(b, "    children:")
	b = append(b, children...)
	for _, n := range k.notes {
		b = append(b, "    "+n)
	}
	if len(k.fatal) > 0 {
		c.res.Skipped++
		fmt.Fprintf(&c.out, "  # %s: connection %s: not carried over: %s\n", where(s.File, s.Line), oneLine(k.name), strings.Join(k.fatal, "; "))
		for _, l := range b {
			c.out.WriteString("  #" + l + "\n")
		}
		return
	}
	c.res.Connections++
	for _, l := range b {
		c.out.WriteString(l + "\n")
	}
}

// splitAddrs splits local_addrs or remote_addrs into its addresses
// (each once) and what xdpsec cannot take (names, subnets, ranges, %any4
// and %any6, %any beside addresses); a lone %any, any address, is
// neither.
func splitAddrs(v string) (addrs, rest []string) {
	items := splitList(v)
	for _, a := range items {
		if ad, err := netip.ParseAddr(a); err == nil && !ad.IsUnspecified() && ad.Zone() == "" {
			if s := ad.Unmap().String(); !slices.Contains(addrs, s) {
				addrs = append(addrs, s)
			}
		} else if a != "%any" || len(items) > 1 {
			rest = append(rest, a)
		}
	}
	return addrs, rest
}

// localForRemote is the local address a connection's identity and
// `dynamic` selectors take: the first of the remote's family, else the
// first; "" for none.
func localForRemote(locals []string, remote string) string {
	if len(locals) == 0 {
		return ""
	}
	if r, err := netip.ParseAddr(remote); err == nil {
		for _, l := range locals {
			if netip.MustParseAddr(l).Is4() == r.Is4() {
				return l
			}
		}
	}
	return locals[0]
}

func orNone(s string) string {
	if s == "" {
		return "none given"
	}
	return s
}

// merged folds the children's start or close actions into the one action
// of an xdpsec connection: start wins over trap over none.
func merged(k *conn, what string, acts []string, def string) string {
	best := def
	rank := map[string]int{"none": 0, "trap": 1, "start": 2}
	differ := false
	for i, a := range acts {
		if i > 0 && a != acts[0] {
			differ = true
		}
		if rank[a] > rank[best] {
			best = a
		}
	}
	if differ {
		k.notes = append(k.notes, fmt.Sprintf("# the children's %s values differ (%s): xdpsec has one per connection, written as %s", what, strings.Join(acts, ", "), best))
	}
	return best
}

// lifetimeIKE writes rekey_time and ike_lifetime (strongSwan's
// rekey_time + over_time, with its defaults).
func (c *converter) lifetimeIKE(k *conn, s *Section) {
	t := func(key string) (time.Duration, *Setting, bool) {
		kv := s.Get(key)
		if kv == nil || kv.Value == "" {
			return 0, nil, false
		}
		d, ok := parseTime(kv.Value)
		if !ok {
			k.notes = append(k.notes, c.drop(kv, "not a time"))
			return 0, nil, false
		}
		return d, kv, true
	}
	rekey, _, rekeySet := t("rekey_time")
	reauth, reauthKV, reauthSet := t("reauth_time")
	over, _, overSet := t("over_time")
	_, randKV, randSet := t("rand_time")
	if !rekeySet {
		rekey = defaultIKERekey
		if reauthSet && reauth > 0 {
			rekey = 0
		}
	}
	if reauthSet && reauth > 0 {
		k.notes = append(k.notes, c.drop(reauthKV, "reauthentication is not implemented; xdpsec rekeys the IKE SA (rekey_time) instead"))
		if rekey == 0 {
			rekey = reauth
		}
	}
	if !overSet {
		over = max(rekey, reauth) / 10
	}
	if randSet {
		k.notes = append(k.notes, c.drop(randKV, "xdpsec starts a rekey at a random point up to 10% before rekey_time"))
	}
	if rekey == 0 {
		return
	}
	k.line("rekey_time: %s", fmtDuration(rekey))
	k.line("ike_lifetime: %s", fmtDuration(rekey+over))
}

// proposals converts a proposal list, dropping what xdpsec does not
// implement (with a comment). nil after a comment about all of it.
func (c *converter) proposals(notes *[]string, kv *Setting, proto message.ProtocolID) []string {
	var out, dropped []string
	for _, p := range splitList(kv.Value) {
		if strings.EqualFold(p, "default") {
			out = append(out, c.defaultProposals(&conn{}, proto)...)
			*notes = append(*notes, "# "+where(kv.File, kv.Line)+": default: strongSwan's default proposals, limited to the algorithms xdpsec implements")
			continue
		}
		var keep, lost []string
		for tok := range strings.SplitSeq(strings.ToLower(p), "-") {
			if isTokenOK(proto, tok) {
				keep = append(keep, tok)
			} else {
				lost = append(lost, tok)
			}
		}
		s := strings.Join(keep, "-")
		if _, err := ike.ParseProposal(proto, s); err != nil || len(keep) == 0 {
			dropped = append(dropped, p)
			continue
		}
		if len(lost) > 0 {
			dropped = append(dropped, fmt.Sprintf("%s from %s", strings.Join(lost, "-"), p))
		}
		out = append(out, s)
	}
	if len(dropped) > 0 {
		*notes = append(*notes, c.drop(kv, "not implemented in xdpsec: "+strings.Join(dropped, ", ")))
	}
	return out
}

// isTokenOK reports whether tok is a transform xdpsec knows: added to a
// complete proposal of either kind (AEAD or not), or completing one.
func isTokenOK(proto message.ProtocolID, tok string) bool {
	cands := []string{"aes128gcm16-" + tok, "aes128-sha256-" + tok, tok, tok + "-sha256"}
	if proto == message.ProtocolIKE {
		cands = []string{"aes128gcm16-prfsha256-x25519-" + tok, "aes128-sha256-prfsha256-x25519-" + tok,
			tok + "-prfsha256-x25519", tok + "-sha256-prfsha256-x25519"}
	}
	for _, p := range cands {
		if _, err := ike.ParseProposal(proto, p); err == nil {
			return true
		}
	}
	return false
}

// defaultProposals is strongSwan's `default` (and what an absent
// proposals means), limited to what xdpsec implements.
func (c *converter) defaultProposals(k *conn, proto message.ProtocolID) []string {
	if proto == message.ProtocolIKE {
		k.notes = append(k.notes, "# proposals: strongSwan's default, limited to the algorithms xdpsec implements (no CAMELLIA, CCM, SHA-1, AES-XCBC/CMAC, MODP-6144/8192, Brainpool, Curve448)")
		return []string{
			"aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-ecp256-ecp384-ecp521-x25519-modp3072-modp4096-modp2048",
			"aes128-aes192-aes256-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-ecp256-ecp384-ecp521-x25519-modp3072-modp4096-modp2048",
		}
	}
	k.notes = append(k.notes, "# esp_proposals: strongSwan's default, limited to the algorithms xdpsec implements (no CCM, SHA-1, AES-XCBC/CMAC)")
	return []string{"aes128gcm16-aes192gcm16-aes256gcm16-chacha20poly1305", "aes128-aes192-aes256-sha256-sha384-sha512"}
}

// auth converts the local and remote rounds and the matching secret into
// the auth: block, setting the identities on k.
func (c *converter) auth(k *conn, s *Section) []string {
	var locals, remotes []*Section
	for _, sub := range s.Sections {
		switch {
		case strings.HasPrefix(sub.Name, "local"):
			locals = append(locals, sub)
		case strings.HasPrefix(sub.Name, "remote"):
			remotes = append(remotes, sub)
		}
	}
	for _, extra := range append(tail(locals), tail(remotes)...) {
		k.notes = append(k.notes, c.dropSection(extra, "a second authentication round (RFC 4739) is not implemented"))
	}
	var local, remote *Section
	if len(locals) > 0 {
		local = locals[0]
	}
	if len(remotes) > 0 {
		remote = remotes[0]
	}
	lauth, rauth := "pubkey", "pubkey"
	var certs, cacerts []string
	var rconstraint string
	if local != nil {
		for _, kv := range local.Settings {
			if kv.Value == "" {
				continue
			}
			switch kv.Key {
			case "auth":
				lauth = kv.Value
			case "id":
				k.localID = kv.Value
			case "certs":
				certs = splitList(kv.Value)
			case "round":
			default:
				k.notes = append(k.notes, c.drop(kv, "not implemented in xdpsec"))
			}
		}
		for _, sub := range local.Sections {
			k.notes = append(k.notes, c.dropSection(sub, "certificate sections (files, tokens) are not supported: use certs ="))
		}
	}
	if remote != nil {
		for _, kv := range remote.Settings {
			if kv.Value == "" {
				continue
			}
			switch kv.Key {
			case "auth":
				rauth = kv.Value
			case "id":
				k.remoteID = kv.Value
			case "cacerts":
				cacerts = splitList(kv.Value)
			case "round":
			case "revocation":
				k.notes = append(k.notes, c.drop(kv, "CRL/OCSP checking is not implemented"))
			default:
				k.notes = append(k.notes, c.drop(kv, "not implemented in xdpsec"))
			}
		}
		for _, sub := range remote.Sections {
			k.notes = append(k.notes, c.dropSection(sub, "certificate sections (files, tokens) are not supported: use cacerts ="))
		}
	}
	if base, rest, ok := strings.Cut(rauth, "-"); ok && (base == "pubkey" || base == "rsa" || base == "ecdsa") {
		rauth, rconstraint = "pubkey", rest
	} else if rauth == "rsa" || rauth == "ecdsa" {
		rauth = "pubkey"
	}
	if rconstraint != "" && remote != nil {
		if kv := remote.Get("auth"); kv != nil {
			k.notes = append(k.notes, c.drop(kv, "signature and key-strength constraints are not enforced; the peer is checked against its CA"))
		}
	}
	// Identities xdpsec cannot express.
	if strings.ContainsAny(k.localID, "=") {
		k.notes = append(k.notes, fmt.Sprintf("# local id %s: a distinguished name; xdpsec uses the certificate's subject", oneLine(k.localID)))
		k.localID = ""
	}
	if k.remoteID == "%any" || strings.ContainsAny(k.remoteID, "*=") {
		if lauth == "psk" {
			k.notes = append(k.notes, fmt.Sprintf("# remote id %s: wildcards and distinguished names are not supported; xdpsec expects the remote address", oneLine(k.remoteID)))
		} else {
			k.notes = append(k.notes, fmt.Sprintf("# remote id %s: wildcards and distinguished names are not supported; any identity the CA certifies is accepted", oneLine(k.remoteID)))
		}
		k.remoteID = ""
	}
	if k.remoteID == "" && lauth == "psk" && k.remoteAddr != "" && (remote == nil || remote.Get("id") == nil || remote.Get("id").Value == "") {
		k.notes = append(k.notes, "# remote id: none in swanctl.conf (strongSwan accepts any); xdpsec expects the peer's address "+k.remoteAddr+": set remote_id if the peer uses another")
	}
	switch {
	case lauth == "psk" && rauth == "psk":
		return c.pskAuth(k)
	case lauth == "pubkey" && rauth == "pubkey":
		return c.certAuth(k, certs, cacerts)
	case strings.HasPrefix(lauth, "eap") || strings.HasPrefix(rauth, "eap") || strings.HasPrefix(lauth, "xauth") || strings.HasPrefix(rauth, "xauth"):
		k.fatal = append(k.fatal, "EAP and XAuth are not implemented")
	default:
		k.fatal = append(k.fatal, fmt.Sprintf("local auth %s with remote auth %s: xdpsec takes psk or pubkey on both ends", oneLine(lauth), oneLine(rauth)))
	}
	return nil
}

func tail(s []*Section) []*Section {
	if len(s) < 2 {
		return nil
	}
	return s[1:]
}

// pskAuth finds the IKE secret strongSwan would use for the connection's
// identities: the most specific one whose ids match ours or the peer's.
func (c *converter) pskAuth(k *conn) []string {
	me, other := k.localID, k.remoteID
	if me == "" {
		me = k.localAddr
	}
	if other == "" {
		other = k.remoteAddr
	}
	best, score := -1, -1
	for i, e := range c.psks {
		sc := 0
		if len(e.ids) > 0 {
			m, o := false, false
			for _, id := range e.ids {
				m = m || idEqual(id, me)
				o = o || idEqual(id, other)
			}
			if !m && !o {
				continue
			}
			if m {
				sc += 2
			}
			if o {
				sc += 2
			}
		} else {
			sc = 1
		}
		if sc > score {
			best, score = i, sc
		}
	}
	if best < 0 {
		k.fatal = append(k.fatal, fmt.Sprintf("no ike secret in secrets { } for %s and %s", oneLine(me), oneLine(other)))
		return nil
	}
	e := c.psks[best]
	if e.err != "" {
		k.fatal = append(k.fatal, fmt.Sprintf("%s: secret %s: %s", where(e.sec.File, e.sec.Line), e.sec.Name, e.err))
		return nil
	}
	if len(e.data) > 0 && (e.data[len(e.data)-1] == '\n' || e.data[len(e.data)-1] == '\r') {
		k.fatal = append(k.fatal, fmt.Sprintf("%s: secret %s ends in a line end, which psk_file drops", where(e.sec.File, e.sec.Line), e.sec.Name))
		return nil
	}
	k.notes = append(k.notes, fmt.Sprintf("# PSK: %s: secrets.%s", where(e.sec.File, e.sec.Line), oneLine(e.sec.Name)))
	name := c.unique(safeName(k.name))
	if c.opt.PSKFiles {
		file := name + ".psk"
		c.res.Secrets = append(c.res.Secrets, Secret{Name: file, Data: append([]byte(nil), e.data...)})
		return []string{"    auth: {psk_file: " + yq(c.opt.PSKPrefix+file) + "}"}
	}
	env := "XDPSEC_PSK_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	c.res.Env = append(c.res.Env, fmt.Sprintf("%s=secrets.%s", env, e.sec.Name))
	return []string{"    auth: {psk_env: " + env + "}   # the PSK of secrets." + oneLine(e.sec.Name)}
}

// idEqual compares identities the way their text means them (addresses
// in any spelling, names without case).
func idEqual(a, b string) bool {
	if x, err := netip.ParseAddr(a); err == nil {
		y, err := netip.ParseAddr(b)
		return err == nil && x == y
	}
	return strings.EqualFold(a, b)
}

func safeName(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		b = append([]byte("c"), b...)
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

func (c *converter) unique(name string) string {
	n := name
	for i := 2; c.used[n]; i++ {
		n = fmt.Sprintf("%s-%d", name, i)
	}
	c.used[n] = true
	return n
}

// certAuth resolves the certificate, its private key (found the way
// swanctl finds it: the key in private/, rsa/, ecdsa/ or pkcs8/ that
// matches the certificate) and the CAs.
func (c *converter) certAuth(k *conn, certs, cacerts []string) []string {
	if len(certs) == 0 {
		k.fatal = append(k.fatal, "pubkey authentication without local certs: raw public keys are not supported")
		return nil
	}
	if len(certs) > 1 {
		k.notes = append(k.notes, fmt.Sprintf("# certs: only the first candidate (%s) is used", oneLine(certs[0])))
	}
	cert := c.path("x509", certs[0])
	key, why := c.findKey(cert)
	if key == "" {
		k.fatal = append(k.fatal, why)
		return nil
	}
	var cas []string
	for _, ca := range cacerts {
		cas = append(cas, yq(c.path("x509ca", ca)))
	}
	if len(cas) == 0 {
		ents, _ := os.ReadDir(filepath.Join(c.opt.Dir, "x509ca"))
		for _, e := range ents {
			if !e.IsDir() {
				cas = append(cas, yq(filepath.Join(c.opt.Dir, "x509ca", e.Name())))
			}
		}
		if len(cas) == 0 {
			k.fatal = append(k.fatal, "pubkey authentication needs a CA: no remote cacerts and nothing in x509ca/")
			return nil
		}
		k.notes = append(k.notes, "# ca: every certificate in x509ca/, the CAs swanctl loads")
	}
	return []string{
		"    auth:",
		"      cert: " + yq(cert),
		"      key: " + yq(key),
		"      ca: [" + strings.Join(cas, ", ") + "]",
	}
}

// path resolves a certificate name the way swanctl does: relative to its
// directory of that kind.
func (c *converter) path(kind, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	p, err := filepath.Abs(filepath.Join(c.opt.Dir, kind, name))
	if err != nil {
		return filepath.Join(c.opt.Dir, kind, name)
	}
	return p
}

// findKey returns the private key file whose public key is the
// certificate's, or why there is none.
func (c *converter) findKey(certFile string) (string, string) {
	b, err := readLimited(certFile)
	if err != nil {
		return "", fmt.Sprintf("certificate: %v", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Sprintf("certificate %s: not PEM (convert DER with openssl x509 -inform der)", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Sprintf("certificate %s: %v", certFile, err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := cert.PublicKey.(equaler)
	if !ok {
		return "", fmt.Sprintf("certificate %s: unsupported public key", certFile)
	}
	for _, dir := range []string{"private", "rsa", "ecdsa", "pkcs8"} {
		ents, _ := os.ReadDir(filepath.Join(c.opt.Dir, dir))
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			p, _ := filepath.Abs(filepath.Join(c.opt.Dir, dir, e.Name()))
			kb, err := readLimited(p)
			if err != nil {
				continue
			}
			kblk, _ := pem.Decode(kb)
			clear(kb)
			if kblk == nil {
				continue
			}
			k, err := config.ParsePrivateKey(kblk)
			clear(kblk.Bytes)
			if err != nil {
				continue
			}
			if pub.Equal(k.Public()) {
				return p, ""
			}
		}
	}
	return "", fmt.Sprintf("no unencrypted PEM private key for %s in private/, rsa/, ecdsa/ or pkcs8/", filepath.Base(certFile))
}

// children converts the children section into YAML lines.
func (c *converter) children(k *conn, s *Section) []string {
	cs := s.Sub("children")
	if cs == nil {
		return nil
	}
	var out []string
	for _, kv := range cs.Settings {
		k.notes = append(k.notes, c.drop(kv, "a setting directly in children {}"))
	}
	dpd := map[string]bool{}
	for _, ch := range cs.Sections {
		lines, ok := c.child(k, ch, dpd)
		if !ok {
			for _, l := range lines {
				k.notes = append(k.notes, "#"+strings.TrimPrefix(l, "  "))
			}
			continue
		}
		out = append(out, lines...)
	}
	switch {
	case len(dpd) > 1:
		k.notes = append(k.notes, "# the children's dpd_action values differ: xdpsec has one per connection, written as restart if any child restarts, else trap, else clear")
		if dpd["restart"] {
			k.dpdAction = "restart"
		} else {
			k.dpdAction = "trap"
		}
	case dpd["restart"]:
		k.dpdAction = "restart"
	case dpd["trap"]:
		k.dpdAction = "trap"
	case dpd["clear"]:
		k.dpdAction = "clear"
	}
	return out
}

// child converts one child: its lines, and false with a comment first
// when it cannot be carried.
func (c *converter) child(k *conn, s *Section, dpd map[string]bool) ([]string, bool) {
	var lines, notes []string
	var fatal []string
	var localTS, remoteTS []string
	var esp []string
	espSet := false
	mode := ""
	var life lifetimes
	for _, kv := range s.Settings {
		if kv.Value == "" {
			continue
		}
		switch kv.Key {
		case "local_ts", "remote_ts":
			ts, n := c.selectors(k, kv)
			notes = append(notes, n...)
			if kv.Key == "local_ts" {
				localTS = ts
			} else {
				remoteTS = ts
			}
		case "esp_proposals":
			espSet = true
			esp = c.proposals(&notes, kv, message.ProtocolESP)
		case "ah_proposals":
			fatal = append(fatal, "AH is not implemented")
		case "mode":
			switch kv.Value {
			case "tunnel", "transport":
				mode = kv.Value
			case "pass", "drop":
				fatal = append(fatal, fmt.Sprintf("mode %s is a shunt policy: write it as a policies: entry with action %s", kv.Value,
					map[string]string{"pass": "bypass", "drop": "discard"}[kv.Value]))
			default:
				fatal = append(fatal, "mode "+oneLine(kv.Value)+" is not implemented")
			}
		case "replay_window":
			if n, err := strconv.ParseUint(kv.Value, 0, 32); err == nil && n <= 1<<20 {
				lines = append(lines, fmt.Sprintf("replay_window: %d", n))
			} else {
				notes = append(notes, c.drop(kv, "not a window from 0 to 1048576"))
			}
		case "start_action":
			switch kv.Value {
			case "none", "trap", "start":
				k.childStart = append(k.childStart, kv.Value)
			case "trap|start", "start|trap":
				k.childStart = append(k.childStart, "start")
				notes = append(notes, c.drop(kv, "written as start (xdpsec's start also installs the policies, dropping until the SA is up)"))
			default:
				notes = append(notes, c.drop(kv, "not none, trap or start"))
			}
		case "close_action":
			switch kv.Value {
			case "none", "trap", "start":
				k.childClose = append(k.childClose, kv.Value)
			default:
				notes = append(notes, c.drop(kv, "not none, trap or start"))
			}
		case "dpd_action":
			switch kv.Value {
			case "clear", "trap", "restart":
				dpd[kv.Value] = true
			case "none":
				dpd["clear"] = true
			default:
				notes = append(notes, c.drop(kv, "not clear, trap or restart"))
			}
		case "rekey_time", "life_time", "rand_time", "rekey_bytes", "life_bytes", "rand_bytes", "rekey_packets", "life_packets", "rand_packets":
			notes = append(notes, life.set(c, kv)...)
		case "updown", "hostaccess":
			notes = append(notes, c.drop(kv, "updown scripts are not run; watch `xdpsec show ike` or the metrics"))
		case "policies", "policies_fwd_out", "priority", "reqid", "interface", "mark_in", "mark_in_sa", "mark_out", "set_mark_in",
			"set_mark_out", "if_id_in", "if_id_out", "label", "label_mode", "hw_offload", "sha256_96":
			notes = append(notes, c.drop(kv, "a kernel (XFRM) setting with no meaning in xdpsec's data plane"))
		case "ipcomp":
			notes = append(notes, c.drop(kv, "IPComp is not implemented"))
		case "inactivity":
			notes = append(notes, c.drop(kv, "idle Child SAs are not closed"))
		case "tfc_padding":
			notes = append(notes, c.drop(kv, "TFC padding is not implemented"))
		case "copy_df":
			notes = append(notes, c.drop(kv, "xdpsec copies DF for IKE Child SAs (static SAs have df:)"))
		case "copy_ecn", "copy_dscp":
			notes = append(notes, c.drop(kv, "not configurable in xdpsec"))
		default:
			notes = append(notes, c.drop(kv, "unknown child setting"))
		}
	}
	for _, sub := range s.Sections {
		notes = append(notes, c.dropSection(sub, "unknown child section"))
	}
	if !espSet {
		esp = c.defaultProposals(&conn{}, message.ProtocolESP)
		notes = append(notes, "# esp_proposals: strongSwan's default, limited to the algorithms xdpsec implements")
	}
	if len(esp) == 0 {
		fatal = append(fatal, "no ESP proposal xdpsec implements")
	}
	if len(localTS) == 0 {
		localTS, notes = c.dynamicTS(k.localAddr, "local_ts", notes, &fatal)
	}
	if len(remoteTS) == 0 {
		remoteTS, notes = c.dynamicTS(k.remoteAddr, "remote_ts", notes, &fatal)
	}
	out := []string{"      - name: " + yq(s.Name)}
	if len(localTS) > 0 {
		out = append(out, "        local_ts: ["+strings.Join(localTS, ", ")+"]")
	}
	if len(remoteTS) > 0 {
		out = append(out, "        remote_ts: ["+strings.Join(remoteTS, ", ")+"]")
	}
	if mode != "" {
		out = append(out, "        mode: "+mode)
	}
	if len(esp) > 0 {
		out = append(out, "        esp_proposals: ["+strings.Join(esp, ", ")+"]")
	}
	out = append(out, life.yaml("        ")...)
	for _, l := range lines {
		out = append(out, "        "+l)
	}
	for _, n := range notes {
		out = append(out, "        "+n)
	}
	if len(fatal) > 0 {
		c.res.Dropped++
		head := fmt.Sprintf("      # %s: child %s: not carried over: %s", where(s.File, s.Line), oneLine(s.Name), strings.Join(fatal, "; "))
		return append([]string{head}, out...), false
	}
	return out, true
}

// dynamicTS is strongSwan's `dynamic` (and the default): the tunnel's
// outer address.
func (c *converter) dynamicTS(addr, what string, notes []string, fatal *[]string) ([]string, []string) {
	if addr == "" {
		*fatal = append(*fatal, what+" dynamic without an address to put in it")
		return nil, notes
	}
	a := netip.MustParseAddr(addr)
	notes = append(notes, fmt.Sprintf("# %s dynamic: the outer address %s", what, addr))
	return []string{netip.PrefixFrom(a, a.BitLen()).String()}, notes
}

// selectors converts a local_ts/remote_ts list: `dynamic` becomes the
// outer address; what xdpsec cannot parse is a comment.
func (c *converter) selectors(k *conn, kv *Setting) ([]string, []string) {
	var out, bad []string
	var notes []string
	for _, ts := range splitList(kv.Value) {
		if ts == "dynamic" {
			addr := k.localAddr
			if kv.Key == "remote_ts" {
				addr = k.remoteAddr
			}
			if addr == "" {
				bad = append(bad, ts)
				continue
			}
			a := netip.MustParseAddr(addr)
			out = append(out, netip.PrefixFrom(a, a.BitLen()).String())
			notes = append(notes, fmt.Sprintf("# %s dynamic: the outer address %s", kv.Key, addr))
			continue
		}
		t := ts
		if !strings.ContainsAny(strings.SplitN(t, "[", 2)[0], "/") {
			// A single address: strongSwan's host selector.
			pfx, rest, _ := strings.Cut(t, "[")
			if a, err := netip.ParseAddr(pfx); err == nil {
				t = netip.PrefixFrom(a, a.BitLen()).String()
				if rest != "" {
					t += "[" + rest
				}
			}
		}
		if _, err := ike.ParseTrafficSelector(t); err != nil {
			bad = append(bad, ts)
			continue
		}
		out = append(out, yq(t))
	}
	if len(bad) > 0 {
		notes = append(notes, c.drop(kv, "selectors xdpsec cannot read (ranges, service names, OPAQUE): "+strings.Join(bad, ", ")))
	}
	return out, notes
}

// lifetimes gathers a child's rekey/life/rand settings.
type lifetimes struct {
	rekeyTime, lifeTime       *time.Duration
	rekeyBytes, lifeBytes     *uint64
	rekeyPackets, lifePackets *uint64
}

func (l *lifetimes) set(c *converter, kv *Setting) []string {
	if strings.HasPrefix(kv.Key, "rand_") {
		return []string{c.drop(kv, "xdpsec starts a rekey at a random point up to 10% before the soft limit")}
	}
	if strings.HasSuffix(kv.Key, "_time") {
		d, ok := parseTime(kv.Value)
		if !ok {
			return []string{c.drop(kv, "not a time")}
		}
		if kv.Key == "rekey_time" {
			l.rekeyTime = &d
		} else {
			l.lifeTime = &d
		}
		return nil
	}
	n, ok := parseCount(kv.Value)
	if !ok {
		return []string{c.drop(kv, "not a number")}
	}
	switch kv.Key {
	case "rekey_bytes":
		l.rekeyBytes = &n
	case "life_bytes":
		l.lifeBytes = &n
	case "rekey_packets":
		l.rekeyPackets = &n
	case "life_packets":
		l.lifePackets = &n
	}
	return nil
}

// yaml writes lifetime: with strongSwan's defaults (rekey 1h, life 110%
// of rekey), which xdpsec does not share (its children live forever
// unless told).
func (l *lifetimes) yaml(indent string) []string {
	soft, hard := defaultChildRekey, time.Duration(0)
	if l.rekeyTime != nil {
		soft = *l.rekeyTime
	}
	if l.lifeTime != nil {
		hard = *l.lifeTime
	} else {
		hard = soft + soft/10
	}
	if soft > hard && hard != 0 {
		soft = hard - hard/10
	}
	count := func(rekey, life *uint64) (uint64, uint64) {
		var s, h uint64
		if rekey != nil {
			s = *rekey
		}
		if life != nil {
			h = *life
		} else {
			h = s + s/10
		}
		if s > h && h != 0 {
			s = h - h/10
		}
		return s, h
	}
	sb, hb := count(l.rekeyBytes, l.lifeBytes)
	sp, hp := count(l.rekeyPackets, l.lifePackets)
	part := func(t time.Duration, b, p uint64) string {
		f := []string{"time: " + fmtDuration(t)}
		if b != 0 {
			f = append(f, fmt.Sprintf("bytes: %d", b))
		}
		if p != 0 {
			f = append(f, fmt.Sprintf("packets: %d", p))
		}
		return "{" + strings.Join(f, ", ") + "}"
	}
	return []string{
		indent + "lifetime:",
		indent + "  soft: " + part(soft, sb, sp),
		indent + "  hard: " + part(hard, hb, hp),
	}
}

// splitList splits a comma-separated value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "yes", "true", "enabled", "on", "1":
		return true, true
	case "no", "false", "disabled", "off", "0":
		return false, true
	}
	return false, false
}

// parseTime reads a swanctl time: seconds, or a number with s, m, h or d.
func parseTime(v string) (time.Duration, bool) {
	unit := time.Second
	switch {
	case strings.HasSuffix(v, "s"):
		v = v[:len(v)-1]
	case strings.HasSuffix(v, "m"):
		v, unit = v[:len(v)-1], time.Minute
	case strings.HasSuffix(v, "h"):
		v, unit = v[:len(v)-1], time.Hour
	case strings.HasSuffix(v, "d"):
		v, unit = v[:len(v)-1], 24*time.Hour
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// parseCount reads a byte or packet count, with an optional k, m or g
// (binary) multiplier.
func parseCount(v string) (uint64, bool) {
	shift := uint(0)
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
		if shift > 0 {
			v = v[:n-1]
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil || n > (1<<62)>>shift {
		return 0, false
	}
	return n << shift, true
}

// fmtDuration writes a duration the way a person would (90m, 4h, 30s).
func fmtDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
