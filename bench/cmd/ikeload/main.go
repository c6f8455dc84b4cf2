// Command ikeload is an IKEv2 load generator: it performs N IKE_SA_INIT +
// IKE_AUTH setups (each with one Child SA, PSK authentication) against a
// responder with at most C in flight and reports setups per second, latency
// percentiles, retransmissions and failures by cause. "ikeload serve" runs
// the xdpsec responder the benchmark measures. See package bench/ikeload.
//
//	ikeload -target 198.18.0.1 -n 2000 -c 32 -psk-file psk.txt [-o json]
//	ikeload serve -listen 198.18.0.1 -psk-file psk.txt
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xdpsec/xdpsec/bench/ikeload"
	"github.com/xdpsec/xdpsec/ike"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		err = serve(os.Args[2:], os.Stdout)
	} else {
		err = generate(os.Args[1:], os.Stdout)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ikeload:", err)
		}
		os.Exit(1)
	}
}

// readPSK reads the key from a file (trailing newline dropped) or, when
// the file is empty, from $IKELOAD_PSK.
func readPSK(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("psk: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("psk: %s is empty", file)
		}
		return b, nil
	}
	if v := os.Getenv("IKELOAD_PSK"); v != "" {
		return []byte(v), nil
	}
	return nil, errors.New("psk: give -psk-file or set IKELOAD_PSK")
}

func generate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ikeload", flag.ContinueOnError)
	target := fs.String("target", "", "responder address")
	port := fs.Uint("port", 500, "responder IKE port")
	nattPort := fs.Uint("natt-port", 4500, "responder NAT-T port")
	n := fs.Int("n", 1000, "setups in all")
	c := fs.Int("c", 32, "setups in flight at most")
	pskFile := fs.String("psk-file", "", "file holding the pre-shared key (else $IKELOAD_PSK)")
	proposal := fs.String("proposal", ikeload.DefaultIKEProposal, "IKE proposal, strongSwan syntax, one DH group")
	esp := fs.String("esp", ikeload.DefaultESPProposal, "ESP proposal, strongSwan syntax")
	local := fs.String("local", "", "fixed source address (setups differ by IKE SPI)")
	localRange := fs.String("local-range", "", "prefix to take source addresses from, e.g. 198.18.128.0/17 (needs a route back)")
	sources := fs.Int("sources", 16, "with -local-range: how many source addresses")
	id := fs.String("id", "load-%d.ikeload.test", "initiator identity; %d becomes the setup index (one shared identity without it)")
	remoteID := fs.String("remote-id", "", "responder identity to send as IDr (none by default)")
	tsi := fs.String("tsi", "100.64.0.0/10", "pool of initiator traffic selectors, one host per setup")
	tsr := fs.String("tsr", "0.0.0.0/0", "responder traffic selector proposed")
	rtTimeout := fs.Duration("retransmit-timeout", time.Second, "first retransmission after")
	rtBase := fs.Float64("retransmit-base", 2, "back-off base")
	rtTries := fs.Int("retransmit-tries", 3, "retransmissions before a setup fails")
	keReuse := fs.Int("ke-reuse", 1, "setups per Diffie-Hellman private value (RFC 7296 §2.12)")
	timeout := fs.Duration("timeout", 0, "stop starting setups after this long (0: none)")
	out := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	addr, err := netip.ParseAddr(*target)
	if err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	if *port == 0 || *port > 65535 || *nattPort == 0 || *nattPort > 65535 {
		return errors.New("-port and -natt-port must be 1-65535")
	}
	psk, err := readPSK(*pskFile)
	if err != nil {
		return err
	}
	cfg := ikeload.Config{
		Target: netip.AddrPortFrom(addr, uint16(*port)), NATTPort: uint16(*nattPort),
		N: *n, C: *c, PSK: psk, IKEProposal: *proposal, ESPProposal: *esp,
		LocalID: *id, RemoteID: *remoteID,
		Retransmit: ike.Retransmit{Timeout: *rtTimeout, Base: *rtBase, Tries: *rtTries},
		KEReuse:    *keReuse,
	}
	if cfg.TSi, err = netip.ParsePrefix(*tsi); err != nil {
		return fmt.Errorf("-tsi: %w", err)
	}
	if cfg.TSr, err = netip.ParsePrefix(*tsr); err != nil {
		return fmt.Errorf("-tsr: %w", err)
	}
	switch {
	case *local != "" && *localRange != "":
		return errors.New("-local and -local-range exclude each other")
	case *local != "":
		a, err := netip.ParseAddr(*local)
		if err != nil {
			return fmt.Errorf("-local: %w", err)
		}
		cfg.Sources = []netip.Addr{a}
	case *localRange != "":
		p, err := netip.ParsePrefix(*localRange)
		if err != nil {
			return fmt.Errorf("-local-range: %w", err)
		}
		if cfg.Sources, err = ikeload.SourcesFromPrefix(p, *sources); err != nil {
			return err
		}
	}
	if *out != "text" && *out != "json" {
		return fmt.Errorf("-o %q: want text or json", *out)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	rep, err := ikeload.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *out == "json" {
		return rep.WriteJSON(stdout)
	}
	return rep.WriteText(stdout)
}

// serveStats is what "serve" prints, one JSON line, on SIGUSR1 and at exit.
type serveStats struct {
	IKESAs      int   `json:"ike_sas"`
	ChildIn     int   `json:"child_sas_in"`
	ChildOut    int   `json:"child_sas_out"`
	HalfOpen    int   `json:"half_open"`
	RSSKiB      int64 `json:"rss_kib"`
	RSSAfterGCK int64 `json:"rss_after_gc_kib"`
}

// rssKiB reads VmRSS of this process.
func rssKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func serve(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ikeload serve", flag.ContinueOnError)
	listen := fs.String("listen", "", "address to listen on (a specific one)")
	port := fs.Uint("port", 500, "IKE port")
	nattPort := fs.Uint("natt-port", 4500, "NAT-T port")
	pskFile := fs.String("psk-file", "", "file holding the pre-shared key (else $IKELOAD_PSK)")
	id := fs.String("id", "responder.ikeload.test", "responder identity")
	proposal := fs.String("proposal", ikeload.DefaultIKEProposal, "IKE proposals")
	esp := fs.String("esp", ikeload.DefaultESPProposal, "ESP proposals")
	localTS := fs.String("local-ts", "0.0.0.0/0", "local traffic selector")
	remoteTS := fs.String("remote-ts", "100.64.0.0/10", "remote traffic selector (the generator's -tsi pool)")
	halfOpen := fs.Int("half-open", 1<<20, "half-open IKE SA limit (ike.Config.HalfOpenLimit)")
	verbose := fs.Bool("v", false, "log every IKE SA (info level)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(*listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	if *port > 65535 || *nattPort > 65535 {
		return errors.New("-port and -natt-port must be 0-65535")
	}
	psk, err := readPSK(*pskFile)
	if err != nil {
		return err
	}
	cfg := ikeload.ServeConfig{Addr: addr, IKEPort: uint16(*port), NATTPort: uint16(*nattPort), PSK: psk,
		LocalID: *id, IKEProposals: *proposal, ESPProposals: *esp, HalfOpenLimit: *halfOpen}
	if cfg.LocalTS, err = netip.ParsePrefix(*localTS); err != nil {
		return fmt.Errorf("-local-ts: %w", err)
	}
	if cfg.RemoteTS, err = netip.ParsePrefix(*remoteTS); err != nil {
		return fmt.Errorf("-remote-ts: %w", err)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := ikeload.ServeXdpsec(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ip, np := srv.Ports()
	fmt.Fprintf(stdout, "{\"ready\":true,\"ike_port\":%d,\"natt_port\":%d,\"pid\":%d}\n", ip, np, os.Getpid())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGINT, syscall.SIGTERM)
	enc := json.NewEncoder(stdout)
	for sig := range sigs {
		st := serveStats{RSSKiB: rssKiB(), HalfOpen: srv.Engine.HalfOpen()}
		st.ChildIn, st.ChildOut = srv.Installer.Counts()
		st.IKESAs = len(srv.Engine.List())
		// RSS after returning freed heap to the OS shows what the SAs
		// hold, without the garbage the set-up left behind.
		debug.FreeOSMemory()
		st.RSSAfterGCK = rssKiB()
		if err := enc.Encode(st); err != nil {
			return err
		}
		if sig != syscall.SIGUSR1 {
			return nil
		}
	}
	return nil
}
