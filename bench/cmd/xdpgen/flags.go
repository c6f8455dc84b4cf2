package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/bench/gen"
)

// txFlags are the generator's flags, shared by tx and run.
type txFlags struct {
	srcMAC, dstMAC   net.HardwareAddr
	src, dst         netip.Addr
	sport, dport     uint16
	flows            int
	vary             gen.Vary
	sizes            []int
	rate             float64
	duration         time.Duration
	count            uint64
	batch            int
	resolveTimeoutMs int
}

// config holds a parsed command line.
type config struct {
	cmd      string // tx, rx, run
	tx       txFlags
	txIf     string
	txQueue  int
	txNetns  string
	rxIf     string
	rxQueue  int
	rxNetns  string
	rxFlows  int
	verify   bool
	idle     time.Duration
	json     bool
	progress bool
	txCPU    int // -1: not pinned
	rxCPU    int
}

const usage = `usage:
  xdpgen tx  -i IFACE [-q QUEUE] [--netns NS] --dst ADDR [--src ADDR] [--src-mac MAC] [--dst-mac MAC]
             [--sport P] [--dport P] [--flows N] [--vary port|addr] [--size 64|512|1400|imix|BYTES]
             [--rate PPS] [--duration D] [--count N] [--batch N] [--cpu N] [-o text|json]
  xdpgen rx  -i IFACE [-q QUEUE] [--netns NS] [--dport P] [--flows N] [--verify] [--duration D]
             [--count N] [--idle D] [--cpu N] [-o text|json]
  xdpgen run --tx-if A --rx-if B [--tx-netns NS] [--rx-netns NS] [--tx-queue Q] [--rx-queue Q]
             [--tx-cpu N] [--rx-cpu N]
             [generator flags as for tx] [--verify] [--idle D] [-o text|json]
Without --src-mac/--dst-mac the MACs come from the interface and the neighbour table
(the sink passes ARP to the kernel, so resolution works while it runs; IPv6 neighbour
discovery it does not pass: give --dst-mac for IPv6 towards a running sink).
--rate takes PPS with an optional k/M/G suffix; 0 sends as fast as the socket takes packets.
`

// macValue, addrValue, portValue, rateValue etc. are flag.Values that
// parse at flag time, so errors name the flag.
type macValue struct{ p *net.HardwareAddr }

func (v macValue) String() string {
	if v.p == nil || *v.p == nil {
		return ""
	}
	return v.p.String()
}

func (v macValue) Set(s string) error {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return fmt.Errorf("want a 6-byte MAC like 02:00:00:00:00:01")
	}
	*v.p = m
	return nil
}

type addrValue struct{ p *netip.Addr }

func (v addrValue) String() string {
	if v.p == nil || !v.p.IsValid() {
		return ""
	}
	return v.p.String()
}

func (v addrValue) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return errors.New("want an IPv4 or IPv6 address")
	}
	*v.p = a.Unmap()
	return nil
}

type portValue struct{ p *uint16 }

func (v portValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(int(*v.p))
}

func (v portValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return errors.New("want a port 1..65535")
	}
	*v.p = uint16(n)
	return nil
}

type rateValue struct{ p *float64 }

func (v rateValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v rateValue) Set(s string) error {
	r, err := parseRate(s)
	if err != nil {
		return err
	}
	*v.p = r
	return nil
}

// parseRate reads a packet rate: a number with an optional k, M or G
// suffix (powers of ten), optionally followed by "pps".
func parseRate(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "pps")
	mult := 1.0
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult, t = 1e3, t[:n-1]
		case 'm', 'M':
			mult, t = 1e6, t[:n-1]
		case 'g', 'G':
			mult, t = 1e9, t[:n-1]
		}
	}
	r, err := strconv.ParseFloat(t, 64)
	if err != nil || r < 0 || r != r || r*mult > 1e12 {
		return 0, fmt.Errorf("rate %q: want packets per second ≥ 0, like 500k or 1.5M", s)
	}
	return r * mult, nil
}

type sizeValue struct{ p *[]int }

func (v sizeValue) String() string { return "64" }

func (v sizeValue) Set(s string) error {
	sz, err := gen.ParseSize(s)
	if err != nil {
		return err
	}
	*v.p = sz
	return nil
}

type varyValue struct{ p *gen.Vary }

func (v varyValue) String() string {
	if v.p == nil {
		return "port"
	}
	return v.p.String()
}

func (v varyValue) Set(s string) error {
	x, err := gen.ParseVary(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func genFlags(fs *flag.FlagSet, t *txFlags) {
	fs.Var(macValue{&t.srcMAC}, "src-mac", "source MAC (default: the interface's)")
	fs.Var(macValue{&t.dstMAC}, "dst-mac", "destination MAC (default: from the neighbour table)")
	fs.Var(addrValue{&t.src}, "src", "source address (default: the interface's first of --dst's family)")
	fs.Var(addrValue{&t.dst}, "dst", "destination address (required for tx)")
	fs.Var(portValue{&t.sport}, "sport", "source port (of flow 0)")
	fs.Var(portValue{&t.dport}, "dport", "destination port")
	fs.IntVar(&t.flows, "flows", 1, "number of flows")
	fs.Var(varyValue{&t.vary}, "vary", "what makes flows differ: port (source port) or addr (source address)")
	fs.Var(sizeValue{&t.sizes}, "size", "frame size without FCS: bytes or imix")
	fs.Var(rateValue{&t.rate}, "rate", "packets per second, 0 = as fast as possible")
	fs.DurationVar(&t.duration, "duration", 0, "stop after this long (0: no limit)")
	fs.Uint64Var(&t.count, "count", 0, "stop after this many packets (0: no limit)")
	fs.IntVar(&t.batch, "batch", 256, "packets per TX batch (the sink uses the same)")
	fs.IntVar(&t.resolveTimeoutMs, "resolve-timeout", 1000, "ms to wait for neighbour resolution")
}

func outputFlag(fs *flag.FlagSet, c *config) {
	fs.Func("o", "output: text or json", func(s string) error {
		switch s {
		case "text":
			c.json = false
		case "json":
			c.json = true
		default:
			return errors.New("want text or json")
		}
		return nil
	})
	fs.BoolVar(&c.progress, "progress", true, "print a progress line every second on stderr")
}

// parseArgs reads a command line (without the program name).
func parseArgs(args []string, stderr io.Writer) (config, error) {
	c := config{tx: txFlags{sport: 10000, dport: 9, flows: 1, sizes: []int{64}}, progress: true, txCPU: -1, rxCPU: -1}
	if len(args) == 0 {
		return c, errors.New("want a command: tx, rx or run")
	}
	c.cmd = args[0]
	fs := flag.NewFlagSet("xdpgen "+c.cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	outputFlag(fs, &c)
	switch c.cmd {
	case "tx":
		genFlags(fs, &c.tx)
		fs.StringVar(&c.txIf, "i", "", "interface")
		fs.IntVar(&c.txQueue, "q", 0, "queue")
		fs.StringVar(&c.txNetns, "netns", "", "network namespace (ip netns name)")
		fs.IntVar(&c.txCPU, "cpu", -1, "pin the sending thread to this CPU (-1: don't)")
	case "rx":
		fs.StringVar(&c.rxIf, "i", "", "interface")
		fs.IntVar(&c.rxQueue, "q", 0, "queue")
		fs.StringVar(&c.rxNetns, "netns", "", "network namespace (ip netns name)")
		fs.IntVar(&c.rxCPU, "cpu", -1, "pin the receiving thread to this CPU (-1: don't)")
		c.tx.dport = 0
		fs.Var(portValue{&c.tx.dport}, "dport", "count only UDP to this port (default: any)")
		fs.IntVar(&c.rxFlows, "flows", gen.MaxFlows, "highest flow number tracked, plus one")
		fs.BoolVar(&c.verify, "verify", false, "check IPv4 and UDP checksums of every packet")
		fs.DurationVar(&c.tx.duration, "duration", 0, "stop after this long (0: no limit)")
		fs.Uint64Var(&c.tx.count, "count", 0, "stop after this many packets (0: no limit)")
		fs.DurationVar(&c.idle, "idle", 0, "stop after this long without packets, once some arrived (0: never)")
		fs.IntVar(&c.tx.batch, "batch", gen.DefaultBatch, "packets per RX batch")
	case "run":
		genFlags(fs, &c.tx)
		fs.StringVar(&c.txIf, "tx-if", "", "sending interface")
		fs.IntVar(&c.txQueue, "tx-queue", 0, "sending queue")
		fs.StringVar(&c.txNetns, "tx-netns", "", "sending interface's network namespace")
		fs.StringVar(&c.rxIf, "rx-if", "", "receiving interface")
		fs.IntVar(&c.rxQueue, "rx-queue", 0, "receiving queue")
		fs.StringVar(&c.rxNetns, "rx-netns", "", "receiving interface's network namespace")
		fs.IntVar(&c.txCPU, "tx-cpu", -1, "pin the sending thread to this CPU (-1: don't)")
		fs.IntVar(&c.rxCPU, "rx-cpu", -1, "pin the receiving thread to this CPU (-1: don't)")
		fs.BoolVar(&c.verify, "verify", false, "check IPv4 and UDP checksums of every packet")
		fs.DurationVar(&c.idle, "idle", time.Second, "after the sender stops, wait this long for stragglers")
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return c, flag.ErrHelp
	default:
		return c, fmt.Errorf("unknown command %q: want tx, rx or run", c.cmd)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.check()
}

func (c *config) check() error {
	t := &c.tx
	if c.cmd != "rx" {
		if c.txIf == "" {
			return errors.New("missing the sending interface (-i or --tx-if)")
		}
		if c.cmd == "tx" && !t.dst.IsValid() {
			return errors.New("missing --dst")
		}
		if t.src.IsValid() && t.dst.IsValid() && t.src.Is4() != t.dst.Is4() {
			return fmt.Errorf("--src %v and --dst %v are of different families", t.src, t.dst)
		}
		if t.flows < 1 || t.flows > gen.MaxFlows {
			return fmt.Errorf("--flows %d: want 1..%d", t.flows, gen.MaxFlows)
		}
		if t.resolveTimeoutMs < 0 {
			return errors.New("--resolve-timeout must be ≥ 0")
		}
	}
	if c.cmd != "tx" {
		if c.rxIf == "" {
			return errors.New("missing the receiving interface (-i or --rx-if)")
		}
		if c.rxQueue < 0 {
			return errors.New("queue must be ≥ 0")
		}
	}
	if c.txQueue < 0 {
		return errors.New("queue must be ≥ 0")
	}
	if t.batch < 1 || t.batch > gen.MaxBatch {
		return fmt.Errorf("--batch %d: want 1..%d", t.batch, gen.MaxBatch)
	}
	if c.txCPU < -1 || c.rxCPU < -1 {
		return errors.New("--cpu: want a CPU number, or -1")
	}
	if t.duration < 0 || c.idle < 0 {
		return errors.New("durations must be ≥ 0")
	}
	return nil
}
