package keys

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
)

// LinkPublicKey is the Ed25519 public key of a TLS link certificate (DESIGN.md
// section 5). Peers pin it: nodes through the consensus, clients through the
// provider's user database. It is a distinct type from IdentityPublicKey so
// that one can never stand in for the other.
type LinkPublicKey [KeySize]byte

// ParseLinkPublicKey parses the text form written by String: exactly 64
// lowercase hex characters encoding a valid Ed25519 public key.
func ParseLinkPublicKey(s string) (LinkPublicKey, error) {
	b, err := parseHex("link public key", s)
	if err != nil {
		return LinkPublicKey{}, err
	}
	return NewLinkPublicKey(b[:])
}

// NewLinkPublicKey checks and copies a 32-byte Ed25519 public key.
func NewLinkPublicKey(b []byte) (LinkPublicKey, error) {
	if len(b) != KeySize {
		return LinkPublicKey{}, fmt.Errorf("keys: link public key is %d bytes, want %d: %w", len(b), KeySize, ErrInvalidKey)
	}
	k := LinkPublicKey(b)
	if err := validEd25519Public((*[KeySize]byte)(&k)); err != nil {
		return LinkPublicKey{}, fmt.Errorf("keys: link public key: %v: %w", err, ErrInvalidKey)
	}
	return k, nil
}

// LinkPublicKeyFromEd25519 converts the public key of a peer's certificate,
// as found in x509.Certificate.PublicKey, with the checks of NewLinkPublicKey.
func LinkPublicKeyFromEd25519(pub crypto.PublicKey) (LinkPublicKey, error) {
	edPub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return LinkPublicKey{}, fmt.Errorf("keys: link public key: got %T, want ed25519.PublicKey: %w", pub, ErrInvalidKey)
	}
	return NewLinkPublicKey(edPub)
}

// Ed25519 returns a copy of k as an ed25519.PublicKey, the type crypto/tls and
// crypto/x509 use.
func (k LinkPublicKey) Ed25519() ed25519.PublicKey {
	return ed25519.PublicKey(append([]byte(nil), k[:]...))
}

// Verify reports whether sig is a valid signature of msg by k. It returns
// false for a key that ParseLinkPublicKey would refuse (such as the zero
// value).
func (k LinkPublicKey) Verify(msg, sig []byte) bool {
	return verifyEd25519((*[KeySize]byte)(&k), msg, sig)
}

// Equal compares two keys in constant time.
func (k LinkPublicKey) Equal(o LinkPublicKey) bool {
	return equal32((*[KeySize]byte)(&k), (*[KeySize]byte)(&o))
}

// IsZero reports whether k is the zero value (no key).
func (k LinkPublicKey) IsZero() bool { return k == LinkPublicKey{} }

// String returns the key as 64 lowercase hex characters.
func (k LinkPublicKey) String() string {
	return string(appendHex(nil, (*[KeySize]byte)(&k)))
}

// MarshalText implements encoding.TextMarshaler (the String form).
func (k LinkPublicKey) MarshalText() ([]byte, error) {
	return appendHex(nil, (*[KeySize]byte)(&k)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with the rules of
// ParseLinkPublicKey. On error k is left unchanged.
func (k *LinkPublicKey) UnmarshalText(text []byte) error {
	v, err := ParseLinkPublicKey(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// LinkPrivateKey is the Ed25519 key of a TLS link certificate. The zero
// value is not usable; create keys with GenerateLinkKey,
// NewLinkPrivateKey or LoadLinkKey.
type LinkPrivateKey struct {
	k edPrivate
}

// GenerateLinkKey creates a key from 32 bytes of rand (crypto/rand when
// rand is nil).
func GenerateLinkKey(rand io.Reader) (*LinkPrivateKey, error) {
	var seed [KeySize]byte
	defer wipe(seed[:])
	if err := readSeed(rand, &seed); err != nil {
		return nil, fmt.Errorf("keys: generating link key: %w", err)
	}
	return NewLinkPrivateKey(seed[:])
}

// NewLinkPrivateKey creates a key from its 32-byte Ed25519 seed (RFC 8032
// private key). seed is copied; the caller should wipe its copy.
func NewLinkPrivateKey(seed []byte) (*LinkPrivateKey, error) {
	k := new(LinkPrivateKey)
	if err := k.k.setSeed(seed); err != nil {
		return nil, fmt.Errorf("keys: link private key: %w", err)
	}
	return k, nil
}

// Public returns the public key. It panics if k has been wiped.
func (k *LinkPrivateKey) Public() LinkPublicKey {
	k.k.live("link private key")
	return LinkPublicKey(k.k.public())
}

// Sign returns the Ed25519 signature of msg. It panics if k has been wiped.
func (k *LinkPrivateKey) Sign(msg []byte) []byte {
	k.k.live("link private key")
	return k.k.sign(msg)
}

// Equal compares two keys in constant time. A nil or wiped key equals
// nothing, not even itself.
func (k *LinkPrivateKey) Equal(o *LinkPrivateKey) bool {
	if k == nil || o == nil {
		return false
	}
	return k.k.equal(&o.k)
}

// Wipe zeroes the key. Any later use panics (see the package doc). Wipe on
// a nil key does nothing, so it is safe in a defer.
func (k *LinkPrivateKey) Wipe() {
	if k != nil {
		k.k.wipe()
	}
}

// Format keeps the secret out of logs and error messages whatever the verb.
func (k *LinkPrivateKey) Format(f fmt.State, verb rune) {
	io.WriteString(f, "keys.LinkPrivateKey{REDACTED}")
}

// Signer returns a crypto.Signer backed by k, for tls.Certificate.PrivateKey
// and x509.CreateCertificate. It signs with pure Ed25519 only (opts.HashFunc()
// must be zero, as crypto/tls and crypto/x509 pass for Ed25519 keys, or opts
// nil); other
// options are refused. The Signer shares k's storage: after k.Wipe, its Sign
// returns ErrWiped and its Public panics.
func (k *LinkPrivateKey) Signer() crypto.Signer {
	k.k.live("link private key")
	return linkSigner{k}
}

type linkSigner struct{ k *LinkPrivateKey }

func (s linkSigner) Public() crypto.PublicKey {
	return s.k.Public().Ed25519()
}

func (s linkSigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if !s.k.k.ok {
		return nil, ErrWiped
	}
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("keys: link key signs with pure Ed25519 only (hash must be 0)")
	}
	if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
		return nil, errors.New("keys: link key signs with pure Ed25519 only (no context)")
	}
	return s.k.k.sign(msg), nil
}
