package keys

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
)

// SphinxPublicKey is a node's X25519 public key for one epoch, published in
// its descriptor and used by senders to build Sphinx packets.
type SphinxPublicKey [KeySize]byte

// x25519P is 2^255-19 in little-endian order, the field prime of Curve25519.
var x25519P = [KeySize]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// lowOrderProbe is a fixed private key used to detect low-order public keys:
// X25519 clamps every scalar to a multiple of the cofactor 8, so the shared
// secret with a point is all zero exactly when the point's order divides 8,
// and crypto/ecdh reports that as an error. The probe's value is public and
// irrelevant; it only has to be a valid X25519 private key.
var lowOrderProbe = func() *ecdh.PrivateKey {
	var s [KeySize]byte
	for i := range s {
		s[i] = byte(i + 1)
	}
	k, err := ecdh.X25519().NewPrivateKey(s[:])
	if err != nil {
		panic("keys: X25519 unavailable: " + err.Error())
	}
	return k
}()

// validX25519Public refuses non-canonical encodings (u >= p, which includes
// every key with the top bit set: X25519 ignores that bit, so such a key
// would be a second name for another key, and no X25519 output has it) and
// low-order points (the all-zero key among them), whose shared secret is
// predictable.
func validX25519Public(k *[KeySize]byte) error {
	// Little-endian comparison k < p, most significant byte first. Public
	// key bytes are not secret, so a variable-time loop is fine.
	canonical := false
	for i := KeySize - 1; i >= 0; i-- {
		if k[i] != x25519P[i] {
			canonical = k[i] < x25519P[i]
			break
		}
	}
	if !canonical {
		return errors.New("non-canonical encoding (not less than 2^255-19)")
	}
	pub, err := ecdh.X25519().NewPublicKey(k[:])
	if err != nil {
		return err
	}
	if _, err := lowOrderProbe.ECDH(pub); err != nil {
		return errors.New("low-order point")
	}
	return nil
}

// ParseSphinxPublicKey parses the text form written by String: exactly 64
// lowercase hex characters encoding a canonical X25519 public key that is not
// a low-order point.
func ParseSphinxPublicKey(s string) (SphinxPublicKey, error) {
	b, err := parseHex("sphinx public key", s)
	if err != nil {
		return SphinxPublicKey{}, err
	}
	return NewSphinxPublicKey(b[:])
}

// NewSphinxPublicKey checks and copies a 32-byte X25519 public key.
func NewSphinxPublicKey(b []byte) (SphinxPublicKey, error) {
	if len(b) != KeySize {
		return SphinxPublicKey{}, fmt.Errorf("keys: sphinx public key is %d bytes, want %d: %w", len(b), KeySize, ErrInvalidKey)
	}
	k := SphinxPublicKey(b)
	if err := validX25519Public((*[KeySize]byte)(&k)); err != nil {
		return SphinxPublicKey{}, fmt.Errorf("keys: sphinx public key: %v: %w", err, ErrInvalidKey)
	}
	return k, nil
}

// Equal compares two keys in constant time.
func (k SphinxPublicKey) Equal(o SphinxPublicKey) bool {
	return equal32((*[KeySize]byte)(&k), (*[KeySize]byte)(&o))
}

// IsZero reports whether k is the zero value (no key).
func (k SphinxPublicKey) IsZero() bool { return k == SphinxPublicKey{} }

// String returns the key as 64 lowercase hex characters.
func (k SphinxPublicKey) String() string {
	return string(appendHex(nil, (*[KeySize]byte)(&k)))
}

// MarshalText implements encoding.TextMarshaler (the String form).
func (k SphinxPublicKey) MarshalText() ([]byte, error) {
	return appendHex(nil, (*[KeySize]byte)(&k)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with the rules of
// ParseSphinxPublicKey. On error k is left unchanged.
func (k *SphinxPublicKey) UnmarshalText(text []byte) error {
	v, err := ParseSphinxPublicKey(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// SphinxPrivateKey is a node's X25519 private key for one epoch. It holds the
// 32-byte scalar as given (X25519 clamps it at use) in a fixed array that
// Wipe zeroes. The zero value is not usable.
type SphinxPrivateKey struct {
	scalar [KeySize]byte
	pub    SphinxPublicKey
	ok     bool // false for the zero value and after Wipe
}

// GenerateSphinxKey creates a key from 32 bytes of rand (crypto/rand when
// rand is nil).
func GenerateSphinxKey(rand io.Reader) (*SphinxPrivateKey, error) {
	var s [KeySize]byte
	defer wipe(s[:])
	if err := readSeed(rand, &s); err != nil {
		return nil, fmt.Errorf("keys: generating sphinx key: %w", err)
	}
	return NewSphinxPrivateKey(s[:])
}

// NewSphinxPrivateKey creates a key from a 32-byte X25519 scalar. b is
// copied; the caller should wipe its copy. The all-zero scalar is refused: it
// never comes from a working random source.
func NewSphinxPrivateKey(b []byte) (*SphinxPrivateKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("keys: sphinx private key is %d bytes, want %d: %w", len(b), KeySize, ErrInvalidKey)
	}
	if isZero32((*[KeySize]byte)(b)) {
		return nil, fmt.Errorf("keys: sphinx private key: all-zero scalar: %w", ErrInvalidKey)
	}
	// crypto/ecdh keeps its own copy of the scalar in the returned key; it is
	// dropped here and freed by the runtime, out of reach of Wipe.
	ek, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("keys: sphinx private key: %w", err)
	}
	k := &SphinxPrivateKey{pub: SphinxPublicKey(ek.PublicKey().Bytes()), ok: true}
	copy(k.scalar[:], b)
	return k, nil
}

func (k *SphinxPrivateKey) live() {
	if !k.ok {
		panic("keys: use of wiped or uninitialised sphinx private key")
	}
}

// Public returns the public key. It panics if k has been wiped.
func (k *SphinxPrivateKey) Public() SphinxPublicKey {
	k.live()
	return k.pub
}

// Scalar returns a pointer to the key's own 32-byte X25519 scalar, for
// pkg/sphinx. Callers must not modify it, keep the pointer, or copy the bytes
// anywhere that outlives the call that needs them: Wipe zeroes this array and
// cannot reach copies. It panics if k has been wiped.
func (k *SphinxPrivateKey) Scalar() *[KeySize]byte {
	k.live()
	return &k.scalar
}

// Equal compares two keys in constant time. A nil or wiped key equals
// nothing, not even itself.
func (k *SphinxPrivateKey) Equal(o *SphinxPrivateKey) bool {
	if k == nil || o == nil || !k.ok || !o.ok {
		return false
	}
	return equal32(&k.scalar, &o.scalar)
}

// Wipe zeroes the scalar. Any later use panics (see the package doc). Wipe on
// a nil key does nothing, so it is safe in a defer.
func (k *SphinxPrivateKey) Wipe() {
	if k == nil {
		return
	}
	wipe(k.scalar[:])
	k.pub = SphinxPublicKey{}
	k.ok = false
}

// Format keeps the secret out of logs and error messages whatever the verb.
func (k *SphinxPrivateKey) Format(f fmt.State, verb rune) {
	io.WriteString(f, "keys.SphinxPrivateKey{REDACTED}")
}
