package proxy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
)

// The local mailbox: a mail handed over twice under one id (a crash between the store's commit
// and the engine's deletion) is stored once; the local IMAP server lets the account's user in
// with the password file's password and no TLS, offers no STARTTLS (so a mail program asks for
// no certificate), and shows the mail; a wrong password does not get in.
func TestLocalMailbox(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{DataDir: dir, IMAP: config.IMAP{ListenAddress: "127.0.0.1:0"}, Mailbox: config.Mailbox{ReadViaLink: true},
		Accounts: []config.Account{{Address: "bob@beta.example"}}}
	log := slog.New(slog.DiscardHandler)
	st, err := openMailbox(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pw, err := ReadPassword(cfg.PasswordFile())
	if err != nil {
		t.Fatal(err)
	}
	read := readMail(st, "bob", log)
	msg := []byte("From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: through the link\r\n\r\nhello\r\n")
	for range 2 {
		if err := read(context.Background(), sealmail.ID{1, 2, 3}, msg); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := newIMAP(cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := imapclient.DialInsecure(srv.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has(imap.CapStartTLS) {
		t.Error("the local server offers STARTTLS: a mail program would want a certificate")
	}
	if err := c.Login("bob", pw+"x").Wait(); err == nil {
		t.Fatal("a wrong password got in")
	}
	if err := c.Login("bob", pw).Wait(); err != nil {
		t.Fatalf("login with the password file's password: %v", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("%d messages in the INBOX, want the one mail once", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v", err)
	}
	for _, b := range msgs[0].BodySection {
		if string(b.Bytes) != string(msg) {
			t.Fatalf("body %q, want %q", b.Bytes, msg)
		}
	}
}

// The password file: made once, 0600, read back; a file that is not one line is refused with a
// way out.
func TestPasswordFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data", "imap-password")
	pw, created, err := EnsurePassword(p)
	if err != nil || !created || len(pw) != 24 {
		t.Fatalf("EnsurePassword: %q %v %v", pw, created, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi, err)
	}
	again, created, err := EnsurePassword(p)
	if err != nil || created || again != pw {
		t.Fatalf("second EnsurePassword: %q %v %v", again, created, err)
	}
	for _, bad := range []string{"", "\n", "two\nlines\n", strings.Repeat("x", maxPasswordFile+1)} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := ReadPassword(p); err == nil || !strings.Contains(err.Error(), "mailproxy init") {
			t.Errorf("password file %.20q: %v", bad, err)
		}
	}
}

// The local IMAP server refuses a non-loopback address even if the config check was skipped:
// it speaks clear text.
func TestLocalIMAPLoopbackOnly(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir(), IMAP: config.IMAP{ListenAddress: "0.0.0.0:1143"}}
	if _, err := newIMAP(cfg, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback address: %v", err)
	}
}
