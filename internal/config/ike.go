package config

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/ike/message"
	"github.com/xdpsec/xdpsec/sad"
)

// Limits for the IKE part of the file.
const (
	maxPSKSize      = 1 << 10  // a pre-shared key
	maxPEMSize      = 64 << 10 // a certificate, key or CA bundle
	maxConnections  = 4096     // connections in one file
	maxChildren     = 64       // children of one connection (ike's MaxChildren default)
	maxTSPerSide    = 64       // traffic selectors on one side of a child
	maxProposalList = 32       // proposals in one list
)

// Connection is one IKEv2 peer (strongSwan's "connections" entry): the
// engine's configuration and where in the file it was defined.
type Connection struct {
	Line int
	ike.Connection
}

// IKE is the connections part of the configuration.
type IKE struct {
	Connections []Connection
	// KeyLog, when set, is the directory the engine writes Wireshark's
	// esp_sa and ikev2_decryption_table files into: a debugging aid that
	// gives away every key it lists.
	KeyLog string
	// AcquireInterval is how often one trap policy (start_action trap)
	// may ask for negotiation while its packets find no SA
	// (acquire_interval; 0: the data plane's default, 1 s).
	AcquireInterval time.Duration
	// Retransmit is the IKE requests' retransmission schedule
	// (retransmit: {timeout, base, tries}, strongSwan's retransmit_*); it
	// also decides how soon a silent peer is declared dead by DPD. Zero
	// fields take the engine's defaults.
	Retransmit ike.Retransmit
	// Defence is the ike: section, the responder's flood defence.
	Defence Defence
	// RekeyedInboundDelay (delete_rekeyed_delay, strongSwan's name) and
	// RekeyDeleteDelay (rekey_delete_delay) are the engine's
	// ike.Config fields of those names: 0 the engine's default (1 s,
	// 100 ms), negative none (written as 0).
	RekeyedInboundDelay, RekeyDeleteDelay time.Duration
}

// Defence is the ike: section: the engine's flood defence (RFC 7296 §2.6
// cookies, a per-source rate limit and half-open share, sources counted by
// prefix, the half-open cap, the reassembly budget) and where it was
// written. cookie_threshold: 0 is CookiesAlways; init_rate: 0 is an
// InitRate of -1 (no limit). Zero values mean the engine's defaults.
type Defence struct {
	Line int // of the ike: key; 0 if absent
	ike.Defence
}

// defence reads the ike: section.
func (d *decoder) defence(n *yaml.Node, f *Defence) {
	f.Line = n.Line
	known := []string{"half_open_limit", "half_open_timeout", "cookie_threshold", "cookie_secret_lifetime",
		"init_rate", "init_burst", "rate_limit_slots", "source_prefix_v4", "source_prefix_v6", "half_open_per_prefix",
		"reassembly_budget", "unauth_reassembly_limit"}
	thresholdSet := false
	// Keys that only take an integer in a range.
	ranged := map[string]struct {
		lo, hi int64
		to     *int
	}{
		"source_prefix_v4":        {8, 32, &f.SourcePrefixV4},
		"source_prefix_v6":        {16, 128, &f.SourcePrefixV6},
		"half_open_per_prefix":    {1, 1 << 22, &f.HalfOpenPerPrefix},
		"reassembly_budget":       {1 << 20, 1 << 32, &f.ReassemblyBudget},
		"unauth_reassembly_limit": {4 << 10, 1 << 20, &f.UnauthReassemblyLimit},
	}
	d.mapping(n, "ike", known, func(k string, v *yaml.Node) {
		field := "ike." + k
		switch k {
		case "half_open_limit":
			if x, ok := d.integer(v, field, 1, 1<<22); ok {
				f.HalfOpenLimit = int(x)
			}
		case "half_open_timeout":
			f.HalfOpenTimeout = d.duration(v, field)
			if f.HalfOpenTimeout != 0 && (f.HalfOpenTimeout < time.Second || f.HalfOpenTimeout > 10*time.Minute) {
				d.errf(v, field, "%v out of range [1s, 10m]", f.HalfOpenTimeout)
			}
		case "cookie_threshold":
			if x, ok := d.integer(v, field, 0, 1<<22); ok {
				thresholdSet = true
				f.CookieThreshold = int(x)
				f.CookiesAlways = x == 0
			}
		case "cookie_secret_lifetime":
			f.CookieSecretLifetime = d.duration(v, field)
			if f.CookieSecretLifetime != 0 && (f.CookieSecretLifetime < 10*time.Second || f.CookieSecretLifetime > 24*time.Hour) {
				d.errf(v, field, "%v out of range [10s, 24h]", f.CookieSecretLifetime)
			}
		case "init_rate":
			if x, ok := d.integer(v, field, 0, 1_000_000); ok {
				f.InitRate = float64(x)
				if x == 0 {
					f.InitRate = -1
				}
			}
		case "init_burst":
			if x, ok := d.integer(v, field, 1, 1_000_000); ok {
				f.InitBurst = int(x)
			}
		case "rate_limit_slots":
			if x, ok := d.integer(v, field, 1, 1<<20); ok {
				f.RateLimitSlots = int(x)
			}
		default:
			if r, ok := ranged[k]; ok {
				if x, ok := d.integer(v, field, r.lo, r.hi); ok {
					*r.to = int(x)
				}
			}
		}
	})
	limit, threshold := f.HalfOpenLimit, f.CookieThreshold
	if limit == 0 {
		limit = ike.DefaultHalfOpenLimit
	}
	if !thresholdSet {
		threshold = ike.DefaultCookieThreshold
	}
	if !f.CookiesAlways && threshold >= limit {
		d.errf(n, "ike.cookie_threshold", "%d is not below half_open_limit (%d): the table would fill before any cookie is asked for", threshold, limit)
	}
	if budget, unauth := f.ReassemblyBudget, f.UnauthReassemblyLimit; unauth != 0 {
		if budget == 0 {
			budget = ike.DefaultReassemblyBudget
		}
		if unauth > budget/2 {
			d.errf(n, "ike.unauth_reassembly_limit", "%d is over half of reassembly_budget (%d), the most unauthenticated IKE SAs may hold together", unauth, budget)
		}
	}
}

// retransmit reads retransmit: {timeout: 500ms, base: 2, tries: 5}.
func (d *decoder) retransmit(n *yaml.Node, path string, r *ike.Retransmit) {
	d.mapping(n, path, []string{"timeout", "base", "tries"}, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "timeout":
			r.Timeout = d.duration(v, f)
			if r.Timeout > 0 && r.Timeout < 10*time.Millisecond {
				d.errf(v, f, "below 10ms")
			}
		case "base":
			s := d.str(v, f)
			b, err := strconv.ParseFloat(s, 64)
			if err != nil || b < 1 || b > 10 {
				d.errf(v, f, "%q is not a number from 1 to 10", s)
				return
			}
			r.Base = b
		case "tries":
			if t, ok := d.integer(v, f, 1, 20); ok {
				r.Tries = int(t)
			}
		}
	})
}

// wipeIKE overwrites the pre-shared keys the configuration holds.
func (c *Config) wipeIKE() {
	for i := range c.IKE.Connections {
		clear(c.IKE.Connections[i].Local.PSK)
		clear(c.IKE.Connections[i].Remote.PSK)
	}
}

// connection reads one entry of connections:.
func (d *decoder) connection(n *yaml.Node, path string) (Connection, bool) {
	c := Connection{Line: n.Line}
	nerr := len(d.errs)
	var authNode, localIDNode, remoteIDNode, childrenNode, localAddrNode, localAddrsNode, remoteAddrsNode *yaml.Node
	known := []string{"name", "local_addr", "local_addrs", "remote_addr", "remote_addrs", "remote_port", "local_id", "remote_id", "auth",
		"ike_proposals", "children", "start_action", "dpd_delay", "dpd_action", "close_action", "rekey_time", "ike_lifetime",
		"encap", "max_children", "fragmentation", "fragment_size", "keepalive"}
	d.mapping(n, path, known, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "name":
			c.Name = d.str(v, f)
		case "local_addr", "remote_addr":
			s := d.str(v, f)
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() {
				d.errf(v, f, "%q is not a unicast address", s)
				return
			}
			if k == "local_addr" {
				c.LocalAddr, localAddrNode = a, v
			} else {
				c.RemoteAddr = a
			}
		case "local_addrs":
			c.LocalAddrs, localAddrsNode = d.addrList(v, f, false), v
		case "remote_addrs":
			c.RemoteAddrs, remoteAddrsNode = d.addrList(v, f, true), v
		case "remote_port":
			if p, ok := d.integer(v, f, 1, 65535); ok {
				c.RemotePort = uint16(p)
			}
		case "local_id":
			localIDNode = v
		case "remote_id":
			remoteIDNode = v
		case "auth":
			authNode = v
		case "ike_proposals":
			c.IKEProposals = d.proposals(v, f, message.ProtocolIKE)
		case "children":
			childrenNode = v
		case "start_action":
			oneOf(d, v, f, &c.StartAction, opt(ike.StartStart, "start"), opt(ike.StartTrap, "trap"), opt(ike.StartNone, "none", ""))
		case "dpd_delay":
			c.DPDDelay = d.duration(v, f)
		case "keepalive":
			// NAT-T keepalive interval when behind a NAT; 0 turns them
			// off (strongSwan's keep_alive = 0), absent takes 20 s.
			if c.Keepalive = d.duration(v, f); c.Keepalive == 0 {
				c.Keepalive = -1
			}
		case "dpd_action":
			oneOf(d, v, f, &c.DPDAction, opt(ike.DPDClear, "clear"), opt(ike.DPDRestart, "restart"), opt(ike.DPDTrap, "trap"))
		case "close_action":
			oneOf(d, v, f, &c.CloseAction, opt(ike.CloseNone, "none", ""), opt(ike.CloseStart, "start"), opt(ike.CloseTrap, "trap"))
		case "rekey_time":
			c.IKERekeyTime = d.duration(v, f)
		case "ike_lifetime":
			c.IKELifetime = d.duration(v, f)
		case "encap":
			c.ForceEncap = d.boolean(v, f)
		case "max_children":
			if m, ok := d.integer(v, f, 1, 1<<16); ok {
				c.MaxChildren = int(m)
			}
		case "fragmentation":
			// IKE fragmentation (RFC 7383), on unless turned off.
			c.NoFragmentation = !d.boolean(v, f)
		case "fragment_size":
			// The IP datagram size fragments fill, headers included.
			if m, ok := d.integer(v, f, ike.MinFragmentSize, 65535); ok {
				c.FragmentSize = int(m)
			}
		}
	})
	if n.Kind != yaml.MappingNode {
		return c, false
	}
	if c.Name == "" {
		d.errf(n, path+".name", "required")
	}
	d.checkLocalAddrs(n, path, &c, localAddrNode, localAddrsNode, remoteAddrsNode)
	if len(c.IKEProposals) == 0 && len(d.errs) == nerr {
		d.errf(n, path+".ike_proposals", "required (e.g. [aes256gcm16-prfsha384-ecp384])")
	}
	if (c.StartAction == ike.StartStart || c.StartAction == ike.StartTrap) && !c.RemoteAddr.IsValid() {
		d.errf(n, path+".start_action", "start and trap need a remote_addr to initiate to")
	}
	if c.CloseAction != ike.CloseNone && !c.RemoteAddr.IsValid() {
		d.errf(n, path+".close_action", "start and trap need a remote_addr to initiate to")
	}
	if authNode == nil {
		d.errf(n, path+".auth", "required (psk_file, psk_env, or cert and key with ca)")
	} else {
		d.auth(authNode, path+".auth", &c)
	}
	// Identities default to the addresses (strongSwan's default too);
	// with a certificate, the local default is its subject DN.
	c.Local.ID = d.identity(localIDNode, path+".local_id", c.LocalAddr)
	if localIDNode == nil && c.Local.Certificate != nil {
		c.Local.ID = ike.IdentityDN(c.Local.Certificate)
	}
	if remoteIDNode != nil || c.RemoteAddr.IsValid() {
		c.Remote.ID = d.identity(remoteIDNode, path+".remote_id", c.RemoteAddr)
	}
	if remoteIDNode == nil && len(c.Remote.CAs) > 0 {
		// With certificates, any identity the chain proves is accepted
		// unless remote_id narrows it.
		c.Remote.ID = ike.Identity{}
	}
	if childrenNode == nil {
		d.errf(n, path+".children", "required: at least one child with local_ts and remote_ts")
	} else {
		d.seq(childrenNode, path+".children", func(i int, e *yaml.Node) {
			if i >= maxChildren {
				if i == maxChildren {
					d.errf(e, path+".children", "more than %d children", maxChildren)
				}
				return
			}
			if ch, ok := d.child(e, fmt.Sprintf("%s.children[%d]", path, i)); ok {
				c.Children = append(c.Children, ch)
			}
		})
	}
	if len(d.errs) == nerr {
		if err := c.Validate(); err != nil {
			d.errf(n, path, "%v", err)
		}
	}
	return c, len(d.errs) == nerr
}

// identity reads local_id/remote_id, defaulting to the address.
func (d *decoder) identity(n *yaml.Node, field string, def netip.Addr) ike.Identity {
	if n == nil {
		if !def.IsValid() {
			return ike.Identity{}
		}
		id, err := ike.ParseIdentity(def.String())
		if err != nil {
			return ike.Identity{}
		}
		return id
	}
	s := d.str(n, field)
	id, err := ike.ParseIdentity(s)
	if err != nil {
		d.errf(n, field, "%v", err)
	}
	return id
}

// proposals reads a list of proposals (or one string with commas).
func (d *decoder) proposals(n *yaml.Node, field string, proto message.ProtocolID) []ike.Proposal {
	items := d.list(n, field, "proposals", maxProposalList)
	var out []ike.Proposal
	for i, it := range items {
		s, ok := d.scalar(it, fmt.Sprintf("%s[%d]", field, i))
		if !ok {
			continue
		}
		ps, err := ike.ParseProposals(proto, s)
		if err != nil {
			d.errf(it, fmt.Sprintf("%s[%d]", field, i), "%v", err)
			continue
		}
		out = append(out, ps...)
	}
	return out
}

// auth reads the auth mapping: a PSK from a file or the environment (never
// from the YAML itself, so the file can be world-readable and shown in a
// review), or a certificate, its key and the CAs for the peer.
func (d *decoder) auth(n *yaml.Node, path string, c *Connection) {
	var pskFile, pskEnv, certFile, keyFile string
	var caNodes []*yaml.Node
	var at *yaml.Node = n
	d.mapping(n, path, []string{"psk_file", "psk_env", "cert", "key", "ca"}, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "psk_file":
			pskFile, at = d.str(v, f), v
		case "psk_env":
			pskEnv, at = d.str(v, f), v
		case "cert":
			certFile = d.str(v, f)
		case "key":
			keyFile = d.str(v, f)
		case "ca":
			switch v.Kind {
			case yaml.ScalarNode:
				caNodes = []*yaml.Node{v}
			case yaml.SequenceNode:
				caNodes = v.Content
			default:
				d.errf(v, f, "expected a file or a list of files")
			}
		}
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	psk := pskFile != "" || pskEnv != ""
	cert := certFile != "" || keyFile != "" || len(caNodes) > 0
	switch {
	case pskFile != "" && pskEnv != "":
		d.errf(at, path, "give psk_file or psk_env, not both")
		return
	case psk && cert:
		d.errf(n, path, "give a PSK or certificates, not both")
		return
	case !psk && !cert:
		d.errf(n, path, "give psk_file, psk_env, or cert and key with ca")
		return
	}
	if psk {
		var key []byte
		if pskFile != "" {
			key = d.readSecret(at, path+".psk_file", pskFile)
		} else {
			v, ok := os.LookupEnv(pskEnv)
			if !ok || strings.TrimSpace(v) == "" {
				d.errf(at, path+".psk_env", "the environment variable %s is not set", pskEnv)
				return
			}
			key = []byte(strings.TrimRight(v, "\r\n"))
		}
		if len(key) == 0 {
			return
		}
		if len(key) < 16 {
			// RFC 7296 §2.15: the key must be as strong as the PRF's
			// output; short passwords make the exchange a dictionary
			// attack away from disclosure.
			d.errf(at, path, "the PSK has %d bytes; use at least 16 (random ones)", len(key))
			clear(key)
			return
		}
		c.Local.PSK = key
		c.Remote.PSK = append([]byte(nil), key...)
		return
	}
	if certFile == "" || keyFile == "" || len(caNodes) == 0 {
		d.errf(n, path, "certificate authentication needs cert, key and ca")
		return
	}
	certs := d.readCerts(n, path+".cert", certFile)
	if len(certs) > 0 {
		c.Local.Certificate, c.Local.Intermediates = certs[0], certs[1:]
	}
	c.Local.Key = d.readKey(n, path+".key", keyFile)
	for i, cn := range caNodes {
		f := fmt.Sprintf("%s.ca[%d]", path, i)
		if s, ok := d.scalar(cn, f); ok {
			c.Remote.CAs = append(c.Remote.CAs, d.readCerts(cn, f, s)...)
		}
	}
}

// readFile reads a small file relative to the configuration's directory.
func (d *decoder) readFile(n *yaml.Node, field, p string, limit int) []byte {
	return d.readFileMode(n, field, p, limit, false)
}

// readPrivate reads a file holding a secret (a PSK, a private key), which
// group and others must not be able to access.
func (d *decoder) readPrivate(n *yaml.Node, field, p string, limit int) []byte {
	return d.readFileMode(n, field, p, limit, true)
}

func (d *decoder) readFileMode(n *yaml.Node, field, p string, limit int, secret bool) []byte {
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	f, err := os.Open(p)
	if err != nil {
		d.errf(n, field, "%v", err)
		return nil
	}
	defer f.Close()
	if secret {
		if err := checkSecretFile(f, p); err != nil {
			d.errf(n, field, "%v", err)
			return nil
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		d.errf(n, field, "%s: %v", p, err)
		return nil
	}
	if len(b) > limit {
		clear(b)
		d.errf(n, field, "%s: larger than %d bytes", p, limit)
		return nil
	}
	return b
}

// readSecret reads a PSK file: its bytes up to a final line end. Errors
// never quote it.
func (d *decoder) readSecret(n *yaml.Node, field, p string) []byte {
	b := d.readPrivate(n, field, p, maxPSKSize)
	if b == nil {
		return nil
	}
	k := []byte(strings.TrimRight(string(b), "\r\n"))
	clear(b)
	if len(k) == 0 {
		d.errf(n, field, "%s is empty", p)
	}
	return k
}

func (d *decoder) readCerts(n *yaml.Node, field, p string) []*x509.Certificate {
	b := d.readFile(n, field, p, maxPEMSize)
	var out []*x509.Certificate
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			d.errf(n, field, "%s: %v", p, err)
			return nil
		}
		out = append(out, c)
	}
	if len(out) == 0 && len(d.errs) == 0 {
		d.errf(n, field, "%s holds no PEM certificate", p)
	}
	return out
}

func (d *decoder) readKey(n *yaml.Node, field, p string) crypto.Signer {
	b := d.readPrivate(n, field, p, maxPEMSize)
	if b == nil {
		return nil
	}
	defer clear(b)
	blk, _ := pem.Decode(b)
	if blk == nil {
		d.errf(n, field, "%s holds no PEM key", p)
		return nil
	}
	defer clear(blk.Bytes)
	s, err := ParsePrivateKey(blk)
	if err != nil {
		d.errf(n, field, "%s: %v", p, err)
		return nil
	}
	return s
}

// child reads one child of a connection.
func (d *decoder) child(n *yaml.Node, path string) (ike.ChildConfig, bool) {
	var ch ike.ChildConfig
	nerr := len(d.errs)
	known := []string{"name", "local_ts", "remote_ts", "mode", "esp_proposals", "lifetime", "replay_window"}
	d.mapping(n, path, known, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "name":
			ch.Name = d.str(v, f)
		case "local_ts":
			ch.LocalTS = d.selectors(v, f)
		case "remote_ts":
			ch.RemoteTS = d.selectors(v, f)
		case "mode":
			oneOf(d, v, f, &ch.Mode, opt(sad.Tunnel, "tunnel", ""), opt(sad.Transport, "transport"))
		case "esp_proposals":
			ch.ESPProposals = d.proposals(v, f, message.ProtocolESP)
		case "lifetime":
			d.lifetime(v, f, &ch.Lifetime)
		case "replay_window":
			if w, ok := d.integer(v, f, 0, 1<<20); ok {
				ch.ReplayWindow = int(w)
			}
		}
	})
	if n.Kind != yaml.MappingNode {
		return ch, false
	}
	if ch.Name == "" {
		d.errf(n, path+".name", "required")
	}
	if len(ch.LocalTS) == 0 && len(d.errs) == nerr {
		d.errf(n, path+".local_ts", "required (the protected prefixes on this side)")
	}
	if len(ch.RemoteTS) == 0 && len(d.errs) == nerr {
		d.errf(n, path+".remote_ts", "required (the protected prefixes on the peer's side)")
	}
	if len(ch.ESPProposals) == 0 && len(d.errs) == nerr {
		d.errf(n, path+".esp_proposals", "required (e.g. [aes128gcm16-x25519])")
	}
	return ch, len(d.errs) == nerr
}

func (d *decoder) selectors(n *yaml.Node, field string) []ike.TrafficSelector {
	items := d.list(n, field, "traffic selectors", maxTSPerSide)
	var out []ike.TrafficSelector
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := d.scalar(it, f)
		if !ok {
			continue
		}
		for part := range strings.SplitSeq(s, ",") {
			ts, err := ike.ParseTrafficSelector(strings.TrimSpace(part))
			if err != nil {
				d.errf(it, f, "%v", err)
				continue
			}
			out = append(out, ts)
		}
	}
	return out
}

// checkIKE applies the rules across connections.
func (d *decoder) checkIKE(c *Config) {
	names := map[string]int{}
	for i := range c.IKE.Connections {
		cn := &c.IKE.Connections[i]
		at := &yaml.Node{Line: cn.Line}
		path := fmt.Sprintf("connections[%d]", i)
		if j, dup := names[cn.Name]; dup {
			d.errf(at, path+".name", "%q already names connections[%d]", cn.Name, j)
		}
		names[cn.Name] = i
		cnames := map[string]bool{}
		for _, ch := range cn.Children {
			if cnames[ch.Name] {
				d.errf(at, path+".children", "child %q given twice", ch.Name)
			}
			cnames[ch.Name] = true
		}
	}
}

// list returns the items of a field that takes one value or a list of
// them (what names them in errors), at most max; nil after an error.
func (d *decoder) list(n *yaml.Node, field, what string, max int) []*yaml.Node {
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
	default:
		d.errf(n, field, "expected a list of %s", what)
		return nil
	}
	if len(items) > max {
		d.errf(n, field, "more than %d %s", max, what)
		return nil
	}
	return items
}
