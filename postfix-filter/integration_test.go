package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func mail(subject, extra, body string) string {
	// Complete headers, so that Postfix's cleanup adds nothing but its Received fields.
	return fmt.Sprintf("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nDate: %s\r\nSubject: %s\r\nMessage-ID: <%d@alpha.localhost>\r\n%s\r\n%s\r\n",
		time.Now().Format(time.RFC1123Z), subject, time.Now().UnixNano(), extra, body)
}

// Through Postfix, the filter and the mixnet: mixable mail to a participating domain reaches the
// recipient's IMAP mailbox and never the ordinary next hop; other mail reaches the next hop
// unchanged (also with a garbage value of the header); a message to both kinds of domain goes
// both ways; with the filter's provider down Postfix defers and delivers once it is back, exactly
// once; an oversize message bounces.
func TestThroughPostfix(t *testing.T) {
	e := startEnv(t, "info", filterAll, 20)

	// 1. Mixable, participating domain: IMAP, header removed, not at the sink.
	m1 := mail("mixed one", "X-PANORAMIX-Mixable: yes\r\n", "through the mixnet, token M1")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, m1)
	if n := e.inboxWith("token M1", 40*time.Second); n != 1 {
		t.Fatalf("bob's INBOX holds %d copies of the mixable message, want 1", n)
	}
	for _, m := range e.inbox() {
		if strings.Contains(m, "token M1") && strings.Contains(strings.ToLower(m), "x-panoramix-mixable") {
			t.Fatal("the X-PANORAMIX-Mixable field entered the mixnet")
		}
	}

	// 2. No header: the sink, unchanged. 3. Mixable to a domain outside the mixnet: the sink,
	// unchanged (header included). 4. Both kinds of recipient in one message.
	m2 := mail("plain", "", "ordinary mail, token P2")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, m2)
	m3 := mail("legacy", "X-PANORAMIX-Mixable: yes\r\n", "for a domain outside the mixnet, token L3")
	e.submit("alice@alpha.localhost", []string{"carol@legacy.test"}, m3)
	m4 := mail("both", "X-PANORAMIX-Mixable: yes\r\n", "to both, token B4")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost", "carol@legacy.test"}, m4)
	// A garbage value of the header: not for the mixnet, to the sink unchanged.
	m7 := mail("garbage", "X-PANORAMIX-Mixable: yes\x01\xff maybe\r\n", "garbage marker, token G7")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, m7)

	// The copies that go the ordinary way lose only their X-PANORAMIX-Mixable field.
	unmarked := func(m string) string {
		i := strings.Index(m, "X-PANORAMIX-Mixable:")
		if i < 0 {
			return m
		}
		return m[:i] + m[i+strings.Index(m[i:], "\r\n")+2:]
	}
	for _, c := range []struct{ token, body string }{{"token P2", m2}, {"token L3", m3}, {"token B4", m4}, {"token G7", m7}} {
		if n := e.sinkWith(c.token, 20*time.Second); n != 1 {
			t.Fatalf("the sink holds %d copies of %q, want 1", n, c.token)
		}
		for _, m := range e.sinkMessages() {
			if !strings.Contains(m, c.token) {
				continue
			}
			if !strings.Contains(m, strings.ReplaceAll(unmarked(c.body), "\r\n", "\n")) {
				t.Errorf("%s changed on the way to the sink (beyond losing its X-PANORAMIX-Mixable field):\n%s", c.token, m)
			}
			if strings.Contains(strings.ToLower(m), "x-panoramix-mixable") {
				t.Errorf("%s kept its X-PANORAMIX-Mixable field on the way to the sink:\n%s", c.token, m)
			}
		}
	}
	if n := e.countLog(`msg="re-injected into Postfix"`); n != 4 {
		t.Errorf("the filter's log shows %d re-injections at level info, want 4 (P2, L3, B4 to carol, G7)", n)
	}
	if n := e.inboxWith("token B4", 40*time.Second); n != 1 {
		t.Fatalf("bob's INBOX holds %d copies of the message to both, want 1", n)
	}
	if e.inboxWith("token P2", 0) != 0 || e.inboxWith("token L3", 0) != 0 || e.inboxWith("token G7", 0) != 0 {
		t.Fatal("mail that was not for the mixnet reached bob's INBOX")
	}
	if n := e.sinkWith("token M1", 0); n != 0 {
		t.Fatal("mixable mail for a participating domain reached the ordinary next hop")
	}
	if n := e.sinkWith("X-Rcpt-Args: <bob@beta.localhost>", 0); n != 2 { // the plain and the garbage one
		t.Fatalf("%d messages for bob reached the sink, want the plain and the garbage-marked one", n)
	}

	// 5. The filter's provider is down: Postfix defers, then delivers once it is back.
	alpha := e.net.Provider("alpha.localhost")
	if err := e.net.Kill(alpha); err != nil {
		t.Fatal(err)
	}
	e.waitLog("link to provider ended", 1, 20*time.Second)
	m5 := mail("deferred", "X-PANORAMIX-Mixable: yes\r\n", "while the provider was down, token D5")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, m5)
	e.waitLog("mixnet not ready", 1, 20*time.Second)
	if q := e.postqueue("-p"); !strings.Contains(q, "bob@beta.localhost") {
		t.Fatalf("Postfix did not keep the deferred message:\n%s", q)
	}
	// Postfix retries on its own (backoff 1-2 s; longer on a loaded machine) and is deferred again.
	e.waitLog("mixnet not ready", 2, 60*time.Second)
	if err := e.net.Restart(alpha); err != nil {
		t.Fatal(err)
	}
	e.waitLog("link to provider up", 2, 60*time.Second)
	e.postqueue("-f")
	if n := e.inboxWith("token D5", 60*time.Second); n != 1 {
		t.Fatalf("after the provider came back bob's INBOX holds %d copies, want 1", n)
	}
	time.Sleep(3 * time.Second) // a second copy would arrive by now
	if n := e.inboxWith("token D5", 0); n != 1 {
		t.Fatalf("bob's INBOX holds %d copies of the deferred message, want exactly 1", n)
	}
	if e.countLog("mixnet not ready") < 2 {
		t.Error("Postfix did not retry while the provider was down")
	}
	if q := e.postqueue("-p"); !strings.Contains(q, "Mail queue is empty") {
		t.Fatalf("Postfix still holds mail:\n%s", q)
	}
	// M1, B4 (bob's copy) and D5 went through the mixnet; P2, L3, B4 (carol's) and G7 back to
	// Postfix; D5 was deferred with 451 at least twice.
	mt := e.metricsText()
	for _, want := range []string{`postfix_filter_copies_total{route="mixnet"} 3`, `postfix_filter_copies_total{route="reinjected"} 4`, `postfix_filter_replies_total{code="451"}`} {
		if !strings.Contains(mt, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// 6. Over the filter's max_message_size (2 MiB) but within Postfix's limit (4 MiB): the filter
	// refuses it permanently (Postfix sees the SIZE the filter announces) and Postfix bounces it to
	// the sender, whose mail goes to the sink.
	big := mail("too big", "X-PANORAMIX-Mixable: yes\r\n", strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz\r\n", 3<<20/38)+"token O6")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, big)
	if n := e.sinkWith("exceeds size limit 2097152", 30*time.Second); n != 1 {
		t.Fatalf("%d bounces for the oversize message at the sink, want 1", n)
	}
	if e.inboxWith("token O6", 0) != 0 {
		t.Fatal("the oversize message was delivered")
	}
}

// Only messages with the header go to the filter (contrib/postfix/master.cf-filter-header): mixable
// mail reaches the IMAP mailbox, other mail the sink without passing through the filter.
func TestHeaderChecksMode(t *testing.T) {
	e := startEnv(t, "debug", filterHeader, 20)
	m1 := mail("mixed", "X-PANORAMIX-Mixable: yes\r\n", "header mode, token H1")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, m1)
	m2 := mail("plain", "", "header mode, token H2")
	e.submit("alice@alpha.localhost", []string{"bob@beta.localhost"}, m2)
	if n := e.inboxWith("token H1", 40*time.Second); n != 1 {
		t.Fatalf("bob's INBOX holds %d copies of the mixable message, want 1", n)
	}
	if n := e.sinkWith("token H2", 20*time.Second); n != 1 {
		t.Fatalf("the sink holds %d copies of the plain message, want 1", n)
	}
	if n := e.sinkWith("token H1", 0); n != 0 {
		t.Fatal("the mixable message reached the sink")
	}
	if n := e.countLog("re-injected"); n != 0 {
		t.Fatalf("the filter re-injected %d messages; in header mode it should see only mixable mail", n)
	}

	// A recipient the other provider does not know: its provider refuses the fragment through the
	// SURB-ACK, the engine fails the message, and the filter bounces it to the sender.
	m3 := mail("to nobody", "X-PANORAMIX-Mixable: yes\r\n", "header mode, token H3")
	e.submit("alice@alpha.localhost", []string{"nobody@beta.localhost"}, m3)
	if n := e.sinkWith("<nobody@beta.localhost>: ", 60*time.Second); n != 1 {
		t.Fatalf("%d bounces for the unknown recipient at the sink, want 1", n)
	}
	for _, m := range e.sinkMessages() {
		if strings.Contains(m, "<nobody@beta.localhost>: ") && !strings.Contains(m, "X-Rcpt-Args: <alice@alpha.localhost>") {
			t.Fatalf("the bounce did not go to the sender:\n%s", m)
		}
	}
}

// An internet sender who sets X-PANORAMIX-Mixable on mail to a local user must not divert it
// into the mixnet (issue 19): contrib/postfix applies the filter to the submission service only,
// so such mail arriving at the MX smtpd (port 25) goes the ordinary way, here the sink, while the
// same mail from the submission service goes through the mixnet. Both ways of filtering.
func TestMXNotDiverted(t *testing.T) {
	for _, mode := range []string{filterAll, filterHeader} {
		t.Run(mode, func(t *testing.T) {
			e := startEnv(t, "info", mode, 20)
			alpha := e.net.Provider("alpha.localhost")
			if _, err := e.net.AddUser(alpha, "alice", 64<<20); err != nil {
				t.Fatal(err)
			}
			if err := e.net.SetPassword(alpha, "alice", "alice's password"); err != nil {
				t.Fatal(err)
			}
			msg := func(token string) string {
				return fmt.Sprintf("From: mallory@outside.test\r\nTo: alice@alpha.localhost\r\nDate: %s\r\nSubject: %s\r\nMessage-ID: <%d@outside.test>\r\nX-PANORAMIX-Mixable: yes\r\n\r\nfrom outside, token %s\r\n",
					time.Now().Format(time.RFC1123Z), token, time.Now().UnixNano(), token)
			}

			e.sendTo(e.mxIn, "mallory@outside.test", []string{"alice@alpha.localhost"}, msg("X1"))
			if n := e.sinkWith("token X1", 30*time.Second); n != 1 {
				t.Fatalf("the sink holds %d copies of the outside sender's mail to a local user, want 1 (the filter queued %d messages for the mixnet)",
					n, e.countLog("queued for the mixnet"))
			}
			if n := e.countLog("queued for the mixnet"); n != 0 {
				t.Fatalf("the filter queued %d messages from the MX smtpd for the mixnet, want 0", n)
			}

			e.submit("mallory@outside.test", []string{"alice@alpha.localhost"}, msg("S2"))
			n := 0
			for deadline := time.Now().Add(40 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
				for _, m := range e.inboxOf("alpha.localhost", "alice", "alice's password") {
					if strings.Contains(m, "token S2") {
						n++
					}
				}
			}
			if n != 1 {
				t.Fatalf("alice's INBOX holds %d copies of the submitted mixable message, want 1", n)
			}
			if e.sinkWith("token S2", 0) != 0 {
				t.Fatal("the submitted mixable message reached the ordinary next hop")
			}
			if e.countLog("queued for the mixnet") != 1 {
				t.Fatalf("the filter queued %d messages for the mixnet, want 1", e.countLog("queued for the mixnet"))
			}
		})
	}
}
