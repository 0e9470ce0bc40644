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

func TestRunUsage(t *testing.T) {
	help := []string{"--config FILE", "--gen-key", "X-PANORAMIX-Mixable"}
	tests := []struct {
		args      []string
		code      int
		stdoutHas []string // empty: stdout must be empty
		stderrHas string
	}{
		{args: []string{"--version"}, code: 0, stdoutHas: []string{"postfix-filter " + version.Version + "\n"}},
		{args: []string{"--help"}, code: 0, stdoutHas: help},
		{args: []string{"-h"}, code: 0, stdoutHas: help},
		{args: nil, code: 2, stderrHas: "--config FILE is required"},
		{args: []string{"--listen", "127.0.0.1:0"}, code: 2, stderrHas: "--help"},
		{args: []string{"serve"}, code: 2, stderrHas: "unexpected argument"},
		{args: []string{"--config", "/nonexistent/pf.toml"}, code: 1, stderrHas: "/nonexistent/pf.toml"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tt.args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.code, stderr.String())
		}
		if len(tt.stdoutHas) == 0 && stdout.Len() != 0 {
			t.Errorf("run(%q) wrote %q to stdout, want nothing", tt.args, stdout.String())
		}
		for _, s := range tt.stdoutHas {
			if !strings.Contains(stdout.String(), s) {
				t.Errorf("run(%q) stdout %q does not contain %q", tt.args, stdout.String(), s)
			}
		}
		if !strings.Contains(stderr.String(), tt.stderrHas) {
			t.Errorf("run(%q) stderr %q does not contain %q", tt.args, stderr.String(), tt.stderrHas)
		}
	}
}

func TestGenKeyAndPrintKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pf.toml")
	os.WriteFile(cfg, []byte("version = 1\n[account]\ndomain = \"alpha.example\"\nlink_key_file = \"keys/link.key\"\n"+
		"[directory]\nauthorities = [\"d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645\"]\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"--config", cfg, "--gen-key"}, &out, &errb); code != 0 {
		t.Fatalf("--gen-key: %d %s", code, errb.String())
	}
	pub, err := keys.ParseLinkPublicKey(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("--gen-key printed %q: %v", out.String(), err)
	}
	k, err := keys.LoadLinkKey(filepath.Join(dir, "keys", "link.key"))
	if err != nil || k.Public() != pub {
		t.Fatalf("key file does not hold the printed key: %v", err)
	}
	out.Reset()
	if code := run([]string{"--config", cfg, "--print-key"}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != pub.String() {
		t.Fatalf("--print-key: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"--config", cfg, "--gen-key"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists") {
		t.Fatalf("--gen-key over an existing key: %d %q", code, errb.String())
	}
}
