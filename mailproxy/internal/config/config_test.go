package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func repoConfigs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../../configs/mailproxy*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs/mailproxy*.toml found (%v)", err)
	}
	return files
}

// Every example under configs/ loads.
func TestExamplesLoad(t *testing.T) {
	for _, f := range repoConfigs(t) {
		c, err := Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(c.Accounts) == 0 || c.SMTP.ListenAddress != "127.0.0.1:2525" || !c.Mailbox.ReadViaLink || c.IMAP.ListenAddress != "127.0.0.1:1143" {
			t.Errorf("%s: accounts %d, smtp %q", f, len(c.Accounts), c.SMTP.ListenAddress)
		}
		if !filepath.IsAbs(c.Accounts[0].LinkKeyFile) || !filepath.IsAbs(c.DataDir) || c.StatusSocket != filepath.Join(c.DataDir, "status.sock") {
			t.Errorf("%s: paths not resolved: %q %q %q", f, c.Accounts[0].LinkKeyFile, c.DataDir, c.StatusSocket)
		}
	}
}

const authority = "d3953d7183c8c86f5a16814285a67688c6dd8937e2671fde387a918763555645"

func minimal() string {
	return `version = 1
[directory]
urls = ["http://127.0.0.1:7000"]
authorities = ["` + authority + `"]
[[accounts]]
address = "alice@alpha.example"
link_key_file = "alice.key"
`
}

func load(t *testing.T, text string) (*Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mailproxy.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestDefaults(t *testing.T) {
	c, err := load(t, minimal())
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if c.SMTP != d.SMTP || c.LogLevel != "info" || c.Directory.EpochLength != d.Directory.EpochLength || c.StatusRetention != 24*time.Hour || c.QueueLifetime != 5*24*time.Hour {
		t.Errorf("defaults not applied: %+v", c)
	}
	if !c.Mailbox.ReadViaLink || c.IMAP.ListenAddress != "127.0.0.1:1143" {
		t.Errorf("local mailbox defaults not applied: %+v %+v", c.Mailbox, c.IMAP)
	}
	if c.PasswordFile() != filepath.Join(c.DataDir, "imap-password") || c.MailStore() != filepath.Join(c.DataDir, "mail.db") {
		t.Errorf("local mailbox files %q %q", c.PasswordFile(), c.MailStore())
	}
	a := c.Accounts[0]
	if a.User() != "alice" || a.Domain() != "alpha.example" {
		t.Errorf("account %q: user %q domain %q", a.Address, a.User(), a.Domain())
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown top key", minimal() + "colour = 1\n", "colour"},
		{"unknown nested key", strings.Replace(minimal(), "[directory]\n", "[directory]\nurl = 1\n", 1), "url"},
		{"unknown account key", minimal() + "password = \"x\"\n", "password"},
		{"version", strings.Replace(minimal(), "version = 1", "version = 2", 1), "version = 2"},
		{"not loopback", minimal() + "[smtp]\nlisten_address = \"0.0.0.0:2525\"\n", "listen_address"},
		{"size too big", minimal() + "[smtp]\nmax_message_size = 1000000000\n", "max_message_size"},
		{"size too small", minimal() + "[smtp]\nmax_message_size = 10\n", "max_message_size"},
		{"recipients", minimal() + "[smtp]\nmax_recipients = 100000\n", "max_recipients"},
		{"no accounts", strings.Split(minimal(), "[[accounts]]")[0], "[[accounts]]"},
		{"bad address", strings.Replace(minimal(), "alice@alpha.example", "Alice <alice@alpha.example>", 1), "accounts[0]: address"},
		{"uppercase address", strings.Replace(minimal(), "alice@alpha.example", "Alice@alpha.example", 1), "lowercase"},
		{"twice", minimal() + "[[accounts]]\naddress = \"alice@alpha.example\"\nlink_key_file = \"b\"\n", "twice"},
		{"no key file", strings.Replace(minimal(), "link_key_file = \"alice.key\"\n", "", 1), "link_key_file"},
		{"authority", strings.Replace(minimal(), authority, "zz", 1), "authorities[0]"},
		{"threshold", minimal() + "[directory]\n", ""}, // duplicate table: a TOML error
		{"smarthost", minimal() + "[smarthost]\naddress = \"nohost\"\n", "[smarthost] address"},
		{"encrypt", minimal() + "encrypt = \"always\"\n", "accounts[0]: encrypt"},
		{"retrieve batch over 16", minimal() + "retrieve_batch = 17\n", "accounts[0]: retrieve_batch"},
		{"negative retrieve batch", minimal() + "retrieve_batch = -1\n", "accounts[0]: retrieve_batch"},
		{"log level", "log_level = \"loud\"\n" + minimal(), "log_level"},
		{"queue lifetime too long", "queue_lifetime = \"1000h\"\n" + minimal(), "queue_lifetime"},
		{"queue lifetime too short", "queue_lifetime = \"1s\"\n" + minimal(), "queue_lifetime"},
		{"imap not loopback", minimal() + "[imap]\nlisten_address = \"192.0.2.1:1143\"\n", "[imap] listen_address"},
		{"imap no port", minimal() + "[imap]\nlisten_address = \"127.0.0.1\"\n", "[imap] listen_address"},
		{"unknown mailbox key", minimal() + "[mailbox]\nread_via_imap = true\n", "read_via_imap"},
		{"two local users of one name", minimal() + "[[accounts]]\naddress = \"alice@beta.example\"\nlink_key_file = \"b\"\n", "local IMAP user \"alice\""},
	}
	for _, tt := range tests {
		_, err := load(t, tt.text)
		if err == nil {
			t.Errorf("%s: loaded", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not name %q", tt.name, err, tt.want)
		}
	}
}

func TestTooManyAccounts(t *testing.T) {
	text := strings.Split(minimal(), "[[accounts]]")[0]
	for i := range MaxAccounts + 1 {
		text += "[[accounts]]\naddress = \"u" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "@alpha.example\"\nlink_key_file = \"k\"\n"
	}
	if _, err := load(t, text); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("over-limit accounts: %v", err)
	}
}

func TestEnvOverride(t *testing.T) {
	t.Setenv("PANORAMIX_MAILPROXY_SMTP_LISTEN_ADDRESS", "127.0.0.1:2600")
	t.Setenv("PANORAMIX_MAILPROXY_LOG_LEVEL", "debug")
	c, err := load(t, minimal())
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.ListenAddress != "127.0.0.1:2600" || c.LogLevel != "debug" {
		t.Errorf("env not applied: %q %q", c.SMTP.ListenAddress, c.LogLevel)
	}
}

// Reading at the provider, the IMAP address is not used (not checked), and two accounts may
// share a user name at different providers.
func TestReadAtProvider(t *testing.T) {
	text := minimal() + "[[accounts]]\naddress = \"alice@beta.example\"\nlink_key_file = \"b\"\n" +
		"[mailbox]\nread_via_link = false\n[imap]\nlisten_address = \"192.0.2.1:1143\"\n"
	c, err := load(t, text)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mailbox.ReadViaLink {
		t.Fatal("read_via_link = false not applied")
	}
}
