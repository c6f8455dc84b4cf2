package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/control"
)

func runShow(args []string) int {
	fs, socketPath := controlFlagSet("show")
	out := fs.String("o", "text", "output: text or json")
	// The object may come before or after the flags.
	var what string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		what, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if what == "" && fs.NArg() > 0 {
		what = fs.Arg(0)
	}
	switch what {
	case "sa", "sas", "policy", "policies", "stats", "ike", "cluster":
	default:
		fs.Usage()
		return 2
	}
	if *out != "text" && *out != "json" {
		fmt.Fprintln(os.Stderr, "xdpsec show: -o is text or json")
		return 2
	}
	path, err := socketPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := control.Query(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdpsec show:", err)
		return 1
	}
	if *out == "json" {
		var v any = s
		switch what {
		case "sa", "sas":
			v = s.SAs
		case "policy", "policies":
			v = s.Policies
		case "ike":
			v = s.IKE
			if s.IKE == nil {
				v = []control.IKESA{}
			}
		case "cluster":
			v = s.Cluster // null without a cluster
		case "stats":
			v = struct {
				Workers      []control.Worker             `json:"workers"`
				XDP          map[string]map[string]uint64 `json:"xdp"`
				XSK          []control.XSK                `json:"xsk"`
				NextHops     map[string]map[string]uint64 `json:"next_hops,omitempty"`
				IKE          map[string]uint64            `json:"ike,omitempty"`
				IKEFragments map[string]uint64            `json:"ike_fragments,omitempty"`
				Acquires     map[string]uint64            `json:"acquires,omitempty"`
				WANMTU       int                          `json:"wan_mtu,omitempty"`
				PMTU         map[string]uint64            `json:"pmtu,omitempty"`
			}{s.Workers, s.XDP, s.XSK, s.NextHops, s.IKEStats, s.IKEFragments, s.Acquires, s.WANMTU, s.PMTU}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return 1
		}
		return 0
	}
	switch what {
	case "sa", "sas":
		printSAs(os.Stdout, s)
	case "policy", "policies":
		printPolicies(os.Stdout, s)
	case "stats":
		printStats(os.Stdout, s)
	case "ike":
		printIKE(os.Stdout, s)
	case "cluster":
		printCluster(os.Stdout, s)
	}
	return 0
}

// controlPath is the daemon's socket: given, named by a configuration, or
// the default.
func controlPath(sock, file string) (string, error) {
	if sock != "" {
		return sock, nil
	}
	if file == "" {
		return config.DefaultControl, nil
	}
	cfg, err := config.Load(file)
	if err != nil {
		return "", err
	}
	cfg.Wipe()
	return cfg.Control, nil
}

// printSAs writes the SAs the way `show crypto ipsec sa` does: the
// endpoints, then per SA its counters and each drop cause by name.
func printSAs(w io.Writer, s *control.Snapshot) {
	fmt.Fprintf(w, "xdpsec pid %d, config %s, up %v\n", s.PID, s.Config, s.Now.Sub(s.Started).Round(time.Second))
	for _, ifc := range s.Interfaces {
		fmt.Fprintf(w, "interface: %s (ifindex %d), xdp %s %s\n", ifc.Name, ifc.Ifindex, ifc.Role, ifc.XDPMode)
	}
	for _, sa := range s.SAs {
		fmt.Fprintf(w, "\n  sa %s: spi 0x%08X (%d), %s, %s, %s\n", sa.Name, sa.SPI, sa.SPI, dirLong(sa.Dir), sa.Mode, sa.Suite)
		encap := "ESP"
		if sa.UDPDst != 0 {
			encap = fmt.Sprintf("ESP-in-UDP %d->%d", sa.UDPSrc, sa.UDPDst)
		}
		fmt.Fprintf(w, "    local crypto endpt.: %s, remote crypto endpt.: %s, %s\n", sa.Local, sa.Remote, encap)
		for _, sel := range sa.Selectors {
			fmt.Fprintf(w, "    selector: %s\n", sel)
		}
		if len(sa.Selectors) == 0 {
			fmt.Fprintf(w, "    selector: any\n")
		}
		state := "active"
		if !sa.Usable {
			state = "expired"
		} else if sa.NeedsRekey {
			state = "active, rekey due"
		}
		esn := "no"
		if sa.ESN {
			esn = "yes"
		}
		fmt.Fprintf(w, "    status: %s, esn: %s, created %s\n", state, esn, sa.Created.Format(time.RFC3339))
		if sa.Dir == "out" {
			fmt.Fprintf(w, "    #pkts encaps: %d, #pkts encrypt: %d, #bytes: %d, seq: %d\n", sa.Packets, sa.Packets, sa.Bytes, sa.Seq)
			if sa.PathMTU > 0 {
				fmt.Fprintf(w, "    path mtu %d (learned from ICMP)\n", sa.PathMTU)
			}
		} else {
			fmt.Fprintf(w, "    #pkts decaps: %d, #pkts decrypt: %d, #pkts verify: %d, #bytes: %d\n", sa.Packets, sa.Packets, sa.Packets, sa.Bytes)
			if sa.ReplayWin > 0 {
				fmt.Fprintf(w, "    replay window: %d, top: %d\n", sa.ReplayWin, sa.ReplayTop)
			} else {
				fmt.Fprintf(w, "    replay window: off\n")
			}
		}
		var total uint64
		for _, n := range sa.Drops {
			total += n
		}
		fmt.Fprintf(w, "    #pkts dropped: %d\n", total)
		for _, r := range sortedKeys(sa.Drops) {
			fmt.Fprintf(w, "      %-18s %d\n", r+":", sa.Drops[r])
		}
	}
}

func dirLong(d string) string {
	if d == "in" {
		return "inbound"
	}
	return "outbound"
}

func printPolicies(w io.Writer, s *control.Snapshot) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tNAME\tSELECTOR\tACTION\tSA")
	for i, p := range s.Policies {
		sa := "-"
		if p.SA != "" {
			sa = fmt.Sprintf("%s (0x%08x)", p.SA, p.SPI)
		}
		action := p.Action
		if p.Trap {
			action += " (trap)" // negotiates on traffic while it has no SA
		}
		if p.Dir != "" {
			action += " (" + p.Dir + " only)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i, p.Name, p.Selector, action, sa)
	}
	tw.Flush()
}

func printStats(w io.Writer, s *control.Snapshot) {
	printQueues(w, s)
	for _, wk := range s.Workers {
		cpu := "any"
		if wk.CPU >= 0 {
			cpu = fmt.Sprint(wk.CPU)
		}
		fmt.Fprintf(w, "worker %d (queue %d, cpu %s)\n", wk.ID, wk.Queue, cpu)
		printMap(w, "  ", wk.Counters)
		if len(wk.Drops) > 0 {
			fmt.Fprintf(w, "  drops:\n")
			printMap(w, "    ", wk.Drops)
		}
	}
	for _, prog := range sortedKeys(s.XDP) {
		fmt.Fprintf(w, "xdp %s\n", prog)
		printMap(w, "  ", s.XDP[prog])
	}
	for _, x := range s.XSK {
		fmt.Fprintf(w, "xsk %s queue %d (zero-copy %v)\n", x.Interface, x.Queue, x.ZeroCopy)
		printMap(w, "  ", x.Counters)
	}
	for _, ifc := range sortedKeys(s.NextHops) {
		fmt.Fprintf(w, "next hops %s\n", ifc)
		printMap(w, "  ", s.NextHops[ifc])
	}
	if len(s.IKEStats) > 0 {
		fmt.Fprintf(w, "ike\n")
		printMap(w, "  ", s.IKEStats)
	}
	if len(s.Acquires) > 0 {
		fmt.Fprintf(w, "acquires\n")
		printMap(w, "  ", s.Acquires)
	}
	if len(s.IKEFragments) > 0 {
		fmt.Fprintf(w, "ike fragments\n")
		printMap(w, "  ", s.IKEFragments)
	}
	if s.WANMTU > 0 {
		fmt.Fprintf(w, "wan mtu %d; ICMP too-big reports about our ESP\n", s.WANMTU)
		printMap(w, "  ", s.PMTU)
	}
}

// printQueues is the spread over the receive queues: packets received per
// queue and interface, so an operator sees whether RSS spreads the load.
func printQueues(w io.Writer, s *control.Snapshot) {
	if len(s.XSK) == 0 {
		return
	}
	var ifcs []string
	rx := map[int]map[string]uint64{}
	for _, x := range s.XSK {
		if !slices.Contains(ifcs, x.Interface) {
			ifcs = append(ifcs, x.Interface)
		}
		if rx[x.Queue] == nil {
			rx[x.Queue] = map[string]uint64{}
		}
		rx[x.Queue][x.Interface] = x.Counters["rx_packets"]
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "queue\tcpu")
	for _, ifc := range ifcs {
		fmt.Fprintf(tw, "\t%s rx", ifc)
	}
	fmt.Fprintln(tw)
	for _, wk := range s.Workers {
		cpu := "any"
		if wk.CPU >= 0 {
			cpu = fmt.Sprint(wk.CPU)
		}
		fmt.Fprintf(tw, "%d\t%s", wk.Queue, cpu)
		for _, ifc := range ifcs {
			fmt.Fprintf(tw, "\t%d", rx[wk.Queue][ifc])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func printMap(w io.Writer, indent string, m map[string]uint64) {
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(w, "%s%-26s %d\n", indent, k+":", m[k])
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
