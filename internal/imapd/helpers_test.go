package imapd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
	"github.com/panoramix-mixnet/panoramix/pkg/passwd"
)

// testEnv is a running server on loopback with its store, certificate and log.
type testEnv struct {
	store  *mailstore.Store
	srv    *Server
	plain  string // host:port, STARTTLS
	tls    string // host:port, implicit TLS
	caFile string // the self-signed certificate, PEM
	pool   *x509.CertPool
	log    *syncbuf.Buffer
}

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "imapd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		// mbsync matches host names against DNS names only, even for an address.
		DNSNames: []string{"localhost", "127.0.0.1"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newEnv(t testing.TB, modify func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := mailstore.Open(filepath.Join(dir, "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	cert, certPEM := selfSigned(t)
	caFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	logs := &syncbuf.Buffer{}
	cfg := Config{
		Addr:    "127.0.0.1:0",
		TLSAddr: "127.0.0.1:0",
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if modify != nil {
		modify(&cfg)
	}
	srv, err := New(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{store: store, srv: srv, plain: srv.Addr().String(), tls: srv.TLSAddr().String(), caFile: caFile, pool: pool, log: logs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("server did not shut down within 10s")
		}
		if err := store.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return env
}

// cheapParams keep argon2id fast in tests; the production parameters are tested in pkg/passwd.
var cheapParams = passwd.Params{MemoryKiB: 64, Time: 1, Threads: 1}

func (e *testEnv) addUser(t testing.TB, name, password string, quota int64) {
	t.Helper()
	if err := e.store.CreateUser(name, quota); err != nil {
		t.Fatal(err)
	}
	h, err := passwd.HashWithParams(rand.Reader, password, cheapParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetPassword(name, h); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.pool, ServerName: "127.0.0.1"}
}
