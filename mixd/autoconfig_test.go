package main

import (
	"crypto/rand"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// The handler serves the document at both of Thunderbird's paths, for the provider's domains,
// and refuses an address of another domain and other paths.
func TestAutoconfigHandler(t *testing.T) {
	s := config.AutoconfigServers{IMAPHost: "imap.alpha.example", IMAPPort: 143, IMAPSocket: "STARTTLS", SMTPHost: "127.0.0.1", SMTPPort: 2525}
	h, err := autoconfigHandler([]string{"alpha.example", "alpha2.example"}, s)
	if err != nil {
		t.Fatal(err)
	}
	get := func(target string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		b, _ := io.ReadAll(w.Result().Body)
		return w.Code, string(b)
	}
	for _, p := range []string{"/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml?emailaddress=alice%40alpha2.example"} {
		code, body := get(p)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		var c clientConfig
		if err := xml.Unmarshal([]byte(body), &c); err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		in, out := c.Provider.Incoming, c.Provider.Outgoing
		if c.Version != "1.1" || c.Provider.ID != "alpha.example" || strings.Join(c.Provider.Domains, ",") != "alpha.example,alpha2.example" ||
			in.Hostname != "imap.alpha.example" || in.Port != 143 || in.SocketType != "STARTTLS" || in.Username != "%EMAILLOCALPART%" ||
			out.Hostname != "127.0.0.1" || out.Port != 2525 || out.SocketType != "plain" || out.Authentication != "none" {
			t.Errorf("GET %s:\n%s", p, body)
		}
	}
	for _, p := range []string{"/mail/config-v1.1.xml?emailaddress=alice%40beta.example", "/mail/config-v1.1.xml?emailaddress=alice", "/admin/v1/users"} {
		if code, _ := get(p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

// [autoconfig] resolves against [imap] and refuses what would mislead a client: a wildcard IMAP
// host, an IMAP socket in clear, an SMTP server that is not the user's own mailproxy.
func TestAutoconfigServers(t *testing.T) {
	base := func() *config.Config {
		c := config.Default()
		c.Role, c.Provider.Domains = "provider", []string{"alpha.example"}
		k, _ := keys.GenerateIdentityKey(rand.Reader)
		c.Directory.Authorities = []string{k.Public().String()}
		c.IMAP.ListenAddress = "127.0.0.1:1143"
		c.Autoconfig = config.Autoconfig{ListenAddress: "127.0.0.1:8080", SMTPAddress: config.DefaultAutoconfigSMTP}
		return &c
	}
	s, err := base().AutoconfigServers()
	if err != nil || s != (config.AutoconfigServers{IMAPHost: "127.0.0.1", IMAPPort: 1143, IMAPSocket: "STARTTLS", SMTPHost: "127.0.0.1", SMTPPort: 2525}) {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	c := base()
	c.IMAP.ListenAddress, c.IMAP.TLSListenAddress = "", "127.0.0.1:1993"
	if s, err := c.AutoconfigServers(); err != nil || s.IMAPPort != 1993 || s.IMAPSocket != "SSL" {
		t.Errorf("implicit TLS listener: %+v %v", s, err)
	}
	for name, edit := range map[string]func(*config.Config){
		"wildcard IMAP host": func(c *config.Config) { c.IMAP.ListenAddress = "0.0.0.0:143" },
		"IMAP in clear":      func(c *config.Config) { c.Autoconfig.IMAPSocket = "plain" },
		"remote SMTP":        func(c *config.Config) { c.Autoconfig.SMTPAddress = "smtp.alpha.example:25" },
		"on a mix":           func(c *config.Config) { c.Role, c.Provider.Domains, c.IMAP.ListenAddress = "mix", nil, "" },
	} {
		c := base()
		edit(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "[autoconfig]") {
			t.Errorf("%s: %v, want an [autoconfig] error", name, err)
		}
	}
	c = base()
	c.IMAP.ListenAddress = "0.0.0.0:143"
	c.Autoconfig.IMAPHost = "imap.alpha.example"
	if s, err := c.AutoconfigServers(); err != nil || s.IMAPHost != "imap.alpha.example" || s.IMAPPort != 143 {
		t.Errorf("operator's imap_host: %+v %v", s, err)
	}
}
