package filter

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/postfix-filter/internal/dedup"
)

// fakeMixnet is an in-memory Mixnet: participating domains, a switch for the link and the
// consensus, and the messages queued.
type fakeMixnet struct {
	mu        sync.Mutex
	domains   map[string]bool
	away      map[string]bool // domains recently in the mixnet, out of it now
	notReady  error
	noConsens error
	max       int
	sent      []sent
}

type sent struct {
	domain, local string
	data          []byte
}

func (f *fakeMixnet) Serves(ctx context.Context, d string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noConsens != nil {
		return false, f.noConsens
	}
	if f.away[d] {
		return false, fmt.Errorf("%w: %s", ErrDomainAway, d)
	}
	return f.domains[d], nil
}

func (f *fakeMixnet) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.notReady
}

func (f *fakeMixnet) MaxMessageSize(context.Context) int { return f.max }

func (f *fakeMixnet) Send(ctx context.Context, domain, local string, data []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, sent{domain, local, bytes.Clone(data)})
	return fmt.Sprintf("id%d", len(f.sent)), nil
}

func (f *fakeMixnet) messages() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

// sink is the re-injection smtpd: it records what it accepts, or refuses when told to.
type sink struct {
	mu     sync.Mutex
	msgs   []sinkMsg
	refuse *smtp.SMTPError
	addr   string
	srv    *smtp.Server
}

type sinkMsg struct {
	from  string
	rcpts []string
	data  []byte
}

type sinkSession struct {
	k    *sink
	from string
	rc   []string
}

func (s *sinkSession) Reset()        { s.from, s.rc = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	if s.k.refuse != nil {
		return s.k.refuse
	}
	s.rc = append(s.rc, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	s.k.msgs = append(s.k.msgs, sinkMsg{s.from, s.rc, b})
	return nil
}

func startSink(t *testing.T) *sink {
	k := &sink{}
	k.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{k: k}, nil }))
	k.srv.Domain = "sink"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	go k.srv.Serve(ln)
	t.Cleanup(func() { k.srv.Close() })
	return k
}

func (k *sink) messages() []sinkMsg {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sinkMsg(nil), k.msgs...)
}

type fixture struct {
	reg   *prometheus.Registry
	mix   *fakeMixnet
	sink  *sink
	addr  string
	store *dedup.Store
}

func start(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), mix: &fakeMixnet{domains: map[string]bool{"beta.test": true}}, sink: startSink(t)}
	st, err := dedup.Open(filepath.Join(t.TempDir(), "dedup.db"))
	if err != nil {
		t.Fatal(err)
	}
	f.store = st
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	cfg := Config{Listener: ln, ReinjectAddress: f.sink.addr, Hostname: "filter.test", MaxMessageSize: 64 << 10,
		MaxRecipients: 10, MaxConnections: 20, Timeout: 10 * time.Second, ConsensusTimeout: time.Second,
		Mixnet: f.mix, Dedup: st, Metrics: f.reg}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return f
}

// send delivers one message as Postfix would and returns the DATA reply (nil for 250).
func (f *fixture) send(t *testing.T, from string, rcpts []string, data string) error {
	t.Helper()
	c, err := smtp.Dial(f.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("postfix.test"); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	io.WriteString(w, data)
	return w.Close()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	if err == nil {
		return 250
	}
	return -1
}

const (
	mixable = "Received: from x by mx.alpha.test id 1ABC\r\nX-PANORAMIX-Mixable: yes\r\nSubject: hello\r\n\r\nbody\r\n"
	plain   = "Received: from x by mx.alpha.test id 2ABC\r\nSubject: hello\r\n\r\nbody\r\n"
)

func TestRouting(t *testing.T) {
	f := start(t, nil)
	// Mixable to a participating domain: into the mixnet, without the header field.
	if err := f.send(t, "a@alpha.test", []string{"bob@Beta.Test"}, mixable); err != nil {
		t.Fatal(err)
	}
	// Without the header: back to Postfix, unchanged.
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, plain); err != nil {
		t.Fatal(err)
	}
	// Mixable to a domain outside the mixnet: back to Postfix without the header field, which
	// would tell the outside recipient that the sender's client marked the mail.
	m3 := strings.Replace(mixable, "1ABC", "3ABC", 1)
	if err := f.send(t, "a@alpha.test", []string{"carol@legacy.test"}, m3); err != nil {
		t.Fatal(err)
	}
	// One message to both kinds of domain: split.
	m4 := strings.Replace(mixable, "1ABC", "4ABC", 1)
	if err := f.send(t, "", []string{"dave@beta.test", "erin@legacy.test"}, m4); err != nil {
		t.Fatal(err)
	}
	mix := f.mix.messages()
	if len(mix) != 2 || mix[0].domain != "beta.test" || mix[0].local != "bob" || mix[1].local != "dave" {
		t.Fatalf("mixnet got %+v", mix)
	}
	if want := strings.Replace(mixable, "X-PANORAMIX-Mixable: yes\r\n", "", 1); string(mix[0].data) != want {
		t.Fatalf("mixnet copy %q, want %q", mix[0].data, want)
	}
	got := f.sink.messages()
	if len(got) != 3 {
		t.Fatalf("re-injected %d messages, want 3", len(got))
	}
	for i, want := range []sinkMsg{
		{"a@alpha.test", []string{"bob@beta.test"}, []byte(plain)},
		{"a@alpha.test", []string{"carol@legacy.test"}, []byte(strings.Replace(m3, "X-PANORAMIX-Mixable: yes\r\n", "", 1))},
		{"", []string{"erin@legacy.test"}, []byte(strings.Replace(m4, "X-PANORAMIX-Mixable: yes\r\n", "", 1))},
	} {
		if got[i].from != want.from || strings.Join(got[i].rcpts, ",") != strings.Join(want.rcpts, ",") || !bytes.Equal(got[i].data, want.data) {
			t.Errorf("re-injected %d: %q %q %q, want %q %q %q", i, got[i].from, got[i].rcpts, got[i].data, want.from, want.rcpts, want.data)
		}
	}
}

// syncBuffer is a log destination the server's goroutines may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Every copy that goes back to Postfix leaves without any X-PANORAMIX-Mixable field (a garbage
// value, several fields, any case), and each re-injection is logged at level info with its
// recipients, size and reason.
func TestReinjectionStrippedAndLogged(t *testing.T) {
	var logs syncBuffer
	f := start(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	invalid := "Subject: x\r\nx-panoramix-mixable: maybe\r\nX-PANORAMIX-Mixable: yes\r\n\r\nbody\r\n"
	for _, c := range []struct {
		rcpts  []string
		data   string
		reason string
	}{
		{[]string{"bob@beta.test"}, plain, "no X-PANORAMIX-Mixable field"},
		{[]string{"carol@legacy.test", "dan@legacy.test"}, mixable, "domain not in the mixnet"},
		{[]string{"bob@beta.test"}, invalid, "X-PANORAMIX-Mixable is not \"yes\""},
	} {
		if err := f.send(t, "a@alpha.test", c.rcpts, c.data); err != nil {
			t.Fatal(err)
		}
		got := f.sink.messages()
		m := got[len(got)-1]
		if bytes.Contains(bytes.ToLower(m.data), []byte("x-panoramix-mixable")) {
			t.Errorf("the re-injected copy keeps the marker: %q", m.data)
		}
		want := fmt.Sprintf("level=INFO msg=\"re-injected into Postfix\" recipients=%d size=%d reason=%q", len(c.rcpts), len(m.data), c.reason)
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, logs.String())
		}
	}
}

// A message Postfix retries is recognised: nothing goes twice, whichever way it went.
func TestRetryNotSentTwice(t *testing.T) {
	f := start(t, nil)
	for range 3 {
		if err := f.send(t, "a@alpha.test", []string{"bob@beta.test", "erin@legacy.test"}, mixable); err != nil {
			t.Fatal(err)
		}
	}
	if n, m := len(f.mix.messages()), len(f.sink.messages()); n != 1 || m != 1 {
		t.Fatalf("after 3 deliveries of one message: %d mixnet copies, %d re-injected; want 1 and 1", n, m)
	}
	f.metric(t, `postfix_filter_copies_total{route="mixnet"} 1`, `postfix_filter_copies_total{route="reinjected"} 1`,
		`postfix_filter_copies_total{route="duplicate"} 4`, `postfix_filter_replies_total{code="250"} 3`)
	// A different message (Postfix's Received field differs) goes again.
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, strings.Replace(mixable, "1ABC", "9ABC", 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(f.mix.messages()); n != 2 {
		t.Fatalf("a new message was not sent: %d copies", n)
	}
}

// The mixnet down means 4xx and nothing queued; when it is back the retry goes once. A split
// message whose re-injection half fails is retried without a second mixnet copy.
func TestTemporaryFailures(t *testing.T) {
	f := start(t, nil)
	f.mix.notReady = errors.New("link down")
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, mixable); code(err) != 451 {
		t.Fatalf("link down: %v, want 451", err)
	}
	// Mail that does not need the mixnet still flows.
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, plain); err != nil {
		t.Fatalf("plain mail while the link is down: %v", err)
	}
	f.mix.notReady = nil
	f.mix.noConsens = errors.New("no document")
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, mixable); code(err) != 451 {
		t.Fatalf("no consensus: %v, want 451", err)
	}
	f.mix.noConsens = nil
	if len(f.mix.messages()) != 0 {
		t.Fatal("something was queued while the mixnet was unavailable")
	}

	f.sink.refuse = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "busy"}
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test", "erin@legacy.test"}, mixable); code(err)/100 != 4 {
		t.Fatalf("re-injection busy: %v, want 4xx", err)
	}
	f.sink.refuse = nil
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test", "erin@legacy.test"}, mixable); err != nil {
		t.Fatal(err)
	}
	if n, m := len(f.mix.messages()), len(f.sink.messages()); n != 1 || m != 2 {
		t.Fatalf("%d mixnet copies and %d re-injected, want 1 and 2 (the plain one and erin's)", n, m)
	}

	// Re-injection smtpd not listening at all.
	f.sink.srv.Close()
	if err := f.send(t, "a@alpha.test", []string{"erin@legacy.test"}, plain+"x"); code(err) != 451 {
		t.Fatalf("re-injection down: %v, want 451", err)
	}
}

// Mixable mail for a domain whose provider is out of the consensus for now, but was in it
// recently, is deferred: re-injecting it would send on the ordinary path, in the clear, mail its
// author marked for the mixnet. Plain mail for the domain, and mail for other recipients of a
// mixable message that never were in the mixnet, are not held up by it once it is back.
func TestDomainAwayDefers(t *testing.T) {
	f := start(t, nil)
	f.mix.away = map[string]bool{"gamma.test": true}
	err := f.send(t, "a@alpha.test", []string{"carol@gamma.test"}, mixable)
	if code(err) != 451 || !strings.Contains(err.Error(), "temporarily away") {
		t.Fatalf("mixable mail to an away domain: %v, want 451 (provider temporarily away)", err)
	}
	if n, m := len(f.mix.messages()), len(f.sink.messages()); n != 0 || m != 0 {
		t.Fatalf("%d mixnet copies and %d re-injected while the domain is away, want none", n, m)
	}
	if err := f.send(t, "a@alpha.test", []string{"carol@gamma.test"}, plain); err != nil {
		t.Fatalf("plain mail to the away domain: %v", err)
	}
	if m := len(f.sink.messages()); m != 1 {
		t.Fatalf("%d re-injected, want the plain mail", m)
	}
	f.mix.away = nil
	f.mix.domains["gamma.test"] = true
	if err := f.send(t, "a@alpha.test", []string{"carol@gamma.test"}, mixable); err != nil {
		t.Fatalf("mixable mail once the domain is back: %v", err)
	}
	if n := len(f.mix.messages()); n != 1 {
		t.Fatalf("%d mixnet copies once the domain is back, want 1", n)
	}
}

func TestBadInput(t *testing.T) {
	f := start(t, func(c *Config) { c.MaxRecipients = 3 })
	f.mix.max = 8 << 10

	// Malformed header section, garbage marker values: back to Postfix.
	bad := []string{
		"this is not a header\r\n\r\nX-PANORAMIX-Mixable: yes\r\n",
		"X-PANORAMIX-Mixable: yes, please\r\nSubject: s\r\n\r\nb\r\n",
		"X-PANORAMIX-Mixable: \xff\xfe\x01\r\n\r\nb\r\n",
		"X-PANORAMIX-Mixable: yes\r\n\tno\r\n\r\nb\r\n",
		" X-PANORAMIX-Mixable: yes\r\n\r\nb\r\n",
		"X-PANORAMIX-Mixable: yes\r\n" + "X-Long: " + strings.Repeat("z", 900) + "\r\n\r\nb\r\n",
	}
	for _, m := range bad[:5] {
		if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, m); err != nil {
			t.Fatalf("%q: %v", m, err)
		}
	}
	if len(f.mix.messages()) != 0 || len(f.sink.messages()) != 5 {
		t.Fatalf("malformed or garbage-marked mail: %d to the mixnet, %d re-injected; want 0 and 5", len(f.mix.messages()), len(f.sink.messages()))
	}
	// A header section the filter cannot read goes back unchanged; a readable one loses its
	// X-PANORAMIX-Mixable fields, whatever their value.
	want := []string{bad[0], "Subject: s\r\n\r\nb\r\n", "\r\nb\r\n", "\r\nb\r\n", bad[4]}
	for i, m := range f.sink.messages() {
		if string(m.data) != want[i] {
			t.Errorf("re-injected %q, want %q", m.data, want[i])
		}
	}
	// A long line in a mixable message is fine.
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, bad[5]); err != nil {
		t.Fatal(err)
	}

	// Over the filter's size limit: 552 from the SMTP layer, nothing passed on.
	huge := "X-PANORAMIX-Mixable: yes\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", (64<<10)/18+10)
	if err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, huge); code(err) != 552 {
		t.Fatalf("oversize message: %v, want 552", err)
	}
	// Within the filter's limit but over what the mixnet carries: 552 with a human text.
	big := "X-PANORAMIX-Mixable: yes\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", (8<<10)/18+10)
	err := f.send(t, "a@alpha.test", []string{"bob@beta.test"}, big)
	if code(err) != 552 || !strings.Contains(err.Error(), "too large for the mixnet") {
		t.Fatalf("message over the mixnet's limit: %v, want 552 saying so", err)
	}
	if len(f.mix.messages()) != 1 || len(f.sink.messages()) != 5 {
		t.Fatalf("oversize mail was passed on: %d %d", len(f.mix.messages()), len(f.sink.messages()))
	}
	f.metric(t, "postfix_filter_malformed_headers_total 2", `postfix_filter_replies_total{code="552"} 2`)

	// Bad addresses and too many recipients are refused at RCPT.
	for _, r := range []string{"nodomain", "@beta.test", "bob@"} {
		if err := f.send(t, "a@alpha.test", []string{r}, plain); code(err)/100 != 5 {
			t.Errorf("recipient %q: %v, want 5xx", r, err)
		}
	}
	if err := f.send(t, "a@alpha.test", []string{"a@x.test", "b@x.test", "c@x.test", "d@x.test"}, plain); code(err) != 452 {
		t.Fatalf("4 recipients over a limit of 3: %v, want 452", err)
	}
}

// A flood of connections: those over the limit get 421 at once; the ones admitted work, and the
// limit frees up when they close.
func TestConnectionFlood(t *testing.T) {
	f := start(t, func(c *Config) { c.MaxConnections = 4 })
	var held []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		greeting := make([]byte, 3)
		io.ReadFull(c, greeting)
		if string(greeting) != "220" {
			t.Fatalf("admitted connection greeted with %q", greeting)
		}
		held = append(held, c)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			if strings.HasPrefix(string(b), "421 ") {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if refused != 100 {
		t.Fatalf("%d of 100 connections over the limit got 421", refused)
	}
	f.metric(t, "postfix_filter_connections_refused_total 100")
	for _, c := range held {
		c.Close()
	}
	// Slots are released asynchronously by the server's connection handlers.
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = f.send(t, "a@alpha.test", []string{"bob@beta.test"}, mixable); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the flood: %v", err)
	}
	if len(f.mix.messages()) != 1 {
		t.Fatalf("%d mixnet copies, want 1", len(f.mix.messages()))
	}
}

// fakeStatuses is the engine's status list.
type fakeStatuses struct {
	mu     sync.Mutex
	list   []client.Status
	forgot []client.MessageID
}

func (f *fakeStatuses) List() ([]client.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]client.Status(nil), f.list...), nil
}

func (f *fakeStatuses) Forget(id client.MessageID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, id)
	for i, s := range f.list {
		if s.ID == id {
			f.list = append(f.list[:i], f.list[i+1:]...)
			break
		}
	}
	return nil
}

func (f *fakeStatuses) left() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.list)
}

// A message the mixnet fails to deliver is bounced to its sender through the re-injection
// smtpd; delivered ones are forgotten without a bounce; a bounce that cannot be handed over is
// tried again.
func TestWatchBounces(t *testing.T) {
	f := start(t, nil)
	s, err := New(Config{Listener: mustListen(t), ReinjectAddress: f.sink.addr, Hostname: "filter.test", MaxMessageSize: 1 << 20,
		MaxRecipients: 1, MaxConnections: 1, Timeout: 5 * time.Second, ConsensusTimeout: time.Second, Mixnet: f.mix, Dedup: f.store})
	if err != nil {
		t.Fatal(err)
	}
	// Two mixable messages through the filter, one from the null sender.
	m1 := "Received: id 1\r\nX-PANORAMIX-Mixable: yes\r\nSubject: evil\r\n\tsubject\r\nMessage-ID: <m1@alpha.test>\r\n\r\nb\r\n"
	if err := f.send(t, "alice@alpha.test", []string{"nobody@beta.test"}, m1); err != nil {
		t.Fatal(err)
	}
	if err := f.send(t, "", []string{"bob@beta.test"}, strings.Replace(m1, "id 1", "id 2", 1)); err != nil {
		t.Fatal(err)
	}
	ids := make([]client.MessageID, 3)
	for i := range ids {
		ids[i][0] = byte(i + 1)
	}
	// The fake mixnet names its messages id1, id2; the engine's ids are hex.
	for i, name := range []string{"id1", "id2"} {
		o, ok, err := f.store.Outgoing(name)
		if err != nil || !ok {
			t.Fatalf("no outgoing record for %s: %v", name, err)
		}
		if err := f.store.PutMixnet(dedup.NewKey("x", "y", []byte(name)), dedup.Record{Route: dedup.Mixnet, MessageID: hex.EncodeToString(ids[i][:]), Time: o.Time}, o); err != nil {
			t.Fatal(err)
		}
	}
	st := &fakeStatuses{list: []client.Status{
		{ID: ids[0], State: client.StateFailed, Reason: "fragment 0: unknown recipient"},
		{ID: ids[1], State: client.StateFailed, Reason: "fragment 0: unknown recipient"},
		{ID: ids[2], State: client.StateDelivered},
	}}
	f.sink.mu.Lock()
	f.sink.refuse = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "later"}
	f.sink.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Watch(ctx, st, 20*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(200 * time.Millisecond)
	if st.left() != 1 {
		t.Fatalf("%d statuses left while the bounce could not be handed over, want 1 (the failed one with a sender)", st.left())
	}
	f.sink.mu.Lock()
	f.sink.refuse = nil
	f.sink.mu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); st.left() > 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	if st.left() != 0 {
		t.Fatal("the failed message was not forgotten after its bounce")
	}
	var bounces []sinkMsg
	for _, m := range f.sink.messages() {
		if m.from == "" {
			bounces = append(bounces, m)
		}
	}
	if len(bounces) != 1 {
		t.Fatalf("%d bounces, want 1 (none for the null sender)", len(bounces))
	}
	b := string(bounces[0].data)
	if bounces[0].rcpts[0] != "alice@alpha.test" || !strings.Contains(b, "<nobody@beta.test>: fragment 0: unknown recipient") ||
		!strings.Contains(b, "Message-ID: <m1@alpha.test>") || !strings.Contains(b, "Subject: evil subject\r\n") {
		t.Fatalf("bounce to %v:\n%s", bounces[0].rcpts, b)
	}
	if _, ok, _ := f.store.Outgoing(hex.EncodeToString(ids[0][:])); ok {
		t.Fatal("outgoing record kept after the bounce")
	}
}

func mustListen(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// metric checks lines of the metrics exposition.
func (f *fixture) metric(t *testing.T, want ...string) {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// Counters only, written as name{label="value"} value.
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			b.WriteString(mf.GetName())
			if ls := m.GetLabel(); len(ls) > 0 {
				var parts []string
				for _, l := range ls {
					parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				b.WriteString("{" + strings.Join(parts, ",") + "}")
			}
			fmt.Fprintf(&b, " %v\n", m.GetCounter().GetValue())
		}
	}
	for _, w := range want {
		if !strings.Contains(b.String(), w+"\n") {
			t.Errorf("metrics lack %q:\n%s", w, b.String())
		}
	}
}
