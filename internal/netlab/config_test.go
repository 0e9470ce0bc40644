package netlab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/testnet"
)

func TestEditTOML(t *testing.T) {
	src := "# comment\nversion = 1\ndata_dir = \"/var/lib/x\" # where\n\n[directory]\nurls = [\"http://a\"]\n\n[[plugin]]\nname = \"x\"\n\n[[accounts]]\naddress = \"a@b\"\n\n[[plugin]]\nname = \"y\"\n"
	out, err := editTOML(src, []setting{
		{Key: "data_dir", Value: q("/tmp/y")},
		{Key: "directory.urls", Value: qs("http://10.0.0.1:7000", "http://b")},
		{Key: "accounts.address", Value: q("bob@beta.example")},
		{Key: "mailbox.read_via_link", Value: "false", Add: true},
		{Key: "directory.threshold", Value: "1", Add: true},
		{Key: "plugin", Drop: true},
	}, "[extra]\nx = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# comment\nversion = 1\ndata_dir = \"/tmp/y\"\n\n[directory]\nthreshold = 1\nurls = [\"http://10.0.0.1:7000\", \"http://b\"]\n\n[[accounts]]\naddress = \"bob@beta.example\"\n\n\n[mailbox]\nread_via_link = false\n\n[extra]\nx = 1\n"
	if out != want {
		t.Fatalf("edited:\n%s\nwant:\n%s", out, want)
	}
	// A key the example lacks, or has twice, means the example changed: an error, not a guess.
	for _, bad := range []struct {
		src string
		set setting
	}{
		{src, setting{Key: "directory.missing", Value: "1"}},
		{src, setting{Key: "urls", Value: "1"}}, // top-level urls: there is none
		{"a = 1\na = 2\n", setting{Key: "a", Value: "3"}},
	} {
		if _, err := editTOML(bad.src, []setting{bad.set}, ""); err == nil {
			t.Errorf("editTOML(%q, %s): no error", bad.src, bad.set.Key)
		}
	}
}

// The lab writes every daemon's configuration from the examples in configs/ (the ones
// docs/operators starts from): each key it sets must be in them. The daemons then load the
// result strictly when a lab starts (TestMailAcrossNamespaces, as root).
func TestExamplesHaveTheLabsKeys(t *testing.T) {
	repo, err := testnet.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, auth, url := FastParameters(), strings.Repeat("ab", 32), "http://10.50.0.2:7000"
	for example, set := range map[string][]setting{
		"mixd-mix.toml":      mixdSettings("/tmp/mix", "10.50.0.11", "", url, auth, "", "", p, "info"),
		"mixd-provider.toml": mixdSettings("/tmp/prov", "10.50.0.21", "alpha.example", url, auth, "/tmp/c", "/tmp/k", p, "info"),
		"directory.toml":     directorySettings("/tmp/dir", []string{auth}, p, "info"),
		"mailproxy.toml":     mailproxySettings("/tmp/alice", "alice@alpha.example", url, auth, p, Options{LogLevel: "info"}),
	} {
		if err := writeConfig(repo, example, filepath.Join(dir, example), set, ""); err != nil {
			t.Error(err)
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, example))
		if !strings.Contains(string(b), "10.50.0.") && example != "directory.toml" {
			t.Errorf("%s: the lab's addresses are not in the written configuration", example)
		}
	}
}
