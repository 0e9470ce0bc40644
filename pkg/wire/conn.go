package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// DefaultHandshakeTimeout bounds the TLS handshake and the ready frame (spec section 5) when
// a configuration leaves it zero.
const DefaultHandshakeTimeout = 10 * time.Second

// Conn is an authenticated link carrying frames: a TLS 1.3 connection whose handshake has
// completed and whose peer passed the pinning checks. ReadFrame and WriteFrame may be called
// from two different goroutines at once (one reader, one writer); concurrent calls of the
// same method are serialized.
type Conn struct {
	tc   *tls.Conn
	join *joinConn // under tc when this package made the TLS connection, else nil
	g    sphinx.Geometry
	peer keys.LinkPublicKey

	rmu  sync.Mutex
	rbuf []byte

	wmu  sync.Mutex
	wbuf []byte

	closeOnce sync.Once
	closeErr  error
}

// NewConn wraps a TLS connection whose handshake has completed. It extracts the peer's link
// key with PeerKey; the pinning itself happened during the handshake (ServerTLSConfig,
// ClientTLSConfig).
func NewConn(g sphinx.Geometry, tc *tls.Conn) (*Conn, error) {
	return newConn(g, tc, nil)
}

// newConn is NewConn for a TLS connection made over join, which then gathers each frame's
// records into one transport write.
func newConn(g sphinx.Geometry, tc *tls.Conn, join *joinConn) (*Conn, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	cs := tc.ConnectionState()
	if !cs.HandshakeComplete {
		return nil, errors.New("wire: TLS handshake not complete")
	}
	peer, err := PeerKey(cs)
	if err != nil {
		return nil, err
	}
	return &Conn{tc: tc, join: join, g: g, peer: peer, rbuf: make([]byte, FrameSize(g)), wbuf: make([]byte, FrameSize(g))}, nil
}

// Geometry returns the geometry that fixes the frame size of the link.
func (c *Conn) Geometry() sphinx.Geometry { return c.g }

// Peer returns the link key of the other end.
func (c *Conn) Peer() keys.LinkPublicKey { return c.peer }

// RemoteAddr returns the transport address of the other end.
func (c *Conn) RemoteAddr() net.Addr { return c.tc.RemoteAddr() }

// ConnectionState returns the TLS state of the link.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// SetReadDeadline sets the deadline for ReadFrame; the zero time means none. A ReadFrame that
// times out leaves the link unusable (a frame may be half read): close it.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for WriteFrame; the zero time means none. After a write
// times out the link is broken: close it.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tc.SetWriteDeadline(t) }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.tc.SetDeadline(t) }

// ReadFrame reads and decodes the next frame. A malformed frame is an error wrapping ErrFrame;
// the peer broke the protocol and the caller should close the link without telling it why.
// At the end of the link the error is io.EOF (or wraps it, or net.ErrClosed after Close).
func (c *Conn) ReadFrame() (*Frame, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if _, err := io.ReadFull(c.tc, c.rbuf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("wire: link ended inside a frame: %w", err)
		}
		return nil, err
	}
	return decode(c.g, c.rbuf)
}

// ReadFrameInto is ReadFrame reading into buf, which must be FrameSize bytes, instead of the
// link's own buffer: the returned frame's Body aliases buf (no copy), so it is valid until the
// caller reuses buf. A mix reads each packet into a pooled buffer, unwraps it there and
// forwards it from there (mixd's hot path). buf may be overwritten even when an error is
// returned.
func (c *Conn) ReadFrameInto(buf []byte) (*Frame, error) {
	if len(buf) != len(c.rbuf) {
		return nil, fmt.Errorf("wire: read buffer of %d bytes, want the frame size %d", len(buf), len(c.rbuf))
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if _, err := io.ReadFull(c.tc, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("wire: link ended inside a frame: %w", err)
		}
		return nil, err
	}
	return decodeAlias(c.g, buf)
}

// ReadFrameTimeout is ReadFrame with a read deadline d from now (none when d <= 0). The
// deadline stays set after the call.
func (c *Conn) ReadFrameTimeout(d time.Duration) (*Frame, error) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	if err := c.tc.SetReadDeadline(t); err != nil {
		return nil, err
	}
	return c.ReadFrame()
}

// WriteFrame encodes f and writes it as one frame. A frame that breaks the field rules is
// refused (ErrFrame) and nothing is written.
func (c *Conn) WriteFrame(f *Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := encodeInto(c.wbuf, c.g, f); err != nil {
		return err
	}
	return c.write(c.wbuf)
}

// WriteFrames writes fs back to back, as one transport write when the link was made by this
// package (Dial, Server): a provider's k answers to a retrieve (spec section 7) leave together,
// one system call instead of k. Each frame is still handed to TLS on its own, so it is cut
// into the same records as by WriteFrame (section 3.1). If any frame breaks the field rules,
// nothing is written (ErrFrame).
func (c *Conn) WriteFrames(fs []*Frame) error {
	for _, f := range fs {
		if f == nil {
			return fmt.Errorf("%w: nil frame", ErrFrame)
		}
		if err := f.check(c.g); err != nil {
			return err
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.join != nil {
		c.join.begin()
	}
	for _, f := range fs {
		if err := encodeInto(c.wbuf, c.g, f); err != nil {
			panic("wire: a checked frame does not encode: " + err.Error())
		}
		if _, err := c.tc.Write(c.wbuf); err != nil {
			if c.join != nil {
				c.join.abort()
			}
			return err
		}
	}
	if c.join == nil {
		return nil
	}
	return c.join.flush()
}

// writeEncoded writes a frame already encoded for this link's geometry.
func (c *Conn) writeEncoded(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.write(b)
}

// write passes one encoded frame to TLS, which cuts it into records (two with the default
// geometry), and the records to the transport in one write when it can (joinConn). c.wmu is
// held.
func (c *Conn) write(b []byte) error {
	if c.join == nil {
		_, err := c.tc.Write(b)
		return err
	}
	c.join.begin()
	if _, err := c.tc.Write(b); err != nil {
		c.join.abort()
		return err
	}
	return c.join.flush()
}

// Close closes the link. It closes the transport connection directly, without a TLS
// close_notify alert: frames are self-delimiting, so truncation is always visible, and
// close_notify could block for seconds on a peer that does not read. Send a CmdDisconnect
// frame first to end a link on purpose. Close may be called more than once and concurrently
// with ReadFrame and WriteFrame, which it interrupts.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.tc.NetConn().Close() })
	return c.closeErr
}

// DialConfig says how to open a link to a server.
type DialConfig struct {
	Geometry sphinx.Geometry
	// Key is this end's link key; the server must authorize its public half.
	Key *keys.LinkPrivateKey
	// Remote is the server's link key, pinned.
	Remote keys.LinkPublicKey
	// Addr is the server's transport address.
	Addr string
	// Transport defaults to TCP.
	Transport Transport
	// HandshakeTimeout bounds connecting, the TLS handshake and the wait for the ready
	// frame together; DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
}

// Dial opens a link: it connects, runs the TLS handshake with the pinning of ClientTLSConfig,
// and waits for the server's ready frame (spec section 4.3), so that a link Dial returns has
// been accepted by the server, authorization and connection limits included.
func Dial(ctx context.Context, cfg DialConfig) (*Conn, error) {
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	tlsCfg, err := ClientTLSConfig(cfg.Key, cfg.Remote)
	if err != nil {
		return nil, err
	}
	return dial(ctx, cfg, tlsCfg)
}

func dial(ctx context.Context, cfg DialConfig, tlsCfg *tls.Config) (*Conn, error) {
	tr := cfg.Transport
	if tr == nil {
		tr = TCP
	}
	timeout := cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := tr.Dial(ctx, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("wire: dial %s: %w", cfg.Addr, err)
	}
	deadline, _ := ctx.Deadline()
	if err := raw.SetDeadline(deadline); err != nil {
		raw.Close()
		return nil, fmt.Errorf("wire: dial %s: %w", cfg.Addr, err)
	}
	// Cancelling ctx interrupts whichever step is running.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	join := &joinConn{Conn: raw}
	tc := tls.Client(join, tlsCfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, dialError(cfg.Addr, err)
	}
	c, err := newConn(cfg.Geometry, tc, join)
	if err != nil {
		raw.Close()
		return nil, err
	}
	f, err := c.ReadFrame()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("wire: %s did not accept the link: %w", cfg.Addr, err)
	}
	if f.Cmd != CmdNoOp {
		c.Close()
		return nil, fmt.Errorf("wire: %s sent %v as its first frame, want %v", cfg.Addr, f.Cmd, CmdNoOp)
	}
	if !stop() || raw.SetDeadline(time.Time{}) != nil {
		c.Close()
		return nil, fmt.Errorf("wire: dial %s: %w", cfg.Addr, context.Cause(ctx))
	}
	return c, nil
}

// joinConn sits between a link's TLS connection and its transport connection. crypto/tls
// writes each record with its own transport write: a frame of the default geometry would leave
// in two writes, two system calls and, on a real network, possibly two bursts with a gap
// between them, an observable split the spec rules out (docs/spec/wire.md section 3.1). While
// Conn writes a frame (begin to flush) joinConn gathers the records and hands them on in one
// write. Other writes (the handshake, alerts, key updates) pass straight through, in order:
// crypto/tls serializes its writes, and mu keeps a write from slipping between gathered records
// and their flush.
type joinConn struct {
	net.Conn
	mu      sync.Mutex
	joining bool
	buf     []byte
}

func (j *joinConn) Write(b []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.joining {
		j.buf = append(j.buf, b...)
		return len(b), nil
	}
	return j.Conn.Write(b)
}

// begin starts gathering the records of one frame.
func (j *joinConn) begin() {
	j.mu.Lock()
	j.joining, j.buf = true, j.buf[:0]
	j.mu.Unlock()
}

// flush writes the gathered records at once and stops gathering. An error breaks the link,
// as any failed write does (the caller closes it).
func (j *joinConn) flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.joining = false
	if len(j.buf) == 0 {
		return nil
	}
	_, err := j.Conn.Write(j.buf)
	j.buf = j.buf[:0]
	return err
}

// abort stops gathering and drops what was gathered: TLS failed the frame, the link is broken.
func (j *joinConn) abort() {
	j.mu.Lock()
	j.joining, j.buf = false, j.buf[:0]
	j.mu.Unlock()
}
