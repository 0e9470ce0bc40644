package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8032 section 7.1, TEST 1 (empty message).
const (
	rfc8032Seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfc8032Pub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfc8032Sig  = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

// RFC 7748 section 6.1, Alice and Bob.
const (
	rfc7748AlicePriv = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	rfc7748AlicePub  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	rfc7748BobPub    = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
	rfc7748Shared    = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
)

func TestIdentityRFC8032(t *testing.T) {
	k, err := NewIdentityPrivateKey(mustHex(t, rfc8032Seed))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Public().String(); got != rfc8032Pub {
		t.Errorf("public key %s, want %s", got, rfc8032Pub)
	}
	if got := hex.EncodeToString(k.Sign(nil)); got != rfc8032Sig {
		t.Errorf("signature %s, want %s", got, rfc8032Sig)
	}
	// The same seed read from a reader gives the same key.
	g, err := GenerateIdentityKey(bytes.NewReader(mustHex(t, rfc8032Seed)))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Equal(k) {
		t.Error("GenerateIdentityKey with the RFC seed differs from NewIdentityPrivateKey")
	}
}

func TestSignVerify(t *testing.T) {
	id, err := GenerateIdentityKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("descriptor")
	sig := id.Sign(msg)
	if !id.Public().Verify(msg, sig) {
		t.Fatal("valid identity signature refused")
	}
	if id.Public().Verify([]byte("descriptoR"), sig) {
		t.Error("signature accepted for another message")
	}
	bad := bytes.Clone(sig)
	bad[5] ^= 1
	if id.Public().Verify(msg, bad) {
		t.Error("altered signature accepted")
	}
	if id.Public().Verify(msg, sig[:63]) || id.Public().Verify(msg, append(bytes.Clone(sig), 0)) {
		t.Error("signature of wrong length accepted")
	}
	other, _ := GenerateIdentityKey(nil)
	if other.Public().Verify(msg, sig) {
		t.Error("signature accepted under another key")
	}
	lsig := ln.Sign(msg)
	if !ln.Public().Verify(msg, lsig) {
		t.Fatal("valid link signature refused")
	}
	// Same bytes under the other role's type are a different key.
	if id.Public().Verify(msg, lsig) {
		t.Error("link signature accepted by identity key")
	}
}

// A small-order public key admits signatures that verify for any message:
// with A = 0 (identity) and R = identity, s = 0 satisfies [s]B = R + [k]A.
// Verify must refuse such keys even when they bypass Parse.
func TestVerifyRefusesSmallOrderKey(t *testing.T) {
	var identityPoint IdentityPublicKey
	identityPoint[0] = 1
	sig := make([]byte, 64)
	sig[0] = 1 // R = identity point, s = 0
	if !ed25519.Verify(ed25519.PublicKey(identityPoint[:]), []byte("anything"), sig) {
		t.Skip("crypto/ed25519 already refuses this forgery; nothing to compare against")
	}
	if identityPoint.Verify([]byte("anything"), sig) {
		t.Error("forged signature under the small-order identity key accepted")
	}
	if (IdentityPublicKey{}).Verify([]byte("x"), sig) {
		t.Error("zero key verified a signature")
	}
}

func TestSphinxRFC7748(t *testing.T) {
	k, err := NewSphinxPrivateKey(mustHex(t, rfc7748AlicePriv))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Public().String(); got != rfc7748AlicePub {
		t.Errorf("public key %s, want %s", got, rfc7748AlicePub)
	}
	if hex.EncodeToString(k.Scalar()[:]) != rfc7748AlicePriv {
		t.Error("Scalar does not return the key's scalar")
	}
	// Scalar is what pkg/sphinx feeds to X25519: check it against the RFC's
	// shared secret.
	ek, err := ecdh.X25519().NewPrivateKey(k.Scalar()[:])
	if err != nil {
		t.Fatal(err)
	}
	bob, err := ParseSphinxPublicKey(rfc7748BobPub)
	if err != nil {
		t.Fatal(err)
	}
	bp, _ := ecdh.X25519().NewPublicKey(bob[:])
	shared, err := ek.ECDH(bp)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(shared) != rfc7748Shared {
		t.Errorf("shared secret %x, want %s", shared, rfc7748Shared)
	}
	g, err := GenerateSphinxKey(bytes.NewReader(mustHex(t, rfc7748AlicePriv)))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Equal(k) {
		t.Error("GenerateSphinxKey with the RFC scalar differs from NewSphinxPrivateKey")
	}
}

func TestGenerateShortRandomness(t *testing.T) {
	short := func() *bytes.Reader { return bytes.NewReader(make([]byte, 31)) }
	if _, err := GenerateIdentityKey(short()); err == nil {
		t.Error("identity key generated from 31 bytes of randomness")
	}
	if _, err := GenerateLinkKey(short()); err == nil {
		t.Error("link key generated from 31 bytes of randomness")
	}
	if _, err := GenerateSphinxKey(short()); err == nil {
		t.Error("sphinx key generated from 31 bytes of randomness")
	}
}

func TestNewPrivateKeyRefusals(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 31), make([]byte, 33), make([]byte, 32)} {
		if _, err := NewIdentityPrivateKey(b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewIdentityPrivateKey(%d bytes, zero=%v): err %v, want ErrInvalidKey", len(b), true, err)
		}
		if _, err := NewLinkPrivateKey(b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewLinkPrivateKey(%d bytes): err %v, want ErrInvalidKey", len(b), err)
		}
		if _, err := NewSphinxPrivateKey(b); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewSphinxPrivateKey(%d bytes): err %v, want ErrInvalidKey", len(b), err)
		}
	}
}

func TestPrivateEqual(t *testing.T) {
	seed := mustHex(t, rfc8032Seed)
	a, _ := NewIdentityPrivateKey(seed)
	b, _ := NewIdentityPrivateKey(seed)
	c, _ := GenerateIdentityKey(nil)
	if !a.Equal(b) || a.Equal(c) || a.Equal(nil) || (*IdentityPrivateKey)(nil).Equal(a) {
		t.Error("IdentityPrivateKey.Equal wrong")
	}
	la, _ := NewLinkPrivateKey(seed)
	lb, _ := NewLinkPrivateKey(seed)
	lc, _ := GenerateLinkKey(nil)
	if !la.Equal(lb) || la.Equal(lc) || la.Equal(nil) {
		t.Error("LinkPrivateKey.Equal wrong")
	}
	sa, _ := NewSphinxPrivateKey(seed)
	sb, _ := NewSphinxPrivateKey(seed)
	sc, _ := GenerateSphinxKey(nil)
	if !sa.Equal(sb) || sa.Equal(sc) || sa.Equal(nil) {
		t.Error("SphinxPrivateKey.Equal wrong")
	}
	// Keys differing only in the last byte: a comparison that stopped early
	// would still tell them apart, but one that compared a prefix would not.
	s2 := bytes.Clone(seed)
	s2[31] ^= 0x80
	d, _ := NewIdentityPrivateKey(s2)
	if a.Equal(d) {
		t.Error("keys differing in the last seed byte compare equal")
	}
	b.Wipe()
	if a.Equal(b) || b.Equal(a) || b.Equal(b) {
		t.Error("a wiped key compares equal")
	}
	var zero IdentityPrivateKey
	if zero.Equal(&zero) {
		t.Error("zero-value key compares equal to itself")
	}
}

func TestPublicEqual(t *testing.T) {
	id, _ := GenerateIdentityKey(nil)
	p := id.Public()
	q := p
	if !p.Equal(q) {
		t.Error("identical identity public keys unequal")
	}
	q[31] ^= 1
	if p.Equal(q) {
		t.Error("different identity public keys equal")
	}
	lp := LinkPublicKey(p)
	lq := lp
	lq[0] ^= 1
	if !lp.Equal(LinkPublicKey(p)) || lp.Equal(lq) {
		t.Error("LinkPublicKey.Equal wrong")
	}
	sk, _ := GenerateSphinxKey(nil)
	sp := sk.Public()
	sq := sp
	sq[16] ^= 1
	if !sp.Equal(sk.Public()) || sp.Equal(sq) {
		t.Error("SphinxPublicKey.Equal wrong")
	}
	if !(IdentityPublicKey{}).IsZero() || p.IsZero() || sp.IsZero() || !(SphinxPublicKey{}).IsZero() {
		t.Error("IsZero wrong")
	}
}

// mustPanic fails the test unless f panics.
func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic on a wiped key", name)
		}
	}()
	f()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func TestWipeIdentity(t *testing.T) {
	k, _ := GenerateIdentityKey(nil)
	if allZero(k.k.key[:32]) || allZero(k.k.key[32:]) {
		t.Fatal("fresh key has zero halves")
	}
	k.Wipe()
	if !allZero(k.k.key[:]) {
		t.Error("Wipe left secret bytes")
	}
	mustPanic(t, "Sign", func() { k.Sign([]byte("m")) })
	mustPanic(t, "Public", func() { k.Public() })
	if _, err := MarshalIdentityPrivateKeyPEM(k); !errors.Is(err, ErrWiped) {
		t.Errorf("marshal of wiped key: %v, want ErrWiped", err)
	}
	if err := SaveIdentityKey(t.TempDir()+"/k", k); !errors.Is(err, ErrWiped) {
		t.Errorf("save of wiped key: %v, want ErrWiped", err)
	}
	var zero IdentityPrivateKey
	mustPanic(t, "Sign on zero value", func() { zero.Sign(nil) })
	(*IdentityPrivateKey)(nil).Wipe() // must not panic
}

func TestWipeLink(t *testing.T) {
	k, _ := GenerateLinkKey(nil)
	s := k.Signer()
	if _, err := s.Sign(nil, []byte("m"), crypto.Hash(0)); err != nil {
		t.Fatal(err)
	}
	k.Wipe()
	if !allZero(k.k.key[:]) {
		t.Error("Wipe left secret bytes")
	}
	mustPanic(t, "Sign", func() { k.Sign([]byte("m")) })
	mustPanic(t, "Public", func() { k.Public() })
	mustPanic(t, "Signer", func() { k.Signer() })
	mustPanic(t, "Signer.Public", func() { s.Public() })
	if sig, err := s.Sign(nil, []byte("m"), crypto.Hash(0)); !errors.Is(err, ErrWiped) || sig != nil {
		t.Errorf("Signer.Sign after Wipe: %x, %v; want nil, ErrWiped", sig, err)
	}
	if err := SaveLinkKey(t.TempDir()+"/k", k); !errors.Is(err, ErrWiped) {
		t.Errorf("save of wiped key: %v, want ErrWiped", err)
	}
	(*LinkPrivateKey)(nil).Wipe()
}

func TestWipeSphinx(t *testing.T) {
	k, _ := GenerateSphinxKey(nil)
	scalar := k.Scalar()
	if allZero(scalar[:]) {
		t.Fatal("fresh scalar is zero")
	}
	k.Wipe()
	if !allZero(scalar[:]) || !allZero(k.scalar[:]) {
		t.Error("Wipe left the scalar")
	}
	mustPanic(t, "Scalar", func() { k.Scalar() })
	mustPanic(t, "Public", func() { k.Public() })
	if err := SaveSphinxKey(t.TempDir()+"/k", k); !errors.Is(err, ErrWiped) {
		t.Errorf("save of wiped key: %v, want ErrWiped", err)
	}
	var zero SphinxPrivateKey
	mustPanic(t, "Scalar on zero value", func() { zero.Scalar() })
	(*SphinxPrivateKey)(nil).Wipe()
}

func TestPrivateKeysDoNotPrint(t *testing.T) {
	id, _ := NewIdentityPrivateKey(mustHex(t, rfc8032Seed))
	ln, _ := NewLinkPrivateKey(mustHex(t, rfc8032Seed))
	sx, _ := NewSphinxPrivateKey(mustHex(t, rfc8032Seed))
	for _, v := range []any{id, ln, sx} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(strings.ToLower(out), rfc8032Seed[:8]) || strings.Contains(out, "157") /* 0x9d */ {
				t.Errorf("Sprintf(%q, %T) = %q leaks the key", verb, v, out)
			}
			if !strings.Contains(out, "REDACTED") {
				t.Errorf("Sprintf(%q, %T) = %q", verb, v, out)
			}
		}
	}
}

func TestLinkSignerTLS(t *testing.T) {
	k, err := GenerateLinkKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, k.Signer().Public(), k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Fatalf("certificate signed by link key does not verify: %v", err)
	}
	pinned, err := LinkPublicKeyFromEd25519(cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !pinned.Equal(k.Public()) {
		t.Error("certificate key differs from the link public key")
	}
	if _, err := LinkPublicKeyFromEd25519(ed25519.PublicKey(make([]byte, 31))); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("31-byte key: %v, want ErrInvalidKey", err)
	}
	if _, err := LinkPublicKeyFromEd25519(&ecdh.PublicKey{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("non-Ed25519 key: %v, want ErrInvalidKey", err)
	}
	// A real TLS 1.3 handshake with the Signer as the server key, the
	// client pinning the link public key as pkg/wire does.
	cliConn, srvConn := net.Pipe()
	defer cliConn.Close()
	defer srvConn.Close()
	srv := tls.Server(srvConn, &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: k.Signer()}},
	})
	var seen LinkPublicKey
	cli := tls.Client(cliConn, &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verification is the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			seen, err = LinkPublicKeyFromEd25519(c.PublicKey)
			return err
		},
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if !seen.Equal(k.Public()) {
		t.Error("pinned key seen in the handshake differs from the link key")
	}
	// Hashed or contextual Ed25519 variants are refused.
	h := sha256.Sum256([]byte("m"))
	if _, err := k.Signer().Sign(nil, h[:], crypto.SHA256); err == nil {
		t.Error("signer accepted SHA-256 prehash")
	}
	if _, err := k.Signer().Sign(nil, []byte("m"), &ed25519.Options{Context: "c"}); err == nil {
		t.Error("signer accepted an Ed25519ctx context")
	}
	sig, err := k.Signer().Sign(nil, []byte("m"), nil)
	if err != nil || !k.Public().Verify([]byte("m"), sig) {
		t.Errorf("signer with nil opts: %v", err)
	}
	if pub := k.Public(); !bytes.Equal(pub.Ed25519(), pub[:]) {
		t.Error("Ed25519() differs from key bytes")
	}
}
