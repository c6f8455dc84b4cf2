package main

import (
	"fmt"
	"os"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/daemon"
)

func init() {
	register("newkeys", "declare the configuration's static SA keys new (never used) in state_dir, once, before the first run", newKeys)
}

// newKeys is how an operator tells the daemon that the outbound static
// keys it has no sequence-number state for were never used: `run`
// refuses such keys, since a key whose state was lost looks the same.
func newKeys(args []string) int {
	fs := newFlagSet("newkeys")
	file := fs.String("c", "/etc/xdpsec/xdpsec.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cfg.Wipe()
	declared, known, err := daemon.DeclareNewKeys(cfg)
	for _, n := range declared {
		fmt.Printf("declared new: %s\n", n)
	}
	for _, n := range known {
		fmt.Printf("already known, left as it is: %s\n", n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdpsec newkeys:", err)
		return 1
	}
	if len(declared)+len(known) == 0 {
		fmt.Println("no outbound static SAs: nothing to declare")
	}
	return 0
}
