// Package group implements the prime-order group used by pkg/vote: the NIST P-256 curve as
// Verificatum's ECqPGroup(P-256), written multiplicatively as in the literature (docs/spec/vote.md
// §1). It owns the encodings of elements and scalars as byte trees (§2.2), the derivation of
// random elements from a PRG (§3.4), and parallel exponentiation over both cores.
//
// Scalars use constant-time arithmetic (filippo.io/bigmod) and points constant-time scalar
// multiplication (filippo.io/nistec), so the same types serve secrets and public values.
package group

import (
	"errors"
	"fmt"
	"math/big"

	"filippo.io/nistec"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// CoordLen is the byte length of an encoded coordinate and ScalarLen of an encoded scalar: the
// length of the two's-complement encoding of p (resp. q), 256 bits plus a sign bit.
const (
	CoordLen  = 33
	ScalarLen = 33
	fieldLen  = 32
)

// Name is the group descriptor Verificatum writes in protInfo.xml for P-256 (its byte tree
// node(leaf("com.verificatum.arithm.ECqPGroup"), leaf("P-256")), hex encoded after the prefix).
const Name = "ECqPGroup(P-256)::00000000020100000020636f6d2e766572696669636174756d2e61726974686d2e4543715047726f75700100000005502d323536"

// ErrEncoding is wrapped by every decoding error of this package.
var ErrEncoding = errors.New("group: invalid encoding")

var (
	fieldP, _ = new(big.Int).SetString("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff", 16)
	curveB, _ = new(big.Int).SetString("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b", 16)
	orderQ, _ = new(big.Int).SetString("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16)
)

// Order returns q, the group order (a copy).
func Order() *big.Int { return new(big.Int).Set(orderQ) }

// Element is a point of P-256. The zero value is not valid; use Identity, Generator or a
// decoder.
type Element struct{ p nistec.P256Point }

// Identity returns the point at infinity.
func Identity() *Element { e := new(Element); e.p.Set(nistec.NewP256Point()); return e }

// Generator returns the standard generator of P-256.
func Generator() *Element { e := new(Element); e.p.SetGenerator(); return e }

// Set sets e = a and returns e.
func (e *Element) Set(a *Element) *Element { e.p.Set(&a.p); return e }

// Mul sets e = a*b (the group operation) and returns e.
func (e *Element) Mul(a, b *Element) *Element { e.p.Add(&a.p, &b.p); return e }

// Inv sets e = a^-1 and returns e.
func (e *Element) Inv(a *Element) *Element { e.p.Negate(&a.p); return e }

// Exp sets e = a^s in constant time and returns e.
func (e *Element) Exp(a *Element, s *Scalar) *Element {
	var b [fieldLen]byte
	s.fill(&b)
	if _, err := e.p.ScalarMult(&a.p, b[:]); err != nil {
		panic("group: scalar multiplication: " + err.Error()) // unreachable: b has the right length
	}
	return e
}

// BaseExp sets e = g^s in constant time, using the generator's precomputed tables.
func (e *Element) BaseExp(s *Scalar) *Element {
	var b [fieldLen]byte
	s.fill(&b)
	if _, err := e.p.ScalarBaseMult(b[:]); err != nil {
		panic("group: scalar multiplication: " + err.Error())
	}
	return e
}

// Equal reports whether e and a are the same point (constant time).
func (e *Element) Equal(a *Element) bool { return e.p.Equal(&a.p) == 1 }

// IsIdentity reports whether e is the point at infinity.
func (e *Element) IsIdentity() bool { return e.p.IsInfinity() == 1 }

// Tree returns Verificatum's encoding of e: node(leaf(x), leaf(y)) with 33-byte big-endian
// coordinates, and x = y = 33 bytes of 0xff for the point at infinity (§2.2).
func (e *Element) Tree() *bytetree.Tree {
	x := make([]byte, CoordLen)
	y := make([]byte, CoordLen)
	if e.IsIdentity() {
		for i := range x {
			x[i], y[i] = 0xff, 0xff
		}
	} else {
		u := e.p.Bytes() // 0x04 | X | Y
		copy(x[1:], u[1:1+fieldLen])
		copy(y[1:], u[1+fieldLen:])
	}
	return bytetree.Node(bytetree.Leaf(x), bytetree.Leaf(y))
}

// ElementFromTree decodes Verificatum's encoding of a point, refusing anything that is not a
// canonical encoding of a point of the curve.
func ElementFromTree(t *bytetree.Tree) (*Element, error) {
	if t.IsLeaf() || t.Len() != 2 {
		return nil, fmt.Errorf("%w: a point must be a node of two leaves", ErrEncoding)
	}
	x, y := t.Children()[0], t.Children()[1]
	if !x.IsLeaf() || !y.IsLeaf() || x.Len() != CoordLen || y.Len() != CoordLen {
		return nil, fmt.Errorf("%w: point coordinates must be %d-byte leaves", ErrEncoding, CoordLen)
	}
	xb, yb := x.Data(), y.Data()
	if allFF(xb) && allFF(yb) {
		return Identity(), nil
	}
	if xb[0] != 0 || yb[0] != 0 {
		return nil, fmt.Errorf("%w: coordinate out of range", ErrEncoding)
	}
	var u [1 + 2*fieldLen]byte
	u[0] = 4
	copy(u[1:], xb[1:])
	copy(u[1+fieldLen:], yb[1:])
	e := new(Element)
	// SetBytes checks the coordinates are reduced and the point is on the curve; P-256 has
	// cofactor 1, so every such point is in the group.
	if _, err := e.p.SetBytes(u[:]); err != nil {
		return nil, fmt.Errorf("%w: not a point of P-256", ErrEncoding)
	}
	return e, nil
}

func allFF(b []byte) bool {
	for _, c := range b {
		if c != 0xff {
			return false
		}
	}
	return true
}

// ElementFromAffine returns the point (x, y), checked to be on the curve.
func ElementFromAffine(x, y *big.Int) (*Element, error) {
	if x.Sign() < 0 || y.Sign() < 0 || x.Cmp(fieldP) >= 0 || y.Cmp(fieldP) >= 0 {
		return nil, fmt.Errorf("%w: coordinate out of range", ErrEncoding)
	}
	var u [1 + 2*fieldLen]byte
	u[0] = 4
	x.FillBytes(u[1 : 1+fieldLen])
	y.FillBytes(u[1+fieldLen:])
	e := new(Element)
	if _, err := e.p.SetBytes(u[:]); err != nil {
		return nil, fmt.Errorf("%w: not a point of P-256", ErrEncoding)
	}
	return e, nil
}

// EncodedLen is the length of a point's byte tree encoding (§2.2).
const EncodedLen = 5 + 2*(5+CoordLen)

// AppendEncoding appends the encoding of e.Tree() to dst without building the tree: the hot path
// of hashing long lists.
func (e *Element) AppendEncoding(dst []byte) []byte {
	dst = append(dst, 0, 0, 0, 0, 2)
	if e.IsIdentity() {
		for range 2 {
			dst = append(dst, 1, 0, 0, 0, CoordLen)
			for range CoordLen {
				dst = append(dst, 0xff)
			}
		}
		return dst
	}
	var buf [1 + 2*fieldLen]byte
	u := e.p.Bytes()
	copy(buf[:], u)
	dst = append(dst, 1, 0, 0, 0, CoordLen, 0)
	dst = append(dst, buf[1:1+fieldLen]...)
	dst = append(dst, 1, 0, 0, 0, CoordLen, 0)
	return append(dst, buf[1+fieldLen:]...)
}
