// Command xdpsec is the IPsec gateway: one binary whose subcommands run
// the daemon and talk to it. This file only dispatches; each subcommand
// lives in its own file and wires packages together.
package main

import (
	"fmt"
	"os"
	"sort"
)

// A command is one subcommand: its one-line help and its entry point,
// which gets the arguments after the subcommand's name and returns the
// process exit code.
type command struct {
	help string
	run  func(args []string) int
}

// commands is filled by the init functions of the subcommand files.
var commands = map[string]command{}

func register(name, help string, run func([]string) int) {
	commands[name] = command{help: help, run: run}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: xdpsec <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
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
	os.Exit(c.run(os.Args[2:]))
}
