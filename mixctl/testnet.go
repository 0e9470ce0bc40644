package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

func init() { addCommand(newTestnetCmd) }

func newTestnetCmd() *cobra.Command {
	t := &cobra.Command{
		Use:   "testnet",
		Short: "Run a whole local mixnet on this machine",
		Long: `Commands for a local test network: one directory authority, three layers of mixes
and two providers (alpha.localhost, beta.localhost), all on loopback ports.

  mixctl testnet up [--dir DIR] [--epoch 10s]`,
	}
	t.AddCommand(newTestnetUpCmd())
	return t
}

func newTestnetUpCmd() *cobra.Command {
	var dir, bin string
	var epoch time.Duration
	var mixes int
	c := &cobra.Command{
		Use:   "up",
		Short: "Start the local network and keep it running until Ctrl-C",
		Long: `Builds directory and mixd from this repository (unless --bin names a directory that
holds them), writes their configurations into --dir, starts them, waits for the
first consensus document, prints what runs where, and runs until interrupted.
Ctrl-C stops every process cleanly. The consensus parameters are the defaults
except the epoch length (--epoch), kept short so the network is up in seconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if dir == "" {
				d, err := os.MkdirTemp("", "panoramix-testnet-")
				if err != nil {
					return err
				}
				dir = d
			}
			dir, _ = filepath.Abs(dir)
			if bin == "" {
				repo, err := testnet.RepoRoot()
				if err != nil {
					return fmt.Errorf("%w (or pass --bin DIR with built directory and mixd)", err)
				}
				bin = filepath.Join(dir, "bin")
				fmt.Fprintf(out, "building directory and mixd into %s ...\n", bin)
				if err := testnet.Build(ctx, repo, bin); err != nil {
					return err
				}
			}
			p := pki.DefaultParameters()
			p.EpochLength = epoch
			n, err := testnet.Start(ctx, testnet.Options{Dir: dir, BinDir: bin, MixesPerLayer: mixes, Parameters: &p})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "working directory %s\n", dir)
			n.Describe(out)
			fmt.Fprintf(out, "waiting for the first consensus document (up to two epochs of %v) ...\n", epoch)
			wctx, cancel := context.WithTimeout(ctx, 3*epoch+30*time.Second)
			doc, err := n.WaitConsensus(wctx)
			cancel()
			if err != nil {
				stopErr := n.Stop()
				if ctx.Err() != nil {
					return stopErr
				}
				return errors.Join(err, stopErr)
			}
			fmt.Fprintf(out, "network up: epoch %d, %d nodes. Ctrl-C stops it.\n", doc.Epoch, len(doc.Nodes))
			fmt.Fprintf(out, "  mixctl dir status --url %s --authority %s\n", n.DirURL, n.Authority)
			for _, nd := range n.Nodes {
				if nd.Role == "provider" {
					fmt.Fprintf(out, "  mixctl user list --admin %s      # users of %s\n", nd.Admin, nd.Domain)
				}
			}
			<-ctx.Done()
			fmt.Fprintln(out, "stopping ...")
			if err := n.Stop(); err != nil {
				return err
			}
			fmt.Fprintln(out, "stopped cleanly")
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "working directory for configs, keys, data and logs (default: a new temporary directory)")
	c.Flags().StringVar(&bin, "bin", "", "directory holding the directory and mixd binaries (default: build them)")
	c.Flags().DurationVar(&epoch, "epoch", 10*time.Second, "epoch length")
	c.Flags().IntVar(&mixes, "mixes-per-layer", 1, "mixes in each of the three layers")
	return c
}
