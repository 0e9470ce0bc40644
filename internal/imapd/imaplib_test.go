package imapd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// These tests drive the server with Python's imaplib, a client written independently of
// go-imap, and check every message's bytes and flags.

func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: apt-get install -y python3")
	}
	return p
}

// runPython runs script with the server's coordinates in the environment and returns its last
// output line decoded as JSON into out. onLine, if set, sees each output line as it arrives.
func runPython(t *testing.T, env *testEnv, script string, vars map[string]string, out any, onLine func(string)) {
	t.Helper()
	py := python(t)
	path := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, path)
	cmd.Env = append(os.Environ(),
		"IMAP_HOST=127.0.0.1",
		"IMAP_PORT="+portOf(env.plain),
		"IMAP_TLS_PORT="+portOf(env.tls),
		"IMAP_CA="+env.caFile,
	)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	var last string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		last = sc.Text()
		if onLine != nil {
			onLine(last)
		}
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python client failed: %v\nstderr:\n%s\nlast line: %s", err, stderr.String(), last)
	}
	if err := json.Unmarshal([]byte(last), out); err != nil {
		t.Fatalf("python output %q: %v\nstderr:\n%s", last, err, stderr.String())
	}
}

func portOf(hostport string) string {
	return hostport[strings.LastIndexByte(hostport, ':')+1:]
}

// testMessage is a distinct RFC 5322 message.
func testMessage(i int, subject string) []byte {
	return fmt.Appendf(nil, "From: Alice <alice@alpha.example>\r\nTo: bob@beta.example\r\nSubject: %s\r\nDate: Mon, 2 Mar 2026 10:00:0%d +0100\r\nMessage-ID: <m%d@alpha.example>\r\n\r\nThis is body number %d.\r\nSecond line of %d.\r\n", subject, i, i, i, i)
}

const pyCommon = `
import imaplib, json, os, re, ssl, sys, time
HOST = os.environ["IMAP_HOST"]
PORT = int(os.environ["IMAP_PORT"])
TLS_PORT = int(os.environ["IMAP_TLS_PORT"])
CTX = ssl.create_default_context(cafile=os.environ["IMAP_CA"])
USER = os.environ["IMAP_USER"]
PASS = os.environ["IMAP_PASS"]

def ok(resp):
    typ, data = resp
    if typ != "OK":
        raise SystemExit("command failed: %r %r" % (typ, data))
    return data

def fetch_all(c, spec):
    """Fetch spec for 1:* and return a list of dicts with seq, uid, flags, body."""
    data = ok(c.fetch("1:*", spec))
    out = []
    for item in data:
        if isinstance(item, tuple):
            head, body = item
        elif item and item != b")":
            head, body = item, b""
        else:
            continue
        head = head.decode()
        m = {"seq": int(head.split()[0])}
        u = re.search(r"UID (\d+)", head)
        if u:
            m["uid"] = int(u.group(1))
        m["flags"] = sorted(f.decode() for f in imaplib.ParseFlags(head.encode()))
        m["body"] = body.decode()
        out.append(m)
    return out
`

const pySession = pyCommon + `
out = {}
c = imaplib.IMAP4(HOST, PORT)
out["caps_before_tls"] = sorted(c.capabilities)
c.starttls(ssl_context=CTX)
ok(c.login(USER, PASS))
out["exists"] = int(ok(c.select("INBOX"))[0])
out["search_all"] = ok(c.search(None, "ALL"))[0].decode().split()
out["initial"] = fetch_all(c, "(UID FLAGS BODY.PEEK[])")

# FETCH without PEEK sets \Seen.
ok(c.fetch("1", "(RFC822)"))
out["after_read"] = fetch_all(c, "(UID FLAGS)")

# STORE, then EXPUNGE of a \Deleted message.
ok(c.store("2", "+FLAGS", "(\\Deleted)"))
ok(c.store("3", "+FLAGS", "(\\Answered $Done)"))
ok(c.store("3", "-FLAGS", "($Work)"))
out["expunged"] = [x.decode() for x in ok(c.expunge()) if x]

# APPEND with flags and a date.
body4 = os.environ["APPEND_BODY"].replace("\n", "\r\n")
when = imaplib.Time2Internaldate(time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)))
out["append"] = ok(c.append("INBOX", "(\\Seen $Label)", when, body4.encode()))[0].decode()
out["after_append"] = fetch_all(c, "(UID FLAGS INTERNALDATE BODY.PEEK[])")

out["search"] = {}
for name, crit in [("unseen", "UNSEEN"), ("answered", "ANSWERED"), ("keyword", "KEYWORD $Label"),
                   ("subject", 'SUBJECT "third"'), ("body", 'BODY "number 1."'),
                   ("header", 'HEADER Message-ID "<m3@"'), ("not_seen_or", "OR UNSEEN KEYWORD $Label"),
                   ("larger", "LARGER 10000"), ("since", "SINCE 1-Jan-2026"), ("before", "BEFORE 1-Jan-2026"),
                   ("uid", "UID 3:*")]:
    out["search"][name] = ok(c.search(None, crit))[0].decode().split()
out["uid_search"] = ok(c.uid("SEARCH", None, "ALL"))[0].decode().split()

# COPY and MOVE by UID.
# imaplib's uid() returns untagged FETCH data; the tagged text carries COPYUID.
out["copy"] = ok(c._simple_command("UID", "COPY", "1", "Trash"))[0].decode()
typ, data = c.uid("MOVE", "3", "Sent")
out["move_typ"] = typ
out["after_move"] = fetch_all(c, "(UID FLAGS)")
ok(c.select("Trash"))
out["trash"] = fetch_all(c, "(UID FLAGS BODY.PEEK[])")
ok(c.select("Sent", readonly=True))
out["sent"] = fetch_all(c, "(UID FLAGS BODY[])")
out["sent_after_examine"] = fetch_all(c, "(UID FLAGS)")
typ, data = c.store("1", "+FLAGS", "(\\Deleted)")
out["store_readonly"] = typ
out["close_readonly"] = c.close()[0]

out["list"] = sorted(x.decode().replace('"', "") for x in ok(c.list()))
ok(c.create("Archive/2026"))
ok(c.rename("Archive", "Old"))
out["list2"] = sorted(x.decode().split(' "/" ')[1].strip('"') for x in ok(c.list('""', "Old*")))
ok(c.delete("Old/2026"))
typ, data = c.select("NoSuchBox")
out["select_missing"] = [typ, data[0].decode()]
out["status"] = ok(c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY)"))[0].decode()
c.logout()
print(json.dumps(out))
`

type pyMsg struct {
	Seq   int      `json:"seq"`
	UID   int      `json:"uid"`
	Flags []string `json:"flags"`
	Body  string   `json:"body"`
}

func TestImaplibSession(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "bob's password", 0)
	msgs := [][]byte{testMessage(1, "first"), testMessage(2, "second"), testMessage(3, "third")}
	flags := [][]string{nil, {mailstore.FlagFlagged}, {"$Work"}}
	for i, m := range msgs {
		if uid, err := env.store.Deliver("bob", mailstore.Inbox, m, flags[i], time.Time{}); err != nil || uid != uint32(i+1) {
			t.Fatalf("Deliver: uid %d, %v", uid, err)
		}
	}
	appendBody := "From: bob@beta.example\nTo: carol@gamma.example\nSubject: appended\n\nAppended by imaplib.\n"
	var out struct {
		CapsBeforeTLS []string `json:"caps_before_tls"`
		Exists        int
		SearchAll     []string `json:"search_all"`
		Initial       []pyMsg
		AfterRead     []pyMsg `json:"after_read"`
		Expunged      []string
		Append        string
		AfterAppend   []pyMsg `json:"after_append"`
		Search        map[string][]string
		UIDSearch     []string `json:"uid_search"`
		Copy          string
		MoveTyp       string  `json:"move_typ"`
		AfterMove     []pyMsg `json:"after_move"`
		Trash         []pyMsg
		Sent          []pyMsg
		SentAfter     []pyMsg `json:"sent_after_examine"`
		StoreReadonly string  `json:"store_readonly"`
		CloseReadonly string  `json:"close_readonly"`
		List          []string
		List2         []string
		SelectMissing []string `json:"select_missing"`
		Status        string
	}
	runPython(t, env, pySession, map[string]string{"IMAP_USER": "bob", "IMAP_PASS": "bob's password", "APPEND_BODY": appendBody}, &out, nil)

	if !slices.Contains(out.CapsBeforeTLS, "STARTTLS") || !slices.Contains(out.CapsBeforeTLS, "LOGINDISABLED") {
		t.Errorf("capabilities before TLS %v: want STARTTLS and LOGINDISABLED", out.CapsBeforeTLS)
	}
	if out.Exists != 3 || !slices.Equal(out.SearchAll, []string{"1", "2", "3"}) {
		t.Errorf("exists %d, search ALL %v", out.Exists, out.SearchAll)
	}
	checkMsgs(t, "initial", out.Initial, []pyMsg{
		{1, 1, []string{}, string(msgs[0])},
		{2, 2, []string{`\Flagged`}, string(msgs[1])},
		{3, 3, []string{"$Work"}, string(msgs[2])},
	})
	checkMsgs(t, "after FETCH RFC822", out.AfterRead, []pyMsg{
		{1, 1, []string{`\Seen`}, ""},
		{2, 2, []string{`\Flagged`}, ""},
		{3, 3, []string{"$Work"}, ""},
	})
	if !slices.Equal(out.Expunged, []string{"2"}) {
		t.Errorf("EXPUNGE reported %v, want [2]", out.Expunged)
	}
	inbox, _ := env.store.Snapshot("bob", mailstore.Inbox)
	if want := fmt.Sprintf("[APPENDUID %d 4] APPEND completed", inbox.UIDValidity); out.Append != want {
		t.Errorf("APPEND answered %q, want %q", out.Append, want)
	}
	crlf := strings.ReplaceAll(appendBody, "\n", "\r\n")
	checkMsgs(t, "after APPEND", out.AfterAppend, []pyMsg{
		{1, 1, []string{`\Seen`}, string(msgs[0])},
		{2, 3, []string{"$Done", `\Answered`}, string(msgs[2])},
		{3, 4, []string{"$Label", `\Seen`}, crlf},
	})
	wantSearch := map[string][]string{
		"unseen":      {"2"},
		"answered":    {"2"},
		"keyword":     {"3"},
		"subject":     {"2"},
		"body":        {"1"},
		"header":      {"2"},
		"not_seen_or": {"2", "3"},
		"larger":      nil,
		"since":       {"1", "2", "3"},
		"before":      nil,
		"uid":         {"2", "3"},
	}
	for name, want := range wantSearch {
		if got := out.Search[name]; !slices.Equal(got, want) {
			t.Errorf("SEARCH %s = %v, want %v", name, got, want)
		}
	}
	if !slices.Equal(out.UIDSearch, []string{"1", "3", "4"}) {
		t.Errorf("UID SEARCH ALL = %v", out.UIDSearch)
	}
	trash, _ := env.store.Snapshot("bob", "Trash")
	if want := fmt.Sprintf("[COPYUID %d 1 1] COPY completed", trash.UIDValidity); out.Copy != want {
		t.Errorf("COPY answered %q, want %q", out.Copy, want)
	}
	if out.MoveTyp != "OK" {
		t.Errorf("UID MOVE: %s", out.MoveTyp)
	}
	checkMsgs(t, "INBOX after MOVE", out.AfterMove, []pyMsg{
		{1, 1, []string{`\Seen`}, ""},
		{2, 4, []string{"$Label", `\Seen`}, ""},
	})
	checkMsgs(t, "Trash", out.Trash, []pyMsg{{1, 1, []string{`\Seen`}, string(msgs[0])}})
	checkMsgs(t, "Sent (EXAMINE, FETCH BODY[])", out.Sent, []pyMsg{{1, 1, []string{"$Done", `\Answered`}, string(msgs[2])}})
	checkMsgs(t, "Sent after EXAMINE: no implicit \\Seen", out.SentAfter, []pyMsg{{1, 1, []string{"$Done", `\Answered`}, ""}})
	if out.StoreReadonly != "NO" {
		t.Errorf("STORE in EXAMINE mode: %s, want NO", out.StoreReadonly)
	}
	if out.CloseReadonly != "OK" {
		t.Errorf("CLOSE in EXAMINE mode: %s, want OK", out.CloseReadonly)
	}
	wantList := []string{`(\HasNoChildren) / INBOX`, `(\Sent \HasNoChildren) / Sent`, `(\Trash \HasNoChildren) / Trash`}
	if !slices.Equal(out.List, wantList) {
		t.Errorf("LIST = %q, want %q", out.List, wantList)
	}
	if !slices.Equal(out.List2, []string{"Old", "Old/2026"}) {
		t.Errorf("LIST after RENAME = %q", out.List2)
	}
	if len(out.SelectMissing) != 2 || out.SelectMissing[0] != "NO" || !strings.Contains(out.SelectMissing[1], "NONEXISTENT") {
		t.Errorf("SELECT missing mailbox: %q", out.SelectMissing)
	}
	if want := fmt.Sprintf("INBOX (MESSAGES 2 UIDNEXT 5 UIDVALIDITY %d UNSEEN 0)", inbox.UIDValidity); out.Status != want {
		t.Errorf("STATUS = %q, want %q", out.Status, want)
	}

	// The store agrees, message by message.
	got, err := env.store.Read("bob", mailstore.Inbox, []uint32{1, 2, 3, 4, 5}, true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].UID != 1 || string(got[0].Body) != string(msgs[0]) || got[1].UID != 4 || string(got[1].Body) != crlf {
		t.Errorf("INBOX in the store: %+v", got)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local); !got[1].Date.Equal(want) {
		t.Errorf("appended internal date %v, want %v", got[1].Date, want)
	}
	sent, _ := env.store.Read("bob", "Sent", []uint32{1}, true, 1<<20)
	if len(sent) != 1 || string(sent[0].Body) != string(msgs[2]) || !slices.Equal(sent[0].Flags, []string{"$Done", `\Answered`}) {
		t.Errorf("Sent in the store: %+v", sent)
	}
}

func checkMsgs(t *testing.T, what string, got, want []pyMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d messages, want %d: %+v", what, len(got), len(want), got)
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		// \Recent is the session's, not the message's (TestRecent checks it); these tests
		// compare the flags the store keeps.
		g.Flags = slices.DeleteFunc(slices.Clone(g.Flags), func(f string) bool { return f == `\Recent` })
		if g.Seq != w.Seq || g.UID != w.UID || !slices.Equal(g.Flags, w.Flags) || (w.Body != "" && g.Body != w.Body) {
			t.Errorf("%s: message %d = seq %d uid %d flags %q body %q; want seq %d uid %d flags %q body %q",
				what, i+1, g.Seq, g.UID, g.Flags, g.Body, w.Seq, w.UID, w.Flags, w.Body)
		}
	}
}
