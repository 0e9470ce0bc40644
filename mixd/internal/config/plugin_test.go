package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The example provider's [[plugin]] section loads with its values.
func TestExamplePlugin(t *testing.T) {
	c, err := Load("../../../configs/mixd-provider.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != 1 {
		t.Fatalf("%d plugins, want the example's one", len(c.Plugins))
	}
	p := c.Plugins[0]
	if p.Name != "kvdrop" || len(p.Command) != 2 || p.Command[0] != "/usr/bin/python3" || p.MaxInFlight != 64 || p.Timeout != 10*time.Second || len(p.Env) != 1 {
		t.Fatalf("example plugin %+v", p)
	}
	if c.PluginDir("kvdrop") != filepath.Join(c.DataDir, "plugins", "kvdrop") {
		t.Fatalf("plugin dir %s", c.PluginDir("kvdrop"))
	}
}

const providerBase = `version = 1
role = "provider"
data_dir = "d"
[directory]
authorities = ["d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"]
[provider]
domains = ["a.example"]
`

func TestPluginDefaultsAndPaths(t *testing.T) {
	c, err := load(t, providerBase+"[[plugin]]\nname = \"kv\"\ncommand = [\"plugins/kv.py\", \"--x\"]\n[[plugin]]\nname = \"other\"\ncommand = [\"python3\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Plugins[0]
	if !filepath.IsAbs(p.Command[0]) || p.Command[1] != "--x" || p.MaxInFlight != 64 || p.Timeout != 10*time.Second {
		t.Fatalf("defaults not applied: %+v", p)
	}
	if c, err := load(t, providerBase+"[[plugin]]\nname = \"kv\"\nsocket = \"run/kv.sock\"\n"); err != nil || !filepath.IsAbs(c.Plugins[0].Socket) {
		t.Fatalf("socket plugin: %v", err)
	}
	if c.Plugins[1].Command[0] != "python3" {
		t.Fatalf("a program name without / was changed: %q", c.Plugins[1].Command[0])
	}
}

func TestPluginRefusals(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\nbogus = 1\n", "bogus"},
		{providerBase + "[[plugin]]\nname = \"Kv\"\ncommand = [\"x\"]\n", "name"},
		{providerBase + "[[plugin]]\nname = \"mailbox\"\ncommand = [\"x\"]\n", "built-in"},
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\n[[plugin]]\nname = \"kv\"\ncommand = [\"y\"]\n", "taken"},
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = []\n", "either command"},
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\nsocket = \"/run/kv.sock\"\n", "not both"},
		{providerBase + "[[plugin]]\nname = \"kv\"\nsocket = \"/" + strings.Repeat("s", 107) + "\"\n", "socket path"},
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\nenv = [\"NOEQUALS\"]\n", "KEY=VALUE"},
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\nmax_in_flight = 70000\n", "max_in_flight"},
		{providerBase + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\ntimeout = \"1h\"\n", "timeout"},
		{base + "[[plugin]]\nname = \"kv\"\ncommand = [\"x\"]\n", "providers"},
	} {
		_, err := load(t, tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %q", tc.text, err, tc.want)
		}
	}
}
