package keys

import (
	"bytes"
	"encoding/hex"
	"math/big"
	"testing"
)

// The X25519 form of a link key pair is a pair: both sides of an exchange compute the same secret.
func TestLinkX25519Pair(t *testing.T) {
	for i := 0; i < 20; i++ {
		k, err := GenerateLinkKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := k.X25519()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.Public().X25519()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(priv.PublicKey().Bytes(), pub.Bytes()) {
			t.Fatalf("key %d: X25519 of the private key gives public %x, the converted public key is %x", i, priv.PublicKey().Bytes(), pub.Bytes())
		}
	}
}

// RFC 8032 section 7.1 test 1's key pair, converted: the X25519 public key is fixed by the
// birational map u = (1+y)/(1-y), computed independently here with math/big.
func TestLinkX25519KnownKey(t *testing.T) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	k, err := NewLinkPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Public().String(); got != "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" {
		t.Fatalf("public key %s", got)
	}
	pub, err := k.Public().X25519()
	if err != nil {
		t.Fatal(err)
	}
	if want := montgomeryU(t, k.Public()); !bytes.Equal(pub.Bytes(), want) {
		t.Fatalf("X25519 public %x, want %x", pub.Bytes(), want)
	}
}

// A link public key that is not a curve point has no X25519 form.
func TestLinkX25519RefusesNonPoint(t *testing.T) {
	var k LinkPublicKey
	k[0] = 2 // y = 2 has no x on edwards25519
	if _, err := k.X25519(); err == nil {
		t.Fatal("converted a non-point")
	}
}

// montgomeryU computes u = (1+y)/(1-y) mod 2^255-19 from an Ed25519 public key's y coordinate.
func montgomeryU(t *testing.T, k LinkPublicKey) []byte {
	t.Helper()
	be := make([]byte, 32)
	for i := range 32 {
		be[31-i] = k[i]
	}
	be[0] &= 0x7f // the sign bit of x
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	y := new(big.Int).SetBytes(be)
	num := new(big.Int).Add(big.NewInt(1), y)
	den := new(big.Int).Sub(big.NewInt(1), y)
	den.Mod(den, p)
	u := new(big.Int).Mul(num, new(big.Int).ModInverse(den, p))
	u.Mod(u, p)
	out := make([]byte, 32)
	ub := u.FillBytes(make([]byte, 32))
	for i := range 32 {
		out[i] = ub[31-i]
	}
	return out
}
