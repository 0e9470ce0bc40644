package primitives

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"filippo.io/edwards25519"
)

func mustHex32(t *testing.T, s string) *[32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hex %q", s)
	}
	var out [32]byte
	copy(out[:], b)
	return &out
}

// RFC 7748 section 5.2.
func TestX25519RFC7748(t *testing.T) {
	vectors := []struct{ k, u, out string }{
		{"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
			"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
			"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
		{"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
			"e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
			"95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	}
	for _, v := range vectors {
		var got [32]byte
		if err := X25519(&got, mustHex32(t, v.k), mustHex32(t, v.u)); err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != v.out {
			t.Errorf("X25519(%s) = %x, want %s", v.k, got, v.out)
		}
	}
	// Iterated form, one and 1,000 iterations.
	k := mustHex32(t, "0900000000000000000000000000000000000000000000000000000000000000")
	u := *k
	for i := 1; i <= 1000; i++ {
		var r [32]byte
		if err := X25519(&r, k, &u); err != nil {
			t.Fatal(err)
		}
		u = *k
		*k = r
		switch i {
		case 1:
			if hex.EncodeToString(k[:]) != "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079" {
				t.Fatalf("iteration 1: %x", k)
			}
		case 1000:
			if hex.EncodeToString(k[:]) != "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51" {
				t.Fatalf("iteration 1000: %x", k)
			}
		}
	}
}

func TestX25519MatchesCryptoECDH(t *testing.T) {
	for range 50 {
		priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
		want, err := priv.ECDH(peer.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		var k, u, got [32]byte
		copy(k[:], priv.Bytes())
		copy(u[:], peer.PublicKey().Bytes())
		if err := X25519(&got, &k, &u); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:], want) {
			t.Fatalf("mismatch with crypto/ecdh")
		}
	}
}

func TestX25519LowOrderRejected(t *testing.T) {
	var k, zero, out [32]byte
	rand.Read(k[:])
	if err := X25519(&out, &k, &zero); err != ErrZeroPoint {
		t.Fatalf("zero point: err = %v", err)
	}
	one := [32]byte{1}
	if err := X25519(&out, &k, &one); err != ErrZeroPoint {
		t.Fatalf("order-4 point u=1... err = %v", err)
	}
}

// The sender's scalar-product shortcut (§3.2) equals sequential X25519.
func TestReducedScalarsMatchSequential(t *testing.T) {
	for range 20 {
		var a, b, c [32]byte
		rand.Read(a[:])
		rand.Read(b[:])
		rand.Read(c[:])
		y, _ := ecdh.X25519().GenerateKey(rand.Reader)
		var yu [32]byte
		copy(yu[:], y.PublicKey().Bytes())
		var base = [32]byte{9}

		// Sequential: X25519(c, X25519(b, X25519(a, y))) and alpha = X25519(b, X25519(a, 9)).
		var s1, s2, s3, al1, al2 [32]byte
		must(t, X25519(&s1, &a, &yu))
		must(t, X25519(&s2, &b, &s1))
		must(t, X25519(&s3, &c, &s2))
		must(t, X25519(&al1, &a, &base))
		must(t, X25519(&al2, &b, &al1))

		prod := new(edwards25519.Scalar).Multiply(ClampedScalar(a[:]), ClampedScalar(b[:]))
		var alpha, s [32]byte
		must(t, ScalarBaseMultReduced(&alpha, prod))
		if alpha != al2 {
			t.Fatal("alpha mismatch")
		}
		prod3 := new(edwards25519.Scalar).Multiply(prod, ClampedScalar(c[:]))
		must(t, ScalarMultReduced(&s, prod3, &yu))
		if s != s3 {
			t.Fatal("shared secret mismatch")
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLionessRoundTripAndAvalanche(t *testing.T) {
	key := make([]byte, LionessKeySize)
	rand.Read(key)
	l := NewLioness(key)
	for _, size := range []int{LionessMinBlock, 48, 100, 2048, 16400} {
		msg := make([]byte, size)
		rand.Read(msg)
		ct := bytes.Clone(msg)
		l.Encrypt(ct)
		if bytes.Equal(ct, msg) {
			t.Fatal("encrypt is identity")
		}
		pt := bytes.Clone(ct)
		l.Decrypt(pt)
		if !bytes.Equal(pt, msg) {
			t.Fatalf("size %d: round trip failed", size)
		}
		// Flipping one ciphertext bit changes about half the bits of every part of the output.
		for _, pos := range []int{0, size / 2, size - 1} {
			bad := bytes.Clone(ct)
			bad[pos] ^= 0x10
			l.Decrypt(bad)
			if size >= 48 && bytes.Equal(bad[:16], msg[:16]) {
				t.Fatalf("size %d pos %d: first 16 bytes survived tampering", size, pos)
			}
			if bytes.Equal(bad[size-1:], msg[size-1:]) && bytes.Equal(bad[size-2:], msg[size-2:]) {
				t.Fatalf("size %d pos %d: tail survived tampering", size, pos)
			}
		}
	}
	l.Wipe()
	if !IsZero(l.key[:]) {
		t.Fatal("wipe left key bytes")
	}
}

func TestKeyStreamIsAESCTRZeroIV(t *testing.T) {
	// AES-256 of the zero block under the zero key (FIPS 197 style known answer), as the first
	// 16 bytes of S(0^32, 16).
	var key [32]byte
	out := make([]byte, 16)
	XORKeyStream(out, out, key[:])
	if hex.EncodeToString(out) != "dc95c078a2408989ad48a21492842087" {
		t.Fatalf("S(0,16) = %x", out)
	}
}

func TestKDFMatchesCryptoHKDF(t *testing.T) {
	for _, n := range []int{1, 16, 32, 33, 64, 128, 200} {
		salt, ikm := make([]byte, 32), make([]byte, 32)
		rand.Read(salt)
		rand.Read(ikm)
		prk, _ := hkdf.Extract(sha256.New, ikm, salt)
		want, _ := hkdf.Expand(sha256.New, prk, "panoramix-sphinx-v1 test", n)
		got := make([]byte, n)
		k := NewKDF(salt, ikm)
		k.Expand(got, "panoramix-sphinx-v1 test")
		if !bytes.Equal(got, want) {
			t.Fatalf("length %d: Expand differs from crypto/hkdf", n)
		}
		// A second label from the same KDF is independent of the first call's state.
		got2 := make([]byte, n)
		k.Expand(got2, "other")
		want2, _ := hkdf.Expand(sha256.New, prk, "other", n)
		if !bytes.Equal(got2, want2) {
			t.Fatalf("length %d: second Expand differs", n)
		}
	}
}

// The fallback of ScalarMultReduced (taken with probability about 2^-126, so never by chance in
// a test) agrees with the clamped-form path, and clampedForm's k is clamped and equals +-c.
func TestScalarMultReducedFallbackAgrees(t *testing.T) {
	for range 50 {
		var a [32]byte
		rand.Read(a[:])
		c := ClampedScalar(a[:])
		c.Multiply(c, ClampedScalar(a[:])) // any reduced scalar
		y, _ := ecdh.X25519().GenerateKey(rand.Reader)
		u := [32]byte(y.PublicKey().Bytes())
		var fast, slow, kb [32]byte
		must(t, ScalarMultReduced(&fast, c, &u))
		scalarMultReducedLadder(&slow, c, &u)
		if fast != slow {
			t.Fatal("fallback differs from the clamped form")
		}
		if !clampedForm(&kb, c) || kb[0]&7 != 0 || kb[31]&0xc0 != 0x40 {
			t.Fatalf("clamped form %x is not clamped", kb)
		}
		ks, err := new(edwards25519.Scalar).SetUniformBytes(append(kb[:], make([]byte, 32)...))
		if err != nil {
			t.Fatal(err)
		}
		if ks.Equal(c) != 1 && ks.Equal(new(edwards25519.Scalar).Negate(c)) != 1 {
			t.Fatal("clamped form is not +-c mod l")
		}
	}
}

// For a point with a small-order component (a hostile key in a consensus), the reduced form
// still equals the sequential X25519 computation of §8, as both kill the component.
func TestReducedScalarsMatchSequentialWithTorsion(t *testing.T) {
	// An Edwards point of order 8 (RFC 8032 implementations list it among the small-order
	// encodings).
	tb, _ := hex.DecodeString("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	tor, err := new(edwards25519.Point).SetBytes(tb)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		var a, b, x [32]byte
		rand.Read(a[:])
		rand.Read(b[:])
		rand.Read(x[:])
		p := new(edwards25519.Point).ScalarBaseMult(ClampedScalar(x[:]))
		p.Add(p, tor)
		u := [32]byte(p.BytesMontgomery())
		var s1, s2, s [32]byte
		must(t, X25519(&s1, &a, &u))
		must(t, X25519(&s2, &b, &s1))
		prod := new(edwards25519.Scalar).Multiply(ClampedScalar(a[:]), ClampedScalar(b[:]))
		must(t, ScalarMultReduced(&s, prod, &u))
		if s != s2 {
			t.Fatal("reduced form differs from sequential X25519 on a point with torsion")
		}
	}
}

// BaseMultiples with its one batched inversion gives each point's own u-coordinate.
func TestBaseMultiplesMatchesOneByOne(t *testing.T) {
	for n := 1; n <= 10; n++ {
		ks := make([]edwards25519.Scalar, n)
		want := make([][32]byte, n)
		for i := range ks {
			var a [32]byte
			rand.Read(a[:])
			ks[i] = *ClampedScalar(a[:])
			want[i] = [32]byte(new(edwards25519.Point).ScalarBaseMult(&ks[i]).BytesMontgomery())
		}
		got := make([][32]byte, n)
		must(t, BaseMultiples(got, ks))
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("n=%d: point %d differs", n, i)
			}
		}
	}
}

func TestHMACMatchesCryptoHMAC(t *testing.T) {
	m := NewHMAC()
	for _, kl := range []int{0, 1, 32, 64} {
		for _, n := range []int{0, 1, 55, 64, 65, 1000} {
			key, msg := make([]byte, kl), make([]byte, n)
			rand.Read(key)
			rand.Read(msg)
			h := hmac.New(sha256.New, key)
			h.Write(msg[:n/2])
			h.Write(msg[n/2:])
			var got [MACSize]byte
			m.MAC(&got, key, msg[:n/2], msg[n/2:])
			if !bytes.Equal(got[:], h.Sum(nil)) {
				t.Fatalf("key %d, message %d: differs from crypto/hmac", kl, n)
			}
		}
	}
}

// An unwrap's primitives allocate nothing once their HMAC exists (the AES key schedule and CTR
// state aside, which crypto/aes and crypto/cipher allocate).
func TestHMACAndKDFDoNotAllocate(t *testing.T) {
	m := NewHMAC()
	key, msg := make([]byte, 32), make([]byte, 1000)
	var out [MACSize]byte
	var k128 [128]byte
	if n := testing.AllocsPerRun(100, func() {
		m.MAC(&out, key, msg, key)
		kdf := m.KDF(key, msg[:32])
		kdf.Expand(k128[:], "panoramix-sphinx-v1 payload-lioness")
		kdf.Wipe()
		m.Scrub()
	}); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
	var u, s [32]byte
	u[0] = 9
	if n := testing.AllocsPerRun(10, func() { X25519(&s, (*[32]byte)(k128[:32]), &u) }); n != 0 {
		t.Fatalf("X25519: %v allocations, want 0", n)
	}
}
