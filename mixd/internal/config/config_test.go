package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every mixd example under configs/ must load.
func TestExampleConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../../configs/mixd*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no mixd example configs found: %v", err)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

const base = `version = 1
role = "mix"
data_dir = "d"
[directory]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
`

func load(t *testing.T, text string) (*Config, error) {
	p := filepath.Join(t.TempDir(), "mixd.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestDefaultsAndRelativePaths(t *testing.T) {
	c, err := load(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.DataDir) || c.Geometry().PayloadSize != 16384 || c.Directory.Threshold != 1 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if want := filepath.Join(c.DataDir, "admin.token"); c.AdminTokenPath() != want {
		t.Errorf("admin token file %q, want %q by default", c.AdminTokenPath(), want)
	}
	if c, err = load(t, "admin_token_file = \"tok\"\n"+base); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.AdminTokenPath()) || filepath.Base(c.AdminTokenPath()) != "tok" {
		t.Errorf("relative admin_token_file: %q", c.AdminTokenPath())
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{base + "bogus = 1\n", "bogus"},
		{strings.Replace(base, "version = 1", "version = 2", 1), "version"},
		{strings.Replace(base, `"mix"`, `"relay"`, 1), "role"},
		{base + "[provider]\ndomains = [\"a.example\"]\n", "domains"},
		{strings.Replace(base, `role = "mix"`, `role = "provider"`, 1), "domains"},
		{strings.Replace(base, "d3953d", "x3953d", 1), "authorities[0]"},
		{base + "[sphinx]\nhops = 0\n", "[sphinx]"},
		{"admin_address = \"0.0.0.0:1\"\n" + base, "loopback"},
		{"addresses = [\"host:0\"]\n" + base, "addresses[0]"},
		{base + "threshold = 2\n", "threshold"},
	} {
		if _, err := load(t, tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want it to mention %q", tc.text, err, tc.want)
		}
	}
}

func TestEnvironmentOverride(t *testing.T) {
	t.Setenv("PANORAMIX_MIXD_LISTEN_ADDRESS", "127.0.0.1:4444")
	c, err := load(t, base)
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddress != "127.0.0.1:4444" {
		t.Fatalf("listen address %q", c.ListenAddress)
	}
}

const provider = `version = 1
role = "provider"
data_dir = "d"
[provider]
domains = ["a.example"]
[directory]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
`

func TestSurveySection(t *testing.T) {
	c, err := load(t, provider)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Survey.Enabled || c.Survey.Database != "sqlite" || c.SurveyPath() != filepath.Join(c.DataDir, "survey.db") {
		t.Fatalf("survey defaults: %+v %s", c.Survey, c.SurveyPath())
	}
	c, err = load(t, provider+"[survey]\ndsn = \"s.db\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.SurveyPath()) || filepath.Base(c.SurveyPath()) != "s.db" {
		t.Errorf("relative sqlite path: %s", c.SurveyPath())
	}
	c, err = load(t, provider+"[survey]\ndatabase = \"postgres\"\ndsn = \"host=/tmp dbname=s\"\n")
	if err != nil || c.Survey.DSN != "host=/tmp dbname=s" {
		t.Fatalf("postgres: %+v %v", c, err)
	}
	for _, tc := range []struct{ text, want string }{
		{provider + "[survey]\ndatabase = \"mysql\"\n", "[survey] database"},
		{provider + "[survey]\ndatabase = \"postgres\"\n", "[survey] dsn"},
		{provider + "[survey]\ndsn = \"a.db?mode=ro\"\n", "[survey] dsn"},
		{provider + "[survey]\nbogus = 1\n", "bogus"},
	} {
		if _, err := load(t, tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want it to mention %q", tc.text, err, tc.want)
		}
	}
}
