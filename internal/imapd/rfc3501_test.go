package imapd

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// These tests check, through a real server and a raw connection, what imaptest found wrong
// (issue 16), so that `go test` catches a regression where imaptest is not built.

func hasLine(lines []string, want string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.EqualFold(l, want) })
}

// TestRecent: a message is \Recent in the first session that selects its mailbox and in no
// other; EXAMINE and STATUS show it without taking it (RFC 3501 section 2.3.2).
func TestRecent(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	deliverN(t, env, "bob", 2)
	a, b := dialRaw(t, env, true), dialRaw(t, env, true)
	a.login("bob", "pw")
	b.login("bob", "pw")
	if u := a.mustOK("EXAMINE INBOX"); !hasLine(u, "* 2 RECENT") {
		t.Errorf("EXAMINE: %q, want * 2 RECENT", u)
	}
	if u := a.mustOK("STATUS INBOX (RECENT)"); !hasLine(u, `* STATUS INBOX (RECENT 2)`) {
		t.Errorf("STATUS after EXAMINE: %q, want RECENT 2", u)
	}
	if u := a.mustOK("SELECT INBOX"); !hasLine(u, "* 2 RECENT") {
		t.Errorf("SELECT: %q, want * 2 RECENT", u)
	}
	if u := a.mustOK("SEARCH RECENT"); !hasLine(u, "* SEARCH 1 2") {
		t.Errorf("SEARCH RECENT: %q", u)
	}
	if u := a.mustOK("FETCH 1 FLAGS"); !hasLine(u, `* 1 FETCH (FLAGS (\Recent))`) {
		t.Errorf("FETCH FLAGS: %q, want \\Recent", u)
	}
	if u := b.mustOK("SELECT INBOX"); !hasLine(u, "* 0 RECENT") {
		t.Errorf("second SELECT: %q, want * 0 RECENT", u)
	}
	// A delivery while both have INBOX selected is recent in the first to see it only.
	deliverN(t, env, "bob", 1)
	ua := a.mustOK("NOOP")
	ub := b.mustOK("NOOP")
	if !hasLine(ua, "* 3 EXISTS") || !hasLine(ub, "* 3 EXISTS") {
		t.Fatalf("NOOP after a delivery: %q and %q, want * 3 EXISTS in both", ua, ub)
	}
	if !hasLine(ua, "* 3 RECENT") || !hasLine(ub, "* 0 RECENT") {
		t.Errorf("NOOP: %q and %q, want the new message recent in the first session only", ua, ub)
	}
	if u := b.mustOK("SEARCH OLD"); !hasLine(u, "* SEARCH 1 2 3") {
		t.Errorf("SEARCH OLD in the second session: %q", u)
	}
}

// TestKeywordsAnnounced: FLAGS and PERMANENTFLAGS name the keywords in use, and a new keyword
// is announced in FLAGS before a FETCH shows it (RFC 3501 section 7.2.6).
func TestKeywordsAnnounced(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	if _, err := env.store.Deliver("bob", "INBOX", []byte("Subject: a\r\n\r\nx\r\n"), []string{"$Old"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	a, b := dialRaw(t, env, true), dialRaw(t, env, true)
	a.login("bob", "pw")
	b.login("bob", "pw")
	u := a.mustOK("SELECT INBOX")
	if !slices.ContainsFunc(u, func(l string) bool { return strings.HasPrefix(l, "* FLAGS (") && strings.Contains(l, "$Old") }) ||
		!slices.ContainsFunc(u, func(l string) bool { return strings.Contains(l, "PERMANENTFLAGS (") && strings.Contains(l, "$Old") }) {
		t.Errorf("SELECT: %q, want $Old in FLAGS and PERMANENTFLAGS", u)
	}
	b.mustOK("SELECT INBOX")
	u = a.mustOK("STORE 1 +FLAGS ($New)")
	flags := slices.IndexFunc(u, func(l string) bool { return strings.HasPrefix(l, "* FLAGS (") && strings.Contains(l, "$New") })
	fetch := slices.IndexFunc(u, func(l string) bool { return strings.HasPrefix(l, "* 1 FETCH") && strings.Contains(l, "$New") })
	if flags < 0 || fetch < 0 || flags > fetch {
		t.Errorf("STORE of a new keyword: %q, want FLAGS naming it before the FETCH", u)
	}
	u = b.mustOK("NOOP")
	flags = slices.IndexFunc(u, func(l string) bool { return strings.HasPrefix(l, "* FLAGS (") && strings.Contains(l, "$New") })
	fetch = slices.IndexFunc(u, func(l string) bool { return strings.HasPrefix(l, "* 1 FETCH") && strings.Contains(l, "$New") })
	if flags < 0 || fetch < 0 || flags > fetch {
		t.Errorf("the other session's NOOP: %q, want FLAGS naming $New before the FETCH", u)
	}
}

// TestLSubNoselect: RFC 3501 section 6.3.9's example: with foo/bar subscribed and foo not,
// LSUB "" % shows foo \Noselect; CREATE subscribes nothing.
func TestLSubNoselect(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	rc := dialRaw(t, env, true)
	rc.login("bob", "pw")
	rc.mustOK("CREATE foo/bar")
	if u := rc.mustOK(`LSUB "" foo*`); len(u) != 0 {
		t.Errorf("LSUB after CREATE: %q, want nothing subscribed", u)
	}
	rc.mustOK("SUBSCRIBE foo/bar")
	if u := rc.mustOK(`LSUB "" %`); !hasLine(u, `* LSUB (\Noselect) "/" "foo"`) || hasLine(u, `* LSUB () "/" "foo/bar"`) {
		t.Errorf(`LSUB "" %%: %q, want foo \Noselect and not foo/bar`, u)
	}
	if u := rc.mustOK(`LSUB "" *`); !hasLine(u, `* LSUB () "/" "foo/bar"`) || slices.ContainsFunc(u, func(l string) bool { return strings.HasSuffix(l, `"/" "foo"`) }) {
		t.Errorf(`LSUB "" *: %q, want foo/bar alone`, u)
	}
	rc.mustOK("DELETE foo/bar")
	if u := rc.mustOK(`LSUB "" foo/bar`); !hasLine(u, `* LSUB () "/" "foo/bar"`) {
		t.Errorf("LSUB after DELETE: %q, want the subscription kept", u)
	}
	rc.mustOK("UNSUBSCRIBE foo/bar")
	if u := rc.mustOK(`LSUB "" *`); slices.ContainsFunc(u, func(l string) bool { return strings.Contains(l, "foo") }) {
		t.Errorf("LSUB after UNSUBSCRIBE of a deleted mailbox: %q", u)
	}
}

// TestInvalidUTF7ListPattern: a LIST pattern that is not modified UTF-7 names no mailbox; it
// was NO [SERVERBUG].
func TestInvalidUTF7ListPattern(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	rc := dialRaw(t, env, true)
	rc.login("bob", "pw")
	u, st := rc.cmd(`LIST "" "&'+,-%"`)
	if !strings.HasPrefix(st, "OK") || len(u) != 0 {
		t.Errorf("LIST with an invalid modified UTF-7 pattern: %q %q, want OK and nothing", u, st)
	}
	if _, st := rc.cmd(`ID ("name" "test")`); !strings.HasPrefix(st, "OK") {
		t.Errorf("ID: %q", st)
	}
}

// TestSearchDecoded: SEARCH finds text in RFC 2047 encoded headers, in base64 and
// quoted-printable bodies with CHARSET UTF-8, and addresses by their parsed form.
func TestSearchDecoded(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	msgs := []string{
		"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.org>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\nplain\r\n",
		"From: <a (comment)@ (c) example.org>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"RGVyIERvbSB6dSBLw7Zsbg==\r\n", // "Der Dom zu Köln"
		"To: team: x@example.org, y@example.org;\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nStra=DFe\r\n",
	}
	for _, m := range msgs {
		if _, err := env.store.Deliver("bob", "INBOX", []byte(m), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	rc := dialRaw(t, env, true)
	rc.login("bob", "pw")
	rc.mustOK("SELECT INBOX")
	for _, c := range []struct{ search, want string }{
		{"SUBJECT " + lit("Köln"), "* SEARCH 1"},
		{"FROM " + lit("Jürgen"), "* SEARCH 1"},
		{"BODY " + lit("köln"), "* SEARCH 2"},
		{"TEXT " + lit("STRASSE"), "* SEARCH"},
		{"TEXT " + lit("Straße"), "* SEARCH 3"},
		{"FROM a@example.org", "* SEARCH 2"},
		{"TO team", "* SEARCH 3"},
		{"TO y@example.org", "* SEARCH 3"},
	} {
		if u := rc.mustOK("SEARCH CHARSET UTF-8 " + c.search); !hasLine(u, c.want) {
			t.Errorf("SEARCH %s: %q, want %s", c.search, u, c.want)
		}
	}
}

// lit is s as a non-synchronizing literal (LITERAL+).
func lit(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// TestParseAddressList: groups, routes, comments as names, encoded names, and an address that
// does not parse costs only itself (go-imap's ExtractEnvelope dropped the whole list).
func TestParseAddressList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []imap.Address
	}{
		{"a@b.org", []imap.Address{{Mailbox: "a", Host: "b.org"}}},
		{`"Doe, J." <j@d.org>, x@y.org`, []imap.Address{{Name: "Doe, J.", Mailbox: "j", Host: "d.org"}, {Mailbox: "x", Host: "y.org"}}},
		{"u@d (Real Name)", []imap.Address{{Name: "Real Name", Mailbox: "u", Host: "d"}}},
		{"=?utf-8?q?J=C3=BCrgen?= <j@d>", []imap.Address{{Name: "Jürgen", Mailbox: "j", Host: "d"}}},
		{"<@r1,@r2:u@d>", []imap.Address{{Route: "@r1,@r2", Mailbox: "u", Host: "d"}}},
		{"g: a@b, c@d;, e@f", []imap.Address{{Mailbox: "g"}, {Mailbox: "a", Host: "b"}, {Mailbox: "c", Host: "d"}, {}, {Mailbox: "e", Host: "f"}}},
		{"empty:;", []imap.Address{{Mailbox: "empty"}, {}}},
		{"a@b, <<<>>>, c@d", []imap.Address{{Mailbox: "a", Host: "b"}, {Mailbox: "c", Host: "d"}}},
		{"a@b, x y <z, c@d", []imap.Address{{Mailbox: "a", Host: "b"}, {Name: "x y", Mailbox: "z", Host: "MISSING_DOMAIN"}, {Mailbox: "c", Host: "d"}}},
		{"", nil},
	} {
		if got := parseAddressList(c.in); !slices.Equal(got, c.want) {
			t.Errorf("parseAddressList(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if n := len(parseAddressList(strings.Repeat("a@b,", 5000))); n != maxAddresses {
		t.Errorf("5000 addresses gave %d entries, want the limit %d", n, maxAddresses)
	}
}

// FuzzParseAddressList: any header value (a delivered mail's From, To, Cc...) is parsed without
// a panic, in bounded output, with groups balanced, and an ENVELOPE built from it.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{
		"a@b.org", `"Doe, J." <j@d.org>, x@y.org`, "u@d (Real (nested) Name)", "=?utf-8?q?J=C3=BCrgen?= <j@d>",
		"<@r1,@r2:u@d>", "g: a@b, c@d;, e@f", "empty:;", "a@b, <<<>>>, c@d", "x y <z, c@d", `"unterminated`,
		"(unterminated comment", "g: h: a@b;;", "[1.2.3.4]@x", "a@[1.2.3.4", "\\", "=?x?q?bad?=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseAddressList(s)
		if len(got) > maxAddresses+1 { // a group's end marker may follow the last entry
			t.Fatalf("%d entries from %d bytes", len(got), len(s))
		}
		depth := 0
		for _, a := range got {
			switch {
			case a.Mailbox == "" && a.Host == "":
				depth--
			case a.Host == "":
				depth++
			}
			if depth < 0 || depth > 1 {
				t.Fatalf("unbalanced groups in %+v from %q", got, s)
			}
		}
		envelope([]byte("From: " + strings.ReplaceAll(s, "\n", " ") + "\r\n\r\n"))
	})
}

// TestIDLimits: ID takes at most 30 fields of RFC 2971's sizes; more is a BAD, not a larger
// command to keep.
func TestIDLimits(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	rc := dialRaw(t, env, true)
	var fields []string
	for i := range 31 {
		fields = append(fields, fmt.Sprintf(`"k%d" "v"`, i))
	}
	if _, st := rc.cmd("ID (" + strings.Join(fields[:30], " ") + ")"); !strings.HasPrefix(st, "OK") {
		t.Errorf("ID with 30 fields: %s", st)
	}
	if _, st := rc.cmd("ID (" + strings.Join(fields, " ") + ")"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("ID with 31 fields: %s, want BAD", st)
	}
	if _, st := rc.cmd(`ID ("k" "` + strings.Repeat("v", 1025) + `")`); !strings.HasPrefix(st, "BAD") {
		t.Errorf("ID with a value of 1025 bytes: %s, want BAD", st)
	}
	if _, st := rc.cmd("ID NIL"); !strings.HasPrefix(st, "OK") {
		t.Errorf("ID NIL: %s", st)
	}
	rc.login("bob", "pw") // the connection is still usable
}

// TestListSubscribed: LIST (SUBSCRIBED) shows a subscribed name without a mailbox as
// \NonExistent, and RECURSIVEMATCH a parent of a subscribed mailbox the pattern does not match
// with CHILDINFO (RFC 5258 section 3).
func TestListSubscribed(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	rc := dialRaw(t, env, true)
	rc.login("bob", "pw")
	rc.mustOK("CREATE p/c")
	rc.mustOK("CREATE gone")
	rc.mustOK("SUBSCRIBE p/c")
	rc.mustOK("SUBSCRIBE gone")
	rc.mustOK("DELETE gone")
	if u := rc.mustOK(`LIST (SUBSCRIBED) "" gone`); !hasLine(u, `* LIST (\Subscribed \NonExistent) "/" "gone"`) {
		t.Errorf("LIST (SUBSCRIBED) of a deleted mailbox: %q", u)
	}
	if u := rc.mustOK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" %`); !slices.ContainsFunc(u, func(l string) bool {
		return strings.Contains(l, `"/" "p" (CHILDINFO ("SUBSCRIBED"))`) && !strings.Contains(l, `\Subscribed`)
	}) {
		t.Errorf("LIST (SUBSCRIBED RECURSIVEMATCH) %%: %q, want p with CHILDINFO", u)
	}
}

// TestBinary: a part appended with NUL bytes (a literal8, RFC 3516) comes back whole from
// BINARY[], base64 from BODY[] (a plain literal cannot carry NUL), and a partial BINARY reply
// names its origin.
func TestBinary(t *testing.T) {
	env := newEnv(t, nil)
	env.addUser(t, "bob", "pw", 0)
	rc := dialRaw(t, env, true)
	rc.login("bob", "pw")
	msg := "From: a@b\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00-\x00\r\n"
	rc.mustOK(fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg))
	rc.mustOK("SELECT INBOX")
	u := rc.mustOK("FETCH 1 (BODY.PEEK[1] BINARY.PEEK[1]<1.2> BINARY.SIZE[1])")
	got := strings.Join(u, "\n")
	for _, want := range []string{"BODY[1] {10}\nAC0ADQo=", "BINARY[1]<1> ~{2}\n-\x00", "BINARY.SIZE[1] 5"} {
		if !strings.Contains(got, want) {
			t.Errorf("FETCH: %q, want %q in it", got, want)
		}
	}
}
