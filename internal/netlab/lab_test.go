package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// binDir holds the Programs, built once by TestMain when the tests can run (root, not -short).
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if testing.Short() || os.Geteuid() != 0 {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "netlab-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		repo, err := testnet.RepoRoot()
		if err == nil {
			err = testnet.Build(context.Background(), repo, dir, Programs...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		code := m.Run()
		for _, s := range []*labOnce{&shared, &wanBench} {
			if s.lab == nil {
				continue
			}
			if err := s.lab.Stop(); err != nil {
				fmt.Fprintln(os.Stderr, "netlab:", err)
				code = 1
			} else {
				os.RemoveAll(s.dir)
			}
		}
		return code
	}())
}

// needRoot skips a test that needs namespaces when not root, except under CI (which runs as
// root), where a skip would hide that the namespace network was never tested.
func needRoot(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("namespace network with the real binaries; not in -short mode")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			tb.Fatal("the namespace network needs root, and CI runs as root: run the tests as root")
		}
		tb.Skip("the namespace network needs root (ip netns, veth, iptables): run as root, e.g. sudo -E go test ./internal/netlab")
	}
}

// wideArea are the delays and loss of the tests: each link 20 to 80 ms one way, 5 ms jitter,
// 1% of packets lost entering each namespace.
func wideArea(dir string, log func(string)) Options {
	p := FastParameters()
	return Options{Dir: dir, BinDir: binDir, Parameters: &p,
		MinDelay: 20 * time.Millisecond, MaxDelay: 80 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01,
		// Enough transmissions for a fragment to outlast a 60 s partition (40 of about 4 s).
		AckSlack: 3 * time.Second, RetryBudget: 40, RetrieveInterval: 50 * time.Millisecond,
		Log: logWriter(log)}
}

type logWriter func(string)

func (f logWriter) Write(b []byte) (int, error) {
	f(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// labOnce is a lab started on first use and stopped by TestMain: the tests (and the long
// benchmarks) share one, since a start takes a few epochs; each leaves it as it found it: every
// daemon running, no partition, 1% loss.
type labOnce struct {
	once sync.Once
	lab  *Lab
	dir  string
	err  error
}

var shared labOnce

func (s *labOnce) get(tb testing.TB, opts func(dir string) Options) *Lab {
	needRoot(tb)
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "netlab-"); s.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s.lab, s.err = Start(ctx, opts(s.dir))
		if s.err == nil {
			s.lab.Describe(os.Stderr)
		}
	})
	if s.err != nil {
		tb.Fatal(s.err)
	}
	return s.lab
}

func sharedLab(tb testing.TB) *Lab {
	return shared.get(tb, func(dir string) Options { return wideArea(dir, func(s string) { fmt.Fprintln(os.Stderr, s) }) })
}

// flow sends mails from alice to bob, each resubmitted with the same bytes (same Message-ID)
// until its 250, as a mail program does; accepted lists the Message-IDs that got their 250.
type flow struct {
	lab   *Lab
	tag   string
	mu    sync.Mutex
	sent  map[string][]byte // Message-ID -> body
	order []string
}

func newFlow(l *Lab, tag string) *flow {
	var r [4]byte
	rand.Read(r[:])
	return &flow{lab: l, tag: tag + "-" + hex.EncodeToString(r[:]), sent: map[string][]byte{}}
}

// send submits mails one after another, every gap, until ctx ends, and returns how many
// submissions failed (and were retried).
func (f *flow) send(ctx context.Context, gap time.Duration) (retries int, lastErr error) {
	alice := f.lab.User("alice@alpha.example")
	for i := 0; ctx.Err() == nil; i++ {
		id := fmt.Sprintf("<%s-%d@alpha.example>", f.tag, i)
		body := make([]byte, 600)
		rand.Read(body)
		text := hex.EncodeToString(body)
		var b strings.Builder
		for j := 0; j < len(text); j += 72 {
			b.WriteString(text[j:min(j+72, len(text))] + "\r\n")
		}
		data := "From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: " + id + "\r\nMessage-ID: " + id + "\r\n\r\n" + b.String()
		for ctx.Err() == nil {
			err := f.lab.Submit(context.Background(), alice, []string{"bob@beta.example"}, []byte(data))
			if err == nil {
				f.mu.Lock()
				f.sent[id] = []byte(b.String())
				f.order = append(f.order, id)
				f.mu.Unlock()
				break
			}
			retries++
			lastErr = err
			sleep(ctx, time.Second)
		}
		sleep(ctx, gap)
	}
	return retries, lastErr
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// await waits up to timeout until bob's INBOX holds every accepted mail of the flow, then checks
// that each is there exactly once and intact, and that no mail of any flow is there twice.
func (f *flow) await(tb testing.TB, timeout time.Duration) (after time.Duration) {
	tb.Helper()
	start := time.Now()
	f.mu.Lock()
	want := len(f.order)
	f.mu.Unlock()
	if want == 0 {
		tb.Fatal("no mail was accepted")
	}
	bob := f.lab.User("bob@beta.example")
	deadline := time.Now().Add(timeout)
	var msgs []Message
	var err error
	for {
		msgs, err = readAll(f.lab, bob)
		if err == nil && f.missing(msgs) == 0 {
			after = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d accepted mails not in bob's INBOX %v after the flow (last read error: %v)", f.missing(msgs), want, timeout, err)
		}
		time.Sleep(2 * time.Second)
	}
	// A duplicate would come from a retransmission: give the late ones a moment to land.
	time.Sleep(5 * time.Second)
	if msgs, err = readAll(f.lab, bob); err != nil {
		tb.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.MessageID]++
		if body, ok := f.sent[m.MessageID]; ok && !bytes.Equal(bytes.TrimRight(m.Body, "\r\n"), bytes.TrimRight(body, "\r\n")) {
			tb.Errorf("%s arrived altered: %d bytes, sent %d", m.MessageID, len(m.Body), len(body))
		}
	}
	for id, n := range seen {
		if n > 1 {
			tb.Errorf("%s is in bob's INBOX %d times", id, n)
		}
	}
	tb.Logf("%d accepted mails of flow %s each in bob's INBOX once, intact (%d messages there in all); the last %v after the flow ended", want, f.tag, len(msgs), after.Round(time.Second))
	return after
}

func (f *flow) missing(msgs []Message) int {
	have := map[string]bool{}
	for _, m := range msgs {
		have[m.MessageID] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, id := range f.order {
		if !have[id] {
			n++
		}
	}
	return n
}

// readAll reads bob's INBOX in a new session: one that a crash or partition broke is not reused.
func readAll(l *Lab, u *User) ([]Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := l.OpenMailbox(ctx, u)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.All()
}

// Mail crosses the namespace network (20 to 80 ms per link, 1% loss), each mail once, intact.
func TestMailAcrossNamespaces(t *testing.T) {
	l := sharedLab(t)
	f := newFlow(l, "plain")
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	f.send(ctx, 500*time.Millisecond)
	f.await(t, 2*time.Minute)
}

// crashes kills a random daemon every few seconds and restarts it a moment later, until ctx
// ends; it returns how many it killed.
func crashes(tb testing.TB, ctx context.Context, l *Lab) int {
	kills := 0
	byHost := map[string]int{}
	defer func() {
		var parts []string
		for _, h := range l.Hosts {
			parts = append(parts, fmt.Sprintf("%s %d", h.Name, byHost[h.Name]))
		}
		tb.Logf("SIGKILLs by daemon: %s", strings.Join(parts, ", "))
	}()
	for ctx.Err() == nil {
		sleep(ctx, time.Duration(2000+mrand.IntN(3000))*time.Millisecond)
		h := l.Hosts[mrand.IntN(len(l.Hosts))]
		if err := l.Kill(h); err != nil {
			tb.Error(err)
			return kills
		}
		kills++
		byHost[h.Name]++
		time.Sleep(time.Duration(500+mrand.IntN(2500)) * time.Millisecond)
		if err := l.Restart(h); err != nil {
			tb.Error(err)
			return kills
		}
		if u := l.userOn(h); u != nil {
			if err := l.waitSMTP(context.Background(), u); err != nil {
				tb.Error(err)
			}
		}
	}
	return kills
}

// userOn is the user whose mailproxy runs on h, or nil.
func (l *Lab) userOn(h *Host) *User {
	for _, u := range l.Users {
		if u.Host == h {
			return u
		}
	}
	return nil
}

// crashTest runs a flow for d while daemons are killed at random, then checks every accepted
// mail once.
func crashTest(tb testing.TB, l *Lab, d time.Duration) (accepted, kills int, after time.Duration) {
	f := newFlow(l, "crash")
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { kills = crashes(tb, ctx, l) })
	retries, lastErr := f.send(ctx, 500*time.Millisecond)
	wg.Wait()
	tb.Logf("%d mails accepted in %v with %d daemons killed; %d submissions failed and were retried (the last: %v)", len(f.order), d, kills, retries, lastErr)
	return len(f.order), kills, f.await(tb, 4*time.Minute)
}

// Random SIGKILLs of every kind of daemon (directory, mixes, providers, mailproxies) while mail
// flows: every accepted mail reaches bob once, intact.
func TestCrash(t *testing.T) { crashTest(t, sharedLab(t), 30*time.Second) }

// partitionTest cuts h off for d while mail flows, then heals it.
func partitionTest(tb testing.TB, l *Lab, name string, d time.Duration) (accepted int, after time.Duration) {
	h := l.Host(name)
	f := newFlow(l, "cut-"+name)
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var retries int
	var lastErr error
	wg.Go(func() { retries, lastErr = f.send(ctx, 500*time.Millisecond) })
	sleep(ctx, 5*time.Second)
	if err := l.Partition(h, true); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("%s cut off for %v", name, d)
	time.Sleep(d)
	if err := l.Partition(h, false); err != nil {
		tb.Fatal(err)
	}
	wg.Wait()
	tb.Logf("%d mails accepted in %v around the cut; %d submissions failed and were retried (the last: %v)", len(f.order), d+10*time.Second, retries, lastErr)
	return len(f.order), f.await(tb, 4*time.Minute)
}

// One provider (the receiving one), then one mix layer (its only mix), cut off while mail
// flows: every accepted mail reaches bob once after the partition heals.
func TestPartition(t *testing.T) {
	l := sharedLab(t)
	t.Run("provider", func(t *testing.T) { partitionTest(t, l, "provider-beta", 15*time.Second) })
	t.Run("mix layer", func(t *testing.T) { partitionTest(t, l, "mix2", 15*time.Second) })
}

// lossTest raises the loss to p for d while mail flows.
func lossTest(tb testing.TB, l *Lab, p float64, d time.Duration) (accepted int, after time.Duration) {
	f := newFlow(l, "loss")
	if err := l.SetLoss(p); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	retries, lastErr := f.send(ctx, 500*time.Millisecond)
	tb.Logf("%d mails accepted in %v at %.0f%% loss; %d submissions failed and were retried (the last: %v)", len(f.order), d, 100*p, retries, lastErr)
	if err := l.SetLoss(l.opts.Loss); err != nil {
		tb.Fatal(err)
	}
	return len(f.order), f.await(tb, 4*time.Minute)
}

// 5% of packets lost entering every namespace while mail flows.
func TestLoss(t *testing.T) { lossTest(t, sharedLab(t), 0.05, 20*time.Second) }
