package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// Limits that keep a hostile or mistaken file from costing much.
const (
	maxFileSize    = 4 << 20 // the configuration file
	maxKeyFileSize = 4 << 10 // a key file: hex of at most a few hundred bytes
	maxErrors      = 20      // errors reported before giving up
)

// Defaults for fields the file leaves out; docs/defaults.md gives the
// reason for each, and for the defaults other packages apply.
const (
	// DefaultControl is in the runtime directory, emptied at boot, which
	// the daemon owns.
	DefaultControl = "/run/xdpsec/xdpsec.sock"
	// DefaultNATTPort is RFC 3948's, where every peer sends ESP-in-UDP.
	DefaultNATTPort = 4500
	// DefaultQueues (0: auto) serves every RX queue the interfaces have:
	// RSS may put any flow on any queue, and a queue with no worker would
	// drop what lands on it.
	DefaultQueues = QueuesAuto
	// QueuesAuto is `queues: auto`.
	QueuesAuto = 0
	// DefaultStateDir holds the static SAs' sequence-number marks: on
	// persistent storage, since a mark lost in a reboot makes the key
	// unusable (see package seqstate).
	DefaultStateDir = "/var/lib/xdpsec"
	// DefaultPinDir is where pin_path points by default: DefaultPinDir/NAME,
	// NAME from the control socket's file name.
	DefaultPinDir = "/sys/fs/bpf/xdpsec"
	// NoPin (pin_path: none) is the explicit opt-out of failing closed
	// while the daemon is down.
	NoPin = "none"
)

// Bounds of the AF_XDP tuning keys under interfaces (batch, idle_spin,
// umem_frames, ring_size). MaxBatch is fastpath.MaxBatch; the xsk
// package's own limits are wider than these.
const (
	// DefaultBatch is what the daemon's workers take per poll when the
	// file says nothing: the lab A/B (bench/RESULTS.md, "AF_XDP levers")
	// found 256 with the default rings at least as fast as 64 with half
	// the TX kicks.
	DefaultBatch  = 256
	MaxBatch      = 256
	MaxIdleSpin   = 10 * time.Millisecond
	MinUMEMFrames = 256
	MaxUMEMFrames = 1 << 20
	MinRingSize   = 64
	MaxRingSize   = 1 << 16
)

// ZeroCopyMode is `zerocopy: auto|on|off`: how AF_XDP sockets are bound.
type ZeroCopyMode int

const (
	// ZeroCopyAuto binds with XDP_ZEROCOPY and falls back to copy mode
	// where the driver cannot (logged once).
	ZeroCopyAuto ZeroCopyMode = iota
	// ZeroCopyOn demands zero-copy: the daemon refuses to start without it.
	ZeroCopyOn
	// ZeroCopyOff binds in copy mode.
	ZeroCopyOff
)

func (m ZeroCopyMode) String() string {
	switch m {
	case ZeroCopyOn:
		return "on"
	case ZeroCopyOff:
		return "off"
	}
	return "auto"
}

// Config is a checked gateway configuration.
type Config struct {
	// File is the path the configuration was read from.
	File string

	// LAN is the protected interface, WAN the unprotected one; the same
	// name for both is one-arm mode.
	LAN, WAN string
	// Queues is the number of receive queues served, 0..Queues-1, one
	// worker each; QueuesAuto (the default) serves every RX queue the
	// interfaces have, and an explicit count must match them.
	Queues int
	// SetChannels (set_channels: true) lets an explicit Queues set the
	// interfaces' RX channel count instead of refusing to start.
	SetChannels bool
	// RSSESPSPI (rss_esp_spi: true) asks the WAN NIC at start to hash ESP
	// on the SPI as well as the outer addresses (ethtool rx-flow-hash
	// esp4/esp6 sdfn), so the SAs between two gateways spread over the
	// queues; a driver that cannot is logged and the daemon goes on.
	RSSESPSPI bool
	// BusyPoll (busy_poll: µs, 0 off), PreferBusyPoll and BusyPollBudget
	// are passed to every AF_XDP socket as SO_BUSY_POLL,
	// SO_PREFER_BUSY_POLL and SO_BUSY_POLL_BUDGET.
	BusyPoll, BusyPollBudget int
	PreferBusyPoll           bool
	// Batch (batch:) is the packets a worker takes from a socket per
	// poll, 1..MaxBatch; 0: DefaultBatch.
	Batch int
	// IdleSpin (idle_spin:) is how long a worker whose queues ran empty
	// keeps polling the rings before it sleeps in poll(2); 0: it sleeps
	// at the first empty poll.
	IdleSpin time.Duration
	// UMEMFrames (umem_frames:) sizes each AF_XDP socket's UMEM and
	// RingSize (ring_size:) its four rings; 0: the xsk package's defaults.
	UMEMFrames, RingSize int
	// XDPMode is how the steering program is attached.
	XDPMode xdpconf.AttachMode
	// CPUs, when set, pins worker i to CPUs[i]; len(CPUs) == Queues.
	CPUs []int
	// CPUsAuto (cpus: auto) pins each worker to the CPU its queue's
	// interrupt is affined to, or spreads them over the online CPUs.
	CPUsAuto bool
	// ZeroCopy is how the AF_XDP sockets are bound (zerocopy:).
	ZeroCopy ZeroCopyMode
	// LANVLAN and WANVLAN are the 802.1Q VLANs (1..4094) each side's
	// frames carry on its interface, 0 for untagged: the XDP program
	// steers only that VLAN's frames (others are the kernel's) and the
	// workers send with the tag. One-arm mode with two different VLANs
	// is a trunk (Trunk): each tag has its side's role.
	LANVLAN, WANVLAN uint16
	// LANSVLAN and WANSVLAN are the 802.1ad service VLANs (Q-in-Q) outside
	// them, 0 for none: lan_vlan: "300.20" is service VLAN 300, VLAN 20.
	LANSVLAN, WANSVLAN uint16

	// DefaultAction is what happens to LAN traffic no policy matches:
	// spd.Discard (the default: fail closed) or spd.Bypass.
	DefaultAction spd.Action
	// NATTPort is the UDP port of ESP-in-UDP (RFC 3948).
	NATTPort uint16
	// PinPath is the bpffs directory the XDP objects are pinned under.
	// Default: DefaultPinDir/NAME, NAME the control socket's file name
	// without its extension (plus a hash of its directory when that is
	// not /run/xdpsec), so that two daemons never share pins. Empty only
	// with `pin_path: none`: nothing outlives the daemon, and while it is
	// down the kernel may route PROTECT traffic in clear.
	PinPath string
	// DetachOnStop (on_stop: detach) removes the XDP programs when the
	// daemon stops, so the kernel routes on its own again. The default
	// (on_stop: keep) leaves the pinned programs attached: until the next
	// start takes them over, PROTECT traffic is dropped, never routed in
	// clear, across a restart as across a crash. Without pin_path nothing
	// outlives the daemon either way.
	DetachOnStop bool
	// Control is the Unix socket `xdpsec show` talks to.
	Control string
	// ControlGroup (control_group) is the gid whose members may read the
	// daemon's state on the control socket (`xdpsec show`);
	// ControlAdminGroup (control_admin_group) the gid whose members may
	// also change it (initiate, terminate, rekey). 0: none, root only.
	ControlGroup, ControlAdminGroup uint32
	// Warnings are things about the file worth saying once at start that
	// do not stop it (keys written inline in the YAML).
	Warnings []string
	// Metrics is the host:port of the Prometheus endpoint; empty: none.
	Metrics string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is how log lines are written to stderr: text (logfmt,
	// the default) or json, one object per line, so a journal or a log
	// shipper keeps the fields.
	LogFormat string
	// StateDir keeps the outbound static SAs' sequence-number marks,
	// filed by a fingerprint of each key, so that no run ever reuses a
	// number (with AEAD suites, a nonce) an earlier run may have sent.
	// Default DefaultStateDir; it must be writable and should survive
	// reboots.
	StateDir string

	// MTU overrides the WAN interface's MTU: the largest ESP packet the
	// gateway sends (0: the interface's, followed when it changes).
	MTU int
	// MSSClamp clamps TCP SYNs' MSS through the tunnel (spd.MSSAuto,
	// a value in bytes, or 0: off); a policy's mss_clamp overrides it.
	MSSClamp int
	// Reassembly sizes the reassembly of outer fragments of ESP
	// (reassembly: in the file).
	Reassembly Reassembly

	// BenchNullCipher (bench_null_cipher: true, at BenchLine) is the lab's
	// ceiling (scripts/bench-lab.sh, mode ceiling): the static AEAD SAs
	// move and frame the bytes as ever but neither encrypt nor
	// authenticate. Refused unless BenchAllowed, which only `xdpsec run
	// --bench` sets: never reachable by a configuration file alone.
	BenchNullCipher bool
	BenchLine       int
	BenchAllowed    bool

	SAs      []SA
	Policies []Policy
	// IKE holds the IKEv2 connections (connections:) and the key log.
	IKE IKE
	// Cluster is the cluster: section (nil: a single gateway).
	Cluster *Cluster
}

// Trunk reports whether the LAN and the WAN are two VLANs of one port
// (one interface, lan_vlan != wan_vlan; either may be 0, untagged).
func (c *Config) Trunk() bool {
	return c.OneArm() && (c.LANVLAN != c.WANVLAN || c.LANSVLAN != c.WANSVLAN)
}

// OneArm reports whether one interface is both the protected and the
// unprotected side.
func (c *Config) OneArm() bool { return c.LAN == c.WAN }

// SA is one manually keyed SA.
type SA struct {
	// Line is where the SA is defined, for later errors.
	Line int
	sad.Config
}

// Policy is one SPD entry, in the file's order.
type Policy struct {
	Line     int
	Name     string
	Selector sad.Selector
	Action   spd.Action
	// SA names the outbound SA of a PROTECT policy.
	SA string
	// MSSClamp is the policy's own mss_clamp (spd.MSSInherit: the
	// gateway's).
	MSSClamp int
	// Dir is the traffic the policy decides. The selector is always
	// written from the protected side (src ours, dst the far side); inbound
	// cleartext is matched with it reversed.
	Dir PolicyDir
}

// PolicyDir says which traffic a policy decides (`dir:`).
type PolicyDir uint8

const (
	// DirBoth, the default: outbound traffic and, reversed, the inbound
	// cleartext arriving on the WAN (RFC 4301 section 5.2: a PROTECT
	// policy's traffic in clear is dropped).
	DirBoth PolicyDir = iota
	// DirOut: only traffic from the protected side.
	DirOut
	// DirIn: only cleartext arriving on the WAN (no outbound SA).
	DirIn
)

func (d PolicyDir) String() string {
	switch d {
	case DirOut:
		return "out"
	case DirIn:
		return "in"
	}
	return "both"
}

// Wipe overwrites all the key material the configuration holds: the
// static SAs' keys and the connections' pre-shared keys.
func (c *Config) Wipe() {
	c.WipeSAKeys()
	c.wipeIKE()
	if c.Cluster != nil {
		clear(c.Cluster.Key)
	}
}

// WipeSAKeys overwrites the static SAs' keys. Call it once the SAs are
// built; the connections' PSKs stay for the IKE engine, which wipes them
// when it closes.
func (c *Config) WipeSAKeys() {
	for i := range c.SAs {
		clear(c.SAs[i].Key)
		clear(c.SAs[i].IntegKey)
	}
}

// CheckBench refuses the bench-only keys (bench_null_cipher) unless
// BenchAllowed (xdpsec run --bench) is set.
func (c *Config) CheckBench() error {
	if c.BenchNullCipher && !c.BenchAllowed {
		return &Error{File: c.File, Line: c.BenchLine, Field: "bench_null_cipher",
			Msg: "bench only (ESP with neither encryption nor authentication): refused unless `xdpsec run --bench`"}
	}
	return nil
}

// Error is one configuration error: where it is and what is wrong.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Load reads and checks the configuration in path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("config: %s: larger than %d bytes", path, maxFileSize)
	}
	return Parse(path, b)
}

// Parse checks the configuration in b; name is used in errors and as the
// base for relative key_file paths.
func Parse(name string, b []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Line: 1, Msg: "empty configuration"}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &decoder{file: name, dir: filepath.Dir(name)}
	c := &Config{
		File: name, Queues: DefaultQueues, XDPMode: xdpconf.ModeAuto,
		DefaultAction: spd.Discard, NATTPort: DefaultNATTPort,
		Control: DefaultControl, LogLevel: "info", LogFormat: "text", StateDir: DefaultStateDir,
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d.top(doc, c)
	if len(d.errs) == 0 {
		d.check(doc, c)
	}
	if len(d.errs) > 0 {
		c.Wipe()
		return nil, errors.Join(d.errs...)
	}
	if w := d.inlineKeyWarning(); w != "" {
		c.Warnings = append(c.Warnings, w)
	}
	return c, nil
}

type decoder struct {
	file string
	dir  string
	errs []error
	// inlineKeys lists the keys written in the YAML (field and line).
	inlineKeys []string
}

func (d *decoder) errf(n *yaml.Node, field, format string, args ...any) {
	if len(d.errs) == maxErrors {
		d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Msg: "too many errors"})
	}
	if len(d.errs) > maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// mapping calls f for each key of a mapping node, refusing unknown and
// repeated keys. known lists the accepted keys.
func (d *decoder) mapping(n *yaml.Node, path string, known []string, f func(key string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "expected a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "keys must be plain names")
			continue
		}
		if seen[k.Value] {
			d.errf(k, field, "given twice")
			continue
		}
		seen[k.Value] = true
		ok := false
		for _, kk := range known {
			if kk == k.Value {
				ok = true
				break
			}
		}
		if !ok {
			d.errf(k, field, "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		f(k.Value, v)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errf(n, field, "expected a single value")
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, field string) string {
	s, _ := d.scalar(n, field)
	return s
}

// parsed is parse of the field's value; its error is the field's.
func parsed[T any](d *decoder, n *yaml.Node, field string, parse func(string) (T, error)) T {
	x, err := parse(d.str(n, field))
	if err != nil {
		d.errf(n, field, "%v", err)
	}
	return x
}

// choice is one value of an enumerated field and the words that name it;
// the first word is the one an error lists.
type choice[T any] struct {
	val   T
	words []string
}

func opt[T any](val T, words ...string) choice[T] { return choice[T]{val, words} }

// oneOf sets *dst to the value the field's word names; any other word is
// an error listing the choices ("x" is not a, b or c).
func oneOf[T any](d *decoder, n *yaml.Node, field string, dst *T, choices ...choice[T]) {
	s, ok := d.scalar(n, field)
	if !ok {
		return
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		for _, w := range c.words {
			if s == w {
				*dst = c.val
				return
			}
		}
		names[i] = c.words[0]
	}
	list := names[len(names)-1]
	if len(names) > 1 {
		list = strings.Join(names[:len(names)-1], ", ") + " or " + list
	}
	d.errf(n, field, "%q is not %s", s, list)
}

func (d *decoder) integer(n *yaml.Node, field string, lo, hi int64) (int64, bool) {
	s, ok := d.scalar(n, field)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
	if err != nil {
		d.errf(n, field, "%q is not an integer", s)
		return 0, false
	}
	if v < lo || v > hi {
		d.errf(n, field, "%d out of range [%d, %d]", v, lo, hi)
		return 0, false
	}
	return v, true
}

// vlan reads an 802.1Q VLAN (0..4094, 0: untagged) or a Q-in-Q pair
// "SVID.VID" (each 1..4094): an 802.1ad service VLAN with VID inside.
func (d *decoder) vlan(n *yaml.Node, field string) (svid, vid uint16, ok bool) {
	s, ok := d.scalar(n, field)
	if !ok {
		return 0, 0, false
	}
	outer, inner, qinq := strings.Cut(s, ".")
	if !qinq {
		id, ok := d.integer(n, field, 0, 4094)
		return 0, uint16(id), ok
	}
	a, err1 := strconv.ParseUint(outer, 10, 16)
	b, err2 := strconv.ParseUint(inner, 10, 16)
	if err1 != nil || err2 != nil || a < 1 || a > 4094 || b < 1 || b > 4094 {
		d.errf(n, field, "%q is not a VLAN (0..4094) or a Q-in-Q pair SVID.VID (each 1..4094)", s)
		return 0, 0, false
	}
	return uint16(a), uint16(b), true
}

func (d *decoder) boolean(n *yaml.Node, field string) bool {
	s, ok := d.scalar(n, field)
	if !ok {
		return false
	}
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	d.errf(n, field, "%q is not true or false", s)
	return false
}

// rekeyDelay reads one of the rekey delays, at most limit, in the
// engine's terms: 0 written means none (-1), absent stays 0 (default).
func (d *decoder) rekeyDelay(n *yaml.Node, field string, limit time.Duration) time.Duration {
	v := d.duration(n, field)
	if v > limit {
		d.errf(n, field, "%v is over %v", v, limit)
	}
	if v == 0 {
		return -1
	}
	return v
}

func (d *decoder) duration(n *yaml.Node, field string) time.Duration {
	s, ok := d.scalar(n, field)
	if !ok {
		return 0
	}
	if s == "0" {
		return 0
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		d.errf(n, field, "%q is not a duration such as 50m or 1h", s)
		return 0
	}
	return v
}

func (d *decoder) top(n *yaml.Node, c *Config) {
	known := []string{"interfaces", "default_action", "nat_t_port", "pin_path", "control", "metrics", "log_level", "log_format", "state_file", "state_dir", "sas", "policies", "connections", "key_log", "ike", "acquire_interval", "retransmit", "on_stop",
		"delete_rekeyed_delay", "rekey_delete_delay",
		"control_group", "control_admin_group",
		"mtu", "mss_clamp",
		"bench_null_cipher",
		"reassembly", "cluster"}
	var sasNode, polNode, connNode, clusterNode *yaml.Node
	pinSet := false
	d.mapping(n, "", known, func(k string, v *yaml.Node) {
		switch k {
		case "interfaces":
			d.interfaces(v, c)
		case "default_action":
			oneOf(d, v, k, &c.DefaultAction, opt(spd.Discard, "discard", "drop"), opt(spd.Bypass, "bypass", "pass"))
		case "nat_t_port":
			if p, ok := d.integer(v, k, 1, 65535); ok {
				if p == 500 {
					d.errf(v, k, "500 is IKE's port")
				}
				c.NATTPort = uint16(p)
			}
		case "mtu":
			// 1280: IPv6's minimum link MTU (RFC 8200 §5); 9216: jumbo.
			if m, ok := d.integer(v, k, 1280, 9216); ok {
				c.MTU = int(m)
			}
		case "reassembly":
			d.reassembly(v, c)
		case "mss_clamp":
			c.MSSClamp = d.mssClamp(v, k)
			if c.MSSClamp == spd.MSSOff {
				c.MSSClamp = 0
			}
		case "on_stop":
			oneOf(d, v, k, &c.DetachOnStop, opt(false, "keep"), opt(true, "detach"))
		case "pin_path":
			c.PinPath = d.str(v, k)
			pinSet = true
			if c.PinPath == NoPin {
				c.PinPath = ""
			} else if !filepath.IsAbs(c.PinPath) {
				d.errf(v, k, "must be an absolute path on a bpf filesystem, or %q (nothing stays attached while the daemon is down: the kernel may route PROTECT traffic in clear)", NoPin)
			}
		case "control":
			c.Control = d.str(v, k)
			if c.Control == "" {
				d.errf(v, k, "must not be empty")
			}
		case "control_group":
			c.ControlGroup = d.group(v, k)
		case "control_admin_group":
			c.ControlAdminGroup = d.group(v, k)
		case "metrics":
			c.Metrics = d.str(v, k)
		case "state_file":
			d.errf(v, k, "replaced by state_dir: a directory on persistent storage (default %s) holding a mark per static key; move the old file away", DefaultStateDir)
		case "state_dir":
			c.StateDir = d.str(v, k)
			if !filepath.IsAbs(c.StateDir) {
				d.errf(v, k, "must be an absolute path (default %s)", DefaultStateDir)
			}
		case "log_level":
			oneOf(d, v, k, &c.LogLevel, opt("debug", "debug"), opt("info", "info"), opt("warn", "warn"), opt("error", "error"))
		case "log_format":
			oneOf(d, v, k, &c.LogFormat, opt("text", "text", "logfmt"), opt("json", "json"))
		case "sas":
			sasNode = v
		case "policies":
			polNode = v
		case "connections":
			connNode = v
		case "cluster":
			clusterNode = v
		case "ike":
			d.defence(v, &c.IKE.Defence)
		case "acquire_interval":
			c.IKE.AcquireInterval = d.duration(v, k)
			if c.IKE.AcquireInterval > 0 && c.IKE.AcquireInterval < time.Millisecond {
				d.errf(v, k, "below 1ms: every packet of a trap would start a negotiation")
			}
		case "retransmit":
			d.retransmit(v, k, &c.IKE.Retransmit)
		case "delete_rekeyed_delay":
			c.IKE.RekeyedInboundDelay = d.rekeyDelay(v, k, time.Minute)
		case "rekey_delete_delay":
			c.IKE.RekeyDeleteDelay = d.rekeyDelay(v, k, 10*time.Second)
		case "bench_null_cipher":
			c.BenchNullCipher = d.boolean(v, k)
			c.BenchLine = v.Line
		case "key_log":
			c.IKE.KeyLog = d.str(v, k)
			if c.IKE.KeyLog != "" && !filepath.IsAbs(c.IKE.KeyLog) {
				c.IKE.KeyLog = filepath.Join(d.dir, c.IKE.KeyLog)
			}
		}
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if sasNode != nil {
		d.seq(sasNode, "sas", func(i int, e *yaml.Node) {
			if sa, ok := d.sa(e, fmt.Sprintf("sas[%d]", i), c); ok {
				c.SAs = append(c.SAs, sa)
			}
		})
	}
	if polNode != nil {
		d.seq(polNode, "policies", func(i int, e *yaml.Node) {
			if p, ok := d.policy(e, fmt.Sprintf("policies[%d]", i)); ok {
				c.Policies = append(c.Policies, p)
			}
		})
	}
	if connNode != nil {
		d.seq(connNode, "connections", func(i int, e *yaml.Node) {
			if i >= maxConnections {
				if i == maxConnections {
					d.errf(e, "connections", "more than %d connections", maxConnections)
				}
				return
			}
			if cn, ok := d.connection(e, fmt.Sprintf("connections[%d]", i)); ok {
				c.IKE.Connections = append(c.IKE.Connections, cn)
			} else {
				// A half-read connection may hold a PSK already.
				clear(cn.Local.PSK)
				clear(cn.Remote.PSK)
			}
		})
	}
	if clusterNode != nil {
		d.cluster(clusterNode, c)
	}
	if (c.LAN == "" || c.WAN == "") && !c.Witness() {
		d.errf(n, "interfaces", "lan and wan are required (the same name for one-arm)")
	}
	if !pinSet {
		c.PinPath = defaultPinPath(c.Control)
	}
}

// defaultPinPath is pin_path for a configuration that names none: one
// directory per control socket, which is one per daemon (Start refuses a
// second daemon on a socket in use).
func defaultPinPath(control string) string {
	name := strings.TrimSuffix(filepath.Base(control), filepath.Ext(control))
	if dir := filepath.Dir(control); dir != filepath.Dir(DefaultControl) {
		h := sha256.Sum256([]byte(dir))
		name += "-" + hex.EncodeToString(h[:4])
	}
	return filepath.Join(DefaultPinDir, name)
}

func (d *decoder) seq(n *yaml.Node, field string, f func(int, *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		d.errf(n, field, "expected a list")
		return
	}
	for i, e := range n.Content {
		f(i, e)
	}
}

func (d *decoder) interfaces(n *yaml.Node, c *Config) {
	var cpusNode *yaml.Node
	d.mapping(n, "interfaces", []string{"lan", "wan", "queues", "xdp_mode", "cpus", "set_channels", "zerocopy", "lan_vlan", "wan_vlan", "rss_esp_spi", "busy_poll", "prefer_busy_poll", "busy_poll_budget", "batch", "idle_spin", "umem_frames", "ring_size"}, func(k string, v *yaml.Node) {
		f := "interfaces." + k
		switch k {
		case "lan":
			c.LAN = d.str(v, f)
		case "wan":
			c.WAN = d.str(v, f)
		case "queues":
			if v.Kind == yaml.ScalarNode && v.Value == "auto" {
				c.Queues = QueuesAuto
			} else if q, ok := d.integer(v, f, 1, xdpconf.MaxQueues); ok {
				c.Queues = int(q)
			}
		case "set_channels":
			c.SetChannels = d.boolean(v, f)
		case "rss_esp_spi":
			c.RSSESPSPI = d.boolean(v, f)
		case "busy_poll":
			if n, ok := d.integer(v, f, 0, 1_000_000); ok {
				c.BusyPoll = int(n)
			}
		case "busy_poll_budget":
			if n, ok := d.integer(v, f, 0, 65535); ok {
				c.BusyPollBudget = int(n)
			}
		case "prefer_busy_poll":
			c.PreferBusyPoll = d.boolean(v, f)
		case "batch":
			if n, ok := d.integer(v, f, 1, MaxBatch); ok {
				c.Batch = int(n)
			}
		case "idle_spin":
			if c.IdleSpin = d.duration(v, f); c.IdleSpin > MaxIdleSpin {
				d.errf(v, f, "%v is over %v", c.IdleSpin, MaxIdleSpin)
			}
		case "umem_frames":
			if n, ok := d.integer(v, f, MinUMEMFrames, MaxUMEMFrames); ok {
				c.UMEMFrames = int(n)
			}
		case "ring_size":
			if n, ok := d.integer(v, f, MinRingSize, MaxRingSize); ok {
				if n&(n-1) != 0 {
					d.errf(v, f, "%d is not a power of two", n)
				}
				c.RingSize = int(n)
			}
		case "zerocopy":
			oneOf(d, v, f, &c.ZeroCopy, opt(ZeroCopyAuto, "auto"), opt(ZeroCopyOn, "on", "true"), opt(ZeroCopyOff, "off", "false"))
		case "xdp_mode":
			m, err := xdpconf.ParseAttachMode(d.str(v, f))
			if err != nil {
				d.errf(v, f, "%q is not auto, native or generic", v.Value)
			}
			c.XDPMode = m
		case "lan_vlan", "wan_vlan":
			svid, vid, ok := d.vlan(v, f)
			if ok && k == "lan_vlan" {
				c.LANSVLAN, c.LANVLAN = svid, vid
			} else if ok {
				c.WANSVLAN, c.WANVLAN = svid, vid
			}
		case "cpus":
			cpusNode = v
			if v.Kind == yaml.ScalarNode && v.Value == "auto" {
				c.CPUsAuto = true
				return
			}
			d.seq(v, f, func(i int, e *yaml.Node) {
				if cpu, ok := d.integer(e, fmt.Sprintf("%s[%d]", f, i), 0, 4095); ok {
					c.CPUs = append(c.CPUs, int(cpu))
				}
			})
		}
	})
	if cpusNode != nil && len(c.CPUs) > 0 && c.Queues == QueuesAuto {
		d.errf(cpusNode, "interfaces.cpus", "a CPU list needs an explicit queues count; with queues: auto use cpus: auto")
	} else if cpusNode != nil && len(c.CPUs) > 0 && len(c.CPUs) != c.Queues {
		d.errf(cpusNode, "interfaces.cpus", "%d CPUs for %d queues: give one per queue, or none", len(c.CPUs), c.Queues)
	}
	for _, name := range []string{c.LAN, c.WAN} {
		if len(name) > 15 || strings.ContainsAny(name, "/ \t") {
			d.errf(n, "interfaces", "%q is not an interface name", name)
		}
	}
}

var saFields = []string{
	"name", "spi", "dir", "mode", "local", "remote", "suite", "key", "key_file",
	"integ_key", "integ_key_file", "esn", "replay_window", "udp_encap", "df", "ttl",
	"selectors", "lifetime", "reqid",
}

func (d *decoder) sa(n *yaml.Node, path string, c *Config) (SA, bool) {
	sa := SA{Line: n.Line}
	sa.Mode = sad.Tunnel
	nerr := len(d.errs)
	var keyNode, integNode, suiteNode *yaml.Node
	var key, integ []byte
	haveKey, haveInteg := 0, 0
	d.mapping(n, path, saFields, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "name":
			sa.Name = d.str(v, f)
		case "spi":
			// RFC 4303 §2.1: 1..255 are reserved by IANA, 0 is never sent.
			if s, ok := d.integer(v, f, 256, 0xffffffff); ok {
				sa.SPI = uint32(s)
			}
		case "dir":
			oneOf(d, v, f, &sa.Dir, opt(sad.Inbound, "in", "inbound"), opt(sad.Outbound, "out", "outbound"))
		case "mode":
			oneOf(d, v, f, &sa.Mode, opt(sad.Tunnel, "tunnel"), opt(sad.Transport, "transport"))
		case "local", "remote":
			a, err := netip.ParseAddr(d.str(v, f))
			if err != nil || a.Zone() != "" {
				d.errf(v, f, "%q is not an IP address", v.Value)
			}
			if k == "local" {
				sa.Local = a
			} else {
				sa.Remote = a
			}
		case "suite":
			suiteNode = v
			sa.Suite = parsed(d, v, f, sad.ParseSuite)
		case "key", "key_file":
			keyNode = v
			if haveKey++; haveKey > 1 {
				d.errf(v, path+".key", "give key or key_file, not both")
				return
			}
			key = d.keyMaterial(v, f, k == "key_file")
		case "integ_key", "integ_key_file":
			integNode = v
			if haveInteg++; haveInteg > 1 {
				d.errf(v, path+".integ_key", "give integ_key or integ_key_file, not both")
				return
			}
			integ = d.keyMaterial(v, f, k == "integ_key_file")
		case "esn":
			sa.ESN = d.boolean(v, f)
		case "replay_window":
			if w, ok := d.integer(v, f, 0, 1<<20); ok {
				if w == 0 {
					sa.NoReplay = true
				} else if w < 32 {
					d.errf(v, f, "%d is too small: 0 (anti-replay off) or 32 and more", w)
				}
				sa.ReplayWindow = int(w)
			}
		case "udp_encap":
			d.udpEncap(v, f, c, &sa)
		case "df":
			oneOf(d, v, f, &sa.DF, opt(sad.DFCopy, "copy"), opt(sad.DFSet, "set"), opt(sad.DFClear, "clear"))
		case "ttl":
			if t, ok := d.integer(v, f, 1, 255); ok {
				sa.TTL = uint8(t)
			}
		case "selectors":
			d.seq(v, f, func(i int, e *yaml.Node) {
				if s, ok := d.selector(e, fmt.Sprintf("%s[%d]", f, i), []string{"src", "dst", "proto", "sport", "dport"}, nil); ok {
					sa.Selectors = append(sa.Selectors, s)
				}
			})
		case "lifetime":
			d.lifetime(v, f, &sa.Lifetime)
		case "reqid":
			if r, ok := d.integer(v, f, 0, 0xffffffff); ok {
				sa.ReqID = uint32(r)
			}
		}
	})
	if len(d.errs) > nerr || n.Kind != yaml.MappingNode {
		clear(key)
		clear(integ)
		return sa, false
	}
	need := func(ok bool, field string) {
		if !ok {
			d.errf(n, path+"."+field, "required")
		}
	}
	need(sa.Name != "", "name")
	need(sa.SPI != 0, "spi")
	need(sa.Dir != 0, "dir")
	need(suiteNode != nil, "suite")
	need(sa.Local.IsValid(), "local")
	need(sa.Remote.IsValid(), "remote")
	if sa.Local.IsValid() && sa.Remote.IsValid() && sa.Local.Is4() != sa.Remote.Is4() {
		d.errf(n, path+".remote", "local and remote are of different address families")
	}
	if suiteNode != nil && len(d.errs) == nerr {
		// Lengths only: the key itself never appears in an error.
		if want := sa.Suite.KeyLen(); len(key) != want {
			at := n
			if keyNode != nil {
				at = keyNode
			}
			d.errf(at, path+".key", "%d bytes, %s needs %d%s", len(key), sa.Suite, want, saltNote(sa.Suite))
		}
		if want := sa.Suite.IntegKeyLen(); !sa.Suite.IsAEAD() && len(integ) != want {
			at := n
			if integNode != nil {
				at = integNode
			}
			d.errf(at, path+".integ_key", "%d bytes, %s needs %d", len(integ), sa.Suite, want)
		} else if sa.Suite.IsAEAD() && integNode != nil {
			d.errf(integNode, path+".integ_key", "%s is an AEAD suite: it has no separate integrity key", sa.Suite)
		}
	}
	sa.Key, sa.IntegKey = key, integ
	if len(d.errs) == nerr {
		if err := sa.Config.Validate(); err != nil {
			d.errf(n, path, "%v", err)
		}
	}
	if len(d.errs) > nerr {
		clear(key)
		clear(integ)
		return sa, false
	}
	return sa, true
}

func saltNote(s sad.Suite) string {
	if s.IsAEAD() {
		return " (the key followed by the 4-byte salt)"
	}
	return ""
}

// keyMaterial reads a hex key, inline or from a file relative to the
// configuration's directory. Errors never quote the key.
func (d *decoder) keyMaterial(n *yaml.Node, field string, fromFile bool) []byte {
	s, ok := d.scalar(n, field)
	if !ok {
		return nil
	}
	if !fromFile {
		d.noteInlineKey(n, field)
	}
	if fromFile {
		p := s
		if !filepath.IsAbs(p) {
			p = filepath.Join(d.dir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			d.errf(n, field, "%v", err)
			return nil
		}
		defer f.Close()
		if err := checkSecretFile(f, p); err != nil {
			d.errf(n, field, "%v", err)
			return nil
		}
		b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
		if err != nil {
			d.errf(n, field, "%s: %v", p, err)
			return nil
		}
		if len(b) > maxKeyFileSize {
			d.errf(n, field, "%s: larger than %d bytes", p, maxKeyFileSize)
			return nil
		}
		s = string(b)
		clear(b)
	}
	k, err := parseHex(s)
	if err != nil {
		d.errf(n, field, "%v", err)
		return nil
	}
	return k
}

// parseHex accepts hex digits with an optional 0x and ':' or white-space
// separators. Its errors give positions, never the digits.
func parseHex(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ':', ' ', '\t', '\n', '\r', '_':
		default:
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		return nil, errors.New("empty key")
	}
	if len(clean)%2 != 0 {
		clear(clean)
		return nil, fmt.Errorf("odd number of hex digits (%d)", len(clean))
	}
	k := make([]byte, len(clean)/2)
	if _, err := hex.Decode(k, clean); err != nil {
		clear(clean)
		clear(k)
		return nil, errors.New("not hexadecimal")
	}
	clear(clean)
	return k, nil
}

func (d *decoder) udpEncap(n *yaml.Node, field string, c *Config, sa *SA) {
	if n.Kind == yaml.ScalarNode {
		if d.boolean(n, field) {
			// Both ports the configured NAT-T port; the port is applied in
			// check, after nat_t_port is known.
			sa.Encap = sad.UDPEncap{SrcPort: 0xffff, DstPort: 0xffff}
		}
		return
	}
	d.mapping(n, field, []string{"src", "dst"}, func(k string, v *yaml.Node) {
		p, ok := d.integer(v, field+"."+k, 1, 65535)
		if !ok {
			return
		}
		if k == "src" {
			sa.Encap.SrcPort = uint16(p)
		} else {
			sa.Encap.DstPort = uint16(p)
		}
	})
	if sa.Encap.SrcPort == 0 || sa.Encap.DstPort == 0 {
		d.errf(n, field, "give both src and dst ports (or true for the NAT-T port)")
	}
}

func (d *decoder) lifetime(n *yaml.Node, field string, lt *sad.Lifetime) {
	d.mapping(n, field, []string{"soft", "hard"}, func(k string, v *yaml.Node) {
		l := &lt.Soft
		if k == "hard" {
			l = &lt.Hard
		}
		f := field + "." + k
		d.mapping(v, f, []string{"time", "bytes", "packets"}, func(kk string, vv *yaml.Node) {
			switch kk {
			case "time":
				l.Time = d.duration(vv, f+".time")
			case "bytes":
				if b, ok := d.integer(vv, f+".bytes", 0, 1<<62); ok {
					l.Bytes = uint64(b)
				}
			case "packets":
				if p, ok := d.integer(vv, f+".packets", 0, 1<<62); ok {
					l.Packets = uint64(p)
				}
			}
		})
	})
	soft, hard := lt.Soft, lt.Hard
	bad := func(s, h uint64) bool { return s != 0 && h != 0 && s > h }
	if bad(uint64(soft.Time), uint64(hard.Time)) || bad(soft.Bytes, hard.Bytes) || bad(soft.Packets, hard.Packets) {
		d.errf(n, field, "a soft limit exceeds its hard limit")
	}
}

// selector reads src, dst, proto, sport and dport; extra fields go to f.
func (d *decoder) selector(n *yaml.Node, path string, known []string, extra func(k string, v *yaml.Node)) (sad.Selector, bool) {
	var s sad.Selector
	nerr := len(d.errs)
	var portNode *yaml.Node
	d.mapping(n, path, known, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "src", "dst":
			p := parsed(d, v, f, parsePrefix)
			if k == "src" {
				s.Src = p
			} else {
				s.Dst = p
			}
		case "proto":
			s.Proto = parsed(d, v, f, parseProto)
		case "sport", "dport":
			portNode = v
			r := parsed(d, v, f, parsePorts)
			if k == "sport" {
				s.SrcPorts = r
			} else {
				s.DstPorts = r
			}
		default:
			extra(k, v)
		}
	})
	if s.Src.IsValid() && s.Dst.IsValid() && s.Src.Addr().Is4() != s.Dst.Addr().Is4() {
		d.errf(n, path+".dst", "src and dst are of different address families")
	}
	if portNode != nil && (!s.SrcPorts.AnyPort() || !s.DstPorts.AnyPort()) {
		switch s.Proto {
		case 6, 17, 132, 136:
		default:
			d.errf(portNode, path+".proto", "ports need proto tcp, udp, sctp or udplite")
		}
	}
	return s, len(d.errs) == nerr
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" || s == "any" {
		return netip.Prefix{}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a prefix", s)
		}
		if p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q: no zones or IPv4-mapped prefixes", s)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or prefix", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var protoNames = map[string]uint8{
	"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136,
}

func parseProto(s string) (uint8, error) {
	if s == "" || s == "any" {
		return 0, nil
	}
	if p, ok := protoNames[strings.ToLower(s)]; ok {
		return p, nil
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a protocol (a name such as tcp, or 1..255, or any)", s)
	}
	return uint8(v), nil
}

func parsePorts(s string) (sad.PortRange, error) {
	if s == "" || s == "any" {
		return sad.PortRange{}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil {
		return sad.PortRange{}, fmt.Errorf("%q is not a port, a range lo-hi or any", s)
	}
	b := a
	if isRange {
		b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if err != nil {
			return sad.PortRange{}, fmt.Errorf("%q is not a port, a range lo-hi or any", s)
		}
	}
	if a > b {
		return sad.PortRange{}, fmt.Errorf("%q: the range is empty", s)
	}
	if a == 0 && b == 0 {
		return sad.PortRange{}, fmt.Errorf("%q: port 0 is not a port (write any)", s)
	}
	return sad.PortRange{Lo: uint16(a), Hi: uint16(b)}, nil
}

func (d *decoder) policy(n *yaml.Node, path string) (Policy, bool) {
	p := Policy{Line: n.Line}
	nerr := len(d.errs)
	sel, ok := d.selector(n, path, []string{"name", "src", "dst", "proto", "sport", "dport", "action", "sa", "dir", "mss_clamp"}, func(k string, v *yaml.Node) {
		f := path + "." + k
		switch k {
		case "mss_clamp":
			p.MSSClamp = d.mssClamp(v, f)
		case "name":
			p.Name = d.str(v, f)
		case "action":
			oneOf(d, v, f, &p.Action, opt(spd.Protect, "protect"), opt(spd.Bypass, "bypass", "pass"), opt(spd.Discard, "discard", "drop"))
		case "sa":
			p.SA = d.str(v, f)
		case "dir":
			oneOf(d, v, f, &p.Dir, opt(DirBoth, "both"), opt(DirOut, "out", "outbound"), opt(DirIn, "in", "inbound"))
		}
	})
	p.Selector = sel
	if !ok || n.Kind != yaml.MappingNode {
		return p, false
	}
	if p.Name == "" {
		d.errf(n, path+".name", "required")
	}
	if p.Action == 0 {
		d.errf(n, path+".action", "required (protect, bypass or discard)")
	}
	if p.Action == spd.Protect && p.SA == "" && p.Dir != DirIn {
		d.errf(n, path+".sa", "a protect policy names its outbound SA")
	}
	if p.Dir == DirIn && p.SA != "" {
		d.errf(n, path+".sa", "an inbound-only policy (dir: in) sends nothing: it has no SA")
	}
	if p.Action != spd.Protect && p.Action != 0 && p.MSSClamp != spd.MSSInherit {
		d.errf(n, path+".mss_clamp", "only protect policies carry traffic through the tunnel")
	}
	if p.Action != spd.Protect && p.Action != 0 && p.SA != "" {
		d.errf(n, path+".sa", "only protect policies have an SA")
	}
	return p, len(d.errs) == nerr
}

// uniqueKeys refuses key material another SA already has, in either
// direction and either role: with an AEAD suite the sequence number is
// the nonce, so two SAs under one key (the peer's included, when an
// inbound SA repeats an outbound key) would seal with the same nonces.
// An AEAD key is compared without its salt. Only digests are kept, and
// errors never quote the key.
func (d *decoder) uniqueKeys(at *yaml.Node, path string, i int, sa *SA, seen map[[sha256.Size]byte]int) {
	enc := sa.Key
	if sa.Suite.IsAEAD() && len(enc) > aeadSaltLen {
		enc = enc[:len(enc)-aeadSaltLen]
	}
	for _, k := range []struct {
		field string
		b     []byte
	}{{".key", enc}, {".integ_key", sa.IntegKey}} {
		if len(k.b) == 0 {
			continue
		}
		h := sha256.Sum256(k.b)
		if j, dup := seen[h]; dup && j != i {
			d.errf(at, path+k.field, "the same key as sas[%d]: every SA needs its own key (two SAs under one AEAD key repeat nonces)", j)
			continue
		}
		seen[h] = i
	}
}

// aeadSaltLen is the salt at the end of an AEAD SA's key (RFC 4106 §8.1,
// RFC 7634 §4).
const aeadSaltLen = 4

// mssClamp reads an mss_clamp: auto, off, or an MSS in bytes (88, Linux's
// smallest, up to 65495, the largest an IPv4 MTU of 65535 allows).
func (d *decoder) mssClamp(n *yaml.Node, field string) int {
	switch n.Value {
	case "auto":
		return spd.MSSAuto
	case "off":
		return spd.MSSOff
	}
	if n.Kind == yaml.ScalarNode && n.Value != "" && (n.Value[0] < '0' || n.Value[0] > '9') {
		d.errf(n, field, "%q is not auto, off or an MSS in bytes", n.Value)
		return spd.MSSInherit
	}
	if m, ok := d.integer(n, field, 88, 65495); ok {
		return int(m)
	}
	return spd.MSSInherit
}

// check applies the rules that span entries.
func (d *decoder) check(root *yaml.Node, c *Config) {
	names := map[string]int{}
	spis := map[[2]uint32]int{}
	keys := map[[sha256.Size]byte]int{}
	for i := range c.SAs {
		sa := &c.SAs[i]
		at := &yaml.Node{Line: sa.Line}
		path := fmt.Sprintf("sas[%d]", i)
		d.uniqueKeys(at, path, i, sa, keys)
		if j, dup := names[sa.Name]; dup {
			d.errf(at, path+".name", "%q already names sas[%d]", sa.Name, j)
		}
		names[sa.Name] = i
		k := [2]uint32{uint32(sa.Dir), sa.SPI}
		if j, dup := spis[k]; dup {
			d.errf(at, path+".spi", "0x%08x already used by sas[%d] in this direction", sa.SPI, j)
		}
		spis[k] = i
		if sa.Encap.SrcPort == 0xffff && sa.Encap.DstPort == 0xffff {
			sa.Encap = sad.UDPEncap{SrcPort: c.NATTPort, DstPort: c.NATTPort}
		}
		if sa.Dir == sad.Inbound && sa.Encap.Enabled() && sa.Encap.DstPort != c.NATTPort {
			// The XDP program steers ESP-in-UDP by destination port alone.
			d.errf(at, path+".udp_encap.dst", "inbound ESP-in-UDP arrives on nat_t_port %d, not %d", c.NATTPort, sa.Encap.DstPort)
		}
	}
	pnames := map[string]int{}
	for i := range c.Policies {
		p := &c.Policies[i]
		at := &yaml.Node{Line: p.Line}
		path := fmt.Sprintf("policies[%d]", i)
		if j, dup := pnames[p.Name]; dup {
			d.errf(at, path+".name", "%q already names policies[%d]", p.Name, j)
		}
		pnames[p.Name] = i
		if p.Action != spd.Protect || p.Dir == DirIn {
			continue
		}
		j, ok := names[p.SA]
		if !ok {
			d.errf(at, path+".sa", "no SA named %q", p.SA)
			continue
		}
		if c.SAs[j].Dir != sad.Outbound {
			d.errf(at, path+".sa", "%q is an inbound SA; a policy protects with an outbound one", p.SA)
		}
	}
	d.checkIKE(c)
	if c.Witness() {
		if len(c.SAs) != 0 || len(c.Policies) != 0 || len(c.IKE.Connections) != 0 {
			d.errf(root, "cluster.witness", "a witness is an etcd member only: no sas, policies or connections")
		}
	} else if len(c.SAs) == 0 && len(c.Policies) == 0 && len(c.IKE.Connections) == 0 {
		d.errf(root, "sas", "no SAs, no policies and no connections: nothing to do")
	}
}
