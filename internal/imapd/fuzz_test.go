package imapd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
)

// maxFuzzSession bounds one fuzzed session's bytes: above imapserver's 50 KiB command limit, so
// that the limit itself is exercised.
const maxFuzzSession = 64 << 10

// loadSessionSeeds reads testdata/sessions/*.txt: the command lines a client sends after its
// login, one a line, stored with LF line ends that are sent as CRLF (APPEND literal sizes in the
// files count the CRLF).
func loadSessionSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "sessions", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seeds := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds[filepath.Base(f)] = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
	}
	return seeds
}

// The seed set is not empty, and every seed is a session the server answers with success
// somewhere, so that the seeds lead the fuzzer into selected mailboxes, literals and IDLE.
func TestSessionSeeds(t *testing.T) {
	seeds := loadSessionSeeds(t)
	if len(seeds) == 0 {
		t.Fatal("no seeds in testdata/sessions")
	}
	cert, _ := selfSigned(t)
	for name, s := range seeds {
		t.Run(name, func(t *testing.T) {
			out := fuzzSession(t, cert, s)
			oks := 0
			for _, l := range strings.Split(out, "\r\n") {
				if f := strings.Fields(l); len(f) > 1 && f[0] != "*" && f[0] != "+" && f[1] == "OK" {
					oks++
				}
			}
			if oks == 0 {
				t.Errorf("no command of the seed succeeded:\n%s", out)
			}
		})
	}
}

// FuzzIMAPSession sends arbitrary bytes as the commands of a logged-in client to a running
// server over loopback, with a fresh store holding two messages. Whatever the bytes, the server
// does not panic (no command's panic is recovered either), closes the connection once the
// client has ended its side, and still serves a new session of the same user afterwards.
func FuzzIMAPSession(f *testing.F) {
	for _, s := range loadSessionSeeds(f) {
		f.Add(s)
	}
	cert, _ := selfSigned(f)
	f.Fuzz(func(t *testing.T, session []byte) {
		if len(session) > maxFuzzSession {
			return
		}
		fuzzSession(t, cert, session)
	})
}

// fuzzSession runs session against a new server and returns what the server sent in answer.
func fuzzSession(t *testing.T, cert tls.Certificate, session []byte) string {
	store, err := mailstore.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	env := &testEnv{store: store}
	env.addUser(t, "bob", "pw", 0)
	for i := 1; i <= 2; i++ {
		if _, err := store.Deliver("bob", mailstore.Inbox, testMessage(i, "kept"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncbuf.Buffer{}
	srv, err := New(Config{
		Addr: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, InsecureAuth: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}, store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not shut down within 10s")
		}
		if t.Failed() {
			t.Logf("session %q\nserver log:\n%s", session, logs.String())
		}
	}()

	c, r := fuzzLogin(t, srv.Addr().String())
	// The client's side ends after the session; a command still incomplete then (an
	// announced literal, say) is the server's to give up on.
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(session)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, err := io.ReadAll(r)
	c.Close()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server had not closed the connection 10 s after the client's end of input; it sent:\n%.2000s", out)
		}
		// A reset is a close too (the server closed with input unread).
	}
	<-werr // the server may close before reading everything: a failed write is fine
	if s := logs.String(); strings.Contains(s, "panic in imap command") || strings.Contains(s, "panic handling command") {
		t.Fatalf("a command panicked:\n%s", s)
	}
	// The server still serves the user.
	c2, r2 := fuzzLogin(t, srv.Addr().String())
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c2, "z LIST \"\" \"*\"\r\n")
	for {
		l, err := r2.ReadString('\n')
		if err != nil {
			t.Fatalf("LIST after the session: %v", err)
		}
		if st, ok := strings.CutPrefix(l, "z "); ok {
			if !strings.HasPrefix(st, "OK") {
				t.Fatalf("LIST after the session: %q", st)
			}
			break
		}
	}
	return string(out)
}

// fuzzLogin connects in clear text (the server allows it for this test) and logs in as bob.
func fuzzLogin(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if _, err := fmt.Fprintf(c, "a LOGIN bob pw\r\n"); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if st, ok := strings.CutPrefix(l, "a "); ok {
			if !strings.HasPrefix(st, "OK") {
				t.Fatalf("login: %q", st)
			}
			break
		}
	}
	c.SetDeadline(time.Time{})
	return c, r
}
