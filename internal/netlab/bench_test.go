package netlab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// The long forms of the fault tests, on the tests' lab (20 to 80 ms per link, 1% loss, fast
// consensus parameters): make bench PKG=./internal/netlab BENCH=Long BENCHTIME=1x. Each reports
// the mails accepted during the fault and how long after its end the last of them was in bob's
// INBOX; each fails if any accepted mail is missing, altered or there twice.

// Three minutes of random SIGKILLs (every 2 to 5 s, down 0.5 to 3 s) while mail flows.
func BenchmarkCrashLong(b *testing.B) {
	accepted, kills, after := crashTest(b, sharedLab(b), 3*time.Minute)
	b.ReportMetric(float64(accepted), "mails")
	b.ReportMetric(float64(kills), "kills")
	b.ReportMetric(after.Seconds(), "s-to-last")
	b.ReportMetric(0, "ns/op")
}

// The receiving provider cut off for 60 s, then the middle mix layer for 60 s.
func BenchmarkPartitionLong(b *testing.B) {
	l := sharedLab(b)
	for _, name := range []string{"provider-beta", "mix2"} {
		accepted, after := partitionTest(b, l, name, 60*time.Second)
		b.ReportMetric(float64(accepted), name+"-mails")
		b.ReportMetric(after.Seconds(), name+"-s-to-last")
	}
	b.ReportMetric(0, "ns/op")
}

// 5% of packets lost entering every namespace for a minute.
func BenchmarkLossLong(b *testing.B) {
	accepted, after := lossTest(b, sharedLab(b), 0.05, time.Minute)
	b.ReportMetric(float64(accepted), "mails")
	b.ReportMetric(after.Seconds(), "s-to-last")
	b.ReportMetric(0, "ns/op")
}

// wanBench is the lab of the latency benchmark: the consensus parameters and mailproxy settings
// of mailproxy's BenchmarkEndToEnd8KB on loopback (defaults, 10 s epoch), with wide-area links.
var wanBench labOnce

// BenchmarkEndToEnd8KBWideArea is mailproxy's BenchmarkEndToEnd8KB across the namespace network:
// each link 20 to 80 ms one way (drawn once per pair of hosts), 5 ms jitter, no loss; default
// consensus parameters (10 s epoch) and mailproxy defaults. Latency runs from alice's 250 until
// bob, polling his provider's IMAP STATUS every 10 ms from his own machine across the network,
// sees the mail. make bench PKG=./internal/netlab BENCH=EndToEnd8KBWideArea BENCHTIME=100x
func BenchmarkEndToEnd8KBWideArea(b *testing.B) {
	l := wanBench.get(b, func(dir string) Options {
		p := pki.DefaultParameters()
		p.EpochLength = 10 * time.Second
		return Options{Dir: dir, BinDir: binDir, Parameters: &p,
			MinDelay: 20 * time.Millisecond, MaxDelay: 80 * time.Millisecond, Jitter: 5 * time.Millisecond,
			Log: logWriter(func(s string) { fmt.Fprintln(os.Stderr, s) })}
	})
	alice, bob := l.User("alice@alpha.example"), l.User("bob@beta.example")
	mb, err := l.OpenMailbox(b.Context(), bob)
	if err != nil {
		b.Fatal(err)
	}
	defer mb.Close()
	body := strings.Repeat("An ordinary mail of eight kilobytes, sent through the mixnet.  0123\r\n", 8192/70)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		before, err := mb.Count()
		if err != nil {
			b.Fatal(err)
		}
		data := fmt.Sprintf("From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: bench %d\r\n\r\n%s", i, body)
		if err := l.Submit(context.Background(), alice, []string{bob.Address}, []byte(data)); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			n, err := mb.Count()
			if err != nil {
				b.Fatal(err)
			}
			if n > before {
				lat = append(lat, time.Since(start))
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("mail %d not in bob's INBOX a minute after its 250", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d mails of %d bytes: p50 %v, p99 %v, max %v; links: %s", len(lat), len(body), percentile(lat, 0.5), percentile(lat, 0.99), slices.Max(lat), pathDelays(l))
}

// pathDelays lists the one-way delays on a mail's path: alice, her provider, three mixes, bob's
// provider, bob.
func pathDelays(l *Lab) string {
	path := []string{"alice", "provider-alpha", "mix1", "mix2", "mix3", "provider-beta", "bob"}
	var parts []string
	var sum time.Duration
	for i := 0; i+1 < len(path); i++ {
		d := l.Link(l.Host(path[i]), l.Host(path[i+1])).Delay
		sum += d
		parts = append(parts, fmt.Sprintf("%s-%s %v", path[i], path[i+1], d.Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (sum %v)", sum.Round(time.Millisecond))
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
