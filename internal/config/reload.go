package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/xdpsec/xdpsec/ike"
)

// Check is the one validation of a configuration file: `xdpsec run
// --check`, `xdpsec run` and a live reload (SIGHUP, `xdpsec reload`) all
// go through it, so a file that passes the check loads, and one that
// does not is refused the same way everywhere, with file:line: field.
func Check(path string) (*Config, error) { return Load(path) }

// Reload is what a live reload changes, by name, and how.
type Reload struct {
	// Connections by name: added (follow their start_action), removed
	// (deleted with the peer), changed, unchanged (not touched).
	Added, Removed, Changed, Unchanged []string
	// Restarted are the changed connections whose SAs cannot carry the
	// new settings (traffic selectors, mode, addresses, ports, encap):
	// they are deleted and set up again. The other changed ones keep
	// their SAs and use the new settings from the next exchange.
	Restarted []string
	// Static SAs by name, and whether the file's policies changed.
	SAsAdded, SAsRemoved, SAsChanged []string
	Policies                         bool
	// LogLevel, Metrics and Defence (the ike: section's live limits)
	// changed.
	LogLevel, Metrics, Defence bool
}

// Empty reports whether the reload changes nothing.
func (r *Reload) Empty() bool {
	return len(r.Added)+len(r.Removed)+len(r.Changed)+len(r.SAsAdded)+len(r.SAsRemoved)+len(r.SAsChanged) == 0 &&
		!r.Policies && !r.LogLevel && !r.Metrics && !r.Defence
}

// String is the reload in one line: counts, then names.
func (r *Reload) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "connections: %d added, %d removed, %d changed, %d unchanged", len(r.Added), len(r.Removed), len(r.Changed), len(r.Unchanged))
	list := func(what string, names []string) {
		if len(names) > 0 {
			fmt.Fprintf(&b, "; %s: %s", what, strings.Join(names, ","))
		}
	}
	list("added", r.Added)
	list("removed", r.Removed)
	list("changed", r.Changed)
	list("re-established", r.Restarted)
	list("unchanged", r.Unchanged)
	fmt.Fprintf(&b, "; static SAs: %d added, %d removed, %d changed", len(r.SAsAdded), len(r.SAsRemoved), len(r.SAsChanged))
	list("sa added", r.SAsAdded)
	list("sa removed", r.SAsRemoved)
	list("sa changed", r.SAsChanged)
	var other []string
	for _, x := range []struct {
		on   bool
		name string
	}{{r.Policies, "policies"}, {r.LogLevel, "log_level"}, {r.Metrics, "metrics"}, {r.Defence, "ike limits"}} {
		if x.on {
			other = append(other, x.name)
		}
	}
	if len(other) > 0 {
		fmt.Fprintf(&b, "; also changed: %s", strings.Join(other, ","))
	}
	return b.String()
}

// SAFingerprints are the static SAs' settings, keys included, as hashes
// by name: the daemon keeps them from the start (when the keys are wiped
// from the configuration) to see on reload which SAs changed.
func (c *Config) SAFingerprints() map[string]string {
	m := make(map[string]string, len(c.SAs))
	for i := range c.SAs {
		h := sha256.Sum256(fmt.Appendf(nil, "%v", c.SAs[i].Config))
		m[c.SAs[i].Name] = hex.EncodeToString(h[:])
	}
	return m
}

// Compare says what reloading next over cur changes, or why it cannot be
// done live: every setting that only a restart can change, named with
// the new file's file:line: field. oldSAs are cur's SAFingerprints,
// taken before its keys were wiped. Nothing is changed.
func Compare(cur *Config, oldSAs map[string]string, next *Config) (*Reload, error) {
	var errs []error
	for _, f := range restartFields(cur, next) {
		errs = append(errs, &Error{File: next.File, Line: lineOf(next.File, f.path), Field: f.path,
			Msg: fmt.Sprintf("changed (%v -> %v): it cannot change while the daemon runs; restart it to apply (nothing was applied)", f.old, f.new)})
	}
	if (len(cur.IKE.Connections) == 0) != (len(next.IKE.Connections) == 0) {
		what := "the first connection"
		if len(next.IKE.Connections) == 0 {
			what = "removing every connection"
		}
		errs = append(errs, &Error{File: next.File, Line: lineOf(next.File, "connections"), Field: "connections",
			Msg: what + " turns IKE on or off, which needs a restart (nothing was applied)"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r := &Reload{
		LogLevel: cur.LogLevel != next.LogLevel,
		Metrics:  cur.Metrics != next.Metrics,
		Defence:  !reflect.DeepEqual(liveDefence(cur.IKE.Defence), liveDefence(next.IKE.Defence)),
	}
	old := map[string]*Connection{}
	for i := range cur.IKE.Connections {
		old[cur.IKE.Connections[i].Name] = &cur.IKE.Connections[i]
	}
	seen := map[string]bool{}
	for i := range next.IKE.Connections {
		n := &next.IKE.Connections[i]
		seen[n.Name] = true
		o := old[n.Name]
		switch {
		case o == nil:
			r.Added = append(r.Added, n.Name)
		case o.Connection.SameAs(&n.Connection):
			r.Unchanged = append(r.Unchanged, n.Name)
		default:
			r.Changed = append(r.Changed, n.Name)
			if !o.Connection.LiveChange(&n.Connection) {
				r.Restarted = append(r.Restarted, n.Name)
			}
		}
	}
	for i := range cur.IKE.Connections {
		if !seen[cur.IKE.Connections[i].Name] {
			r.Removed = append(r.Removed, cur.IKE.Connections[i].Name)
		}
	}
	nextSAs := next.SAFingerprints()
	for i := range next.SAs {
		name := next.SAs[i].Name
		switch fp, ok := oldSAs[name]; {
		case !ok:
			r.SAsAdded = append(r.SAsAdded, name)
		case fp != nextSAs[name]:
			r.SAsChanged = append(r.SAsChanged, name)
		}
	}
	for i := range cur.SAs {
		if _, ok := nextSAs[cur.SAs[i].Name]; !ok {
			r.SAsRemoved = append(r.SAsRemoved, cur.SAs[i].Name)
		}
	}
	r.Policies = !samePolicies(cur.Policies, next.Policies)
	return r, nil
}

// samePolicies compares the file's policies, lines aside.
func samePolicies(a, b []Policy) bool {
	return slices.EqualFunc(a, b, func(x, y Policy) bool {
		x.Line, y.Line = 0, 0
		return reflect.DeepEqual(x, y)
	})
}

// liveDefence is the part of the ike: section a reload applies (see
// ike.Engine.SetDefence); the rest needs a restart.
func liveDefence(d Defence) Defence {
	return Defence{Defence: ike.Defence{
		HalfOpenLimit: d.HalfOpenLimit, HalfOpenTimeout: d.HalfOpenTimeout,
		CookieThreshold: d.CookieThreshold, CookiesAlways: d.CookiesAlways,
		InitRate: d.InitRate, InitBurst: d.InitBurst, HalfOpenPerPrefix: d.HalfOpenPerPrefix,
	}}
}

// restartField is a setting only a restart can change, and its values.
type restartField struct {
	path     string
	old, new any
}

// restartFields lists the settings that differ between cur and next and
// cannot change live: the data plane's shape (interfaces, queues, XDP,
// UMEM and socket options, VLANs), the paths and sockets the daemon
// holds, and the engine's fixed parameters. Any field of Config not named
// here and not applied live counts as one too, under its Go name, so a
// setting added later is refused rather than silently ignored.
func restartFields(cur, next *Config) []restartField {
	var out []restartField
	add := func(path string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, restartField{path, a, b})
		}
	}
	add("interfaces.lan", cur.LAN, next.LAN)
	add("interfaces.wan", cur.WAN, next.WAN)
	add("interfaces.queues", cur.Queues, next.Queues)
	add("interfaces.set_channels", cur.SetChannels, next.SetChannels)
	add("interfaces.rss_esp_spi", cur.RSSESPSPI, next.RSSESPSPI)
	add("interfaces.busy_poll", cur.BusyPoll, next.BusyPoll)
	add("interfaces.busy_poll_budget", cur.BusyPollBudget, next.BusyPollBudget)
	add("interfaces.prefer_busy_poll", cur.PreferBusyPoll, next.PreferBusyPoll)
	add("interfaces.batch", cur.Batch, next.Batch)
	add("interfaces.idle_spin", cur.IdleSpin, next.IdleSpin)
	add("interfaces.umem_frames", cur.UMEMFrames, next.UMEMFrames)
	add("interfaces.ring_size", cur.RingSize, next.RingSize)
	add("interfaces.xdp_mode", cur.XDPMode, next.XDPMode)
	add("interfaces.cpus", fmt.Sprint(cur.CPUs, cur.CPUsAuto), fmt.Sprint(next.CPUs, next.CPUsAuto))
	add("interfaces.zerocopy", cur.ZeroCopy, next.ZeroCopy)
	add("interfaces.lan_vlan", [2]uint16{cur.LANSVLAN, cur.LANVLAN}, [2]uint16{next.LANSVLAN, next.LANVLAN})
	add("interfaces.wan_vlan", [2]uint16{cur.WANSVLAN, cur.WANVLAN}, [2]uint16{next.WANSVLAN, next.WANVLAN})
	add("default_action", cur.DefaultAction, next.DefaultAction)
	add("nat_t_port", cur.NATTPort, next.NATTPort)
	add("pin_path", cur.PinPath, next.PinPath)
	add("on_stop", cur.DetachOnStop, next.DetachOnStop)
	add("control", cur.Control, next.Control)
	add("control_group", cur.ControlGroup, next.ControlGroup)
	add("control_admin_group", cur.ControlAdminGroup, next.ControlAdminGroup)
	add("log_format", cur.LogFormat, next.LogFormat)
	add("state_dir", cur.StateDir, next.StateDir)
	add("mtu", cur.MTU, next.MTU)
	add("mss_clamp", cur.MSSClamp, next.MSSClamp)
	add("reassembly", cur.Reassembly, next.Reassembly)
	add("bench_null_cipher", cur.BenchNullCipher, next.BenchNullCipher)
	add("key_log", cur.IKE.KeyLog, next.IKE.KeyLog)
	add("acquire_interval", cur.IKE.AcquireInterval, next.IKE.AcquireInterval)
	add("retransmit", cur.IKE.Retransmit, next.IKE.Retransmit)
	add("delete_rekeyed_delay", cur.IKE.RekeyedInboundDelay, next.IKE.RekeyedInboundDelay)
	add("rekey_delete_delay", cur.IKE.RekeyDeleteDelay, next.IKE.RekeyDeleteDelay)
	cd, nd := cur.IKE.Defence, next.IKE.Defence
	add("ike.cookie_secret_lifetime", cd.CookieSecretLifetime, nd.CookieSecretLifetime)
	add("ike.rate_limit_slots", cd.RateLimitSlots, nd.RateLimitSlots)
	add("ike.source_prefix_v4", cd.SourcePrefixV4, nd.SourcePrefixV4)
	add("ike.source_prefix_v6", cd.SourcePrefixV6, nd.SourcePrefixV6)
	add("ike.reassembly_budget", cd.ReassemblyBudget, nd.ReassemblyBudget)
	add("ike.unauth_reassembly_limit", cd.UnauthReassemblyLimit, nd.UnauthReassemblyLimit)
	add("cluster", clusterSetting(cur.Cluster), clusterSetting(next.Cluster))
	if cur.Cluster != nil && next.Cluster != nil && !bytes.Equal(cur.Cluster.Key, next.Cluster.Key) {
		out = append(out, restartField{"cluster.key_file", "(a key)", "(another key)"})
	}
	if len(out) > 0 {
		return out
	}
	// The catch-all: whatever else differs, with the live parts and the
	// ones checked above set equal.
	a, b := *cur, *next
	for _, c := range []*Config{&a, &b} {
		c.File, c.Warnings, c.SAs, c.Policies, c.Metrics, c.LogLevel = "", nil, nil, nil, "", ""
		c.Cluster = nil // compared above, without printing its key
		c.IKE = IKE{}
		c.BenchLine, c.BenchAllowed = 0, false // where the key sits; a run flag
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, restartField{va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface()})
		}
	}
	return out
}

// clusterSetting is the cluster: section as a reload compares and prints
// it: everything but the key, which is compared apart and never printed.
func clusterSetting(c *Cluster) string {
	if c == nil {
		return "none"
	}
	v := *c
	v.Key = nil
	return fmt.Sprintf("%+v", v)
}

// lineOf finds the line of a dotted key path ("interfaces.queues") in
// the file, or 1 when it is not there (a setting removed).
func lineOf(file, path string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 1
	}
	var root yaml.Node
	if yaml.NewDecoder(bytes.NewReader(b)).Decode(&root) != nil {
		return 1
	}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 1
	for _, k := range strings.Split(path, ".") {
		found := false
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
		}
		if !found {
			return line
		}
	}
	return line
}
