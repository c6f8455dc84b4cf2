package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	systemd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/xdpsec/xdpsec/internal/config"
	"github.com/xdpsec/xdpsec/internal/daemon"
)

func runDaemon(args []string) int {
	fs, file := configFlagSet("run")
	check := fs.Bool("check", false, "validate the configuration and exit")
	cleanup := fs.Bool("cleanup", false, "detach and unpin what a crashed daemon left for this configuration, and exit")
	bench := fs.Bool("bench", false, "allow the bench-only keys (bench_null_cipher: the lab's ceiling); never in production")
	cfg, status := parseAndLoad(fs, file, args)
	if cfg == nil {
		return status
	}
	cfg.BenchAllowed = *bench
	if err := cfg.CheckBench(); err != nil {
		cfg.Wipe()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if *check {
		defer cfg.Wipe()
		for _, w := range cfg.Warnings {
			fmt.Fprintln(os.Stderr, "warning:", w)
		}
		if cfg.Witness() {
			fmt.Printf("%s: ok (witness: etcd member %s of cluster %s, nothing else)\n", *file, cfg.Cluster.Node, cfg.Cluster.Name)
			return 0
		}
		mode := "two-arm"
		if cfg.OneArm() {
			mode = "one-arm"
		}
		queues := fmt.Sprint(cfg.Queues)
		if cfg.Queues == config.QueuesAuto {
			queues = "auto"
		}
		fmt.Printf("%s: ok (%s, lan %s, wan %s, %s queues, %d SAs, %d policies, %d connections)\n",
			*file, mode, cfg.LAN, cfg.WAN, queues, len(cfg.SAs), len(cfg.Policies), len(cfg.IKE.Connections))
		return 0
	}
	if *cleanup {
		cfg.Wipe()
		if err := daemon.Cleanup(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "xdpsec run --cleanup:", err)
			return 1
		}
		return 0
	}
	var level slog.LevelVar
	level.Set(parseLevel(cfg.LogLevel))
	log := newLogger(os.Stderr, cfg.LogFormat, &level)
	log.Info("xdpsec starting", "version", version, "config", *file, "pid", os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if cfg.Witness() {
		defer cfg.Wipe()
		if err := daemon.RunWitness(ctx, cfg, log, func() { notify(log, systemd.SdNotifyReady, "STATUS=witness") }); err != nil {
			log.Error("xdpsec", "err", err)
			return 1
		}
		log.Info("xdpsec stopped")
		return 0
	}
	d, err := daemon.Start(cfg, log)
	if err != nil {
		log.Error("xdpsec", "err", err)
		notify(log, "STATUS=start failed: "+err.Error())
		return 1
	}
	// A SIGHUP during the start waits in hup and is served now.
	d.SetLevelVar(&level)
	d.SetReloadHooks(reloadHooks(log))
	go hangups(ctx, hup, d, log)
	notify(log, systemd.SdNotifyReady, "STATUS=running")
	<-ctx.Done()
	notify(log, systemd.SdNotifyStopping)
	log.Info("shutting down")
	if err := d.Shutdown(); err != nil {
		log.Error("xdpsec", "err", err)
		return 1
	}
	log.Info("xdpsec stopped")
	return 0
}
