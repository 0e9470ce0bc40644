package dp

import (
	"fmt"
	"math/big"
)

// Central mechanisms (docs/spec/survey.md section 6.2). Neighbouring data sets differ by one
// whole submission, added or removed; one submission holds at most one answer per question.

// Laplace returns value + Lap_Z(Δ/ε): ε-differentially private for an integer query of L1
// sensitivity Δ = sensitivity >= 1.
func (s *Sampler) Laplace(value, sensitivity *big.Int, eps Epsilon) (*big.Int, error) {
	if eps == 0 || eps > MaxEpsilon {
		return nil, fmt.Errorf("%w: ε %s", ErrEpsilon, eps)
	}
	if sensitivity.Sign() <= 0 {
		return nil, fmt.Errorf("%w: sensitivity %s", ErrParameter, sensitivity)
	}
	// Scale Δ/ε = Δ * 10^6 / eps.
	num := new(big.Int).Mul(sensitivity, big.NewInt(int64(EpsilonUnit)))
	noise, err := s.DiscreteLaplace(num, big.NewInt(int64(eps)))
	if err != nil {
		return nil, err
	}
	return noise.Add(noise, value), nil
}

// Count releases a count (sensitivity 1).
func (s *Sampler) Count(n int64, eps Epsilon) (*big.Int, error) {
	return s.Laplace(big.NewInt(n), one, eps)
}

// SumSensitivity is the sensitivity of a sum of values in [lo, hi]: one submission added or
// removed moves the sum by at most max(|lo|, |hi|) (at least 1, so that the noise never
// vanishes).
func SumSensitivity(lo, hi int64) *big.Int {
	a, b := new(big.Int).Abs(big.NewInt(lo)), new(big.Int).Abs(big.NewInt(hi))
	if a.Cmp(b) < 0 {
		a = b
	}
	if a.Sign() == 0 {
		a.SetInt64(1)
	}
	return a
}

// Sum releases the sum of values that all lie in [lo, hi].
func (s *Sampler) Sum(sum *big.Int, lo, hi int64, eps Epsilon) (*big.Int, error) {
	if lo > hi {
		return nil, fmt.Errorf("%w: bounds [%d, %d]", ErrParameter, lo, hi)
	}
	return s.Laplace(sum, SumSensitivity(lo, hi), eps)
}

// Histogram releases counts per option. One submission adds one to at most one bin, so the
// L1 sensitivity of the vector is 1 and each bin gets Lap_Z(1/ε) for a total of ε (Dwork,
// Roth 2014, section 3.3).
func (s *Sampler) Histogram(counts []int64, eps Epsilon) ([]*big.Int, error) {
	out := make([]*big.Int, len(counts))
	for i, c := range counts {
		v, err := s.Laplace(big.NewInt(c), one, eps)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// MeanRelease is a released mean: a noisy sum and a noisy count, each with half of ε.
type MeanRelease struct {
	Sum, Count *big.Int
}

// Mean releases the sum (ε/2, rounded down to a millionth) and the count (the rest of ε) of
// values in [lo, hi]. eps must be at least 2 millionths.
func (s *Sampler) Mean(sum *big.Int, count int64, lo, hi int64, eps Epsilon) (*MeanRelease, error) {
	if eps < 2 {
		return nil, fmt.Errorf("%w: ε %s cannot be split between a sum and a count", ErrEpsilon, eps)
	}
	es := eps / 2
	ns, err := s.Sum(sum, lo, hi, es)
	if err != nil {
		return nil, err
	}
	nc, err := s.Count(count, eps-es)
	if err != nil {
		return nil, err
	}
	return &MeanRelease{Sum: ns, Count: nc}, nil
}

// Estimate is the post-processed mean: Sum/Count clamped to [lo, hi]; ok is false when the
// noisy count is not positive.
func (m *MeanRelease) Estimate(lo, hi int64) (mean *big.Rat, ok bool) {
	if m.Count.Sign() <= 0 {
		return nil, false
	}
	r := new(big.Rat).SetFrac(m.Sum, m.Count)
	if l := big.NewRat(lo, 1); r.Cmp(l) < 0 {
		r = l
	}
	if h := big.NewRat(hi, 1); r.Cmp(h) > 0 {
		r = h
	}
	return r, true
}
