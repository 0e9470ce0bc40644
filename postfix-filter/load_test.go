package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// writeLoadMessage writes a message file for smtp-source -F (LF line ends; smtp-source sends
// CRLF).
func writeLoadMessage(tb testing.TB, dir, token string, mixable bool) string {
	hdr := ""
	if mixable {
		hdr = "X-PANORAMIX-Mixable: yes\n"
	}
	body := fmt.Sprintf("From: alice@alpha.localhost\nTo: bob@beta.localhost\nDate: %s\nSubject: load\n%s\n%s\n%s\n",
		time.Now().Format(time.RFC1123Z), hdr, strings.Repeat("A line of load test mail, about a kilobyte in all.\n", 20), token)
	p := filepath.Join(dir, token+".eml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// smtpSource runs smtp-source: n messages over sessions parallel sessions into Postfix.
func (e *env) smtpSource(file, rcpt string, n, sessions int) *exec.Cmd {
	return exec.Command("smtp-source", "-s", fmt.Sprint(sessions), "-m", fmt.Sprint(n), "-F", file,
		"-f", "alice@alpha.localhost", "-t", rcpt, e.smtpIn)
}

func (e *env) waitQueueEmpty(timeout time.Duration) {
	e.tb.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if strings.Contains(e.postqueue("-p"), "Mail queue is empty") {
			return
		}
	}
	e.tb.Fatalf("Postfix's queue is not empty after %v:\n%s", timeout, tail([]byte(e.postqueue("-p")), 2000))
}

// A flood through Postfix (smtp-source, 20 sessions): mixable and plain mail at once. Every
// mixable message is queued for the mixnet exactly once and reaches bob's INBOX exactly once;
// every plain one reaches the sink exactly once.
func TestLoadExactlyOnce(t *testing.T) {
	e := startEnv(t, "info", filterAll, 20)
	const nMix, nPlain = 150, 100
	mixFile := writeLoadMessage(t, e.dir, "tokenLOADMIX", true)
	plainFile := writeLoadMessage(t, e.dir, "tokenLOADPLAIN", false)
	a := e.smtpSource(mixFile, "bob@beta.localhost", nMix, 20)
	b := e.smtpSource(plainFile, "carol@legacy.test", nPlain, 10)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("smtp-source: %v\n%s", err, out)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("smtp-source: %v", err)
	}
	e.waitQueueEmpty(60 * time.Second)
	if n := e.countLog("queued for the mixnet"); n != nMix {
		t.Fatalf("the filter queued %d messages for the mixnet, want %d", n, nMix)
	}
	var got int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		got = 0
		for _, m := range e.inbox() {
			if strings.Contains(m, "tokenLOADMIX") {
				got++
			}
		}
		if got >= nMix {
			break
		}
	}
	if got != nMix {
		t.Fatalf("bob's INBOX holds %d of the %d mixable messages", got, nMix)
	}
	if n := e.sinkWith("tokenLOADPLAIN", 10*time.Second); n != nPlain {
		t.Fatalf("the sink holds %d of the %d plain messages", n, nPlain)
	}
	if n := e.sinkWith("tokenLOADMIX", 0); n != 0 {
		t.Fatalf("%d mixable messages reached the sink", n)
	}
}

// BenchmarkPostfixIntoMixnetQueue measures messages per second accepted from Postfix into the
// mixnet queue: smtp-source submits mixable messages (about 1 KB) over 20 sessions into
// Postfix, which hands them to the filter (10 scan processes); the clock stops when the filter
// has queued the last one in the client engine (durable, fsync'd) and answered 250. Run with
// -benchtime 1x: one iteration is messagesPerRun messages.
func BenchmarkPostfixIntoMixnetQueue(b *testing.B) {
	e := startEnv(b, "info", filterAll, pki.DefaultParameters().LambdaP)
	const messagesPerRun = 2000
	file := writeLoadMessage(b, e.dir, "tokenBENCH", true)
	total := 0
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if out, err := e.smtpSource(file, "bob@beta.localhost", messagesPerRun, 20).CombinedOutput(); err != nil {
			b.Fatalf("smtp-source: %v\n%s", err, out)
		}
		total += messagesPerRun
		e.waitLog("queued for the mixnet", total, 5*time.Minute)
		elapsed += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	e.logDelays(b)
	e.waitQueueEmpty(time.Minute)
	if n := e.countLog("queued for the mixnet"); n != total {
		b.Fatalf("the filter queued %d messages, want %d", n, total)
	}
}

// BenchmarkFilterDirect measures the filter alone: 10 SMTP sessions (as Postfix's 10 scan
// processes) hand it mixable messages directly, without Postfix in front; the clock stops when
// the last one is queued in the client engine and answered 250. Comparing it with
// BenchmarkPostfixIntoMixnetQueue separates the filter's cost from Postfix's.
func BenchmarkFilterDirect(b *testing.B) {
	e := startEnv(b, "info", filterAll, pki.DefaultParameters().LambdaP)
	const messagesPerRun, sessions = 2000, 10
	body := strings.Repeat("A line of load test mail, about a kilobyte in all.\r\n", 20)
	total := 0
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		errc := make(chan error, sessions)
		for s := range sessions {
			go func() {
				c, err := smtp.Dial(e.filter)
				if err != nil {
					errc <- err
					return
				}
				defer c.Close()
				for i := range messagesPerRun / sessions {
					msg := fmt.Sprintf("Received: by bench id %d.%d.%d\r\nX-PANORAMIX-Mixable: yes\r\nSubject: load\r\n\r\n%s", total, s, i, body)
					if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(msg)); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
		}
		for range sessions {
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
		total += messagesPerRun
		elapsed += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "msgs/s")
	if n := e.countLog("queued for the mixnet"); n != total {
		b.Fatalf("the filter queued %d messages, want %d", n, total)
	}
}

// logDelays logs Postfix's average delays for the messages it passed to the filter: before the
// queue manager, in the queue manager, connection set-up, transmission (the filter's answer).
func (e *env) logDelays(tb testing.TB) {
	b, _ := os.ReadFile(filepath.Join(e.dir, "maillog"))
	var sum [4]float64
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		_, after, ok := strings.Cut(line, " delays=")
		if !ok || !strings.Contains(line, "relay=127.0.0.1[127.0.0.1]:"+port(e.filter)) || !strings.Contains(line, "status=sent") {
			continue
		}
		f := strings.Split(strings.Fields(after)[0], "/")
		if len(f) != 4 {
			continue
		}
		for i := range f {
			var v float64
			fmt.Sscan(strings.TrimSuffix(f[i], ","), &v)
			sum[i] += v
		}
		n++
	}
	if n > 0 {
		tb.Logf("Postfix delays over %d messages (s, mean): before qmgr %.3f, in qmgr %.3f, connect %.3f, transmission %.3f",
			n, sum[0]/float64(n), sum[1]/float64(n), sum[2]/float64(n), sum[3]/float64(n))
	}
}
