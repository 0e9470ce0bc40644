package group

import (
	"crypto/subtle"

	"filippo.io/nistec"
)

// fixedWindows and fixedDigits shape a FixedBase table: the 256-bit exponent is cut into 64
// digits of 4 bits, and window w holds d * 16^w * a for every digit d.
const (
	fixedWindows = 64
	fixedDigits  = 16
)

// FixedBase is a table of multiples of one point a, for raising that same point to many secret
// exponents: Exp costs 64 point additions and constant-time table lookups instead of a full
// scalar multiplication (about 255 doublings and 50 additions). The table takes about 96 KB;
// it pays off after a few dozen exponentiations (a shuffle raises the public key and h_0 to N
// exponents each, §5.5).
type FixedBase struct {
	t [fixedWindows][fixedDigits]nistec.P256Point
}

// NewFixedBase precomputes the table of a.
func NewFixedBase(a *Element) *FixedBase {
	fb := new(FixedBase)
	var base nistec.P256Point
	base.Set(&a.p)
	for w := range fixedWindows {
		fb.t[w][0].Set(nistec.NewP256Point())
		fb.t[w][1].Set(&base)
		for d := 2; d < fixedDigits; d++ {
			fb.t[w][d].Add(&fb.t[w][d-1], &base)
		}
		for range 4 {
			base.Double(&base)
		}
	}
	return fb
}

// Exp sets e = a^s, a being the table's point, in constant time, and returns e. The digits of
// s only select table entries through full scans with conditional moves, and every addition is
// nistec's complete, constant-time one (which also covers the identity and equal points).
func (fb *FixedBase) Exp(e *Element, s *Scalar) *Element {
	var b [fieldLen]byte
	s.fill(&b)
	defer clear(b[:])
	var acc, sel nistec.P256Point
	acc.Set(nistec.NewP256Point())
	for w := range fixedWindows {
		d := (b[fieldLen-1-w/2] >> (4 * (w % 2))) & 0x0f
		sel.Set(&fb.t[w][0])
		for k := 1; k < fixedDigits; k++ {
			sel.Select(&fb.t[w][k], &sel, subtle.ConstantTimeByteEq(byte(k), d))
		}
		acc.Add(&acc, &sel)
	}
	e.p.Set(&acc)
	return e
}
