// Package primitives is the only place pkg/sphinx touches cryptographic primitives: X25519
// (RFC 7748), HKDF-SHA256, the AES-256-CTR key stream, HMAC-SHA256 and the Lioness wide-block
// cipher built from them. Section numbers (§n) refer to docs/spec/sphinx.md.
package primitives

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"hash"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
	"github.com/cloudflare/circl/dh/x25519"
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

// X25519 computes the RFC 7748 function: clamp the scalar, mask the high bit of u, then multiply
// (§3). It uses github.com/cloudflare/circl's constant-time ladder (ADX/BMI2 assembly on amd64,
// portable Go elsewhere): measured on the project machine it costs two thirds of the ladder
// over filippo.io/edwards25519/field and a third of crypto/ecdh, which also builds a public key
// for every private key (docs/BENCHMARKS.md, pkg/sphinx). The all-zero check is ours, on the
// output, exactly as §9 step 3 states it; circl's own answer compares the input against a list of
// low-order points, which is equivalent but is not what the spec says.
func X25519(dst *[32]byte, scalar *[32]byte, u *[32]byte) error {
	x25519.Shared((*x25519.Key)(dst), (*x25519.Key)(scalar), (*x25519.Key)(u))
	if IsZero(dst[:]) {
		return ErrZeroPoint
	}
	return nil
}

// Scalars used to turn a reduced scalar into a clamped one (clampedForm).
var (
	// inv8 is 8^-1 mod l.
	inv8 = mustScalar("792fdce229e50661d0da1c7db39dd30700000000000000000000000000000006")
	// two254 is 2^254 mod l.
	two254 = mustScalar("39841ee9b0d6c8f77c291917641263c1ffffffffffffffffffffffffffffff0f")
)

// clampedForm writes to out a clamped X25519 scalar k (bits 0 to 2 and 255 clear, bit 254 set)
// with k = c or k = -c modulo l, so that for a point P of the prime-order subgroup
// X25519(k, P) = u(c*P) (u(-Q) = u(Q)). With k = 2^254 + 8j, j must be (+-c - 2^254)/8 mod l and
// below 2^251; the two candidates j+ and j- sum to l - 2^252 or to 2l - 2^252, so at least one
// is below 2^251 except when both fall in [2^251, 2^251 + 2(l - 2^252)), a probability of about
// 2^-126 for a random c. The choice is constant time; the result is false in that case.
func clampedForm(out *[32]byte, c *edwards25519.Scalar) bool {
	var jp, jm edwards25519.Scalar
	jp.Subtract(c, two254)
	jp.Multiply(&jp, inv8)
	jm.Negate(c)
	jm.Subtract(&jm, two254)
	jm.Multiply(&jm, inv8)
	var bp, bm [32]byte
	copy(bp[:], jp.Bytes())
	copy(bm[:], jm.Bytes())
	okp := subtle.ConstantTimeByteEq(bp[31]>>3, 0)
	okm := subtle.ConstantTimeByteEq(bm[31]>>3, 0)
	*out = bm
	subtle.ConstantTimeCopy(okp, out[:], bp[:])
	Wipe(bp[:])
	Wipe(bm[:])
	jp = edwards25519.Scalar{}
	jm = edwards25519.Scalar{}
	// k = 8j + 2^254; j < 2^251, so the shift loses nothing.
	for i := 31; i > 0; i-- {
		out[i] = out[i]<<3 | out[i-1]>>5
	}
	out[0] <<= 3
	out[31] |= 0x40
	return okp|okm == 1
}

// ScalarMultReduced multiplies u by the scalar k, reduced modulo the group order (§3.2: the
// sender's product of clamped scalars). For u in the prime-order subgroup (every honest key)
// the result is u(k*P), which equals the sequential X25519 computation the spec defines; for a
// u with a small-order component it is that of the sequential computation too, since the
// clamped form below is a multiple of the cofactor, as X25519's own scalars are. It runs on
// circl's ladder through clampedForm; in the 2^-126 case that has no clamped form it falls back
// to the unclamped ladder (a branch on a secret too improbable to be observed).
func ScalarMultReduced(dst *[32]byte, k *edwards25519.Scalar, u *[32]byte) error {
	var kb [32]byte
	if clampedForm(&kb, k) {
		x25519.Shared((*x25519.Key)(dst), (*x25519.Key)(&kb), (*x25519.Key)(u))
		Wipe(kb[:])
	} else {
		scalarMultReducedLadder(dst, k, u)
	}
	if IsZero(dst[:]) {
		return ErrZeroPoint
	}
	return nil
}

// scalarMultReducedLadder is ScalarMultReduced on the unclamped ladder: k*P computed as
// (k/8 mod l) * (8*P), which kills a small-order component as the clamped form does.
func scalarMultReducedLadder(dst *[32]byte, k *edwards25519.Scalar, u *[32]byte) {
	var p8, kb [32]byte
	copy(p8[:], u[:])
	multiplyByCofactor(&p8)
	var k8 edwards25519.Scalar
	k8.Multiply(k, inv8)
	copy(kb[:], k8.Bytes())
	ladder(dst, &kb, &p8)
	k8 = edwards25519.Scalar{}
	Wipe(kb[:])
}

// multiplyByCofactor replaces u by u(8*P).
func multiplyByCofactor(u *[32]byte) {
	eight := [32]byte{8}
	ladder(u, &eight, u)
}

// BaseMultiples sets dst[i] to the u-coordinate of ks[i]*G (§8 step 1, the alphas), with the
// fast fixed-base Edwards multiplication and the birational map u = (Z+Y)/(Z-Y), inverting all
// the denominators with one field inversion (Montgomery's trick: three multiplications per
// extra point instead of an inversion each). It fails if any result is all zeros.
func BaseMultiples(dst [][32]byte, ks []edwards25519.Scalar) error {
	n := len(ks)
	if len(dst) != n {
		panic("primitives: BaseMultiples lengths differ")
	}
	if n == 0 {
		return nil
	}
	num := make([]field.Element, n)
	den := make([]field.Element, n)
	prefix := make([]field.Element, n)
	var p edwards25519.Point
	for i := range ks {
		p.ScalarBaseMult(&ks[i])
		_, y, z, _ := p.ExtendedCoordinates()
		num[i].Add(z, y)
		den[i].Subtract(z, y)
		if i == 0 {
			prefix[0].Set(&den[0])
		} else {
			prefix[i].Multiply(&prefix[i-1], &den[i])
		}
	}
	// A zero denominator (the identity, probability 2^-252) makes the inverse zero and every u
	// zero: refused below, as one zero alpha would be.
	var inv, di field.Element
	inv.Invert(&prefix[n-1])
	for i := n - 1; i >= 0; i-- {
		if i > 0 {
			di.Multiply(&inv, &prefix[i-1])
			inv.Multiply(&inv, &den[i])
		} else {
			di.Set(&inv)
		}
		num[i].Multiply(&num[i], &di)
		copy(dst[i][:], num[i].Bytes())
	}
	for i := range dst {
		if IsZero(dst[i][:]) {
			return ErrZeroPoint
		}
	}
	return nil
}

// ScalarBaseMultReduced returns the u-coordinate of k*G (BaseMultiples for one scalar).
func ScalarBaseMultReduced(dst *[32]byte, k *edwards25519.Scalar) error {
	out := make([][32]byte, 1)
	err := BaseMultiples(out, []edwards25519.Scalar{*k})
	*dst = out[0]
	return err
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

func mustScalar(h string) *edwards25519.Scalar {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(b)
	if err != nil {
		panic(err)
	}
	return s
}

// ladder is the Montgomery ladder of RFC 7748 section 5 over GF(2^255-19), processing bits 254
// down to 0 of k in constant time, without clamping. It is only the fallback of
// ScalarMultReduced and the reference the tests compare circl's ladder with.
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

// HMAC computes HMAC-SHA256 (RFC 2104) with any key of at most one block over two SHA-256
// states that it resets instead of allocating: crypto/hmac.New allocates its hashes and pads
// for every key, and an unwrap uses about fifteen keys (one MAC, the HKDF blocks, two Lioness
// hash rounds). Every key in this format is 32 bytes (§3, §6). An HMAC is not safe for
// concurrent use; pkg/sphinx keeps a pool of them.
type HMAC struct {
	inner, outer hash.Hash
	pad          [sha256.BlockSize]byte
	sum          [sha256.Size]byte
	buf          [128]byte
	// kdfInner and kdfOuter are the SHA-256 states after a KDF's prk XOR ipad and prk XOR opad
	// (marshalled), so each HKDF-Expand block costs two compressions instead of four.
	kdfInner, kdfOuter []byte
	kdfStates          [2][stateSize]byte
}

// stateSize bounds a marshalled SHA-256 state (108 bytes in the standard library).
const stateSize = 128

// sha256State is what crypto/sha256's digest implements to save and restore its state.
type sha256State interface {
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

// NewHMAC returns an HMAC ready for any key.
func NewHMAC() *HMAC { return &HMAC{inner: sha256.New(), outer: sha256.New()} }

// begin starts HMAC(key, ...): the inner hash has absorbed key XOR ipad.
func (m *HMAC) begin(key []byte) {
	if len(key) > sha256.BlockSize {
		panic("primitives: HMAC key longer than a block") // never: every key is 32 bytes
	}
	clear(m.pad[:])
	copy(m.pad[:], key)
	for i := range m.pad {
		m.pad[i] ^= 0x36
	}
	m.inner.Reset()
	m.inner.Write(m.pad[:])
}

// end finishes into m.sum and wipes the pad; the inner and outer states are reset, so no
// key-dependent chaining value stays behind.
func (m *HMAC) end() {
	m.inner.Sum(m.sum[:0])
	for i := range m.pad {
		m.pad[i] ^= 0x36 ^ 0x5c
	}
	m.outer.Reset()
	m.outer.Write(m.pad[:])
	m.outer.Write(m.sum[:])
	m.outer.Sum(m.sum[:0])
	clear(m.pad[:])
	m.inner.Reset()
	m.outer.Reset()
}

// Scrub overwrites what the SHA-256 states keep of the last inputs: Reset restores the chaining
// value but leaves the last partial block in the state's buffer, and in an HKDF block that is
// the previous output block, key material. Writing 63 zero bytes and then one more fills the
// buffer with zeros (the 64th compresses it); a pool calls Scrub before keeping an HMAC.
func (m *HMAC) Scrub() {
	for _, h := range [2]hash.Hash{m.inner, m.outer} {
		h.Reset()
		h.Write(zeroBlock[:sha256.BlockSize-1])
		h.Write(zeroBlock[:1])
		h.Reset()
	}
	clear(m.pad[:])
	clear(m.sum[:])
	clear(m.buf[:])
	clear(m.kdfStates[0][:])
	clear(m.kdfStates[1][:])
	m.kdfInner, m.kdfOuter = nil, nil
}

// zeroBlock is only read (a package variable, so that passing it to a hash allocates nothing).
var zeroBlock [sha256.BlockSize]byte

// MAC writes HMAC-SHA256(key, parts...) into dst.
func (m *HMAC) MAC(dst *[MACSize]byte, key []byte, parts ...[]byte) {
	m.begin(key)
	for _, p := range parts {
		m.inner.Write(p)
	}
	m.end()
	*dst = m.sum
	clear(m.sum[:])
}

// MAC returns HMAC-SHA256(key, parts...) with a fresh HMAC (for tests and cold paths).
func MAC(key []byte, parts ...[]byte) [MACSize]byte {
	var out [MACSize]byte
	NewHMAC().MAC(&out, key, parts...)
	return out
}

// KDF holds the HKDF-Extract output for one shared secret, so each labelled key (§6) costs one
// Expand. Expand is RFC 5869 section 2.3 written out over the HMAC above, instead of
// crypto/hkdf.Expand, which builds a new HMAC for every call. TestKDFMatchesCryptoHKDF checks
// the two agree.
type KDF struct {
	prk [sha256.Size]byte
	m   *HMAC
}

// NewKDF runs HKDF-Extract(salt, ikm) with a fresh HMAC.
func NewKDF(salt, ikm []byte) *KDF {
	k := NewHMAC().KDF(salt, ikm)
	return &k
}

// KDF runs HKDF-Extract(salt, ikm) = HMAC(salt, ikm) and returns a KDF that expands with m.
// An HMAC serves one KDF at a time: a second KDF from m replaces the first one's states.
func (m *HMAC) KDF(salt, ikm []byte) KDF {
	k := KDF{m: m}
	m.MAC(&k.prk, salt, ikm)
	m.begin(k.prk[:])
	m.kdfInner = m.saveState(m.inner, 0)
	for i := range m.pad {
		m.pad[i] ^= 0x36 ^ 0x5c
	}
	m.outer.Reset()
	m.outer.Write(m.pad[:])
	m.kdfOuter = m.saveState(m.outer, 1)
	clear(m.pad[:])
	return k
}

func (m *HMAC) saveState(h hash.Hash, i int) []byte {
	b, err := h.(sha256State).AppendBinary(m.kdfStates[i][:0])
	if err != nil || len(b) > stateSize {
		panic("primitives: saving a SHA-256 state") // a fixed-size struct: cannot fail
	}
	return b
}

func restoreState(h hash.Hash, b []byte) {
	if err := h.(sha256State).UnmarshalBinary(b); err != nil {
		panic("primitives: restoring a SHA-256 state: " + err.Error()) // saved by saveState
	}
}

// Expand writes HKDF-Expand(prk, label, len(dst)) into dst; len(dst) <= 255*32 and
// len(label) <= 64.
func (k *KDF) Expand(dst []byte, label string) {
	if len(dst) > 255*sha256.Size || len(label) > len(k.m.buf)-sha256.Size-1 {
		panic("primitives: HKDF-Expand length over 255 blocks or label too long")
	}
	m := k.m
	prev := 0
	for i, off := 1, 0; off < len(dst); i++ {
		// T(i) = HMAC(prk, T(i-1) || label || i), assembled in m.buf so the hash's Write takes
		// one slice that does not escape from here.
		b := append(m.buf[:0], m.buf[:prev]...)
		b = append(b, label...)
		b = append(b, byte(i))
		restoreState(m.inner, m.kdfInner)
		m.inner.Write(b)
		m.inner.Sum(m.sum[:0])
		restoreState(m.outer, m.kdfOuter)
		m.outer.Write(m.sum[:])
		m.outer.Sum(m.sum[:0])
		copy(m.buf[:sha256.Size], m.sum[:])
		prev = sha256.Size
		off += copy(dst[off:], m.sum[:])
	}
	clear(m.buf[:])
	clear(m.sum[:])
}

// Wipe erases the pseudo-random key and the HMAC states derived from it.
func (k *KDF) Wipe() {
	Wipe(k.prk[:])
	clear(k.m.kdfStates[0][:])
	clear(k.m.kdfStates[1][:])
	k.m.kdfInner, k.m.kdfOuter = nil, nil
}

// XORKeyStream XORs src with S(key, len(src)) (§3) into dst.
func XORKeyStream(dst, src []byte, key []byte) {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("primitives: " + err.Error()) // key is always 32 bytes
	}
	cipher.NewCTR(block, zeroIV[:]).XORKeyStream(dst, src)
}

// zeroIV is the initial counter block of every key stream, all zeros: every key is single-use
// (§3). A package variable that is only read, so that passing it allocates nothing.
var zeroIV [aes.BlockSize]byte

// Lioness is the wide-block cipher of §7 with one 128-byte key, hashing with an HMAC it is
// given (so a caller with a pooled HMAC allocates nothing).
type Lioness struct {
	key [LionessKeySize]byte
	m   *HMAC
}

// NewLioness copies key, which must be LionessKeySize bytes, and hashes with a fresh HMAC.
func NewLioness(key []byte) *Lioness {
	l := NewHMAC().Lioness(key)
	return &l
}

// Lioness returns the cipher of §7 with key (LionessKeySize bytes), hashing with m.
func (m *HMAC) Lioness(key []byte) Lioness {
	if len(key) != LionessKeySize {
		panic("primitives: lioness key length")
	}
	l := Lioness{m: m}
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
	var h [MACSize]byte
	l.m.MAC(&h, l.k(ki), block[StreamKeySize:])
	subtle.XORBytes(block[:StreamKeySize], block[:StreamKeySize], h[:])
	Wipe(h[:])
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
