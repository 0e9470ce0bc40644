package imapd

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// Two sessions of one user (one on implicit TLS with AUTHENTICATE PLAIN, one with STARTTLS and
// LOGIN) see each other's changes, and an IDLEing session learns of a delivery at once.
const pyConcurrent = pyCommon + `
import base64
out = {}
a = imaplib.IMAP4_SSL(HOST, TLS_PORT, ssl_context=CTX)
out["caps_tls"] = sorted(a.capabilities)
ok(a.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (USER, PASS)).encode()))
b = imaplib.IMAP4(HOST, PORT)
b.starttls(ssl_context=CTX)
ok(b.login(USER, PASS))
ok(a.select("INBOX"))
ok(b.select("INBOX"))
a.untagged_responses.clear()  # imaplib keeps SELECT's EXISTS around

ok(b.store("1", "+FLAGS", "(\\Answered)"))
ok(a.noop())
out["a_sees_flags"] = [x.decode() for x in (a.response("FETCH")[1] or []) if x]

ok(b.store("2", "+FLAGS", "(\\Deleted)"))
ok(b.expunge())
ok(a.noop())
out["a_sees_expunge"] = [x.decode() for x in (a.response("EXPUNGE")[1] or []) if x]

ok(b.append("INBOX", None, None, b"Subject: from b\r\n\r\nappended by session b\r\n"))
ok(a.noop())
out["a_sees_exists"] = [x.decode() for x in (a.response("EXISTS")[1] or []) if x]

# IDLE by hand (imaplib has no IDLE before Python 3.14).
a.sock.settimeout(20)
tag = a._new_tag()
a.send(tag + b" IDLE\r\n")
out["idle_cont"] = a.readline().decode().strip()
print("IDLING", flush=True)
seen = []
while True:
    line = a.readline().decode().strip()
    seen.append(line)
    if line.endswith("EXISTS"):
        break
out["idle_lines"] = seen
a.send(b"DONE\r\n")
while True:
    line = a.readline().decode().strip()
    if line.startswith(tag.decode()):
        out["idle_done"] = line
        break
out["after_idle"] = fetch_all(a, "(UID FLAGS BODY.PEEK[])")
a.logout()
b.logout()
print(json.dumps(out))
`

func TestImaplibConcurrentAndIdle(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	for i := 1; i <= 3; i++ {
		if _, err := env.store.Deliver("bob", mailstore.Inbox, testMessage(i, "hello"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	delivered := testMessage(9, "delivered while idling")
	var out struct {
		CapsTLS      []string `json:"caps_tls"`
		ASeesFlags   []string `json:"a_sees_flags"`
		ASeesExpunge []string `json:"a_sees_expunge"`
		ASeesExists  []string `json:"a_sees_exists"`
		IdleCont     string   `json:"idle_cont"`
		IdleLines    []string `json:"idle_lines"`
		IdleDone     string   `json:"idle_done"`
		AfterIdle    []pyMsg  `json:"after_idle"`
	}
	var deliverErr error
	runPython(t, env, pyConcurrent, map[string]string{"IMAP_USER": "bob", "IMAP_PASS": "pw"}, &out, func(line string) {
		if line == "IDLING" {
			_, deliverErr = env.store.Deliver("bob", mailstore.Inbox, delivered, nil, time.Time{})
		}
	})
	if deliverErr != nil {
		t.Fatal(deliverErr)
	}
	if slices.Contains(out.CapsTLS, "STARTTLS") || !slices.Contains(out.CapsTLS, "AUTH=PLAIN") {
		t.Errorf("capabilities on the TLS port %v: want AUTH=PLAIN and no STARTTLS", out.CapsTLS)
	}
	if len(out.ASeesFlags) != 1 || !strings.Contains(out.ASeesFlags[0], `\Answered`) || !strings.HasPrefix(out.ASeesFlags[0], "1 (") {
		t.Errorf("session a saw FETCH %q, want message 1 with \\Answered", out.ASeesFlags)
	}
	if !slices.Equal(out.ASeesExpunge, []string{"2"}) {
		t.Errorf("session a saw EXPUNGE %q, want [2]", out.ASeesExpunge)
	}
	if !slices.Equal(out.ASeesExists, []string{"3"}) {
		t.Errorf("session a saw EXISTS %q, want [3]", out.ASeesExists)
	}
	if !strings.HasPrefix(out.IdleCont, "+") {
		t.Errorf("IDLE continuation %q", out.IdleCont)
	}
	if len(out.IdleLines) != 1 || out.IdleLines[0] != "* 4 EXISTS" {
		t.Errorf("during IDLE: %q, want [* 4 EXISTS]", out.IdleLines)
	}
	if !strings.Contains(out.IdleDone, "OK") {
		t.Errorf("IDLE ended with %q", out.IdleDone)
	}
	checkMsgs(t, "after IDLE", out.AfterIdle, []pyMsg{
		{1, 1, []string{`\Answered`}, string(testMessage(1, "hello"))},
		{2, 3, []string{}, string(testMessage(3, "hello"))},
		{3, 4, []string{}, "Subject: from b\r\n\r\nappended by session b\r\n"},
		{4, 5, []string{}, string(delivered)},
	})
}
