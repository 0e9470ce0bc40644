package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/version"
)

func TestRunArgs(t *testing.T) {
	tests := []struct {
		args      []string
		code      int
		stdoutHas string
	}{
		{args: []string{"--version"}, code: 0, stdoutHas: "mailproxy " + version.Version + "\n"},
		{args: []string{"--help"}, code: 0, stdoutHas: "mailproxy init --config FILE"},
		{args: []string{"status", "-h"}, code: 0, stdoutHas: "mailproxy status"},
		{args: nil, code: 2},
		{args: []string{"run"}, code: 2},
		{args: []string{"--config", "x.toml", "extra"}, code: 2},
		{args: []string{"run", "--config", "x.toml", "--json"}, code: 2},
		{args: []string{"--config", filepath.Join(t.TempDir(), "missing.toml")}, code: 1},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.stdoutHas) {
			t.Errorf("run(%q) stdout %q does not contain %q", tt.args, stdout.String(), tt.stdoutHas)
		}
		if tt.code != 0 && stderr.Len() == 0 {
			t.Errorf("run(%q) failed with code %d but explained nothing on stderr", tt.args, tt.code)
		}
	}
}

// init creates a key once, prints the registration line, and prints the same key again.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailproxy.toml")
	text := `version = 1
[directory]
urls = ["http://127.0.0.1:7000"]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
[[accounts]]
address = "alice@alpha.example"
link_key_file = "alice.key"
`
	os.WriteFile(cfg, []byte(text), 0o600)
	var out1, out2, stderr bytes.Buffer
	if code := run([]string{"init", "--config", cfg}, &out1, &stderr); code != 0 {
		t.Fatalf("init: %d %s", code, stderr.String())
	}
	k, err := keys.LoadLinkKey(filepath.Join(dir, "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	want := "mixctl user add alice --link-key " + k.Public().String() + "\n"
	if !strings.Contains(out1.String(), want) || !strings.Contains(out1.String(), "(created)") {
		t.Errorf("init printed %q, want a line %q", out1.String(), want)
	}
	if code := run([]string{"init", "--config", cfg, "--account", "alice@alpha.example"}, &out2, &stderr); code != 0 {
		t.Fatalf("second init: %d %s", code, stderr.String())
	}
	if !strings.Contains(out2.String(), want) || !strings.Contains(out2.String(), "(existing)") {
		t.Errorf("second init printed %q", out2.String())
	}
	if code := run([]string{"init", "--config", cfg, "--account", "bob@alpha.example"}, &out2, &stderr); code != 1 {
		t.Errorf("init of an unknown account: %d", code)
	}
}

// init creates the local IMAP password once (0600) and prints it with the user names;
// imap-password prints it again; without the local mailbox there is none.
func TestIMAPPassword(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailproxy.toml")
	text := `version = 1
data_dir = "data"
[directory]
urls = ["http://127.0.0.1:7000"]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
[[accounts]]
address = "alice@alpha.example"
link_key_file = "alice.key"
`
	os.WriteFile(cfg, []byte(text), 0o600)
	var out1, out2, stderr bytes.Buffer
	if code := run([]string{"init", "--config", cfg}, &out1, &stderr); code != 0 {
		t.Fatalf("init: %d %s", code, stderr.String())
	}
	file := filepath.Join(dir, "data", "imap-password")
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", fi, err)
	}
	raw, _ := os.ReadFile(file)
	pw := strings.TrimSpace(string(raw))
	if len(pw) != 24 {
		t.Fatalf("password %q: want 24 characters", pw)
	}
	for _, want := range []string{"IMAP on 127.0.0.1:1143", "account alice@alpha.example: user alice\n", "password " + pw + "\n", ", created)"} {
		if !strings.Contains(out1.String(), want) {
			t.Errorf("init printed %q, want %q in it", out1.String(), want)
		}
	}
	if code := run([]string{"imap-password", "--config", cfg}, &out2, &stderr); code != 0 {
		t.Fatalf("imap-password: %d %s", code, stderr.String())
	}
	if !strings.Contains(out2.String(), "password "+pw+"\n") || !strings.Contains(out2.String(), ", existing)") {
		t.Errorf("imap-password printed %q", out2.String())
	}
	os.WriteFile(cfg, []byte(text+"[mailbox]\nread_via_link = false\n"), 0o600)
	stderr.Reset()
	if code := run([]string{"imap-password", "--config", cfg}, &out2, &stderr); code != 1 || !strings.Contains(stderr.String(), "read_via_link = false") {
		t.Errorf("imap-password without a local mailbox: %d %q", code, stderr.String())
	}
}
