// Command mailproxy runs on a user's machine (DESIGN.md sections 2 and 3): a loopback SMTP
// server for the user's mail program that strips identifying headers from each mail, queues it
// once per recipient in the client engine (pkg/client), which sends it as Sphinx packets with
// cover traffic over the user's link to their provider and resends until it is acknowledged;
// failed mail comes back as a bounce in the user's mailbox.
//
//	mailproxy [run] --config FILE      run the proxy until SIGINT or SIGTERM
//	mailproxy init --config FILE       create missing link keys, print the provider's command
//	mailproxy status --config FILE     ask the running proxy for queue, deliveries, link, epoch
//	mailproxy imap-password --config FILE  print the local IMAP server's address, users, password
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/boot"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/proxy"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

const name = "mailproxy"

const usage = `Usage: mailproxy [run] --config FILE
       mailproxy init --config FILE [--account ADDRESS]
       mailproxy status --config FILE [--json]
       mailproxy imap-password --config FILE
       mailproxy --version | --help

mailproxy is the PANORAMIX client for mail programs: point the SMTP server of
your mail program (Thunderbird, mutt, swaks) at its [smtp] listen_address
(127.0.0.1:2525 in configs/mailproxy.toml) and it sends every mail through the
mixnet. It fetches your mail through the same link into a local mailbox and
serves it over IMAP on [imap] listen_address (127.0.0.1:1143; no encryption,
normal password, user name the local part of your address, password from
'mailproxy init' or 'mailproxy imap-password'), unless [mailbox]
read_via_link = false, when you read mail with IMAP at your provider.

  run      run the proxy (the default command); SIGINT or SIGTERM stop it cleanly
  init     create each account's link key if missing (link_key_file) and print
           the command the provider's operator runs to register it; create the
           local IMAP password if missing and print it
  status   print the running proxy's queue, each message's delivery state and
           progress, the link to the provider and the current epoch (read from
           its status socket, [status_socket]), and each local mailbox
  imap-password
           print the local IMAP server's address, user names and password again

  --config FILE   the TOML configuration (see configs/mailproxy.toml)
  --version       print the version and exit
  --help, -h      print this help and exit
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "init" || args[0] == "status" || args[0] == "imap-password") {
		cmd, args = args[0], args[1:]
	}
	cli := boot.NewCLI(name, cmd, usage)
	cli.ConfigHint = " (see configs/mailproxy.toml)"
	acct := cli.Flags.String("account", "", "")
	asJSON := cli.Flags.Bool("json", false, "")
	cfgPath, code, ok := cli.Parse(args, stdout, stderr)
	switch {
	case !ok:
		return code
	case *acct != "" && cmd != "init":
		fmt.Fprintf(stderr, "%s: --account only applies to 'mailproxy init'\n", name)
		return 2
	case *asJSON && cmd != "status":
		fmt.Fprintf(stderr, "%s: --json only applies to 'mailproxy status'\n", name)
		return 2
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	switch cmd {
	case "init":
		if err = initKeys(cfg, *acct, stdout); err == nil {
			err = imapPassword(cfg, true, stdout)
		}
	case "imap-password":
		err = imapPassword(cfg, false, stdout)
	case "status":
		err = status(cfg, *asJSON, stdout)
	default:
		return serve(cfg, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", name, cmd, err)
		return 1
	}
	return 0
}

func serve(cfg *config.Config, stderr io.Writer) int {
	level, _ := cfg.LogLevelValue()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	p, err := proxy.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = p.Run(ctx)
	if cerr := p.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// initKeys creates the link key of each account (or of the one named) when its file does not
// exist yet, and prints the registration command for the provider's operator.
func initKeys(cfg *config.Config, only string, w io.Writer) error {
	found := false
	for _, a := range cfg.Accounts {
		if only != "" && a.Address != only {
			continue
		}
		found = true
		k, err := keys.LoadLinkKey(a.LinkKeyFile)
		state := "existing"
		if errors.Is(err, os.ErrNotExist) {
			if k, err = keys.GenerateLinkKey(rand.Reader); err != nil {
				return err
			}
			if err = keys.SaveLinkKey(a.LinkKeyFile, k); err != nil {
				k.Wipe()
				return fmt.Errorf("account %s: %w", a.Address, err)
			}
			state = "created"
		} else if err != nil {
			return fmt.Errorf("account %s: %w", a.Address, err)
		}
		pub := k.Public()
		k.Wipe()
		fmt.Fprintf(w, "account %s: link key %s (%s)\n", a.Address, a.LinkKeyFile, state)
		fmt.Fprintf(w, "The operator of the provider of %s registers it with:\n", a.Domain())
		fmt.Fprintf(w, "  mixctl user add %s --link-key %s\n", a.User(), pub)
	}
	if !found {
		return fmt.Errorf("no account %q in the config", only)
	}
	return nil
}

// imapPassword prints what a mail program needs for the local mailbox: the IMAP address, the
// user name of each account and the password (created first by init).
func imapPassword(cfg *config.Config, create bool, w io.Writer) error {
	if !cfg.Mailbox.ReadViaLink {
		if !create {
			return errors.New("[mailbox] read_via_link = false: there is no local mailbox; read mail with IMAP at your provider")
		}
		return nil
	}
	var pw string
	var err error
	state := "existing"
	if create {
		var created bool
		if pw, created, err = proxy.EnsurePassword(cfg.PasswordFile()); created {
			state = "created"
		}
	} else {
		pw, err = proxy.ReadPassword(cfg.PasswordFile())
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w (run 'mailproxy init' to create it)", err)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "local mailbox: IMAP on %s, no encryption, normal password (%s, %s)\n", cfg.IMAP.ListenAddress, cfg.PasswordFile(), state)
	for _, a := range cfg.Accounts {
		fmt.Fprintf(w, "  account %s: user %s\n", a.Address, proxy.LocalUser(a))
	}
	fmt.Fprintf(w, "  password %s\n", pw)
	return nil
}

func status(cfg *config.Config, asJSON bool, w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := proxy.FetchReport(ctx, cfg.StatusSocket)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "epoch %d, SMTP on %s\n", r.Epoch, r.SMTP)
	if r.ConsensusError != "" {
		fmt.Fprintf(w, "consensus: %s\n", r.ConsensusError)
	}
	for _, a := range r.Accounts {
		l := a.Link
		link := "down"
		if l.Connected {
			link = "up to " + l.Addr
		}
		since := "never up"
		if !l.Since.IsZero() {
			since = "since " + l.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "\n%s: link %s %s; %d in queue\n", a.Address, link, since, a.Queued)
		if l.LastError != "" {
			fmt.Fprintf(w, "  last link error: %s\n", l.LastError)
		}
		fmt.Fprintf(w, "  packets: %d real, %d drop, %d loop (%d back, %d lost); %d acks\n",
			l.RealPackets, l.SendDrops+l.Drops, l.Loops, l.LoopsReturned, l.LoopsLost, l.Acks)
		if mb := a.Mailbox; mb != nil {
			last := "no mail fetched since the start"
			if !mb.LastChunk.IsZero() {
				last = "last chunk " + mb.LastChunk.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "  local mailbox (IMAP %s, user %s): %d messages, %d unseen; %s; %d mails, %d chunks fetched, %d bad\n",
				mb.IMAP, mb.User, mb.Messages, mb.Unseen, last, mb.Received, mb.Chunks, mb.Bad)
			if mb.Fetching {
				fmt.Fprintf(w, "  fetching a mail: %d of %d chunks\n", mb.ChunksHave, mb.ChunksCount)
			}
			if mb.Waiting > 0 {
				fmt.Fprintf(w, "  %d fetched mails wait for the local mailbox (see the log)\n", mb.Waiting)
			}
		}
		if len(a.Messages) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tKIND\tTO\tSTATE\tPROGRESS\tSENT\tSIZE\tLEFT AS\tSUBJECT")
		for _, m := range a.Messages {
			as := m.Sent
			if as == "" {
				as = "-" // recorded before mailproxy kept it
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d/%d (%d%%)\t%d\t%d\t%s\t%s\n", m.ID[:12], m.Kind, m.To, m.State,
				m.Acknowledged, m.Fragments, 100*m.Acknowledged/max(m.Fragments, 1), m.Transmissions, m.Size, as, m.Subject)
		}
		tw.Flush()
		for _, m := range a.Messages {
			if m.Reason != "" {
				fmt.Fprintf(w, "  %s failed: %s", m.ID[:12], m.Reason)
				switch {
				case m.BounceLocal:
					fmt.Fprint(w, " (bounce put in your local INBOX)")
				case m.Bounce != "":
					fmt.Fprintf(w, " (bounce %s sent to you)", m.Bounce[:12])
				case m.BounceError != "":
					fmt.Fprintf(w, " (no bounce could be queued: %s)", m.BounceError)
				}
				fmt.Fprintln(w)
			}
		}
	}
	return nil
}
