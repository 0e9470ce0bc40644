package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// Defaults for the zero values in Config.
const (
	DefaultMaxLiteralSize  = 32 << 20
	DefaultLoginFailures   = 5
	DefaultLoginFailuresIP = 20
	DefaultLoginWindow     = 5 * time.Minute
	DefaultMaxConnections  = 1000
	// A mail program opens a few connections (one per watched folder at most); 20 leaves room
	// for a household or an office behind one address.
	DefaultMaxConnectionsPerIP = 20
	// A client has a minute from its connect to log in: enough for a TLS handshake and a user's
	// password prompt with a program that connects first, and much less than a slot is worth.
	DefaultLoginTimeout      = time.Minute
	DefaultMaxConcurrentAuth = 2
	// One address or one user may have only one password checked at a time, so that with two
	// hash workers a flood always leaves one to everyone else.
	DefaultMaxConcurrentAuthPerIP   = 1
	DefaultMaxConcurrentAuthPerUser = 1
	DefaultMaxAuthQueue             = 32
	DefaultMaxSessionsPerUser       = 20
	DefaultMaxConcurrentAppend      = 8
)

// Config configures a Server.
type Config struct {
	// TLSAddr is the address for implicit TLS (IMAPS, usually :993); "" disables it.
	TLSAddr string
	// Addr is the address for clear-text IMAP with STARTTLS (usually :143); "" disables it.
	Addr string
	// TLS is the server's TLS configuration, with its certificate. Required, except with
	// InsecureAuth and no TLSAddr (then STARTTLS is not offered).
	TLS *tls.Config
	// InsecureAuth allows LOGIN and AUTHENTICATE without TLS. Only for tests on loopback.
	InsecureAuth bool
	// MaxLiteralSize bounds an APPEND literal in bytes; larger ones are refused with TOOBIG
	// before the client sends them. At most mailstore.MaxMessageSize.
	MaxLiteralSize uint32
	// LoginFailures failed logins per user name, and LoginFailuresPerIP per client address (an
	// IPv6 client's /64), are allowed within LoginWindow; further attempts are refused until the
	// window has passed.
	// The address limit is higher because many users may share one address.
	LoginFailures      int
	LoginFailuresPerIP int
	LoginWindow        time.Duration
	// MaxConnections bounds concurrent connections; more are greeted with BYE and closed.
	MaxConnections int
	// MaxConnectionsPerIP bounds the concurrent connections of one client address (an IPv6
	// client's /64), loopback included, so that one client cannot hold every connection slot.
	MaxConnectionsPerIP int
	// LoginTimeout is how long a connection may stay unauthenticated, counted from its accept
	// and not extended by any command; then it is closed.
	LoginTimeout time.Duration
	// MaxSessionsPerUser bounds concurrent logged-in sessions of one user; a login beyond it is
	// refused with LIMIT.
	MaxSessionsPerUser int
	// MaxConcurrentAppend bounds APPENDs whose message is being read into memory at once, so
	// that memory stays below MaxConcurrentAppend*MaxLiteralSize however many clients upload.
	MaxConcurrentAppend int
	// MaxConcurrentAuth bounds concurrent password verifications, each of which uses the
	// argon2id memory cost (64 MiB by default).
	MaxConcurrentAuth int
	// MaxConcurrentAuthPerIP and MaxConcurrentAuthPerUser bound the verifications of one client
	// address and of one user name at once; keep them below MaxConcurrentAuth so that one
	// address or a guesser at one user cannot hold every worker. A few more logins of the same
	// address or user wait their turn; beyond that they are refused at once.
	MaxConcurrentAuthPerIP   int
	MaxConcurrentAuthPerUser int
	// MaxAuthQueue bounds the logins waiting for a hash worker; beyond it logins are refused
	// at once with NO [UNAVAILABLE] instead of queueing.
	MaxAuthQueue int
	// AuthCacheTTL is how long a password checked in full is remembered (as an HMAC in memory,
	// authcache.go) so that the user's next logins need no argon2id; 0 means
	// DefaultAuthCacheTTL, a negative value disables the cache.
	AuthCacheTTL time.Duration
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger

	// beforeHash, when set (by tests), is called with the user name by every login that is about
	// to check a password, while it holds a hash worker: the tests count and hold the checks.
	beforeHash func(user string)
	// onJoin, when set (by tests), is called with the user name by every login that waits for
	// another login's check of the same password (authflight.go) instead of checking its own.
	onJoin func(user string)
}

// Server is the IMAP server.
type Server struct {
	cfg       Config
	store     *mailstore.Store
	log       *slog.Logger
	auth      *authGate
	authCache *authCache
	flights   *authFlights
	appendSem chan struct{}
	connSem   chan struct{}

	connsMu   sync.Mutex
	connsByIP map[string]int // open connections per client address key (addrKey)

	sessionsMu sync.Mutex
	sessions   map[string]int // logged-in sessions per user

	plainLn, tlsLn net.Listener

	conns sync.WaitGroup
}

// New validates cfg and opens the listeners, so that an address in use is reported here. Call
// Run to serve, or Close to give the listeners back.
func New(cfg Config, store *mailstore.Store) (*Server, error) {
	if store == nil {
		return nil, errors.New("imapd: no mail store")
	}
	// Without a certificate the server offers no STARTTLS: only for a clear-text listener with
	// InsecureAuth (mailproxy's local mailbox, whose caller keeps it on loopback).
	noTLS := cfg.TLS == nil && cfg.TLSAddr == "" && cfg.InsecureAuth
	if !noTLS && (cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil)) {
		return nil, errors.New("imapd: a TLS certificate is required (config TLS)")
	}
	if cfg.Addr == "" && cfg.TLSAddr == "" {
		return nil, errors.New("imapd: no listen address (set Addr and/or TLSAddr)")
	}
	if cfg.MaxLiteralSize == 0 {
		cfg.MaxLiteralSize = DefaultMaxLiteralSize
	}
	if cfg.MaxLiteralSize > mailstore.MaxMessageSize {
		return nil, fmt.Errorf("imapd: MaxLiteralSize %d above the store's message limit %d", cfg.MaxLiteralSize, mailstore.MaxMessageSize)
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = DefaultLoginFailures
	}
	if cfg.LoginFailuresPerIP <= 0 {
		cfg.LoginFailuresPerIP = DefaultLoginFailuresIP
	}
	if cfg.LoginWindow <= 0 {
		cfg.LoginWindow = DefaultLoginWindow
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerIP <= 0 {
		cfg.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
	if cfg.MaxSessionsPerUser <= 0 {
		cfg.MaxSessionsPerUser = DefaultMaxSessionsPerUser
	}
	if cfg.MaxConcurrentAppend <= 0 {
		cfg.MaxConcurrentAppend = DefaultMaxConcurrentAppend
	}
	if cfg.MaxConcurrentAuth <= 0 {
		cfg.MaxConcurrentAuth = DefaultMaxConcurrentAuth
	}
	if cfg.MaxConcurrentAuthPerIP <= 0 {
		cfg.MaxConcurrentAuthPerIP = DefaultMaxConcurrentAuthPerIP
	}
	if cfg.MaxConcurrentAuthPerUser <= 0 {
		cfg.MaxConcurrentAuthPerUser = DefaultMaxConcurrentAuthPerUser
	}
	if cfg.MaxAuthQueue <= 0 {
		cfg.MaxAuthQueue = DefaultMaxAuthQueue
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = DefaultAuthCacheTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		store:     store,
		log:       log,
		auth:      newAuthGate(&cfg),
		authCache: newAuthCache(cfg.AuthCacheTTL),
		flights:   newAuthFlights(cfg.MaxSessionsPerUser - 1),
		appendSem: make(chan struct{}, cfg.MaxConcurrentAppend),
		connSem:   make(chan struct{}, cfg.MaxConnections),
		connsByIP: make(map[string]int),
		sessions:  make(map[string]int),
	}
	var err error
	if cfg.Addr != "" {
		if s.plainLn, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, fmt.Errorf("imapd: listen on %s: %w", cfg.Addr, err)
		}
	}
	if cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", cfg.TLSAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("imapd: listen on %s: %w", cfg.TLSAddr, err)
		}
		s.tlsLn = ln
	}
	return s, nil
}

// Addr returns the clear-text (STARTTLS) listener's address, or nil.
func (s *Server) Addr() net.Addr {
	if s.plainLn == nil {
		return nil
	}
	return s.plainLn.Addr()
}

// TLSAddr returns the implicit-TLS listener's address, or nil.
func (s *Server) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// Close closes the listeners of a server that is not running.
func (s *Server) Close() error {
	var errs []error
	for _, ln := range []net.Listener{s.plainLn, s.tlsLn} {
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Run serves until ctx is cancelled, then closes every connection and returns once all of them
// have finished.
func (s *Server) Run(ctx context.Context) error {
	srv := imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps: imap.CapSet{
			imap.CapIMAP4rev1:   {},
			imap.CapUIDPlus:     {},
			imap.CapMove:        {},
			imap.CapNamespace:   {},
			imap.CapChildren:    {},
			imap.CapSpecialUse:  {},
			imap.CapESearch:     {},
			imap.CapStatusSize:  {},
			imap.CapID:          {},
			imap.CapLiteralPlus: {},
			// LIST-EXTENDED (RFC 5258): imapserver parses it, List answers it.
			imap.CapListExtended: {},
			// BINARY (RFC 3516): fetch.go answers BINARY[] and BINARY.SIZE[].
			imap.CapBinary: {},
		},
		Logger:       logAdapter{s.log},
		TLSConfig:    s.cfg.TLS,
		InsecureAuth: s.cfg.InsecureAuth,
	})
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	// The TLS layer goes on top of the connection counting, so that imapserver sees *tls.Conn
	// values and knows the connection is encrypted.
	var lns []net.Listener
	if s.plainLn != nil {
		lns = append(lns, &limitListener{Listener: s.plainLn, s: s})
	}
	if s.tlsLn != nil {
		lns = append(lns, tls.NewListener(&limitListener{Listener: s.tlsLn, s: s, tls: true}, s.cfg.TLS))
	}
	for _, ln := range lns {
		s.log.Info("imap listening", "addr", ln.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("imapd: %w", err)
	}
	srv.Close() // closes the listeners and every connection
	wg.Wait()
	s.conns.Wait()
	s.log.Info("imap server stopped")
	return err
}

// addSession counts a login of user, or reports false if the user has too many sessions.
func (s *Server) addSession(user string) bool {
	s.sessionsMu.Lock()
	defer s.sessionsMu.Unlock()
	if s.sessions[user] >= s.cfg.MaxSessionsPerUser {
		return false
	}
	s.sessions[user]++
	return true
}

func (s *Server) removeSession(user string) {
	s.sessionsMu.Lock()
	defer s.sessionsMu.Unlock()
	if s.sessions[user]--; s.sessions[user] <= 0 {
		delete(s.sessions, user)
	}
}

// logAdapter gives imapserver (which reports panics, I/O and protocol errors) our slog logger.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(format string, args ...any) {
	l.log.Warn("imap: " + fmt.Sprintf(format, args...))
}
