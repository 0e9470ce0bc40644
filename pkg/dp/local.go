package dp

import (
	"fmt"
	"math"
	"math/big"
)

// Local perturbations a client applies before sending (docs/spec/survey.md section 6.1).

// MaxOptions bounds k in randomized response.
const MaxOptions = 256

// RandomizedResponse returns value in [0, k) with probability e^ε/(e^ε + k - 1) and each other
// option with probability 1/(e^ε + k - 1): ε-locally differentially private. It is sampled
// exactly by rejection: draw an option uniformly, keep it if it is the true one, else keep it
// with probability exp(-ε).
func (s *Sampler) RandomizedResponse(value, k int, eps Epsilon) (int, error) {
	if k < 2 || k > MaxOptions || value < 0 || value >= k {
		return 0, fmt.Errorf("%w: randomized response of %d among %d options", ErrParameter, value, k)
	}
	if eps == 0 || eps > MaxEpsilon {
		return 0, fmt.Errorf("%w: ε %s", ErrEpsilon, eps)
	}
	g := eps.Rat()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		c, err := s.uint64n(uint64(k))
		if err != nil {
			return 0, err
		}
		if int(c) == value {
			return value, nil
		}
		keep, err := s.bernoulliExp(g.Num(), g.Denom())
		if err != nil {
			return 0, err
		}
		if keep {
			return int(c), nil
		}
	}
}

// EstimateRR turns the counts of randomized responses over k = len(counts) options into
// unbiased estimates of the true counts: (c_j - n q) / (p - q), p = e^ε/(e^ε+k-1),
// q = 1/(e^ε+k-1). Post-processing of already-private counts, so floating point is fine.
func EstimateRR(counts []float64, eps Epsilon) []float64 {
	k := float64(len(counts))
	var n float64
	for _, c := range counts {
		n += c
	}
	e := math.Exp(float64(eps) / float64(EpsilonUnit))
	p, q := e/(e+k-1), 1/(e+k-1)
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = (c - n*q) / (p - q)
	}
	return out
}

// LocalTailFactor sets how far beyond [lo, hi] a locally perturbed number may lie: the noise
// scale times this factor, so that clamping changes a value with probability at most
// exp(-LocalTailFactor), about 2e-9.
const LocalTailFactor = 20

// LocalRange returns the range [lo - W, hi + W] of a number perturbed by BoundedLaplace, with
// W = ceil(LocalTailFactor * (hi - lo) / ε) (W = ceil(LocalTailFactor / ε) when lo = hi). It
// fails when the range does not fit in an int64.
func LocalRange(lo, hi int64, eps Epsilon) (int64, int64, error) {
	if lo > hi || eps == 0 || eps > MaxEpsilon {
		return 0, 0, fmt.Errorf("%w: local range of [%d, %d] at ε %s", ErrParameter, lo, hi, eps)
	}
	w := localScaleNum(lo, hi)
	w.Mul(w, big.NewInt(LocalTailFactor))
	// ceil(w / eps)
	w.Add(w, big.NewInt(int64(eps)-1))
	w.Quo(w, big.NewInt(int64(eps)))
	l := new(big.Int).Sub(big.NewInt(lo), w)
	h := new(big.Int).Add(big.NewInt(hi), w)
	if !l.IsInt64() || !h.IsInt64() {
		return 0, 0, fmt.Errorf("%w: local range of [%d, %d] at ε %s overflows", ErrParameter, lo, hi, eps)
	}
	return l.Int64(), h.Int64(), nil
}

// localScaleNum is (hi - lo) * 10^6 (or 10^6 for lo = hi): the numerator of the noise scale
// (hi-lo)/ε, whose denominator is eps in millionths.
func localScaleNum(lo, hi int64) *big.Int {
	d := new(big.Int).Sub(big.NewInt(hi), big.NewInt(lo))
	if d.Sign() == 0 {
		d.SetInt64(1)
	}
	return d.Mul(d, big.NewInt(int64(EpsilonUnit)))
}

// BoundedLaplace perturbs value in [lo, hi] with Lap_Z((hi - lo)/ε) and clamps the result to
// LocalRange(lo, hi, eps): ε-locally differentially private, since any two values in the range
// differ by at most hi - lo and clamping is post-processing.
func (s *Sampler) BoundedLaplace(value, lo, hi int64, eps Epsilon) (int64, error) {
	if value < lo || value > hi {
		return 0, fmt.Errorf("%w: value %d outside [%d, %d]", ErrParameter, value, lo, hi)
	}
	rl, rh, err := LocalRange(lo, hi, eps)
	if err != nil {
		return 0, err
	}
	noise, err := s.DiscreteLaplace(localScaleNum(lo, hi), big.NewInt(int64(eps)))
	if err != nil {
		return 0, err
	}
	v := noise.Add(noise, big.NewInt(value))
	if v.Cmp(big.NewInt(rl)) < 0 {
		return rl, nil
	}
	if v.Cmp(big.NewInt(rh)) > 0 {
		return rh, nil
	}
	return v.Int64(), nil
}
