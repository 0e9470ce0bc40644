// Command mixd is the PANORAMIX mix node and provider daemon (DESIGN.md section 2): in role
// "mix" it unwraps, delays and forwards Sphinx packets in one layer of the mixnet and sends its
// own loop cover traffic; in role "provider" it is also the entry and exit point that holds user
// accounts, per-user queues and services.
//
//	mixd --config FILE          run the node
//	mixd --config FILE --print-identity
//	                            create the node's keys if needed, print its identity key (for
//	                            `mixctl dir approve`) and exit
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/node"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/vote"
)

const name = "mixd"

const usage = `Usage: mixd --config FILE [--print-identity]
       mixd --version | --help

mixd runs a PANORAMIX mix node or provider, as the configuration's role says
(see configs/mixd-*.toml for commented examples).

  --config FILE       the TOML configuration
  --print-identity    create the node's keys in data_dir if missing, print the
                      identity key (approve it with 'mixctl dir approve') and exit
  --version           print the version and exit
  --help, -h          print this help and exit

Stop it with SIGINT or SIGTERM; it shuts down cleanly.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cli := boot.NewCLI(name, "", usage)
	printID := cli.Flags.Bool("print-identity", false, "")
	cfgPath, code, ok := cli.Parse(args, stdout, stderr)
	if !ok {
		return code
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if *printID {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		id, link, err := node.LoadOrCreateKeys(cfg.DataDir)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		fmt.Fprintln(stdout, id.Public())
		id.Wipe()
		link.Wipe()
		return 0
	}
	level, _ := cfg.LogLevelValue()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	opts := node.Options{Logger: log, Registry: reg}
	var m *mail
	var sv *surveys
	var vs *vote.Service
	if cfg.Role == "provider" {
		if m, err = openMail(cfg, reg, log); err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		defer m.close()
		opts.Services = m.services()
		opts.Store = m.provider
		if m.store != nil {
			opts.Accounts = accounts{m.store}
		}
		if sv, err = openSurvey(context.Background(), cfg, reg, log); err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		if sv != nil {
			defer sv.close()
			opts.Services = append(opts.Services, sv.service)
		}
		if vs, err = openVote(cfg, reg, log); err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		if vs != nil {
			opts.Services = append(opts.Services, vs)
		}
		plugins, err := openPlugins(cfg, reg, log)
		if err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		opts.Services = append(opts.Services, plugins...)
	}
	n, err := node.New(cfg, opts)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitAutoconfig, err := startAutoconfig(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer waitAutoconfig()
	mailErr := make(chan error, 1)
	if m != nil {
		go func() {
			err := m.run(ctx)
			if err != nil {
				cancel() // the node stops too: a provider without its IMAP server is broken
			}
			mailErr <- err
		}()
	}
	// The node runs the survey and vote writers (the services' Run) with its own goroutines
	// and waits for them: starting them here too made two writers of the ballot box.
	err = n.Run(ctx)
	cancel()
	if m != nil {
		if merr := <-mailErr; merr != nil && err == nil {
			err = fmt.Errorf("imap: %w", merr)
		}
	}
	if err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
