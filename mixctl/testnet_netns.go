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

	"github.com/panoramix-mixnet/panoramix/internal/netlab"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// netnsFlags are `mixctl testnet up --netns` and the faults of its network.
type netnsFlags struct {
	on                         bool
	minDelay, maxDelay, jitter time.Duration
	loss                       float64
}

func (f *netnsFlags) register(c *cobra.Command) {
	c.Flags().BoolVar(&f.on, "netns", false, "run each daemon in a Linux network namespace of its own, joined by a bridge, with per-link delay and loss (root; internal/netlab)")
	c.Flags().DurationVar(&f.minDelay, "delay-min", 20*time.Millisecond, "with --netns: least one-way delay of a link (each link draws its delay once, uniformly)")
	c.Flags().DurationVar(&f.maxDelay, "delay-max", 80*time.Millisecond, "with --netns: most one-way delay of a link")
	c.Flags().DurationVar(&f.jitter, "jitter", 5*time.Millisecond, "with --netns: each chunk's delay differs from its link's by up to this, either way (order kept)")
	c.Flags().Float64Var(&f.loss, "loss", 0.01, "with --netns: probability that a packet entering a namespace is dropped")
}

// runNetns is `mixctl testnet up --netns`: the namespace network of internal/netlab, from the
// configurations docs/operators describes, until Ctrl-C.
func runNetns(cmd *cobra.Command, dir, bin string, epoch time.Duration, f *netnsFlags) error {
	out := cmd.OutOrStdout()
	for _, name := range []string{"mixes-per-layer", "base-port", "fresh", "autoconfig-address", "no-users"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--%s does not go with --netns: the namespace network has its own fixed layout (docs/operators)", name)
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("--netns needs root (network namespaces, veth pairs, iptables): run it with sudo")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	repo, err := testnet.RepoRoot()
	if err != nil {
		return fmt.Errorf("%w: --netns writes its configurations from the repository's configs/", err)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "panoramix-netns-"); err != nil {
			return err
		}
	} else if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s is not empty: a namespace network starts new each time (new keys); name a new directory", dir)
	}
	dir, _ = filepath.Abs(dir)
	if bin == "" {
		bin = filepath.Join(dir, "bin")
		fmt.Fprintf(out, "building %v into %s ...\n", netlab.Programs, bin)
		if err := testnet.Build(ctx, repo, bin, netlab.Programs...); err != nil {
			return err
		}
	}
	p := netlab.FastParameters()
	p.EpochLength = epoch
	l, err := netlab.Start(ctx, netlab.Options{Repo: repo, Dir: dir, BinDir: bin, Parameters: &p,
		MinDelay: f.minDelay, MaxDelay: f.maxDelay, Jitter: f.jitter, Loss: f.loss,
		AckSlack: 3 * time.Second, RetryBudget: 40, RetrieveInterval: 50 * time.Millisecond, Log: out})
	if err != nil {
		return err
	}
	l.Describe(out)
	alice, bob := l.User("alice@alpha.example"), l.User("bob@beta.example")
	fmt.Fprintf(out, `
users: alice@alpha.example (IMAP password %s), bob@beta.example (IMAP password %s);
each mailproxy listens on 127.0.0.1:%s inside its user's namespace. Send a mail from alice:
  ip netns exec %s swaks --server 127.0.0.1:%s --from alice@alpha.example --to bob@beta.example --body "across the namespaces"
Read bob's INBOX at his provider, across the network (STARTTLS, the lab's CA %s):
  ip netns exec %s python3 -c 'import imaplib,ssl; c=ssl.create_default_context(cafile="%s"); m=imaplib.IMAP4("%s",%s); m.starttls(ssl_context=c); m.login("bob","%s"); print(m.select("INBOX"))'
Faults by hand: ip netns exec NS iptables -A PNXCUT -j DROP (cut a host off; -F PNXCUT heals it),
ip netns exec NS iptables -R PNXLOSS 1 -m statistic --mode random --probability 0.05 -j DROP.
Ctrl-C (or mixctl testnet down) stops everything and deletes the namespaces; files stay in %s.
`, alice.Password, bob.Password, netlab.SMTPPort, alice.Host.NS, netlab.SMTPPort, l.CA.CertFile,
		bob.Host.NS, l.CA.CertFile, bob.Provider.Addr, netlab.IMAPPort, bob.Password, dir)
	<-ctx.Done()
	fmt.Fprintln(out, "stopping ...")
	if err := l.Stop(); err != nil {
		return err
	}
	fmt.Fprintln(out, "stopped cleanly; namespaces deleted")
	return nil
}

func newTestnetDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Stop every namespace network (mixctl testnet up --netns) and delete leftover namespaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			owners, err := netlab.Owners()
			if err != nil {
				return err
			}
			for pid, nss := range owners {
				fmt.Fprintf(out, "stopping the namespace network of process %d (%d namespaces)\n", pid, len(nss))
				if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
					return fmt.Errorf("process %d: %w", pid, err)
				}
			}
			// The owners stop their daemons and delete their namespaces themselves.
			deadline := time.Now().Add(60 * time.Second)
			for len(owners) > 0 && time.Now().Before(deadline) {
				time.Sleep(500 * time.Millisecond)
				if owners, err = netlab.Owners(); err != nil {
					return err
				}
			}
			if len(owners) > 0 {
				return fmt.Errorf("%d namespace networks still run after 60 s", len(owners))
			}
			gone, err := netlab.Sweep()
			fmt.Fprintf(out, "deleted %d leftover namespaces\n", len(gone))
			return err
		},
	}
}
