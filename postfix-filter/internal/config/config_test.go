package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const auth = "d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimal = "version = 1\n[account]\ndomain = \"alpha.example\"\n[directory]\nauthorities = [\"" + auth + "\"]\n"

// Every postfix-filter example under configs/ loads.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../../../configs/postfix-filter*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs/postfix-filter*.toml found (%v)", err)
	}
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if c.Account.Domain == "" || c.ListenAddress == "" {
			t.Errorf("%s: loaded without account domain or listen address", f)
		}
	}
}

func TestDefaultsAndRelativePaths(t *testing.T) {
	p := write(t, minimal)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.ListenAddress != d.ListenAddress || c.MaxMessageSize != d.MaxMessageSize || !c.RequireLink || c.Account.User != "postfix-filter" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.DataDir != filepath.Join(filepath.Dir(p), d.DataDir) || c.Account.LinkKeyFile != filepath.Join(filepath.Dir(p), "link.key") {
		t.Fatalf("relative paths not resolved against the file: %q %q", c.DataDir, c.Account.LinkKeyFile)
	}
}

func TestUnknownKeyNamed(t *testing.T) {
	for key, body := range map[string]string{
		"listen_adress": strings.Replace(minimal, "version = 1\n", "version = 1\nlisten_adress = \"x\"\n", 1),
		"user_name":     strings.Replace(minimal, "[account]\n", "[account]\nuser_name = \"x\"\n", 1),
	} {
		_, err := Load(write(t, body))
		if err == nil {
			t.Fatalf("unknown key %s accepted", key)
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %q", err, key)
		}
	}
}

func TestEnvOverride(t *testing.T) {
	t.Setenv("PANORAMIX_POSTFIX_FILTER_LISTEN_ADDRESS", "127.0.0.1:2999")
	t.Setenv("PANORAMIX_POSTFIX_FILTER_ACCOUNT_USER", "filter2")
	t.Setenv("PANORAMIX_POSTFIX_FILTER_REQUIRE_LINK", "false")
	t.Setenv("PANORAMIX_POSTFIX_FILTER_CONSENSUS_TIMEOUT", "3s")
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddress != "127.0.0.1:2999" || c.Account.User != "filter2" || c.RequireLink || c.ConsensusTimeout != 3*time.Second {
		t.Fatalf("environment not applied: %+v", c)
	}
}

func TestInvalid(t *testing.T) {
	tests := map[string]string{
		"version = 2":                 "version",
		"listen_address = \"nope\"":   "listen_address",
		"reinject_address = \"\"":     "reinject_address",
		"log_level = \"loud\"":        "log_level",
		"max_message_size = 10":       "max_message_size",
		"max_message_size = 2e9":      "max_message_size",
		"max_recipients = 0":          "max_recipients",
		"max_connections = 100000":    "max_connections",
		"timeout = \"10ms\"":          "timeout",
		"consensus_timeout = \"1ms\"": "consensus_timeout",
		"dedup_retention = \"1m\"":    "dedup_retention",
		"hostname = \"a b\"":          "hostname",
		"data_dir = \"\"":             "data_dir",
		"metrics_address = \"x\"":     "metrics_address",
	}
	for line, key := range tests {
		body := strings.Replace(minimal, "version = 1\n", line+"\n", 1)
		if !strings.HasPrefix(line, "version") {
			body = "version = 1\n" + line + "\n" + strings.TrimPrefix(minimal, "version = 1\n")
		}
		_, err := Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v, want one naming %s", line, err, key)
		}
	}
	for body, key := range map[string]string{
		"version = 1\n[account]\ndomain = \"Alpha.example\"\n[directory]\nauthorities = [\"" + auth + "\"]\n":                            "domain",
		"version = 1\n[account]\ndomain = \"a.example\"\nuser = \"\"\n[directory]\nauthorities = [\"" + auth + "\"]\n":                   "user",
		"version = 1\n[account]\ndomain = \"a.example\"\n[directory]\nauthorities = [\"zz\"]\n":                                          "authorities",
		"version = 1\n[account]\ndomain = \"a.example\"\n[directory]\nurls = [\"ftp://x\"]\nauthorities = [\"" + auth + "\"]\n":          "urls",
		"version = 1\n[account]\ndomain = \"a.example\"\n[directory]\nauthorities = [\"" + auth + "\"]\n[engine]\nretry_budget = -1\n":   "retry_budget",
		"version = 1\n[account]\ndomain = \"a.example\"\n[directory]\nauthorities = [\"" + auth + "\"]\n[engine]\nretrieve_batch = 17\n": "retrieve_batch",
	} {
		_, err := Load(write(t, body))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %v, want one naming %s", body, err, key)
		}
	}
}
