package group

import (
	"crypto/subtle"
	"fmt"
	"io"
	"math/big"

	"filippo.io/bigmod"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

var modQ = func() *bigmod.Modulus {
	m, err := bigmod.NewModulus(orderQ.Bytes())
	if err != nil {
		panic(err)
	}
	return m
}()

// Scalar is an element of Z_q, with constant-time arithmetic. The zero value is not valid; use
// NewScalar or a constructor.
// Each Scalar owns exactly four limbs (new(bigmod.Nat) rather than bigmod.NewNat, which
// preallocates 2048 bits): proofs hold about a dozen scalars per ciphertext.
type Scalar struct{ n *bigmod.Nat }

// NewScalar returns the scalar 0.
func NewScalar() *Scalar { return &Scalar{n: new(bigmod.Nat).ExpandFor(modQ)} }

// ScalarFromUint returns v mod q.
func ScalarFromUint(v uint) *Scalar {
	return &Scalar{n: new(bigmod.Nat).Mod(new(bigmod.Nat).SetUint(v), modQ)}
}

// ScalarFromBig returns v mod q (public values only: math/big is not constant time).
func ScalarFromBig(v *big.Int) *Scalar {
	r := new(big.Int).Mod(v, orderQ)
	s, err := new(bigmod.Nat).SetBytes(r.Bytes(), modQ)
	if err != nil {
		panic("group: reduced value overflows q") // unreachable
	}
	return &Scalar{n: s}
}

// RandomScalar returns a uniformly random scalar read from rand (crypto/rand in production),
// by rejection sampling: q is within 2^-32 of 2^256, so a retry is rare and reveals nothing.
func RandomScalar(rand io.Reader) (*Scalar, error) {
	var b [fieldLen]byte
	defer clear(b[:])
	for {
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return nil, fmt.Errorf("group: reading randomness: %w", err)
		}
		if n, err := new(bigmod.Nat).SetBytes(b[:], modQ); err == nil {
			return &Scalar{n: n}, nil
		}
	}
}

func (s *Scalar) fill(b *[fieldLen]byte) { copy(b[:], s.n.Bytes(modQ)) }

// Bytes returns the 32-byte big-endian encoding of s.
func (s *Scalar) Bytes() []byte { return s.n.Bytes(modQ) }

// Big returns s as a big.Int (public values only).
func (s *Scalar) Big() *big.Int { return new(big.Int).SetBytes(s.Bytes()) }

// Set sets s = a and returns s.
func (s *Scalar) Set(a *Scalar) *Scalar {
	s.n = new(bigmod.Nat).ExpandFor(modQ)
	s.n.Add(a.n, modQ) // 0 + a: a copy through the constant-time path
	return s
}

// Add sets s = a + b and returns s.
func (s *Scalar) Add(a, b *Scalar) *Scalar { return s.op(a, b, (*bigmod.Nat).Add) }

// Sub sets s = a - b and returns s.
func (s *Scalar) Sub(a, b *Scalar) *Scalar { return s.op(a, b, (*bigmod.Nat).Sub) }

// Mul sets s = a * b and returns s.
func (s *Scalar) Mul(a, b *Scalar) *Scalar { return s.op(a, b, (*bigmod.Nat).Mul) }

// Neg sets s = -a and returns s.
func (s *Scalar) Neg(a *Scalar) *Scalar { return s.Sub(NewScalar(), a) }

func (s *Scalar) op(a, b *Scalar, f func(x, y *bigmod.Nat, m *bigmod.Modulus) *bigmod.Nat) *Scalar {
	r := new(bigmod.Nat).ExpandFor(modQ)
	r.Add(a.n, modQ)
	f(r, b.n, modQ)
	s.n = r
	return s
}

// Equal reports whether s == a, in constant time.
func (s *Scalar) Equal(a *Scalar) bool {
	return subtle.ConstantTimeCompare(s.Bytes(), a.Bytes()) == 1
}

// Wipe overwrites s with zero.
func (s *Scalar) Wipe() {
	if s.n != nil {
		s.n.Sub(s.n, modQ)
	}
}

// Tree returns Verificatum's encoding of s: a 33-byte big-endian leaf (§2.2).
func (s *Scalar) Tree() *bytetree.Tree {
	b := make([]byte, ScalarLen)
	copy(b[1:], s.Bytes())
	return bytetree.Leaf(b)
}

// ScalarFromTree decodes a scalar, refusing non-canonical encodings (wrong length, >= q).
func ScalarFromTree(t *bytetree.Tree) (*Scalar, error) {
	if !t.IsLeaf() || t.Len() != ScalarLen {
		return nil, fmt.Errorf("%w: a scalar must be a %d-byte leaf", ErrEncoding, ScalarLen)
	}
	b := t.Data()
	if b[0] != 0 {
		return nil, fmt.Errorf("%w: scalar out of range", ErrEncoding)
	}
	n, err := new(bigmod.Nat).SetBytes(b[1:], modQ)
	if err != nil {
		return nil, fmt.Errorf("%w: scalar not reduced modulo q", ErrEncoding)
	}
	return &Scalar{n: n}, nil
}
