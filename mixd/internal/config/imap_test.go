package config

import (
	"strings"
	"testing"
	"time"
)

// TestIMAPSection: the [imap] limits have defaults and bounds, and insecure_auth (clear-text
// passwords) is refused with a listener that is not on loopback (issue 13, finding 8: it was
// accepted with 0.0.0.0).
func TestIMAPSection(t *testing.T) {
	c, err := load(t, provider+"[imap]\nlisten_address = \"0.0.0.0:143\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.MaxConnections != 1000 || c.IMAP.MaxConnectionsPerIP != 20 || c.IMAP.LoginTimeout != time.Minute {
		t.Errorf("[imap] defaults: %+v", c.IMAP)
	}
	c, err = load(t, provider+"[imap]\nlisten_address = \"127.0.0.1:1143\"\ninsecure_auth = true\nmax_connections_per_ip = 3\nlogin_timeout = \"5s\"\n")
	if err != nil {
		t.Fatalf("insecure_auth on loopback: %v", err)
	}
	if !c.IMAP.InsecureAuth || c.IMAP.MaxConnectionsPerIP != 3 || c.IMAP.LoginTimeout != 5*time.Second {
		t.Errorf("[imap] settings not read: %+v", c.IMAP)
	}
	for _, tc := range []struct{ imap, want string }{
		{"listen_address = \"0.0.0.0:143\"\ninsecure_auth = true\n", "[imap] insecure_auth"},
		{"listen_address = \"127.0.0.1:143\"\ntls_listen_address = \"[::]:993\"\ninsecure_auth = true\n", "[imap] insecure_auth"},
		{"listen_address = \"mail.example:143\"\ninsecure_auth = true\n", "[imap] insecure_auth"},
		{"max_connections = 0\n", "[imap] max_connections"},
		{"max_connections_per_ip = 0\n", "[imap] max_connections_per_ip"},
		{"max_connections = 10\nmax_connections_per_ip = 11\n", "[imap] max_connections_per_ip"},
		{"login_timeout = \"0s\"\n", "[imap] login_timeout"},
		{"login_timeout = \"2h\"\n", "[imap] login_timeout"},
	} {
		text := provider + "[imap]\n" + tc.imap
		if _, err := load(t, text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("[imap] %q: error %v, want it to mention %q", tc.imap, err, tc.want)
		}
	}
}
