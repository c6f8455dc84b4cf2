package main

import (
	"fmt"
	"os"

	"github.com/xdpsec/xdpsec/internal/daemon"
)

// newKeys is how an operator tells the daemon that the outbound static
// keys it has no sequence-number state for were never used: `run`
// refuses such keys, since a key whose state was lost looks the same.
func newKeys(args []string) int {
	fs, file := configFlagSet("newkeys")
	cfg, status := parseAndLoad(fs, file, args)
	if cfg == nil {
		return status
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
