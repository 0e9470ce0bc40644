package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
)

// Thunderbird's autoconfiguration (the clientConfig v1.1 format): when a user types their
// address, Thunderbird asks http://autoconfig.DOMAIN/mail/config-v1.1.xml and
// https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml. The document mixd serves names the
// provider's IMAP server for reading and the user's own mailproxy (loopback, no TLS, no
// password: mailproxy accepts only local connections) for sending, so the address and the IMAP
// password are the whole set-up.
//
// A listener of its own, not the admin or metrics one: the admin API accepts only loopback Host
// headers and a bearer token, and the metrics listener is the operator's; this one must answer
// anyone who may have an account, and serves nothing else.

// autoconfigPaths are where Thunderbird looks.
var autoconfigPaths = []string{"/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"}

type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string         `xml:"id,attr"`
	Domains          []string       `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         mailServer     `xml:"incomingServer"`
	Outgoing         mailServer     `xml:"outgoingServer"`
	Documentation    *documentation `xml:"documentation,omitempty"`
}

type mailServer struct {
	Type           string `xml:"type,attr"`
	Hostname       string `xml:"hostname"`
	Port           int    `xml:"port"`
	SocketType     string `xml:"socketType"`
	Authentication string `xml:"authentication"`
	Username       string `xml:"username,omitempty"`
}

type documentation struct {
	URL   string `xml:"url,attr"`
	Descr struct {
		Lang string `xml:"lang,attr"`
		Text string `xml:",chardata"`
	} `xml:"descr"`
}

// autoconfigXML is the clientConfig v1.1 document for a provider of domains (the first one is
// the provider's id) with servers s.
func autoconfigXML(domains []string, s config.AutoconfigServers) ([]byte, error) {
	doc := clientConfig{Version: "1.1", Provider: emailProvider{
		ID: domains[0], Domains: domains,
		DisplayName:      "PANORAMIX mail at " + domains[0],
		DisplayShortName: domains[0],
		Incoming: mailServer{Type: "imap", Hostname: s.IMAPHost, Port: s.IMAPPort, SocketType: s.IMAPSocket,
			Authentication: "password-cleartext", Username: "%EMAILLOCALPART%"},
		// The user's mailproxy: loopback, so neither TLS nor a password.
		Outgoing:      mailServer{Type: "smtp", Hostname: s.SMTPHost, Port: s.SMTPPort, SocketType: "plain", Authentication: "none"},
		Documentation: &documentation{URL: "https://github.com/panoramix-mixnet/panoramix/tree/main/contrib/thunderbird"},
	}}
	doc.Provider.Documentation.Descr.Lang = "en"
	doc.Provider.Documentation.Descr.Text = fmt.Sprintf("Run mailproxy on your machine first (mailproxy init, mailproxy run), listening on %s:%d.", s.SMTPHost, s.SMTPPort)
	b, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

// autoconfigHandler serves the document for domains at autoconfigPaths. Thunderbird adds
// ?emailaddress=ADDRESS: an address of another domain gets 404, so that no client is sent a
// configuration for an account this provider does not hold.
func autoconfigHandler(domains []string, s config.AutoconfigServers) (http.Handler, error) {
	body, err := autoconfigXML(domains, s)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	for _, p := range autoconfigPaths {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			if addr := r.URL.Query().Get("emailaddress"); addr != "" {
				_, domain, ok := strings.Cut(addr, "@")
				if !ok || !slices.Contains(domains, strings.ToLower(domain)) {
					http.Error(w, "no account of this provider: it serves "+strings.Join(domains, ", "), http.StatusNotFound)
					return
				}
			}
			w.Header().Set("Content-Type", "application/xml; charset=utf-8")
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Write(body)
		})
	}
	return mux, nil
}

// startAutoconfig listens on [autoconfig] listen_address (when set) and serves until ctx ends;
// the returned function waits for the server to stop.
func startAutoconfig(ctx context.Context, cfg *config.Config, log *slog.Logger) (func(), error) {
	if cfg.Autoconfig.ListenAddress == "" {
		return func() {}, nil
	}
	s, err := cfg.AutoconfigServers()
	if err != nil {
		return nil, err
	}
	h, err := autoconfigHandler(cfg.Provider.Domains, s)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Autoconfig.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("[autoconfig] listen_address: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("autoconfig server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving Thunderbird autoconfiguration", "addr", ln.Addr().String(), "imap", fmt.Sprintf("%s:%d", s.IMAPHost, s.IMAPPort), "smtp", fmt.Sprintf("%s:%d", s.SMTPHost, s.SMTPPort))
	return func() { <-done }, nil
}
