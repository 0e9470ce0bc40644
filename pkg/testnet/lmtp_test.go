package testnet

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// startDovecot runs a throw-away Dovecot with IMAP and LMTP on loopback and one user, bob,
// password "secret" (docs: shared mail-test-recipes). It returns the IMAP and LMTP addresses.
func startDovecot(t *testing.T) (imapAddr, lmtpAddr string) {
	t.Helper()
	// Exactly the files this Dovecot runs, each with its Debian package: with dovecot-core
	// and dovecot-imapd but not dovecot-lmtpd, Dovecot starts and every delivery fails.
	for _, f := range [][2]string{{"/usr/sbin/dovecot", "dovecot-core"}, {"/usr/bin/doveadm", "dovecot-core"},
		{"/usr/lib/dovecot/imap", "dovecot-imapd"}, {"/usr/lib/dovecot/lmtp", "dovecot-lmtpd"}} {
		if _, err := os.Stat(f[0]); err != nil {
			t.Skipf("%s missing: install %s (scripts/install-test-deps.sh, as root, installs every test dependency)", f[0], f[1])
		}
	}
	if os.Getuid() != 0 {
		t.Skip("a Dovecot with its own mail user needs root")
	}
	dir, err := os.MkdirTemp("", "tn-dovecot-") // socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Dovecot's unprivileged auth process must read the users file.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const uid = 65534 // nobody: Dovecot refuses root as the mail user
	mail := filepath.Join(dir, "mail")
	os.Mkdir(mail, 0o700)
	os.Chown(mail, uid, uid)
	ports, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	imapAddr, lmtpAddr = ports[0], ports[1]
	_, imapPort, _ := net.SplitHostPort(imapAddr)
	_, lmtpPort, _ := net.SplitHostPort(lmtpAddr)
	os.WriteFile(filepath.Join(dir, "users"), []byte(fmt.Sprintf("bob:{PLAIN}secret:%d:%d::%s/bob::\n", uid, uid, mail)), 0o644)
	conf := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
protocols = imap lmtp
listen = 127.0.0.1
mail_location = maildir:~/Maildir
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
}
`, dir, imapPort, lmtpPort)), 0o644)
	// The master daemonizes and keeps inherited descriptors open: its output goes to a file,
	// not to a pipe that would never reach end of file.
	out, err := os.Create(filepath.Join(dir, "start.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dovecot", "-c", conf)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	out.Close()
	if err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("dovecot: %v\n%s", err, b)
	}
	t.Cleanup(func() { exec.Command("doveadm", "-c", conf, "stop").Run() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", lmtpAddr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot did not listen on %s\n%s", lmtpAddr, log)
		}
	}
	return imapAddr, lmtpAddr
}

const dovecotReadScript = `
import imaplib, sys, json
host, port = sys.argv[1], int(sys.argv[2])
m = imaplib.IMAP4(host, port)
m.login("bob", "secret")
m.select("INBOX")
typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, msg = m.fetch(num, "(RFC822)")
    out.append(msg[0][1].decode("latin-1"))
m.logout()
print(json.dumps(out))
`

// The exit provider hands reassembled mail to the provider's own mail server over LMTP: a real
// Dovecot started here. The mail crosses provider, three mixes and provider, is acknowledged
// through the SURBs, and bob reads it once, intact, from Dovecot over IMAP.
func TestMailThroughMixnetIntoDovecotByLMTP(t *testing.T) {
	imapAddr, lmtpAddr := startDovecot(t)
	n := startNet(t, 5*time.Second)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")

	// Provider beta switches from its built-in store to LMTP into Dovecot.
	cfg, err := os.ReadFile(beta.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	i := strings.Index(text, "\n[mailbox]")
	if i < 0 {
		t.Fatal("no [mailbox] section in the provider config")
	}
	text = text[:i] + fmt.Sprintf("\n[mailbox]\nbackend = \"lmtp\"\nlmtp_network = \"tcp\"\nlmtp_address = %q\n", lmtpAddr)
	if err := os.WriteFile(beta.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Kill(beta); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(beta); err != nil {
		t.Fatal(err)
	}

	aliceKey := addUser(t, n, alpha, "alice")
	pc, _ := n.PKIClient()
	doc, err := pc.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := sphinx.New(n.Parameters().Geometry)
	a, b := provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
	conn := dialAs(t, n, aliceKey, a)
	defer conn.Close()
	c := &loopClient{t: t, s: s, user: "alice", conn: conn, keys: map[[sphinx.SURBIDSize]byte][]byte{}}

	msg := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: into Dovecot\r\n\r\n" + strings.Repeat("lmtp hand-off. ", 2500) + "\r\n"
	var id client.MessageID
	rand.Read(id[:])
	frags, _ := client.Split(id, []byte(msg), client.FragmentCapacity(n.Parameters().Geometry))
	for _, f := range frags {
		pkt, _ := c.fragmentPacket(doc, a, b, "bob", f)
		send(t, conn, pkt)
	}
	for _, ack := range c.acks(len(frags), 45*time.Second) {
		if ack.ID != id || ack.Status != client.AckStored {
			t.Fatalf("ack %+v", ack)
		}
	}
	script := filepath.Join(t.TempDir(), "read.py")
	os.WriteFile(script, []byte(dovecotReadScript), 0o644)
	host, port, _ := net.SplitHostPort(imapAddr)
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command("python3", script, host, port).CombinedOutput()
		if err != nil {
			t.Fatalf("imaplib against Dovecot: %v\n%s", err, out)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			break
		}
	}
	if len(got) != 1 {
		t.Fatalf("Dovecot INBOX holds %d messages, want 1", len(got))
	}
	// Dovecot adds its own Return-Path and Delivered-To and Received headers on top.
	if !strings.HasSuffix(got[0], msg[strings.Index(msg, "From:"):]) && !strings.Contains(got[0], strings.TrimSuffix(msg, "\r\n")) {
		t.Fatalf("message changed on the way (got %d bytes)", len(got[0]))
	}
}
