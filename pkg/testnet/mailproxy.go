package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// MailproxyOptions tune one user's mailproxy (zero values: mailproxy's defaults).
type MailproxyOptions struct {
	// RetryBudget, AckSlack and RetrieveInterval go to the account's engine.
	RetryBudget      int
	AckSlack         time.Duration
	RetrieveInterval time.Duration
	// MaxMessageSize is [smtp] max_message_size.
	MaxMessageSize int
	// Keyring is the account's OpenPGP keyring file (armored public keys).
	Keyring string
	// LocalMailbox makes the mailproxy fetch the user's mail through its link into its local
	// mailbox, served over IMAP on Mailproxy.IMAP ([mailbox] read_via_link = true). Without it
	// the user's mail stays in the provider's IMAP store (read_via_link = false), where the
	// tests that read it from the provider look.
	LocalMailbox bool
	// Agent serves the local agent API ([agent] listen_address) on Mailproxy.Agent, with the
	// token in Mailproxy.AgentToken.
	Agent bool
}

// Mailproxy is one user's running mailproxy (the real binary, from Options.BinDir).
type Mailproxy struct {
	// Address is the user's mail address; SMTP the proxy's submission address; Password the
	// user's IMAP password at the provider.
	Address  string
	SMTP     string
	Password string
	// IMAP is the local mailbox's IMAP address and IMAPPassword its password (LocalMailbox
	// only; the login is User()).
	IMAP         string
	IMAPPassword string
	// Agent is the agent API's base URL (http://host:port) and AgentToken its token file
	// (Agent option only).
	Agent, AgentToken string
	Provider          *Node
	Config            string
	DataDir           string
	proc              *proc
}

// User is the local part of the address (the IMAP login).
func (m *Mailproxy) User() string { u, _, _ := strings.Cut(m.Address, "@"); return u }

var linkKeyLine = regexp.MustCompile(`mixctl user add (\S+) --link-key ([0-9a-f]{64})`)

var imapLine = regexp.MustCompile(`\[imap\]\nlisten_address = "([^"]+)"`)

var imapPasswordLine = regexp.MustCompile(`(?m)^  password (\S+)$`)

// StartMailproxy creates the user address (user@domain of a provider of this network) the way
// a real user does: it writes a mailproxy config, runs `mailproxy init` for the link key,
// registers the printed key at the provider with the IMAP password, and starts `mailproxy run`.
// On a resumed network the same address finds its config, key and registration and keeps them.
// It returns once the SMTP port accepts connections. Stop stops it with the network.
func (n *Net) StartMailproxy(ctx context.Context, address, password string, o MailproxyOptions) (*Mailproxy, error) {
	user, domain, ok := strings.Cut(address, "@")
	prov := n.Provider(domain)
	if !ok || prov == nil {
		return nil, fmt.Errorf("testnet: %q: no provider of this network serves its domain", address)
	}
	bin := filepath.Join(n.opts.BinDir, "mailproxy")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("testnet: mailproxy binary missing in %s (build it with testnet.Build): %w", n.opts.BinDir, err)
	}
	// The provider's first user listens on its UserSMTP, the address its autoconfiguration
	// names and that stays the same when the network resumes; other users on free ports.
	smtp := prov.UserSMTP
	n.mu.Lock()
	for _, o := range n.mailproxies {
		if o.SMTP == smtp {
			smtp = ""
		}
	}
	n.mu.Unlock()
	if smtp == "" {
		ports, err := freeport.Addrs(1)
		if err != nil {
			return nil, err
		}
		smtp = ports[0]
	}
	name := "mailproxy-" + user + "-" + strings.Split(domain, ".")[0]
	m := &Mailproxy{Address: address, SMTP: smtp, Password: password, Provider: prov,
		Config: filepath.Join(n.opts.Dir, name+".toml"), DataDir: filepath.Join(n.opts.Dir, name)}
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\ndata_dir = %q\nlog_level = %q\n", m.DataDir, n.opts.LogLevel)
	fmt.Fprintf(&b, "\n[smtp]\nlisten_address = %q\n", m.SMTP)
	if o.MaxMessageSize > 0 {
		fmt.Fprintf(&b, "max_message_size = %d\n", o.MaxMessageSize)
	}
	if o.LocalMailbox {
		// A resumed network keeps the address its user configured.
		if old, err := os.ReadFile(m.Config); err == nil {
			if sub := imapLine.FindSubmatch(old); sub != nil {
				m.IMAP = string(sub[1])
			}
		}
		if m.IMAP == "" {
			ports, err := freeport.Addrs(1)
			if err != nil {
				return nil, err
			}
			m.IMAP = ports[0]
		}
		fmt.Fprintf(&b, "\n[mailbox]\nread_via_link = true\n\n[imap]\nlisten_address = %q\n", m.IMAP)
	} else {
		b.WriteString("\n[mailbox]\nread_via_link = false\n")
	}
	if o.Agent {
		ports, err := freeport.Addrs(1)
		if err != nil {
			return nil, err
		}
		m.Agent, m.AgentToken = "http://"+ports[0], filepath.Join(m.DataDir, "agent.token")
		fmt.Fprintf(&b, "\n[agent]\nlisten_address = %q\n", ports[0])
	}
	fmt.Fprintf(&b, "\n[directory]\nurls = [%q]\nauthorities = [%q]\nthreshold = 1\nepoch_length = %q\n", n.DirURL, n.Authority.String(), n.params.EpochLength.String())
	fmt.Fprintf(&b, "\n[[accounts]]\naddress = %q\nlink_key_file = %q\nretry_budget = %d\nack_slack = %q\nretrieve_interval = %q\n",
		address, filepath.Join(m.DataDir, user+".link.key"), o.RetryBudget, o.AckSlack.String(), o.RetrieveInterval.String())
	if o.Keyring != "" {
		fmt.Fprintf(&b, "keyring = %q\n", o.Keyring)
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Config, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "init", "--config", m.Config).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("testnet: mailproxy init: %w\n%s", err, out)
	}
	sub := linkKeyLine.FindStringSubmatch(string(out))
	if sub == nil || sub[1] != user {
		return nil, fmt.Errorf("testnet: mailproxy init printed no registration line for %s:\n%s", user, out)
	}
	if o.LocalMailbox {
		pw := imapPasswordLine.FindStringSubmatch(string(out))
		if pw == nil {
			return nil, fmt.Errorf("testnet: mailproxy init printed no local IMAP password:\n%s", out)
		}
		m.IMAPPassword = pw[1]
	}
	link, err := keys.ParseLinkPublicKey(sub[2])
	if err != nil {
		return nil, err
	}
	if err := n.EnsureUserKey(prov, user, link, 1<<30); err != nil {
		return nil, err
	}
	if err := n.SetPassword(prov, user, password); err != nil {
		return nil, err
	}
	m.proc = newProc(name, bin, filepath.Join(n.opts.Dir, name+".log"), "run", "--config", m.Config)
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.mailproxies = append(n.mailproxies, m)
	n.mu.Unlock()
	if o.LocalMailbox {
		// The first retrieve-mail marks the user at the provider (docs/spec/services.md
		// section 6.1); mail that arrives before it goes to the provider's IMAP store.
		if err := m.waitMailRetrieve(ctx, 30*time.Second); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// waitMailRetrieve waits until the mailproxy's status shows a retrieve-mail exchange.
func (m *Mailproxy) waitMailRetrieve(ctx context.Context, timeout time.Duration) error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(m.DataDir, "status.sock"))
	}}}
	defer hc.CloseIdleConnections()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		var r struct {
			Accounts []struct {
				Link struct{ MailRetrieves uint64 }
			}
		}
		resp, err := hc.Get("http://mailproxy/v1/status")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
		}
		if err == nil && len(r.Accounts) > 0 && r.Accounts[0].Link.MailRetrieves > 0 {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("testnet: %s sent no retrieve-mail within %v (last status error: %v); see %s", m.proc.Name, timeout, last, m.proc.Log)
}

// Start starts the mailproxy (again, after Kill or Stop) and waits until its SMTP port answers.
func (m *Mailproxy) Start(ctx context.Context) error {
	if err := m.proc.start(); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !m.proc.Running() {
			return fmt.Errorf("testnet: %s exited at start; see %s", m.proc.Name, m.proc.Log)
		}
		if c, err := net.DialTimeout("tcp", m.SMTP, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.Join(fmt.Errorf("testnet: %s did not open SMTP %s; see %s", m.proc.Name, m.SMTP, m.proc.Log), m.proc.stop(syscall.SIGKILL, 5*time.Second))
}

// Kill stops the mailproxy with SIGKILL (no clean shutdown).
func (m *Mailproxy) Kill() error { return m.proc.stop(syscall.SIGKILL, 10*time.Second) }

// Stop stops the mailproxy with SIGTERM and reports an unclean exit.
func (m *Mailproxy) Stop() error { return m.proc.stop(syscall.SIGTERM, 15*time.Second) }

// Running reports whether the mailproxy runs.
func (m *Mailproxy) Running() bool { return m.proc.Running() }

// Log is the path of the mailproxy's log file.
func (m *Mailproxy) Log() string { return m.proc.Log }
