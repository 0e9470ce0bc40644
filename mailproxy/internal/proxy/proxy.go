package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/internal/imapd"
	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/agent"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/message"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// monitorInterval is how often message outcomes are checked for bounces and logging.
const monitorInterval = 500 * time.Millisecond

// account is one configured sender with its engine.
type account struct {
	cfg     config.Account
	key     *keys.LinkPrivateKey
	engine  *client.Engine
	keyring *message.Keyring // nil: encrypt nothing
}

// Proxy is a running mailproxy. Create it with New, run it with Run, Close it after.
type Proxy struct {
	cfg      *config.Config
	log      *slog.Logger
	pki      *pki.Client
	accounts map[string]*account
	order    []string
	recs     *records
	// mail is the local mailbox ([mailbox] read_via_link), nil when mail is read at the
	// provider.
	mail *mailstore.Store
	// agent is the local agent API ([agent] listen_address), nil when off.
	agent *agent.Agent

	// sendMu serializes the dedup check and the queueing of one mail, so that two
	// concurrent submissions of the same mail do not both pass the check.
	sendMu sync.Mutex
	// now is the clock (tests may replace it).
	now func() time.Time
}

// New loads every account's link key, opens its engine's store and the proxy's records.
func New(cfg *config.Config, log *slog.Logger) (*Proxy, error) {
	pcfg, err := cfg.PKIConfig(log.With("component", "pki"))
	if err != nil {
		return nil, err
	}
	pc, err := pki.NewClient(pcfg)
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: log, pki: pc, accounts: map[string]*account{}, now: time.Now}
	if p.recs, err = openRecords(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.Mailbox.ReadViaLink {
		if p.mail, err = openMailbox(cfg, log); err != nil {
			p.Close()
			return nil, err
		}
	}
	for _, ac := range cfg.Accounts {
		k, err := keys.LoadLinkKey(ac.LinkKeyFile)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("account %s: link key: %w (create it with 'mailproxy init')", ac.Address, err)
		}
		ecfg := client.Config{
			DataDir: AccountDir(cfg.DataDir, ac.Address), User: ac.User(), Domain: ac.Domain(), LinkKey: k, PKI: pc,
			Logger: log.With("account", ac.Address), RetryBudget: ac.RetryBudget, AckSlack: ac.AckSlack,
			RetrieveInterval: ac.RetrieveInterval, RetrieveBatch: ac.RetrieveBatch, QueueLifetime: cfg.QueueLifetime,
			// Mail to a provider down but still in the consensus waits, as for one out of it,
			// instead of bouncing once the retry budget is spent (client.md section 4).
			RetryFor: cfg.QueueLifetime,
			// The agent API hands what arrives in the user's queue to the user's programs;
			// without it nothing consumes queue items, which are discarded.
			Receive: cfg.Agent.ListenAddress != "",
		}
		if p.mail != nil {
			ecfg.ReadMail = readMail(p.mail, LocalUser(ac), log.With("account", ac.Address))
		}
		e, err := client.New(ecfg)
		if err != nil {
			k.Wipe()
			p.Close()
			return nil, fmt.Errorf("account %s: %w", ac.Address, err)
		}
		a := &account{cfg: ac, key: k, engine: e}
		p.accounts[ac.Address] = a
		if ac.Keyring != "" && ac.EncryptMode() != config.EncryptNever {
			if a.keyring, err = message.LoadKeyring(ac.Keyring); err != nil {
				p.Close()
				return nil, fmt.Errorf("account %s: %w", ac.Address, err)
			}
			log.Info("keyring loaded", "account", ac.Address, "addresses", a.keyring.Len())
		}
		p.order = append(p.order, ac.Address)
	}
	if cfg.Agent.ListenAddress != "" {
		tok, err := adminauth.LoadOrCreate(cfg.Agent.TokenFile)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("[agent] token_file: %w", err)
		}
		var acs []agent.Account
		for _, addr := range p.order {
			acs = append(acs, agent.Account{Address: addr, Engine: p.accounts[addr].engine})
		}
		if p.agent, err = agent.New(agent.Config{Accounts: acs, PKI: pc, Token: tok, Logger: log.With("component", "agent")}); err != nil {
			p.Close()
			return nil, fmt.Errorf("[agent]: %w", err)
		}
	}
	return p, nil
}

// AccountDir is where an account's engine keeps its store.
func AccountDir(dataDir, address string) string { return filepath.Join(dataDir, "accounts", address) }

// Close closes every engine and the records, and wipes the link keys. Run must have returned.
func (p *Proxy) Close() error {
	var errs []error
	for _, a := range p.accounts {
		errs = append(errs, a.engine.Close())
		a.key.Wipe()
	}
	if p.recs != nil {
		errs = append(errs, p.recs.close())
	}
	if p.mail != nil {
		errs = append(errs, p.mail.Close())
	}
	return errors.Join(errs...)
}

// Run serves SMTP and the status API and runs the consensus client, every engine and the
// monitor until ctx ends. It returns nil after a clean shutdown.
func (p *Proxy) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", p.cfg.SMTP.ListenAddress)
	if err != nil {
		return fmt.Errorf("smtp listen: %w", err)
	}
	sln, err := listenStatus(p.cfg.StatusSocket)
	if err != nil {
		ln.Close()
		return err
	}
	var imap *imapd.Server
	if p.mail != nil {
		if imap, err = newIMAP(p.cfg, p.mail, p.log); err != nil {
			ln.Close()
			sln.Close()
			return err
		}
	}
	var aln net.Listener
	if p.agent != nil {
		if aln, err = agent.Listen(p.cfg.Agent.ListenAddress); err != nil {
			ln.Close()
			sln.Close()
			return fmt.Errorf("[agent] listen_address: %w", err)
		}
	}
	return p.serve(ctx, ln, sln, imap, aln)
}

// Serve is Run on listeners the caller made, without the local IMAP server (the local
// mailbox still fills).
func (p *Proxy) Serve(ctx context.Context, ln, statusLn net.Listener) error {
	return p.serve(ctx, ln, statusLn, nil, nil)
}

// serve runs everything on the listeners given; imap and agentLn may be nil.
func (p *Proxy) serve(ctx context.Context, ln, statusLn net.Listener, imap *imapd.Server, agentLn net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5+len(p.accounts))
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	goRun("pki", p.pki.Run)
	for _, addr := range p.order {
		goRun("engine "+addr, p.accounts[addr].engine.Run)
	}
	goRun("monitor", p.monitor)
	if imap != nil {
		goRun("imap", imap.Run)
	}
	if agentLn != nil {
		goRun("agent", func(ctx context.Context) error { return p.agent.Serve(ctx, agentLn) })
		p.log.Info("agent API served", "address", agentLn.Addr().String(), "token_file", p.cfg.Agent.TokenFile)
	}

	srv := smtp.NewServer(&backend{p: p})
	srv.Domain = "localhost"
	srv.MaxMessageBytes = int64(p.cfg.SMTP.MaxMessageSize)
	srv.MaxRecipients = p.cfg.SMTP.MaxRecipients
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = smtpLogger{p.log}
	st := newStatusServer(p)
	goRun("status", func(ctx context.Context) error { return st.serve(ctx, statusLn) })
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if imap != nil {
		p.log.Info("local mailbox served over IMAP", "imap", imap.Addr().String(), "password_file", p.cfg.PasswordFile())
	}
	p.log.Info("mailproxy ready", "smtp", ln.Addr().String(), "status", statusLn.Addr().String(), "accounts", p.order)
	serr := srv.Serve(ln)
	cancel()
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if serr != nil && !errors.Is(serr, smtp.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) {
		errs = append(errs, fmt.Errorf("smtp: %w", serr))
	}
	return errors.Join(errs...)
}

type smtpLogger struct{ log *slog.Logger }

func (l smtpLogger) Printf(format string, v ...any) {
	l.log.Warn("smtp", "msg", fmt.Sprintf(format, v...))
}
func (l smtpLogger) Println(v ...any) { l.log.Warn("smtp", "msg", fmt.Sprint(v...)) }

func listenStatus(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// A socket left by a killed mailproxy is stale: the records' file lock (taken in New)
	// proves no other mailproxy uses this data directory.
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
