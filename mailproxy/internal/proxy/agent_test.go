package proxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// [agent] listen_address starts the agent API beside SMTP, behind the token mailproxy makes in
// the data directory: a program with the token is answered by the API (here: no consensus yet,
// the directory being a closed port), one without it is refused.
func TestAgentWired(t *testing.T) {
	dir := t.TempDir()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	text := `version = 1
data_dir = "data"
[directory]
urls = ["http://` + dead + `"]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
epoch_length = "10s"
[agent]
listen_address = "127.0.0.1:1"
[[accounts]]
address = "alice@alpha.example"
link_key_file = "alice.key"
`
	p := filepath.Join(dir, "mailproxy.toml")
	os.WriteFile(p, []byte(text), 0o600)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "data", "agent.token"); cfg.Agent.TokenFile != want {
		t.Fatalf("token file %q, want %q", cfg.Agent.TokenFile, want)
	}
	k, _ := keys.GenerateLinkKey(rand.Reader)
	if err := keys.SaveLinkKey(cfg.Accounts[0].LinkKeyFile, k); err != nil {
		t.Fatal(err)
	}
	k.Wipe()
	px, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	fi, err := os.Stat(cfg.Agent.TokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v", err, fi.Mode())
	}
	token, err := adminauth.Load(cfg.Agent.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	smtpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	statusLn, _ := net.Listen("unix", filepath.Join(dir, "status.sock"))
	agentLn, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- px.serve(ctx, smtpLn, statusLn, nil, agentLn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	get := func(tok string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", "http://"+agentLn.Addr().String()+"/agent/v1/services", nil)
		if tok != "" {
			adminauth.SetHeaders(req, tok)
		}
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", code)
	}
	if code, _ := get(strings.Repeat("x", 64)); code != http.StatusUnauthorized {
		t.Errorf("a wrong token: status %d, want 401", code)
	}
	code, body := get(token)
	if code == http.StatusUnauthorized || code == http.StatusNotFound || body == nil {
		t.Fatalf("with the token: status %d, body %v: the agent API is not served", code, body)
	}
}

// A non-loopback agent address is refused at load.
func TestAgentLoopbackOnly(t *testing.T) {
	cfg := config.Default()
	cfg.Accounts = []config.Account{{Address: "alice@alpha.example", LinkKeyFile: "k"}}
	cfg.Directory.Authorities = []string{"d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"}
	cfg.Agent.ListenAddress = "0.0.0.0:2580"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "[agent] listen_address") {
		t.Fatalf("validate: %v, want the [agent] listen_address refused", err)
	}
}
