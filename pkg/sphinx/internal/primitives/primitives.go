// Package primitives is the only place pkg/sphinx touches cryptographic primitives: X25519
// (RFC 7748), HKDF-SHA256, the AES-256-CTR key stream, HMAC-SHA256 and the Lioness wide-block
// cipher built from them. Section numbers (§n) refer to docs/spec/sphinx.md.
package primitives

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"hash"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// Sizes fixed by the spec (§3, §4).
const (
	// PointSize is the size of an X25519 u-coordinate, public key or scalar.
	PointSize = 32
	// MACSize is the HMAC-SHA256 output size.
	MACSize = 32
	// StreamKeySize is the AES-256 key size.
	StreamKeySize = 32
	// LionessKeySize is four 32-byte round keys (§7).
	LionessKeySize = 4 * 32
	// LionessMinBlock is the smallest Lioness block: the left half is one AES-256 key and the
	// right half must not be empty.
	LionessMinBlock = StreamKeySize + 1
)

// ErrZeroPoint reports an X25519 result of all zeros (a low-order input point).
var ErrZeroPoint = errors.New("x25519 result is all zeros")

// X25519 computes the RFC 7748 function: clamp the scalar, then multiply the point u.
func X25519(dst *[32]byte, scalar *[32]byte, u *[32]byte) error {
	var k [32]byte
	copy(k[:], scalar[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	ladder(dst, &k, u)
	Wipe(k[:])
	if IsZero(dst[:]) {
		return ErrZeroPoint
	}
	return nil
}

// ScalarMultReduced multiplies u by the little-endian scalar k without clamping. The sender uses
// it with scalars reduced modulo the group order (§3.2); for points in the prime-order subgroup
// it equals the sequential X25519 computation the spec defines.
func ScalarMultReduced(dst *[32]byte, k *edwards25519.Scalar, u *[32]byte) error {
	var kb [32]byte
	copy(kb[:], k.Bytes())
	ladder(dst, &kb, u)
	Wipe(kb[:])
	if IsZero(dst[:]) {
		return ErrZeroPoint
	}
	return nil
}

// ScalarBaseMultReduced returns the u-coordinate of k*G, using the fast fixed-base Edwards
// multiplication and the birational map to Montgomery form.
func ScalarBaseMultReduced(dst *[32]byte, k *edwards25519.Scalar) error {
	p := new(edwards25519.Point).ScalarBaseMult(k)
	copy(dst[:], p.BytesMontgomery())
	if IsZero(dst[:]) {
		return ErrZeroPoint
	}
	return nil
}

// ClampedScalar returns clamp(b) mod l, the scalar X25519 would multiply by (§3.2).
func ClampedScalar(b []byte) *edwards25519.Scalar {
	s, err := new(edwards25519.Scalar).SetBytesWithClamping(b)
	if err != nil {
		// Only reachable with a length other than 32, a programming error.
		panic("primitives: " + err.Error())
	}
	return s
}

// ladder is the Montgomery ladder of RFC 7748 section 5 over GF(2^255-19), processing bits 254
// down to 0 of k in constant time. It is written here instead of using crypto/ecdh because
// crypto/ecdh only multiplies by a private key it has built, and building one performs an extra
// base-point multiplication: that would cost the mix one third more per unwrap.
func ladder(dst *[32]byte, k *[32]byte, u *[32]byte) {
	var x1, x2, z2, x3, z3 field.Element
	var a, aa, b, bb, e, c, d, da, cb field.Element
	if _, err := x1.SetBytes(u[:]); err != nil {
		panic("primitives: " + err.Error()) // 32 bytes always decode
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()
	swap := 0
	for t := 254; t >= 0; t-- {
		kt := int(k[t>>3]>>(t&7)) & 1
		swap ^= kt
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = kt

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)
		x3.Add(&da, &cb)
		x3.Square(&x3)
		z3.Subtract(&da, &cb)
		z3.Square(&z3)
		z3.Multiply(&z3, &x1)
		x2.Multiply(&aa, &bb)
		z2.Mult32(&e, 121665)
		z2.Add(&z2, &aa)
		z2.Multiply(&z2, &e)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	copy(dst[:], x2.Bytes())
}

// KDF holds the HKDF-Extract output for one shared secret, so each labelled key (§6) costs one
// Expand. Expand is RFC 5869 section 2.3 written out over one HMAC instance keyed with the
// pseudo-random key, reset for every block, instead of crypto/hkdf.Expand, which builds a new
// HMAC for every call: the unwrap path derives five keys per packet and the allocations showed
// in its profile. TestKDFMatchesCryptoHKDF checks the two agree.
type KDF struct {
	prk []byte
	h   hash.Hash
}

// NewKDF runs HKDF-Extract(salt, ikm).
func NewKDF(salt, ikm []byte) *KDF {
	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		panic("primitives: " + err.Error()) // SHA-256 extract cannot fail
	}
	return &KDF{prk: prk, h: hmac.New(sha256.New, prk)}
}

// Expand writes HKDF-Expand(prk, label, len(dst)) into dst; len(dst) <= 255*32.
func (k *KDF) Expand(dst []byte, label string) {
	if len(dst) > 255*sha256.Size {
		panic("primitives: HKDF-Expand length over 255 blocks")
	}
	var t [sha256.Size]byte
	var prev []byte
	for i, off := 1, 0; off < len(dst); i++ {
		k.h.Reset()
		k.h.Write(prev)
		k.h.Write([]byte(label))
		k.h.Write([]byte{byte(i)})
		prev = k.h.Sum(t[:0])
		off += copy(dst[off:], prev)
	}
	Wipe(t[:])
}

// Wipe erases the pseudo-random key. (The HMAC's internal pads are the standard library's and
// cannot be reached; they are garbage once the KDF is dropped.)
func (k *KDF) Wipe() { Wipe(k.prk) }

// XORKeyStream XORs src with S(key, len(src)) (§3) into dst.
func XORKeyStream(dst, src []byte, key []byte) {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("primitives: " + err.Error()) // key is always 32 bytes
	}
	// The counter block is all zeros: every key is single-use (§3).
	var iv [aes.BlockSize]byte
	cipher.NewCTR(block, iv[:]).XORKeyStream(dst, src)
}

// MAC returns HMAC-SHA256(key, parts...).
func MAC(key []byte, parts ...[]byte) [MACSize]byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	var out [MACSize]byte
	m.Sum(out[:0])
	return out
}

// Lioness is the wide-block cipher of §7 with one 128-byte key.
type Lioness struct {
	key [LionessKeySize]byte
}

// NewLioness copies key, which must be LionessKeySize bytes.
func NewLioness(key []byte) *Lioness {
	if len(key) != LionessKeySize {
		panic("primitives: lioness key length")
	}
	l := &Lioness{}
	copy(l.key[:], key)
	return l
}

func (l *Lioness) k(i int) []byte { return l.key[32*i : 32*(i+1)] }

func (l *Lioness) streamRound(block []byte, ki int) {
	var k [StreamKeySize]byte
	subtle.XORBytes(k[:], block[:StreamKeySize], l.k(ki))
	r := block[StreamKeySize:]
	XORKeyStream(r, r, k[:])
	Wipe(k[:])
}

func (l *Lioness) hashRound(block []byte, ki int) {
	h := MAC(l.k(ki), block[StreamKeySize:])
	subtle.XORBytes(block[:StreamKeySize], block[:StreamKeySize], h[:])
}

// Encrypt enciphers block in place. len(block) must be at least LionessMinBlock.
func (l *Lioness) Encrypt(block []byte) {
	if len(block) < LionessMinBlock {
		panic("primitives: lioness block too short")
	}
	l.streamRound(block, 0)
	l.hashRound(block, 1)
	l.streamRound(block, 2)
	l.hashRound(block, 3)
}

// Decrypt deciphers block in place.
func (l *Lioness) Decrypt(block []byte) {
	if len(block) < LionessMinBlock {
		panic("primitives: lioness block too short")
	}
	l.hashRound(block, 3)
	l.streamRound(block, 2)
	l.hashRound(block, 1)
	l.streamRound(block, 0)
}

// Wipe erases the key.
func (l *Lioness) Wipe() { Wipe(l.key[:]) }

// Wipe overwrites b with zeros.
func Wipe(b []byte) { clear(b) }

// IsZero reports in constant time whether b is all zeros.
func IsZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}
