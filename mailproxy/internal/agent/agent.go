package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Defaults of Config (docs/spec/agent.md section 6).
const (
	// DefaultMaxPayload bounds a send's data: the API is for requests and small drops; mail of
	// many megabytes goes through SMTP.
	DefaultMaxPayload = 1 << 20
	// DefaultMaxInFlight bounds the requests being served at once, long-polls included.
	DefaultMaxInFlight = 64
	// DefaultMaxWaiters bounds the long-polls among them, so that waiting clients cannot take
	// every slot from the others.
	DefaultMaxWaiters = 16
	// DefaultMaxWait is the longest wait a long-poll may ask for.
	DefaultMaxWait = 60 * time.Second
	// DefaultMaxConns bounds the open connections (each costs a goroutine and buffers).
	DefaultMaxConns = 256
	// DefaultMaxReceivedBytes bounds the data of one GET received answer (at least one message
	// is always given, whatever its size: the engine's MaxReceiveSize bounds that).
	DefaultMaxReceivedBytes = 16 << 20
	// DefaultPollInterval is how often a status long-poll reads the message's status again
	// (the engine has no notification): it adds up to this much to a reply's latency, for one
	// small read transaction per waiter each time (about 15 µs).
	DefaultPollInterval = 20 * time.Millisecond
	// DefaultReceivePollInterval is how often a received long-poll reads the inbox again: a
	// read of every waiting message's data, so less often; the engine's retrieve interval
	// (250 ms) is about the rate at which messages arrive.
	DefaultReceivePollInterval = 250 * time.Millisecond

	// idempotencyPrefix starts the idempotency key of every message the agent queues: it keeps
	// the agent's keys apart from mailproxy's own (the engine's key space is shared), and it
	// tells mailproxy which messages are the agent's (Owns). A client's key follows keyPrefix;
	// a send without one gets randomPrefix and 16 random bytes in hex.
	idempotencyPrefix = "agent/v1:"
	keyPrefix         = idempotencyPrefix + "k:"
	randomPrefix      = idempotencyPrefix + "r:"
	// MaxIdempotencyKey is the longest idempotency_key a client may send.
	MaxIdempotencyKey = client.MaxIdempotencyKey - len(keyPrefix)
	// maxJSONOverhead is what a send body may hold besides the base64 of its data: field
	// names, domain, service, recipient (at most 64 bytes each in the engine) and the key.
	maxJSONOverhead = 8 << 10
	// maxHeaderBytes bounds a request's header section.
	maxHeaderBytes = 16 << 10
)

// Engine is what the agent needs of a user's client engine; *client.Engine has it.
type Engine interface {
	SendOnce(ctx context.Context, dst client.Destination, data, key []byte) (client.MessageID, bool, error)
	Status(id client.MessageID) (client.Status, error)
	List() ([]client.Status, error)
	Forget(id client.MessageID) error
	Received() ([]client.Received, error)
	DeleteReceived(seq uint64) error
}

// Consensus gives the current consensus document; *pki.Client has it.
type Consensus interface {
	Current(ctx context.Context) (*pki.Document, error)
}

// Account is one of mailproxy's accounts (a user at a provider) and its engine.
type Account struct {
	// Address is the account's mail address (user@domain), which requests name it by.
	Address string
	Engine  Engine
}

// Config configures an Agent. Zero limits take the defaults above.
type Config struct {
	Accounts []Account
	PKI      Consensus
	// Token is the bearer token clients must present (adminauth.LoadOrCreate of the
	// configuration's token_file). Required.
	Token  *adminauth.Token
	Logger *slog.Logger

	MaxPayload       int
	MaxInFlight      int
	MaxWaiters       int
	MaxWait          time.Duration
	MaxConns         int
	MaxReceivedBytes int
	// PollInterval and ReceivePollInterval are the long-polls' intervals (status, received).
	PollInterval        time.Duration
	ReceivePollInterval time.Duration
}

// Agent serves the agent API for a set of accounts.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	accounts map[string]Engine
	order    []string
	inFlight chan struct{}
	waiters  chan struct{}
	handler  http.Handler
}

// New checks cfg and builds the agent's handler.
func New(cfg Config) (*Agent, error) {
	switch {
	case len(cfg.Accounts) == 0:
		return nil, errors.New("agent: no account")
	case cfg.PKI == nil:
		return nil, errors.New("agent: no consensus client")
	case cfg.Token == nil:
		return nil, errors.New("agent: no token")
	case cfg.MaxPayload < 0 || cfg.MaxInFlight < 0 || cfg.MaxWaiters < 0 || cfg.MaxWait < 0 || cfg.MaxConns < 0 || cfg.MaxReceivedBytes < 0 || cfg.PollInterval < 0 || cfg.ReceivePollInterval < 0:
		return nil, errors.New("agent: negative limit in config")
	}
	setDefault(&cfg.MaxPayload, DefaultMaxPayload)
	setDefault(&cfg.MaxInFlight, DefaultMaxInFlight)
	setDefault(&cfg.MaxWaiters, DefaultMaxWaiters)
	setDefault(&cfg.MaxWait, DefaultMaxWait)
	setDefault(&cfg.MaxConns, DefaultMaxConns)
	setDefault(&cfg.MaxReceivedBytes, DefaultMaxReceivedBytes)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.ReceivePollInterval, DefaultReceivePollInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, accounts: map[string]Engine{},
		inFlight: make(chan struct{}, cfg.MaxInFlight), waiters: make(chan struct{}, min(cfg.MaxWaiters, cfg.MaxInFlight))}
	for _, acc := range cfg.Accounts {
		if acc.Engine == nil || acc.Address == "" {
			return nil, fmt.Errorf("agent: account %q without address or engine", acc.Address)
		}
		if _, dup := a.accounts[acc.Address]; dup {
			return nil, fmt.Errorf("agent: account %s listed twice", acc.Address)
		}
		a.accounts[acc.Address] = acc.Engine
		a.order = append(a.order, acc.Address)
	}
	a.handler = adminauth.Require(cfg.Token, a.recover(a.limit(a.routes())))
	return a, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Handler is the whole API: the checks of adminauth, then the in-flight bound, then the
// endpoints of docs/spec/agent.md section 3.
func (a *Agent) Handler() http.Handler { return a.handler }

// Owns reports whether the agent queued the message: its status is for the agent's clients, and
// mailproxy must not treat it as mail (no bounce when it fails).
func Owns(st client.Status) bool {
	return strings.HasPrefix(string(st.IdempotencyKey), idempotencyPrefix)
}

// Listen opens a TCP listener on addr, which must be a loopback address: the API is for
// programs of the user on this machine.
func Listen(addr string) (net.Listener, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return ln, nil
}

// CheckLoopback accepts host:port with host localhost or a loopback IP address.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("agent: listen address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if !strings.EqualFold(host, "localhost") && (err != nil || !ip.IsLoopback()) {
		return fmt.Errorf("agent: listen address %q: want a loopback address (127.0.0.1, [::1] or localhost): the API is for programs on this machine", addr)
	}
	return nil
}

// Serve serves the API on ln until ctx ends, then shuts the server down (long-polls return at
// once: their contexts derive from ctx) and returns nil. It closes ln.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: a.handler,
		// Slow clients hold a connection slot at most this long per phase.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      a.cfg.MaxWait + 30*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(newLimitListener(ln, a.cfg.MaxConns)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent: %w", err)
	case <-ctx.Done():
	}
	// Requests end at once (their contexts derive from ctx); what Shutdown may still wait for
	// is a connection that never sent a request, which net/http counts as busy for 5 s. Those
	// are closed.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Debug("agent: closing connections left at shutdown", "err", err)
		srv.Close()
	}
	<-errc
	return nil
}

// shutdownGrace is how long Serve lets requests in progress finish when its context ends.
const shutdownGrace = time.Second

// limit refuses a request at once (503, Retry-After) when MaxInFlight are being served: a
// flood gets quick refusals instead of a queue, and the engine, shared with SMTP submission,
// never has more than MaxInFlight agent calls in progress.
func (a *Agent) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.inFlight <- struct{}{}:
			defer func() { <-a.inFlight }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, codeBusy, fmt.Sprintf("%d requests in flight, the most the agent serves at once; retry later", cap(a.inFlight)))
		}
	})
}

// recover answers 500 for a handler that panicked, so that one bad request costs only itself.
func (a *Agent) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("agent request panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, codeInternal, "internal error; see mailproxy's log")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// limitListener accepts at most n connections at once; further ones wait in the kernel's
// backlog until one closes.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func newLimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
