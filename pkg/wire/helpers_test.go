package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

func newLinkKey(t testing.TB) *keys.LinkPrivateKey {
	t.Helper()
	k, err := keys.GenerateLinkKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Wipe)
	return k
}

// network is one Transport under test with an address to listen on.
type network struct {
	name   string
	tr     Transport
	listen string
}

// networks returns the transports every link test runs on: loopback TCP (port 0) and the
// in-memory transport.
func networks() []network {
	return []network{
		{name: "tcp", tr: TCP, listen: "127.0.0.1:0"},
		{name: "mem", tr: NewMemTransport(), listen: "server"},
	}
}

// allow returns an Authorize function that admits exactly the given keys.
func allow(ks ...keys.LinkPublicKey) func(keys.LinkPublicKey) error {
	return func(k keys.LinkPublicKey) error {
		for _, a := range ks {
			if a.Equal(k) {
				return nil
			}
		}
		return errors.New("unknown link key")
	}
}

// testLogger sends a component's log to the test log, so failures show what happened.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

// running is a Server serving in the background.
type running struct {
	srv    *Server
	addr   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop cancels Serve and waits for it to return.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after cancellation")
		}
	})
}

// serve starts a Server for cfg on n at addr ("" for n.listen) and stops it at cleanup.
func serve(t testing.TB, n network, addr string, cfg ServerConfig) *running {
	t.Helper()
	if addr == "" {
		addr = n.listen
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Geometry.Hops == 0 {
		cfg.Geometry = testGeometry
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := n.tr.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// recorder is a Handle that records every frame it reads and answers each retrieve with an
// empty answer echoing its sequence number.
type recorder struct {
	frames chan *Frame
	peers  chan keys.LinkPublicKey
	conns  chan *Conn
}

func newRecorder() *recorder {
	return &recorder{frames: make(chan *Frame, 1024), peers: make(chan keys.LinkPublicKey, 16), conns: make(chan *Conn, 16)}
}

func (r *recorder) handle(ctx context.Context, c *Conn) {
	r.peers <- c.Peer()
	r.conns <- c
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return
		}
		r.frames <- f
		if f.Cmd == CmdRetrieve {
			if err := c.WriteFrame(&Frame{Cmd: CmdEmpty, Seq: f.Seq}); err != nil {
				return
			}
		}
	}
}

func (r *recorder) next(t testing.TB) *Frame {
	t.Helper()
	select {
	case f := <-r.frames:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame arrived")
		return nil
	}
}

// noConn fails if the handler was called.
func (r *recorder) noConn(t testing.TB) {
	t.Helper()
	select {
	case k := <-r.peers:
		t.Fatalf("handler was called for peer %v", k)
	default:
	}
}

func packet(b byte) *Frame {
	return &Frame{Cmd: CmdSendPacket, Body: fill(testGeometry.PacketSize(), b)}
}

func dialCfg(n network, addr string, key *keys.LinkPrivateKey, remote keys.LinkPublicKey) DialConfig {
	return DialConfig{Geometry: testGeometry, Key: key, Remote: remote, Addr: addr, Transport: n.tr, HandshakeTimeout: 5 * time.Second}
}

func mustDial(t testing.TB, cfg DialConfig) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawDial opens a transport connection without TLS.
func rawDial(t testing.TB, n network, addr string) net.Conn {
	t.Helper()
	c, err := n.tr.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n network) String() string { return fmt.Sprintf("network(%s)", n.name) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
