package keys

import (
	"crypto/ecdh"
	"crypto/sha512"
	"fmt"

	"filippo.io/edwards25519"
)

// A link key also receives the mail its provider holds for the client (docs/spec/services.md
// section 6): the provider seals mail to the X25519 form of the user's Ed25519 link public key,
// which it already has, so no second key has to be registered. The conversion is the standard
// one (RFC 7748 section 4.1's birational map for the public key; the clamped first half of
// SHA-512 of the seed, which is the Ed25519 secret scalar of RFC 8032 section 5.1.5, for the
// private key), as libsodium's crypto_sign_ed25519_pk_to_curve25519 and age's ssh-ed25519
// recipients use. Using one key for Ed25519 signatures and X25519 key agreement is analysed in
// Thormarker, "On using the same key pair for Ed25519 and an X25519 based KEM" (2021).

// X25519 returns the X25519 public key that corresponds to the Ed25519 link public key k.
func (k LinkPublicKey) X25519() (*ecdh.PublicKey, error) {
	p, err := edwards25519.NewIdentityPoint().SetBytes(k[:])
	if err != nil {
		return nil, fmt.Errorf("keys: link public key is not a curve point: %w", ErrInvalidKey)
	}
	pub, err := ecdh.X25519().NewPublicKey(p.BytesMontgomery())
	if err != nil {
		return nil, fmt.Errorf("keys: link public key to X25519: %w", err)
	}
	return pub, nil
}

// X25519 returns the X25519 private key that corresponds to k: the first 32 bytes of
// SHA-512(seed), which X25519 clamps exactly as Ed25519 does. Its public key equals
// k.Public().X25519(). The returned key holds a copy of the scalar inside crypto/ecdh that
// Wipe cannot reach (see the package doc); callers should drop it after use. It panics if k
// has been wiped.
func (k *LinkPrivateKey) X25519() (*ecdh.PrivateKey, error) {
	k.k.live("link private key")
	h := sha512.Sum512(k.k.seed()[:])
	defer wipe(h[:])
	priv, err := ecdh.X25519().NewPrivateKey(h[:32])
	if err != nil {
		return nil, fmt.Errorf("keys: link private key to X25519: %w", err)
	}
	return priv, nil
}
