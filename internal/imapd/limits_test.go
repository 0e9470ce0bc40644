package imapd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// rawConn is a line-level IMAP client for sending what real clients never would.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
	n int
}

func dialRaw(t *testing.T, env *testEnv, useTLS bool) *rawConn {
	t.Helper()
	var c net.Conn
	var err error
	if useTLS {
		c, err = tls.Dial("tcp", env.tls, env.clientTLS())
	} else {
		c, err = net.Dial("tcp", env.plain)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	if g := rc.readLine(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return rc
}

func (rc *rawConn) readLine() string {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read: %v (after %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

func (rc *rawConn) write(s string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.c.Write([]byte(s)); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// writeOrClosed writes s and reports whether the server closed the connection while it was
// being written (a broken pipe or reset): for input the server must refuse by closing, that
// can happen before all of it is sent.
func (rc *rawConn) writeOrClosed(s string) bool {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.c.Write([]byte(s))
	switch {
	case err == nil:
		return false
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	rc.t.Fatalf("write: %v", err)
	return false
}

// cmd sends one command line and returns the untagged lines and the tagged status line.
func (rc *rawConn) cmd(line string) (untagged []string, status string) {
	rc.t.Helper()
	rc.n++
	tag := fmt.Sprintf("t%d", rc.n)
	rc.write(tag + " " + line + "\r\n")
	for {
		l := rc.readLine()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

func (rc *rawConn) mustOK(line string) []string {
	rc.t.Helper()
	u, st := rc.cmd(line)
	if !strings.HasPrefix(st, "OK") {
		rc.t.Fatalf("%s: %s", line, st)
	}
	return u
}

func (rc *rawConn) login(user, pass string) {
	rc.t.Helper()
	rc.mustOK(fmt.Sprintf("LOGIN %q %q", user, pass))
}

// closed reports whether the server closes the connection within a few seconds, whatever it
// says before (a final BAD, a BYE).
func (rc *rawConn) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
		rc.t.Logf("before close: %q", line)
	}
}

func wantStatus(t *testing.T, what, got, prefix string) {
	t.Helper()
	if !strings.HasPrefix(got, prefix) {
		t.Errorf("%s: got %q, want %s...", what, got, prefix)
	}
}

// inboxIntact checks that the messages delivered by deliverN are all there, unchanged.
func inboxIntact(t *testing.T, env *testEnv, user string, n int) {
	t.Helper()
	msgs, err := env.store.Read(user, mailstore.Inbox, []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9}, true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("%s's INBOX has %d messages, want %d", user, len(msgs), n)
	}
	for i, m := range msgs {
		if string(m.Body) != string(testMessage(i+1, "kept")) {
			t.Errorf("message %d changed: %q", i+1, m.Body)
		}
	}
}

func deliverN(t *testing.T, env *testEnv, user string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := env.store.Deliver(user, mailstore.Inbox, testMessage(i, "kept"), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMalformedCommands(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	deliverN(t, env, "bob", 2)

	// A bystander session, to show the server keeps serving others throughout.
	other := dialRaw(t, env, true)
	other.login("bob", "pw")
	other.mustOK("SELECT INBOX")

	c := dialRaw(t, env, true)
	c.login("bob", "pw")
	for _, tc := range []struct{ line, want string }{
		{"FETCH", "BAD"},
		{"SELECT", "BAD"},
		{"FETCH 1 (FLAGS)", "BAD"}, // no mailbox selected
		{"UID BOGUS 1", "BAD"},
		{"SELECT INBOX", "OK"},
		{"FETCH 1:* (BODY[)", "BAD"},
		// imapserver reports some parse errors as NO [SERVERBUG] rather than BAD; either way
		// the command fails cleanly and the connection goes on.
		{"FETCH 0 FLAGS", ""},
		{"FETCH x:y FLAGS", ""},
		{`STORE 1 +FLAGS (\Bogus)`, "NO"},
		{`STORE 1 +FLAGS (a"b)`, "BAD"},
		{"SEARCH NOSUCHKEY", ""},
		{`SEARCH CHARSET NOPE ALL`, "NO"},
		{`APPEND INBOX (\Seen) "not a date" {5}`, ""},
		{"CREATE \"a\x01b\"", ""},
		{"CREATE \"a&Jjo\"", ""}, // malformed modified UTF-7
		{`CREATE "a//b"`, "NO"},
		{`CREATE "*"`, "NO"},
		{`RENAME INBOX INBOX`, "NO"},
		{`DELETE INBOX`, "NO"},
	} {
		_, st := c.cmd(tc.line)
		if tc.want == "" {
			if !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO") {
				t.Errorf("%q: got %q, want BAD or NO", tc.line, st)
			}
			continue
		}
		wantStatus(t, fmt.Sprintf("%q", tc.line), st, tc.want)
	}
	// A line that is not a command at all (no tag) ends that connection only.
	junk := dialRaw(t, env, true)
	junk.login("bob", "pw")
	junk.write("\x00\xff\xfe binary junk\r\n")
	if !junk.closed() {
		t.Error("binary junk did not close the connection")
	}
	// So does a command line far over imapserver's 50 KiB limit.
	if !c.writeOrClosed("t99 NOOP "+strings.Repeat("x", 200<<10)+"\r\n") && !c.closed() {
		t.Error("an over-long command line did not close the connection")
	}
	other.mustOK("NOOP")
	if u := other.mustOK("FETCH 1:* (FLAGS)"); len(u) != 2 {
		t.Errorf("bystander FETCH returned %q", u)
	}
	inboxIntact(t, env, "bob", 2)

	// Before login, one unknown command ends the connection (cross-protocol attacks).
	pre := dialRaw(t, env, false)
	pre.write("GET / HTTP/1.1\r\n")
	if !pre.closed() {
		t.Error("an HTTP request before login did not close the connection")
	}
	// Clear-text LOGIN is refused before STARTTLS.
	pre2 := dialRaw(t, env, false)
	_, st := pre2.cmd(`LOGIN bob pw`)
	wantStatus(t, "LOGIN without TLS", st, "NO [PRIVACYREQUIRED]")
}

func TestHugeLiterals(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.MaxLiteralSize = 4096 })
	env.addUser(t, "bob", "pw", 0)
	deliverN(t, env, "bob", 1)
	c := dialRaw(t, env, true)
	c.login("bob", "pw")
	if u := c.mustOK("CAPABILITY"); !strings.Contains(strings.Join(u, " "), "APPENDLIMIT=4096") {
		t.Errorf("CAPABILITY %q does not announce APPENDLIMIT=4096", u)
	}
	for _, size := range []int{4097, 1 << 30, 1<<62 + 1} {
		// The server must refuse before the continuation request, so the client never sends
		// the data.
		_, st := c.cmd(fmt.Sprintf("APPEND INBOX {%d}", size))
		wantStatus(t, fmt.Sprintf("APPEND of %d bytes", size), st, "NO [TOOBIG]")
	}
	_, st := c.cmd("APPEND INBOX {99999999999999999999999}")
	wantStatus(t, "APPEND with an unparsable size", st, "BAD")
	// The connection still works, and a message at the limit is accepted whole.
	msg := "Subject: at the limit\r\n\r\n" + strings.Repeat("z", 4096-len("Subject: at the limit\r\n\r\n"))
	c.write(fmt.Sprintf("t100 APPEND INBOX {%d}\r\n", len(msg)))
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND at the limit: %q, want a continuation", l)
	}
	c.write(msg + "\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "t100 OK") {
		t.Fatalf("APPEND at the limit: %q", l)
	}
	got, _ := env.store.Read("bob", mailstore.Inbox, []uint32{2}, true, 1<<20)
	if len(got) != 1 || string(got[0].Body) != msg {
		t.Errorf("message at the limit stored as %d messages", len(got))
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", TLS: env.srv.cfg.TLS, MaxLiteralSize: mailstore.MaxMessageSize + 1}, env.store); err == nil {
		t.Error("New accepted a literal limit above the store's message limit")
	}
}

func TestLoginRateLimit(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.LoginFailures = 3; c.LoginFailuresPerIP = 6; c.LoginWindow = time.Hour })
	env.addUser(t, "bob", "right", 0)
	env.addUser(t, "carol", "hers", 0)
	now := time.Now()
	clock := func() time.Time { return now }
	env.srv.auth.userLimit.now, env.srv.auth.ipLimit.now = clock, clock

	c := dialRaw(t, env, true)
	for i := range 3 {
		_, st := c.cmd(`LOGIN bob wrong`)
		wantStatus(t, fmt.Sprintf("wrong password %d", i+1), st, "NO [AUTHENTICATIONFAILED]")
	}
	_, st := c.cmd(`LOGIN bob right`)
	wantStatus(t, "right password after 3 failures", st, "NO [UNAVAILABLE]")
	if !strings.Contains(st, "Too many failed logins") {
		t.Errorf("refusal %q does not say why", st)
	}
	// Another user from the same address is not locked out by bob's failures...
	carol := dialRaw(t, env, true)
	carol.login("carol", "hers")
	// ...until the address itself has failed too often.
	for i := range 3 {
		_, st := c.cmd(fmt.Sprintf(`LOGIN nobody%d wrong`, i))
		wantStatus(t, "unknown user", st, "NO [AUTHENTICATIONFAILED]")
	}
	_, st = dialRaw(t, env, true).cmd(`LOGIN carol hers`)
	wantStatus(t, "carol after the address's limit", st, "NO [UNAVAILABLE]")
	// AUTHENTICATE PLAIN is limited the same way.
	_, st = c.cmd("AUTHENTICATE PLAIN AGJvYgByaWdodA==") // \0bob\0right
	wantStatus(t, "AUTHENTICATE while locked out", st, "NO [UNAVAILABLE]")
	// The logged-in session is unaffected.
	carol.mustOK("SELECT INBOX")
	// After the window, bob gets in.
	now = now.Add(time.Hour + time.Second)
	dialRaw(t, env, true).login("bob", "right")
	if !strings.Contains(env.log.String(), "too many failures") {
		t.Error("lockouts are not logged")
	}
}

func TestOverQuota(t *testing.T) {
	env := newEnv(t, nil)
	quota := int64(2 * len(testMessage(1, "kept")))
	env.addUser(t, "bob", "pw", quota)
	env.addUser(t, "carol", "pw", 0)
	deliverN(t, env, "bob", 2)
	c := dialRaw(t, env, true)
	c.login("bob", "pw")
	c.write("t100 APPEND INBOX {20}\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	c.write("Subject: x\r\n\r\nhello!\r\n")
	l := c.readLine()
	wantStatus(t, "APPEND over quota", l, "t100 NO [OVERQUOTA]")
	if !strings.Contains(l, "quota") {
		t.Errorf("over-quota reply %q does not say quota", l)
	}
	c.mustOK("SELECT INBOX")
	_, st := c.cmd("COPY 1 Trash")
	wantStatus(t, "COPY over quota", st, "NO [OVERQUOTA]")
	// Moving does not need more room.
	c.mustOK("MOVE 2 Trash")
	if _, err := env.store.Deliver("bob", mailstore.Inbox, testMessage(3, "kept"), nil, time.Time{}); err == nil {
		t.Error("Deliver over quota succeeded")
	}
	inboxIntact(t, env, "bob", 1)
	trash, _ := env.store.Read("bob", "Trash", []uint32{1}, true, 1<<20)
	if len(trash) != 1 || string(trash[0].Body) != string(testMessage(2, "kept")) {
		t.Errorf("Trash: %+v", trash)
	}
	// Others are served.
	cc := dialRaw(t, env, true)
	cc.login("carol", "pw")
	cc.write("t1 APPEND INBOX {20}\r\n")
	cc.readLine()
	cc.write("Subject: x\r\n\r\nhello!\r\n")
	wantStatus(t, "carol's APPEND", cc.readLine(), "t1 OK")
}

func TestConnectionLimit(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.MaxConnections = 2 })
	a := dialRaw(t, env, false)
	dialRaw(t, env, true)
	c, err := net.Dial("tcp", env.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "* BYE Too many connections") {
		t.Errorf("third connection got %q", line)
	}
	a.c.Close()
	// The slot is given back once the server has noticed the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", env.plain)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "* OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after closing a connection: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShutdownWhileIdle leaves a session in IDLE; the cleanup in newEnv requires Run to return
// promptly and without error.
func TestShutdownWhileIdle(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	c := dialRaw(t, env, true)
	c.login("bob", "pw")
	c.mustOK("SELECT INBOX")
	c.write("t50 IDLE\r\n")
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
}

func TestListStatusAndVanishedMailbox(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	deliverN(t, env, "bob", 2)
	a := dialRaw(t, env, true)
	a.login("bob", "pw")
	u := a.mustOK(`LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))`)
	if !strings.Contains(strings.Join(u, "\n"), `* STATUS INBOX (MESSAGES 2 UNSEEN 2)`) {
		t.Errorf("LIST RETURN STATUS: %q", u)
	}
	a.mustOK("CREATE Work")
	a.mustOK("SELECT Work")
	b := dialRaw(t, env, true)
	b.login("bob", "pw")
	b.mustOK("DELETE Work")
	// a's view can no longer be kept: the server says so and closes a's connection only.
	a.write("t9 NOOP\r\n")
	if !a.closed() {
		t.Error("session with a deleted mailbox selected was not closed")
	}
	b.mustOK("SELECT INBOX")

	// A rename is followed: the session goes on in the renamed mailbox and still sees changes.
	c := dialRaw(t, env, true)
	c.login("bob", "pw")
	c.mustOK("CREATE Work")
	c.mustOK("SELECT Work")
	b.mustOK("RENAME Work Job")
	c.mustOK("NOOP")
	if _, err := env.store.Deliver("bob", "Job", testMessage(1, "kept"), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if u := c.mustOK("NOOP"); !slices.Contains(u, "* 1 EXISTS") {
		t.Errorf("after rename and delivery: %q, want * 1 EXISTS", u)
	}
	if u := c.mustOK("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"); len(u) < 2 || !strings.Contains(strings.Join(u, "\n"), "Subject: kept") {
		t.Errorf("FETCH in the renamed mailbox: %q", u)
	}
	c.mustOK("RENAME Job Work2") // by the session itself
	c.mustOK("NOOP")
	if st, _ := env.store.Status("bob", "Work2"); st.Messages != 1 {
		t.Errorf("Work2 has %d messages", st.Messages)
	}
}

func TestSessionsPerUser(t *testing.T) {
	env := newEnv(t, func(c *Config) { c.MaxSessionsPerUser = 2 })
	env.addUser(t, "bob", "pw", 0)
	env.addUser(t, "carol", "pw", 0)
	a := dialRaw(t, env, true)
	a.login("bob", "pw")
	dialRaw(t, env, true).login("bob", "pw")
	c := dialRaw(t, env, true)
	_, st := c.cmd(`LOGIN bob pw`)
	wantStatus(t, "third session", st, "NO [LIMIT]")
	dialRaw(t, env, true).login("carol", "pw")
	a.mustOK("LOGOUT")
	// The slot is given back when the server has closed a's session.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, st := c.cmd(`LOGIN bob pw`)
		if strings.HasPrefix(st, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session slot after LOGOUT: %q", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGuardRecoversPanic(t *testing.T) {
	s := &session{log: slog.New(slog.DiscardHandler)}
	err := func() (err error) {
		defer s.guard("TEST", &err)()
		var xs []int
		return fmt.Errorf("unreachable: %d", xs[len(s.user)]) // index out of range: a runtime panic
	}()
	if err != errInternal {
		t.Errorf("guarded panic returned %v, want the internal-error reply", err)
	}
	if !s.mu.TryLock() {
		t.Error("session lock still held after a panic")
	}
}
