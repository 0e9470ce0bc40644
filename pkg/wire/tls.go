package wire

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// ALPN is the application protocol both ends of a link must negotiate (spec section 3). A
// new, incompatible version of the link protocol gets a new name, so that old and new peers
// refuse each other during the handshake instead of misreading frames. Version 2 answers a
// retrieve with as many frames as it asks for (spec section 7); a version 1 peer would read
// the extra answers as answers to later retrieves.
const ALPN = "panoramix-wire/2"

// alpnPrevious is the name of the version before ALPN, which peers still running it offer:
// only so that the refusal can say what happened (spec section 3.1).
const alpnPrevious = "panoramix-wire/1"

// alertNoApplicationProtocol is the TLS alert (RFC 7301 section 3.2) a server sends when it
// speaks none of the application protocols the client offered.
const alertNoApplicationProtocol = tls.AlertError(120)

// ErrVersion is wrapped by the error of a handshake that failed because the two ends speak
// different versions of the link protocol (spec section 3.1).
var ErrVersion = errors.New("wire: link protocol version mismatch")

// versionError says, for the local log, what the server refused, from the client's offer: a
// client that offers only an older version (or none) gets no link and should be upgraded. It
// returns "" when ALPN is offered.
func versionError(offered []string) string {
	if slices.Contains(offered, ALPN) {
		return ""
	}
	if slices.Contains(offered, alpnPrevious) {
		return fmt.Sprintf("the client speaks %s and this node speaks %s (upgrade the client)", alpnPrevious, ALPN)
	}
	return fmt.Sprintf("the client offers the application protocols %q, this node speaks %s (upgrade the client)", offered, ALPN)
}

// dialError makes the error of a client's failed handshake name both versions when the server
// refused the application protocol: with Go's crypto/tls a remote alert comes back as a
// *net.OpError whose Err is the alert.
func dialError(addr string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil && oe.Err.Error() == alertNoApplicationProtocol.Error() {
		return fmt.Errorf("%w: %s refused %s, the version this client speaks: it probably speaks %s (upgrade the server): %w", ErrVersion, addr, ALPN, alpnPrevious, err)
	}
	return fmt.Errorf("wire: handshake with %s: %w", addr, err)
}

// certificate validity (spec section 3.2). Dates carry no trust here, pinning does; the
// certificate says so by running from a fixed past date to the RFC 5280 "no well-defined
// expiration" date, which also makes it a pure function of the key.
var (
	certNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	certNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

const certCommonName = "panoramix link"

// ErrPeer is wrapped by the errors of handshakes refused because of the peer's certificate or
// negotiated parameters.
var ErrPeer = errors.New("wire: peer refused")

// linkCertificate makes the self-signed certificate of spec section 3.2 from key. Ed25519
// signatures are deterministic and the serial number is derived from the public key, so the
// same key always gives the same certificate.
func linkCertificate(key *keys.LinkPrivateKey) (tls.Certificate, error) {
	if key == nil {
		return tls.Certificate{}, errors.New("wire: nil link key")
	}
	pub := key.Public()
	sum := sha256.Sum256(pub[:])
	sum[0] &= 0x7f // a positive serial of at most 20 bytes (RFC 5280 section 4.1.2.2)
	serial := new(big.Int).SetBytes(sum[:16])
	if serial.Sign() == 0 {
		serial.SetInt64(1)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: certCommonName},
		NotBefore:             certNotBefore,
		NotAfter:              certNotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	signer := key.Signer()
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("wire: creating link certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("wire: parsing own link certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}, nil
}

// baseConfig is the TLS profile both ends share (spec section 3.1). CurvePreferences stays
// unset on purpose: Go's default offers and prefers the hybrid X25519MLKEM768, and
// checkConnection refuses any other group.
func baseConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		// Resumption would skip the certificates, and tickets are state we do not need on
		// long-lived links: every handshake is a full, mutually authenticated one.
		SessionTicketsDisabled: true,
		// Without dynamic record sizing every frame is cut into the same TLS records wherever
		// it falls in the stream, so record sizes say nothing about the frame (section 3.1).
		DynamicRecordSizingDisabled: true,
	}
}

// ServerTLSConfig returns the TLS configuration of the accepting end of a link. The client
// must present a certificate (spec section 3.2); after the checks of section 3.3, authorize
// decides whether its key may connect (the consensus for nodes, the user database for
// clients). An authorize error fails the handshake; the client only learns that its
// certificate was refused. key must stay unwiped while the configuration is in use.
func ServerTLSConfig(key *keys.LinkPrivateKey, authorize func(peer keys.LinkPublicKey) error) (*tls.Config, error) {
	if authorize == nil {
		return nil, errors.New("wire: server TLS config needs an authorize function")
	}
	cert, err := linkCertificate(key)
	if err != nil {
		return nil, err
	}
	cfg := baseConfig(cert)
	// RequireAnyClientCert: a client certificate is required but not checked against CAs;
	// VerifyConnection does the pinning.
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		peer, err := checkConnection(cs)
		if err != nil {
			return err
		}
		if err := authorize(peer); err != nil {
			return fmt.Errorf("%w: client key %v not authorized: %w", ErrPeer, peer, err)
		}
		return nil
	}
	return cfg, nil
}

// ClientTLSConfig returns the TLS configuration of the connecting end of a link to the holder
// of the link key server. The server's certificate is accepted only if its key equals server
// (spec section 3.3); the client's own certificate, which names the client, is sent only
// after that check, encrypted. key must stay unwiped while the configuration is in use.
func ClientTLSConfig(key *keys.LinkPrivateKey, server keys.LinkPublicKey) (*tls.Config, error) {
	if server.IsZero() {
		return nil, errors.New("wire: client TLS config needs the server's link key")
	}
	cert, err := linkCertificate(key)
	if err != nil {
		return nil, err
	}
	cfg := baseConfig(cert)
	// There are no CAs and no names: the standard chain and host name verification is
	// replaced, not dropped, by the pinning in VerifyConnection, which crypto/tls still calls
	// when InsecureSkipVerify is set.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		peer, err := checkConnection(cs)
		if err != nil {
			return err
		}
		if !peer.Equal(server) {
			return fmt.Errorf("%w: server presented link key %v, want %v", ErrPeer, peer, server)
		}
		return nil
	}
	return cfg, nil
}

// checkConnection applies the checks of spec section 3.3 that do not depend on who the peer
// is, and returns the peer's link key.
func checkConnection(cs tls.ConnectionState) (keys.LinkPublicKey, error) {
	if cs.Version != tls.VersionTLS13 {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: TLS version %#04x, want 1.3", ErrPeer, cs.Version)
	}
	if cs.CurveID != tls.X25519MLKEM768 {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: key exchange group %v, want X25519MLKEM768", ErrPeer, cs.CurveID)
	}
	if cs.NegotiatedProtocol != ALPN {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: application protocol %q, want %q", ErrPeer, cs.NegotiatedProtocol, ALPN)
	}
	return PeerKey(cs)
}

// PeerKey returns the link key of the peer of a completed handshake: the Ed25519 key of its
// one, self-signed certificate (spec section 3.3). It checks the certificate's self-signature
// and refuses a chain of more than one certificate, a key of another type and an Ed25519 key
// that keys.NewLinkPublicKey refuses.
func PeerKey(cs tls.ConnectionState) (keys.LinkPublicKey, error) {
	if len(cs.PeerCertificates) != 1 {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: %d peer certificates, want exactly 1", ErrPeer, len(cs.PeerCertificates))
	}
	cert := cs.PeerCertificates[0]
	if cert.PublicKeyAlgorithm != x509.Ed25519 || cert.SignatureAlgorithm != x509.PureEd25519 {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: certificate key %v signed with %v, want Ed25519", ErrPeer, cert.PublicKeyAlgorithm, cert.SignatureAlgorithm)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: certificate is not self-signed: %w", ErrPeer, err)
	}
	k, err := keys.LinkPublicKeyFromEd25519(cert.PublicKey)
	if err != nil {
		return keys.LinkPublicKey{}, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	return k, nil
}
