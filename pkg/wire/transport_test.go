package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func memPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	tr := NewMemTransport()
	ln, err := tr.Listen("a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err = tr.Dial(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func TestMemTransportAddresses(t *testing.T) {
	tr := NewMemTransport()
	if _, err := tr.Dial(context.Background(), "nobody"); !errors.Is(err, errConnRefused) {
		t.Fatalf("dial without listener: %v", err)
	}
	ln, err := tr.Listen("a")
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != "a" || ln.Addr().Network() != "mem" {
		t.Fatalf("listener address %v/%v", ln.Addr().Network(), ln.Addr())
	}
	if _, err := tr.Listen("a"); err == nil {
		t.Fatal("second listener on one address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := tr.Dial(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial that nobody accepts: %v, want the context's error", err)
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	ln2, err := tr.Listen("a")
	if err != nil {
		t.Fatalf("address not freed by Close: %v", err)
	}
	ln2.Close()
}

func TestMemConnBuffersAndEOF(t *testing.T) {
	c, s := memPair(t)
	// Both ends write before either reads: the buffer takes it, as a socket would.
	msg := bytes.Repeat([]byte("x"), memBufferSize/2)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %v", err)
	}
	if _, err := c.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	rest, err := io.ReadAll(s)
	if err != nil || string(rest) != "tail" {
		t.Fatalf("after the peer closed: %q, %v; want the data, then EOF", rest, err)
	}
	if _, err := s.Write([]byte("y")); err == nil {
		t.Fatal("write to a closed peer succeeded")
	}
	if _, err := c.Read(got); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed end: %v", err)
	}
}

func TestMemConnDeadlines(t *testing.T) {
	c, s := memPair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	// Clearing the deadline makes the end usable again.
	c.SetReadDeadline(time.Time{})
	go s.Write([]byte("z"))
	b := make([]byte, 1)
	if _, err := c.Read(b); err != nil || b[0] != 'z' {
		t.Fatalf("read after clearing the deadline: %v", err)
	}
	// A writer blocked on a full buffer gives up at its deadline.
	c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err := c.Write(make([]byte, memBufferSize+1))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != memBufferSize {
		t.Fatalf("write into a full buffer: n=%d err=%v", n, err)
	}
	// A deadline in the past fails at once; a blocked Read is woken by Close.
	s.SetDeadline(time.Now().Add(-time.Second))
	if _, err := s.Write([]byte("a")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write with a past deadline: %v", err)
	}
	s.SetDeadline(time.Time{})
	c2, s2 := memPair(t)
	done := make(chan error, 1)
	go func() { _, err := s2.Read(make([]byte, 1)); done <- err }()
	time.Sleep(10 * time.Millisecond)
	s2.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked read after Close: %v", err)
	}
	_ = c2
}
