package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Transport is the network under the links: real TCP sockets (TCP) or an in-memory network
// for tests that run many nodes in one process (NewMemTransport).
type Transport interface {
	Listen(addr string) (net.Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// TCP is the Transport of real sockets. Addresses are host:port; Go's defaults apply (TCP
// keep-alive probes every 15 s, Nagle off).
var TCP Transport = tcpTransport{}

type tcpTransport struct{}

func (tcpTransport) Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

func (tcpTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// memBufferSize is how many bytes each direction of an in-memory connection holds before
// Write blocks, about a loopback socket buffer: enough that two ends writing at once without
// reading do not deadlock on a few frames, as with TCP.
const memBufferSize = 256 << 10

// errConnRefused is what dialing an in-memory address without a listener returns.
var errConnRefused = errors.New("wire: in-memory transport: connection refused")

// NewMemTransport returns an in-memory Transport. Addresses are arbitrary strings, one
// listener per address; a closed listener frees its address. Connections are buffered in
// both directions (memBufferSize each) and support deadlines, so TLS and the frame layer run
// on them unchanged.
func NewMemTransport() Transport {
	return &memTransport{listeners: make(map[string]*memListener)}
}

type memTransport struct {
	mu        sync.Mutex
	listeners map[string]*memListener
}

func (t *memTransport) Listen(addr string) (net.Listener, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.listeners[addr]; ok {
		return nil, fmt.Errorf("wire: in-memory transport: listen %q: address in use", addr)
	}
	l := &memListener{t: t, addr: memAddr(addr), accept: make(chan net.Conn), done: make(chan struct{})}
	t.listeners[addr] = l
	return l, nil
}

func (t *memTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	t.mu.Lock()
	l := t.listeners[addr]
	t.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial %q: %w", addr, errConnRefused)
	}
	client, server := memPipe(memAddr("client->"+addr), l.addr)
	select {
	case l.accept <- server:
		return client, nil
	case <-l.done:
		return nil, fmt.Errorf("dial %q: %w", addr, errConnRefused)
	case <-ctx.Done():
		return nil, fmt.Errorf("dial %q: %w", addr, ctx.Err())
	}
}

type memAddr string

func (memAddr) Network() string  { return "mem" }
func (a memAddr) String() string { return string(a) }

type memListener struct {
	t      *memTransport
	addr   memAddr
	accept chan net.Conn
	once   sync.Once
	done   chan struct{}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.t.mu.Lock()
		if l.t.listeners[string(l.addr)] == l {
			delete(l.t.listeners, string(l.addr))
		}
		l.t.mu.Unlock()
	})
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

// memStream is one direction of an in-memory connection.
type memStream struct {
	mu           sync.Mutex
	buf          []byte
	writerClosed bool          // the writing end closed: the reader gets EOF after the data
	readerClosed bool          // the reading end closed: the writer gets an error
	data         chan struct{} // cap 1: something changed for the reader
	space        chan struct{} // cap 1: something changed for the writer
}

func newMemStream() *memStream {
	return &memStream{data: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func memPipe(a, b memAddr) (*memConn, *memConn) {
	ab, ba := newMemStream(), newMemStream()
	x := &memConn{r: ba, w: ab, local: a, remote: b, done: make(chan struct{}), rd: newDeadline(), wd: newDeadline()}
	y := &memConn{r: ab, w: ba, local: b, remote: a, done: make(chan struct{}), rd: newDeadline(), wd: newDeadline()}
	return x, y
}

// memConn is one end of an in-memory connection.
type memConn struct {
	r, w          *memStream
	local, remote memAddr
	rd, wd        *deadline
	once          sync.Once
	done          chan struct{} // closed by Close
}

func (c *memConn) Read(b []byte) (int, error) {
	for {
		select {
		case <-c.done:
			return 0, net.ErrClosed
		case <-c.rd.wait():
			return 0, os.ErrDeadlineExceeded
		default:
		}
		s := c.r
		s.mu.Lock()
		if len(s.buf) > 0 {
			n := copy(b, s.buf)
			s.buf = s.buf[n:]
			if len(s.buf) == 0 {
				s.buf = nil
			}
			s.mu.Unlock()
			notify(s.space)
			return n, nil
		}
		eof := s.writerClosed
		s.mu.Unlock()
		if eof {
			return 0, io.EOF
		}
		if len(b) == 0 {
			return 0, nil
		}
		select {
		case <-s.data:
		case <-c.done:
		case <-c.rd.wait():
		}
	}
}

func (c *memConn) Write(b []byte) (int, error) {
	written := 0
	for {
		select {
		case <-c.done:
			return written, net.ErrClosed
		case <-c.wd.wait():
			return written, os.ErrDeadlineExceeded
		default:
		}
		s := c.w
		s.mu.Lock()
		if s.readerClosed {
			s.mu.Unlock()
			return written, io.ErrClosedPipe
		}
		if room := memBufferSize - len(s.buf); room > 0 && len(b) > 0 {
			n := min(room, len(b))
			s.buf = append(s.buf, b[:n]...)
			b = b[n:]
			written += n
		}
		s.mu.Unlock()
		notify(s.data)
		if len(b) == 0 {
			return written, nil
		}
		select {
		case <-s.space:
		case <-c.done:
		case <-c.wd.wait():
		}
	}
}

func (c *memConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.w.mu.Lock()
		c.w.writerClosed = true
		c.w.mu.Unlock()
		notify(c.w.data)
		c.r.mu.Lock()
		c.r.readerClosed = true
		c.r.buf = nil
		c.r.mu.Unlock()
		notify(c.r.space)
		c.rd.set(time.Time{})
		c.wd.set(time.Time{})
	})
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a settable point in time whose channel is closed once it has passed.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func newDeadline() *deadline { return &deadline{ch: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired: wait until its function has closed ch
	}
	d.timer = nil
	expired := false
	select {
	case <-d.ch:
		expired = true
	default:
	}
	if t.IsZero() {
		if expired {
			d.ch = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if expired {
			d.ch = make(chan struct{})
		}
		ch := d.ch
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !expired {
		close(d.ch)
	}
}

func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
