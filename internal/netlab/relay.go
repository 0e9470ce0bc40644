package netlab

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// relayChunk is the most a relay reads at once; each chunk is delayed as one unit.
const relayChunk = 32 << 10

// relayQueue is how many chunks one direction holds in flight: a bound on the relay's memory
// (relayQueue*relayChunk per direction), past which the reader waits like a full TCP window.
const relayQueue = 64

// Link is the delay of one path between two hosts, applied in each direction.
type Link struct {
	// Delay is the one-way delay; Jitter the most a chunk's delay differs from it (uniformly).
	Delay, Jitter time.Duration
}

// delay draws one chunk's delay.
func (l Link) delay() time.Duration {
	d := l.Delay
	if l.Jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*l.Jitter)+1)) - l.Jitter
	}
	return max(d, 0)
}

// relay accepts connections on ln and joins each to a connection from dial, holding every chunk
// of bytes for the link of the connecting peer (link), in each direction, in order.
type relay struct {
	ln   net.Listener
	dial func(ctx context.Context) (net.Conn, error)
	link func(peer net.Addr) Link

	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool // set when Run ends: serve then refuses to start its pipes
}

func newRelay(ln net.Listener, dial func(context.Context) (net.Conn, error), link func(net.Addr) Link) *relay {
	return &relay{ln: ln, dial: dial, link: link, conns: map[net.Conn]struct{}{}}
}

// Run serves until ctx ends, then closes every connection it made and waits for them.
func (r *relay) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.ln.Close() })
	defer stop()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			r.mu.Lock()
			r.closed = true
			for c := range r.conns {
				c.Close()
			}
			r.mu.Unlock()
			r.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.serve(ctx, c)
		}()
	}
}

// track records the connections of one relayed stream so that Run can close them; false
// when Run has ended.
func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *relay) untrack(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

func (r *relay) serve(ctx context.Context, c net.Conn) {
	defer c.Close()
	link := r.link(c.RemoteAddr())
	// The connection's set-up crosses the link once before the listener sees it, as a SYN would.
	select {
	case <-time.After(link.delay()):
	case <-ctx.Done():
		return
	}
	b, err := r.dial(ctx)
	if err != nil {
		return // the peer sees its connection closed, as when nothing listens
	}
	defer b.Close()
	if !r.track(c, b) {
		return
	}
	defer r.untrack(c, b)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(b, c, link) }()
	go func() { defer wg.Done(); pipe(c, b, link) }()
	wg.Wait()
}

// halfCloser is a connection whose sending side can be closed alone (TCP's FIN).
type halfCloser interface{ CloseWrite() error }

// pipe copies src to dst, each chunk written no sooner than its delay after it was read and
// never before an earlier chunk, so the stream keeps its order whatever the jitter. At src's end
// it half-closes dst; on a write error it closes both, which ends the other direction too.
func pipe(dst, src net.Conn, link Link) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	ch := make(chan chunk, relayQueue)
	go func() {
		defer close(ch)
		var last time.Time
		for {
			buf := make([]byte, relayChunk)
			n, err := src.Read(buf)
			if n > 0 {
				due := time.Now().Add(link.delay())
				if due.Before(last) {
					due = last
				}
				last = due
				ch <- chunk{buf[:n], due}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			dst.Close()
			src.Close()
			for range ch {
			}
			return
		}
	}
	if hc, ok := dst.(halfCloser); ok {
		if err := hc.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			dst.Close()
		}
	} else {
		dst.Close()
	}
}
