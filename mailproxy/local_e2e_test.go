package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// localReadScript reads the local mailbox with Python's imaplib the way a mail program does:
// plain IMAP on loopback, LOGIN with the printed password, no TLS. It prints the messages whose
// Message-ID is argv[5] (all with "") and how many there are.
const localReadScript = `
import imaplib, sys, json
host, port, user, pw, msgid = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
m = imaplib.IMAP4(host, port)
m.login(user, pw)
m.select("INBOX", readonly=True)
if msgid:
    typ, data = m.search(None, "HEADER", "Message-ID", msgid)
else:
    typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, msg = m.fetch(num, "(BODY.PEEK[])")
    out.append(msg[0][1].decode("latin-1"))
m.logout()
print(json.dumps(out))
`

// localInbox reads bob's local mailbox over his mailproxy's IMAP with imaplib.
func localInbox(t *testing.T, mp *testnet.Mailproxy, msgid string) []string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 missing: apt-get install -y python3")
	}
	script := filepath.Join(t.TempDir(), "read.py")
	os.WriteFile(script, []byte(localReadScript), 0o644)
	host, port, _ := strings.Cut(mp.IMAP, ":")
	out, err := exec.Command("python3", script, host, port, mp.User(), mp.IMAPPassword, msgid).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib on the local mailbox: %v\n%s", err, out)
	}
	var msgs []string
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatalf("imaplib output: %v\n%s", err, out)
	}
	return msgs
}

// submitMail submits raw from alice's account with swaks (--data), or with Go's SMTP client
// when swaks is missing outside CI.
func submitMail(t *testing.T, mp *testnet.Mailproxy, to string, raw []byte) {
	t.Helper()
	if _, err := exec.LookPath("swaks"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("swaks missing in CI: scripts/install-test-deps.sh installs it")
		}
		c, err := smtp.Dial(mp.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SendMail(mp.Address, []string{to}, bytes.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		return
	}
	f := filepath.Join(t.TempDir(), "mail.eml")
	os.WriteFile(f, raw, 0o644)
	out, err := swaks(t, mp, "--to", to, "--data", "@"+f)
	if err != nil || !strings.Contains(out, "<-  250") {
		t.Fatalf("swaks: %v\n%s", err, out[max(0, len(out)-3000):])
	}
}

// mimeMail is a mail with a text body and, when att is not nil, an attachment.
func mimeMail(msgid, subject, text string, att []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", subject, msgid)
	if att == nil {
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\n\r\n%s", text)
		return []byte(b.String())
	}
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n%s\r\n--b\r\n", text)
	b.WriteString("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(att)
	for i := 0; i < len(enc); i += 76 {
		b.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	b.WriteString("--b--\r\n")
	return []byte(b.String())
}

// Reading through the link, end to end through the real binaries (issue 20): swaks -> alice's
// mailproxy -> mixnet -> bob's provider, which holds the mail sealed to bob's link key -> bob's
// mailproxy, which fetches it over its link into its local mailbox -> imaplib on bob's loopback
// IMAP. A mail arrives intact, and nothing of it reaches the provider's IMAP store. Then a mail
// with a 1 MB attachment: bob's mailproxy is killed (SIGKILL) while its chunks arrive and
// started again, and the mail is in the local INBOX exactly once, attachment intact.
func TestReadThroughLink(t *testing.T) {
	bobOpts := fastProxy
	bobOpts.LocalMailbox = true
	m := startMailnet(t, testParams(), 1, fastProxy, bobOpts)
	if m.bob.IMAP == "" || m.bob.IMAPPassword == "" {
		t.Fatalf("bob's local mailbox: IMAP %q, password %q", m.bob.IMAP, m.bob.IMAPPassword)
	}
	// StartMailproxy waited for bob's first retrieve-mail, which marks him at his provider
	// (services.md section 6.1).
	if n := statusOf(t, m.bob).Accounts[0].Link.MailRetrieves; n == 0 {
		t.Fatal("bob's mailproxy sent no retrieve-mail")
	}

	text := strings.Repeat("Hello Bob, read on your own machine. 0123456789\r\n", 8192/50)
	submitMail(t, m.alice, "bob@beta.localhost", mimeMail("<local-1@secret-laptop.home>", "through the link", text, nil))
	var got []string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && len(got) == 0; time.Sleep(250 * time.Millisecond) {
		got = localInbox(t, m.bob, "<local-1@alpha.localhost>")
	}
	if len(got) != 1 {
		t.Fatalf("bob's local INBOX holds %d copies of the first mail, want 1", len(got))
	}
	if !strings.Contains(got[0], text) || !strings.Contains(got[0], "Subject: through the link") {
		t.Fatalf("first mail changed on the way:\n%.2000s", got[0])
	}
	if at := inbox(t, m.bob); len(at) != 0 {
		t.Fatalf("the provider's IMAP store holds %d of bob's mails: they were to come through the link", len(at))
	}

	big := make([]byte, 1<<20)
	rand.Read(big)
	submitMail(t, m.alice, "bob@beta.localhost", mimeMail("<local-2@secret-laptop.home>", "one megabyte", "attached\r\n", big))
	// Kill bob's mailproxy once some chunks of the big mail are in and before the last.
	killed := false
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mb := statusOf(t, m.bob).Accounts[0].Mailbox
		if mb == nil {
			t.Fatal("bob's status shows no local mailbox")
		}
		if mb.Fetching && mb.ChunksHave >= 3 && mb.ChunksHave+3 < mb.ChunksCount {
			t.Logf("killing bob's mailproxy at chunk %d of %d", mb.ChunksHave, mb.ChunksCount)
			if err := m.bob.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
			break
		}
		if mb.Messages >= 2 {
			break
		}
	}
	if !killed {
		t.Fatal("never saw the 1 MB mail's chunks arriving")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.bob.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var all []string
	for deadline := time.Now().Add(120 * time.Second); time.Now().Before(deadline) && len(all) < 2; time.Sleep(250 * time.Millisecond) {
		all = localInbox(t, m.bob, "")
	}
	if len(all) != 2 {
		t.Fatalf("bob's local INBOX holds %d messages after the restart, want 2", len(all))
	}
	time.Sleep(2 * time.Second) // a repeat would show up by now
	copies := localInbox(t, m.bob, "<local-2@alpha.localhost>")
	if len(copies) != 1 {
		t.Fatalf("%d copies of the 1 MB mail in bob's local INBOX, want exactly 1", len(copies))
	}
	_, att, body := attachments(t, copies[0])
	if !bytes.Equal(att["big.bin"], big) || !strings.Contains(body, "attached") {
		t.Fatalf("the 1 MB attachment changed: %d bytes", len(att["big.bin"]))
	}
	if n := len(localInbox(t, m.bob, "")); n != 2 {
		t.Fatalf("bob's local INBOX holds %d messages, want 2", n)
	}
	mb := statusOf(t, m.bob).Accounts[0].Mailbox
	if mb.Bad != 0 || mb.Waiting != 0 || mb.Fetching {
		t.Fatalf("bob's local mailbox after the restart: %+v", mb)
	}
	// mailproxy status, the command, shows the local mailbox.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "--config", m.bob.Config}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "local mailbox (IMAP "+m.bob.IMAP) {
		t.Errorf("mailproxy status: %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
