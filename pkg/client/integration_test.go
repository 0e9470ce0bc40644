package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// binDir holds the directory and mixd binaries, built once for the integration tests (not in
// -short mode).
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		repo, err := testnet.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dir, err := os.MkdirTemp("", "panoramix-client-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := testnet.Build(context.Background(), repo, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// realNet starts the real directory and mixd binaries with short epochs, small delays and
// client rates of 5 per second, and a consensus client that follows it.
func realNet(t *testing.T) (*testnet.Net, *pki.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	p := pki.DefaultParameters()
	p.EpochLength = 5 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 5, 5, 5, 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := testnet.Start(ctx, testnet.Options{Dir: t.TempDir(), BinDir: binDir, Parameters: &p, LogLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for _, nd := range n.Nodes {
				if b, err := os.ReadFile(nd.Log()); err == nil && len(b) > 0 {
					t.Logf("--- %s log (tail) ---\n%s", nd.Name, b[max(0, len(b)-3000):])
				}
			}
		}
	})
	if _, err := n.WaitConsensus(ctx); err != nil {
		t.Fatal(err)
	}
	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pc.Run(pctx) }()
	t.Cleanup(func() { pcancel(); <-done })
	return n, pc
}

func addUser(t *testing.T, provider *testnet.Node, name string) *keys.LinkPrivateKey {
	t.Helper()
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"name": name, "link_key": k.Public().String(), "quota_bytes": 1 << 24})
	token, err := adminauth.Load(provider.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+provider.Admin+"/admin/v1/users", bytes.NewReader(body))
	adminauth.SetHeaders(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("add user: %s: %s", resp.Status, msg)
	}
	return k
}

// metric reads one sample (name with its labels, as /metrics writes it) from a node.
func metric(t *testing.T, nd *testnet.Node, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + nd.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// runner is an engine running in the background.
type runner struct {
	*Engine
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func startEngine(t *testing.T, cfg Config) *runner {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(&testWriter{t: t, prefix: cfg.User}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{Engine: e, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	// On a failed test, stop the engine before the test ends, so that it does not log after.
	t.Cleanup(func() {
		if !r.stopped {
			cancel()
			<-r.done
			e.Close()
		}
	})
	return r
}

// stop cancels Run, requires it to return nil promptly, and closes the engine.
func (r *runner) stop(t *testing.T) {
	t.Helper()
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.prefix, bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func clientConfig(dir, user, domain string, key *keys.LinkPrivateKey, pc *pki.Client) Config {
	return Config{DataDir: dir, User: user, Domain: domain, LinkKey: key, PKI: pc,
		RetrieveInterval: 40 * time.Millisecond, RetrieveBatch: 4, AckSlack: 2 * time.Second, Receive: true}
}

// Cover traffic through the real network: loops come back to the sender, drop packets reach
// the providers' drop service, and a message of three fragments to another user's queue is
// reassembled there by that user's engine.
func TestCoverAndDeliveryThroughRealBinaries(t *testing.T) {
	n, pc := realNet(t)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	aliceKey, bobKey := addUser(t, alpha, "alice"), addUser(t, beta, "bob")
	dropsBefore := metric(t, beta, `mixd_packets_delivered_total{service="drop"}`)
	alice := startEngine(t, clientConfig(t.TempDir(), "alice", alpha.Domain, aliceKey, pc))
	bob := startEngine(t, clientConfig(t.TempDir(), "bob", beta.Domain, bobKey, pc))

	capacity := FragmentCapacity(n.Parameters().Geometry)
	data := make([]byte, 2*capacity+1000)
	rand.Read(data)
	id, err := alice.Send(context.Background(), Destination{Domain: beta.Domain, Recipient: "bob", Service: "queue"}, data)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob to receive the message", 30*time.Second, func() bool {
		r, err := bob.Received()
		return err == nil && len(r) > 0
	})
	r, _ := bob.Received()
	if len(r) != 1 || r[0].ID != id || !bytes.Equal(r[0].Data, data) {
		t.Fatalf("bob received %d messages; first matches: %v", len(r), len(r) > 0 && bytes.Equal(r[0].Data, data))
	}
	if st, _ := alice.Status(id); st.State != StateSent || st.Fragments != 3 || st.Transmissions != 3 {
		t.Fatalf("alice's status %+v", st)
	}

	waitFor(t, "loops to come back", 30*time.Second, func() bool { return alice.LinkState().LoopsReturned >= 10 })
	waitFor(t, "drop packets at provider-beta", 30*time.Second, func() bool {
		return metric(t, beta, `mixd_packets_delivered_total{service="drop"}`) > dropsBefore
	})
	ls := alice.LinkState()
	t.Logf("alice after %v: %+v", time.Since(ls.Since), ls)
	if !ls.Connected || ls.BadReplies != 0 || ls.RealPackets != 3 || ls.SendDrops == 0 || ls.Drops == 0 {
		t.Fatalf("alice's link state %+v", ls)
	}
	alice.stop(t)
	bob.stop(t)
}

// Nothing queued is lost across restarts: a message queued by an engine that never ran is sent
// by the next one; a message sent and not acknowledged when its engine stops is retransmitted by
// the next engine on the same data directory, and fails once its retry budget is spent.
func TestRestartResendsThroughRealBinaries(t *testing.T) {
	n, pc := realNet(t)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	aliceKey, bobKey := addUser(t, alpha, "alice"), addUser(t, beta, "bob")
	bob := startEngine(t, clientConfig(t.TempDir(), "bob", beta.Domain, bobKey, pc))
	dir := t.TempDir()
	cfg := clientConfig(dir, "alice", alpha.Domain, aliceKey, pc)
	cfg.RetryBudget = 2
	// A slack long enough that each transmission's echo comes back before the next one is due,
	// even on a loaded machine (the test counts echoes per transmission).
	cfg.AckSlack = 8 * time.Second

	// Queued, never sent, engine closed.
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	queued, err := e.Send(context.Background(), Destination{Domain: beta.Domain, Recipient: "bob", Service: "queue"}, []byte("queued before a restart"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	// The next engine sends it. It also sends a message to the loop service, whose echo is a
	// reply through the SURB but not an ack: the fragment stays unacknowledged.
	alice := startEngine(t, cfg)
	waitFor(t, "bob to receive the queued message", 30*time.Second, func() bool {
		r, _ := bob.Received()
		return len(r) == 1 && r[0].ID == queued && string(r[0].Data) == "queued before a restart"
	})
	unacked, err := alice.Send(context.Background(), Destination{Domain: beta.Domain, Recipient: "echo", Service: "loop"}, []byte("never acknowledged"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first transmission's echo", 30*time.Second, func() bool { return alice.LinkState().BadReplies >= 1 })
	st, _ := alice.Status(unacked)
	if st.State != StateSending || st.Transmissions != 1 {
		t.Fatalf("before the restart: %+v", st)
	}
	alice.stop(t)

	// The restarted engine retransmits (a fresh SURB: the only one whose echo it can now get)
	// and, with a budget of two transmissions, then gives up with a reason.
	alice = startEngine(t, cfg)
	if st, _ := alice.Status(unacked); st.State != StateSending || st.Transmissions != 1 {
		t.Fatalf("after the restart: %+v", st)
	}
	waitFor(t, "the retransmission's echo", 30*time.Second, func() bool { return alice.LinkState().BadReplies >= 1 })
	waitFor(t, "the message to fail", 30*time.Second, func() bool {
		st, _ := alice.Status(unacked)
		return st.State == StateFailed
	})
	st, _ = alice.Status(unacked)
	if st.Transmissions != 2 || st.Reason != "fragment 0 not acknowledged after 2 transmissions" {
		t.Fatalf("failed message: %+v", st)
	}
	if r, _ := bob.Received(); len(r) != 1 {
		t.Fatalf("bob received %d messages, want exactly 1", len(r))
	}
	alice.stop(t)
	bob.stop(t)
}

// Mail through the real network to the mailbox service: every fragment acknowledged through
// its SURB once stored, so the message is delivered; a message to a recipient the provider does
// not know fails with the service's reason.
func TestMailboxThroughRealBinaries(t *testing.T) {
	n, pc := realNet(t)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	aliceKey := addUser(t, alpha, "alice")
	addUser(t, beta, "bob")
	doc, err := pc.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := doc.Provider(beta.Domain); !ok || !slices.Contains(p.Services, "mailbox") {
		t.Skip("provider-beta does not offer the mailbox service")
	}
	alice := startEngine(t, clientConfig(t.TempDir(), "alice", alpha.Domain, aliceKey, pc))

	capacity := FragmentCapacity(n.Parameters().Geometry)
	mail := []byte("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: through the mixnet\r\n\r\n")
	mail = append(mail, bytes.Repeat([]byte("0123456789abcdef\r\n"), (capacity+500)/18)...)
	mail = append(mail, "\r\n"...)
	id, err := alice.Send(context.Background(), Destination{Domain: beta.Domain, Recipient: "bob"}, mail)
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := alice.Send(context.Background(), Destination{Domain: beta.Domain, Recipient: "nobody"}, mail[:200])
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both messages to finish", 60*time.Second, func() bool {
		a, _ := alice.Status(id)
		b, _ := alice.Status(nobody)
		return a.State.Finished() && b.State.Finished()
	})
	st, _ := alice.Status(id)
	if st.State != StateDelivered || st.Fragments != 2 || st.Acknowledged != 2 {
		t.Fatalf("mail to bob: %+v", st)
	}
	st, _ = alice.Status(nobody)
	if st.State != StateFailed || st.Reason != "fragment 0: unknown recipient" {
		t.Fatalf("mail to nobody: %+v", st)
	}
	// The engine counts an ACK just after committing its status, so the last one may be
	// counted a moment after Status shows the message finished.
	waitFor(t, "the three ACKs counted", 10*time.Second, func() bool { return alice.LinkState().Acks >= 3 })
	if ls := alice.LinkState(); ls.Acks < 3 || ls.BadReplies != 0 {
		t.Fatalf("link state %+v", ls)
	}
	alice.stop(t)
}
