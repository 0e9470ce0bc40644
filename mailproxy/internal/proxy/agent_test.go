package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
)

// [agent] listen_address starts the agent API beside SMTP, behind the token mailproxy makes in
// the data directory: a program with the token is answered by the API (here: no consensus yet,
// the directory being a closed port), one without it is refused.
func TestAgentWired(t *testing.T) {
	px, cfg := newTestProxyWith(t, "[agent]\nlisten_address = \"127.0.0.1:1\"\n")
	dir := filepath.Dir(cfg.DataDir)
	if want := filepath.Join(cfg.DataDir, "agent.token"); cfg.Agent.TokenFile != want {
		t.Fatalf("token file %q, want %q", cfg.Agent.TokenFile, want)
	}
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
