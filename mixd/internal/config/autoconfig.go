package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Autoconfig configures the provider's Thunderbird autoconfiguration: an HTTP listener that
// serves the clientConfig v1.1 document at /mail/config-v1.1.xml and
// /.well-known/autoconfig/mail/config-v1.1.xml, naming the provider's IMAP server for reading
// and the user's own mailproxy for sending. Thunderbird asks http://autoconfig.DOMAIN/ and
// https://DOMAIN/.well-known/..., so on a real provider this listener sits behind the web server
// (or a port forward) of those names; a local network serves it on a loopback port.
type Autoconfig struct {
	// ListenAddress serves it; empty disables it.
	ListenAddress string `mapstructure:"listen_address"`
	// IMAPHost is the IMAP server's host name in the document (default: the host of [imap]
	// listen_address, or tls_listen_address, when that is a specific address; required for the
	// LMTP back end, whose IMAP server is the provider's own, and for a wildcard listener).
	IMAPHost string `mapstructure:"imap_host"`
	// IMAPPort is its port (default: the port of that listener).
	IMAPPort int `mapstructure:"imap_port"`
	// IMAPSocket is "STARTTLS" or "SSL" (default: STARTTLS for [imap] listen_address, SSL for
	// tls_listen_address; STARTTLS for an imap_host of the operator's).
	IMAPSocket string `mapstructure:"imap_socket"`
	// SMTPAddress is where the user's mailproxy listens (mailproxy's default 127.0.0.1:2525).
	SMTPAddress string `mapstructure:"smtp_address"`
}

// DefaultAutoconfigSMTP is mailproxy's default [smtp] listen_address.
const DefaultAutoconfigSMTP = "127.0.0.1:2525"

// AutoconfigServers are the servers the autoconfiguration document names.
type AutoconfigServers struct {
	IMAPHost   string
	IMAPPort   int
	IMAPSocket string // "STARTTLS" or "SSL"
	SMTPHost   string
	SMTPPort   int
}

// AutoconfigServers resolves [autoconfig] against [imap]; errors name the key.
func (c *Config) AutoconfigServers() (AutoconfigServers, error) {
	a := c.Autoconfig
	s := AutoconfigServers{IMAPHost: a.IMAPHost, IMAPPort: a.IMAPPort, IMAPSocket: a.IMAPSocket}
	listener, socket := c.IMAP.ListenAddress, "STARTTLS"
	if listener == "" && c.IMAP.TLSListenAddress != "" {
		listener, socket = c.IMAP.TLSListenAddress, "SSL"
	}
	if listener != "" {
		host, port, err := net.SplitHostPort(listener)
		if err != nil {
			return s, fmt.Errorf("[imap]: %w", err)
		}
		if s.IMAPHost == "" {
			if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
				return s, fmt.Errorf("[autoconfig] imap_host is empty and [imap] listens on %q: name the host users reach IMAP at", listener)
			}
			s.IMAPHost = host
		}
		if s.IMAPPort == 0 {
			s.IMAPPort, _ = strconv.Atoi(port)
		}
		if s.IMAPSocket == "" {
			s.IMAPSocket = socket
		}
	}
	if s.IMAPHost == "" {
		return s, errors.New("[autoconfig] imap_host is empty: name the provider's IMAP server (the built-in one is off)")
	}
	if s.IMAPPort == 0 {
		s.IMAPPort = 143
	}
	if s.IMAPSocket == "" {
		s.IMAPSocket = "STARTTLS"
	}
	if s.IMAPPort < 1 || s.IMAPPort > 65535 {
		return s, fmt.Errorf("[autoconfig] imap_port = %d: want 1 to 65535", s.IMAPPort)
	}
	if s.IMAPSocket != "STARTTLS" && s.IMAPSocket != "SSL" {
		return s, fmt.Errorf("[autoconfig] imap_socket = %q: want \"STARTTLS\" or \"SSL\" (passwords never go in clear)", s.IMAPSocket)
	}
	smtp := a.SMTPAddress
	if smtp == "" {
		smtp = DefaultAutoconfigSMTP
	}
	host, port, err := net.SplitHostPort(smtp)
	if err != nil {
		return s, fmt.Errorf("[autoconfig] smtp_address = %q: %w", smtp, err)
	}
	// mailproxy accepts only loopback connections: a document pointing elsewhere would send
	// the user's mail past the mixnet, or nowhere.
	if ip := net.ParseIP(host); (ip == nil && host != "localhost") || (ip != nil && !ip.IsLoopback()) {
		return s, fmt.Errorf("[autoconfig] smtp_address = %q: want a loopback address (the user's own mailproxy)", smtp)
	}
	s.SMTPHost = host
	if s.SMTPPort, err = strconv.Atoi(port); err != nil || s.SMTPPort < 1 || s.SMTPPort > 65535 {
		return s, fmt.Errorf("[autoconfig] smtp_address = %q: bad port", smtp)
	}
	return s, nil
}

func (c *Config) validateAutoconfig() error {
	if c.Autoconfig.ListenAddress == "" {
		return nil
	}
	if c.Role != "provider" {
		return errors.New("[autoconfig] listen_address is set on a mix: only providers serve mail settings")
	}
	if _, _, err := net.SplitHostPort(c.Autoconfig.ListenAddress); err != nil {
		return fmt.Errorf("[autoconfig] listen_address = %q: %w", c.Autoconfig.ListenAddress, err)
	}
	_, err := c.AutoconfigServers()
	return err
}
