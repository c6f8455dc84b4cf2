// Command xdpsec is the IPsec gateway: one binary whose subcommands run
// the daemon and talk to it. This file only dispatches; each subcommand
// lives in its own file and wires packages together.
package main

import (
	"fmt"
	"os"
)

// A command is one subcommand: its one-line help and its entry point,
// which gets the arguments after the subcommand's name and returns the
// process exit code.
type command struct {
	help string
	run  func(args []string) int
}

// commands are all the subcommands, in one table; a command with no help
// line (genman, which `make man` runs) is not listed. The table is built
// in init: genman and the help read it, which a variable's initializer
// could not refer to.
var commands map[string]command

func init() {
	commands = map[string]command{
		"run":       {"run the gateway daemon (-c FILE; --check validates only)", runDaemon},
		"show":      {"show sa|policy|stats|ike|cluster of the running daemon [-o json] [--socket PATH | -c FILE]", runShow},
		"cluster":   {"hand a tunnel group to another node: cluster move GROUP NODE [--socket PATH | -c FILE]", runCluster},
		"initiate":  {"establish an IKE connection: initiate NAME [--socket PATH | -c FILE]", runInitiate},
		"terminate": {"delete an IKE connection's SAs: terminate NAME [--socket PATH | -c FILE]", runTerminate},
		"reload":    {"re-read the configuration and apply the difference: reload [-c FILE | --socket PATH] (as SIGHUP)", runReload},
		"rekey":     {"rekey now: rekey NAME [CHILD] [--socket PATH | -c FILE] (the IKE SA, or the child's Child SAs)", runRekey},
		"newkeys":   {"declare the configuration's static SA keys new (never used) in state_dir, once, before the first run", newKeys},
		"doctor":    {"inspect the host as the configuration would use it (changes nothing)", runDoctor},
		"selftest":  {"run two in-memory gateways over sample traffic and print their counters", runSelftest},
		"import":    {"convert a strongSwan swanctl.conf into an xdpsec configuration", runImport},
		"version":   {"print the version", runVersion},
		"genman":    {"", runGenman},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: xdpsec <command> [flags]   (xdpsec <command> --help: its flags and an example)\n\ncommands:\n")
	for _, n := range commandNames() {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].help)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "xdpsec: unknown command %q\n", name)
		usage()
		os.Exit(2)
	}
	for _, a := range os.Args[2:] {
		if isHelp(a) {
			os.Exit(commandHelp(name))
		}
	}
	os.Exit(c.run(os.Args[2:]))
}
