package mailbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// dovecot is a throw-away Dovecot (IMAP and LMTP) in a temporary directory, with users bob and
// tiny (a 1 KiB quota), password "secret" (mail-test-recipes.md).
type dovecot struct {
	dir                string
	conf               string
	imapAddr, lmtpAddr string
	lmtpSocket         string
}

// freePort returns a loopback port that was free a moment ago, outside the ephemeral range
// (Dovecot cannot listen on port 0 and report the port).
func freePort(t *testing.T) int {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(a)
	n, _ := strconv.Atoi(p)
	return n
}

// newDovecot writes the configuration; start starts the server.
func newDovecot(t *testing.T) *dovecot {
	t.Helper()
	// Exactly the files this Dovecot runs, each with its Debian package: with dovecot-core
	// and dovecot-imapd but not dovecot-lmtpd, Dovecot starts and every delivery fails.
	for _, f := range [][2]string{{"/usr/sbin/dovecot", "dovecot-core"}, {"/usr/bin/doveadm", "dovecot-core"},
		{"/usr/lib/dovecot/imap", "dovecot-imapd"}, {"/usr/lib/dovecot/lmtp", "dovecot-lmtpd"}} {
		if _, err := os.Stat(f[0]); err != nil {
			t.Skipf("%s missing: install %s (scripts/install-test-deps.sh, as root, installs every test dependency)", f[0], f[1])
		}
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is needed to read mail back over IMAP")
	}
	if os.Getuid() != 0 {
		t.Skip("starting a Dovecot with its own mail user needs root")
	}
	// Dovecot's socket paths must stay short: use a directory under /tmp.
	dir, err := os.MkdirTemp("", "mailbox-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Dovecot's unprivileged processes read the users file in it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const mailUID = 65534 // nobody: Dovecot refuses root as the mail user
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, mailUID, mailUID); err != nil {
		t.Fatal(err)
	}
	d := &dovecot{
		dir:        dir,
		conf:       filepath.Join(dir, "dovecot.conf"),
		imapAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		lmtpAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		lmtpSocket: filepath.Join(dir, "run", "lmtp"),
	}
	users := fmt.Sprintf("bob:{PLAIN}secret:%[1]d:%[1]d::%[2]s/bob::\ntiny:{PLAIN}secret:%[1]d:%[1]d::%[2]s/tiny::userdb_quota_rule=*:storage=1K\n", mailUID, mail)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	_, imapPort, _ := net.SplitHostPort(d.imapAddr)
	_, lmtpPort, _ := net.SplitHostPort(d.lmtpAddr)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
protocols = imap lmtp
listen = 127.0.0.1
mail_location = maildir:~/Maildir
mail_plugins = quota
lmtp_rcpt_check_quota = yes
first_valid_uid = 100
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%n %[1]s/users
}
userdb {
  driver = passwd-file
  args = username_format=%%n %[1]s/users
}
plugin {
  quota = maildir:User quota
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[2]s
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[3]s
  }
  unix_listener lmtp {
    mode = 0600
  }
}
`, dir, imapPort, lmtpPort)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *dovecot) start(t *testing.T) {
	t.Helper()
	// The master daemonizes and keeps inherited descriptors open: its output goes to a file,
	// not to a pipe that would never reach end of file.
	out, err := os.Create(filepath.Join(d.dir, "start.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("dovecot", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("start dovecot: %v\n%s\n%s", err, b, d.log())
	}
	t.Cleanup(func() { d.stop(t) })
	waitFor(t, "dovecot to listen", func() bool {
		for _, a := range []string{d.imapAddr, d.lmtpAddr} {
			c, err := net.Dial("tcp", a)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
}

func (d *dovecot) stop(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(d.dir, "run", "master.pid")); err != nil {
		return
	}
	out, err := os.Create(filepath.Join(d.dir, "stop.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("doveadm", "-c", d.conf, "stop")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Errorf("stop dovecot: %v\n%s", err, b)
	}
	waitFor(t, "dovecot to stop", func() bool {
		_, err := os.Stat(filepath.Join(d.dir, "run", "master.pid"))
		return err != nil
	})
}

func (d *dovecot) log() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
	return string(b)
}

// imapScript logs in and prints the INBOX messages as a JSON list of base64 strings.
const imapScript = `
import base64, imaplib, json, sys
host, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = imaplib.IMAP4(host, port)
m.login(user, "secret")
m.select("INBOX", readonly=True)
typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, msg = m.fetch(num, "(BODY.PEEK[])")
    out.append(base64.b64encode(msg[0][1]).decode())
m.logout()
print(json.dumps(out))
`

// imapInbox reads user's INBOX over IMAP with Python's imaplib, an independent client.
func (d *dovecot) imapInbox(t *testing.T, user string) [][]byte {
	t.Helper()
	host, port, _ := net.SplitHostPort(d.imapAddr)
	out, err := exec.Command("python3", "-c", imapScript, host, port, user).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("imap read: %v\n%s\n%s", err, ee.Stderr, d.log())
		}
		t.Fatalf("imap read: %v", err)
	}
	var enc []string
	if err := json.Unmarshal(out, &enc); err != nil {
		t.Fatalf("imap read: %v: %s", err, out)
	}
	var msgs [][]byte
	for _, e := range enc {
		b, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	return msgs
}

func TestLMTPDovecot(t *testing.T) {
	d := newDovecot(t)
	d.start(t)
	ctx := context.Background()

	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := d.lmtpAddr
			if network == "unix" {
				addr = d.lmtpSocket
			}
			b, err := NewLMTPBackend(LMTPConfig{Network: network, Addr: addr, Domain: "beta.example", Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			for user, want := range map[string]bool{"bob": true, "tiny": true, "carol": false} {
				if got, err := b.UserExists(ctx, user); err != nil || got != want {
					t.Errorf("UserExists(%q) = %v, %v; want %v", user, got, err, want)
				}
			}
			err = b.Deliver(ctx, "carol", testMessage(t, 100))
			if !errors.Is(err, ErrUnknownUser) {
				t.Errorf("deliver to an unknown user: %v, want ErrUnknownUser", err)
			}
			err = b.Deliver(ctx, "tiny", testMessage(t, 2000))
			if !errors.Is(err, ErrOverQuota) {
				t.Errorf("deliver over quota: %v, want ErrOverQuota", err)
			}
		})
	}

	b, err := NewLMTPBackend(LMTPConfig{Network: "tcp", Addr: d.lmtpAddr, Domain: "beta.example"})
	if err != nil {
		t.Fatal(err)
	}
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), b))
	stop := run(t, s)

	// A message whose body has a line starting with a dot and a last line without CRLF:
	// what comes back over IMAP is the message with its last line ended.
	msg := append(testMessage(t, 3*testCapacity), ".leading dot\r\n..two dots\r\nno newline at the end"...)
	frags := fragments(t, newID(t), msg)
	for i := len(frags) - 1; i >= 0; i-- {
		sendStored(t, s, "bob", frags[i])
	}
	sendStored(t, s, "bob", frags[0])
	waitFor(t, "delivery over LMTP", func() bool { return metricValue(s.m.delivered) == 1 })
	// A retransmission after delivery is acked, not delivered again.
	sendStored(t, s, "bob", frags[1])

	// Unknown users are refused at the first fragment, over the LMTP RCPT check.
	if a := send(t, s, "carol", frags[0]); a == nil || a.Status != client.AckUnknownRecipient {
		t.Fatalf("ack %+v for an unknown user, want unknown recipient", a)
	}

	// Over quota: refused at delivery, and retransmissions learn it.
	big := fragments(t, newID(t), testMessage(t, 2000))
	for _, f := range big {
		sendStored(t, s, "tiny", f)
	}
	waitFor(t, "the quota failure", func() bool { return metricValue(s.m.failures.WithLabelValues(reasonOverQuota)) == 1 })
	if a := send(t, s, "tiny", big[0]); a == nil || a.Status != client.AckOverQuota {
		t.Fatalf("ack %+v after the quota failure, want over quota", a)
	}
	stop()

	got := d.imapInbox(t, "bob")
	if len(got) != 1 {
		t.Fatalf("IMAP shows %d messages for bob, want 1", len(got))
	}
	checkDelivered(t, got[0], append(bytes.Clone(msg), "\r\n"...))
	if got := d.imapInbox(t, "tiny"); len(got) != 0 {
		t.Fatalf("IMAP shows %d messages for tiny, want none", len(got))
	}
}

func TestLMTPServerDown(t *testing.T) {
	d := newDovecot(t)
	b, err := NewLMTPBackend(LMTPConfig{Network: "tcp", Addr: d.lmtpAddr, Domain: "beta.example", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), b)
	s := newService(t, cfg)
	stop := run(t, s)

	// The server is not running: fragments are still taken (the user cannot be checked) and
	// the message waits in the outbox.
	msg := testMessage(t, 2*testCapacity)
	frags := fragments(t, newID(t), msg)
	for _, f := range frags {
		sendStored(t, s, "bob", f)
	}
	waitFor(t, "failed attempts", func() bool { return metricValue(s.m.retries) >= 3 })
	if n := count(t, s, bucketOutbox); n != 1 {
		t.Fatalf("outbox holds %d messages while the server is down, want 1", n)
	}
	// mixd restarts while the server is still down.
	stop()
	s, _ = crash(t, s, cfg)
	stop = run(t, s)

	d.start(t)
	waitFor(t, "delivery once the server is up", func() bool { return metricValue(s.m.delivered) == 1 })
	stop()
	got := d.imapInbox(t, "bob")
	if len(got) != 1 {
		t.Fatalf("IMAP shows %d messages, want 1", len(got))
	}
	checkDelivered(t, got[0], msg)
}

func TestLMTPConfig(t *testing.T) {
	for _, c := range []LMTPConfig{
		{Network: "udp", Addr: "127.0.0.1:24", Domain: "example.org"},
		{Network: "tcp", Addr: "", Domain: "example.org"},
		{Network: "tcp", Addr: "127.0.0.1:24", Domain: ""},
		{Network: "tcp", Addr: "127.0.0.1:24", Domain: "a@b"},
		{Network: "tcp", Addr: "127.0.0.1:24", Domain: "example.org", Timeout: -time.Second},
	} {
		if _, err := NewLMTPBackend(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestLMTPErrorClasses(t *testing.T) {
	for _, c := range []struct {
		stage string
		err   *smtp.SMTPError
		want  error // nil: temporary
	}{
		{"RCPT", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}}, ErrUnknownUser},
		{"RCPT", &smtp.SMTPError{Code: 550}, ErrUnknownUser},
		{"DATA reply", &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}}, ErrOverQuota},
		{"DATA reply", &smtp.SMTPError{Code: 552}, ErrOverQuota},
		{"DATA reply", &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}}, ErrTooLarge},
		{"DATA reply", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}}, ErrRejected},
		{"DATA reply", &smtp.SMTPError{Code: 550}, ErrRejected},
		{"DATA reply", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}}, nil},
		{"RCPT", &smtp.SMTPError{Code: 451}, nil},
	} {
		err := lmtpError(c.stage, c.err)
		_, permanent := permanentStatus(err)
		if c.want == nil {
			if permanent {
				t.Errorf("%s %d %v: permanent (%v), want temporary", c.stage, c.err.Code, c.err.EnhancedCode, err)
			}
			continue
		}
		if !errors.Is(err, c.want) || !permanent {
			t.Errorf("%s %d %v: %v, want %v", c.stage, c.err.Code, c.err.EnhancedCode, err, c.want)
		}
	}
	if _, permanent := permanentStatus(lmtpError("MAIL", errors.New("connection reset"))); permanent {
		t.Error("a network error is permanent")
	}
	if strings.Contains(lmtpError("RCPT", &smtp.SMTPError{Code: 550}).Error(), "%!") {
		t.Error("bad error format")
	}
}

// checkDelivered checks that what IMAP returned is msg with only trace header fields added in
// front of it by the LMTP server (RFC 5321 section 4.4: Return-Path, Received; and Dovecot's
// Delivered-To).
func checkDelivered(t *testing.T, got, msg []byte) {
	t.Helper()
	prefix, ok := bytes.CutSuffix(got, msg)
	if !ok {
		t.Fatalf("delivered message does not end with the message sent:\n%.600s", got)
	}
	for _, line := range strings.SplitAfter(string(prefix), "\r\n") {
		if line == "" {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		switch {
		case line[0] == ' ' || line[0] == '\t': // continuation of a trace field
		case name == "Return-Path", name == "Delivered-To", name == "Received":
		default:
			t.Fatalf("the server added %q in front of the message", line)
		}
	}
}

// fakeLMTP is a minimal LMTP server that knows user bob and counts connections.
func fakeLMTP(t *testing.T) (addr string, conns *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				tc := textproto.NewConn(c)
				tc.PrintfLine("220 fake LMTP")
				for {
					line, err := tc.ReadLine()
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(line); {
					case strings.HasPrefix(cmd, "LHLO"):
						tc.PrintfLine("250-fake\r\n250 ENHANCEDSTATUSCODES")
					case strings.HasPrefix(cmd, "RCPT TO:<BOB@"):
						tc.PrintfLine("250 2.1.5 OK")
					case strings.HasPrefix(cmd, "RCPT"):
						tc.PrintfLine("550 5.1.1 no such user")
					case strings.HasPrefix(cmd, "QUIT"):
						tc.PrintfLine("221 2.0.0 bye")
						return
					default:
						tc.PrintfLine("250 2.0.0 OK")
					}
				}
			}()
		}
	}()
	return l.Addr().String(), conns
}

func TestLMTPUserCache(t *testing.T) {
	addr, conns := fakeLMTP(t)
	b, err := NewLMTPBackend(LMTPConfig{Network: "tcp", Addr: addr, Domain: "beta.example", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for user, want := range map[string]bool{"bob": true, "carol": false} {
			if got, err := b.UserExists(context.Background(), user); err != nil || got != want {
				t.Fatalf("UserExists(%q) = %v, %v; want %v", user, got, err, want)
			}
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections for two users asked three times each, want 2", n)
	}
	// Names that cannot be mail local parts never reach the server.
	if got, err := b.UserExists(context.Background(), "a@b"); err != nil || got {
		t.Fatalf("UserExists(a@b) = %v, %v", got, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}
