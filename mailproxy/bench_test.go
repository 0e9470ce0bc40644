package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// The benchmarks share one network at the default consensus parameters (except a 10 s epoch,
// so that it is up in seconds) with default mailproxies, started on first use and stopped by
// TestMain: the testing package calls a benchmark function several times.
var bench struct {
	once sync.Once
	net  *mailnet
	dir  string
	err  error
	// carol@beta.localhost reads through the link (her mailproxy's local mailbox), started by
	// the first benchmark that needs her.
	carolOnce sync.Once
	carol     *testnet.Mailproxy
	carolErr  error
}

func benchParams() pki.Parameters {
	p := pki.DefaultParameters()
	p.EpochLength = 10 * time.Second
	return p
}

func benchNet(b *testing.B) *mailnet {
	if testing.Short() {
		b.Skip("end-to-end benchmark through the real binaries; not in -short mode")
	}
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "mailproxy-bench-")
		if bench.err != nil {
			return
		}
		p := benchParams()
		ctx, cancel := context.WithTimeout(context.Background(), 3*p.EpochLength+60*time.Second)
		defer cancel()
		n, err := testnet.Start(ctx, testnet.Options{Dir: bench.dir, BinDir: binDir, Parameters: &p})
		if err != nil {
			bench.err = err
			return
		}
		m := &mailnet{Net: n}
		bench.net = m
		if _, err = n.WaitConsensus(ctx); err == nil {
			if m.alice, err = n.StartMailproxy(ctx, "alice@alpha.localhost", "alice password", testnet.MailproxyOptions{}); err == nil {
				m.bob, err = n.StartMailproxy(ctx, "bob@beta.localhost", "bob password", testnet.MailproxyOptions{})
			}
		}
		bench.err = err
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.net
}

// benchCarol returns carol@beta.localhost's mailproxy in the benchmarks' network, which reads
// her mail through the link into its local mailbox.
func benchCarol(b *testing.B, m *mailnet) *testnet.Mailproxy {
	bench.carolOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		bench.carol, bench.carolErr = m.StartMailproxy(ctx, "carol@beta.localhost", "carol password", testnet.MailproxyOptions{LocalMailbox: true})
	})
	if bench.carolErr != nil {
		b.Fatal(bench.carolErr)
	}
	return bench.carol
}

// stopBench stops the benchmarks' network, if one was started.
func stopBench() error {
	if bench.net == nil {
		return nil
	}
	err := bench.net.Stop()
	if err == nil {
		os.RemoveAll(bench.dir)
	}
	return err
}

func submit(b *testing.B, m *testnet.Mailproxy, to, data string) {
	c, err := smtp.Dial(m.SMTP)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail(m.Address, []string{to}, strings.NewReader(data)); err != nil {
		b.Fatal(err)
	}
}

// sendAndWait submits a mail from alice to to and returns the time from the SMTP 250 until the
// INBOX w watches holds one more message.
func sendAndWait(b *testing.B, m *mailnet, to string, w *imapWatcher, data string, timeout time.Duration) time.Duration {
	before, err := w.count()
	if err != nil {
		b.Fatal(err)
	}
	submit(b, m.alice, to, data)
	start := time.Now()
	for time.Since(start) < timeout {
		n, err := w.count()
		if err != nil {
			b.Fatal(err)
		}
		if n > before {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("mail not visible over IMAP %v after its 250", timeout)
	return 0
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// BenchmarkEndToEnd8KB measures the latency of a typical 8 KB mail from mailproxy's SMTP 250
// until it is visible in bob's INBOX over IMAP, one mail at a time, at the default consensus
// parameters. Run at least 100 mails: make bench PKG=./mailproxy BENCH=EndToEnd8KB BENCHTIME=100x
func BenchmarkEndToEnd8KB(b *testing.B) {
	m := benchNet(b)
	w := newIMAPWatcher(b, m.bob)
	body := strings.Repeat("An ordinary mail of eight kilobytes, sent through the mixnet.  0123\r\n", 8192/70)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		data := fmt.Sprintf("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: bench %d\r\n\r\n%s", i, body)
		lat = append(lat, sendAndWait(b, m, "bob@beta.localhost", w, data, 60*time.Second))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d mails of %d bytes: p50 %v, p99 %v, max %v", len(lat), len(body), percentile(lat, 0.5), percentile(lat, 0.99), slices.Max(lat))
}

// BenchmarkEndToEnd8KBLocal is BenchmarkEndToEnd8KB for a recipient who reads through the link
// (issue 20): from alice's SMTP 250 until the mail is visible in carol's local mailbox over her
// mailproxy's loopback IMAP (STATUS polled every 10 ms), in the same network. Run it beside the
// other: make bench PKG=./mailproxy BENCH='EndToEnd8KB(Local)?$' BENCHTIME=100x
func BenchmarkEndToEnd8KBLocal(b *testing.B) {
	m := benchNet(b)
	carol := benchCarol(b, m)
	w := newLocalIMAPWatcher(b, carol)
	body := strings.Repeat("An ordinary mail of eight kilobytes, sent through the mixnet.  0123\r\n", 8192/70)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		data := fmt.Sprintf("From: alice@alpha.localhost\r\nTo: carol@beta.localhost\r\nSubject: bench %d\r\n\r\n%s", i, body)
		lat = append(lat, sendAndWait(b, m, "carol@beta.localhost", w, data, 60*time.Second))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d mails of %d bytes through the link: p50 %v, p99 %v, max %v", len(lat), len(body), percentile(lat, 0.5), percentile(lat, 0.99), slices.Max(lat))
}

// BenchmarkSend1MB measures the time from the SMTP 250 of a mail with a 1 MB attachment (1.37
// MB encoded) until it is visible in bob's INBOX over IMAP, at the default consensus parameters.
func BenchmarkSend1MB(b *testing.B) {
	m := benchNet(b)
	w := newIMAPWatcher(b, m.bob)
	att := make([]byte, 1<<20)
	rand.Read(att)
	enc := base64.StdEncoding.EncodeToString(att)
	var lines strings.Builder
	for i := 0; i < len(enc); i += 76 {
		lines.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	data := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: 1 MB\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nattached\r\n--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n" +
		lines.String() + "--b--\r\n"
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		lat = append(lat, sendAndWait(b, m, "bob@beta.localhost", w, data, 5*time.Minute))
	}
	b.StopTimer()
	b.ReportMetric(percentile(lat, 0.5).Seconds(), "s/mail")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d mail(s) of %d bytes: median %v", len(lat), len(data), percentile(lat, 0.5))
}
