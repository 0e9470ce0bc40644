package keys

import (
	"fmt"
	"io"
)

// IdentityPublicKey is a node's long-term Ed25519 public key. It is the
// node's ID: the next-hop ID in Sphinx routing commands and the node key in
// the consensus document.
type IdentityPublicKey [KeySize]byte

// ParseIdentityPublicKey parses the text form written by String: exactly 64
// lowercase hex characters encoding a valid Ed25519 public key.
func ParseIdentityPublicKey(s string) (IdentityPublicKey, error) {
	b, err := parseHex("identity public key", s)
	if err != nil {
		return IdentityPublicKey{}, err
	}
	return NewIdentityPublicKey(b[:])
}

// NewIdentityPublicKey checks and copies a 32-byte Ed25519 public key.
func NewIdentityPublicKey(b []byte) (IdentityPublicKey, error) {
	if len(b) != KeySize {
		return IdentityPublicKey{}, fmt.Errorf("keys: identity public key is %d bytes, want %d: %w", len(b), KeySize, ErrInvalidKey)
	}
	k := IdentityPublicKey(b)
	if err := validEd25519Public((*[KeySize]byte)(&k)); err != nil {
		return IdentityPublicKey{}, fmt.Errorf("keys: identity public key: %v: %w", err, ErrInvalidKey)
	}
	return k, nil
}

// Verify reports whether sig is a valid signature of msg by k. It returns
// false for a key that ParseIdentityPublicKey would refuse (such as the zero
// value).
func (k IdentityPublicKey) Verify(msg, sig []byte) bool {
	return verifyEd25519((*[KeySize]byte)(&k), msg, sig)
}

// Equal compares two keys in constant time.
func (k IdentityPublicKey) Equal(o IdentityPublicKey) bool {
	return equal32((*[KeySize]byte)(&k), (*[KeySize]byte)(&o))
}

// IsZero reports whether k is the zero value (no key).
func (k IdentityPublicKey) IsZero() bool { return k == IdentityPublicKey{} }

// String returns the key as 64 lowercase hex characters.
func (k IdentityPublicKey) String() string {
	return string(appendHex(nil, (*[KeySize]byte)(&k)))
}

// MarshalText implements encoding.TextMarshaler (the String form).
func (k IdentityPublicKey) MarshalText() ([]byte, error) {
	return appendHex(nil, (*[KeySize]byte)(&k)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with the rules of
// ParseIdentityPublicKey. On error k is left unchanged.
func (k *IdentityPublicKey) UnmarshalText(text []byte) error {
	v, err := ParseIdentityPublicKey(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// IdentityPrivateKey is a node's long-term Ed25519 signing key. The zero
// value is not usable; create keys with GenerateIdentityKey,
// NewIdentityPrivateKey or LoadIdentityKey.
type IdentityPrivateKey struct {
	k edPrivate
}

// GenerateIdentityKey creates a key from 32 bytes of rand (crypto/rand when
// rand is nil).
func GenerateIdentityKey(rand io.Reader) (*IdentityPrivateKey, error) {
	var seed [KeySize]byte
	defer wipe(seed[:])
	if err := readSeed(rand, &seed); err != nil {
		return nil, fmt.Errorf("keys: generating identity key: %w", err)
	}
	return NewIdentityPrivateKey(seed[:])
}

// NewIdentityPrivateKey creates a key from its 32-byte Ed25519 seed (RFC 8032
// private key). seed is copied; the caller should wipe its copy.
func NewIdentityPrivateKey(seed []byte) (*IdentityPrivateKey, error) {
	k := new(IdentityPrivateKey)
	if err := k.k.setSeed(seed); err != nil {
		return nil, fmt.Errorf("keys: identity private key: %w", err)
	}
	return k, nil
}

// Public returns the public key. It panics if k has been wiped.
func (k *IdentityPrivateKey) Public() IdentityPublicKey {
	k.k.live("identity private key")
	return IdentityPublicKey(k.k.public())
}

// Sign returns the Ed25519 signature of msg. It panics if k has been wiped.
func (k *IdentityPrivateKey) Sign(msg []byte) []byte {
	k.k.live("identity private key")
	return k.k.sign(msg)
}

// Equal compares two keys in constant time. A nil or wiped key equals
// nothing, not even itself.
func (k *IdentityPrivateKey) Equal(o *IdentityPrivateKey) bool {
	if k == nil || o == nil {
		return false
	}
	return k.k.equal(&o.k)
}

// Wipe zeroes the key. Any later use panics (see the package doc). Wipe on
// a nil key does nothing, so it is safe in a defer.
func (k *IdentityPrivateKey) Wipe() {
	if k != nil {
		k.k.wipe()
	}
}

// Format keeps the secret out of logs and error messages whatever the verb.
func (k *IdentityPrivateKey) Format(f fmt.State, verb rune) {
	io.WriteString(f, "keys.IdentityPrivateKey{REDACTED}")
}
