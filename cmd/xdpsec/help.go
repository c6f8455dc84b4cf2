package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/xdpsec/xdpsec/internal/config"
)

// A page is a subcommand's manual: `xdpsec CMD --help` prints it with the
// command's flags, and `xdpsec genman` writes xdpsec(8) from the same
// pages, so the two never disagree.
type page struct {
	synopsis string // after "xdpsec "
	text     string // what it does; paragraphs separated by blank lines
	example  string // shell lines, one command each
}

var pages = map[string]page{
	"run": {
		synopsis: "run [-c FILE] [--check | --cleanup]",
		text: "Run the gateway: load and pin the XDP programs on the LAN and WAN interfaces, open the AF_XDP sockets, " +
			"start the workers, the IKEv2 daemon, the control socket and the metrics endpoint. Logs go to stderr in log_format. " +
			"SIGINT and SIGTERM stop it; SIGHUP reloads the configuration as `xdpsec reload` does. Under systemd (Type=notify) it reports READY, RELOADING and STOPPING.\n\n" +
			"It needs root, or CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF, CAP_PERFMON, CAP_IPC_LOCK and (with IKE) CAP_NET_BIND_SERVICE " +
			"and its own pin_path, state_dir and control directories; a missing capability is named at start.\n\n" +
			"--check validates the configuration (errors give file:line: field) and exits; --cleanup removes what a killed daemon left attached.",
		example: "xdpsec run --check -c /etc/xdpsec/xdpsec.yaml\nxdpsec run -c /etc/xdpsec/xdpsec.yaml\nsystemctl start xdpsec",
	},
	"show": {
		synopsis: "show sa|policy|stats|ike|cluster [-o json] [--socket PATH | -c FILE]",
		text: "Ask the running daemon over its control socket for its SAs (with per-SA counters, as `show crypto ipsec sa`), its policies, " +
			"its worker, XDP and next-hop counters, its IKE SAs, or its cluster. Root, the daemon's user and the members of control_group may read.\n\n" +
			"`show cluster` lists the etcd members (health, raft leader, peer and client URLs), then per tunnel group the node it is active on, " +
			"this node's role (active, standby, fenced: etcd still names it but its lease ran out, so it sends nothing; - : not allowed), for how long, " +
			"the lease left, this node's preference and the allowed nodes', the changes of owner seen and when the owner's last renewal was seen; " +
			"per outbound SA of a group its sequence number, its limit, its high-water mark in etcd, the headroom (limit - seq) and the age of the " +
			"last reservation; per group the age of the last published replay-window tops, this node's etcd writes by kind (renew, seq, replay, " +
			"record) and the SA records it followed. The same is in -o json and in the xdpsec_cluster_* metrics.",
		example: "xdpsec show sa\nxdpsec show ike -o json --socket /run/xdpsec/xdpsec.sock\nxdpsec show cluster",
	},
	"cluster": {
		synopsis: "cluster move GROUP NODE [--socket PATH | -c FILE]",
		text: "Hand the tunnel group GROUP over to NODE gracefully, e.g. before maintenance: the active node stops sending for the group, " +
			"waits for its last batch, freezes the group's outbound sequence numbers and marks the group for NODE in etcd; NODE takes it at once " +
			"and resumes each SA above its reserved high-water mark (no sequence number twice, no two senders; the gap is a few etcd round trips, " +
			"about 15 ms on a LAN). It may be run on any node of the cluster: a node that is not the owner passes the request to the owner through etcd. " +
			"It prints the nodes and how long the move took, and refuses (exit 1) an unknown group or node, a node the group does not allow, and a node " +
			"that is not up. Root, the daemon's user and control_admin_group only.",
		example: "xdpsec cluster move site-a gw-b",
	},
	"initiate": {
		synopsis: "initiate NAME [--socket PATH | -c FILE]",
		text:     "Establish the IKE connection NAME and its children now. Root, the daemon's user and control_admin_group only.",
		example:  "xdpsec initiate site",
	},
	"terminate": {
		synopsis: "terminate NAME [--socket PATH | -c FILE]",
		text:     "Delete the IKE connection NAME's SAs (with a Delete to the peer); its policies stay and drop. Root, the daemon's user and control_admin_group only.",
		example:  "xdpsec terminate site",
	},
	"rekey": {
		synopsis: "rekey NAME [CHILD] [--socket PATH | -c FILE]",
		text:     "Rekey the connection's IKE SA now, or with CHILD that child's Child SAs (make-before-break). Root, the daemon's user and control_admin_group only.",
		example:  "xdpsec rekey site\nxdpsec rekey site net",
	},
	"reload": {
		synopsis: "reload [-c FILE | --socket PATH]",
		text: "Make the running daemon re-read its configuration file and apply the difference, as SIGHUP does: connections " +
			"(added ones follow their start_action, removed ones are deleted with a Delete to the peer, changed ones take the new " +
			"settings: proposals at the next rekey, traffic selectors, addresses or mode by setting the connection up again), " +
			"children, static SAs and policies, PSKs, certificates, the ike: flood limits, log_level and metrics. Tunnels whose " +
			"configuration did not change are not touched. It prints one line: what was added, removed, changed and left alone, " +
			"and how long it took.\n\n" +
			"The file is checked as `run --check` checks it; an invalid file, or a change only a restart can make (interfaces, " +
			"queues, xdp_mode, zerocopy, VLANs, pin_path, control, state_dir, nat_t_port...), changes " +
			"nothing and exits 1 with file:line: field; so does a new outbound static key without its sequence-number mark " +
			"(run `xdpsec newkeys` first). The daemon only re-reads the file it was started with. " +
			"Root, the daemon's user and control_admin_group only.",
		example: "xdpsec reload -c /etc/xdpsec/xdpsec.yaml\nxdpsec run --check -c /etc/xdpsec/xdpsec.yaml && systemctl reload xdpsec",
	},
	"newkeys": {
		synopsis: "newkeys [-c FILE]",
		text: "Declare the configuration's outbound static SA keys new (never used) in state_dir, once, before their first run: " +
			"`run` refuses a static key with no sequence-number mark, since a key whose state was lost looks the same.",
		example: "xdpsec newkeys -c /etc/xdpsec/xdpsec.yaml",
	},
	"doctor": {
		synopsis: "doctor [-c FILE] [-o json]",
		text: "Inspect the host as the configuration would use it and print, per check, ok, warn or fail with the command that fixes it: " +
			"bpffs, memlock, the kernel and its AF_XDP features, CPU AES features, each interface's driver, native XDP and zero-copy, " +
			"RX queues against queues, IRQ affinity against cpus, GRO/LRO and VLAN offloads, MTU against the ESP overhead, rp_filter and " +
			"forwarding, routes that would carry PROTECT traffic in clear while the daemon is down, and time sync. It changes nothing; " +
			"it exits 1 when a check fails.",
		example: "xdpsec doctor -c /etc/xdpsec/xdpsec.yaml\nxdpsec doctor -o json",
	},
	"selftest": {
		synopsis: "selftest [-packets N] [-suites LIST]",
		text: "Run two gateways' pipelines back to back in memory for each ESP suite, check every packet arrives intact, replay " +
			"and forge some, and print the counters. Needs no privileges and no network.",
		example: "xdpsec selftest -packets 5000",
	},
	"import": {
		synopsis: "import swanctl [-o FILE] [-psk-dir DIR] [-lan IF] [-wan IF] [-local-addr ADDR] FILE",
		text: "Convert a strongSwan swanctl.conf (includes and section references followed) into an xdpsec configuration: " +
			"connections, children, proposals, addresses, identities, traffic selectors, PSK (each key to NAME.psk, mode 0600, " +
			"read with psk_file; never into the YAML) or certificate authentication, rekey and life times (strongSwan's defaults " +
			"written out), DPD, start and close actions. Every setting xdpsec cannot carry over becomes a comment with its " +
			"swanctl.conf line and the reason; a connection that cannot work without one is written as a comment whole.\n\n" +
			"The result is checked as `run --check` checks it; a syntax error in swanctl.conf gives file:line and exit status 1.",
		example: "xdpsec import swanctl -o /etc/xdpsec/xdpsec.yaml -lan eth1 -wan eth0 /etc/swanctl/swanctl.conf",
	},
	"version": {
		synopsis: "version",
		text:     "Print the version, the source revision, the Go version and the platform.",
		example:  "xdpsec version",
	},
}

// helpOut is where a page goes: stderr after a usage error, stdout when
// the user asked for it (commandHelp).
var helpOut io.Writer = os.Stderr

// flagSets are the subcommands' flags, recorded when built: genman runs
// each command with --help and reads its flags from here.
var flagSets = map[string]*flag.FlagSet{}

// newFlagSet is the flag set every subcommand parses its flags with:
// -h and --help print the command's page; errors go to stderr.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { writeHelp(helpOut, name, fs) }
	flagSets[name] = fs
	return fs
}

// writeHelp prints the page of command name with the flags of fs.
func writeHelp(w io.Writer, name string, fs *flag.FlagSet) {
	p := pages[name]
	fmt.Fprintf(w, "usage: xdpsec %s\n\n%s\n", p.synopsis, p.text)
	if fs != nil {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			out := fs.Output()
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(out)
		}
	}
	fmt.Fprintf(w, "\nexample:\n")
	for _, l := range strings.Split(p.example, "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// isHelp: the argument asks for help.
func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

// commandHelp prints command name's page: the command itself builds its
// flags and prints it on --help (flag.ErrHelp), so --help exits 0.
func commandHelp(name string) int {
	helpOut = os.Stdout
	commands[name].run([]string{"--help"})
	return 0
}

// commandNames are the listed subcommands, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		if commands[n].help != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// configFlagSet is newFlagSet with the -c flag of the commands that read
// the configuration.
func configFlagSet(name string) (*flag.FlagSet, *string) {
	fs := newFlagSet(name)
	return fs, fs.String("c", "/etc/xdpsec/xdpsec.yaml", "configuration file")
}

// controlFlagSet is newFlagSet with the flags of the commands that talk
// to the daemon, and what finds its control socket from them (controlPath).
func controlFlagSet(name string) (*flag.FlagSet, func() (string, error)) {
	fs := newFlagSet(name)
	sock := fs.String("socket", "", "control socket of the daemon")
	file := fs.String("c", "", "configuration file naming the control socket")
	return fs, func() (string, error) { return controlPath(*sock, *file) }
}

// loadConfig loads the configuration file; on an error (which names
// file:line) it prints it and returns nil: exit status 1.
func loadConfig(file string) *config.Config {
	cfg, err := config.Check(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil
	}
	return cfg
}

// parseAndLoad parses args into fs and loads the configuration its -c
// (file) names. With nil it returns the exit status: 2 for bad flags or
// --help, 1 for a configuration that does not load.
func parseAndLoad(fs *flag.FlagSet, file *string, args []string) (*config.Config, int) {
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	cfg := loadConfig(*file)
	if cfg == nil {
		return nil, 1
	}
	return cfg, 0
}
