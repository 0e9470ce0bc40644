package boot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLI(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		ok             bool
		stdout, stderr string
	}{
		{nil, 2, false, "", "--config FILE is required (see x.toml); run 'prog --help'"},
		{[]string{"--help"}, 0, false, "USAGE", ""},
		{[]string{"--version"}, 0, false, "prog ", ""},
		{[]string{"--config", "a.toml", "extra"}, 2, false, "", `unexpected argument "extra"`},
		{[]string{"--bogus"}, 2, false, "", "flag provided but not defined: -bogus"},
		{[]string{"--config", "a.toml", "--level", "3"}, 0, true, "", ""},
	} {
		cli := NewCLI("prog", "", "USAGE")
		cli.ConfigHint = " (see x.toml)"
		level := cli.Flags.Int("level", 0, "")
		var out, errb bytes.Buffer
		path, code, ok := cli.Parse(tc.args, &out, &errb)
		if code != tc.code || ok != tc.ok || !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("%q: code %d ok %v stdout %q stderr %q", tc.args, code, ok, out.String(), errb.String())
		}
		if ok && (path != "a.toml" || *level != 3) {
			t.Errorf("%q: config %q level %d", tc.args, path, *level)
		}
	}
}

type testConfig struct {
	Name    string `mapstructure:"name"`
	DataDir string `mapstructure:"data_dir"`
	Section struct {
		Count int `mapstructure:"count"`
	} `mapstructure:"section"`
}

func TestLoadTOML(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defaults := map[string]any{"name": "default", "data_dir": "data", "section.count": 7}

	write("name = \"file\"\n")
	var c testConfig
	if err := LoadTOML(path, "BOOTTEST", defaults, &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "file" || c.DataDir != "data" || c.Section.Count != 7 {
		t.Fatalf("defaults and file: %+v", c)
	}

	t.Setenv("BOOTTEST_SECTION_COUNT", "9")
	c = testConfig{}
	if err := LoadTOML(path, "BOOTTEST", defaults, &c); err != nil {
		t.Fatal(err)
	}
	if c.Section.Count != 9 {
		t.Fatalf("environment override: %+v", c)
	}

	write("name = \"file\"\nnmae = \"typo\"\n")
	if err := LoadTOML(path, "BOOTTEST", defaults, &testConfig{}); err == nil || !strings.Contains(err.Error(), "nmae") {
		t.Fatalf("unknown key: %v", err)
	}
	write("name = \n")
	if err := LoadTOML(path, "BOOTTEST", defaults, &testConfig{}); err == nil {
		t.Fatal("malformed TOML accepted")
	}
	if err := LoadTOML(filepath.Join(dir, "missing.toml"), "BOOTTEST", defaults, &testConfig{}); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestResolvePaths(t *testing.T) {
	rel, abs, empty := "data", "/var/lib/x", ""
	if err := ResolvePaths("/etc/panoramix/c.toml", &rel, &abs, &empty); err != nil {
		t.Fatal(err)
	}
	if rel != "/etc/panoramix/data" || abs != "/var/lib/x" || empty != "" {
		t.Fatalf("got %q %q %q", rel, abs, empty)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1:1", "[::1]:2", "localhost:3", "127.8.9.10:4"} {
		if err := CheckLoopback(a, "why"); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"0.0.0.0:1", "192.0.2.1:2", "example.org:3", "[::]:4", "127.0.0.1"} {
		err := CheckLoopback(a, "no authentication")
		if err == nil {
			t.Errorf("%s accepted", a)
		} else if strings.Contains(a, ":") && !strings.HasSuffix(a, "127.0.0.1") && !strings.Contains(err.Error(), "no authentication") {
			t.Errorf("%s: %v does not say why", a, err)
		}
	}
}

func TestParseLogLevel(t *testing.T) {
	for _, s := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, err := ParseLogLevel(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseLogLevel("loud"); err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
		t.Errorf("loud: %v", err)
	}
}
