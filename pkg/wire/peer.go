package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Defaults of PeerConfig (spec section 6).
const (
	DefaultQueueLen     = 1024
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// PeerConfig configures a Peer.
type PeerConfig struct {
	Geometry sphinx.Geometry
	// Key is this end's link key.
	Key *keys.LinkPrivateKey
	// Remote is the link key of the node to connect to, pinned.
	Remote keys.LinkPublicKey
	// Addr is the remote's transport address.
	Addr string
	// QueueLen is how many frames wait for the link before Send drops; DefaultQueueLen
	// when 0.
	QueueLen int
	// Transport defaults to TCP.
	Transport Transport
	// Logger defaults to discarding.
	Logger *slog.Logger
	// OnFrame receives the frames the remote sends back, other than no-op and disconnect,
	// in the Peer's reading goroutine. May be nil (such frames are discarded). It must not
	// block for long: while it runs nothing is read from the link, and Run waits for it to
	// return when the link ends.
	OnFrame func(*Frame)

	// MinBackoff and MaxBackoff bound the wait between connection attempts (spec section 6);
	// DefaultMinBackoff and DefaultMaxBackoff when 0.
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout is as in DialConfig.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds writing one frame; a link that cannot take a frame in that time is
	// dropped and redialled. DefaultWriteTimeout when 0.
	WriteTimeout time.Duration
}

// PeerStats are counters of a Peer.
type PeerStats struct {
	// Sent counts frames written to a link.
	Sent uint64
	// Dropped counts frames Send refused: queue full, Peer stopped, or invalid frame.
	Dropped uint64
	// Lost counts frames taken from the queue and given up: a frame whose write fails is
	// tried once more on the next link (spec section 6), and lost if that fails too or the
	// Peer stops first. Frames still queued when the Peer stops are not counted.
	Lost uint64
	// Reconnects counts links established after the first.
	Reconnects uint64
	// DialFailures counts failed connection attempts.
	DialFailures uint64
	// Queued is the number of frames waiting now.
	Queued int
	// Connected reports whether a link is up now.
	Connected bool
}

// Peer is an outgoing link to one node (spec section 6): a bounded queue of encoded frames,
// one goroutine that keeps a link up and writes the queue to it, reconnecting with capped
// exponential backoff with jitter. Send never blocks, so a slow or dead remote never holds up
// the caller, and since each Peer has its own queue and goroutines, nor other Peers.
type Peer struct {
	cfg   PeerConfig
	tls   *tls.Config
	log   *slog.Logger
	size  int
	queue chan *[]byte
	pool  sync.Pool // of *[]byte, FrameSize bytes each

	stopped   atomic.Bool
	connected atomic.Bool
	sent      atomic.Uint64
	dropped   atomic.Uint64
	lost      atomic.Uint64
	connects  atomic.Uint64
	dialFails atomic.Uint64
}

// NewPeer validates cfg and returns a Peer. Frames may be sent before Run starts; they wait
// in the queue.
func NewPeer(cfg PeerConfig) (*Peer, error) {
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("wire: peer: %w", err)
	}
	if cfg.Addr == "" {
		return nil, errors.New("wire: peer: empty address")
	}
	if cfg.QueueLen < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.HandshakeTimeout < 0 || cfg.WriteTimeout < 0 {
		return nil, errors.New("wire: peer: negative queue length or duration")
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("wire: peer: max backoff %v below min backoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = TCP
	}
	tlsCfg, err := ClientTLSConfig(cfg.Key, cfg.Remote)
	if err != nil {
		return nil, fmt.Errorf("wire: peer: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Peer{
		cfg:   cfg,
		tls:   tlsCfg,
		log:   log.With("peer", cfg.Remote.String(), "addr", cfg.Addr),
		size:  FrameSize(cfg.Geometry),
		queue: make(chan *[]byte, cfg.QueueLen),
	}
	p.pool.New = func() any { b := make([]byte, p.size); return &b }
	return p, nil
}

// Send encodes f and queues it for the link. It never blocks: it returns false, and counts
// the frame as dropped, when the queue is full, the Peer has stopped, or f breaks the field
// rules of the spec (logged as an error: that is a bug in the caller). f is not retained.
func (p *Peer) Send(f *Frame) bool {
	if p.stopped.Load() {
		p.dropped.Add(1)
		return false
	}
	buf := p.pool.Get().(*[]byte)
	if err := encodeInto(*buf, p.cfg.Geometry, f); err != nil {
		p.pool.Put(buf)
		p.dropped.Add(1)
		p.log.Error("wire: refusing to send an invalid frame", "err", err)
		return false
	}
	select {
	case p.queue <- buf:
		return true
	default:
		p.pool.Put(buf)
		p.dropped.Add(1)
		return false
	}
}

// Stats returns the current counters.
func (p *Peer) Stats() PeerStats {
	var reconnects uint64
	if n := p.connects.Load(); n > 0 {
		reconnects = n - 1
	}
	return PeerStats{
		Sent:         p.sent.Load(),
		Dropped:      p.dropped.Load(),
		Lost:         p.lost.Load(),
		Reconnects:   reconnects,
		DialFailures: p.dialFails.Load(),
		Queued:       len(p.queue),
		Connected:    p.connected.Load(),
	}
}

// Run keeps the link up and writes queued frames until ctx is cancelled. On the way out it
// sends a disconnect frame if a link is up, closes it and returns nil; frames still queued
// are discarded and later Sends return false. Run must be called at most once.
func (p *Peer) Run(ctx context.Context) error {
	if p.stopped.Load() {
		return errors.New("wire: peer: Run called on a stopped peer")
	}
	defer p.stopped.Store(true)
	var pending *[]byte // a frame whose write failed, tried once more on the next link
	defer func() {
		if pending != nil {
			p.lost.Add(1)
		}
	}()
	backoff := time.Duration(0)
	for {
		if ctx.Err() != nil {
			return nil
		}
		c, err := dial(ctx, DialConfig{
			Geometry:         p.cfg.Geometry,
			Key:              p.cfg.Key,
			Remote:           p.cfg.Remote,
			Addr:             p.cfg.Addr,
			Transport:        p.cfg.Transport,
			HandshakeTimeout: p.cfg.HandshakeTimeout,
		}, p.tls)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.dialFails.Add(1)
			backoff = nextBackoff(backoff, p.cfg.MinBackoff, p.cfg.MaxBackoff)
			wait := jitter(backoff)
			p.log.Debug("wire: connecting failed", "err", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		p.connects.Add(1)
		p.connected.Store(true)
		p.log.Debug("wire: link up")
		up := time.Now()
		pending = p.serve(ctx, c, pending)
		p.connected.Store(false)
		if ctx.Err() == nil {
			// A link that stayed up resets the backoff; one that a remote accepts and drops
			// at once does not, so such a remote is not hammered.
			if time.Since(up) >= p.cfg.MaxBackoff {
				backoff = 0
			}
			backoff = nextBackoff(backoff, p.cfg.MinBackoff, p.cfg.MaxBackoff)
			select {
			case <-time.After(jitter(backoff)):
			case <-ctx.Done():
			}
		}
	}
}

// serve writes frames to c until c fails or ctx is cancelled, and returns a frame whose write
// failed (if it should be tried again) or nil.
func (p *Peer) serve(ctx context.Context, c *Conn, pending *[]byte) *[]byte {
	linkDone := make(chan struct{})
	readerDone := make(chan struct{})
	var closeOnce sync.Once
	end := func() { closeOnce.Do(func() { close(linkDone) }) }
	go func() {
		defer close(readerDone)
		defer end()
		p.read(c)
	}()
	defer func() {
		c.Close()
		<-readerDone
	}()

	write := func(b *[]byte) error {
		if err := c.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout)); err != nil {
			return err
		}
		return c.writeEncoded(*b)
	}
	if pending != nil {
		if err := write(pending); err != nil {
			p.lost.Add(1)
			p.log.Debug("wire: link failed, frame lost", "err", err)
			p.pool.Put(pending)
			return nil
		}
		p.sent.Add(1)
		p.pool.Put(pending)
	}
	for {
		select {
		case <-ctx.Done():
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.WriteFrame(&Frame{Cmd: CmdDisconnect})
			return nil
		case <-linkDone:
			return nil
		case b := <-p.queue:
			if err := write(b); err != nil {
				p.log.Debug("wire: link failed, frame kept for the next link", "err", err)
				return b
			}
			p.sent.Add(1)
			p.pool.Put(b)
		}
	}
}

// read delivers what the remote sends until the link ends.
func (p *Peer) read(c *Conn) {
	for {
		f, err := c.ReadFrame()
		if err != nil {
			p.log.Debug("wire: link ended", "err", err)
			return
		}
		switch f.Cmd {
		case CmdNoOp:
		case CmdDisconnect:
			p.log.Debug("wire: remote disconnected")
			return
		default:
			if p.cfg.OnFrame != nil {
				p.cfg.OnFrame(f)
			}
		}
	}
}

// nextBackoff doubles d within [lo, hi].
func nextBackoff(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	return min(2*d, hi)
}

// jitter returns a duration drawn uniformly from [d/2, d], so that peers that lost a remote
// at the same moment do not all come back at the same moment.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
