package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
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
and two providers (alpha.localhost, beta.localhost), all on loopback ports, with
two users (alice@alpha.localhost, bob@beta.localhost) who each run a mailproxy.

  mixctl testnet up [--dir DIR] [--base-port N] [--fresh] [--epoch 10s]
  mixctl testnet up --netns [--delay-min 20ms --delay-max 80ms --jitter 5ms --loss 0.01]
  mixctl testnet down      (stops every --netns network, deletes leftover namespaces)

With --netns (root) each daemon runs in a network namespace of its own on a bridge,
from the configurations docs/operators describes (internal/netlab).`,
	}
	t.AddCommand(newTestnetUpCmd(), newTestnetDownCmd())
	return t
}

func newTestnetUpCmd() *cobra.Command {
	var dir, bin string
	var epoch time.Duration
	var mixes int
	var noUsers, fresh bool
	var basePort int
	var autoconfigAddr string
	var ns netnsFlags
	c := &cobra.Command{
		Use:   "up",
		Short: "Start the local network and keep it running until Ctrl-C",
		Long: `Builds directory, mixd and mailproxy from this repository (unless --bin names a
directory that holds them), writes their configurations into --dir, starts them,
waits for the first consensus document, creates the users alice@alpha.localhost
and bob@beta.localhost with a mailproxy each (unless --no-users), prints what
runs where and what to type into Thunderbird or swaks, and runs until interrupted.
Ctrl-C stops every process cleanly. The consensus parameters are the defaults
except the epoch length (--epoch), kept short so the network is up in seconds.

--dir keeps the whole network (keys, certificates, configs, mail, logs, the users'
passwords in users.json): starting again on the same directory resumes it with the
same ports, accounts, passwords, certificates, admin tokens and mail. --fresh deletes
such a directory first. --base-port puts the network on fixed consecutive ports
(the directory's two, then six per node) instead of free ones; a resumed network
keeps the ports it had.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ns.on {
				return runNetns(cmd, dir, bin, epoch, &ns)
			}
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
			if fresh {
				if err := removeState(dir); err != nil {
					return err
				}
			}
			if _, err := os.Stat(filepath.Join(dir, testnet.StateFile)); err == nil {
				fmt.Fprintf(out, "resuming the network in %s (--fresh starts over)\n", dir)
			}
			if bin == "" {
				repo, err := testnet.RepoRoot()
				if err != nil {
					return fmt.Errorf("%w (or pass --bin DIR with built directory, mixd and mailproxy)", err)
				}
				bin = filepath.Join(dir, "bin")
				fmt.Fprintf(out, "building directory, mixd and mailproxy into %s ...\n", bin)
				if err := testnet.Build(ctx, repo, bin, testnet.MailPrograms...); err != nil {
					return err
				}
			}
			p := pki.DefaultParameters()
			p.EpochLength = epoch
			n, err := testnet.Start(ctx, testnet.Options{Dir: dir, BinDir: bin, MixesPerLayer: mixes, Parameters: &p, BasePort: basePort})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "state directory %s\n", dir)
			n.Describe(out)
			fmt.Fprintf(out, "certificate authority %s (issued every provider's IMAP certificate)\n", n.CA.CertFile)
			fmt.Fprintf(out, "  trust it in the system and in Thunderbird (certutil is in libnss3-tools) with:\n  %s\n", n.CA.TrustCommand())
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
			fmt.Fprintf(out, "  mixctl dir approved --admin %s --admin-token %s      # each node's approved role and mail domains\n", n.DirAdmin, n.DirAdminToken)
			for _, nd := range n.Nodes {
				if nd.Role == "provider" {
					fmt.Fprintf(out, "  mixctl user list --admin %s --admin-token %s      # users of %s\n", nd.Admin, nd.AdminToken, nd.Domain)
				}
			}
			if autoconfigAddr != "" {
				providers := map[string]string{}
				for _, nd := range n.Nodes {
					if nd.Role == "provider" {
						providers[nd.Domain] = nd.Autoconfig
					}
				}
				a, err := serveAutoconfigFront(ctx, autoconfigAddr, providers)
				if err != nil {
					return errors.Join(err, n.Stop())
				}
				fmt.Fprintf(out, "Thunderbird autoconfiguration for every provider on http://%s (autoconfig.DOMAIN)\n", a)
			}
			if !noUsers {
				if err := startUsers(ctx, n, dir, bin, out); err != nil {
					return errors.Join(err, n.Stop())
				}
			}
			<-ctx.Done()
			fmt.Fprintln(out, "stopping ...")
			if err := n.Stop(); err != nil {
				return err
			}
			fmt.Fprintln(out, "stopped cleanly")
			fmt.Fprintf(out, "The network's state stays in %s: the same command resumes it (same ports, passwords,\ncertificates and mail); add --fresh (make run-reset) to start over.\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "state directory for configs, keys, certificates, data and logs; an existing one is resumed (default: a new temporary directory)")
	c.Flags().BoolVar(&fresh, "fresh", false, "delete the state directory's network first and start a new one")
	c.Flags().StringVar(&autoconfigAddr, "autoconfig-address", "", "also serve every provider's Thunderbird autoconfiguration here, by domain (127.0.0.1:80 is where Thunderbird's wizard asks autoconfig.DOMAIN)")
	c.Flags().IntVar(&basePort, "base-port", 0, "put a new network on consecutive loopback ports from this one (default: free ports)")
	c.Flags().StringVar(&bin, "bin", "", "directory holding the directory and mixd binaries (default: build them)")
	c.Flags().DurationVar(&epoch, "epoch", 10*time.Second, "epoch length")
	c.Flags().IntVar(&mixes, "mixes-per-layer", 1, "mixes in each of the three layers")
	c.Flags().BoolVar(&noUsers, "no-users", false, "do not create alice and bob with their mailproxies")
	ns.register(c)
	return c
}

// bobReadScript lists bob's local INBOX over his mailproxy's loopback IMAP (no TLS: the
// connection does not leave the machine).
const bobReadScript = `import imaplib, email
m = imaplib.IMAP4("%s", %s); m.login("bob", "%s"); m.select("INBOX")
for n in m.search(None, "ALL")[1][0].split():
    msg = email.message_from_bytes(m.fetch(n, "(RFC822)")[1][0][1])
    print(msg["Date"], "|", msg["From"], "|", msg["Subject"]); print((msg.get_payload(decode=True) or b"(multipart)").decode(errors="replace"))`

// usersFile keeps the users' passwords in the state directory, so that a resumed network
// gives them the passwords a mail client has stored.
const usersFile = "users.json"

// removeState deletes a state directory that a testnet made (it holds testnet.StateFile), and
// refuses any other: --fresh must not delete a directory named by mistake.
func removeState(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, testnet.StateFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing to start over from
		}
		return err
	}
	return os.RemoveAll(dir)
}

// passwords loads users.json from dir, and gives each address in addrs a password, new ones
// random, saving the file (0600) when it made any.
func passwords(dir string, addrs []string) (map[string]string, error) {
	file := filepath.Join(dir, usersFile)
	pw := map[string]string{}
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &pw); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	changed := false
	for _, a := range addrs {
		if pw[a] == "" {
			var r [6]byte
			rand.Read(r[:])
			pw[a], changed = hex.EncodeToString(r[:]), true
		}
	}
	if changed {
		b, _ := json.MarshalIndent(pw, "", "  ")
		if err := os.WriteFile(file, append(b, '\n'), 0o600); err != nil {
			return nil, err
		}
	}
	return pw, nil
}

// startUsers creates alice@alpha.localhost and bob@beta.localhost with a mailproxy each (or
// finds them, on a resumed network) and prints how to use them.
func startUsers(ctx context.Context, n *testnet.Net, dir, bin string, out io.Writer) error {
	addrs := []string{"alice@alpha.localhost", "bob@beta.localhost"}
	pw, err := passwords(dir, addrs)
	if err != nil {
		return err
	}
	users := map[string]*testnet.Mailproxy{}
	for _, addr := range addrs {
		// Each user reads mail through the link, from its mailproxy's local mailbox (issue 20).
		m, err := n.StartMailproxy(ctx, addr, pw[addr], testnet.MailproxyOptions{LocalMailbox: true})
		if err != nil {
			return err
		}
		users[addr] = m
	}
	alice, bob := users["alice@alpha.localhost"], users["bob@beta.localhost"]
	aHost, aPort, _ := net.SplitHostPort(alice.IMAP)
	bHost, bPort, _ := net.SplitHostPort(bob.IMAP)
	aSMTPHost, aSMTPPort, _ := net.SplitHostPort(alice.SMTP)
	bSMTPHost, bSMTPPort, _ := net.SplitHostPort(bob.SMTP)
	fmt.Fprintf(out, `
users (each runs a mailproxy that fetches its mail through its link into a local mailbox;
logs next to their configs in the working directory):
  alice@alpha.localhost  mailproxy SMTP %s  local IMAP %s (no TLS) login alice  password %s
  bob@beta.localhost     mailproxy SMTP %s  local IMAP %s (no TLS) login bob    password %s
(the providers' own IMAP, %s and %s with STARTTLS and passwords %s and %s, is for
reading at the provider: [mailbox] read_via_link = false)

Send a mail from alice to bob with swaks:
  swaks --server %s --from alice@alpha.localhost --to bob@beta.localhost --header "Subject: hello" --body "Hello Bob, through the mixnet."

Read it as bob, from his local mailbox (Python's imaplib):
  python3 -c '%s'

Follow delivery from alice's side, and bob's local mailbox from his:
  %s status --config %s
  %s status --config %s

Thunderbird (contrib/thunderbird/README.md), account "alice@alpha.localhost", two localhost servers:
  incoming: IMAP, server %s, port %s, connection security None, normal password, user name alice, password %s
  outgoing: SMTP, server %s, port %s, connection security None, authentication No authentication
and the same for "bob@beta.localhost": IMAP %s port %s user bob password %s; SMTP %s port %s.
The providers serve autoconfiguration for reading at the provider: %s and %s
(Thunderbird's wizard asks port 80 of autoconfig.DOMAIN: contrib/thunderbird/README.md says how to point it here).
`, alice.SMTP, alice.IMAP, alice.IMAPPassword, bob.SMTP, bob.IMAP, bob.IMAPPassword,
		alice.Provider.IMAP, bob.Provider.IMAP, alice.Password, bob.Password,
		alice.SMTP, fmt.Sprintf(bobReadScript, bHost, bPort, bob.IMAPPassword),
		filepath.Join(bin, "mailproxy"), alice.Config, filepath.Join(bin, "mailproxy"), bob.Config,
		aHost, aPort, alice.IMAPPassword, aSMTPHost, aSMTPPort, bHost, bPort, bob.IMAPPassword, bSMTPHost, bSMTPPort,
		alice.Provider.AutoconfigURL(), bob.Provider.AutoconfigURL())
	return nil
}
