// Command directory is the PANORAMIX directory authority (DESIGN.md section 6,
// docs/spec/pki.md): it collects signed node descriptors from approved nodes, exchanges votes and
// signatures with its peer authorities, and publishes one signed consensus document per epoch
// over HTTP, with a status page and /metrics.
//
// Usage: directory --config FILE
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/panoramix-mixnet/panoramix/directory/internal/config"
	"github.com/panoramix-mixnet/panoramix/directory/internal/daemon"
	"github.com/panoramix-mixnet/panoramix/internal/boot"
)

const usage = `Usage: directory --config FILE

Runs a PANORAMIX directory authority. FILE is a TOML configuration (see
configs/directory.toml). Create the authority key first with
  mixctl dir keygen --out DIR
and approve nodes with
  mixctl dir approve NODE-ID
Stop with SIGINT or SIGTERM.

Options:
  --config FILE  configuration file (required)
  --version      print the version and exit
  --help, -h     print this help and exit
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit code: 0 after a clean shutdown, 1 on a runtime error, 2 on bad usage.
func run(args []string, stdout, stderr io.Writer) int {
	cli := boot.NewCLI("directory", "", usage)
	cli.ConfigHint = " (example: configs/directory.toml)"
	cfgPath, code, ok := cli.Parse(args, stdout, stderr)
	if !ok {
		return code
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "directory: %v\n", err)
		return 1
	}
	level, _ := cfg.LogLevelValue()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	d, err := daemon.New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "directory: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := d.Run(ctx); err != nil {
		log.Error("directory failed", "err", err)
		return 1
	}
	return 0
}
