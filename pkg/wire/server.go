package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Default connection limits (spec section 4), used when a ServerConfig leaves them zero.
const (
	DefaultMaxConns        = 4096
	DefaultMaxConnsPerPeer = 4
)

// ServerConfig configures a Server.
type ServerConfig struct {
	Geometry sphinx.Geometry
	// Key is the server's link key.
	Key *keys.LinkPrivateKey
	// Authorize decides whether a client's link key may connect (spec section 3.3).
	Authorize func(keys.LinkPublicKey) error
	// Handle serves one link, in its own goroutine, after the ready frame. The Server closes
	// the link when Handle returns; ctx is cancelled when the Server stops.
	Handle func(ctx context.Context, c *Conn)
	// MaxConns bounds the links open at once, handshakes included; DefaultMaxConns when 0.
	MaxConns int
	// MaxConnsPerPeer bounds the links open at once per client link key;
	// DefaultMaxConnsPerPeer when 0.
	MaxConnsPerPeer int
	// HandshakeTimeout bounds the TLS handshake and the ready frame;
	// DefaultHandshakeTimeout when 0.
	HandshakeTimeout time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Transport is used by ListenAndServe; TCP when nil.
	Transport Transport
}

// Server accepts links (spec section 4): it completes the TLS handshake within a timeout,
// authorizes the client, enforces connection limits, sends the ready frame and calls Handle.
// One bad connection never affects the others: each runs in its own goroutine, and a panic in
// Handle is recovered, logged and ends only that link.
type Server struct {
	cfg ServerConfig
	tls *tls.Config
	log *slog.Logger

	mu      sync.Mutex
	total   int
	perPeer map[keys.LinkPublicKey]int
	conns   map[net.Conn]struct{}

	refused       atomic.Uint64
	versionLogged atomic.Int64 // unix nanoseconds of the last version warning
}

// NewServer validates cfg and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("wire: server: %w", err)
	}
	if cfg.Handle == nil {
		return nil, errors.New("wire: server: Handle is nil")
	}
	if cfg.MaxConns < 0 || cfg.MaxConnsPerPeer < 0 || cfg.HandshakeTimeout < 0 {
		return nil, errors.New("wire: server: negative limit or timeout")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerPeer == 0 {
		cfg.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = TCP
	}
	tlsCfg, err := ServerTLSConfig(cfg.Key, cfg.Authorize)
	if err != nil {
		return nil, fmt.Errorf("wire: server: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:     cfg,
		tls:     tlsCfg,
		log:     log,
		perPeer: make(map[keys.LinkPublicKey]int),
		conns:   make(map[net.Conn]struct{}),
	}
	// The ClientHello is the only place that shows which version an old client speaks:
	// crypto/tls then refuses it with a no_application_protocol alert (or, when it offers no
	// ALPN at all, checkConnection does), and the operator reads why here (spec section 3.1).
	tlsCfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if why := versionError(hello.SupportedProtos); why != "" {
			s.logVersion(hello.Conn.RemoteAddr(), why)
		}
		return nil, nil
	}
	return s, nil
}

// versionLogEvery bounds the warnings about clients of another version: anyone can open
// connections, and a flood of them must not flood the log. Between two warnings the refusals
// go to the debug log.
const versionLogEvery = time.Minute

// logVersion logs a client refused for its protocol version.
func (s *Server) logVersion(remote net.Addr, why string) {
	now := time.Now().UnixNano()
	last := s.versionLogged.Load()
	if now-last >= int64(versionLogEvery) && s.versionLogged.CompareAndSwap(last, now) {
		s.log.Warn("wire: refusing a link of another protocol version: "+why, "remote", remote)
		return
	}
	s.log.Debug("wire: refusing a link of another protocol version: "+why, "remote", remote)
}

// ServerStats are counters of a Server.
type ServerStats struct {
	// Open is the number of connections open now, handshakes included.
	Open int
	// Refused counts connections closed before Handle: over a limit, failed or timed-out
	// handshakes, unauthorized clients.
	Refused uint64
}

// Stats returns the current counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ServerStats{Open: s.total, Refused: s.refused.Load()}
}

// ListenAndServe listens on addr with the configured Transport and serves until ctx is
// cancelled.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := s.cfg.Transport.Listen(addr)
	if err != nil {
		return fmt.Errorf("wire: server: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts links on ln until ctx is cancelled, then closes ln and every open link, waits
// for all handlers to return and returns nil. If ln fails for good (it was closed by someone
// else), Serve shuts down the same way and returns that error. Serve takes ownership of ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("wire: server: accept: %w", err)
			}
			// Out of file descriptors and the like: wait and retry, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("wire: accept failed, retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if !s.admit(raw) {
			s.refused.Add(1)
			s.log.Debug("wire: connection limit reached, closing new connection", "remote", raw.RemoteAddr(), "max_conns", s.cfg.MaxConns)
			raw.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, raw)
		}()
	}
}

// admit takes a slot of MaxConns for raw, or reports false when none is left.
func (s *Server) admit(raw net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.cfg.MaxConns {
		return false
	}
	s.total++
	s.conns[raw] = struct{}{}
	return true
}

func (s *Server) release(raw net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	delete(s.conns, raw)
}

// admitPeer takes a slot of MaxConnsPerPeer for peer.
func (s *Server) admitPeer(peer keys.LinkPublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perPeer[peer] >= s.cfg.MaxConnsPerPeer {
		return false
	}
	s.perPeer[peer]++
	return true
}

func (s *Server) releasePeer(peer keys.LinkPublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perPeer[peer]--; s.perPeer[peer] <= 0 {
		delete(s.perPeer, peer)
	}
}

// serveConn runs one connection from handshake to close. Nothing it does can stop the
// Server: errors end the connection, panics are recovered.
func (s *Server) serveConn(ctx context.Context, raw net.Conn) {
	remote := raw.RemoteAddr()
	defer s.release(raw)
	defer raw.Close()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("wire: panic serving link, link closed", "remote", remote, "panic", r, "stack", string(debug.Stack()))
		}
	}()

	c, ok := s.accept(ctx, raw)
	if !ok {
		s.refused.Add(1)
		return
	}
	defer s.releasePeer(c.Peer())
	defer c.Close()
	s.log.Debug("wire: link up", "remote", remote, "peer", c.Peer())
	s.cfg.Handle(ctx, c)
	s.log.Debug("wire: link closed", "remote", remote, "peer", c.Peer())
}

// accept runs the handshake, the per-peer limit and the ready frame under HandshakeTimeout.
// Reasons for refusal go to the debug log only: the client learns nothing but a TLS alert or
// a closed connection (STYLE.md rule 7).
func (s *Server) accept(ctx context.Context, raw net.Conn) (*Conn, bool) {
	remote := raw.RemoteAddr()
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	deadline, _ := hctx.Deadline()
	if err := raw.SetDeadline(deadline); err != nil {
		s.log.Debug("wire: setting handshake deadline", "remote", remote, "err", err)
		return nil, false
	}
	join := &joinConn{Conn: raw}
	tc := tls.Server(join, s.tls)
	if err := tc.HandshakeContext(hctx); err != nil {
		s.log.Debug("wire: handshake failed", "remote", remote, "err", err)
		return nil, false
	}
	c, err := newConn(s.cfg.Geometry, tc, join)
	if err != nil {
		s.log.Debug("wire: link refused", "remote", remote, "err", err)
		return nil, false
	}
	if !s.admitPeer(c.Peer()) {
		s.log.Debug("wire: per-peer connection limit reached, link refused", "remote", remote, "peer", c.Peer(), "max_conns_per_peer", s.cfg.MaxConnsPerPeer)
		return nil, false
	}
	if err := c.WriteFrame(&Frame{Cmd: CmdNoOp}); err != nil {
		s.releasePeer(c.Peer())
		s.log.Debug("wire: sending ready frame", "remote", remote, "err", err)
		return nil, false
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		s.releasePeer(c.Peer())
		return nil, false
	}
	return c, true
}
