package main

import (
	"fmt"
	"os"
	"time"

	"github.com/xdpsec/xdpsec/internal/selftest"
)

func runSelftest(args []string) int {
	fs := newFlagSet("selftest")
	packets := fs.Int("packets", 20000, "packets per suite and direction")
	suites := fs.String("suites", "aes128gcm16,aes256gcm16,chacha20poly1305,aes128-sha256", "ESP suites to run, comma-separated")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rep, err := selftest.Run(selftest.Options{Packets: *packets, Suites: *suites, Out: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdpsec selftest:", err)
		return 1
	}
	fmt.Printf("selftest passed: %d packets through %d suites in %v\n", rep.Packets, rep.Suites, rep.Elapsed.Round(time.Millisecond))
	return 0
}
