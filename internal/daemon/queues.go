package daemon

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/bpf/xdpconf"
	"github.com/xdpsec/xdpsec/fastpath"
	"github.com/xdpsec/xdpsec/fastpath/xsk"
	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/nic"
)

// ifQueues is an interface and its RX queue count.
type ifQueues struct {
	name string
	n    int
}

// queueCount decides how many queues to serve: every RX queue the
// interfaces have under queues: auto (which must then be the same on both
// sides, since worker q serves queue q of each), or the explicit count,
// which must match them unless set_channels lets us set it. resize says
// the interfaces' channels must be set to n first.
func queueCount(want int, setChannels bool, ifs []ifQueues) (n int, resize bool, err error) {
	if want == config.QueuesAuto {
		n = ifs[0].n
		for _, f := range ifs[1:] {
			if f.n != n {
				return 0, false, fmt.Errorf("interfaces.queues: auto, but %s has %d RX queues and %s has %d: worker q serves queue q of both, so give them one count (ethtool -L %s combined %d, or rx %d on veth) or set queues and set_channels: true",
					ifs[0].name, ifs[0].n, f.name, f.n, f.name, n, n)
			}
		}
		return n, false, nil
	}
	for _, f := range ifs {
		if f.n == want {
			continue
		}
		if setChannels {
			return want, true, nil
		}
		return 0, false, fmt.Errorf("interfaces.queues: %d, but %s has %d RX queues: traffic the NIC puts on the others would find no socket; use queues: auto, or set_channels: true, or ethtool -L %s combined %d (rx %d on veth)",
			want, f.name, f.n, f.name, want, want)
	}
	return want, false, nil
}

// planQueues reads the interfaces' RX queue counts, sets their channels
// where the configuration asks, and decides the queues served and their
// workers' CPUs (d.nQueues, d.cpus).
func (d *Daemon) planQueues() error {
	cfg := d.cfg
	ifcs := []ifQueues{{name: d.wanIf.Name}}
	idx := []int{d.wanIf.Index}
	if !cfg.OneArm() {
		ifcs = append(ifcs, ifQueues{name: d.lanIf.Name})
		idx = append(idx, d.lanIf.Index)
	}
	read := func() error {
		for i := range ifcs {
			n, err := nic.RXQueues(ifcs[i].name, idx[i])
			if err != nil {
				return err
			}
			ifcs[i].n = n
		}
		return nil
	}
	if err := read(); err != nil {
		if cfg.Queues == config.QueuesAuto {
			return fmt.Errorf("interfaces.queues: auto: %w (give queues explicitly)", err)
		}
		d.log.Warn("cannot read the RX queue count; serving the configured queues", "queues", cfg.Queues, "err", err)
		d.nQueues = cfg.Queues
	} else {
		n, resize, err := queueCount(cfg.Queues, cfg.SetChannels, ifcs)
		if err != nil {
			return err
		}
		if resize {
			for _, f := range ifcs {
				if f.n == n {
					continue
				}
				if err := nic.SetRXQueues(f.name, n); err != nil {
					return fmt.Errorf("interfaces.set_channels: %w", err)
				}
				d.log.Warn("RX channels set", "interface", f.name, "from", f.n, "to", n)
			}
			if err := read(); err != nil {
				return err
			}
			if _, _, err := queueCount(cfg.Queues, false, ifcs); err != nil {
				return fmt.Errorf("after setting channels: %w", err)
			}
		}
		d.nQueues = n
		d.rxQueues = ifcs
	}
	if d.nQueues > xdpconf.MaxQueues {
		return fmt.Errorf("interfaces.queues: %d RX queues, but the XDP program steers at most %d: ethtool -L %s combined %d", d.nQueues, xdpconf.MaxQueues, d.wanIf.Name, xdpconf.MaxQueues)
	}
	d.cpus = make([]int, d.nQueues)
	for q := range d.cpus {
		d.cpus[q] = -1
	}
	irqs := make([][]nic.QueueCPU, len(ifcs))
	for i, f := range ifcs {
		irqs[i] = nic.QueueCPUs(f.name, d.nQueues)
	}
	switch {
	case cfg.CPUsAuto:
		online, err := nic.OnlineCPUs()
		if err != nil {
			d.log.Warn("online CPUs", "err", err)
		}
		d.cpus = nic.AssignCPUs(d.nQueues, irqs[0], online)
	case len(cfg.CPUs) == d.nQueues:
		copy(d.cpus, cfg.CPUs)
	}
	for i, f := range ifcs {
		if bad := nic.Disagreements(d.cpus, irqs[i]); len(bad) > 0 {
			var b strings.Builder
			for _, q := range bad {
				fmt.Fprintf(&b, " queue %d: irq %d on cpus %v, worker on cpu %d;", q, irqs[i][q].IRQ, irqs[i][q].CPUs, d.cpus[q])
			}
			d.log.Warn("IRQ affinity and worker CPUs disagree: packets cross CPUs (set /proc/irq/N/smp_affinity_list or cpus: auto)",
				"interface", f.name, "queues", strings.TrimSuffix(strings.TrimSpace(b.String()), ";"))
		}
	}
	return nil
}

// missingLogEvery bounds the log lines about traffic on queues without a
// socket.
const missingLogEvery = time.Minute

// watchQueues runs on the lifetimes tick: it logs, at most once a minute,
// traffic the XDP programs found no socket for (xsk_missing), and a change
// of an interface's RX queue count (someone ran ethtool -L).
func (d *Daemon) watchQueues(now time.Time) {
	var missing uint64
	for _, o := range d.objs {
		if c, err := o.o.Counters(); err == nil {
			missing += c["xsk_missing"]
		}
	}
	if missing > d.missingSeen && now.Sub(d.missingLogged) >= missingLogEvery {
		d.log.Warn("traffic dropped on receive queues with no AF_XDP socket (xsk_missing): check the NIC's queue count against queues",
			"dropped", missing-d.missingSeen, "total", missing, "queues_served", d.nQueues)
		d.missingSeen, d.missingLogged = missing, now
	}
	if now.Sub(d.queuesChecked) < 5*time.Second {
		return
	}
	d.queuesChecked = now
	for i, f := range d.rxQueues {
		idx := d.wanIf.Index
		if f.name != d.wanIf.Name {
			idx = d.lanIf.Index
		}
		n, err := nic.RXQueues(f.name, idx)
		if err != nil || n == f.n {
			continue
		}
		d.log.Warn("RX queue count changed: restart xdpsec to serve the new count; until then traffic on unserved queues is dropped (xsk_missing)",
			"interface", f.name, "was", f.n, "now", n, "queues_served", d.nQueues)
		d.rxQueues[i].n = n
	}
}

// openXSK opens queue q's AF_XDP socket on ifc as zerocopy: says (see
// bindXSK), sized and tuned by the interfaces section, and says once per
// interface which mode the kernel gave: zero-copy, or copy mode and the
// kernel's reason for refusing zero-copy.
func (d *Daemon) openXSK(ifc *net.Interface, q int) (*xsk.Socket, error) {
	cfg := d.cfg
	o := xsk.Options{HugePages: true, NumFrames: cfg.UMEMFrames,
		FillSize: cfg.RingSize, CompletionSize: cfg.RingSize, RxSize: cfg.RingSize, TxSize: cfg.RingSize,
		BusyPollUsecs: cfg.BusyPoll, PreferBusyPoll: cfg.PreferBusyPoll, BusyPollBudget: cfg.BusyPollBudget}
	s, zcErr, err := bindXSK(func(m xsk.Mode) (*xsk.Socket, error) {
		o.Mode = m
		return xsk.Open(ifc.Index, q, o)
	}, cfg.ZeroCopy)
	if err != nil {
		return nil, fmt.Errorf("af_xdp %s queue %d: %w", ifc.Name, q, err)
	}
	if !d.zcLogged[ifc.Name] {
		if d.zcLogged == nil {
			d.zcLogged = map[string]bool{}
		}
		d.zcLogged[ifc.Name] = true
		switch {
		case s.ZeroCopy():
			d.log.Info("AF_XDP zero-copy", "interface", ifc.Name)
		case zcErr != nil:
			d.log.Warn("zero-copy unavailable: AF_XDP in copy mode (zerocopy: auto)", "interface", ifc.Name, "reason", zcErr)
		default:
			d.log.Info("AF_XDP copy mode (zerocopy: off)", "interface", ifc.Name)
		}
	}
	return s, nil
}

// bindXSK opens a socket with open under zerocopy: off binds in copy
// mode; on demands XDP_ZEROCOPY and fails without it; auto tries
// XDP_ZEROCOPY first and, where the driver refuses it (veth, drivers
// without AF_XDP zero-copy, or generic XDP), copy mode, returning the
// refusal as zcErr. A copy-mode failure after a zero-copy one reports
// both.
func bindXSK[S any](open func(xsk.Mode) (S, error), zc config.ZeroCopyMode) (s S, zcErr, err error) {
	if zc == config.ZeroCopyOff {
		s, err = open(xsk.ModeCopy)
		return s, nil, err
	}
	s, zcErr = open(xsk.ModeZeroCopy)
	switch {
	case zcErr == nil:
		return s, nil, nil
	case zc == config.ZeroCopyOn:
		return s, zcErr, fmt.Errorf("interfaces.zerocopy: on, but the socket cannot bind zero-copy (the driver needs native XDP and AF_XDP zero-copy support): %w", zcErr)
	}
	s, err = open(xsk.ModeCopy)
	if err != nil {
		return s, zcErr, fmt.Errorf("zero-copy: %v; copy mode: %w", zcErr, err)
	}
	return s, zcErr, nil
}

// spreadESP asks the WAN NIC to hash ESP on the SPI (rss_esp_spi: true).
// A driver that cannot is not an error: ESP then spreads by outer
// addresses only, which one line says.
func (d *Daemon) spreadESP() {
	if !d.cfg.RSSESPSPI {
		return
	}
	name := d.wanIf.Name
	var done []string
	for _, flow := range []uint32{nic.ESPv4Flow, nic.ESPv6Flow} {
		if err := nic.SetESPHash(name, flow); err != nil {
			drv, _ := nic.Driver(name)
			d.log.Warn("rss_esp_spi: the driver cannot hash ESP on the SPI; each pair of gateway addresses stays on one queue",
				"interface", name, "driver", drv, "err", err)
			return
		}
		done = append(done, map[uint32]string{nic.ESPv4Flow: "esp4", nic.ESPv6Flow: "esp6"}[flow])
	}
	d.log.Info("rss_esp_spi: RSS hashes ESP on addresses and SPI", "interface", name, "flows", done)
}

// logUMEMPages says once whether the UMEMs came from hugepages, and how
// many would be needed where they did not.
func (d *Daemon) logUMEMPages() {
	var socks []*xsk.Socket
	for _, qu := range d.queues {
		for _, s := range []*xsk.Socket{qu.wan, qu.lan} {
			if s != nil && !slices.Contains(socks, s) {
				socks = append(socks, s)
			}
		}
	}
	huge := 0
	for _, s := range socks {
		if s.HugePages() {
			huge++
		}
	}
	if huge == len(socks) {
		d.log.Info("UMEM on 2 MiB hugepages", "sockets", huge)
		return
	}
	frames := d.cfg.UMEMFrames
	if frames == 0 {
		frames = xsk.DefaultNumFrames
	}
	pages := (len(socks)*frames*fastpath.FrameSize + 2<<20 - 1) / (2 << 20)
	d.log.Info("UMEM on normal pages: not enough free 2 MiB hugepages", "sockets", len(socks), "on_hugepages", huge,
		"fix", fmt.Sprintf("sysctl -w vm.nr_hugepages=%d (before starting)", pages))
}
