package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/internal/imapd"
	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/mailbox"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/passwd"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
)

// mail is a provider's mail side: the mailbox service, and with the embedded back end the
// mailbox store and the IMAP server that serves it.
type mail struct {
	// provider is the provider's user database, opened here to be shared by the node (which
	// answers retrieve-mail from it) and the mailbox service (which holds the mail of users who
	// read through the link in it).
	provider *provider.Store
	store    *mailstore.Store // nil with the LMTP back end
	imap     *imapd.Server    // nil when no IMAP listener is configured
	service  *mailbox.Service
}

// accounts adapts the mailbox store to node.Accounts.
type accounts struct{ s *mailstore.Store }

func (a accounts) CreateUser(name string, quota int64) error { return a.s.CreateUser(name, quota) }
func (a accounts) DeleteUser(name string) error              { return a.s.DeleteUser(name) }
func (a accounts) SetPassword(name, password string) error {
	phc, err := passwd.Hash(password)
	if err != nil {
		return err
	}
	return a.s.SetPassword(name, phc)
}

// openMail builds the provider's mail side from the configuration.
func openMail(cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*mail, error) {
	m := &mail{}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	ps, err := provider.OpenStore(filepath.Join(cfg.DataDir, "provider.db"))
	if err != nil {
		return nil, err
	}
	m.provider = ps
	var backend mailbox.Backend
	switch cfg.Mailbox.Backend {
	case "embedded":
		s, err := mailstore.Open(filepath.Join(cfg.DataDir, "mail.db"))
		if err != nil {
			m.close()
			return nil, err
		}
		m.store = s
		backend = mailbox.NewStoreBackend(s)
		if cfg.IMAP.ListenAddress != "" || cfg.IMAP.TLSListenAddress != "" {
			tlsCfg, err := imapTLS(cfg)
			if err != nil {
				m.close()
				return nil, err
			}
			m.imap, err = imapd.New(imapd.Config{
				Addr: cfg.IMAP.ListenAddress, TLSAddr: cfg.IMAP.TLSListenAddress, TLS: tlsCfg,
				InsecureAuth: cfg.IMAP.InsecureAuth, MaxConnections: cfg.IMAP.MaxConnections,
				MaxConnectionsPerIP: cfg.IMAP.MaxConnectionsPerIP, LoginTimeout: cfg.IMAP.LoginTimeout,
				Logger: log.With("component", "imap"),
			}, s)
			if err != nil {
				m.close()
				return nil, fmt.Errorf("[imap]: %w", err)
			}
		}
	case "lmtp":
		b, err := mailbox.NewLMTPBackend(mailbox.LMTPConfig{Network: cfg.Mailbox.LMTPNetwork, Addr: cfg.Mailbox.LMTPAddress, Domain: cfg.Provider.Domains[0], Timeout: time.Minute})
		if err != nil {
			m.close()
			return nil, fmt.Errorf("[mailbox]: %w", err)
		}
		backend = b
	}
	// Whatever the backend, the mail of a user whose client reads through its link is held
	// for the client instead (docs/spec/services.md section 6).
	backend, err = mailbox.NewLinkBackend(mailbox.LinkConfig{
		Store: ps, ChunkSize: cfg.Geometry().PacketSize(), Expiry: cfg.Mailbox.Expiry, Next: backend,
	})
	if err != nil {
		m.close()
		return nil, err
	}
	svc, err := mailbox.New(mailbox.Config{
		Path: filepath.Join(cfg.DataDir, "mailbox.db"), Geometry: cfg.Geometry(), Backend: backend,
		Expiry: cfg.Mailbox.Expiry, MaxMessageSize: cfg.Mailbox.MaxMessageSize,
		Logger: log.With("component", "mailbox"), Registerer: reg,
	})
	if err != nil {
		m.close()
		return nil, err
	}
	m.service = svc
	return m, nil
}

// services are what the node registers.
func (m *mail) services() []service.Service { return []service.Service{m.service} }

// run serves IMAP until ctx ends.
func (m *mail) run(ctx context.Context) error {
	if m.imap == nil {
		<-ctx.Done()
		return nil
	}
	return m.imap.Run(ctx)
}

func (m *mail) close() {
	if m.service != nil {
		m.service.Close()
	}
	if m.store != nil {
		m.store.Close()
	}
	if m.provider != nil {
		m.provider.Close()
	}
}

// imapTLS loads the configured certificate, or makes (once) and loads a self-signed one in
// data_dir for a local network.
func imapTLS(cfg *config.Config) (*tls.Config, error) {
	certFile, keyFile := cfg.IMAP.CertFile, cfg.IMAP.KeyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(cfg.DataDir, "imap-selfsigned.crt"), filepath.Join(cfg.DataDir, "imap-selfsigned.key")
		if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
			if err := selfSigned(certFile, keyFile, cfg.Provider.Domains, listenIPs(cfg.IMAP.ListenAddress, cfg.IMAP.TLSListenAddress)); err != nil {
				return nil, fmt.Errorf("[imap] self-signed certificate: %w", err)
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("[imap] cert_file/key_file: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// listenIPs are the specific addresses among listeners (host:port), loopback IPv6 with loopback
// IPv4: a client that connects to the address it was given checks the certificate for it.
func listenIPs(listeners ...string) []net.IP {
	var ips []net.IP
	for _, l := range listeners {
		h, _, err := net.SplitHostPort(l)
		if ip := net.ParseIP(h); err == nil && ip != nil && !ip.IsUnspecified() {
			ips = append(ips, ip)
			if ip.IsLoopback() {
				ips = append(ips, net.IPv6loopback)
			}
		}
	}
	return ips
}

func selfSigned(certFile, keyFile string, names []string, ips []net.IP) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     append(names, "localhost"),
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
