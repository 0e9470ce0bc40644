package testnet

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// CA is a local network's certificate authority: made once in the state directory, it issues
// every provider's IMAP certificate, so that a client that trusts CA.CertFile (Thunderbird's
// NSS store, the system's store, Python's ssl) verifies every provider without an exception,
// across restarts.
type CA struct {
	// CertFile is the CA certificate (PEM) to trust; its key stays next to it, mode 0600.
	CertFile string
	cert     *x509.Certificate
	key      crypto.Signer
}

// caValidity is long enough for a development network never to see it expire, and short enough
// that a forgotten trusted CA stops mattering.
const caValidity = 10 * 365 * 24 * time.Hour

// ensureCA loads the CA in dir, or makes it there when dir holds none.
func ensureCA(dir string) (*CA, error) {
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		host, _ := os.Hostname()
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "PANORAMIX local network CA (" + host + ")", Organization: []string{"PANORAMIX testnet"}},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(caValidity),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, err
		}
		// The key first: a certificate without its key would be taken for a whole CA.
		if err := writeKey(keyFile, key); err != nil {
			return nil, err
		}
		if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, err
		}
	}
	cert, err := readCert(certFile)
	if err != nil {
		return nil, fmt.Errorf("testnet: CA %s: %w", certFile, err)
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("testnet: CA key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("testnet: CA key %s: no PEM block", keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("testnet: CA key %s: %w", keyFile, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("testnet: CA key %s: not a signing key", keyFile)
	}
	return &CA{CertFile: certFile, cert: cert, key: signer}, nil
}

// providerNames are the host names a provider of domain is reached by on a local network: the
// domain, its imap. and autoconfig. hosts (.localhost names resolve to loopback) and localhost.
func providerNames(domain string) []string {
	return []string{domain, "imap." + domain, "autoconfig." + domain, "localhost"}
}

// issue writes a server certificate for names and the hosts of addrs (host:port; loopback
// IPv6 added to loopback IPv4) into certFile and keyFile, unless the certificate there already
// comes from this CA, covers them and stays valid for a month: a resumed network keeps the
// certificate a client may have pinned.
func (ca *CA) issue(certFile, keyFile string, names, addrs []string) error {
	var ips []net.IP
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			if ip.IsLoopback() {
				ips = append(ips, net.IPv6loopback)
			}
		}
	}
	if c, err := readCert(certFile); err == nil && ca.covers(c, names, ips) {
		if _, err := os.Stat(keyFile); err == nil {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		// Below the 398 days that Apple's and Mozilla's clients accept for a server certificate.
		NotAfter:    time.Now().Add(397 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	if err := writeKey(keyFile, key); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// covers reports whether c is from ca, names every name and IP, and is valid for a month more.
func (ca *CA) covers(c *x509.Certificate, names []string, ips []net.IP) bool {
	if c.CheckSignatureFrom(ca.cert) != nil || time.Now().Add(30*24*time.Hour).After(c.NotAfter) {
		return false
	}
	for _, n := range names {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func readCert(file string) (*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func writeKey(file string, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

func serial() *big.Int {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return s
}

// TrustCommand is one shell command that makes the system (Debian's ca-certificates) and every
// Thunderbird profile of the user (its NSS store, with certutil from libnss3-tools) trust the CA.
func (ca *CA) TrustCommand() string {
	return fmt.Sprintf(`sudo cp %[1]s /usr/local/share/ca-certificates/panoramix-local.crt && sudo update-ca-certificates && `+
		`for d in ~/.thunderbird/*.default* ~/snap/thunderbird/common/.thunderbird/*.default*; do [ -f "$d/cert9.db" ] && certutil -A -d sql:"$d" -n "PANORAMIX local network" -t C,, -i %[1]s; done; true`, ca.CertFile)
}
