package daemon

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/nexthop"
	"github.com/xdpsec/xdpsec/fastpath/xsk"
	"github.com/xdpsec/xdpsec/ike"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
	"github.com/xdpsec/xdpsec/sad"
	"github.com/xdpsec/xdpsec/sad/spd"
)

// Snapshot reports the gateway's state; safe from any goroutine.
func (d *Daemon) Snapshot() *control.Snapshot {
	s := &control.Snapshot{
		Config: d.cfg.File, PID: os.Getpid(), Started: d.started, Now: time.Now(),
		OneArm: d.cfg.OneArm(), XDP: map[string]map[string]uint64{},
	}
	for _, o := range d.objs {
		if o.att != nil {
			s.Interfaces = append(s.Interfaces, control.Interface{
				Name: o.ifc.Name, Ifindex: o.ifc.Index, Role: o.att.Role.String(),
				XDPMode: o.att.Mode.String(), Reused: o.att.Reused,
			})
		}
		if c, err := o.o.Counters(); err == nil {
			s.XDP[o.name] = c
		}
	}
	// A reload swaps these; engine calls below stay outside the lock.
	d.live.RLock()
	sas, static := d.sas, d.static
	d.live.RUnlock()
	for _, sa := range sas {
		s.SAs = append(s.SAs, SAInfo(sa))
	}
	if d.ike != nil && d.ike.engine != nil {
		for _, sa := range d.ike.sas() {
			s.SAs = append(s.SAs, SAInfo(sa))
		}
		s.IKE = d.ike.list()
		s.IKEStats = IKEStats(d.ike.engine.Stats())
		s.IKEStats[nattKeepalives] = d.ike.engine.KeepalivesSent()
		s.Acquires = d.ike.acquireCounters()
		s.IKEFragments = d.ike.engine.FragmentStats().Counters()
	}
	dir := make(map[*spd.Policy]config.PolicyDir, len(static))
	for _, sp := range static {
		dir[sp.p] = sp.dir
	}
	for _, p := range d.spd.Policies() {
		cp := control.Policy{Name: p.Name, Selector: SelectorString(p.Selector), Action: p.Action.String(), Trap: p.Acquire.Load()}
		if sa := p.SA.Load(); sa != nil {
			cp.SA, cp.SPI = sa.Name, sa.SPI
		}
		if dir[p] == config.DirOut {
			cp.Dir = "out"
		}
		s.Policies = append(s.Policies, cp)
	}
	for _, sp := range static {
		if sp.dir == config.DirIn {
			s.Policies = append(s.Policies, control.Policy{Name: sp.p.Name, Selector: SelectorString(sp.p.Selector), Action: sp.p.Action.String(), Dir: "in"})
		}
	}
	for _, q := range d.queues {
		if q.w == nil {
			continue
		}
		c, drops := WorkerCounters(q.w.Stats())
		s.Workers = append(s.Workers, control.Worker{ID: q.w.ID, Queue: q.q, CPU: q.cpu, Counters: c, Drops: drops})
		for _, sock := range []*xsk.Socket{q.wan, q.lan} {
			if sock == nil || (sock == q.lan && q.lan == q.wan) {
				continue
			}
			st, err := sock.Stats()
			if err != nil {
				continue
			}
			name := d.cfg.WAN
			if sock == q.lan {
				name = d.cfg.LAN
			}
			s.XSK = append(s.XSK, control.XSK{Interface: name, Queue: q.q, ZeroCopy: st.ZeroCopy, Counters: XSKCounters(st)})
		}
	}
	if d.cluster != nil {
		s.Cluster = d.cluster.snapshot()
	}
	s.WANMTU = int(d.curMTU.Load())
	s.PMTU = d.pmtu.snapshot()
	if len(d.hopStats) > 0 {
		s.NextHops = map[string]map[string]uint64{}
		for name, f := range d.hopStats {
			s.NextHops[name] = f()
		}
	}
	return s
}

// SAInfo describes an SA for display, without its keys.
func SAInfo(sa *sad.SA) control.SA {
	c := sa.Counters.Snapshot()
	info := control.SA{
		Name: sa.Name, SPI: sa.SPI, Dir: dirString(sa.Dir), Mode: sa.Mode.String(),
		Suite: sa.Crypto.Suite.String(), Local: sa.Local.String(), Remote: sa.Remote.String(),
		UDPSrc: sa.Encap.SrcPort, UDPDst: sa.Encap.DstPort, ESN: sa.ESN,
		Created: sa.Created, Usable: sa.Usable(), NeedsRekey: sa.NeedsRekey(),
		Packets: c.Packets, Bytes: c.Bytes, Drops: dropMap(c.Drops[:]),
	}
	if sa.Dir == sad.Outbound {
		info.Seq = sa.Seq()
		info.PathMTU = sa.PathMTU()
	}
	if sa.Replay != nil {
		info.ReplayWin, info.ReplayTop = sa.Replay.Size(), sa.Replay.Top()
	}
	for _, sel := range sa.Selectors {
		info.Selectors = append(info.Selectors, SelectorString(sel))
	}
	return info
}

func dirString(d sad.Direction) string {
	if d == sad.Inbound {
		return "in"
	}
	return "out"
}

func dropMap(drops []uint64) map[string]uint64 {
	m := map[string]uint64{}
	for r, n := range drops {
		if n != 0 && sad.Reason(r) != sad.OK {
			m[sad.Reason(r).String()] = n
		}
	}
	return m
}

// SelectorString writes a selector the way the configuration does.
func SelectorString(s sad.Selector) string {
	var b strings.Builder
	pfx := func(name string, p interface{ IsValid() bool }, str string) {
		if p.IsValid() {
			fmt.Fprintf(&b, "%s %s ", name, str)
		} else {
			fmt.Fprintf(&b, "%s any ", name)
		}
	}
	pfx("src", s.Src, s.Src.String())
	pfx("dst", s.Dst, s.Dst.String())
	if s.Proto != 0 {
		fmt.Fprintf(&b, "proto %d ", s.Proto)
	}
	ports := func(name string, r sad.PortRange) {
		if r.AnyPort() {
			return
		}
		if r.Lo == r.Hi {
			fmt.Fprintf(&b, "%s %d ", name, r.Lo)
		} else {
			fmt.Fprintf(&b, "%s %d-%d ", name, r.Lo, r.Hi)
		}
	}
	ports("sport", s.SrcPorts)
	ports("dport", s.DstPorts)
	return strings.TrimSpace(b.String())
}

// WorkerCounters splits fastpath.Stats into counters and drops by reason.
func WorkerCounters(st fastpath.Stats) (map[string]uint64, map[string]uint64) {
	c := map[string]uint64{}
	st.Each(func(name string, v uint64) { c[name] = v })
	return c, dropMap(st.Drops[:])
}

// XSKCounters flattens xsk.Stats.
func XSKCounters(st xsk.Stats) map[string]uint64 {
	return map[string]uint64{
		"rx_packets": st.RxPackets, "rx_bytes": st.RxBytes, "tx_packets": st.TxPackets, "tx_bytes": st.TxBytes,
		"tx_ring_full": st.TxRingFull, "tx_invalid": st.TxInvalid, "fills": st.Fills, "completions": st.Completions,
		"tx_kicks": st.TxKicks, "rx_kicks": st.RxKicks, "kick_errors": st.KickErrors, "bad_frames": st.BadFrames,
		"polls": st.Polls, "zero_copy": b2u(st.ZeroCopy), "huge_pages": b2u(st.HugePages),
		"frames": uint64(st.Frames), "free": uint64(st.Free), "held": uint64(st.Held), "lost": uint64(st.Lost),
		"kernel_rx_dropped": st.Kernel.RxDropped, "kernel_rx_invalid_descs": st.Kernel.RxInvalidDescs,
		"kernel_tx_invalid_descs": st.Kernel.TxInvalidDescs, "kernel_rx_ring_full": st.Kernel.RxRingFull,
		"kernel_rx_fill_ring_empty": st.Kernel.RxFillRingEmptyDescs, "kernel_tx_ring_empty": st.Kernel.TxRingEmptyDescs,
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func hopStatsMap(st nexthop.Stats) map[string]uint64 {
	return map[string]uint64{
		"hits": st.Hits, "misses": st.Misses, "requests": st.Requests, "queue_drops": st.QueueDrops,
		"resolves": st.Resolves, "events": st.Events, "entries": st.Entries, "evictions": st.Evictions,
		"errors": st.Errors,
	}
}

// IKEStats flattens the engine's flood-defence counters; half_open and
// half_open_peak are gauges, the rest count up.
func IKEStats(st ike.FloodStats) map[string]uint64 {
	return map[string]uint64{
		"init_requests": st.InitRequests, "init_malformed": st.InitMalformed, "unknown_peer": st.UnknownPeer,
		"cookies_sent": st.CookiesSent, "cookies_valid": st.CookiesValid, "cookies_invalid": st.CookiesInvalid,
		"rate_limited": st.RateLimited, "half_open_dropped": st.HalfOpenDropped, "half_open_expired": st.HalfOpenExpired,
		"queue_dropped": st.QueueDropped, "transport_dropped": st.TransportDropped, "cookie_retries": st.CookieRetries,
		"half_open": st.HalfOpen, "half_open_peak": st.HalfOpenPeak, "transport_shed": st.TransportShed,
		"unknown_sa": st.UnknownSA, "forged_retransmits": st.ForgedRetransmits,
		"limit_cookies": st.LimitCookies, "prefix_full": st.PrefixFull, "address_ignored": st.AddressIgnored,
	}
}

// ikeGauges are the IKEStats keys that are not counters.
var ikeGauges = map[string]bool{"half_open": true, "half_open_peak": true}
