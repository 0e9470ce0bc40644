package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/version"
)

func TestRunArguments(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--version"}, 0, "mixd " + version.Version + "\n", ""},
		{[]string{"--help"}, 0, "--config FILE", ""},
		{[]string{"-h"}, 0, "--print-identity", ""},
		{nil, 2, "", "--config FILE is required"},
		{[]string{"--bogus"}, 2, "", "--help"},
		{[]string{"serve"}, 2, "", "unexpected argument"},
		{[]string{"--config", "/nonexistent/mixd.toml"}, 1, "", "/nonexistent/mixd.toml"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q", tt.args, code, stdout.String(), stderr.String())
		}
	}
}

func TestPrintIdentityIsStable(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mixd.toml")
	os.WriteFile(cfg, []byte(`version = 1
role = "mix"
data_dir = "data"
[directory]
authorities = ["`+strings.Repeat("0", 63)+`1"]
`), 0o644)
	var out1, out2, errb bytes.Buffer
	if code := run([]string{"--config", cfg, "--print-identity"}, &out1, &errb); code != 1 || !strings.Contains(errb.String(), "authorities[0]") {
		// An invalid authority key must be refused with the key's path in the message.
		t.Fatalf("bad authority accepted: %d %q", code, errb.String())
	}
	id, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte(`version = 1
role = "mix"
data_dir = "data"
[directory]
authorities = ["`+id.Public().String()+`"]
`), 0o644)
	errb.Reset()
	if code := run([]string{"--config", cfg, "--print-identity"}, &out1, &errb); code != 0 {
		t.Fatalf("print-identity: %d %s", code, errb.String())
	}
	if code := run([]string{"--config", cfg, "--print-identity"}, &out2, &errb); code != 0 || out1.String() != out2.String() {
		t.Fatalf("identity changed between runs: %q %q", out1.String(), out2.String())
	}
	if _, err := keys.ParseIdentityPublicKey(strings.TrimSpace(out1.String())); err != nil {
		t.Fatalf("printed identity does not parse: %v", err)
	}
}

// TestAdminTokenFile: a provider with an admin API refuses to start when its admin token file
// is readable by group or others, before it listens anywhere.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	id, _ := keys.GenerateIdentityKey(rand.Reader)
	token := filepath.Join(dir, "admin.token")
	os.Mkdir(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(token, []byte(strings.Repeat("ab", 32)+"\n"), 0o604)
	cfg := filepath.Join(dir, "mixd.toml")
	os.WriteFile(cfg, []byte(`version = 1
role = "provider"
data_dir = "data"
listen_address = "127.0.0.1:1"
admin_address = "127.0.0.1:1"
admin_token_file = "admin.token"
[provider]
domains = ["alpha.example"]
[survey]
enabled = false
[directory]
authorities = ["`+id.Public().String()+`"]
`), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "chmod 600 "+token) {
		t.Errorf("start with a world-readable token file: %d %s", code, errb.String())
	}
}
