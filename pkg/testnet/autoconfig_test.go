package testnet

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientConfigDoc is Thunderbird's autoconfiguration format, clientConfig version 1.1, as the
// public format documentation describes it
// (https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type clientConfigDoc struct {
	XMLName   xml.Name `xml:"clientConfig"`
	Version   string   `xml:"version,attr"`
	Providers []struct {
		ID               string         `xml:"id,attr"`
		Domains          []string       `xml:"domain"`
		DisplayName      string         `xml:"displayName"`
		DisplayShortName string         `xml:"displayShortName"`
		Incoming         []configServer `xml:"incomingServer"`
		Outgoing         []configServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type configServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           string   `xml:"port"`
	SocketType     string   `xml:"socketType"`
	Authentication []string `xml:"authentication"`
	Username       string   `xml:"username"`
}

var placeholder = regexp.MustCompile(`%[A-Z]+%`)

// checkClientConfig applies the format's rules to a document fetched for an address of
// domain. The rules, from the format documentation:
//  1. the root is <clientConfig version="1.1">;
//  2. it holds one <emailProvider> with a non-empty id;
//  3. the provider lists its <domain>s, among them the one asked for;
//  4. <displayName> and <displayShortName> are present;
//  5. there is an <incomingServer> of type imap, pop3 or exchange and an <outgoingServer> of
//     type smtp;
//  6. each server has a <hostname>, a <port> from 1 to 65535 and a <socketType> of plain,
//     SSL or STARTTLS;
//  7. each server has at least one <authentication> from the documented set;
//  8. an incoming server names its <username>; a username or hostname uses no placeholder but
//     %EMAILADDRESS%, %EMAILLOCALPART% and %EMAILDOMAIN%;
//  9. a password is never sent over socketType plain (password-cleartext "is dangerous if SSL
//     isn't used", and Thunderbird refuses it).
func checkClientConfig(b []byte, domain string) error {
	var c clientConfigDoc
	if err := xml.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("rule 1: not a clientConfig document: %w", err)
	}
	if c.Version != "1.1" {
		return fmt.Errorf("rule 1: version %q, want 1.1", c.Version)
	}
	if len(c.Providers) != 1 || c.Providers[0].ID == "" {
		return fmt.Errorf("rule 2: %d emailProvider elements (want one, with an id)", len(c.Providers))
	}
	p := c.Providers[0]
	if !slices.Contains(p.Domains, domain) {
		return fmt.Errorf("rule 3: domains %v lack %s", p.Domains, domain)
	}
	if p.DisplayName == "" || p.DisplayShortName == "" {
		return errors.New("rule 4: displayName or displayShortName missing")
	}
	if len(p.Incoming) == 0 || len(p.Outgoing) == 0 {
		return errors.New("rule 5: no incomingServer or no outgoingServer")
	}
	auths := []string{"password-cleartext", "password-encrypted", "NTLM", "GSSAPI", "client-IP-address", "TLS-client-cert", "OAuth2", "none"}
	known := []string{"%EMAILADDRESS%", "%EMAILLOCALPART%", "%EMAILDOMAIN%"}
	for i, s := range append(slices.Clone(p.Incoming), p.Outgoing...) {
		incoming := i < len(p.Incoming)
		if incoming && !slices.Contains([]string{"imap", "pop3", "exchange"}, s.Type) || !incoming && s.Type != "smtp" {
			return fmt.Errorf("rule 5: server type %q", s.Type)
		}
		port, err := strconv.Atoi(s.Port)
		if s.Hostname == "" || err != nil || port < 1 || port > 65535 || !slices.Contains([]string{"plain", "SSL", "STARTTLS"}, s.SocketType) {
			return fmt.Errorf("rule 6: server %+v", s)
		}
		if len(s.Authentication) == 0 {
			return fmt.Errorf("rule 7: server %s:%s names no authentication", s.Hostname, s.Port)
		}
		for _, a := range s.Authentication {
			if !slices.Contains(auths, a) {
				return fmt.Errorf("rule 7: authentication %q", a)
			}
			if strings.HasPrefix(a, "password-") && s.SocketType == "plain" {
				return fmt.Errorf("rule 9: %s over socketType plain at %s:%s", a, s.Hostname, s.Port)
			}
		}
		if incoming && s.Username == "" {
			return fmt.Errorf("rule 8: incoming server %s:%s has no username", s.Hostname, s.Port)
		}
		for _, ph := range placeholder.FindAllString(s.Username+s.Hostname, -1) {
			if !slices.Contains(known, ph) {
				return fmt.Errorf("rule 8: placeholder %s", ph)
			}
		}
	}
	return nil
}

// The rules catch what they are for: a document a provider could get wrong is refused.
func TestCheckClientConfigRefuses(t *testing.T) {
	good := `<clientConfig version="1.1"><emailProvider id="a.example"><domain>a.example</domain><displayName>A</displayName><displayShortName>A</displayShortName>
<incomingServer type="imap"><hostname>imap.a.example</hostname><port>143</port><socketType>STARTTLS</socketType><authentication>password-cleartext</authentication><username>%EMAILLOCALPART%</username></incomingServer>
<outgoingServer type="smtp"><hostname>127.0.0.1</hostname><port>2525</port><socketType>plain</socketType><authentication>none</authentication></outgoingServer></emailProvider></clientConfig>`
	if err := checkClientConfig([]byte(good), "a.example"); err != nil {
		t.Fatalf("good document: %v", err)
	}
	for rule, bad := range map[string]string{
		"rule 1": strings.Replace(good, `version="1.1"`, `version="1.0"`, 1),
		"rule 3": strings.Replace(good, "<domain>a.example</domain>", "<domain>b.example</domain>", 1),
		"rule 6": strings.Replace(good, "<port>143</port>", "<port>143000</port>", 1),
		"rule 7": strings.Replace(good, "<authentication>none</authentication>", "<authentication>plain</authentication>", 1),
		"rule 8": strings.Replace(good, "%EMAILLOCALPART%", "%USER%", 1),
		"rule 9": strings.Replace(good, "<socketType>STARTTLS</socketType>", "<socketType>plain</socketType>", 1),
	} {
		if err := checkClientConfig([]byte(bad), "a.example"); err == nil || !strings.HasPrefix(err.Error(), rule) {
			t.Errorf("%s: %v", rule, err)
		}
	}
}

// certCheckScript opens a TLS connection with Python's ssl to an IMAP server after STARTTLS,
// verifying its certificate against a CA file for a server name (a host name or an address).
const certCheckScript = `
import imaplib, ssl, sys
addr, port, name, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(addr, port)
m.host = name
m.starttls(ssl_context=ssl.create_default_context(cafile=ca))
m.logout()
`

// TestProviderCertificatesAndAutoconfig checks on a running network that each provider's IMAP
// certificate verifies with Python's ssl against the network's CA for its printed address and
// for its domain (and not for a name it does not hold), and that each provider serves a
// Thunderbird autoconfiguration document, at both of Thunderbird's paths, that passes the
// format's rules and whose servers are where the provider's IMAP server and its user's mailproxy
// listen: the document names a port, the test connects to it and reads that server's greeting.
func TestProviderCertificatesAndAutoconfig(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil && !testing.Short() {
		t.Fatal("python3 missing: scripts/install-test-deps.sh installs it")
	}
	n := startNet(t, 3*time.Second)
	script := filepath.Join(t.TempDir(), "cert.py")
	os.WriteFile(script, []byte(certCheckScript), 0o644)
	verify := func(addr, name string) error {
		host, port, _ := net.SplitHostPort(addr)
		if out, err := exec.Command("python3", script, host, port, name, n.CA.CertFile).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, nd := range n.Nodes {
		if nd.Role != "provider" {
			continue
		}
		host, _, _ := net.SplitHostPort(nd.IMAP)
		for _, name := range []string{host, nd.Domain, "imap." + nd.Domain} {
			if err := verify(nd.IMAP, name); err != nil {
				t.Errorf("%s: certificate for %s against %s: %v", nd.Name, name, n.CA.CertFile, err)
			}
		}
		if err := verify(nd.IMAP, "mail.example.org"); err == nil || !strings.Contains(err.Error(), "CERTIFICATE_VERIFY_FAILED") {
			t.Errorf("%s: certificate verified for a name it does not hold (%v)", nd.Name, err)
		}

		// The provider's user: her mailproxy listens where the document says.
		user := "u" + strings.Split(nd.Domain, ".")[0]
		if _, err := n.StartMailproxy(ctx, user+"@"+nd.Domain, "correct horse battery", MailproxyOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"} {
			url := "http://" + nd.Autoconfig + path + "?emailaddress=" + user + "%40" + nd.Domain
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
			}
			if err := checkClientConfig(b, nd.Domain); err != nil {
				t.Fatalf("GET %s: %v\n%s", url, err, b)
			}
			var c clientConfigDoc
			xml.Unmarshal(b, &c)
			in, out := c.Providers[0].Incoming[0], c.Providers[0].Outgoing[0]
			if got := net.JoinHostPort(in.Hostname, in.Port); got != nd.IMAP || in.SocketType != "STARTTLS" {
				t.Errorf("%s: incoming %s %s, provider's IMAP listens on %s (STARTTLS)", url, got, in.SocketType, nd.IMAP)
			}
			greeting(t, net.JoinHostPort(in.Hostname, in.Port), "* OK")
			if err := verify(net.JoinHostPort(in.Hostname, in.Port), in.Hostname); err != nil {
				t.Errorf("%s: the IMAP host it names does not verify: %v", url, err)
			}
			greeting(t, net.JoinHostPort(out.Hostname, out.Port), "220 ")
		}
		url := "http://" + nd.Autoconfig + "/mail/config-v1.1.xml?emailaddress=eve%40elsewhere.example"
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", url, resp.Status)
		}
	}
}

// greeting connects to addr and checks the server's first line starts with prefix.
func greeting(t *testing.T, addr, prefix string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("the document names %s, where nothing listens: %v", addr, err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) {
		t.Errorf("%s greets %q (%v), want %q", addr, line, err, prefix)
	}
}
