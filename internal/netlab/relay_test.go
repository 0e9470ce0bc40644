package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// A relayed stream arrives whole and in order in both directions, however the jitter draws each
// chunk's delay, and the end of one direction (half-close) reaches the other side.
func TestRelayKeepsOrder(t *testing.T) {
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := newRelay(front, func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", back.Addr().String())
	}, func(net.Addr) Link { return Link{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond} })
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	// The back end echoes what it reads, then closes when its reading side ends.
	go func() {
		c, err := back.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	want := make([]byte, 1<<20)
	rand.Read(want)
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		// Small writes, so that the relay sees many chunks with independent delays.
		for i := 0; i < len(want); i += 1000 {
			if _, err := c.Write(want[i:min(i+1000, len(want))]); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo through the relay: %d bytes, want %d, equal prefix %d", len(got), len(want), commonPrefix(got, want))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("relay Run: %v", err)
	}
}

// A relay whose back end is not there closes the peer's connection, as a closed port would.
func TestRelayNoBackEnd(t *testing.T) {
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(front, func(context.Context) (net.Conn, error) { return nil, net.ErrClosed },
		func(net.Addr) Link { return Link{} })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.Run(ctx)
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read from a relay without back end: %d bytes, %v; want EOF", n, err)
	}
}

// Each chunk's delay stays within the link's delay plus or minus its jitter, never negative.
func TestLinkDelayBounds(t *testing.T) {
	for _, l := range []Link{{}, {Delay: 50 * time.Millisecond}, {Delay: 50 * time.Millisecond, Jitter: 10 * time.Millisecond}, {Delay: time.Millisecond, Jitter: 5 * time.Millisecond}} {
		for range 1000 {
			d := l.delay()
			if d < 0 || d < l.Delay-l.Jitter || d > l.Delay+l.Jitter {
				t.Fatalf("link %+v: delay %v", l, d)
			}
		}
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
