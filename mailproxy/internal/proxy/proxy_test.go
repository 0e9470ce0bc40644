package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// newTestProxy makes a proxy for alice@alpha.example whose directory is a closed port, so that
// no consensus is ever available.
func newTestProxy(t testing.TB) *Proxy {
	t.Helper()
	px, _ := newTestProxyWith(t, "")
	return px
}

// newTestProxyWith is newTestProxy with extra TOML sections in its configuration; it also
// returns the configuration.
func newTestProxyWith(t testing.TB, extra string) (*Proxy, *config.Config) {
	t.Helper()
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	text := `version = 1
data_dir = "data"
[directory]
urls = ["http://` + dead + `"]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
epoch_length = "10s"
` + extra + `
[[accounts]]
address = "alice@alpha.example"
link_key_file = "alice.key"
`
	p := filepath.Join(dir, "mailproxy.toml")
	os.WriteFile(p, []byte(text), 0o600)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := New(cfg, log); err == nil || !strings.Contains(err.Error(), "mailproxy init") {
		t.Fatalf("New without a link key: %v", err)
	}
	k, _ := keys.GenerateLinkKey(rand.Reader)
	if err := keys.SaveLinkKey(cfg.Accounts[0].LinkKeyFile, k); err != nil {
		t.Fatal(err)
	}
	k.Wipe()
	px, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px, cfg
}

func TestSessionRefusals(t *testing.T) {
	p := newTestProxy(t)
	s := &session{p: p}
	var se *smtp.SMTPError
	if err := s.Rcpt("bob@beta.example", nil); !errors.As(err, &se) || se.Code != 503 {
		t.Errorf("RCPT before MAIL: %v", err)
	}
	if err := s.Mail("mallory@alpha.example", nil); !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "alice@alpha.example") {
		t.Errorf("unknown sender: %v", err)
	}
	if err := s.Mail("Alice@Alpha.example", nil); err != nil {
		t.Fatalf("known sender, other case: %v", err)
	}
	if err := s.Rcpt("not-an-address", nil); !errors.As(err, &se) || se.Code != 553 {
		t.Errorf("malformed recipient: %v", err)
	}
	// No consensus: try again later, not a permanent refusal.
	if err := s.Rcpt("bob@beta.example", nil); !errors.As(err, &se) || se.Code != 451 {
		t.Errorf("recipient without consensus: %v", err)
	}
	if err := s.Data(strings.NewReader("x")); !errors.As(err, &se) || se.Code != 503 {
		t.Errorf("DATA without recipients: %v", err)
	}
	// Malformed and header-less mail is refused before anything is queued.
	a := p.accounts["alice@alpha.example"]
	for _, raw := range []string{"no header at all", "To: bob@beta.example\r\n\r\nno From\r\n"} {
		if err := p.queue(a, []rcpt{{addr: "bob@beta.example", user: "bob", dom: "beta.example"}}, []byte(raw)); !errors.As(err, &se) || se.Code != 554 {
			t.Errorf("malformed mail %q: %v", raw, err)
		}
	}
}

func TestOverLimitData(t *testing.T) {
	p := newTestProxy(t)
	s := &session{p: p, acct: p.accounts["alice@alpha.example"], rcpts: []rcpt{{addr: "bob@beta.example", user: "bob", dom: "beta.example"}}}
	big := strings.NewReader("From: a@b\r\n\r\n" + strings.Repeat("x", p.cfg.SMTP.MaxMessageSize))
	var se *smtp.SMTPError
	if err := s.Data(big); !errors.As(err, &se) || se.Code != 552 {
		t.Errorf("over-limit mail: %v", err)
	}
}

func TestRecords(t *testing.T) {
	r, err := openRecords(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	rec := &record{Kind: kindMail, Account: "a@x", Recipient: "b@y", Subject: "s", Accepted: time.Now().UTC(), SeenKey: "k1"}
	if err := r.put("id1", rec); err != nil {
		t.Fatal(err)
	}
	got, err := r.get("a@x", "id1")
	if err != nil || got == nil || got.Recipient != "b@y" || got.SeenKey != "k1" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if id, _ := r.seen("k1"); id != "id1" {
		t.Errorf("seen = %q", id)
	}
	if got, _ := r.get("other@x", "id1"); got != nil {
		t.Errorf("record found under another account")
	}
	if err := r.remove("a@x", "id1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.get("a@x", "id1"); got != nil {
		t.Error("record kept after remove")
	}
	if id, _ := r.seen("k1"); id != "" {
		t.Error("seen key kept after remove")
	}
}

// The status socket replaces a stale socket, is private, and answers while the proxy runs.
func TestStatusSocket(t *testing.T) {
	p := newTestProxy(t)
	path := p.cfg.StatusSocket
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	ln, err := listenStatus(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", fi.Mode().Perm())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	st := newStatusServer(p)
	go func() { done <- st.serve(ctx, ln) }()
	r, err := FetchReport(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Accounts) != 1 || r.Accounts[0].Address != "alice@alpha.example" || r.ConsensusError == "" || r.Accounts[0].Link.Connected {
		t.Errorf("report %+v", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := FetchReport(context.Background(), filepath.Join(t.TempDir(), "none.sock")); err == nil || !strings.Contains(err.Error(), "is mailproxy running") {
		t.Errorf("no socket: %v", err)
	}
}

// sink is a smarthost that keeps what it receives.
type sink struct {
	mu       sync.Mutex
	from     string
	to       []string
	data     []byte
	refuseTo string
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct{ s *sink }

func (x *sinkSession) Reset()        {}
func (x *sinkSession) Logout() error { return nil }
func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.from = from
	return nil
}
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	if to == x.s.refuseTo {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	x.s.to = append(x.s.to, to)
	return nil
}
func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.data = b
	return err
}

// Recipients outside the mixnet go to the configured smarthost as submitted; its refusal
// comes back with its code.
func TestSmarthostRelay(t *testing.T) {
	p := newTestProxy(t)
	sk := &sink{refuseTo: "nobody@example.org"}
	srv := smtp.NewServer(sk)
	srv.Domain = "smarthost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	p.cfg.Smarthost.Address = ln.Addr().String()
	a := p.accounts["alice@alpha.example"]
	raw := "From: alice@alpha.example\r\nTo: carol@example.org\r\nUser-Agent: kept for ordinary mail\r\n\r\nhi\r\n"
	if err := p.queue(a, []rcpt{{addr: "carol@example.org", user: "carol", dom: "example.org", relay: true}}, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	sk.mu.Lock()
	if sk.from != "alice@alpha.example" || len(sk.to) != 1 || sk.to[0] != "carol@example.org" || string(sk.data) != raw {
		t.Errorf("smarthost got from %q to %q data %q", sk.from, sk.to, sk.data)
	}
	sk.mu.Unlock()
	var se *smtp.SMTPError
	err = p.queue(a, []rcpt{{addr: "nobody@example.org", user: "nobody", dom: "example.org", relay: true}}, []byte(raw))
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "no such user") {
		t.Errorf("smarthost refusal: %v", err)
	}
}
