package main

// End-to-end tests through the real binaries: directory, mixd (mixes and providers) and
// mailproxy, started by pkg/testnet; mail submitted with swaks (Debian) or go-smtp, read back
// with Python's imaplib or go-imap over STARTTLS from the provider's built-in IMAP server.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/proxy"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// binDir holds directory, mixd and mailproxy, built once by TestMain (empty in -short mode).
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "mailproxy-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		repo, err := testnet.RepoRoot()
		if err == nil {
			err = testnet.Build(context.Background(), repo, dir, testnet.MailPrograms...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		code := m.Run()
		if err := stopBench(); err != nil {
			fmt.Fprintln(os.Stderr, "benchmark network:", err)
			code = 1
		}
		return code
	}()
	os.Exit(code)
}

// testParams are fast consensus parameters for tests: 5 s epochs, 20 ms mean delay per hop,
// lambda_P 10/s.
func testParams() pki.Parameters {
	p := pki.DefaultParameters()
	p.EpochLength = 5 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 10, 2, 2, 2
	return p
}

// fastProxy are mailproxy settings matching testParams: retrieves at 20/s (above
// lambda_P + lambda_L), a 2 s ACK slack.
var fastProxy = testnet.MailproxyOptions{AckSlack: 2 * time.Second, RetrieveInterval: 50 * time.Millisecond}

type mailnet struct {
	*testnet.Net
	alice, bob *testnet.Mailproxy
}

// startMailnet starts a network with alice@alpha.localhost and bob@beta.localhost, each with a
// mailproxy. The network is stopped cleanly at the end of the test.
func startMailnet(tb testing.TB, p pki.Parameters, mixes int, aliceOpts, bobOpts testnet.MailproxyOptions) *mailnet {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end test through the real binaries; not in -short mode")
	}
	dir := tb.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*p.EpochLength+60*time.Second)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.Options{Dir: dir, BinDir: binDir, MixesPerLayer: mixes, Parameters: &p})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Stop(); err != nil {
			tb.Errorf("network did not stop cleanly: %v", err)
		}
		if tb.Failed() {
			for _, f := range []string{"mailproxy-alice-alpha.log", "mailproxy-bob-beta.log", "provider-beta.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				tb.Logf("--- %s (tail)\n%s", f, b)
			}
		}
	})
	if _, err := n.WaitConsensus(ctx); err != nil {
		tb.Fatal(err)
	}
	m := &mailnet{Net: n}
	if m.alice, err = n.StartMailproxy(ctx, "alice@alpha.localhost", "alice password", aliceOpts); err != nil {
		tb.Fatal(err)
	}
	if m.bob, err = n.StartMailproxy(ctx, "bob@beta.localhost", "bob password", bobOpts); err != nil {
		tb.Fatal(err)
	}
	return m
}

const imapReadScript = `
import imaplib, ssl, sys, json
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4(host, port)
m.starttls(ssl_context=ctx)
m.login(user, pw)
m.select("INBOX")
typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, msg = m.fetch(num, "(RFC822)")
    out.append(msg[0][1].decode("latin-1"))
m.logout()
print(json.dumps(out))
`

// inbox reads every message of the user's INBOX with Python's imaplib over STARTTLS.
func inbox(t *testing.T, mp *testnet.Mailproxy) []string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 missing: apt-get install -y python3")
	}
	script := filepath.Join(t.TempDir(), "read.py")
	os.WriteFile(script, []byte(imapReadScript), 0o644)
	host, port, _ := strings.Cut(mp.Provider.IMAP, ":")
	out, err := exec.Command("python3", script, host, port, mp.User(), mp.Password).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	var msgs []string
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatalf("imaplib output: %v\n%s", err, out)
	}
	return msgs
}

// waitInbox polls the INBOX until it holds at least n messages, then waits settle and reads it
// again (a duplicate would show up by then).
func waitInbox(t *testing.T, mp *testnet.Mailproxy, n int, timeout, settle time.Duration) []string {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = inbox(t, mp); len(got) >= n {
			break
		}
	}
	if len(got) < n {
		t.Fatalf("%s's INBOX holds %d messages after %v, want %d", mp.Address, len(got), timeout, n)
	}
	time.Sleep(settle)
	return inbox(t, mp)
}

func statusOf(t *testing.T, mp *testnet.Mailproxy) *proxy.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := proxy.FetchReport(ctx, filepath.Join(mp.DataDir, "status.sock"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func needSwaks(t *testing.T) {
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Skip("swaks missing: DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends swaks")
	}
}

// swaks submits a mail to a mailproxy and returns its transcript.
func swaks(t *testing.T, mp *testnet.Mailproxy, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"--server", mp.SMTP, "--from", mp.Address, "--helo", "secret-laptop.home"}, args...)
	out, err := exec.Command("swaks", args...).CombinedOutput()
	return string(out), err
}

// attachments decodes the parts of a multipart/mixed mail that carry a filename.
func attachments(t *testing.T, raw string) (*mail.Message, map[string][]byte, string) {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("delivered mail does not parse: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("delivered mail is %q (%v), want multipart/mixed", mt, err)
	}
	out := map[string][]byte{}
	text := ""
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if p.Header.Get("Content-Transfer-Encoding") == "BASE64" || strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			b, err = base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
		}
		if p.FileName() != "" {
			out[p.FileName()] = b
		} else {
			text += string(b)
		}
	}
	return msg, out, text
}

// swaks submits a mail with a 1 MB and a 40 KB attachment and identifying headers to alice's
// mailproxy; bob reads it with imaplib: body and attachments intact, identifying headers gone.
// The same mail submitted again (same Message-ID, as a mail program does that missed the 250)
// is not sent twice.
func TestSwaksToIMAP(t *testing.T) {
	needSwaks(t)
	m := startMailnet(t, testParams(), 1, fastProxy, fastProxy)
	dir := t.TempDir()
	big, small := make([]byte, 1<<20), make([]byte, 40<<10)
	rand.Read(big)
	rand.Read(small)
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "small.bin"), small, 0o644)
	args := []string{"--to", "bob@beta.localhost",
		"--header", "Subject: through the mixnet",
		"--header", "Date: Tue, 03 Mar 2026 10:00:00 -0700",
		"--header", "Message-Id: <mixtest-1@secret-laptop.home>",
		"--add-header", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Thunderbird/128.0",
		"--add-header", "X-Originating-IP: [192.168.77.5]",
		"--add-header", "Received: from secret-laptop.home ([192.168.77.5]) by nowhere",
		"--body", "Hello Bob,\nmetadata stays with the mixnet.\n",
		"--attach", "@" + filepath.Join(dir, "big.bin"), "--attach", "@" + filepath.Join(dir, "small.bin")}
	start := time.Now()
	out, err := swaks(t, m.alice, args...)
	if err != nil || !strings.Contains(out, "<-  250") {
		t.Fatalf("swaks: %v\n%s", err, out[max(0, len(out)-3000):])
	}
	t.Logf("1 MB mail accepted in %v", time.Since(start).Round(time.Millisecond))
	// Resubmitted: recognized by its Message-ID, answered 250, not queued again.
	if out, err := swaks(t, m.alice, args...); err != nil || !strings.Contains(out, "<-  250") {
		t.Fatalf("second swaks: %v", err)
	}

	got := waitInbox(t, m.bob, 1, 90*time.Second, 2*time.Second)
	t.Logf("1 MB mail visible over IMAP %v after submission", time.Since(start).Round(time.Millisecond))
	if len(got) != 1 {
		t.Fatalf("bob's INBOX holds %d messages, want exactly 1", len(got))
	}
	msg, att, text := attachments(t, got[0])
	if !bytes.Equal(att["big.bin"], big) || !bytes.Equal(att["small.bin"], small) {
		t.Errorf("attachments changed: big %d bytes (sha256 %x, want %x), small %d bytes", len(att["big.bin"]), sha256.Sum256(att["big.bin"]), sha256.Sum256(big), len(att["small.bin"]))
	}
	if !strings.Contains(text, "metadata stays with the mixnet.") {
		t.Errorf("body lost: %q", text)
	}
	header := got[0][:strings.Index(got[0], "\r\n\r\n")]
	for _, gone := range []string{"secret-laptop", "192.168.77.5", "User-Agent", "Thunderbird", "X-Mailer", "swaks", "-0700", "X-Originating-IP"} {
		if strings.Contains(header, gone) {
			t.Errorf("delivered header still contains %q:\n%s", gone, header)
		}
	}
	if d := msg.Header.Get("Date"); d != "Tue, 03 Mar 2026 17:00:00 +0000" {
		t.Errorf("Date = %q, want the instant in UTC", d)
	}
	if id := msg.Header.Get("Message-ID"); id != "<mixtest-1@alpha.localhost>" {
		t.Errorf("Message-ID = %q", id)
	}
	if s := msg.Header.Get("Subject"); s != "through the mixnet" {
		t.Errorf("Subject = %q", s)
	}
	r := statusOf(t, m.alice)
	if len(r.Accounts) != 1 || len(r.Accounts[0].Messages) != 1 || r.Accounts[0].Messages[0].State != "delivered" {
		t.Fatalf("alice's status: %+v", r.Accounts)
	}
	st := r.Accounts[0].Messages[0]
	t.Logf("status: %d fragments, %d transmissions, link up %v, epoch %d", st.Fragments, st.Transmissions, r.Accounts[0].Link.Connected, r.Epoch)
	if st.Fragments < 60 || st.Acknowledged != st.Fragments || st.Subject != "through the mixnet" || r.Epoch == 0 {
		t.Errorf("status of the mail: %+v (epoch %d)", st, r.Epoch)
	}
	// mailproxy status, the command, shows it too.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--config", m.alice.Config}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "delivered") || !strings.Contains(stdout.String(), "link up") {
		t.Errorf("mailproxy status: %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// Refusals are precise SMTP errors.
func TestRefusals(t *testing.T) {
	o := fastProxy
	o.MaxMessageSize = 64 << 10
	m := startMailnet(t, testParams(), 1, o, fastProxy)
	ok := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: x\r\n\r\nhi\r\n"
	tests := []struct {
		name     string
		from, to string
		data     string
		code     int
		text     string
	}{
		{"unknown sender", "mallory@alpha.localhost", "bob@beta.localhost", ok, 550, "not an account"},
		{"domain outside the mixnet", "alice@alpha.localhost", "carol@example.org", ok, 550, "not in the mixnet"},
		{"too large", "alice@alpha.localhost", "bob@beta.localhost", ok + strings.Repeat(strings.Repeat("x", 70)+"\r\n", 1000), 552, "size"},
		{"no header", "alice@alpha.localhost", "bob@beta.localhost", "just text without a header\r\n", 554, "Malformed"},
		{"line too long", "alice@alpha.localhost", "bob@beta.localhost", ok + strings.Repeat("y", 3000) + "\r\n", 554, "line"},
		{"no From", "alice@alpha.localhost", "bob@beta.localhost", "To: bob@beta.localhost\r\n\r\nhi\r\n", 554, "From"},
		// The envelope names alice's account; the header must not name anyone else (section 2).
		{"forged From", "alice@alpha.localhost", "bob@beta.localhost", "From: The Bank <security@beta.localhost>\r\nTo: bob@beta.localhost\r\n\r\nhi\r\n", 550, "From"},
		{"second From", "alice@alpha.localhost", "bob@beta.localhost", "From: alice@alpha.localhost\r\nFrom: carol@beta.localhost\r\nTo: bob@beta.localhost\r\n\r\nhi\r\n", 550, "From"},
		{"two authors", "alice@alpha.localhost", "bob@beta.localhost", "From: alice@alpha.localhost, carol@beta.localhost\r\nTo: bob@beta.localhost\r\n\r\nhi\r\n", 550, "From"},
		{"forged Sender", "alice@alpha.localhost", "bob@beta.localhost", "From: alice@alpha.localhost\r\nSender: carol@beta.localhost\r\nTo: bob@beta.localhost\r\n\r\nhi\r\n", 550, "Sender"},
		{"unparsable From", "alice@alpha.localhost", "bob@beta.localhost", "From: <alice@alpha.localhost\r\nTo: bob@beta.localhost\r\n\r\nhi\r\n", 550, "From"},
	}
	for _, tt := range tests {
		c, err := smtp.Dial(m.alice.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		err = c.SendMail(tt.from, []string{tt.to}, strings.NewReader(tt.data))
		c.Close()
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != tt.code || !strings.Contains(se.Message, tt.text) {
			t.Errorf("%s: got %v, want %d %q", tt.name, err, tt.code, tt.text)
		}
	}
	if r := statusOf(t, m.alice); len(r.Accounts[0].Messages) != 0 {
		t.Errorf("refused mail was queued: %+v", r.Accounts[0].Messages)
	}
	// The account's own address, with a display name (RFC 2047 encoded) and in another case,
	// is accepted.
	c, err := smtp.Dial(m.alice.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	own := "From: =?utf-8?q?Alice_M=C3=BCller?= <Alice@Alpha.Localhost>\r\nSender: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\n\r\nhi\r\n"
	if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(own)); err != nil {
		t.Errorf("mail From the account itself: %v", err)
	}
}

// A mail to a user the destination provider does not know fails, and alice gets a bounce (an
// RFC 3464 report naming the recipient and the reason) in her own INBOX, through the mixnet.
func TestBounce(t *testing.T) {
	needSwaks(t)
	m := startMailnet(t, testParams(), 1, fastProxy, fastProxy)
	out, err := swaks(t, m.alice, "--to", "nobody@beta.localhost", "--header", "Subject: to nobody", "--body", "lost\n")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	got := waitInbox(t, m.alice, 1, 60*time.Second, time.Second)
	if len(got) != 1 {
		t.Fatalf("alice's INBOX holds %d messages, want 1 bounce", len(got))
	}
	msg, err := mail.ReadMessage(strings.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	body, _ := io.ReadAll(msg.Body)
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("bounce is %q", msg.Header.Get("Content-Type"))
	}
	for _, want := range []string{"Final-Recipient: rfc822; nobody@beta.localhost", "Action: failed", "Status: 5.1.1", "Diagnostic-Code: x-panoramix; fragment 0: unknown recipient", "Subject: to nobody"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("bounce lacks %q:\n%s", want, body)
		}
	}
	// The part a person reads says what happened, to whom and what to do, in the user's words:
	// no fragment numbers or engine reasons (those stay in the delivery-status part).
	human, _, _ := strings.Cut(string(body), "Content-Type: message/delivery-status")
	want := "Your mail to <nobody@beta.localhost> could not be delivered: the provider beta.localhost\r\nhas no user \"nobody\".\r\n\r\nCheck the address for a typing error"
	if !strings.Contains(human, want) || strings.Contains(human, "fragment") {
		t.Errorf("bounce's human text lacks %q or names fragments:\n%s", want, human)
	}
	if s := msg.Header.Get("Subject"); s != "Undelivered mail: to nobody" {
		t.Errorf("bounce subject %q", s)
	}
	r := statusOf(t, m.alice)
	var failed, bounce bool
	for _, mr := range r.Accounts[0].Messages {
		failed = failed || (mr.Kind == "mail" && mr.State == "failed" && mr.Bounce != "")
		bounce = bounce || (mr.Kind == "bounce" && mr.State == "delivered")
	}
	if !failed || !bounce {
		t.Errorf("status does not show the failure and the delivered bounce: %+v", r.Accounts[0].Messages)
	}
}

// SIGKILL of alice's mailproxy after the 250, with the mail partly sent; after the restart
// the rest is sent and bob gets the mail exactly once, intact.
func TestKillAfter250(t *testing.T) {
	m := startMailnet(t, testParams(), 1, fastProxy, fastProxy)
	body := strings.Repeat("survives kill -9. 0123456789 0123456789 0123456789 0123456789 0123\r\n", 6000) // 450 KB: 29 fragments
	data := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: kill\r\nMessage-ID: <kill@here>\r\n\r\n" + body + "\r\n"
	c, err := smtp.Dial(m.alice.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var acked, frags int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && acked < 3; time.Sleep(50 * time.Millisecond) {
		msgs := statusOf(t, m.alice).Accounts[0].Messages
		if len(msgs) == 1 {
			acked, frags = msgs[0].Acknowledged, msgs[0].Fragments
		}
	}
	if acked < 3 || acked >= frags {
		t.Fatalf("before the kill: %d of %d fragments acknowledged; want some but not all", acked, frags)
	}
	if err := m.alice.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d of %d fragments acknowledged", acked, frags)
	if got := inbox(t, m.bob); len(got) != 0 {
		t.Fatalf("delivered before the kill: the test did not kill between 250 and delivery")
	}
	if err := m.alice.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := waitInbox(t, m.bob, 1, 60*time.Second, 2*time.Second)
	if len(got) != 1 || !strings.HasSuffix(got[0], "\r\n\r\n"+body+"\r\n") {
		t.Fatalf("bob's INBOX holds %d messages, want exactly 1 intact", len(got))
	}
	if st := statusOf(t, m.alice).Accounts[0].Messages; len(st) != 1 || st[0].State != "delivered" {
		t.Errorf("status after the restart: %+v", st)
	}
}

// ACKs that come too late for their deadline ("lost"): with an ACK slack of 1 ms most
// fragments are retransmitted before their ACK is back, so the provider sees them twice; bob
// still gets one copy.
func TestLateAcksNoDuplicate(t *testing.T) {
	o := fastProxy
	o.AckSlack = time.Millisecond
	o.RetryBudget = 50
	m := startMailnet(t, testParams(), 1, o, fastProxy)
	body := strings.Repeat("once. 0123456789 0123456789 0123456789 0123456789 0123456789 01234\r\n", 1700) // 120 KB: 8 fragments
	data := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: late acks\r\n\r\n" + body + "\r\n"
	c, err := smtp.Dial(m.alice.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := waitInbox(t, m.bob, 1, 60*time.Second, 2*time.Second)
	if len(got) != 1 || !strings.Contains(got[0], body) {
		t.Fatalf("bob's INBOX holds %d messages, want exactly 1 intact", len(got))
	}
	var st proxy.MessageReport
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st = statusOf(t, m.alice).Accounts[0].Messages[0]; st.State == "delivered" {
			break
		}
	}
	t.Logf("%d fragments, %d transmissions", st.Fragments, st.Transmissions)
	if st.State != "delivered" || st.Transmissions <= st.Fragments {
		t.Errorf("want delivered with retransmissions: %+v", st)
	}
	if got := inbox(t, m.bob); len(got) != 1 {
		t.Errorf("bob's INBOX holds %d messages after the ACKs, want 1", len(got))
	}
}

// imapWatcher counts messages in an INBOX over one go-imap connection.
type imapWatcher struct{ c *imapclient.Client }

func newIMAPWatcher(tb testing.TB, mp *testnet.Mailproxy) *imapWatcher {
	c, err := imapclient.DialStartTLS(mp.Provider.IMAP, &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Login(mp.User(), mp.Password).Wait(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Logout().Wait(); c.Close() })
	return &imapWatcher{c: c}
}

// newLocalIMAPWatcher watches the local mailbox of a mailproxy that reads through the link
// (plain IMAP on loopback).
func newLocalIMAPWatcher(tb testing.TB, mp *testnet.Mailproxy) *imapWatcher {
	c, err := imapclient.DialInsecure(mp.IMAP, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Login(mp.User(), mp.IMAPPassword).Wait(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Logout().Wait(); c.Close() })
	return &imapWatcher{c: c}
}

func (w *imapWatcher) count() (int, error) {
	d, err := w.c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, err
	}
	return int(*d.NumMessages), nil
}

// With bob's OpenPGP key in alice's keyring, the mail reaches bob as PGP/MIME and decrypts
// with bob's key to the original body.
func TestPGPMIME(t *testing.T) {
	bobKey, err := openpgp.NewEntity("Bob", "", "bob@beta.localhost", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	aw, _ := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	bobKey.Serialize(aw)
	aw.Close()
	keyring := filepath.Join(t.TempDir(), "keyring.asc")
	os.WriteFile(keyring, pub.Bytes(), 0o600)
	o := fastProxy
	o.Keyring = keyring
	m := startMailnet(t, testParams(), 1, o, fastProxy)
	data := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: sealed\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nonly bob reads this\r\n"
	c, err := smtp.Dial(m.alice.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := waitInbox(t, m.bob, 1, 30*time.Second, 0)
	if strings.Contains(got[0], "only bob reads this") {
		t.Fatal("plaintext reached the mailbox")
	}
	msg, err := mail.ReadMessage(strings.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/encrypted" || msg.Header.Get("Subject") != "sealed" {
		t.Fatalf("delivered %q, subject %q", mt, msg.Header.Get("Subject"))
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	r.NextPart()
	p2, err := r.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	armoredPart, err := io.ReadAll(p2)
	if err != nil {
		t.Fatal(err)
	}
	gnupgDecrypts(t, bobKey, armoredPart, "only bob reads this")
	blk, err := armor.Decode(bytes.NewReader(armoredPart))
	if err != nil {
		t.Fatal(err)
	}
	md, err := openpgp.ReadMessage(blk.Body, openpgp.EntityList{bobKey}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := io.ReadAll(md.UnverifiedBody)
	if string(inner) != "Content-Type: text/plain; charset=utf-8\r\n\r\nonly bob reads this\r\n" {
		t.Errorf("decrypted %q", inner)
	}

	// A mail the mail program already encrypted inline (an ASCII-armored PGP message in a
	// text/plain body) reaches bob as it was, not encrypted a second time; a mail to alice
	// herself, whose key is not in the keyring, leaves in clear. mailproxy status says which.
	armored := "-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA5q0x1NotRealButArmoredLooking\r\n=abcd\r\n-----END PGP MESSAGE-----\r\n"
	inline := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: inline\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + armored
	clear := "From: alice@alpha.localhost\r\nTo: alice@alpha.localhost\r\nSubject: to myself\r\n\r\nnote\r\n"
	for _, mail := range []struct{ to, data string }{{"bob@beta.localhost", inline}, {"alice@alpha.localhost", clear}} {
		c, err := smtp.Dial(m.alice.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail("alice@alpha.localhost", []string{mail.to}, strings.NewReader(mail.data)); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	got = waitInbox(t, m.bob, 2, 30*time.Second, 0)
	if !strings.HasSuffix(got[1], "\r\n\r\n"+armored) || strings.Contains(got[1], "multipart/encrypted") {
		t.Errorf("inline PGP mail was changed on its way (encrypted twice?):\n%s", got[1])
	}
	sent := map[string]string{}
	for _, mr := range statusOf(t, m.alice).Accounts[0].Messages {
		sent[mr.Subject] = mr.Sent
	}
	if sent["sealed"] != "encrypted" || sent["inline"] != "already encrypted" || sent["to myself"] != "clear" {
		t.Errorf("status says the mails left as %q", sent)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--config", m.alice.Config}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "already encrypted") || !strings.Contains(stdout.String(), "clear") {
		t.Errorf("mailproxy status does not show how each mail left: %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// gnupgDecrypts checks that GnuPG, with key's secret part imported into a fresh home, decrypts
// the armored OpenPGP message to a text containing want: what mailproxy encrypts, the
// recipient's own OpenPGP program reads.
func gnupgDecrypts(t *testing.T, key *openpgp.Entity, armored []byte, want string) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Log("gpg missing (apt-get install -y gnupg): decryption by GnuPG not checked")
		return
	}
	home, err := os.MkdirTemp("", "gpg-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	os.Chmod(home, 0o700)
	var sec bytes.Buffer
	aw, _ := armor.Encode(&sec, openpgp.PrivateKeyType, nil)
	if err := key.SerializePrivate(aw, nil); err != nil {
		t.Fatal(err)
	}
	aw.Close()
	imp := exec.Command("gpg", "--homedir", home, "--batch", "--import")
	imp.Stdin = &sec
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	dec := exec.Command("gpg", "--homedir", home, "--batch", "--decrypt")
	dec.Stdin = bytes.NewReader(armored)
	var stdout, stderr bytes.Buffer
	dec.Stdout, dec.Stderr = &stdout, &stderr
	err = dec.Run()
	exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
	if err != nil || !strings.Contains(stdout.String(), want) {
		t.Errorf("gpg --decrypt: %v, got %q\n%s", err, stdout.String(), stderr.String())
	}
}

// A mix stopped (SIGKILL) while a mail is being sent, with two mixes per layer: fragments whose
// route or SURB crossed it are not acknowledged and are retransmitted on fresh routes; the mail
// arrives exactly once.
func TestMixKilledMidSend(t *testing.T) {
	o := fastProxy
	o.AckSlack = time.Second
	o.RetryBudget = 40
	m := startMailnet(t, testParams(), 2, o, fastProxy)
	body := strings.Repeat("a mix goes down. 0123456789 0123456789 0123456789 0123456789 012\r\n", 9000) // 600 KB: 39 fragments
	data := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: mix down\r\n\r\n" + body
	c, err := smtp.Dial(m.alice.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if msgs := statusOf(t, m.alice).Accounts[0].Messages; len(msgs) == 1 && msgs[0].Acknowledged >= 3 {
			break
		}
	}
	mix := m.Node("mix1")
	if err := m.Kill(mix); err != nil {
		t.Fatal(err)
	}
	got := waitInbox(t, m.bob, 1, 90*time.Second, 2*time.Second)
	if len(got) != 1 || !strings.HasSuffix(got[0], "\r\n\r\n"+body) {
		t.Fatalf("bob's INBOX holds %d messages, want exactly 1 intact", len(got))
	}
	var st proxy.MessageReport
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st = statusOf(t, m.alice).Accounts[0].Messages[0]; st.State == "delivered" {
			break
		}
	}
	t.Logf("%d fragments, %d transmissions", st.Fragments, st.Transmissions)
	if st.State != "delivered" || st.Transmissions <= st.Fragments {
		t.Errorf("want delivered after retransmissions: %+v", st)
	}
	if err := m.Restart(mix); err != nil { // so that the network stops cleanly
		t.Fatal(err)
	}
}

// Bad input through swaks (docs/spec/mailproxy.md section 2): a NUL byte and raw 8-bit bytes
// in the header (SMTPUTF8 is not offered) are refused with the exact replies of the spec's
// table and nothing is queued; bare LF line ends are accepted and reach bob's INBOX as CRLF.
func TestInputRules(t *testing.T) {
	needSwaks(t)
	m := startMailnet(t, testParams(), 1, fastProxy, fastProxy)
	dir := t.TempDir()
	// send writes data as it is (swaks --no-data-fixup: no line-end rewriting, no dot added;
	// swaks ends the file with CRLF) and submits it from alice to bob.
	send := func(name, data string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(data+"\r\n."), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := swaks(t, m.alice, "--to", "bob@beta.localhost", "--data", "@"+f, "--no-data-fixup")
		return out
	}
	refusals := []struct{ name, data, reply string }{
		{"nul", "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: nul\r\n\r\nbefore\x00after",
			"<** 554 5.6.0 Malformed message: a NUL byte on line 5; mail may not contain NUL (RFC 5322 section 2.3)"},
		{"8bit-header", "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: gr\xfc\xdfe\r\n\r\nhi",
			"<** 554 5.6.7 Malformed message: the Subject header field on line 3 holds 8-bit bytes; this mailproxy does not offer SMTPUTF8, so the header must be ASCII (RFC 2047 encoded words for other text)"},
	}
	for _, r := range refusals {
		out := send(r.name, r.data)
		if !strings.Contains(out, r.reply+"\n") {
			t.Errorf("%s: want the reply %q, got:\n%s", r.name, r.reply, out)
		}
	}
	if r := statusOf(t, m.alice); len(r.Accounts[0].Messages) != 0 {
		t.Fatalf("refused mail was queued: %+v", r.Accounts[0].Messages)
	}
	// Bare LF everywhere, and an 8-bit body (8BITMIME is offered): accepted, delivered with CRLF.
	lf := "From: alice@alpha.localhost\nTo: bob@beta.localhost\nSubject: bare lf\nContent-Type: text/plain; charset=iso-8859-1\n\nline one\nline two gr\xfc\xdfe"
	out := send("lf", lf)
	if !strings.Contains(out, "<-  250 ") {
		t.Fatalf("bare LF mail not accepted:\n%s", out)
	}
	if !strings.Contains(out, "8BITMIME") || strings.Contains(out, "SMTPUTF8") {
		t.Errorf("EHLO should offer 8BITMIME and not SMTPUTF8 (docs/spec/mailproxy.md section 2):\n%s", out)
	}
	got := waitInbox(t, m.bob, 1, 60*time.Second, time.Second)
	if len(got) != 1 {
		t.Fatalf("bob's INBOX holds %d messages, want 1", len(got))
	}
	if strings.Contains(strings.ReplaceAll(got[0], "\r\n", ""), "\n") {
		t.Errorf("delivered mail still has bare LF line ends: %q", got[0])
	}
	// imaplib's bytes are read as Latin-1: the 8-bit bytes arrive as these runes.
	if !strings.HasSuffix(got[0], "\r\n\r\nline one\r\nline two gr\u00fc\u00dfe\r\n") || !strings.Contains(got[0], "Subject: bare lf\r\n") {
		t.Errorf("delivered mail is not the submitted one with CRLF: %q", got[0])
	}
}

// A mail program that lost the 250 because alice's mailproxy died right after the engine
// committed the mail (PANORAMIX_TEST_CRASH_AFTER_SEND makes it SIGKILL itself there, before the
// 250 and before its own record) submits the same mail again after the restart: bob gets it
// exactly once. PANORAMIX_RESUBMIT_KILLS sets the number of kills (default 2; 80 for the figure
// of issue 19).
func TestResubmitAfterLost250(t *testing.T) {
	kills := 2
	if v := os.Getenv("PANORAMIX_RESUBMIT_KILLS"); v != "" {
		if _, err := fmt.Sscan(v, &kills); err != nil || kills < 1 {
			t.Fatalf("PANORAMIX_RESUBMIT_KILLS=%q: want a positive number", v)
		}
	}
	m := startMailnet(t, testParams(), 1, fastProxy, fastProxy)
	submit := func(data string) error {
		c, err := smtp.Dial(m.alice.SMTP)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(data))
	}
	restart := func(hook bool) {
		t.Helper()
		if err := m.alice.Stop(); err != nil && m.alice.Running() {
			t.Fatal(err)
		}
		if hook {
			os.Setenv("PANORAMIX_TEST_CRASH_AFTER_SEND", "1")
		} else {
			os.Unsetenv("PANORAMIX_TEST_CRASH_AFTER_SEND")
		}
		if err := m.alice.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PANORAMIX_TEST_CRASH_AFTER_SEND", "") // restored at the end
	for i := range kills {
		data := fmt.Sprintf("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: resubmit %d\r\nMessage-ID: <resubmit-%d@here>\r\n\r\nonce, please (%d)\r\n", i, i, i)
		restart(true)
		if err := submit(data); err == nil {
			t.Fatalf("kill %d: the submission got 250; the hook did not kill mailproxy in the window", i)
		}
		for deadline := time.Now().Add(10 * time.Second); m.alice.Running() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		}
		if m.alice.Running() {
			t.Fatalf("kill %d: mailproxy still runs after the failed submission", i)
		}
		restart(false)
		if err := submit(data); err != nil {
			t.Fatalf("kill %d: resubmission: %v", i, err)
		}
	}
	var got []string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = inbox(t, m.bob); len(got) >= kills {
			break
		}
	}
	time.Sleep(5 * time.Second) // a duplicate would show up by then
	got = inbox(t, m.bob)
	for _, mr := range statusOf(t, m.alice).Accounts[0].Messages {
		if mr.State == "failed" {
			t.Errorf("alice's mail %q failed: %s", mr.Subject, mr.Reason)
		}
	}
	count := map[string]int{}
	for _, msg := range got {
		for i := range kills {
			if strings.Contains(msg, fmt.Sprintf("Subject: resubmit %d\r\n", i)) {
				count[fmt.Sprint(i)]++
			}
		}
	}
	dups := 0
	for i := range kills {
		if n := count[fmt.Sprint(i)]; n != 1 {
			t.Errorf("mail %d arrived %d times, want once", i, n)
			if n > 1 {
				dups++
			}
		}
	}
	t.Logf("%d kills in the window, %d mails in bob's INBOX, %d duplicated", kills, len(got), dups)
	if msgs := statusOf(t, m.alice).Accounts[0].Messages; len(msgs) != kills {
		t.Errorf("alice's status lists %d messages, want %d", len(msgs), kills)
	}
}

// Provider beta is down for several epochs (SIGKILL, out of the consensus after about two):
// a mail alice submitted just after the kill (250) waits in her queue instead of bouncing, a
// mail submitted while beta is out of the consensus gets 451 4.4.4 (the domain was in the
// mixnet recently: try again) instead of 550, and after beta's restart the mail program's retry
// is accepted. Bob gets each mail exactly once and alice no bounce.
func TestProviderOutage(t *testing.T) {
	m := startMailnet(t, testParams(), 1, fastProxy, fastProxy)
	ctx := t.Context()
	submit := func(subject string) error {
		c, err := smtp.Dial(m.alice.SMTP)
		if err != nil {
			return err
		}
		defer c.Close()
		data := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@here>\r\n\r\nwaits for beta\r\n"
		return c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(data))
	}
	pc, err := m.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	listsBeta := func() bool {
		doc, err := pc.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := doc.Provider("beta.localhost")
		return ok
	}
	beta := m.Provider("beta.localhost")
	if err := m.Kill(beta); err != nil {
		t.Fatal(err)
	}
	if err := submit("during outage"); err != nil {
		t.Fatalf("submission while beta is still in the consensus: %v", err)
	}
	ep := m.Parameters().EpochLength
	for deadline := time.Now().Add(6 * ep); listsBeta() && time.Now().Before(deadline); time.Sleep(ep / 10) {
	}
	if listsBeta() {
		t.Fatal("beta is still in the consensus six epochs after its provider was killed")
	}
	t.Log("beta left the consensus")
	err = submit("while away")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 4, 4}) {
		t.Errorf("submission while beta is out of the consensus: %v, want 451 4.4.4", err)
	}
	time.Sleep(3 * ep) // several epochs out of the consensus
	if err := m.Restart(beta); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(6 * ep); !listsBeta() && time.Now().Before(deadline); time.Sleep(ep / 10) {
	}
	if !listsBeta() {
		t.Fatal("beta is not back in the consensus six epochs after its restart")
	}
	if err := submit("while away"); err != nil {
		t.Fatalf("retry after the outage: %v", err)
	}
	got := waitInbox(t, m.bob, 2, 90*time.Second, 5*time.Second)
	for _, s := range []string{"during outage", "while away"} {
		n := 0
		for _, msg := range got {
			if strings.Contains(msg, "Subject: "+s+"\r\n") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("mail %q arrived %d times, want once", s, n)
		}
	}
	if len(got) != 2 {
		t.Errorf("bob's INBOX holds %d messages, want 2", len(got))
	}
	for _, mr := range statusOf(t, m.alice).Accounts[0].Messages {
		if mr.Kind != "mail" || mr.State == "failed" {
			t.Errorf("alice's status: %+v", mr)
		}
	}
	if got := inbox(t, m.alice); len(got) != 0 {
		t.Errorf("alice's INBOX holds %d messages, want no bounce", len(got))
	}
}
