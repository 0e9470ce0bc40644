package agent

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
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// binDir holds the directory and mixd binaries, built once for the tests that start a network
// (not in -short mode).
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
		dir, err := os.MkdirTemp("", "panoramix-agent-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// mailproxy too: TestExamples runs the agent API of the real binary.
		if err := testnet.Build(context.Background(), repo, dir, append(slices.Clone(testnet.Programs), "mailproxy")...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// realNet starts the real directory and mixd binaries (providers alpha.localhost and
// beta.localhost, with extra TOML for beta's mixd) and a consensus client that follows them.
func realNet(tb testing.TB, betaConfig string) (*testnet.Net, *pki.Client) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts the real binaries")
	}
	p := pki.DefaultParameters()
	p.EpochLength = 10 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 10, 2, 2, 2
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := testnet.Options{Dir: tb.TempDir(), BinDir: binDir, Parameters: &p, LogLevel: "debug"}
	if betaConfig != "" {
		opts.ProviderConfig = map[string]string{"beta.localhost": betaConfig}
	}
	n, err := testnet.Start(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := n.Stop(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			for _, nd := range n.Nodes {
				if b, err := os.ReadFile(nd.Log()); err == nil && len(b) > 0 {
					tb.Logf("--- %s log (tail) ---\n%s", nd.Name, b[max(0, len(b)-3000):])
				}
			}
		}
	})
	if _, err := n.WaitConsensus(ctx); err != nil {
		tb.Fatal(err)
	}
	pc, err := n.PKIClient()
	if err != nil {
		tb.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pc.Run(pctx) }()
	tb.Cleanup(func() { pcancel(); <-done })
	return n, pc
}

// startEngine runs a client engine for user at provider until the test ends. Receive is set:
// the agent reads the user's queue.
func startEngine(tb testing.TB, n *testnet.Net, provider *testnet.Node, user string, pc *pki.Client) *client.Engine {
	tb.Helper()
	key, err := n.AddUser(provider, user, 1<<24)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := client.New(client.Config{DataDir: tb.TempDir(), User: user, Domain: provider.Domain, LinkKey: key, PKI: pc,
		RetrieveInterval: 40 * time.Millisecond, AckSlack: 3 * time.Second, Receive: true,
		Logger: slog.New(slog.NewTextHandler(&testWriter{tb: tb, prefix: user}, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("engine Run: %v", err)
		}
		e.Close()
		key.Wipe()
	})
	return e
}

type testWriter struct {
	tb     testing.TB
	prefix string
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.tb.Logf("%s: %s", w.prefix, bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// server is an agent serving on a loopback port, with its token file.
type server struct {
	*Agent
	url       string
	tokenFile string
	token     string
}

// startAgent serves an agent for accounts on 127.0.0.1 until the test ends; cfg's Accounts,
// PKI and Token are set here.
func startAgent(tb testing.TB, pc Consensus, cfg Config, accounts ...Account) *server {
	tb.Helper()
	tokenFile := filepath.Join(tb.TempDir(), "agent.token")
	tok, err := adminauth.LoadOrCreate(tokenFile)
	if err != nil {
		tb.Fatal(err)
	}
	secret, err := adminauth.Load(tokenFile)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Accounts, cfg.PKI, cfg.Token = accounts, pc, tok
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return &server{Agent: a, url: "http://" + ln.Addr().String(), tokenFile: tokenFile, token: secret}
}

// reply is an answer of the agent.
type reply struct {
	code int
	body []byte
	hdr  http.Header
}

func (r reply) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("answer %d %q: %v", r.code, r.body, err)
	}
}

// errorCode is the code field of an error answer ("" when the body is not one).
func (r reply) errorCode() string {
	var e errorJSON
	json.Unmarshal(r.body, &e)
	return e.Code
}

var httpClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// call sends method path with the agent's token and a JSON body (a []byte is sent as it is).
func (s *server) call(tb testing.TB, method, path string, body any) reply {
	tb.Helper()
	r, err := s.do(method, path, body, s.token, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func (s *server) do(method, path string, body any, token string, edit func(*http.Request)) (reply, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	adminauth.SetHeaders(req, token)
	if edit != nil {
		edit(req)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: b, hdr: resp.Header}, err
}

// sendBody is a send request as a client writes it.
func sendBody(domain, service, recipient string, data []byte) map[string]any {
	return map[string]any{"domain": domain, "service": service, "recipient": recipient, "data": data}
}

// waitFinished long-polls a message's status until it is finished.
func (s *server) waitFinished(tb testing.TB, id, account string, timeout time.Duration) statusJSON {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var st statusJSON
	for {
		path := "/agent/v1/status/" + id + "?wait=5s"
		if account != "" {
			path += "&account=" + url.QueryEscape(account)
		}
		if !st.Updated.IsZero() {
			path += "&after=" + url.QueryEscape(st.Updated.Format(time.RFC3339Nano))
		}
		r := s.call(tb, http.MethodGet, path, nil)
		if r.code != http.StatusOK {
			tb.Fatalf("status %s: %d %s", id, r.code, r.body)
		}
		r.decode(tb, &st)
		if st.Finished {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("message %s not finished after %v: %+v", id, timeout, st)
		}
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// deadEngine is a real engine whose consensus client points at a closed port: enough for the
// requests that are refused before they need the network, and for its store.
func deadEngine(tb testing.TB) (*client.Engine, *pki.Client) {
	tb.Helper()
	auth, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	pc, err := pki.NewClient(pki.ClientConfig{URLs: []string{"http://127.0.0.1:1"}, Authorities: []keys.IdentityPublicKey{auth.Public()}, Threshold: 1, EpochLength: 10 * time.Second})
	auth.Wipe()
	if err != nil {
		tb.Fatal(err)
	}
	link, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := client.New(client.Config{DataDir: tb.TempDir(), User: "alice", Domain: "alpha.localhost", LinkKey: link, PKI: pc, Receive: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(); link.Wipe() })
	return e, pc
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
