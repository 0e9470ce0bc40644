package main

import (
	"encoding/xml"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
)

// The Thunderbird autoconfig file is well-formed and sends outgoing mail to mailproxy's default
// SMTP address, without TLS or authentication, and reads mail over IMAP with STARTTLS.
func TestThunderbirdAutoconfig(t *testing.T) {
	b, err := os.ReadFile("../contrib/thunderbird/config-v1.1.xml")
	if err != nil {
		t.Fatal(err)
	}
	type server struct {
		Type     string `xml:"type,attr"`
		Hostname string `xml:"hostname"`
		Port     int    `xml:"port"`
		Socket   string `xml:"socketType"`
		Auth     string `xml:"authentication"`
		Username string `xml:"username"`
	}
	var c struct {
		XMLName  xml.Name `xml:"clientConfig"`
		Version  string   `xml:"version,attr"`
		Provider struct {
			Domain   string `xml:"domain"`
			Incoming server `xml:"incomingServer"`
			Outgoing server `xml:"outgoingServer"`
		} `xml:"emailProvider"`
	}
	if err := xml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(config.Default().SMTP.ListenAddress)
	out, in := c.Provider.Outgoing, c.Provider.Incoming
	if c.Version != "1.1" || c.Provider.Domain == "" {
		t.Errorf("clientConfig %q domain %q", c.Version, c.Provider.Domain)
	}
	if out.Type != "smtp" || out.Hostname != host || strconv.Itoa(out.Port) != port || out.Socket != "plain" || out.Auth != "none" {
		t.Errorf("outgoing server %+v, want mailproxy at %s:%s without TLS or authentication", out, host, port)
	}
	if in.Type != "imap" || in.Socket != "STARTTLS" || in.Username != "%EMAILLOCALPART%" || in.Port == 0 {
		t.Errorf("incoming server %+v", in)
	}
}
