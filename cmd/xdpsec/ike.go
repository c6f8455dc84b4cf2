package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/internal/control"
)

func runInitiate(args []string) int { return runIKEAction("initiate", control.CommandInitiate, args) }

func runTerminate(args []string) int {
	return runIKEAction("terminate", control.CommandTerminate, args)
}

// runRekey is `xdpsec rekey CONNECTION [CHILD]`: without CHILD the
// connection's IKE SAs are rekeyed (their Child SAs move to the new ones),
// with it that child's Child SAs.
func runRekey(args []string) int {
	pos, rest := splitControlArgs(args)
	switch len(pos) {
	case 1:
	case 2:
		pos = []string{pos[0] + "/" + pos[1]}
	case 0:
		return runIKEAction("rekey", control.CommandRekey, rest) // prints the usage
	default:
		fmt.Fprintln(os.Stderr, "usage: xdpsec rekey NAME [CHILD] [--socket PATH | -c FILE]")
		return 2
	}
	return runIKEAction("rekey", control.CommandRekey, append(pos, rest...))
}

func runIKEAction(name, command string, args []string) int {
	fs, socketPath := controlFlagSet(name)
	// The connection may come before or after the flags.
	var conn string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		conn, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if conn == "" && fs.NArg() == 1 {
		conn = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if conn == "" {
		fs.Usage()
		return 2
	}
	path, err := socketPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := control.Do(path, command, conn)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdpsec %s: %v\n", name, err)
		return 1
	}
	fmt.Println(res)
	return 0
}

// printIKE writes the IKE SAs the way `swanctl --list-sas` does: one block
// per IKE SA with its endpoints, identities, SPIs and proposal, then its
// Child SAs with their SPIs, mode, proposal and selectors.
func printIKE(w io.Writer, s *control.Snapshot) {
	defer printIKEStats(w, s.IKEStats)
	if len(s.IKE) == 0 {
		fmt.Fprintln(w, "no IKE SAs")
		return
	}
	for i, sa := range s.IKE {
		if i > 0 {
			fmt.Fprintln(w)
		}
		mi, mr := "", ""
		if sa.Initiator {
			mi = "*"
		} else {
			mr = "*"
		}
		fmt.Fprintf(w, "%s: %s, IKEv2, %s_i%s %s_r%s\n", sa.Connection, sa.State, sa.SPIi, mi, sa.SPIr, mr)
		fmt.Fprintf(w, "  local  '%s' @ %s\n", sa.LocalID, bracketPort(sa.Local))
		fmt.Fprintf(w, "  remote '%s' @ %s\n", sa.RemoteID, bracketPort(sa.Remote))
		if sa.Proposal != "" {
			fmt.Fprintf(w, "  %s\n", sa.Proposal)
		}
		if sa.NATT {
			fmt.Fprintf(w, "  NAT-T: UDP encapsulation on the NAT-T port\n")
		}
		if !sa.Established.IsZero() {
			fmt.Fprintf(w, "  established %s ago\n", ago(s.Now, sa.Established))
		}
		for _, c := range sa.Children {
			mode := strings.ToUpper(c.Mode)
			if c.UDPEncap {
				mode += "-in-UDP"
			}
			fmt.Fprintf(w, "  %s: reqid %d, %s, %s, ESP:%s\n", c.Name, c.ReqID, c.State, mode, c.Proposal)
			if !c.Installed.IsZero() {
				fmt.Fprintf(w, "    installed %s ago\n", ago(s.Now, c.Installed))
			}
			fmt.Fprintf(w, "    in  %08x\n", c.SPIIn)
			fmt.Fprintf(w, "    out %08x\n", c.SPIOut)
			fmt.Fprintf(w, "    local  %s\n", strings.Join(c.LocalTS, " "))
			fmt.Fprintf(w, "    remote %s\n", strings.Join(c.RemoteTS, " "))
		}
	}
}

// bracketPort writes addr:port as swanctl does, addr[port].
func bracketPort(ap string) string {
	i := strings.LastIndex(ap, ":")
	if i < 0 {
		return ap
	}
	return strings.Trim(ap[:i], "[]") + "[" + ap[i+1:] + "]"
}

func ago(now, t time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

// printIKEStats ends `show ike` with the responder's load figures, the
// way `swanctl --stats` sums up half-open SAs.
func printIKEStats(w io.Writer, st map[string]uint64) {
	if len(st) == 0 {
		return
	}
	fmt.Fprintf(w, "\nhalf-open IKE SAs: %d (peak %d); IKE_SA_INIT requests: %d\n", st["half_open"], st["half_open_peak"], st["init_requests"])
	fmt.Fprintf(w, "  cookies: %d sent (%d to sources over their limit), %d valid, %d invalid; our cookie retries: %d\n", st["cookies_sent"], st["limit_cookies"], st["cookies_valid"], st["cookies_invalid"], st["cookie_retries"])
	fmt.Fprintf(w, "  dropped: %d rate-limited, %d half-open cap, %d unknown peer, %d malformed, %d engine busy (%d before admission); %d half-open expired\n",
		st["rate_limited"], st["half_open_dropped"], st["unknown_peer"], st["init_malformed"], st["queue_dropped"], st["transport_dropped"], st["half_open_expired"])
	fmt.Fprintf(w, "  sources at their half-open share: %d; authenticated messages from a new address not followed (no NAT): %d\n", st["prefix_full"], st["address_ignored"])
}
