package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/xdpsec/xdpsec/internal/control"
)

// runReload is `xdpsec reload [-c FILE | --socket PATH]`: the daemon
// re-reads its configuration file and applies the difference (as SIGHUP
// does); the answer says what changed. With -c the file is checked here
// first, by the same validation the daemon and `run --check` use, so an
// error names file:line: field without a round trip.
func runReload(args []string) int {
	fs, socketPath := controlFlagSet("reload")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	path, err := socketPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdpsec reload: nothing changed:", err)
		return 1
	}
	var file string
	if f := fs.Lookup("c").Value.String(); f != "" {
		if file, err = filepath.Abs(f); err != nil {
			fmt.Fprintln(os.Stderr, "xdpsec reload:", err)
			return 1
		}
	}
	res, err := control.Do(path, control.CommandReload, file)
	if res != "" {
		fmt.Println(res)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdpsec reload: %v\n", err)
		return 1
	}
	return 0
}
