package imapd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// TestMbsyncBothWays syncs the server with a local Maildir using mbsync (isync), changes both
// sides, syncs again and checks every message's bytes and flags on both sides.
func TestMbsyncBothWays(t *testing.T) {
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync not installed: apt-get install -y isync")
	}
	env := newEnv(t, nil)
	env.addUser(t, "bob", "mbsync pw", 0)
	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail")
	conf := filepath.Join(dir, "mbsyncrc")
	cfg := fmt.Sprintf(`IMAPAccount server
Host 127.0.0.1
Port %s
User bob
Pass "mbsync pw"
SSLType IMAPS
CertificateFile %s
AuthMechs PLAIN

IMAPStore far
Account server

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel all
Far :far:
Near :near:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
`, portOf(env.tls), env.caFile, maildir, maildir)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command(mbsync, "-c", conf, "-a")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
	}

	m1, m2, m3 := testMessage(1, "one"), testMessage(2, "two"), testMessage(3, "three")
	sent := testMessage(4, "a sent one")
	mustDeliver := func(box string, m []byte, flags ...string) {
		t.Helper()
		if _, err := env.store.Deliver("bob", box, m, flags, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	mustDeliver(mailstore.Inbox, m1)
	mustDeliver(mailstore.Inbox, m2, mailstore.FlagFlagged)
	mustDeliver(mailstore.Inbox, m3, mailstore.FlagSeen)
	mustDeliver("Sent", sent, mailstore.FlagSeen)

	// First sync: server to Maildir.
	run()
	checkMaildir(t, filepath.Join(maildir, "INBOX"), map[string]string{string(m1): "", string(m2): "F", string(m3): "S"})
	checkMaildir(t, filepath.Join(maildir, "Sent"), map[string]string{string(sent): "S"})
	checkMaildir(t, filepath.Join(maildir, "Trash"), map[string]string{})

	// Local changes: read m1, delete m2 (trashed and expunged), write a new message, and make a
	// new folder with one message. Server side: a new delivery.
	inbox := filepath.Join(maildir, "INBOX")
	renamed := 0
	for _, f := range maildirFiles(t, inbox) {
		data, _ := os.ReadFile(f)
		switch normalize(data, false) {
		case normalize(m1, false):
			rename(t, f, withFlags(f, "S"))
			renamed++
		case normalize(m2, false):
			rename(t, f, withFlags(f, "FT"))
			renamed++
		}
	}
	if renamed != 2 {
		t.Fatalf("found %d of the 2 messages to change in the Maildir", renamed)
	}
	local := []byte("From: bob@beta.example\r\nTo: dave@delta.example\r\nSubject: written offline\r\n\r\nWritten in the Maildir.\r\n")
	localLF := bytes.ReplaceAll(local, []byte("\r\n"), []byte("\n"))
	writeMaildirMsg(t, inbox, "1700000000.test1.host:2,D", localLF)
	projects := filepath.Join(maildir, "Projects")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(projects, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	plan := []byte("Subject: plan\r\n\r\nThe plan.\r\n")
	writeMaildirMsg(t, projects, "1700000001.test2.host:2,S", bytes.ReplaceAll(plan, []byte("\r\n"), []byte("\n")))
	m5 := testMessage(5, "arrived meanwhile")
	mustDeliver(mailstore.Inbox, m5)

	// Second sync: both ways.
	run()
	checkStore(t, env.store, mailstore.Inbox, map[string][]string{
		string(m1):    {`\Seen`},
		string(m3):    {`\Seen`},
		string(m5):    {},
		string(local): {`\Draft`},
	})
	checkStore(t, env.store, "Projects", map[string][]string{string(plan): {`\Seen`}})
	checkMaildir(t, inbox, map[string]string{string(m1): "S", string(m3): "S", string(m5): "", string(local): "D"})

	// A third sync changes nothing and duplicates nothing.
	before, _ := env.store.Snapshot("bob", mailstore.Inbox)
	run()
	after, _ := env.store.Snapshot("bob", mailstore.Inbox)
	if after.UIDNext != before.UIDNext || len(after.Messages) != len(before.Messages) {
		t.Errorf("idle sync changed the server: %+v -> %+v", before, after)
	}
	checkMaildir(t, inbox, map[string]string{string(m1): "S", string(m3): "S", string(m5): "", string(local): "D"})
}

func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("maildir %s: %v", dir, err)
		}
		for _, e := range entries {
			files = append(files, filepath.Join(dir, sub, e.Name()))
		}
	}
	return files
}

// checkMaildir wants exactly the given messages (body -> Maildir flag letters, sorted).
func checkMaildir(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, f := range maildirFiles(t, dir) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		flags := ""
		if _, info, ok := strings.Cut(filepath.Base(f), ":2,"); ok {
			flags = info
		}
		key := normalize(data, false)
		if _, dup := got[key]; dup {
			t.Errorf("%s: message %q twice", dir, firstLine(data))
		}
		got[key] = flags
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d messages, want %d", dir, len(got), len(want))
	}
	for body, flags := range want {
		g, ok := got[normalize([]byte(body), false)]
		if !ok {
			t.Errorf("%s: missing message %q", dir, firstLine([]byte(body)))
		} else if g != flags {
			t.Errorf("%s: message %q has flags %q, want %q", dir, firstLine([]byte(body)), g, flags)
		}
	}
}

// checkStore wants exactly the given messages (body -> flags) in the server's mailbox.
func checkStore(t *testing.T, s *mailstore.Store, mailbox string, want map[string][]string) {
	t.Helper()
	snap, err := s.Snapshot("bob", mailbox)
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	for _, m := range snap.Messages {
		uids = append(uids, m.UID)
	}
	msgs, err := s.Read("bob", mailbox, uids, true, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(want) {
		t.Errorf("server %s: %d messages, want %d", mailbox, len(msgs), len(want))
	}
	for _, m := range msgs {
		w, ok := want[normalize(m.Body, true)]
		if !ok {
			t.Errorf("server %s: unexpected message %q", mailbox, m.Body)
			continue
		}
		if flags := m.Flags; !slices.Equal(flags, w) && !(len(flags) == 0 && len(w) == 0) {
			t.Errorf("server %s: message %q has flags %q, want %q", mailbox, firstLine(m.Body), flags, w)
		}
	}
}

// normalize drops the X-TUID header that mbsync adds to every message it propagates (its
// own marker for finding the copy again) and, unless keepCRLF, turns CRLF into LF: mbsync
// stores Maildir files with LF line ends and converts them back to CRLF when uploading.
func normalize(b []byte, keepCRLF bool) string {
	var out []byte
	for line := range bytes.Lines(b) {
		if bytes.HasPrefix(line, []byte("X-TUID: ")) {
			continue
		}
		out = append(out, line...)
	}
	if !keepCRLF {
		out = bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n"))
	}
	return string(out)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n\r\n")
	return s
}

func withFlags(path, flags string) string {
	name := filepath.Base(path)
	if i := strings.Index(name, ":2,"); i >= 0 {
		name = name[:i]
	}
	return filepath.Join(filepath.Dir(filepath.Dir(path)), "cur", name+":2,"+flags)
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func writeMaildirMsg(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cur", name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}
