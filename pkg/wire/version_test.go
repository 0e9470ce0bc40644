package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
)

// TestServerRefusesOldVersion: a client of link protocol version 1 gets no link, and the
// server's log says, once at warning level, which versions met and what to do.
func TestServerRefusesOldVersion(t *testing.T) {
	n := networks()[0]
	skey, ckey := newLinkKey(t), newLinkKey(t)
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec := newRecorder()
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: rec.handle, Logger: log})
	old, err := ClientTLSConfig(ckey, skey.Public())
	if err != nil {
		t.Fatal(err)
	}
	old.NextProtos = []string{"panoramix-wire/1"}
	for i := range 2 {
		tc := tls.Client(rawDial(t, n, srv.addr), old)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		err := tc.Handshake()
		tc.Close()
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err.Error() != alertNoApplicationProtocol.Error() {
			t.Fatalf("handshake %d of a version 1 client: %v, want the no_application_protocol alert", i, err)
		}
		waitFor(t, "refusal", func() bool { return srv.srv.Stats().Refused == uint64(i+1) })
	}
	rec.noConn(t)
	got := logs.String()
	want := "the client speaks panoramix-wire/1 and this node speaks panoramix-wire/2 (upgrade the client)"
	if strings.Count(got, want) != 1 {
		t.Fatalf("server log %q: want exactly one warning containing %q", got, want)
	}
	// A current client is still served.
	mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
}

// TestDialOldServer: a client dialing a server of link protocol version 1 gets an error that
// names both versions.
func TestDialOldServer(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey := newLinkKey(t), newLinkKey(t)
			cfg, err := ServerTLSConfig(skey, allow(ckey.Public()))
			if err != nil {
				t.Fatal(err)
			}
			cfg.NextProtos = []string{"panoramix-wire/1"}
			ln, err := n.tr.Listen(n.listen)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer raw.Close()
				raw.SetDeadline(time.Now().Add(10 * time.Second))
				done <- tls.Server(raw, cfg).Handshake()
			}()
			_, err = Dial(context.Background(), dialCfg(n, ln.Addr().String(), ckey, skey.Public()))
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("dial: %v, want ErrVersion", err)
			}
			for _, v := range []string{"panoramix-wire/1", "panoramix-wire/2"} {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("dial error %q does not name %s", err, v)
				}
			}
			if err := <-done; err == nil {
				t.Error("the version 1 server completed the handshake")
			}
		})
	}
}
