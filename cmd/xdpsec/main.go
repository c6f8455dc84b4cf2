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

// commands is filled by the init functions of the subcommand files.
var commands = map[string]command{}

func register(name, help string, run func([]string) int) {
	commands[name] = command{help: help, run: run}
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
