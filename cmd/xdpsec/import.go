package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/swanctl"
)

// runImport is `xdpsec import swanctl FILE`: the YAML goes to stdout or
// -o, each pre-shared key to its own file (never into the YAML), and the
// result is checked with the same validation as `run --check`.
func runImport(args []string) int {
	fs := newFlagSet("import")
	out := fs.String("o", "", "write the configuration to this file (default: stdout)")
	pskDir := fs.String("psk-dir", "", "write pre-shared keys to NAME.psk here, mode 0600 (default: -o's directory; with stdout and none, psk_env is used)")
	lan := fs.String("lan", "", "the LAN (protected) interface to write (default lan0, with a comment)")
	wan := fs.String("wan", "", "the WAN interface to write (default wan0, with a comment)")
	localAddr := fs.String("local-addr", "", "local_addr of connections whose local_addrs give no address (%any)")
	if len(args) > 0 && args[0] == "swanctl" {
		args = args[1:]
	} else if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		fmt.Fprintf(os.Stderr, "xdpsec import: unknown format %q (only swanctl)\n", args[0])
		return 2
	}
	// Flags may follow the file name.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) != 1 {
		fmt.Fprintln(os.Stderr, "usage: xdpsec import swanctl [flags] FILE")
		return 2
	}
	root, err := swanctl.ParseFile(files[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdpsec import:", err)
		return 1
	}
	opt := swanctl.Options{LAN: *lan, WAN: *wan, LocalAddr: *localAddr}
	dir := *pskDir
	if dir == "" && *out != "" {
		dir = filepath.Dir(*out)
	}
	if dir != "" {
		opt.PSKFiles = true
		if *pskDir != "" {
			abs, err := filepath.Abs(dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, "xdpsec import:", err)
				return 1
			}
			opt.PSKPrefix = abs + string(filepath.Separator)
		}
	}
	res, err := convert(root, opt, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdpsec import:", err)
		return 1
	}
	defer wipeSecrets(res)
	check := *out
	if *out != "" {
		if err := os.WriteFile(*out, res.YAML, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "xdpsec import:", err)
			return 1
		}
	} else {
		os.Stdout.Write(res.YAML)
		// Check a copy that reads its PSKs from files, in a private
		// directory, so that stdout's psk_env needs no environment.
		tmp, err := os.MkdirTemp("", "xdpsec-import-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdpsec import:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		opt.PSKFiles, opt.PSKPrefix = true, ""
		cres, err := convert(root, opt, tmp)
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdpsec import:", err)
			return 1
		}
		defer wipeSecrets(cres)
		check = filepath.Join(tmp, "xdpsec.yaml")
		if err := os.WriteFile(check, cres.YAML, 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "xdpsec import:", err)
			return 1
		}
		for _, e := range res.Env {
			name, from, _ := strings.Cut(e, "=")
			fmt.Fprintf(os.Stderr, "xdpsec import: PSKs are not written to stdout: set %s to the secret of %s (or give -psk-dir or -o)\n", name, from)
		}
	}
	fmt.Fprintf(os.Stderr, "xdpsec import: %d connections converted, %d written as comments; %d settings not carried over (comments)\n",
		res.Connections, res.Skipped, res.Dropped)
	cfg, err := config.Load(check)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdpsec import: the result does not pass xdpsec's validation; edit it, then `xdpsec run --check`:\n%v\n", err)
		return 1
	}
	cfg.Wipe()
	return 0
}

// convert converts the swanctl.conf root and writes each pre-shared key
// of the result to its file in dir; the caller wipes the result's secrets.
func convert(root *swanctl.Section, opt swanctl.Options, dir string) (*swanctl.Result, error) {
	res, err := swanctl.Convert(root, opt)
	if err != nil {
		return nil, err
	}
	for _, s := range res.Secrets {
		if err := writeSecret(filepath.Join(dir, s.Name), s.Data); err != nil {
			wipeSecrets(res)
			return nil, err
		}
	}
	return res, nil
}

func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func wipeSecrets(r *swanctl.Result) {
	for _, s := range r.Secrets {
		clear(s.Data)
	}
}
