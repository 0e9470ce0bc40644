package dp

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/bits"
	"sync"
)

// Sampler draws exact samples from the distributions of CKS 2020. It is safe for concurrent
// use. Its only source of randomness is the reader it was made with: crypto/rand for every use
// but tests of determinism.
type Sampler struct {
	mu sync.Mutex
	r  *bufio.Reader
	b  [8]byte
}

// NewSampler returns a Sampler reading random bytes from r; nil means crypto/rand.Reader.
func NewSampler(r io.Reader) *Sampler {
	if r == nil {
		r = rand.Reader
	}
	return &Sampler{r: bufio.NewReaderSize(r, 4096)}
}

var (
	one    = big.NewInt(1)
	bigOne = big.NewRat(1, 1)
)

// maxScaleBits bounds the size of the integers that parameterise a distribution, so that a
// caller's parameters cannot make one sample cost unbounded memory.
const maxScaleBits = 256

// ErrParameter is wrapped by every refusal of a distribution's parameters.
var ErrParameter = errors.New("dp: invalid parameter")

// uint64n returns a uniform integer in [0, n), n > 0, by rejection from the next power of two.
func (s *Sampler) uint64n(n uint64) (uint64, error) {
	if n == 1 {
		return 0, nil
	}
	mask := uint64(1)<<bits.Len64(n-1) - 1
	for {
		if _, err := io.ReadFull(s.r, s.b[:]); err != nil {
			return 0, fmt.Errorf("dp: random source: %w", err)
		}
		if v := binary.LittleEndian.Uint64(s.b[:]) & mask; v < n {
			return v, nil
		}
	}
}

// uniform returns a uniform integer in [0, n), n > 0.
func (s *Sampler) uniform(n *big.Int) (*big.Int, error) {
	if n.IsUint64() {
		v, err := s.uint64n(n.Uint64())
		return new(big.Int).SetUint64(v), err
	}
	v, err := rand.Int(s.r, n)
	if err != nil {
		return nil, fmt.Errorf("dp: random source: %w", err)
	}
	return v, nil
}

// bernoulli returns true with probability num/den, 0 <= num <= den, den > 0.
func (s *Sampler) bernoulli(num, den *big.Int) (bool, error) {
	if num.IsUint64() && den.IsUint64() {
		v, err := s.uint64n(den.Uint64())
		return v < num.Uint64(), err
	}
	v, err := s.uniform(den)
	if err != nil {
		return false, err
	}
	return v.Cmp(num) < 0, nil
}

// Bernoulli returns true with probability p, a rational in [0, 1].
func (s *Sampler) Bernoulli(p *big.Rat) (bool, error) {
	if p.Sign() < 0 || p.Cmp(bigOne) > 0 {
		return false, fmt.Errorf("%w: Bernoulli probability %s outside [0, 1]", ErrParameter, p.RatString())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bernoulli(p.Num(), p.Denom())
}

// BernoulliExp returns true with probability exp(-gamma), gamma a rational >= 0 (CKS 2020
// Algorithm 1).
func (s *Sampler) BernoulliExp(gamma *big.Rat) (bool, error) {
	if gamma.Sign() < 0 {
		return false, fmt.Errorf("%w: BernoulliExp(-γ) with γ = %s < 0", ErrParameter, gamma.RatString())
	}
	if gamma.Num().BitLen() > maxScaleBits || gamma.Denom().BitLen() > maxScaleBits {
		return false, fmt.Errorf("%w: γ has more than %d bits", ErrParameter, maxScaleBits)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bernoulliExp(gamma.Num(), gamma.Denom())
}

// bernoulliExp is Algorithm 1 for γ = num/den >= 0.
func (s *Sampler) bernoulliExp(num, den *big.Int) (bool, error) {
	if num.Cmp(den) <= 0 {
		return s.bernoulliExpSmall(num, den)
	}
	// γ > 1: exp(-γ) = exp(-1)^floor(γ) * exp(-(γ - floor(γ))); stop at the first failure.
	whole, frac := new(big.Int).QuoRem(num, den, new(big.Int))
	for k := new(big.Int); k.Cmp(whole) < 0; k.Add(k, one) {
		b, err := s.bernoulliExpSmall(one, one)
		if err != nil || !b {
			return false, err
		}
	}
	return s.bernoulliExpSmall(frac, den)
}

// bernoulliExpSmall is Algorithm 1 for γ = num/den in [0, 1]: the number K of the first failed
// Bernoulli(γ/k), k = 1, 2, ..., is odd with probability exp(-γ).
func (s *Sampler) bernoulliExpSmall(num, den *big.Int) (bool, error) {
	k := big.NewInt(1)
	d := new(big.Int)
	for {
		d.Mul(den, k)
		a, err := s.bernoulli(num, d)
		if err != nil {
			return false, err
		}
		if !a {
			break
		}
		k.Add(k, one)
	}
	return k.Bit(0) == 1, nil
}

// DiscreteLaplace returns a sample of Lap_Z(t/s): P[X = x] proportional to exp(-|x| s/t), for
// integers s, t >= 1 (CKS 2020 Algorithm 2).
func (s *Sampler) DiscreteLaplace(num, den *big.Int) (*big.Int, error) {
	// The scale is t/s = num/den.
	if num.Sign() <= 0 || den.Sign() <= 0 || num.BitLen() > maxScaleBits || den.BitLen() > maxScaleBits {
		return nil, fmt.Errorf("%w: discrete Laplace scale %s/%s", ErrParameter, num, den)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.discreteLaplace(den, num)
}

// discreteLaplace is Algorithm 2 with parameters s, t (scale t/s).
func (s *Sampler) discreteLaplace(sp, t *big.Int) (*big.Int, error) {
	x := new(big.Int)
	for {
		// U uniform in {0..t-1}, kept with probability exp(-U/t): U + t*V is then geometric
		// with parameter 1 - exp(-1/t).
		u, err := s.uniform(t)
		if err != nil {
			return nil, err
		}
		d, err := s.bernoulliExp(u, t)
		if err != nil {
			return nil, err
		}
		if !d {
			continue
		}
		v := new(big.Int)
		for {
			a, err := s.bernoulliExpSmall(one, one)
			if err != nil {
				return nil, err
			}
			if !a {
				break
			}
			v.Add(v, one)
		}
		x.Mul(t, v).Add(x, u)
		y := x.Quo(x, sp)
		neg, err := s.bernoulli(one, big.NewInt(2))
		if err != nil {
			return nil, err
		}
		if neg && y.Sign() == 0 {
			continue // -0 is rejected so that 0 is not counted twice
		}
		if neg {
			y.Neg(y)
		}
		return new(big.Int).Set(y), nil
	}
}

// DiscreteGaussian returns a sample of N_Z(0, σ²): P[X = x] proportional to exp(-x²/(2σ²)),
// for a rational variance sigma2 > 0 (CKS 2020 Algorithm 3).
func (s *Sampler) DiscreteGaussian(sigma2 *big.Rat) (*big.Int, error) {
	if sigma2.Sign() <= 0 || sigma2.Num().BitLen() > maxScaleBits || sigma2.Denom().BitLen() > maxScaleBits {
		return nil, fmt.Errorf("%w: discrete Gaussian variance %s", ErrParameter, sigma2.RatString())
	}
	// t = floor(σ) + 1, with floor(σ) = floor(sqrt(floor(σ²)))... computed exactly as the
	// largest integer whose square is at most σ².
	fl := new(big.Int).Quo(sigma2.Num(), sigma2.Denom())
	t := new(big.Int).Sqrt(fl)
	t.Add(t, one)
	// γ = (|Y| - σ²/t)² / (2σ²), computed as a rational.
	s2t := new(big.Rat).Quo(sigma2, new(big.Rat).SetInt(t))
	twoS2 := new(big.Rat).Mul(sigma2, big.NewRat(2, 1))
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		y, err := s.discreteLaplace(one, t)
		if err != nil {
			return nil, err
		}
		g := new(big.Rat).SetInt(new(big.Int).Abs(y))
		g.Sub(g, s2t)
		g.Mul(g, g)
		g.Quo(g, twoS2)
		c, err := s.bernoulliExp(g.Num(), g.Denom())
		if err != nil {
			return nil, err
		}
		if c {
			return y, nil
		}
	}
}
