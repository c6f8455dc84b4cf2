package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

// runCluster is `xdpsec cluster move GROUP NODE`: the running daemon
// (any node of the cluster) has the group handed over to NODE.
func runCluster(args []string) int {
	if len(args) == 0 || args[0] != "move" {
		if len(args) > 0 && !isHelp(args[0]) {
			fmt.Fprintf(os.Stderr, "xdpsec cluster: unknown subcommand %q (want move)\n", args[0])
		}
		// Builds the flags (and prints the page) as runIKEAction does.
		fs, _ := controlFlagSet("cluster")
		if err := fs.Parse(args); err == nil {
			fs.Usage()
		}
		return 2
	}
	pos, rest := splitControlArgs(args[1:])
	fs, socketPath := controlFlagSet("cluster")
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if len(pos) != 2 || strings.Contains(pos[0], "/") || strings.Contains(pos[1], "/") {
		fmt.Fprintln(os.Stderr, "usage: xdpsec cluster move GROUP NODE [--socket PATH | -c FILE]")
		return 2
	}
	path, err := socketPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := control.Do(path, control.CommandClusterMove, pos[0]+"/"+pos[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdpsec cluster move: %v\n", err)
		return 1
	}
	fmt.Println(res)
	return 0
}

// splitControlArgs parts the arguments of a command that talks to the
// daemon into its operands and its flags (--socket PATH, -c FILE, and
// any other -flag), in any order.
func splitControlArgs(args []string) (pos, rest []string) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--socket" || a == "-socket" || a == "-c" || a == "--c":
			rest = append(rest, a)
			if i+1 < len(args) {
				rest = append(rest, args[i+1])
				i++
			}
		case strings.HasPrefix(a, "-"):
			rest = append(rest, a)
		default:
			pos = append(pos, a)
		}
	}
	return pos, rest
}

// age writes an age in seconds for people: "never" for -1, ms below a
// second.
func ageString(s float64) string {
	if s < 0 {
		return "never"
	}
	d := time.Duration(s * float64(time.Second))
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// forString writes how long a role has lasted: to the millisecond for
// the first seconds (a move just made), to the second after a minute.
func forString(d time.Duration) string {
	if d < time.Minute {
		return ageString(max(d, 0).Seconds())
	}
	return d.Round(time.Second).String()
}

// printCluster writes `show cluster`: the etcd members, then per group who
// is active and this node's part, the sequence-number reservations of the
// groups' outbound SAs, and what this node writes to and reads from etcd.
func printCluster(w io.Writer, s *control.Snapshot) {
	c := s.Cluster
	if c == nil {
		fmt.Fprintln(w, "no cluster (the configuration has no cluster: section)")
		return
	}
	fmt.Fprintf(w, "cluster %s, this node %s, etcd %s\n", c.Name, c.Node, c.Etcd)
	healthy := 0
	for _, m := range c.Members {
		if m.Healthy {
			healthy++
		}
	}
	checked := "never"
	if !c.MembersChecked.IsZero() {
		checked = ago(s.Now, c.MembersChecked) + " ago"
	}
	fmt.Fprintf(w, "\netcd members: %d, %d healthy (checked %s)\n", len(c.Members), healthy, checked)
	if c.MembersError != "" {
		fmt.Fprintf(w, "  member list failed: %s\n", c.MembersError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tHEALTH\tRAFT\tPEER URLS\tCLIENT URLS\tVERSION")
	for _, m := range c.Members {
		health, raft := "ok", "follower"
		if !m.Healthy {
			health, raft = "DOWN", "-"
		}
		if m.Leader {
			raft = "LEADER"
		}
		ver := m.Version
		if ver == "" {
			ver = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", m.Name, health, raft, strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ","), ver)
	}
	tw.Flush()
	for _, m := range c.Members {
		if !m.Healthy && m.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", m.Name, m.Error)
		}
	}

	fmt.Fprintf(w, "\ngroups:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  GROUP\tACTIVE ON\tTHIS NODE\tFOR\tLEASE LEFT\tPREF\tNODES (PREF)\tCHANGES\tOWNER SEEN")
	for _, g := range c.Groups {
		owner := g.Owner
		if owner == "" {
			owner = "?"
		}
		since, left, pref := "-", "-", "-"
		if !g.Since.IsZero() {
			since = forString(s.Now.Sub(g.Since))
		}
		if g.Role == "active" {
			left = ageString(g.LeaseLeft)
		}
		if g.Preference > 0 {
			pref = fmt.Sprint(g.Preference)
		}
		var nodes []string
		for _, n := range g.Nodes {
			nodes = append(nodes, fmt.Sprintf("%s:%d", n.Name, n.Preference))
		}
		seen := "-"
		if g.Role != "-" {
			seen = ageString(g.OwnerSeen) + " ago"
			if g.OwnerSeen < 0 {
				seen = "never"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", g.Name, owner, g.Role, since, left, pref, strings.Join(nodes, " "), g.Changes, seen)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nsequence reservations (outbound SAs; headroom = limit - seq):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  GROUP\tSA\tSPI\tSEQ\tLIMIT\tRESERVED IN ETCD\tHEADROOM\tLAST RESERVATION")
	for _, g := range c.Groups {
		for _, q := range g.Seq {
			last := "never"
			if q.ReservedAge >= 0 {
				last = ageString(q.ReservedAge) + " ago"
			}
			fmt.Fprintf(tw, "  %s\t%s\t0x%08x\t%d\t%d\t%d\t%d\t%s\n", g.Name, q.SA, q.SPI, q.Seq, q.Limit, q.Reserved, q.Headroom, last)
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\nreplication (this node's etcd writes: renew/seq/replay/record):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  GROUP\tREPLAY TOPS PUBLISHED\tETCD WRITES\tRECORDS FOLLOWED\tLAST RECORD")
	for _, g := range c.Groups {
		pub := "-"
		if g.Role == "active" {
			pub = ageString(g.ReplayPublished) + " ago"
			if g.ReplayPublished < 0 {
				pub = "never"
			}
		}
		last := "never"
		if g.FollowedAge >= 0 {
			last = ageString(g.FollowedAge) + " ago"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d/%d/%d\t%d\t%s\n", g.Name, pub, g.Writes["renew"], g.Writes["seq"], g.Writes["replay"], g.Writes["record"], g.Followed, last)
	}
	tw.Flush()
	fmt.Fprintf(w, "records refused: %d rejected (did not open), %d failed (not installed)\n", c.RecordsRejected, c.RecordsFailed)
	printClusterBGP(w, c)
}

// printClusterBGP prints the BGP speaker's sessions and routes (address_mode
// bgp), if it runs.
func printClusterBGP(w io.Writer, c *control.Cluster) {
	if c.BGP == nil {
		return
	}
	fmt.Fprintf(w, "\nbgp sessions:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NEIGHBOR\tAS\tSTATE")
	for _, s := range c.BGP {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", s.Neighbor, s.AS, s.State)
	}
	tw.Flush()
	routes := "none"
	if len(c.BGPRoutes) > 0 {
		routes = strings.Join(c.BGPRoutes, " ")
	}
	fmt.Fprintf(w, "announced: %s\n", routes)
}
