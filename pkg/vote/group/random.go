package group

import (
	"bytes"
	"fmt"
	"io"
	"math/big"
)

// RandomInt reads a random integer modulo m from a PRG as Verificatum does (§3.3): it reads
// ceil((bitlen(m)+statDist)/8) bytes, keeps the low bitlen(m)+statDist bits, and reduces mod m.
// The result is within 2^-statDist of uniform. For public values only.
func RandomInt(prg io.Reader, m *big.Int, statDist int) (*big.Int, error) {
	nbits := m.BitLen() + statDist
	b := make([]byte, (nbits+7)/8)
	if _, err := io.ReadFull(prg, b); err != nil {
		return nil, fmt.Errorf("group: reading prg: %w", err)
	}
	if r := nbits % 8; r != 0 {
		b[0] &= byte(1<<r) - 1
	}
	x := new(big.Int).SetBytes(b)
	return x.Mod(x, m), nil
}

// maxRandomTries bounds the search for a random point: half of all x are abscissas, so 256
// failures in a row happen with probability 2^-256 and mean a broken PRG.
const maxRandomTries = 256

// halfP is (p-1)/2 as 32 big-endian bytes: a root y in [0, p-1] is the smaller of y and p - y
// exactly when y <= (p-1)/2.
var halfP = func() (b [fieldLen]byte) {
	new(big.Int).Rsh(fieldP, 1).FillBytes(b[:])
	return b
}()

// pointFromX returns the point of §3.4 for a candidate abscissa x (0 <= x < p), or nil if x is
// not one. The square root is nistec's decompression (field arithmetic in assembly), about ten
// times faster than math/big's modular exponentiation and Jacobi symbol: generator derivation
// tests about 2N candidates for N ciphertexts.
func pointFromX(x *big.Int) *Element {
	var c [1 + fieldLen]byte
	c[0] = 2 // either root: the smaller one is chosen below
	x.FillBytes(c[1:])
	e := new(Element)
	if _, err := e.p.SetBytes(c[:]); err != nil {
		return nil // x^3 - 3x + b is not a square
	}
	u := e.p.Bytes() // 0x04 | X | Y
	y := u[1+fieldLen:]
	if allZero(y) {
		return nil // x^3 - 3x + b = 0: refused like a non-residue (§3.4)
	}
	// Of the two square roots y and p - y, the verifier document (§6.8) takes the smaller.
	if bytes.Compare(y, halfP[:]) > 0 {
		e.p.Negate(&e.p)
	}
	return e
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// RandomElement derives a point from a PRG as Verificatum does for independent generators
// (§3.4): x is a random integer modulo p; if x^3 - 3x + b is a non-zero square, the point is
// (x, y) where y is the smaller of the two square roots of x^3 - 3x + b, viewed as integers in
// [0, p-1]; otherwise it tries again with the next bytes.
func RandomElement(prg io.Reader, statDist int) (*Element, error) {
	for range maxRandomTries {
		x, err := RandomInt(prg, fieldP, statDist)
		if err != nil {
			return nil, err
		}
		if e := pointFromX(x); e != nil {
			return e, nil
		}
	}
	return nil, fmt.Errorf("group: no point found after %d tries", maxRandomTries)
}

// RandomElements derives n points one after the other from the same PRG: the same points as n
// calls of RandomElement. Candidates are read ahead in batches and tested on all cores, so the
// PRG may be left advanced past the last candidate used: it must not be read afterwards.
func RandomElements(prg io.Reader, n, statDist int) ([]*Element, error) {
	out := make([]*Element, 0, n)
	misses := 0
	for len(out) < n {
		// About half of all candidates are abscissas; read a few more than needed.
		k := 2*(n-len(out)) + 16
		xs := make([]*big.Int, k)
		for i := range xs {
			x, err := RandomInt(prg, fieldP, statDist)
			if err != nil {
				return nil, err
			}
			xs[i] = x
		}
		pts := make([]*Element, k)
		Parallel(k, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				pts[i] = pointFromX(xs[i])
			}
		})
		for _, e := range pts {
			if len(out) == n {
				break
			}
			if e == nil {
				if misses++; misses == maxRandomTries {
					return nil, fmt.Errorf("group: no point found after %d tries", maxRandomTries)
				}
				continue
			}
			misses = 0
			out = append(out, e)
		}
	}
	return out, nil
}
