package dp

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Epsilon is a privacy parameter ε in millionths: Epsilon(500000) is ε = 0.5. A fixed-point
// integer keeps budget arithmetic exact (a ledger never refuses or allows a release because
// of rounding) and gives every ε one text form (docs/spec/survey.md section 2.3).
type Epsilon uint64

// EpsilonUnit is ε = 1.
const EpsilonUnit Epsilon = 1_000_000

// MaxEpsilon bounds every ε and budget: beyond it the noise is meaningless as protection, and
// sums of ε stay far from overflow.
const MaxEpsilon = 100 * EpsilonUnit

// ErrEpsilon is wrapped by every ε parsing error.
var ErrEpsilon = errors.New("dp: invalid epsilon")

// maxEpsilonText bounds the text ParseEpsilon reads: "100.000001" at most.
const maxEpsilonText = 3 + 1 + 6

// ParseEpsilon parses the canonical decimal form of String: digits without leading zeros,
// optionally a point and 1 to 6 decimals without trailing zero; the value is in
// (0, MaxEpsilon].
func ParseEpsilon(s string) (Epsilon, error) {
	if len(s) == 0 || len(s) > maxEpsilonText {
		return 0, fmt.Errorf("%w: %q: want a decimal such as 0.5 (at most 6 decimals, at most 100)", ErrEpsilon, s)
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if !digits(whole) || (len(whole) > 1 && whole[0] == '0') {
		return 0, fmt.Errorf("%w: %q: want a decimal such as 0.5", ErrEpsilon, s)
	}
	if hasPoint && (len(frac) == 0 || len(frac) > 6 || !digits(frac) || frac[len(frac)-1] == '0') {
		return 0, fmt.Errorf("%w: %q: want 1 to 6 decimals, no trailing zero", ErrEpsilon, s)
	}
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrEpsilon, s, err)
	}
	var f uint64
	if hasPoint {
		f, _ = strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 32)
	}
	e := Epsilon(w)*EpsilonUnit + Epsilon(f)
	if e == 0 || e > MaxEpsilon {
		return 0, fmt.Errorf("%w: %q: want more than 0 and at most 100", ErrEpsilon, s)
	}
	return e, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// String returns the canonical decimal form, e.g. "0.5", "1", "0.000001".
func (e Epsilon) String() string {
	s := strconv.FormatUint(uint64(e/EpsilonUnit), 10)
	if f := e % EpsilonUnit; f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", uint64(f)), "0")
	}
	return s
}

// Rat returns ε as an exact rational.
func (e Epsilon) Rat() *big.Rat { return big.NewRat(int64(e), int64(EpsilonUnit)) }

// MarshalText returns String.
func (e Epsilon) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText parses with ParseEpsilon.
func (e *Epsilon) UnmarshalText(b []byte) error {
	v, err := ParseEpsilon(string(b))
	if err != nil {
		return err
	}
	*e = v
	return nil
}
