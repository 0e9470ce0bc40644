package testnet

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runUp is one `mixctl testnet up` (make run's command) on a state directory, read up to the
// end of what it prints at start.
type runUp struct {
	cmd   *exec.Cmd
	out   *bytes.Buffer // everything printed so far
	done  chan error
	users map[string]runUser
	ca    string
	imap  map[string]string // provider name -> IMAP address, as printed
}

type runUser struct{ smtp, imap, login, password string }

var (
	runUserLine = regexp.MustCompile(`(?m)^  (\S+@\S+)\s+mailproxy SMTP (\S+)\s+local IMAP (\S+) \(no TLS\) login (\S+)\s+password (\S+)$`)
	runCALine   = regexp.MustCompile(`(?m)^certificate authority (\S+) `)
	runNodeLine = regexp.MustCompile(`(?m)^(provider-\S+)\s+provider .* IMAP \(STARTTLS\) (\S+),`)
)

// startUp runs mixctl testnet up on dir and waits until it printed the users' settings.
func startUp(t *testing.T, dir string) *runUp {
	t.Helper()
	r := &runUp{out: &bytes.Buffer{}, done: make(chan error, 1)}
	r.cmd = exec.Command(filepath.Join(binDir, "mixctl"), "testnet", "up", "--bin", binDir, "--dir", dir, "--epoch", "3s")
	pr, pw := io.Pipe()
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait(); pw.Close() }()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			r.out.WriteString(sc.Text() + "\n")
			if !signalled && strings.HasPrefix(sc.Text(), "and the same for ") {
				signalled = true
				close(ready)
			}
		}
		if !signalled {
			close(ready)
		}
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-ready:
	case <-time.After(3 * time.Minute):
		t.Fatalf("mixctl testnet up printed no users' settings in 3 minutes:\n%s", r.out)
	}
	text := r.out.String()
	r.users = map[string]runUser{}
	for _, m := range runUserLine.FindAllStringSubmatch(text, -1) {
		r.users[m[1]] = runUser{m[2], m[3], m[4], m[5]}
	}
	r.imap = map[string]string{}
	for _, m := range runNodeLine.FindAllStringSubmatch(text, -1) {
		r.imap[m[1]] = m[2]
	}
	if m := runCALine.FindStringSubmatch(text); m != nil {
		r.ca = m[1]
	}
	if len(r.users) != 2 || len(r.imap) != 2 || r.ca == "" {
		t.Fatalf("mixctl testnet up did not print two users, two providers and a CA:\n%s", text)
	}
	return r
}

// stop interrupts it as Ctrl-C does and checks that it stopped cleanly.
func (r *runUp) stop(t *testing.T) {
	t.Helper()
	if r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("mixctl testnet up: %v\n%s", err, r.out)
		}
	case <-time.After(time.Minute):
		r.cmd.Process.Kill()
		t.Errorf("mixctl testnet up did not stop within a minute of SIGINT:\n%s", r.out)
	}
}

// imapVerifiedScript reads a user's INBOX over STARTTLS, verifying the server's certificate
// against a CA file for a host name or address: the check every mail client makes.
const imapVerifiedScript = `
import imaplib, ssl, sys, json
addr, port, sni, ca, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
m = imaplib.IMAP4(addr, port)
if ca:  # without a CA: a mailproxy's local mailbox, plain IMAP on loopback
    ctx = ssl.create_default_context(cafile=ca)
    m.host = sni  # starttls verifies the certificate for m.host (imaplib passes it as server_hostname)
    m.starttls(ssl_context=ctx)
out = []
if user:
    m.login(user, pw)
    m.select("INBOX")
    typ, data = m.search(None, "ALL")
    for num in data[0].split():
        typ, msg = m.fetch(num, "(RFC822)")
        out.append(msg[0][1].decode("latin-1"))
m.logout()
print(json.dumps(out))
`

// imapVerified runs imapVerifiedScript against addr (host:port) for the server name sni; with
// user empty it only checks the certificate; with ca empty it uses no TLS (a local mailbox). A certificate that does not verify fails the test.
func imapVerified(t *testing.T, addr, sni, ca, user, password string) []string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 missing: apt-get install -y python3 (scripts/install-test-deps.sh)")
	}
	script := filepath.Join(t.TempDir(), "read.py")
	os.WriteFile(script, []byte(imapVerifiedScript), 0o644)
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("python3", script, host, port, sni, ca, user, password).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 ssl for %s at %s with CA %s: %v\n%s", sni, addr, ca, err, out)
	}
	var msgs []string
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatalf("imaplib output: %v\n%s", err, out)
	}
	return msgs
}

// TestRunResumesStateDirectory runs make run's command twice on one state directory: the
// second start resumes the first network (same ports, passwords, CA and certificates, admin
// tokens), and a mail delivered before the restart is still in bob's INBOX after it. Each
// provider's certificate verifies with Python's ssl against the printed CA, for the printed
// address and for the provider's domain, before and after the restart.
func TestRunResumesStateDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	dir := t.TempDir()
	first := startUp(t, dir)
	alice := first.users["alice@alpha.localhost"]
	checkCerts := func(r *runUp) {
		for name, addr := range r.imap {
			host, _, _ := strings.Cut(addr, ":")
			domain := strings.TrimPrefix(name, "provider-") + ".localhost"
			imapVerified(t, addr, host, r.ca, "", "")
			imapVerified(t, addr, domain, r.ca, "", "")
		}
	}
	checkCerts(first)

	subject := fmt.Sprintf("before the restart %d", time.Now().UnixNano())
	msg := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: " + subject + "\r\n\r\nStill here after make run again?\r\n"
	if err := smtp.SendMail(alice.smtp, nil, "alice@alpha.localhost", []string{"bob@beta.localhost"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	inbox := func(r *runUp) bool {
		b := r.users["bob@beta.localhost"]
		// make run's users read their local mailboxes (mail through the link, issue 20).
		for _, m := range imapVerified(t, b.imap, "", "", b.login, b.password) {
			if strings.Contains(m, "Subject: "+subject) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !inbox(first) {
		if time.Now().After(deadline) {
			t.Fatalf("alice's mail did not reach bob's INBOX in 2 minutes:\n%s", first.out)
		}
		time.Sleep(time.Second)
	}
	files := map[string][]byte{}
	for _, f := range []string{"ca/ca.crt", "provider-alpha/imap.crt", "provider-beta/imap.crt", "provider-alpha/admin.token", "directory/admin.token"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	first.stop(t)
	if !strings.Contains(first.out.String(), "stopped cleanly") || !strings.Contains(first.out.String(), "state stays in "+dir) {
		t.Fatalf("mixctl testnet up did not say where the state stays:\n%s", first.out)
	}

	second := startUp(t, dir)
	if !strings.Contains(second.out.String(), "resuming the network in "+dir) {
		t.Errorf("second start does not say it resumes:\n%s", second.out)
	}
	for addr, u := range first.users {
		if second.users[addr] != u {
			t.Errorf("%s: second start printed %+v, first %+v", addr, second.users[addr], u)
		}
	}
	for name, a := range first.imap {
		if second.imap[name] != a {
			t.Errorf("%s IMAP: second start %s, first %s", name, second.imap[name], a)
		}
	}
	if second.ca != first.ca {
		t.Errorf("CA file: second start %s, first %s", second.ca, first.ca)
	}
	for f, b := range files {
		if now, err := os.ReadFile(filepath.Join(dir, f)); err != nil || !bytes.Equal(now, b) {
			t.Errorf("%s changed across the restart (%v)", f, err)
		}
	}
	checkCerts(second)
	if !inbox(second) {
		t.Fatalf("bob's INBOX lost the mail across the restart")
	}
}
