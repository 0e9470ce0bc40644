package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

// program returns the Debian path of an interpreter the examples are written for; outside CI a
// missing one skips the test with the command that installs it, under CI it fails.
func program(t *testing.T, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s missing (apt-get install %s)", path, pkg)
	}
	t.Skipf("%s missing: apt-get install %s", path, pkg)
	return ""
}

// The acceptance test of issue 18's examples, through the real binaries: beta's provider runs
// the kvdrop plugin (contrib/plugins/kvdrop.py); alice's engine serves the agent API; the
// Python example contrib/agent/kvclient.py PUTs a key and GETs it back (request, reply through
// the mixnet), GETs a missing key (the plugin's refusal, exit status 1), and the Node example
// contrib/agent/client.mjs lists the services, reads the same key (request, reply) and sends a
// payload to alice's own queue and receives it back (send, receive, acknowledge).
func TestExamples(t *testing.T) {
	python := program(t, "/usr/bin/python3", "python3")
	node := program(t, "/usr/bin/node", "nodejs")
	repo, err := testnet.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	plugin := fmt.Sprintf("[[plugin]]\nname = \"kvdrop\"\ncommand = [%q, %q]\ntimeout = \"5s\"\n", python, filepath.Join(repo, "contrib/plugins/kvdrop.py"))
	n, _ := realNet(t, plugin)
	// The agent API of the real mailproxy binary, as a user runs it ([agent] listen_address).
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
	mp, err := n.StartMailproxy(sctx, "alice@alpha.localhost", "alice password", testnet.MailproxyOptions{Agent: true})
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the agent API listening", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(mp.Agent, "http://"))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	env := append(os.Environ(), "PANORAMIX_AGENT_URL="+mp.Agent, "PANORAMIX_AGENT_TOKEN_FILE="+mp.AgentToken)
	run := func(wantCode int, argv ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		t.Logf("%s: exit %d, stdout %q, stderr %q", strings.Join(argv[1:], " "), code, stdout.String(), stderr.String())
		if code != wantCode {
			t.Fatalf("%v: exit status %d, want %d; stderr: %s", argv, code, wantCode, stderr.String())
		}
		if wantCode == 1 {
			return stderr.String()
		}
		return stdout.String()
	}
	kv := filepath.Join(repo, "contrib/agent/kvclient.py")
	mjs := filepath.Join(repo, "contrib/agent/client.mjs")

	// The plugin's service is in the consensus once beta's descriptor lists it.
	var svc servicesResponse
	waitUntil(t, "kvdrop in the consensus", func() bool {
		out := run(0, node, mjs, "services")
		return json.Unmarshal([]byte(out), &svc) == nil && slices.ContainsFunc(svc.Providers, func(p providerJSON) bool {
			return slices.Contains(p.Domains, "beta.localhost") && slices.Contains(p.Services, "kvdrop")
		})
	})

	value := "hello through the mixnet " + time.Now().Format(time.RFC3339Nano)
	if out := run(0, python, kv, "--domain", "beta.localhost", "--drop", "d1", "put", "greeting", value); out != "stored\n" {
		t.Fatalf("put: %q", out)
	}
	if out := run(0, python, kv, "--domain", "beta.localhost", "--drop", "d1", "get", "greeting"); out != value+"\n" {
		t.Fatalf("get: %q, want %q", out, value)
	}
	if out := run(1, python, kv, "--domain", "beta.localhost", "--drop", "d1", "get", "missing"); !strings.Contains(out, "no value for missing") {
		t.Fatalf("get of a missing key: %q", out)
	}
	// Another drop is another key space.
	if out := run(1, python, kv, "--domain", "beta.localhost", "--drop", "d2", "get", "greeting"); !strings.Contains(out, "no value for greeting") {
		t.Fatalf("get in another drop: %q", out)
	}

	var st struct {
		State      string `json:"state"`
		AnswerText string `json:"answer_text"`
	}
	out := run(0, node, mjs, "request", "--domain", "beta.localhost", "--service", "kvdrop", "--recipient", "d1", "--data", "GET greeting")
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != "delivered" || st.AnswerText != value {
		t.Fatalf("node request: %q (%v)", out, err)
	}
	var echo struct {
		ID   string `json:"id"`
		Data string `json:"data"`
	}
	out = run(0, node, mjs, "echo", "--data", "round trip through alice's queue")
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo.Data != "round trip through alice's queue" {
		t.Fatalf("node echo: %q (%v)", out, err)
	}
	// Acknowledged: nothing waits any more.
	token, err := adminauth.Load(mp.AgentToken)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", mp.Agent+"/agent/v1/received", nil)
	adminauth.SetHeaders(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var left receivedResponse
	if err := json.NewDecoder(resp.Body).Decode(&left); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("received: status %d, %v", resp.StatusCode, err)
	}
	if len(left.Messages) != 0 {
		t.Fatalf("%d received messages left after the acknowledgement", len(left.Messages))
	}
}
