package testnet

import (
	"context"
	"fmt"
	"net/smtp"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// listedEpoch returns an epoch length of 100 to 180 s (whole seconds) in whose current epoch a
// directory started now makes its first vote (a quarter into the epoch) 10 to 25 s from now:
// the nodes have published by then, and the first document, for the next epoch, lists them
// all. (A directory started later in an epoch votes at once, before the nodes publish, and the
// network waits an epoch more.) A provider that stops early in an epoch stays listed until the
// end of the next one, whose vote uses the descriptor it published at this one's start: at
// least 3 minutes here, and the test checks it.
func listedEpoch(t *testing.T) time.Duration {
	since := time.Since(pki.Origin)
	for l := 100 * time.Second; l <= 180*time.Second; l += time.Second {
		if in := since % l; in >= l/4-25*time.Second && in <= l/4-10*time.Second {
			return l
		}
	}
	// Each length fits with a chance of about 1 in 8; none of 81 is a chance of 2 in 100,000.
	t.Fatal("no epoch length of 100 to 180 s has its vote 10 to 25 s from now")
	return 0
}

// A provider down for longer than the sender's retry budget, but not long enough to leave the
// consensus (a reboot, an upgrade), delays mail and does not bounce it (issue 19,
// docs/spec/client.md section 4): alice's mailproxy keeps retransmitting with backoff for its
// queue lifetime, and every mail reaches bob's INBOX once when beta is back; alice gets no
// bounce. Beta stays listed throughout (checked): it stops early in an epoch of 100 to 180 s,
// and is listed until the end of the next one; alice's retry budget is small, so that it is
// spent in about 17 s while beta stays down for 75 s.
func TestOutageWhileListed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	p := pki.DefaultParameters()
	p.EpochLength = listedEpoch(t)
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 10, 2, 2, 2
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := launch(t, ctx, Options{Parameters: &p})
	alpha, beta := n.Provider("alpha.localhost"), n.Provider("beta.localhost")
	addUser(t, n, beta, "bob")
	const bobPassword, alicePassword = "bob password", "alice password"
	if err := n.SetPassword(beta, "bob", bobPassword); err != nil {
		t.Fatal(err)
	}
	// Five transmissions about 3.3 s apart (route delays, one retrieve interval and the 3 s
	// slack): the budget is spent in about 17 s.
	const budget = 5
	alice, err := n.StartMailproxy(ctx, "alice@alpha.localhost", alicePassword,
		MailproxyOptions{RetryBudget: budget, AckSlack: 3 * time.Second, RetrieveInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(alice.Log()); err == nil {
				t.Logf("--- alice's mailproxy log (tail) ---\n%s", tail(b, 6000))
			}
		}
	})

	if err := n.Kill(beta); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	const mails = 5
	subject := func(i int) string { return fmt.Sprintf("outage mail %d", i) }
	for i := range mails {
		msg := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: " + subject(i) + "\r\n\r\nwaits for beta to come back\r\n"
		if err := smtp.SendMail(alice.SMTP, nil, "alice@alpha.localhost", []string{"bob@beta.localhost"}, []byte(msg)); err != nil {
			t.Fatalf("mail %d while beta is down but listed: %v", i, err)
		}
	}
	time.Sleep(75*time.Second - time.Since(down))
	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pc.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Provider("beta.localhost"); !ok {
		t.Fatalf("beta left the consensus (epoch %d) during its outage: this test is about a provider still listed", doc.Epoch)
	}
	if err := n.Restart(beta); err != nil {
		t.Fatal(err)
	}
	t.Logf("beta restarted after %v", time.Since(down).Round(time.Second))

	var got []string
	// The longest wait after the outage is about 64 s of backoff plus a round trip.
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if got = imapMessages(t, beta, "bob", bobPassword); len(got) >= mails {
			break
		}
	}
	time.Sleep(5 * time.Second) // a duplicate delivery would show up by now
	got = imapMessages(t, beta, "bob", bobPassword)
	for i := range mails {
		k := 0
		for _, m := range got {
			if strings.Contains(m, "Subject: "+subject(i)+"\r\n") {
				k++
			}
		}
		if k != 1 {
			t.Errorf("mail %q is %d times in bob's INBOX, want once", subject(i), k)
		}
	}
	if len(got) != mails {
		t.Errorf("bob's INBOX holds %d messages, want %d", len(got), mails)
	}
	// A bounce goes through the mixnet to alice's own address, whose mail stays at alpha
	// (read_via_link = false); the mailproxy logs each failure it bounces.
	if bounces := imapMessages(t, alpha, "alice", alicePassword); len(bounces) != 0 {
		t.Errorf("alice's INBOX holds %d messages, want no bounce:\n%s", len(bounces), bounces[0])
	}
	b, err := os.ReadFile(alice.Log())
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(b), "mail failed"); c != 0 {
		t.Errorf("alice's mailproxy logged %d failed mails, want none", c)
	}
	// Each mail went on being sent past the retry budget: the outage was longer than it.
	delivered := deliveredLine.FindAllStringSubmatch(string(b), -1)
	if len(delivered) != mails {
		t.Errorf("alice's mailproxy logged %d delivered mails, want %d", len(delivered), mails)
	}
	var counts []string
	for _, d := range delivered {
		counts = append(counts, d[1])
		if n, _ := strconv.Atoi(d[1]); n <= budget {
			t.Errorf("a mail delivered after %d transmissions, within the budget of %d: the outage did not outlast it", n, budget)
		}
	}
	t.Logf("transmissions of the delivered mails: %s", strings.Join(counts, ", "))
}

// deliveredLine is mailproxy's log line for a delivered mail, with its transmissions.
var deliveredLine = regexp.MustCompile(`msg=delivered .*kind=mail .*transmissions=(\d+)`)
