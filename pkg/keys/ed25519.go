package keys

import (
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
)

// validEd25519Public reports whether pub is the canonical encoding of a curve
// point that is not of small order. Small-order keys admit signatures that
// verify for many messages, and non-canonical encodings would give one key two
// IDs, so both are refused for identity and link keys.
func validEd25519Public(pub *[KeySize]byte) error {
	p, err := new(edwards25519.Point).SetBytes(pub[:])
	if err != nil {
		return errors.New("not a point on the curve")
	}
	if subtle.ConstantTimeCompare(p.Bytes(), pub[:]) != 1 {
		return errors.New("non-canonical point encoding")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return errors.New("point of small order")
	}
	return nil
}

// edPrivate holds an Ed25519 private key in a fixed array (seed followed by
// public key, the crypto/ed25519 layout) so that Wipe can reach every byte.
// ok is false for the zero value and after wipe, so neither can sign.
type edPrivate struct {
	key [ed25519.PrivateKeySize]byte
	ok  bool
}

// readSeed fills seed from rand, or from crypto/rand when rand is nil.
func readSeed(rand io.Reader, seed *[KeySize]byte) error {
	if rand == nil {
		rand = cryptorand.Reader
	}
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return fmt.Errorf("reading randomness: %w", err)
	}
	return nil
}

// setSeed derives the key from a 32-byte seed. The all-zero seed is refused:
// it never comes from a working random source and is the signature of an
// uninitialised buffer.
func (k *edPrivate) setSeed(seed []byte) error {
	if len(seed) != ed25519.SeedSize {
		return fmt.Errorf("seed is %d bytes, want %d: %w", len(seed), ed25519.SeedSize, ErrInvalidKey)
	}
	if isZero32((*[KeySize]byte)(seed)) {
		return fmt.Errorf("all-zero seed: %w", ErrInvalidKey)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	copy(k.key[:], priv)
	wipe(priv)
	k.ok = true
	return nil
}

func (k *edPrivate) live(what string) {
	if !k.ok {
		panic("keys: use of wiped or uninitialised " + what)
	}
}

func (k *edPrivate) public() (pub [KeySize]byte) {
	copy(pub[:], k.key[ed25519.SeedSize:])
	return pub
}

func (k *edPrivate) seed() *[KeySize]byte {
	return (*[KeySize]byte)(k.key[:ed25519.SeedSize])
}

func (k *edPrivate) sign(msg []byte) []byte {
	return ed25519.Sign(ed25519.PrivateKey(k.key[:]), msg)
}

// equal compares seeds in constant time; the public half follows from the
// seed. A wiped or uninitialised key equals nothing.
func (k *edPrivate) equal(o *edPrivate) bool {
	if !k.ok || !o.ok {
		return false
	}
	return equal32(k.seed(), o.seed())
}

func (k *edPrivate) wipe() {
	wipe(k.key[:])
	k.ok = false
}

// verify checks an Ed25519 signature, refusing keys that ParseX would refuse
// so that a key built by conversion from a raw array gets the same checks.
func verifyEd25519(pub *[KeySize]byte, msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || validEd25519Public(pub) != nil {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(pub[:]), msg, sig)
}
