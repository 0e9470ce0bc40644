package testnet

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// debianPython is the interpreter the example plugins are written for.
func debianPython(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("python3 missing (apt-get install python3)")
	}
	t.Skip("python3 missing: apt-get install python3")
	return ""
}

// TestPluginsThroughMixnet is the acceptance test of issue 18's plugins, through the real
// binaries: beta's provider runs contrib/plugins/kvdrop.py, which dies once after committing
// its first PUT and before answering, and contrib/plugins/testdata/hostile.py, which misbehaves
// in every way the spec lists, one way per run. alice's client engine (pkg/client) PUTs and
// GETs through the mixnet: the PUT whose answer died with the plugin is retransmitted by the
// engine and answered from the plugin's stored answer after mixd restarted it. Meanwhile a
// mail to bob goes through beta's mailbox service into bob's IMAP INBOX, and every kind of
// misbehaviour was counted.
func TestPluginsThroughMixnet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	python := debianPython(t)
	repo, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "kvdrop-crashed")
	plugins := fmt.Sprintf(`[[plugin]]
name = "kvdrop"
command = [%q, "-B", %q]
env = ["PANORAMIX_PLUGIN_CRASH_ONCE=%s"]
timeout = "5s"

[[plugin]]
name = "hostile"
command = [%q, "-B", %q]
max_in_flight = 4
timeout = "2s"
`, python, filepath.Join(repo, "contrib/plugins/kvdrop.py"), marker, python, filepath.Join(repo, "contrib/plugins/testdata/hostile.py"))

	p := pki.DefaultParameters()
	p.EpochLength = 10 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaM = 2
	p.LambdaP = 5 // real packets leave fast: the test sends a dozen messages
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := launch(t, ctx, Options{Parameters: &p, LogLevel: "debug", ProviderConfig: map[string]string{"beta.localhost": plugins}})
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	aliceKey := addUser(t, n, alpha, "alice")
	addUser(t, n, beta, "bob")
	if err := n.SetPassword(beta, "bob", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	pc, _ := n.PKIClient()
	rctx, stop := context.WithCancel(context.Background())
	defer stop()
	pdone := make(chan struct{})
	go func() { defer close(pdone); pc.Run(rctx) }()
	defer func() { stop(); <-pdone }()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// A short AckSlack: a request whose answer never came is retransmitted within seconds.
	e, err := client.New(client.Config{DataDir: t.TempDir(), User: "alice", Domain: alpha.Domain, LinkKey: aliceKey, PKI: pc, Logger: log, AckSlack: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	edone := make(chan error, 1)
	go func() { edone <- e.Run(rctx) }()
	defer func() {
		stop()
		if err := <-edone; err != nil {
			t.Errorf("alice's engine: %v", err)
		}
		e.Close()
	}()
	send := func(service, recipient, data string) client.MessageID {
		t.Helper()
		id, err := e.Send(rctx, client.Destination{Domain: beta.Domain, Recipient: recipient, Service: service}, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	wait := func(id client.MessageID, what string) client.Status {
		t.Helper()
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			st, err := e.Status(id)
			if err != nil {
				t.Fatal(err)
			}
			if st.State.Finished() {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %s after 3 minutes (%d transmissions)", what, st.State, st.Transmissions)
			}
		}
	}

	// The hostile plugin first, so that it misbehaves while the rest goes on.
	for i := range 8 {
		send("hostile", "anyone", fmt.Sprintf("request %d", i))
	}
	put := send("kvdrop", "drop1", "PUT colour\nblue")
	mail := fmt.Sprintf("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: beside the plugins\r\nMessage-ID: <%d@alpha.localhost>\r\n\r\nstill delivered\r\n", time.Now().UnixNano())
	mid := send("mailbox", "bob", mail)

	st := wait(put, "PUT")
	if st.State != client.StateDelivered || string(st.Answer) != "stored" {
		t.Fatalf("PUT: %s %q %q", st.State, st.Reason, st.Answer)
	}
	if st.Transmissions < 2 {
		t.Errorf("PUT acknowledged after %d transmission(s): the plugin was to die before its first answer", st.Transmissions)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("kvdrop did not die after its first commit: %v", err)
	}
	if st := wait(send("kvdrop", "drop1", "GET colour"), "GET"); st.State != client.StateDelivered || string(st.Answer) != "blue" {
		t.Fatalf("GET: %s %q %q", st.State, st.Reason, st.Answer)
	}
	if st := wait(send("kvdrop", "drop1", "GET nothing"), "GET of a missing key"); st.State != client.StateFailed || string(st.Answer) != "no value for nothing" {
		t.Fatalf("GET of a missing key: %s %q %q", st.State, st.Reason, st.Answer)
	}
	if st := wait(mid, "mail"); st.State != client.StateDelivered {
		t.Fatalf("mail to bob: %s (%s)", st.State, st.Reason)
	}
	var got []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = imapMessages(t, beta, "bob", "correct horse battery"); len(got) > 0 {
			break
		}
	}
	if len(got) != 1 || got[0] != mail {
		t.Fatalf("bob's INBOX holds %d messages, want the one mail", len(got))
	}

	for _, kind := range []string{"garbage", "hang", "answered_twice", "oversize", "unknown_request"} {
		waitMetric(t, beta, fmt.Sprintf(`mixd_plugin_violations_total{kind=%q,plugin="hostile"}`, kind), 1, 3*time.Minute)
	}
	if v := metric(t, beta, `mixd_plugin_restarts_total{plugin="kvdrop"}`); v < 1 {
		t.Errorf("kvdrop restarted %v times, want at least once (its crash)", v)
	}
	for _, kind := range []string{"garbage", "hang", "answered_twice", "oversize", "unknown_request", "hello", "bad_answer"} {
		if v := metric(t, beta, fmt.Sprintf(`mixd_plugin_violations_total{kind=%q,plugin="kvdrop"}`, kind)); v != 0 {
			t.Errorf("kvdrop: %v violations of kind %s", v, kind)
		}
	}
	var counts []string
	for _, kind := range []string{"garbage", "hang", "answered_twice", "oversize", "unknown_request"} {
		counts = append(counts, fmt.Sprintf("%s %v", kind, metric(t, beta, fmt.Sprintf(`mixd_plugin_violations_total{kind=%q,plugin="hostile"}`, kind))))
	}
	t.Logf("PUT acknowledged after %d transmissions; hostile plugin: %v restarts, violations: %s; kvdrop: %v restarts",
		st.Transmissions, metric(t, beta, `mixd_plugin_restarts_total{plugin="hostile"}`), strings.Join(counts, ", "),
		metric(t, beta, `mixd_plugin_restarts_total{plugin="kvdrop"}`))
	if !beta.Running() {
		t.Fatal("beta's mixd stopped")
	}
	b, err := os.ReadFile(beta.Log())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "plugin misbehaved; killing it") {
		t.Error("beta's log does not say it killed the hostile plugin")
	}
}
